"""Terminal rendering (rich): progress bar, flow table, summary, assets, alerts and the replay summary."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

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
        if record.tunnel:  # how it reached the sensor: the innermost encapsulation is enough here
            layer = record.tunnel[-1]
            vlan += f" via {layer['type']}" + (f" {layer['id']}" if "id" in layer else "")
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
    if flows.sliced_flows:
        console.print(
            f"[yellow]cut by the capture's snap length:[/] {flows.sliced_flows:,} flows, "
            f"{_fmt_bytes(flows.sliced_bytes)} of payload not kept; {events.truncated:,} protocol records "
            "read from cut PDUs (truncated: true)"
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
    if flows.tunnels:
        # Where the traffic came from when a remote mirror session or an overlay delivered it.
        tunnels = Table(title="Tunnels opened (outermost first)", header_style="bold")
        for column in ("encapsulation", "flows", "packets", "bytes"):
            tunnels.add_column(column, justify="left" if column == "encapsulation" else "right")
        for path, (count, packets, size) in sorted(flows.tunnels.items(), key=lambda kv: -kv[1][2]):
            tunnels.add_row(" / ".join(path), f"{count:,}", f"{packets:,}", _fmt_bytes(size))
        console.print(tunnels)
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


SEVERITY_STYLES = {4: "bold red", 3: "red", 2: "yellow", 1: "cyan"}
SEVERITY_LABELS = {4: "critical", 3: "high", 2: "medium", 1: "low"}


def fmt_time(ts: float | None) -> str:
    """Capture time as UTC text (second resolution)."""
    if ts is None:
        return ""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
    except (ValueError, OverflowError, OSError):  # past what a date can hold (a stored odd time)
        return f"{ts:.6f}"


def _short(items: list[str], keep: int = 4) -> str:
    if len(items) <= keep:
        return ", ".join(items)
    return ", ".join(items[:keep]) + f" +{len(items) - keep}"


def render_assets(console: Console, assets: list[dict[str, Any]], limit: int | None = 30) -> None:
    """Print assets (``Asset.to_dict`` dicts) as a table, most recently seen last."""
    shown = assets if limit is None else assets[:limit]
    title = (
        f"Assets ({len(assets)})" if len(shown) == len(assets) else f"Assets ({len(shown)} of {len(assets)})"
    )
    table = Table(title=title, header_style="bold")
    for column in (
        "ip",
        "mac",
        "vendor",
        "roles",
        "level",
        "product",
        "firmware",
        "services",
        "IT",
        "last seen",
    ):
        table.add_column(column, justify="right" if column == "level" else "left")
    for asset in shown:
        services = [f"{s['port']}/{s['transport']}" for s in asset.get("services") or ()]
        mac = asset.get("mac") or (f"via {asset['gateway_mac']}" if asset.get("gateway_mac") else "")
        level = asset.get("purdue_level")
        table.add_row(
            asset.get("ip") or "",
            mac,
            _maker(asset),
            _short(list(asset.get("roles") or ()), 3),
            "" if level is None else str(level),
            asset.get("product") or "",
            asset.get("firmware") or "",
            _short(services),
            _short(list(asset.get("it_protocols") or ())),
            fmt_time(asset.get("last_seen")),
        )
    console.print(table)


def _maker(asset: dict[str, Any]) -> str:
    identity = asset.get("identity") or {}
    return str(identity.get("vendor_name") or identity.get("manufacturer_name") or asset.get("vendor") or "")


# Hex digits of an alert id shown in tables: enough to tell a run's alerts apart (a clash is
# reported by `extract`, which takes any unique start).
ALERT_ID_SHOWN = 8


def render_alerts(
    console: Console,
    alerts: list[dict[str, Any]],
    limit: int | None = 30,
    counts: Mapping[int, int] | None = None,
) -> None:
    """Print alerts (``alert_to_dict`` dicts, most severe first) as a table, with counts by severity.

    ``counts`` (per severity) when ``alerts`` holds only the first of more (``Store.run_alerts``).
    """
    if counts is None:
        counts = Counter(int(alert["severity"]) for alert in alerts)
    total = sum(counts.values())
    line = ", ".join(
        f"[{SEVERITY_STYLES[level]}]{SEVERITY_LABELS[level]} {counts.get(level, 0)}[/]"
        for level in (4, 3, 2, 1)
    )
    console.print(f"[bold]{total}[/] alerts: {line}")
    if not alerts:
        return
    shown = alerts if limit is None else alerts[:limit]
    title = "Alerts" if len(shown) == total else f"Alerts ({len(shown)} of {total}: see `ics-monitor alerts`)"
    table = Table(title=title, header_style="bold")
    # The start of each id: `ics-monitor extract ID` takes it (a unique start of an id).
    table.caption = "packets of an alert: ics-monitor extract ID"
    columns = (
        "id",
        "severity",
        "rule",
        "title",
        "detail",
        "source",
        "destination",
        "count",
        "first seen",
        "last seen",
    )
    for column in columns:
        table.add_column(column, justify="right" if column == "count" else "left")
    for alert in shown:
        level = int(alert["severity"])
        table.add_row(
            str(alert.get("alert_id") or "")[:ALERT_ID_SHOWN],
            _severity_cell(level, alert.get("severity_name")),
            alert.get("rule_id") or "",
            alert.get("title") or "",
            alert_detail(alert),
            _endpoint(alert.get("src_ip"), alert.get("src_port")),
            _endpoint(alert.get("dst_ip"), alert.get("dst_port")),
            f"{alert.get('count', 1):,}",
            fmt_time(alert.get("ts")),
            fmt_time(alert.get("last_ts")),
        )
    console.print(table)


def alert_detail(alert: Mapping[str, Any], width: int = 40) -> str:
    """What tells one alert of a rule from another between the same hosts.

    Its dedup key without the endpoints it starts with (``modbus:hr:1:3`` of
    ``10.0.0.21>10.0.0.11:modbus:hr:1:3``, a learned point; ``modbus:tcp/502`` of a new
    conversation), empty when the key is only those, and the key itself when it names something
    else (the address an ARP alert is about); then the device's answer to a command, once known
    (``accepted``, ``refused: PROTECTION_LEVEL_TOO_LOW``).
    """
    key = str(alert.get("key") or "")
    ends = [str(end) for end in (alert.get("src_ip"), alert.get("dst_ip")) if end] + ["*"]
    pairs = {f"{a}{arrow}{b}" for a in ends for b in ends for arrow in (">", "<>")}
    prefixes = sorted(pairs | set(ends), key=len, reverse=True)
    detail = key
    for prefix in prefixes:
        if key == prefix:
            detail = ""
            break
        if key.startswith(prefix + ":"):
            detail = key[len(prefix) + 1 :]
            break
    evidence = alert.get("evidence")
    outcome = evidence.get("outcome") if isinstance(evidence, Mapping) else None
    if isinstance(outcome, Mapping) and outcome.get("result"):
        reason = outcome.get("reason")
        said = str(outcome["result"]) if reason is None else f"{outcome['result']}: {reason}"
        detail = f"{detail}, {said}" if detail else said
    return detail if len(detail) <= width else detail[: width - 1] + "…"


def render_alert_rules(console: Console, rules: list[dict[str, Any]]) -> None:
    """Print stored alerts per rule (``Store.alert_rules``): a storm of one rule on one row."""
    alerts = sum(int(rule["alerts"]) for rule in rules)
    console.print(f"[bold]{alerts:,}[/] alerts of [bold]{len(rules)}[/] rules")
    if not rules:
        return
    table = Table(title="Alerts by rule", header_style="bold")
    for column in ("severity", "rule", "title", "alerts", "occurrences", "sources", "destinations"):
        table.add_column(column, justify="right" if column in ("alerts", "occurrences") else "left")
    table.add_column("first seen")
    table.add_column("last seen")
    for rule in rules:
        level = int(rule["severity"])
        table.add_row(
            _severity_cell(level, rule.get("severity_name")),
            rule["rule_id"],
            rule.get("title") or "",
            f"{rule['alerts']:,}",
            f"{rule['occurrences']:,}",
            _some(rule["sources"]),
            _some(rule["destinations"]),
            fmt_time(rule.get("ts")),
            fmt_time(rule.get("last_ts")),
        )
    console.print(table)


def _some(addresses: list[str], shown: int = 3) -> str:
    """``a, b, c (+N more)``: a column that stays readable for a rule fired from thousands of hosts."""
    text = ", ".join(addresses[:shown])
    return f"{text} (+{len(addresses) - shown:,} more)" if len(addresses) > shown else text


def _severity_cell(level: int, name: str | None) -> str:
    """A severity coloured by its level, named as stored (or by the level's label)."""
    return f"[{SEVERITY_STYLES.get(level, '')}]{name or SEVERITY_LABELS.get(level, level)}[/]"


def _endpoint(ip: str | None, port: int | None) -> str:
    if not ip:
        return ""
    return f"{ip}:{port}" if port else ip


def print_replay_summary(
    console: Console,
    stats: RunStats,
    *,
    mode: str,
    assets: list[dict[str, Any]],
    alerts: list[dict[str, Any]],
    new_alerts: int,
    state: str,
    baseline: str | None,
    limit: int = 30,
    alert_counts: Mapping[int, int] | None = None,
    alert_rules: list[dict[str, Any]] | None = None,
) -> None:
    """What a replay did: figures, the assets table, the alerts table by severity, where it all went.

    ``alert_rules`` (``Store.alert_rules`` of the run's alerts), when given, follows the alerts
    table: a run with more alerts than the table shows still shows every rule that fired.
    """
    span = (stats.last_ts or 0) - (stats.first_ts or 0)
    console.print(
        f"[bold]{stats.frames:,}[/] frames, {stats.flows:,} flows, {stats.events:,} protocol events, "
        f"{sum(stats.anomalies.values()):,} anomalies; capture spans {span:,.1f}s, read in {stats.seconds:.2f}s"
    )
    modes = {
        "learn": "learned a baseline (always-on detectors ran)",
        "learn_then_enforce": "learned a baseline, then enforced it",
        "enforce": "enforced the baseline",
        "detect": "no baseline: only the always-on detectors ran (learn one with --learn)",
    }
    console.print(f"mode: {modes.get(mode, mode)}" + (f" - baseline {baseline}" if baseline else ""))
    render_assets(console, assets, limit)
    render_alerts(console, alerts, limit, alert_counts)
    if alert_rules:
        render_alert_rules(console, alert_rules)
    total = sum(alert_counts.values()) if alert_counts is not None else len(alerts)
    console.print(
        f"{len(assets)} assets ({stats.asset_changes} changes this run), {total} alerts this run "
        f"({new_alerts} new); stored in {state}"
    )
