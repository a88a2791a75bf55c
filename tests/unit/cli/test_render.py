"""Terminal rendering: the progress bar reports bytes and packet rate; tables show the largest flows."""

from __future__ import annotations

import io

from rich.console import Console

from ics_monitor.cli.render import ProgressReporter, render_flow_table
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
