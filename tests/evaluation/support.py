"""Run captures through the real pipeline with inventory, detection and learning attached.

``run_captures`` builds what ``ics-monitor replay`` builds (``Pipeline`` + ``Analysis`` with an
``Inventory``, a ``DetectionEngine`` and optionally a ``BaselineLearner``) and collects the alerts an
alert sink receives.  ``learn_for`` learns over the first seconds of capture time and enforces the
learned baseline afterwards, in the same run.  Updates of a throttled alert share its ``alert_id``
(stores upsert them); ``final_alerts`` keeps the latest copy of each.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ics_monitor.alerts import Alert
from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.detect import DetectionEngine, RuleSet, Zones
from ics_monitor.dissect import default_registry
from ics_monitor.inventory.assets import Inventory
from ics_monitor.inventory.baseline import Baseline, BaselineLearner
from ics_monitor.pipeline import Analysis, Pipeline


class _Collect:
    def __init__(self, into: list[Any]) -> None:
        self.into = into

    def emit(self, record: Any) -> None:
        self.into.append(record)

    def close(self) -> None:
        pass


class Run:
    """What one run produced."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.flows: list[Any] = []
        self.alerts: list[Alert] = []
        self.baseline: Baseline | None = None

    @property
    def final_alerts(self) -> list[Alert]:
        """One alert per ``alert_id``: the latest update."""
        latest: dict[str, Alert] = {}
        for alert in self.alerts:
            latest[alert.alert_id] = alert
        return list(latest.values())

    def rule_ids(self) -> set[str]:
        """Every rule that fired."""
        return {alert.rule_id for alert in self.alerts}

    def of_rule(self, rule_id: str) -> list[Alert]:
        """Final alerts of one rule."""
        return [alert for alert in self.final_alerts if alert.rule_id == rule_id]


def run_captures(
    captures: Iterable[str | Path],
    *,
    rules: RuleSet | None = None,
    baseline: Baseline | None = None,
    zones: Zones | None = None,
    learn: bool = False,
    learn_for: float | None = None,
    detect: bool = True,
) -> Run:
    """Run the captures; ``learn`` learns the whole run, ``learn_for`` learns then enforces."""
    rules = rules or RuleSet.load()
    run = Run()

    def keep(learned: Baseline) -> None:
        run.baseline = learned

    def enforce(learned: Baseline) -> DetectionEngine:
        return DetectionEngine(rules, learned, zones, strict=True)

    analysis = Analysis(
        Inventory(),
        engine=DetectionEngine(rules, baseline, zones, strict=True) if detect else None,
        learner=BaselineLearner() if learn or learn_for is not None else None,
        alert_sinks=[_Collect(run.alerts)],
        learn_for=learn_for,
        enforce=enforce if learn_for is not None else None,
        on_baseline=keep,
    )
    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        default_registry(),
        dissect="full",
        event_sinks=[_Collect(run.events)],
        flow_sinks=[_Collect(run.flows)],
        analysis=analysis,
    )
    pipeline.run(open_captures([str(c) for c in captures]))
    if learn and learn_for is None and analysis.learner is not None:
        run.baseline = analysis.learner.baseline()
    return run


def capture_span(captures: Iterable[str | Path]) -> tuple[float, float]:
    """First and last frame time of the captures."""
    first = last = None
    for ts, *_ in open_captures([str(c) for c in captures]):
        if first is None:
            first = ts
        last = ts
    assert first is not None and last is not None
    return first, last
