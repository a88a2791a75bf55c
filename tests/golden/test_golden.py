"""Golden cases: one capture each, intent-first checks over everything a full run produces.

A case is ``tests/golden/cases/<layer-or-proto>-<behaviour>/test.yaml``::

    description: what the case shows
    capture: pcaps/foundation/vlan.pcap     # repo-relative; or `shared: iti/x.pcap` (../shared/pcaps)
                                            # or `captures: [a.pcap, b.pcap]`: one run, merged by time
    dissectors: [lenmsg]                    # optional: test-only dissectors instead of the shipped ones
    expect_error: truncated record          # optional: the run ends (or never starts) with this error
    stats: {frames: 12, flows: 3}           # optional: RunStats fields
    checks:
      - filter:
          count: 2                          # exact number of records matching all `match` entries
          match: {event_type: flow, vlan: [10], objects.0.group: 12}
    snapshot: true                          # optional: compare all records with expected.jsonl
    inventory: true                         # optional: asset changes, then every asset (event_type: asset)

Records are protocol events, anomalies and flow records (``event_type: flow``) as their JSON objects.
Times come from the capture and flow ids from the 5-tuple, so output is deterministic; snapshots are
rewritten only by ``make golden-update`` (GOLDEN_UPDATE=1) and reviewed as diffs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.core.errors import CaptureError
from ics_monitor.dissect import Registry, default_registry
from ics_monitor.inventory.assets import Inventory
from ics_monitor.pipeline import Analysis, Pipeline, RunStats
from ics_monitor.sinks import record_to_dict
from tests.conftest import REPO, shared_pcaps
from tests.support.lenmsg import LenMsgDissector

CASES = Path(__file__).parent / "cases"
TEST_DISSECTORS = {"lenmsg": LenMsgDissector}


class _Collect:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def emit(self, record: Any) -> None:
        self.records.append(record_to_dict(record))

    def close(self) -> None:
        pass


def _lookup(record: Any, path: str) -> Any:
    value = record
    for part in path.split("."):
        if isinstance(value, list):
            if not part.isdigit() or int(part) >= len(value):
                return _MISSING
            value = value[int(part)]
        elif isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        else:
            return _MISSING
    return value


_MISSING = object()


def _equal(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, (int, float)):
        return abs(actual - expected) < 1e-6
    if isinstance(expected, list) and isinstance(actual, list):
        return len(actual) == len(expected) and all(
            _equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    return bool(actual == expected)


def _matches(record: dict[str, Any], match: dict[str, Any]) -> bool:
    return all(_equal(_lookup(record, path), value) for path, value in match.items())


def run_case(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], Any, list[str]]:
    if "shared" in spec:
        captures = [shared_pcaps() / spec["shared"]]
    elif "captures" in spec:
        captures = [REPO / name for name in spec["captures"]]
    else:
        captures = [REPO / spec["capture"]]
    names = spec.get("dissectors")
    registry = Registry([TEST_DISSECTORS[name]() for name in names]) if names else default_registry()
    records: list[dict[str, Any]] = []
    sink = _Collect(records)
    inventory = Inventory() if spec.get("inventory") else None
    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        registry,
        dissect="full",
        event_sinks=[sink],
        flow_sinks=[sink],
        emit_arp=bool(spec.get("arp")),
        analysis=Analysis(inventory, change_sinks=[sink]) if inventory is not None else None,
    )
    try:
        source = open_captures([str(capture) for capture in captures])
    except CaptureError as exc:  # refused at open (missing, not a capture): nothing runs
        return records, RunStats(), [str(exc)]
    stats = pipeline.run(source)
    if inventory is not None:
        records.extend(asset.to_dict() for asset in inventory.assets())
    return records, stats, [str(e) for e in source.errors]


def _cases() -> list[Path]:
    return sorted(p.parent for p in CASES.glob("*/test.yaml"))


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.name)
def test_golden(case: Path) -> None:
    spec = yaml.safe_load((case / "test.yaml").read_text())
    records, stats, errors = run_case(spec)
    expected_error = spec.get("expect_error")
    if expected_error:
        assert any(expected_error in e for e in errors), errors
    else:
        assert errors == []
    for name, value in (spec.get("stats") or {}).items():
        assert getattr(stats, name) == value, f"stats.{name}"
    failures = []
    for number, check in enumerate(spec.get("checks") or [], start=1):
        rule = check["filter"]
        found = [r for r in records if _matches(r, rule.get("match", {}))]
        if len(found) != rule["count"]:
            failures.append(
                f"check {number}: {len(found)} records match {rule.get('match')}, want {rule['count']}"
            )
    assert not failures, "\n".join(failures)
    if spec.get("snapshot"):
        snapshot = case / "expected.jsonl"
        lines = [orjson.dumps(r, option=orjson.OPT_SORT_KEYS).decode() for r in records]
        if os.environ.get("GOLDEN_UPDATE") == "1":
            snapshot.write_text("\n".join(lines) + "\n")
        assert snapshot.is_file(), f"no snapshot yet: run `make golden-update` and review {snapshot}"
        assert snapshot.read_text().splitlines() == lines
