"""Terminal rendering: the progress bar reports bytes and packet rate; tables show the largest flows."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from ics_monitor.cli.render import ProgressReporter, alert_detail, fmt_time, render_alerts, render_flow_table
from ics_monitor.pipeline import RunStats
from ics_monitor.sinks.console import FlowTableSink
from tests.unit.sinks.test_sinks import flow_record


def test_progress_shows_packets_and_bytes() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with ProgressReporter(console, total=2_000_000) as reporter:
        reporter.update(1_000_000, 16384)
        reporter._progress.refresh()
        text = buffer.getvalue()
    assert "16,384 packets" in text and "1.0/2.0 MB" in text


def test_flow_table_keeps_largest() -> None:
    sink = FlowTableSink(limit=2)
    for size in (10, 500, 20, 300):
        sink.emit(flow_record(bytes_to_server=size, src_port=size))
    assert sorted(r.bytes_to_server for r in sink.rows()) == [300, 500] and sink.total == 4
    buffer = io.StringIO()
    render_flow_table(Console(file=buffer, width=200), sink, RunStats(frames=4, flows=4))
    assert "2 largest of 4" in buffer.getvalue() and ":500" in buffer.getvalue()


def test_alerts_table_tells_alerts_of_one_rule_between_the_same_hosts_apart() -> None:
    """Seven out-of-range values read from one PLC are seven rows: the detail column names the
    point of each; a key that is only the endpoints shows nothing, any other key itself."""

    def alert(key: str, src: str = "10.0.0.11", dst: str | None = "10.0.0.21") -> dict[str, object]:
        return {
            "severity": 1,
            "rule_id": "ICS-5007",
            "title": "Reported value",
            "key": key,
            "src_ip": src,
            "dst_ip": dst,
        }

    assert alert_detail(alert("10.0.0.21>10.0.0.11:modbus:hr:1:3")) == "modbus:hr:1:3"
    assert alert_detail(alert("*>10.0.0.21:modbus:hr:1:10")) == "modbus:hr:1:10"
    assert (
        alert_detail(alert("10.0.0.11>10.0.0.21")) == "" and alert_detail(alert("10.0.0.11", dst=None)) == ""
    )
    assert alert_detail(alert("10.0.0.11>10.0.0.21:1>10")) == "1>10"  # DNP3 link addresses
    assert alert_detail(alert("10.0.0.11<>10.0.0.21")) == ""  # a relayed connection (ICS-7004)
    assert alert_detail(alert("10.0.0.99@1.2")) == "10.0.0.99@1.2"  # an ARP alert's address
    assert alert_detail(alert("fe80::1>fe80::2:dnp3", "fe80::1", "fe80::2")) == "dnp3"
    assert len(alert_detail(alert("10.0.0.11:" + "x" * 80))) == 40
    buffer = io.StringIO()
    render_alerts(
        Console(file=buffer, width=250), [alert(f"10.0.0.21>10.0.0.11:modbus:hr:1:{n}") for n in (2, 3)]
    )
    text = buffer.getvalue()
    assert "detail" in text and "modbus:hr:1:2" in text and "modbus:hr:1:3" in text


def test_alerts_table_shows_the_start_of_each_id_for_extract() -> None:
    alerts = [
        {
            "alert_id": "c4532cbce679658e",
            "severity": 4,
            "rule_id": "ICS-1001",
            "title": "S7 PLC stop command",
        },
        {
            "alert_id": "a05e41cbe3fd590a",
            "severity": 4,
            "rule_id": "ICS-1003",
            "title": "S7 program download",
        },
    ]
    buffer = io.StringIO()
    render_alerts(Console(file=buffer, width=250), alerts)
    text = buffer.getvalue()
    assert "c4532cbc " in text and "a05e41cb " in text and "c4532cbce" not in text
    assert "ics-monitor extract ID" in text


def test_a_time_no_date_holds_is_shown_as_seconds() -> None:
    # A store written before captures past year 9999 were refused still shows its assets.
    assert fmt_time(1_700_000_000.0) == "2023-11-14 22:13:20"
    assert fmt_time(3e11) == "300000000000.000000" and fmt_time(None) == ""


def test_alert_detail_says_what_the_device_answered() -> None:
    def answered(key: str, outcome: dict[str, Any]) -> dict[str, Any]:
        return {"key": key, "src_ip": "10.0.0.66", "dst_ip": "10.0.0.12", "evidence": {"outcome": outcome}}

    assert (
        alert_detail(answered("10.0.0.66>10.0.0.12", {"result": "accepted", "response_frame": 9}))
        == "accepted"
    )
    refused = {"result": "refused", "code": 0xD241, "reason": "PROTECTION_LEVEL_TOO_LOW"}
    assert (
        alert_detail(answered("10.0.0.66>10.0.0.12:1>10", refused))
        == "1>10, refused: PROTECTION_LEVEL_TOO_LOW"
    )
    assert alert_detail({"key": "10.0.0.66>10.0.0.12", "src_ip": "10.0.0.66", "dst_ip": "10.0.0.12"}) == ""
