"""Terminal rendering: progress bar, flow table and summary (rich)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ics_monitor.pipeline import RunStats
from ics_monitor.sinks.console import FlowTableSink, SummarySink


class ProgressReporter:
    """A progress bar of bytes read with the packet rate; only used when stderr is a terminal."""

    def __init__(self, console: Console, total: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]reading"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[packets]} packets, {task.fields[rate]} pkt/s"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("read", total=total or None, packets=0, rate="-")
        self._started = 0.0

    def __enter__(self) -> ProgressReporter:
        self._progress.start()
        self._started = self._progress.get_time()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, position: int, frames: int) -> None:
        """Called by the pipeline every few thousand frames."""
        elapsed = self._progress.get_time() - self._started
        rate = f"{frames / elapsed:,.0f}" if elapsed > 0 else "-"
        self._progress.update(self._task, completed=position, packets=f"{frames:,}", rate=rate)


def _fmt_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{count} B"


def render_flow_table(console: Console, sink: FlowTableSink, stats: RunStats) -> None:
    """Print the kept flows as a table."""
    table = Table(title=f"Flows ({len(sink.rows())} largest of {sink.total})", header_style="bold")
    for column in (
        "client",
        "server",
        "proto",
        "service",
        "state",
        "pkts >",
        "pkts <",
        "bytes >",
        "bytes <",
        "duration",
    ):
        table.add_column(column, justify="right" if column.startswith(("pkts", "bytes", "dur")) else "left")
    for record in sink.rows():
        vlan = f" vlan {'/'.join(map(str, record.vlan))}" if record.vlan else ""
        table.add_row(
            f"{record.src_ip}:{record.src_port}{vlan}",
            f"{record.dst_ip}:{record.dst_port}",
            record.transport,
            record.app_protocol or record.service or "",
            record.state or "",
            f"{record.packets_to_server:,}",
            f"{record.packets_to_client:,}",
            _fmt_bytes(record.bytes_to_server),
            _fmt_bytes(record.bytes_to_client),
            f"{record.duration:.1f}s",
        )
    console.print(table)
    console.print(f"{stats.frames:,} frames, {stats.flows:,} flows in {stats.seconds:.2f}s")


def print_summary(console: Console, flows: SummarySink, events: SummarySink, stats: RunStats) -> None:
    """Print the protocol summary, top conversations, PDU functions and anomalies."""
    span = (stats.last_ts or 0) - (stats.first_ts or 0)
    console.print(
        f"[bold]{stats.frames:,}[/] frames ({_fmt_bytes(stats.bytes)}), [bold]{stats.flows:,}[/] flows, "
        f"{stats.events:,} protocol events, {sum(stats.anomalies.values()):,} anomalies; "
        f"capture spans {span:,.1f}s, read in {stats.seconds:.2f}s"
    )
    protocols = Table(title="Protocols", header_style="bold")
    for column in ("protocol", "flows", "packets", "bytes"):
        protocols.add_column(column, justify="left" if column == "protocol" else "right")
    for name, (count, packets, size) in sorted(flows.protocols.items(), key=lambda kv: -kv[1][2]):
        protocols.add_row(name, f"{count:,}", f"{packets:,}", _fmt_bytes(size))
    console.print(protocols)
    talkers = Table(title="Top conversations", header_style="bold")
    for column in ("client", "server", "protocol", "bytes"):
        talkers.add_column(column, justify="right" if column == "bytes" else "left")
    for (client, server, name), size in flows.pairs.most_common(10):
        talkers.add_row(client, server, name, _fmt_bytes(size))
    console.print(talkers)
    if events.events:
        functions = Table(title="Application functions", header_style="bold")
        for column in ("protocol", "function", "PDUs"):
            functions.add_column(column, justify="right" if column == "PDUs" else "left")
        for (event_type, function), count in events.events.most_common(25):
            functions.add_row(event_type, function, f"{count:,}")
        console.print(functions)
    if events.anomalies:
        anomalies = Table(title="Anomalies", header_style="bold")
        for column in ("code", "severity", "count"):
            anomalies.add_column(column, justify="right" if column == "count" else "left")
        for (code, severity), count in events.anomalies.most_common():
            anomalies.add_row(code, severity, f"{count:,}")
        console.print(anomalies)
