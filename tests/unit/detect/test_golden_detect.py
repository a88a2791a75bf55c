"""Golden detection cases: ``tests/golden/cases/detect-*/test.yaml`` with detection attached.

The golden harness (``tests/golden/test_golden.py``) runs every case's capture through the pipeline
and its record ``checks``; this runner adds what detection needs, from the case's ``detect`` block::

    capture: pcaps/dnp3/opendnp3_session.pcap     # or shared: ..., or captures: [...]
    detect:
      learn: {shared: lemay-modbus/x.pcap}          # optional: baseline learned from other captures
      learn_first_half: true                        # optional: learn the first half, enforce the rest
      rules: {ICS-3001: {min_unit_ids: 4}}          # optional: rule parameter overrides (enabled: false too)
      zones: {zones: [...], conduits: [...]}        # optional: inline zones.yaml
    rules_fired: [ICS-1201, ICS-1202]               # optional: exactly these rules fired (sorted, distinct)
    alert_checks:
      - filter: {count: 1, match: {rule_id: ICS-1201, evidence.function: COLD_RESTART}}

Alerts are matched as ``alert_to_dict`` objects, one per ``alert_id`` (the latest update).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ics_monitor.alerts import alert_to_dict
from ics_monitor.detect import RuleSet, Zones
from tests.conftest import REPO, shared_pcaps
from tests.evaluation.support import capture_span, run_captures

CASES = REPO / "tests" / "golden" / "cases"
_MISSING = object()


def _captures(spec: dict[str, Any]) -> list[Path]:
    if "shared" in spec:
        return [shared_pcaps() / spec["shared"]]
    if "captures" in spec:
        return [REPO / name for name in spec["captures"]]
    return [REPO / spec["capture"]]


def _lookup(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return _MISSING
    return value


def _rules(overrides: dict[str, dict[str, Any]]) -> RuleSet:
    rules = RuleSet.load()
    for rule_id, params in overrides.items():
        params = dict(params)
        enabled = params.pop("enabled", None)
        rules = rules.configured(rule_id, enabled=enabled, **params)
    return rules


def _cases() -> list[Path]:
    return sorted(p.parent for p in CASES.glob("detect-*/test.yaml"))


def test_there_is_a_fires_and_a_quiet_case_per_detector() -> None:
    names = {case.name for case in _cases()}
    from ics_monitor.detect import DETECTORS

    for cls in DETECTORS:
        stem = cls.name.replace("_", "-")
        assert f"detect-{stem}-fires" in names, cls.name
        assert f"detect-{stem}-quiet" in names, cls.name


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_golden_detection(case: Path) -> None:
    spec = yaml.safe_load((case / "test.yaml").read_text())
    detect = spec.get("detect") or {}
    captures = _captures(spec)
    rules = _rules(detect.get("rules") or {})
    zones = Zones.from_dict(detect["zones"]) if detect.get("zones") else None
    baseline = None
    if detect.get("learn"):
        learned = run_captures(_captures(detect["learn"]), learn=True, detect=False)
        baseline = learned.baseline
    learn_for = None
    if detect.get("learn_first_half"):
        first, last = capture_span(captures)
        learn_for = (last - first) / 2
    run = run_captures(captures, rules=rules, baseline=baseline, zones=zones, learn_for=learn_for)
    records = [alert_to_dict(alert) for alert in run.final_alerts]
    failures = []
    if "rules_fired" in spec:
        fired = sorted({record["rule_id"] for record in records})
        if fired != sorted(spec["rules_fired"]):
            failures.append(f"rules fired {fired}, want {sorted(spec['rules_fired'])}")
    for number, check in enumerate(spec.get("alert_checks") or [], start=1):
        rule = check["filter"]
        match = rule.get("match", {})
        found = [r for r in records if all(_lookup(r, path) == value for path, value in match.items())]
        if len(found) != rule["count"]:
            failures.append(f"alert check {number}: {len(found)} alerts match {match}, want {rule['count']}")
    assert not failures, "\n".join(failures)
