"""A SPAN session that mirrors every packet twice: the analysis sees each once.

Real-stack captures of this repository (Modbus/UDP from pymodbus, DNP3/UDP from opendnp3, the demo
plant's Modbus, DNP3 and S7 over TCP) with
every frame followed 20 µs later by its copy, as a mirror of both ports of a path delivers them.
Without the copy check, each copied UDP response is an answer to no request (ICS-2003), every
command alert counts twice, and every TCP segment is a retransmission.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
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


def _protocol(
    events: list[dict[str, Any]], kinds: tuple[str, ...] = ("modbus", "dnp3")
) -> list[tuple[Any, ...]]:
    return [
        tuple(v for k, v in e.items() if k not in ("ts", "frame") and not k.endswith("_frame"))
        for e in events
        if e["event_type"] in kinds
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


def test_a_doubly_mirrored_tcp_plant_is_analysed_as_the_single_one(tmp_path: Path) -> None:
    # Modbus, DNP3 and S7 over TCP (the demo's normal phase): each segment seen twice is no
    # retransmission and no second PDU; the flows count the frames as captured, the copies beside.
    name = PCAPS / "demo/plant_normal.pcap"
    once_events, once_alerts = replay(name, tmp_path / "once")
    twice_events, twice_alerts = replay(doubled(name, tmp_path / "twice.pcap"), tmp_path / "twice")
    assert _protocol(twice_events, ("modbus", "dnp3", "s7comm")) == _protocol(
        once_events, ("modbus", "dnp3", "s7comm")
    )
    assert [(a["rule_id"], a["count"]) for a in twice_alerts] == [
        (a["rule_id"], a["count"]) for a in once_alerts
    ]
    once_flows = {
        e["flow_id"]: e for e in once_events if e["event_type"] == "flow" and e["transport"] == "tcp"
    }
    twice_flows = {
        e["flow_id"]: e for e in twice_events if e["event_type"] == "flow" and e["transport"] == "tcp"
    }
    assert twice_flows.keys() == once_flows.keys() and len(once_flows) == 3
    # A segment with neither payload nor IPv4 id (Linux's SYN-ACK) could be a duplicate ACK: it
    # is left counted as a packet sent.
    expected = sum(
        1 for packet in rdpcap(str(name)) if TCP in packet and (packet[IP].id or len(packet[TCP].payload))
    )
    assert (
        sum(f["mirror_copies_to_server"] + f["mirror_copies_to_client"] for f in twice_flows.values())
        == expected
    )
    for flow_id, single in once_flows.items():
        flow = twice_flows[flow_id]
        assert flow["packets_to_server"] == 2 * single["packets_to_server"]
        assert flow["retransmissions"] == single["retransmissions"] == 0
        assert flow["state"] == single["state"]
        assert single["mirror_copies_to_server"] == single["mirror_copies_to_client"] == 0
    codes = [e["code"] for e in twice_events if e["event_type"] == "anomaly"]
    assert codes.count("tcp.mirror_copies") == 3
    assert "tcp.mirror_copies" not in [e.get("code") for e in once_events]
