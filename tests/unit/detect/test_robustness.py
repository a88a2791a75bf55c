"""Every detector over every capture this repo ships (malformed ones included): no exception, and
every alert a valid JSON object of the schema, with a baseline learned from the same capture and
the example zones loaded."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import jsonschema
import pytest

from ics_monitor.alerts import SCHEMA_PATH, alert_to_dict
from ics_monitor.core.bounded import BoundedDict
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


def test_a_scan_in_the_learning_window_is_still_a_scan_when_enforced() -> None:
    # Real nmap (pcaps/network/scan_recon.pcap): learning over the scan must not make it normal.
    # Its unanswered probes are not learned (the lone TCP ACKs of its host discovery neither).
    capture = PCAPS / "network" / "scan_recon.pcap"
    learned = run_captures([capture], learn=True)
    assert learned.baseline is not None
    scanner = "10.20.30.66"
    assert not learned.baseline.knows_service(scanner, "192.168.20.21", "udp", 47808)
    assert not learned.baseline.knows_service(scanner, "192.168.20.40", "tcp", 80)
    enforced = run_captures([capture], baseline=learned.baseline)
    assert {"ICS-3009", "ICS-3010", "ICS-7003"} <= enforced.rule_ids()


def test_bounded_state_forgets_its_oldest_eighth_at_the_cap() -> None:
    """The per-key state of rate detectors stays under its cap: past it, the oldest eighth goes
    (insertion order), a key already held is only updated, and the newest entries stay."""
    state = BoundedDict(16)
    for key in range(16):
        state[key] = key
    state[5] = "again"  # held: no eviction
    assert len(state) == 16 and state[5] == "again"
    state[16] = 16
    assert list(state) == [*range(2, 17)] and len(state) == 15
    for key in range(17, 1000):
        state[key] = key
        assert len(state) <= 16
    assert 999 in state and 998 in state and 0 not in state


def test_bounded_dict_pickles_with_its_limit_and_order() -> None:
    """A BoundedDict unpickled keeps its limit and entries (unpickling sets a dict subclass's items
    before its attributes: the limit must come first)."""
    table = BoundedDict(4)
    for key in ("a", "b", "c"):
        table[key] = key.upper()
    again = pickle.loads(pickle.dumps(table))
    assert type(again) is BoundedDict and again.limit == 4 and list(again.items()) == list(table.items())
    for key in ("d", "e"):
        again[key] = key
    assert len(again) <= 4 and "e" in again
