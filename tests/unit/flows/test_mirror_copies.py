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
from scapy.layers.l2 import Dot1Q, Ether
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


def trunked(source: Path, target: Path, after: float = 0.00005) -> Path:
    """Each frame on VLAN 10, then ``after`` seconds later routed onto VLAN 20 (other MACs, TTL - 1),
    as a SPAN of a router-on-a-stick's trunk port carries it."""
    frames = []
    for packet in rdpcap(str(source)):
        if not packet.haslayer(Ether):
            continue
        inner = packet[Ether].payload
        first = Ether(src=packet[Ether].src, dst=packet[Ether].dst) / Dot1Q(vlan=10) / inner.copy()
        routed = inner.copy()
        if IP in routed:
            routed[IP].ttl = max(routed[IP].ttl - 1, 1)
            del routed[IP].chksum
        second = Ether(src="02:00:00:00:00:20", dst="02:00:00:00:00:21") / Dot1Q(vlan=20) / routed
        first.time = packet.time
        second.time = packet.time + after
        frames += [first, second]
    wrpcap(str(target), frames)
    return target


def test_a_trunk_span_carrying_each_packet_on_two_vlans_is_analysed_as_the_single_one(tmp_path: Path) -> None:
    # The demo's attack phase seen on the client's VLAN and again routed onto the server's: the
    # same alerts with the same counts, one flow per connection, the routed copies counted there.
    name = PCAPS / "demo/plant_attack.pcap"
    _, once_alerts = replay(name, tmp_path / "once")
    twice_events, twice_alerts = replay(trunked(name, tmp_path / "trunk.pcap"), tmp_path / "trunk")
    final = {a["alert_id"]: (a["rule_id"], a["count"]) for a in twice_alerts}
    assert sorted(final.values()) == sorted(
        {a["alert_id"]: (a["rule_id"], a["count"]) for a in once_alerts}.values()
    )
    flows = [e for e in twice_events if e["event_type"] == "flow" and e["transport"] == "tcp"]
    assert flows and all(f["vlan"] == [10] for f in flows)
    assert sum(f["mirror_copies_to_server"] + f["mirror_copies_to_client"] for f in flows) > len(flows) * 4
    notes = [e["detail"] for e in twice_events if e.get("code") == "tcp.mirror_copies"]
    assert notes and all("under VLAN 20" in note for note in notes)
    # Overlapping addresses on two VLANs (two plants, the same numbering): the same 5-tuples, but
    # no packet repeats the other's within the copy window: two flows each, both dissected.
    apart, _ = replay(trunked(name, tmp_path / "apart.pcap", after=0.5), tmp_path / "apart")
    vlans = sorted(tuple(f["vlan"]) for f in apart if f["event_type"] == "flow" and f["transport"] == "tcp")
    assert vlans.count((10,)) == vlans.count((20,)) == len(flows)
