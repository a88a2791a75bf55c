"""Operations of a long live run: health records, periodic flushing, a wall-clock tick, rule reloads.

``LiveOperations`` hooks into a ``LiveSource`` (its ``on_tick``), which calls it between two
frames, at most every half second, so everything here runs while the pipeline is between frames
and its state is consistent:

* every ``flush_every`` seconds (wall clock) every sink is flushed: JSON-lines buffers reach the
  file, the SQLite store commits (and a sink with a delivery queue pushes it), so alerts reach a
  SIEM within seconds, not at exit;
* when the link is quiet, capture time is moved to the wall clock: the flow table expires idle
  flows, the detection engine runs its time checks and releases held (throttled) alerts, and a
  ``--learn-for`` window ends on time even if no frame comes;
* every ``stats_interval`` seconds, and once at exit, a ``health`` record (kernel packets and
  drops per interface, internal counters, memory) goes to the event sinks;
* a reload request (SIGHUP: ``reload_on_sighup``) rebuilds detection from the rules and zones
  files; a file that does not load leaves the ones in force and is reported in one line.

It must not capture, decode or print: it reports through the ``say`` callback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from ics_monitor.capture.live import LiveSource
from ics_monitor.core.errors import ConfigError
from ics_monitor.pipeline import Analysis, DetectionEngineLike, Pipeline

HEALTH = "health"
DEFAULT_STATS_INTERVAL = 60.0
FLUSH_SECONDS = 1.0  # the longest an alert waits in a buffer before a SIEM can see it

EngineFactory = Callable[[Any], DetectionEngineLike]


def resident_bytes() -> int | None:
    """The process's resident set size now (not the peak ``getrusage`` gives); None off Linux."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def detection_loader(rules_dir: Path | None, zones_path: Path | None) -> Callable[[], EngineFactory]:
    """A loader that reads the rules (and zones) files now and returns an engine factory.

    Files that cannot be used raise ``ConfigError`` with one line saying why.
    """

    def load() -> EngineFactory:
        import yaml

        from ics_monitor.detect.engine import DetectionEngine
        from ics_monitor.detect.rules import RuleSet
        from ics_monitor.detect.zones import Zones

        try:
            rules = RuleSet.load(rules_dir)
            zones = Zones.load(zones_path) if zones_path is not None else None
        except OSError as exc:
            raise ConfigError(f"{getattr(exc, 'filename', None) or 'rules'}: {exc.strerror or exc}") from exc
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(str(exc)) from exc
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"malformed file ({type(exc).__name__}: {exc})") from exc

        def make_engine(baseline: Any) -> DetectionEngineLike:
            return DetectionEngine(rules, baseline, zones)

        return make_engine

    return load


