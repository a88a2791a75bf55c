"""The SIEM outputs of ``replay`` and ``live``: Elasticsearch and CEF over syslog, opened and closed.

Each output takes alerts, asset changes, flows, anomalies (and what else its kinds select) while
the run goes on, then every asset once the run is over, so it cannot be closed by the pipeline
with the other sinks: ``SiemOutput`` ignores ``close`` and is closed by ``close_now`` after the assets,
which reports in one line what was delivered and what was kept (the Elasticsearch spool) or lost.
An output that fails to write (a full disk under a ``jsonl:`` file) stops taking records, says so
once, and the run goes on: the store and the state directory's files lose nothing; the command
ends with an error naming the output and how many records it missed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ics_monitor.core.errors import ConfigError, IcsMonitorError
from ics_monitor.inventory.assets import Asset
from ics_monitor.sinks.base import wants_protocol_events
from ics_monitor.sinks.cef import CefSyslogSink
from ics_monitor.sinks.elasticsearch import ElasticsearchSettings, ElasticsearchSink
from ics_monitor.sinks.logs import AppendLog


@dataclass
class OutputTargets:
    """What ``--out`` asked for: Elasticsearch (and its URLs), CEF targets, JSON-lines files."""

    es: bool = False
    es_urls: list[str] = field(default_factory=list)
    cef: list[str] = field(default_factory=list)
    jsonl: list[Path] = field(default_factory=list)
    # Filled by the command from ``es``/``es_urls`` and its other settings (``run_settings``).
    es_settings: ElasticsearchSettings | None = None


def parse_outputs(texts: Iterable[str], cef: Iterable[str] = ()) -> OutputTargets:
    """``--out`` values: ``es``, ``es:URL``, ``cef:udp|tcp|tls://host:port[?...]``, ``jsonl:FILE``.

    ``cef``: targets given with ``--cef``, the same as ``--out cef:...``.
    """
    targets = OutputTargets(cef=list(cef))
    for text in texts:
        kind, _, rest = text.partition(":")
        if kind == "es":
            targets.es = True
            if rest:
                targets.es_urls.append(rest)
        elif kind == "cef" and rest:
            targets.cef.append(text)
        elif kind == "jsonl" and rest:
            targets.jsonl.append(Path(rest))
        else:
            raise ConfigError(
                f"--out {text!r}: expected es, es:URL, cef:udp|tcp|tls://host:port or jsonl:FILE"
            )
    return targets


class OutputError(IcsMonitorError):
    """An output failed during the run (reported after everything else was kept)."""


class SiemOutput:
    """A sink the pipeline may close as often as it likes: only ``close_now`` closes it.

    ``failure``: why it stopped writing (None while it works); ``missed``: records it did not take
    since.
    """

    def __init__(self, sink: ElasticsearchSink | CefSyslogSink | AppendLog) -> None:
        self.sink = sink
        self.failure: str | None = None
        self.missed = 0

    def _failed(self, exc: OSError) -> None:
        if self.failure is None:
            self.failure = exc.strerror or str(exc)
            sys.stderr.write(
                f"ics-monitor: {self.name}: write failed ({self.failure}); the run goes on without it\n"
            )

    @property
    def name(self) -> str:
        """How the output was given (``jsonl:FILE``, the CEF target, ``es``)."""
        sink = self.sink
        if isinstance(sink, AppendLog):
            return f"jsonl:{sink.path}"
        if isinstance(sink, ElasticsearchSink):
            return "es"
        target = sink.target
        return f"cef {target.transport}://{target.host}:{target.port}"

    @property
    def protocol_events(self) -> bool:
        """Whether the sink takes protocol events (``Sink``): a JSON-lines file takes everything."""
        return wants_protocol_events(self.sink)

    def emit(self, record: Any) -> None:
        """Forward a record (the sink keeps the kinds it is configured for)."""
        if self.failure is not None:
            self.missed += 1
            return
        try:
            self.sink.emit(record)
        except OSError as exc:
            self._failed(exc)
            self.missed += 1

    def flush(self) -> None:
        """Forward a flush (live runs flush every second)."""
        flush = getattr(self.sink, "flush", None)
        if flush is not None and self.failure is None:
            try:
                flush()
            except OSError as exc:
                self._failed(exc)

    def status(self) -> dict[str, Any]:
        """The sink's delivery counters, for health records."""
        sink = self.sink
        if isinstance(sink, ElasticsearchSink):
            return sink.status()
        if isinstance(sink, AppendLog):
            return {"path": str(sink.path)}
        return {"sent": sum(sink.sent.values()), "dropped": sink.dropped, "send_errors": sink.send_errors}

    def close(self) -> None:
        """Ignored: see ``close_now``."""

    def close_now(self) -> str:
        """Close the sink (drain, or spool what is left); one line saying what was delivered."""
        sink = self.sink
        try:
            sink.close()
        except OSError as exc:
            self._failed(exc)
        if self.failure is not None:
            return f"{self.name}: write failed ({self.failure}); {self.missed:,} later records not written"
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
        if isinstance(sink, AppendLog):
            return f"jsonl: appended to {sink.path}"
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


def _jsonable(record: Any) -> Any:
    """Records as they are (dataclasses serialise themselves); an asset as its ``to_dict``."""
    return record.to_dict() if isinstance(record, Asset) else record


def open_outputs(targets: OutputTargets, state: Path) -> list[SiemOutput]:
    """Open the configured outputs (a bad target or setting raises ``ConfigError``, nothing opened).

    A ``jsonl:FILE`` output is appended to (never truncated): every record of the run, one JSON
    object per line, assets at the end, for a SIEM that tails files.
    """
    outputs = [SiemOutput(CefSyslogSink(target)) for target in targets.cef]
    for path in targets.jsonl:
        try:
            outputs.append(SiemOutput(AppendLog(path, convert=_jsonable)))
        except OSError as exc:
            for output in outputs:
                output.close_now()
            raise ConfigError(f"--out jsonl:{path}: cannot open: {exc.strerror or exc}") from None
    if targets.es_settings is not None:
        try:
            outputs.append(SiemOutput(ElasticsearchSink(targets.es_settings, state)))
        except BaseException:
            for output in outputs:
                output.close_now()
            raise
    return outputs
