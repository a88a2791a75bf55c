"""A SPAN session that mirrors every datagram twice: the analysis sees each once.

Real-stack captures of this repository (Modbus/UDP from pymodbus, DNP3/UDP from opendnp3) with
every frame followed 20 µs later by its copy, as a mirror of both ports of a path delivers them.
Without the copy check, each copied response is an answer to no request (ICS-2003) and every
command alert counts twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import UDP
from scapy.utils import rdpcap, wrpcap

from tests.conftest import PCAPS

CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]


def doubled(source: Path, target: Path) -> Path:
    frames = []
    for packet in rdpcap(str(source)):
        copy = packet.copy()
        copy.time = packet.time + 0.00002
        frames += [packet, copy]
    wrpcap(str(target), frames)
    return target


def replay(capture: Path, state: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    result = subprocess.run(
        [*CLI, "replay", "--state", str(state), str(capture)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in (state / "events.jsonl").read_text().splitlines()]
    alerts_file = state / "alerts.jsonl"
    alerts = (
        [json.loads(line) for line in alerts_file.read_text().splitlines()] if alerts_file.exists() else []
    )
    return events, alerts


def _protocol(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        tuple(v for k, v in e.items() if k not in ("ts", "frame") and not k.endswith("_frame"))
        for e in events
        if e["event_type"] in ("modbus", "dnp3")
    ]


@pytest.mark.parametrize("name", ["modbus/pymodbus_udp.pcap", "dnp3/opendnp3_session_udp.pcap"])
def test_a_doubly_mirrored_udp_session_is_analysed_as_the_single_one(tmp_path: Path, name: str) -> None:
    once_events, once_alerts = replay(PCAPS / name, tmp_path / "once")
    twice_events, twice_alerts = replay(doubled(PCAPS / name, tmp_path / "twice.pcap"), tmp_path / "twice")
    assert _protocol(twice_events) == _protocol(once_events) != []
    assert [(a["rule_id"], a["count"]) for a in twice_alerts] == [
        (a["rule_id"], a["count"]) for a in once_alerts
    ]
    datagrams = sum(1 for packet in rdpcap(str(PCAPS / name)) if UDP in packet and len(packet[UDP].payload))
    (copies,) = [e for e in twice_events if e.get("code") == "udp.mirror_copies"]
    assert copies["detail"].startswith(f"{datagrams} datagrams repeated")
    assert not [e for e in once_events if e.get("code") == "udp.mirror_copies"]
