"""Run records through a DetectionEngine built from the shipped rules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ics_monitor.alerts import Alert
from ics_monitor.detect import DetectionEngine, RuleSet, Zones
from ics_monitor.inventory.baseline import Baseline

RULES = RuleSet.load()


def run(
    records: Iterable[Any],
    *,
    rules: RuleSet = RULES,
    baseline: Baseline | None = None,
    zones: Zones | None = None,
    finish: bool = True,
) -> list[Alert]:
    """Alerts (first copies and updates) the records cause, in order."""
    engine = DetectionEngine(rules, baseline, zones, strict=True)
    alerts: list[Alert] = []
    for record in records:
        if getattr(record, "event_type", None) == "flow":
            alerts += engine.observe_flow(record)
        elif getattr(record, "event_type", None) == "asset_change":
            alerts += engine.observe_changes([record])
        else:
            alerts += engine.observe(record)
    if finish:
        alerts += engine.finish()
    return alerts


def rule_ids(alerts: list[Alert]) -> list[str]:
    """Rule ids of the first copies (updates share the alert id)."""
    seen: dict[str, str] = {}
    for alert in alerts:
        seen.setdefault(alert.alert_id, alert.rule_id)
    return sorted(seen.values())
