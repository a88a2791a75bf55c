"""The demo recorded with a 96-byte snap length, against the baseline learned from the whole normal phase.

A sensor that keeps only the head of each frame still sees the attacker's commands, whose codes sit
in the first bytes of each PDU: the S7 PLC stop and block download, the DNP3 cold restart and
disable-unsolicited, the Modbus unit-id sweep and the out-of-range write.  What it cannot see (the
PI service names of a start and an activation, SZL ids, some read values) gives no alert, and
nothing it sees gives an alert the whole capture does not: the normal phase, cut the same way, gives none.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import PCAPS
from tests.support.sliced import sliced

CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]


def _cli(*args: str) -> None:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _records(state: Path) -> list[dict[str, Any]]:
    path = state / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _alerts(state: Path) -> Counter[str]:
    """Alerts per rule (the log's later copies of an alert, with counts or answers, are one alert)."""
    return Counter(alert["rule_id"] for alert in {a["alert_id"]: a for a in _records(state)}.values())


def test_a_sliced_demo_raises_the_attack_alerts_it_can_see_and_no_other(tmp_path: Path) -> None:
    normal, attack = PCAPS / "demo" / "plant_normal.pcap", PCAPS / "demo" / "plant_attack.pcap"
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    for state in (whole, cut):
        _cli("baseline", "learn", "--state", str(state), str(normal))
    _cli("replay", "--state", str(whole), str(attack))
    _cli("replay", "--state", str(cut), str(sliced(normal, tmp_path / "normal_s96.pcap", 96)))
    assert _alerts(cut) == Counter()
    _cli("replay", "--state", str(cut), str(sliced(attack, tmp_path / "attack_s96.pcap", 96)))
    seen, full = _alerts(cut), _alerts(whole)
    for rule in ("ICS-1001", "ICS-1003", "ICS-1201", "ICS-1206", "ICS-3001", "ICS-5006"):
        assert seen[rule] == full[rule] == 1, rule
    # The PI services (the start, the block activation) lost their names to the snap length: one
    # "program invocation not identified" (two occurrences) where the whole capture names them.
    assert full["ICS-1002"] == full["ICS-1010"] == 1 and not seen["ICS-1002"] and not seen["ICS-1010"]
    assert seen["ICS-1013"] == 1 and not full["ICS-1013"]
    pi = [a for a in _records(cut) if a["rule_id"] == "ICS-1013"][-1]  # the log's last copy
    assert pi["count"] == 2 and pi["evidence"]["truncated"] is True
    assert seen - Counter({"ICS-1013": 1}) <= full
    assert sum(seen.values()) >= 16  # of the whole capture's 19
    # An alert raised by a cut PDU says so; the whole capture's do not.
    stop = next(a for a in _records(cut) if a["rule_id"] == "ICS-1001")
    assert stop["evidence"]["truncated"] is True
    assert not any("truncated" in a["evidence"] for a in _records(whole))
