"""The SIEM outputs of ``replay`` and ``live``: Elasticsearch and CEF over syslog, opened and closed.

Each output takes alerts, asset changes, flows, anomalies (and what else its kinds select) while
the run goes on, then every asset once the run is over, so it cannot be closed by the pipeline
with the other sinks: ``SiemOutput`` ignores ``close`` and is closed by ``close_now`` after the assets,
which reports in one line what was delivered and what was kept (the Elasticsearch spool) or lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ics_monitor.sinks.cef import CefSyslogSink
from ics_monitor.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink


class SiemOutput:
    """A sink the pipeline may close as often as it likes: only ``close_now`` closes it."""

    def __init__(self, sink: ElasticsearchSink | CefSyslogSink) -> None:
        self.sink = sink

    def emit(self, record: Any) -> None:
        """Forward a record (the sink keeps the kinds it is configured for)."""
        self.sink.emit(record)

    def flush(self) -> None:
        """Forward a flush (live runs flush every second)."""
        flush = getattr(self.sink, "flush", None)
        if flush is not None:
            flush()

    def status(self) -> dict[str, Any]:
        """The sink's delivery counters, for health records."""
        sink = self.sink
        if isinstance(sink, ElasticsearchSink):
            return sink.status()
        return {"sent": sum(sink.sent.values()), "dropped": sink.dropped, "send_errors": sink.send_errors}

    def close(self) -> None:
        """Ignored: see ``close_now``."""

    def close_now(self) -> str:
        """Close the sink (drain, or spool what is left); one line saying what was delivered."""
        sink = self.sink
        sink.close()
        if isinstance(sink, ElasticsearchSink):
            report = sink.status()
            line = f"elasticsearch: {sum(sink.stats.delivered.values()):,} documents delivered"
            pending = report.get("spool_pending") or 0
            if pending:
                line += (
                    f", {pending:,} kept in the spool for the next run or `ics-monitor es drain`"
                    f" (last error: {report.get('last_error')})"
                )
            return line
        target = sink.target
        line = (
            f"cef {target.transport}://{target.host}:{target.port}: {sum(sink.sent.values()):,} messages sent"
        )
        if sink.dropped or sink.send_errors:
            line += (
                f", {sink.dropped:,} dropped, {sink.send_errors:,} send errors"
                f" (last error: {sink.last_error})"
            )
        return line


def open_outputs(
    es_settings: ElasticsearchSettings | None, cef_targets: Iterable[str], state: Path
) -> list[SiemOutput]:
    """Open the configured outputs (a bad target or setting raises ``ConfigError``, nothing opened)."""
    targets = list(cef_targets)
    cef = [CefSyslogSink(target) for target in targets]
    outputs = [SiemOutput(sink) for sink in cef]
    if es_settings is not None:
        try:
            outputs.append(SiemOutput(ElasticsearchSink(es_settings, state)))
        except BaseException:
            for output in outputs:
                output.close_now()
            raise
    return outputs
