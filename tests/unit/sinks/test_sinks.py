"""JSON-lines sink: keys equal attribute names, one object per line, nested values as arrays."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ics_monitor.events import AnomalyEvent, FlowRecord
from ics_monitor.sinks import JsonLinesSink, record_to_dict
from ics_monitor.sinks.console import SummarySink


def flow_record(**overrides: Any) -> FlowRecord:
    fields: dict[str, Any] = {
        "flow_id": "0123456789abcdef",
        "community_id": "1:x",
        "ts_start": 1.5,
        "ts_end": 2.5,
        "duration": 1.0,
        "first_frame": 1,
        "transport": "tcp",
        "ip_version": 4,
        "vlan": (10,),
        "src_ip": "192.0.2.1",
        "src_port": 40000,
        "dst_ip": "192.0.2.2",
        "dst_port": 502,
        "src_mac": None,
        "dst_mac": None,
        "orientation": "syn",
        "packets_to_server": 3,
        "packets_to_client": 2,
        "bytes_to_server": 300,
        "bytes_to_client": 200,
        "payload_bytes_to_server": 12,
        "payload_bytes_to_client": 10,
        "tcp_flags_to_server": ("SYN", "ACK"),
        "tcp_flags_to_client": ("SYN", "ACK"),
        "state": "established",
        "end_reason": "end_of_capture",
        "service": "modbus",
        "app_protocol": "modbus",
        "missed_bytes": 0,
        "retransmissions": 0,
    }
    fields.update(overrides)
    return FlowRecord(**fields)


def test_jsonl_keys_are_attribute_names(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(str(path))
    record = flow_record()
    anomaly = AnomalyEvent(ts=1.0, frame=7, code="tcp.reassembly_gap", severity="low", detail="4 bytes")
    sink.emit(record)
    sink.emit(anomaly)
    sink.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and sink.count == 2
    first = json.loads(lines[0])
    assert set(first) == set(FlowRecord.__dataclass_fields__)
    assert first["vlan"] == [10] and first["tcp_flags_to_server"] == ["SYN", "ACK"]
    assert json.loads(lines[1])["code"] == "tcp.reassembly_gap"
    assert record_to_dict(anomaly)["frame"] == 7


def test_summary_counts_protocols_events_and_anomalies() -> None:
    summary = SummarySink()
    summary.emit(flow_record())
    summary.emit(flow_record(app_protocol=None, service=None, transport="udp", bytes_to_server=5))
    summary.emit(AnomalyEvent(ts=1.0, frame=1, code="tcp.reassembly_gap", severity="low", detail=""))
    assert summary.protocols["modbus"] == [1, 5, 500]
    assert summary.protocols["udp"][0] == 1
    assert summary.anomalies[("tcp.reassembly_gap", "low")] == 1