class LiveOperations:
    """Housekeeping of one live run over ``pipeline`` fed by ``source``; installs itself as its ``on_tick``."""

    def __init__(
        self,
        pipeline: Pipeline,
        source: LiveSource,
        *,
        stats_interval: float | None = DEFAULT_STATS_INTERVAL,
        flush_every: float = FLUSH_SECONDS,
        reload: Callable[[], EngineFactory] | None = None,
        say: Callable[[str], None] = lambda line: None,
    ) -> None:
        if stats_interval is not None and stats_interval <= 0:
            raise ConfigError("the statistics interval must be more than zero")
        self.pipeline = pipeline
        self.source = source
        self.stats_interval = stats_interval
        self.flush_every = flush_every
        self.reload = reload
        self.say = say
        self.started = time.time()
        self.health_records = 0
        self.reloads = 0
        self.reload_failures = 0
        self.last_health: dict[str, Any] | None = None
        self._reload_requested = False
        now = time.monotonic()
        self._next_flush = now + flush_every
        self._next_health = now + stats_interval if stats_interval is not None else None
        source.on_tick = self.tick

    # -- the hook ------------------------------------------------------------------------------

    def tick(self, now: float, quiet: bool) -> None:
        """Called by the source between frames: ``now`` is wall-clock time, ``quiet`` an empty poll."""
        if self._reload_requested:
            self._reload_requested = False
            self.reload_detection()
        if quiet:
            self.advance_clock(now)
        monotonic = time.monotonic()
        if self._next_health is not None and monotonic >= self._next_health:
            assert self.stats_interval is not None
            self._next_health = monotonic + self.stats_interval
            analysis = self.pipeline.analysis
            if analysis is not None:
                analysis.drain()  # the record counts the alerts held since the last tick too
            self.emit_health(now)
        if monotonic >= self._next_flush:
            self._next_flush = monotonic + self.flush_every
            self.flush()

    def request_reload(self) -> None:
        """Ask for a reload at the next tick (safe from a signal handler)."""
        self._reload_requested = True

    # -- the work ------------------------------------------------------------------------------

    def advance_clock(self, now: float) -> None:
        """Capture time moves to ``now`` with no frame: flows time out, detection runs its time checks."""
        pipeline = self.pipeline
        table = pipeline.table
        if now > table.now:
            table.now = now
            table.sweep()
        # The same drain order as after a frame: what the flows' ends produced, then the records.
        # (Private on purpose in Pipeline; this is its one other caller, between two frames.)
        if pipeline.decoder.anomalies:
            pipeline._drain_events(pipeline.decoder.anomalies)
        if pipeline.engine is not None and pipeline.engine.events:
            pipeline._drain_events(pipeline.engine.events)
        if table.anomalies:
            pipeline._drain_events(table.anomalies)
        if table.records:
            pipeline._drain_flows(table.records)
        analysis = pipeline.analysis
        if analysis is not None:
            analysis.advance(now)
            if analysis.anomalies:
                pipeline._drain_events(analysis.anomalies)

    def sinks(self) -> list[Any]:
        """Every sink of the run, once each."""
        pipeline = self.pipeline
        found: dict[int, Any] = {}
        analysis = pipeline.analysis
        groups: list[list[Any]] = [pipeline.event_sinks, pipeline.flow_sinks]
        if analysis is not None:
            groups += [analysis.alert_sinks, analysis.change_sinks]
        for group in groups:
            for sink in group:
                found.setdefault(id(sink), sink)
        return list(found.values())

    def flush(self) -> None:
        """Flush every sink that can be flushed (JSON lines to the file, the store's commit)."""
        analysis = self.pipeline.analysis
        if analysis is not None:
            analysis.drain()  # the alerts held since the last tick first
        for sink in self.sinks():
            flush = getattr(sink, "flush", None)
            if flush is not None:
                flush()

    def reload_detection(self) -> bool:
        """Rebuild detection from the rules and zones files; keep the old ones if they do not load."""
        if self.reload is None or self.pipeline.analysis is None:
            return False
        try:
            factory = self.reload()
            # Building the detectors from the new files can still fail on what loading let
            # through: the engine in force stays then too (``Analysis.reconfigure`` builds first).
            self.pipeline.analysis.reconfigure(factory)
        except (ConfigError, ValueError, TypeError, KeyError, AttributeError) as exc:
            self.reload_failures += 1
            self.say(f"reload failed, the rules and zones in force stay: {' '.join(str(exc).split())}")
            return False
        self.reloads += 1
        self.say("reloaded the rules and zones")
        return True

    def health(self, now: float, *, final: bool = False) -> dict[str, Any]:
        """The health record now (JSON-ready): kernel and internal counters, memory."""
        pipeline = self.pipeline
        source = self.source
        stats = pipeline.stats
        analysis: Analysis | None = pipeline.analysis
        interfaces = [{"name": name, **figures} for name, figures in source.statistics().items()]
        sinks = []
        for sink in self.sinks():
            entry: dict[str, Any] = {"sink": type(sink).__name__}
            path = getattr(sink, "path", None)
            if path is not None:
                entry["path"] = str(path)
            for name in ("count", "rotations", "alerts_written", "changes_written"):
                value = getattr(sink, name, None)
                if isinstance(value, int):
                    entry[name] = value
            status = getattr(sink, "status", None)
            if callable(status):
                # A sink with a delivery queue (Elasticsearch: delivered, spool backlog, drops).
                entry["status"] = status()
            sinks.append(entry)
        return {
            "event_type": HEALTH,
            "ts": now,
            "final": final,
            "uptime_seconds": round(now - self.started, 3),
            "interfaces": interfaces,
            "kernel_packets": sum(item["kernel_packets"] for item in interfaces),
            "kernel_drops": sum(item["kernel_drops"] for item in interfaces),
            "frames": source.packets,
            "bytes": source.bytes,
            "events": stats.events,
            "anomalies": sum(stats.anomalies.values()),
            # A source of worker processes (parallel.LiveShards) counts the flows in their tables.
            "flows_active": getattr(source, "flows_active", len(pipeline.table.flows)),
            "flows_ended": stats.flows,
            "flow_evictions": getattr(source, "flow_evictions", pipeline.table.evicted),
            "alerts": len(analysis.alert_ids) if analysis is not None else 0,
            "alert_records": analysis.alert_records if analysis is not None else 0,
            "assets": len(analysis.inventory) if analysis is not None else 0,
            "learning": bool(analysis is not None and analysis.learning),
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
            "rss_bytes": resident_bytes(),
            "sinks": sinks,
        }

    def emit_health(
        self, now: float, *, final: bool = False, sinks: Sequence[Any] | None = None
    ) -> dict[str, Any]:
        """Write a health record to ``sinks`` (default: the run's event sinks); return it."""
        record = self.health(now, final=final)
        for sink in self.pipeline.event_sinks if sinks is None else sinks:
            sink.emit(record)
        self.health_records += 1
        self.last_health = record
        return record


@contextlib.contextmanager
def reload_on_sighup(operations: LiveOperations) -> Iterator[None]:
    """Within the block, SIGHUP asks ``operations`` to reload the rules and zones at its next tick."""

    def handler(signum: int, frame: FrameType | None) -> None:
        operations.request_reload()

    previous = signal.signal(signal.SIGHUP, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
