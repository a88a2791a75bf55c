"""Every detector over every capture this repo ships (malformed ones included): no exception, and
every alert a valid JSON object of the schema, with a baseline learned from the same capture and
the example zones loaded."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ics_monitor.alerts import SCHEMA_PATH, alert_to_dict
from ics_monitor.detect import Zones
from tests.conftest import PCAPS, REPO
from tests.evaluation.support import run_captures

SCHEMA = json.loads(SCHEMA_PATH.read_text())
ZONES = Zones.load(REPO / "rules" / "examples" / "zones.yaml")
CAPTURES = sorted(
    p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and "not_a_capture" not in p.name
)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_detectors_survive_and_alerts_validate(capture: Path) -> None:
    learned = run_captures([capture], learn=True)
    assert learned.baseline is not None
    enforced = run_captures([capture], baseline=learned.baseline, zones=ZONES)
    for alert in (*learned.alerts, *enforced.alerts):
        jsonschema.validate(alert_to_dict(alert), SCHEMA)
    # Enforcing a capture's own baseline adds no deviation of conversations or functions.
    assert not {"ICS-5002", "ICS-5003", "ICS-5004"} & enforced.rule_ids()
    # Nor of assets: every host the inventory makes an asset of (ARP senders too) was learned.
    assert not enforced.of_rule("ICS-5001"), [a.evidence for a in enforced.of_rule("ICS-5001")][:3]
