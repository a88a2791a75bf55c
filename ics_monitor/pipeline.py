"""The whole flow, end to end, in one place.

    frames ─▶ Decoder ─▶ FlowTable (+TCP reassembly) ─▶ DissectEngine ─▶ events ─▶ sinks
                 └─ anomalies ─────────┴─ flow records, anomalies ─────────────────▶ sinks
                                                                       │
          (replay: Analysis)  events, ARP, flow records ─▶ Inventory ─▶ asset changes ─┐
                                                     ├──▶ DetectionEngine ◀────────────┘ ─▶ alerts ─▶ alert sinks
                                                     └──▶ BaselineLearner (while learning)

The pipeline owns the bridge between the flow table and the dissectors (``FlowHandler``), drains
what every stage produced after each frame, and finishes cleanly whatever happens to the input: a
damaged capture still has every record before the damage processed and written.  Analysis is
optional: without it (``dissect``, ``flows``, ``summary``) the per-frame cost is one comparison.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from ics_monitor.config import Config
from ics_monitor.core.addresses import format_ip, format_mac
from ics_monitor.core.anomalies import severity_name
from ics_monitor.core.errors import ConfigError, IcsMonitorError
from ics_monitor.core.packet import IPPROTO_TCP, IPPROTO_UDP, Packet
from ics_monitor.decode import Decoder
from ics_monitor.decode.decoder import BACK_SECONDS, GAP_SECONDS, CaptureClock
from ics_monitor.dissect import DissectEngine, FlowDissection, ParseContext, Registry
from ics_monitor.events import AnomalyEvent, ArpEvent
from ics_monitor.events.base import failure_anomaly
from ics_monitor.events.flow import FlowRecord
from ics_monitor.flows import Flow, FlowTable
from ics_monitor.inventory.assets import ASSET_LIMIT, AssetChange, Inventory
from ics_monitor.sinks import Sink
from ics_monitor.sinks.base import wants_protocol_events

ANALYSIS_ERROR: Final = "internal.analysis_error"

Frame = tuple[float, int, bytes, int]
Progress = Callable[[int, int], None]

_ARP_OPERATIONS: Final = {1: "request", 2: "reply"}
_PROGRESS_EVERY: Final = 1 << 14


@dataclass
class RunStats:
    """What a run saw; printed by the CLI, checked by tests and the benchmark."""

    frames: int = 0
    bytes: int = 0
    ip_packets: int = 0
    arp_packets: int = 0
    other_frames: int = 0
    flows: int = 0
    events: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)
    protocols: Counter[str] = field(default_factory=Counter)
    first_ts: float | None = None
    last_ts: float | None = None
    seconds: float = 0.0
    # Capture files that could not be read to the end; failed worker processes (``parallel``).
    errors: list[IcsMonitorError] = field(default_factory=list)
    alerts: int = 0
    alert_records: int = 0
    assets: int = 0
    asset_changes: int = 0
    # Frames the snap length cut inside their headers, so not analysed (``Decoder.cut_headers``).
    cut_headers: int = 0

    @property
    def packets_per_second(self) -> float:
        """Processing rate of this run (wall clock)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


class _DissectBridge:
    """Implements the flow table's ``FlowHandler`` on top of the dissect engine."""

    def __init__(self, engine: DissectEngine | None) -> None:
        self.engine = engine

    def flow_started(self, flow: Flow) -> None:
        # Dissection state is made at the first payload: scans and SYN floods cost no parser state.
        if self.engine is None or flow.proto not in (IPPROTO_TCP, IPPROTO_UDP):
            flow.deliver = False

    def _dissection(self, flow: Flow, engine: DissectEngine) -> FlowDissection | None:
        fd: FlowDissection | None = flow.app
        if fd is None:
            ctx = ParseContext(
                flow.id,
                flow.transport,
                format_ip(flow.client_ip),
                flow.client_port,
                format_ip(flow.server_ip),
                flow.server_port,
            )
            fd = engine.start(ctx, aligned=flow.orientation == "syn")
            if fd is None:
                flow.deliver = False
            flow.app = fd
        return fd

    def payload(self, flow: Flow, direction: int, data: bytes, ts: float, frame: int, cut: int = 0) -> None:
        engine = self.engine
        assert engine is not None
        fd: FlowDissection | None = flow.app
        if fd is None:
            fd = self._dissection(flow, engine)
            if fd is None:
                return
        if not engine.feed(fd, direction, data, ts, frame, cut):
            flow.deliver = False
        if flow.app_protocol is None and fd.confirmed:
            flow.app_protocol = fd.protocol

    def cut_datagram(self, flow: Flow, direction: int, data: bytes, cut: int, ts: float, frame: int) -> None:
        self.payload(flow, direction, data, ts, frame, cut)

    def gap(self, flow: Flow, direction: int, size: int) -> None:
        engine = self.engine
        if engine is not None:
            fd = self._dissection(flow, engine)
            if fd is not None:
                engine.gap(fd, direction, size)

    def flow_ended(self, flow: Flow, reason: str) -> None:
        fd: FlowDissection | None = flow.app
        if fd is not None and self.engine is not None:
            self.engine.end(fd)
            if flow.app_protocol is None and fd.confirmed:
                flow.app_protocol = fd.protocol


class DetectionEngineLike(Protocol):
    """What the pipeline needs of ``detect.engine.DetectionEngine`` (kept structural: no import here)."""

    def observe(self, event: Any, passed: bool = False) -> list[Any]:
        """Alerts for a protocol or anomaly event (``passed``: checked by a worker, ``WorkerCheck``)."""
        ...

    def observe_flow(self, record: FlowRecord) -> list[Any]:
        """Alerts for a flow record."""
        ...

    def observe_changes(self, changes: list[AssetChange]) -> list[Any]:
        """Alerts for inventory changes."""
        ...

    def advance(self, ts: float) -> list[Any]:
        """Alerts due by capture time ``ts`` (silence, throttled summaries)."""
        ...

    def finish(self) -> list[Any]:
        """Alerts still held at the end of input."""
        ...


class BaselineLearnerLike(Protocol):
    """What the pipeline needs of ``inventory.baseline.BaselineLearner``."""

    def observe(self, event: Any) -> Any:
        """Learn from a protocol event."""
        ...

    def observe_flow(self, record: FlowRecord) -> Any:
        """Learn from a flow record."""
        ...

    def learn_late_flow(self, record: FlowRecord, baseline: Any) -> bool:
        """Learn a flow that began in the learning window into ``baseline``; True when it grew."""
        ...

    def baseline(self) -> Any:
        """The baseline learned so far."""
        ...


class Analysis:
    """Inventory, detection and baseline learning over what a run produces.

    Per record: the inventory first (its changes go to the detection engine and the change sinks),
    then the detection engine, then the learner (protocol events and flow records only).  Alerts go
    to ``alert_sinks`` at the next tick (``drain``): an alert raised and updated within one (a
    command alert, then the device's answer) goes out once, as its last record.  ``learn_for``
    seconds of capture time (with a ``learner`` and an ``enforce`` factory): learn from the first
    frame until then, hand the baseline to ``on_baseline``, and from then on detect with
    ``enforce(baseline)``.  ``tick`` is how often (in
    capture seconds) the engine's time-driven checks run.  A record the inventory, the learner or
    a detector fails on is lost to that part alone, and reported as an anomaly (``_contain``).
    """

    def __init__(
        self,
        inventory: Inventory,
        *,
        engine: DetectionEngineLike | None = None,
        learner: BaselineLearnerLike | None = None,
        alert_sinks: Sequence[Sink] = (),
        change_sinks: Sequence[Sink] = (),
        learn_for: float | None = None,
        enforce: Callable[[Any], DetectionEngineLike] | None = None,
        on_baseline: Callable[[Any], None] | None = None,
        tick: float = 1.0,
        strict: bool = False,
    ) -> None:
        if learn_for is not None and (learner is None or enforce is None):
            raise ValueError("learn_for needs a learner and an enforce factory")
        self.inventory = inventory
        self.engine = engine
        self.learner = learner
        self.alert_sinks = list(alert_sinks)
        self.change_sinks = list(change_sinks)
        self.learn_for = learn_for
        self.enforce = enforce
        self.on_baseline = on_baseline
        self.tick = tick
        self.learn_until: float | None = None
        self.switched_at: float | None = None
        # After the switch: the learner and the baseline it made, for the flows that began while
        # learning and whose records come later (``flow``); whether the baseline grew so.
        self._late: BaselineLearnerLike | None = None
        self._late_baseline: Any = None
        self._late_added = False
        self.alert_records = 0
        self.alert_ids: set[str] = set()
        # Alerts raised since the last drain, by id: the latest record of each (``_alerts``).
        self._pending: dict[str, Any] = {}
        self.changes = 0
        self.anomalies: list[AnomalyEvent] = []
        self.strict = strict
        self.failures: Counter[str] = Counter()
        # What shard workers load to check read values where they dissect (baseline path, rules
        # directory, their digest; ``build_analysis``), and the engine whose baseline that is
        # (None when the workers' checks do not count).
        self.checks: WorkerChecks | None = None
        self.checked_engine: DetectionEngineLike | None = None
        self._adopt(engine)
        self._limit_reported = False
        self._last_ts = 0.0

    @property
    def learning(self) -> bool:
        """True while a learner takes input."""
        return self.learner is not None

    def event(self, event: Any, passed: bool = False) -> None:
        """Take a protocol event, an anomaly or an ARP observation.

        ``passed``: a shard worker found nothing in the record that deviates from the baseline in
        ``checks`` (``deviation.WorkerCheck``); it counts only while the engine enforcing
        that baseline is the one built with it (``checked_engine``), not after a switch or a reload.
        """
        inventory = self.inventory
        try:
            changes = inventory.observe(event)
        except Exception as exc:
            changes = self._contain("inventory", exc, event)
        engine = self.engine
        if changes:
            self._changes(changes)
        if inventory.limit_reached and not self._limit_reported:
            self._report_limit(event.ts, event.frame)
        if event.event_type == "arp":
            if self.learner is not None:
                try:
                    self.learner.observe(event)
                except Exception as exc:
                    self._contain("baseline learner", exc, event)
            if engine is not None:
                alerts = engine.observe(event)
                if alerts:
                    self._alerts(alerts)
            return
        if engine is not None:
            if passed and engine is self.checked_engine:
                alerts = engine.observe(event, True)
            else:
                alerts = engine.observe(event)
            if alerts:
                self._alerts(alerts)
        if self.learner is not None and event.event_type != "anomaly":
            try:
                self.learner.observe(event)
            except Exception as exc:
                self._contain("baseline learner", exc, event)

    def flow(self, record: FlowRecord) -> None:
        """Take a flow record."""
        late = self._late
        if late is not None and self.switched_at is not None and record.ts_start < self.switched_at:
            # Began while learning, ended since: learned before it is judged (its assets too,
            # before the inventory's changes are).
            try:
                if late.learn_late_flow(record, self._late_baseline):
                    self._late_added = True
            except Exception as exc:
                self._contain("baseline learner", exc, record)
        try:
            changes = self.inventory.observe_flow(record)
        except Exception as exc:
            changes = self._contain("inventory", exc, record)
        if changes:
            self._changes(changes)
        if self.inventory.limit_reached and not self._limit_reported:
            self._report_limit(record.ts_end, record.first_frame)
        if self.engine is not None:
            alerts = self.engine.observe_flow(record)
            if alerts:
                self._alerts(alerts)
        if self.learner is not None:
            try:
                self.learner.observe_flow(record)
            except Exception as exc:
                self._contain("baseline learner", exc, record)

    def advance(self, ts: float) -> float:
        """Time passes (capture time): end learning when due, run time checks; return the next tick."""
        if self.learn_until is None and self.learn_for is not None and self.switched_at is None:
            self.learn_until = ts + self.learn_for
        if self.learn_until is not None and ts >= self.learn_until and self.switched_at is None:
            self._switch(ts)
        self._last_ts = ts
        if self.engine is not None:
            alerts = self.engine.advance(ts)
            if alerts:
                self._alerts(alerts)
        if self._pending:
            self.drain()
        return ts + self.tick

    def finish(self) -> None:
        """End of input: the engine's held alerts (and a learning window that never ended)."""
        if self.learn_for is not None and self.switched_at is None and self.learner is not None:
            # The capture was shorter than the learning window: all of it was learned.
            baseline = self.learner.baseline()
            self.learner = None
            if self.on_baseline is not None:
                self.on_baseline(baseline)
        if self._late_added and self.on_baseline is not None:
            # Flows that began while learning were learned since: the saved baseline has them too.
            self.on_baseline(self._late_baseline)
            self._late_added = False
        if self.engine is not None:
            alerts = self.engine.finish()
            if alerts:
                self._alerts(alerts)
        self.drain()

    def close(self) -> None:
        """Hand over the held alerts, then close the alert and change sinks."""
        try:
            self.drain()
        finally:
            for sink in (*self.alert_sinks, *self.change_sinks):
                sink.close()

    def reconfigure(self, make_engine: Callable[[Any], DetectionEngineLike]) -> None:
        """Detect from now on with ``make_engine(baseline)`` (new rules or zones, e.g. on SIGHUP).

        The baseline in force stays (none while learning; a learning window still ends by building
        its engine with ``make_engine``).  The old engine's held alerts (throttled updates) come
        out first, so a reload loses nothing; the new engine's throttling starts afresh.  The new
        engine is built first: when that fails, the engine in force stays untouched.
        """
        engine = self.engine
        baseline = getattr(engine, "baseline", None) if engine is not None else None
        replacement = make_engine(baseline)
        if engine is not None:
            alerts = engine.finish()
            if alerts:
                self._alerts(alerts)
        self.engine = self._adopt(replacement)
        if self.enforce is not None:
            self.enforce = make_engine

    def _switch(self, ts: float) -> None:
        """The learning window is over: build the baseline and enforce it from now on."""
        assert self.learner is not None and self.enforce is not None
        baseline = self.learner.baseline()
        self._late = self.learner
        self._late_baseline = baseline
        self.learner = None
        self.switched_at = ts
        if self.on_baseline is not None:
            self.on_baseline(baseline)
        if self.engine is not None:
            alerts = self.engine.finish()
            if alerts:
                self._alerts(alerts)
        self.engine = self._adopt(self.enforce(baseline))

    def _adopt(self, engine: DetectionEngineLike | None) -> DetectionEngineLike | None:
        """Have ``engine`` report its detectors' failures (anomalies) with ours, drained as events."""
        if engine is not None and isinstance(getattr(engine, "anomalies", None), list):
            engine.anomalies = self.anomalies  # type: ignore[attr-defined]
        return engine

    def _changes(self, changes: list[AssetChange]) -> None:
        self.changes += len(changes)
        for sink in self.change_sinks:
            for change in changes:
                sink.emit(change)
        if self.engine is not None:
            alerts = self.engine.observe_changes(changes)
            if alerts:
                self._alerts(alerts)

    def _contain(self, part: str, exc: Exception, record: Any) -> list[AssetChange]:
        """The inventory or the learner raised on ``record``: it loses the record, not the run.

        The first failure of each part becomes an ``internal.analysis_error`` anomaly (drained as
        events); all are counted in ``failures``.  ``strict`` re-raises instead (tests).
        """
        if self.strict:
            raise exc
        self.failures[part] += 1
        if self.failures[part] == 1:
            kind = getattr(record, "event_type", None) or type(record).__name__
            self.anomalies.append(
                failure_anomaly(
                    ANALYSIS_ERROR,
                    severity_name(ANALYSIS_ERROR),
                    f"{part}: {type(exc).__name__}: {exc} on a {kind} record; it skips the records it "
                    "fails on (later failures are counted, not reported)",
                    record,
                    self._last_ts,
                )
            )
        return []

    def _report_limit(self, ts: float, frame: int) -> None:
        """The inventory hit its asset cap: say so once, as an anomaly (the pipeline drains it)."""
        self._limit_reported = True
        self.anomalies.append(
            AnomalyEvent(
                ts=ts,
                frame=frame,
                code=ASSET_LIMIT,
                severity=severity_name(ASSET_LIMIT),
                detail=f"{len(self.inventory)} assets kept; devices seen from now on are not",
            )
        )

    def _alerts(self, alerts: list[Any]) -> None:
        # Held until the tick: a later record of the same alert (the device's answer to the
        # command it was raised on, a throttle update) replaces the earlier one in its place, so
        # the sinks convert, store and send it once.
        pending = self._pending
        for alert in alerts:
            pending[alert.alert_id] = alert
        if len(pending) >= _MAX_PENDING:
            self.drain()

    def drain(self) -> None:
        """Hand the alerts raised since the last drain to the alert sinks, each as its latest record.

        Runs at every tick (``advance``), at the end (``finish``, ``close``) and when
        ``_MAX_PENDING`` alerts wait; a caller about to read the sinks (a flush) drains first.  A
        sink that raises loses nothing: what it did not take stays held for the next drain.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        alerts = list(pending.values())
        ids = self.alert_ids
        sinks = self.alert_sinks
        delivered = 0
        try:
            for alert in alerts:
                if len(ids) < _MAX_ALERT_IDS:
                    ids.add(alert.alert_id)
                for sink in sinks:
                    sink.emit(alert)
                delivered += 1
        finally:
            self.alert_records += delivered
            if delivered < len(alerts):
                # A sink raised (or Ctrl-C came): the alert it failed on and those after it stay
                # held, ahead of any raised since, for the next drain (``close`` at the latest).
                held = {alert.alert_id: alert for alert in alerts[delivered:]}
                held.update(self._pending)
                self._pending = held


# Alerts held between two ticks at most (``Analysis._alerts``): a storm goes out in batches.
_MAX_PENDING: Final = 1024

# Distinct alert ids counted for the run's figures (a flood of distinct keys stops being counted).
_MAX_ALERT_IDS: Final = 1_000_000


class Pipeline:
    """One run over one frame source.

    ``dissect``: None for no application parsing at all; ``"detect"`` to label flows with their
    protocol but emit no protocol events (fast); ``"full"`` to emit every PDU's record.
    """

    def __init__(
        self,
        config: Config,
        registry: Registry,
        *,
        dissect: str | None = "full",
        event_sinks: Sequence[Sink] = (),
        flow_sinks: Sequence[Sink] = (),
        emit_arp: bool = False,
        progress: Progress | None = None,
        analysis: Analysis | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.dissect = dissect
        self.decoder = Decoder(config.decode.fragment_timeout, config.decode.max_fragment_datagrams)
        # The capture's clock as frames are read (steps back, gaps): reported by the reading loops.
        self.clock = CaptureClock()
        self.engine = (
            DissectEngine(
                registry,
                strict=config.dissect.strict,
                emit=dissect == "full",
                detect_limit=config.dissect.detect_limit,
            )
            if dissect
            else None
        )
        self.table = FlowTable(config.flows, _DissectBridge(self.engine))
        self.event_sinks = list(event_sinks)
        # The event sinks that take protocol events too (the others get anomalies only): an output
        # kept for alerts, flows and anomalies is not called once per PDU to skip it.
        self.protocol_sinks = [sink for sink in self.event_sinks if wants_protocol_events(sink)]
        self.flow_sinks = list(flow_sinks)
        self.emit_arp = emit_arp
        self.progress = progress
        self.analysis = analysis
        self.stats = RunStats()

    def run(self, frames: Iterable[Frame], position: Callable[[], int] | None = None) -> RunStats:
        """Process every frame, then flush all state into the sinks and close them."""
        stats = self.stats
        decoder = self.decoder
        table = self.table
        decoder_anomalies = self.decoder.anomalies
        table_records = table.records
        table_anomalies = table.anomalies
        engine_events = self.engine.events if self.engine is not None else []
        progress = self.progress
        analysis = self.analysis
        # Without analysis the tick never comes: one float comparison per frame.
        next_tick = -math.inf if analysis is not None else math.inf
        started = time.perf_counter()
        frame_no = 0
        total_bytes = 0
        ip_packets = 0
        first_ts: float | None = None
        ts = 0.0
        clock = self.clock
        clock_anomalies = clock.anomalies
        latest = 0.0  # the capture clock: the latest time read so far
        behind = False  # in a step back of the clock, not caught up yet
        try:
            for ts, link_type, data, wire_len in frames:
                frame_no += 1
                # The capture clock (``CaptureClock``; as ``shard.run_shard``): 0.0 is no time at all
                # (a pcapng SPB), neither a clock to step from nor a step back.
                if ts > latest:
                    if ts - latest >= GAP_SECONDS and latest > 0.0:
                        clock.gap(frame_no, ts, latest)
                    latest = ts
                    behind = False
                elif ts < latest - BACK_SECONDS and ts > 0.0 and not behind:
                    behind = True
                    clock.back(frame_no, ts, latest)
                if ts >= next_tick:
                    # Time passes before this frame's records: a learning window ends first.
                    assert analysis is not None
                    next_tick = analysis.advance(ts)
                    if analysis.anomalies:
                        self._drain_events(analysis.anomalies)
                total_bytes += wire_len
                pkt = decoder.decode(frame_no, ts, link_type, data, wire_len)
                if pkt is not None:
                    if pkt.ip_version:
                        ip_packets += 1
                        table.process(pkt)
                    elif pkt.arp is not None:
                        self._arp(pkt)
                if clock_anomalies:  # the capture's clock, then the decoder's: the frame's first records
                    self._drain_events(clock_anomalies)
                if decoder_anomalies:
                    self._drain_events(decoder_anomalies)
                if engine_events:
                    self._drain_events(engine_events)
                if table_anomalies:
                    self._drain_events(table_anomalies)
                if table_records:
                    self._drain_flows(table_records)
                if first_ts is None:
                    first_ts = ts
                if progress is not None and not frame_no % _PROGRESS_EVERY:
                    progress(position() if position else 0, frame_no)
        finally:
            stats.frames = frame_no
            stats.bytes = total_bytes
            stats.ip_packets = ip_packets
            stats.cut_headers = self.decoder.cut_headers
            stats.first_ts = first_ts
            stats.last_ts = ts if frame_no else None
            self._finish()
            stats.seconds = time.perf_counter() - started
            if progress is not None:
                progress(position() if position else 0, frame_no)
        return stats

    def _finish(self) -> None:
        """End of input: complete fragments, flows, dissectors and analysis, then close the sinks."""
        analysis = self.analysis
        try:
            self.decoder.flush()
            self.table.flush()
            self._drain_events(self.decoder.anomalies)
            if self.engine is not None:
                self._drain_events(self.engine.events)
            self._drain_events(self.table.anomalies)
            self._drain_flows(self.table.records)
            if analysis is not None:
                analysis.finish()
                self._drain_events(analysis.anomalies)
        finally:
            self._close()

    def finish_merged(self) -> None:
        """End of a sharded run (``parallel``): the workers flushed their state; finish and close."""
        analysis = self.analysis
        try:
            if analysis is not None:
                analysis.finish()
                self._drain_events(analysis.anomalies)
        finally:
            self._close()

    def _close(self) -> None:
        """Close the sinks and the analysis; take the analysis figures."""
        analysis = self.analysis
        try:
            if analysis is not None:
                # The alerts still held, before any sink closes (a sink may take events and alerts).
                analysis.drain()
        finally:
            try:
                for sink in (*self.event_sinks, *self.flow_sinks):
                    sink.close()
            finally:
                if analysis is not None:
                    try:
                        analysis.close()
                    finally:
                        stats = self.stats
                        stats.alerts = len(analysis.alert_ids)
                        stats.alert_records = analysis.alert_records
                        stats.assets = len(analysis.inventory)
                        stats.asset_changes = analysis.changes

    def _arp(self, pkt: Packet) -> None:
        self.stats.arp_packets += 1
        if pkt.arp is None or (not self.emit_arp and self.analysis is None):
            return
        self.deliver_arp(arp_event(pkt))

    # What becomes of one record, here frame by frame and in the merge of ``parallel`` alike.

    def deliver_event(self, event: Any, passed: bool = False) -> None:
        """Count a protocol event or anomaly; hand it to the event sinks, then the analysis.

        ``passed``: see ``Analysis.event``.
        """
        stats = self.stats
        if event.event_type == "anomaly":
            stats.anomalies[event.code] += 1
            sinks = self.event_sinks
        else:
            stats.events += 1
            sinks = self.protocol_sinks
        for sink in sinks:
            sink.emit(event)
        analysis = self.analysis
        if analysis is not None:
            analysis.event(event, passed)

    def deliver_flow(self, record: FlowRecord) -> None:
        """Count a flow record by protocol; hand it to the flow sinks, then the analysis."""
        stats = self.stats
        stats.flows += 1
        stats.protocols[record.app_protocol or record.service or record.transport] += 1
        for sink in self.flow_sinks:
            sink.emit(record)
        analysis = self.analysis
        if analysis is not None:
            analysis.flow(record)

    def deliver_arp(self, event: Any) -> None:
        """An ARP observation: to the event sinks when asked for (``emit_arp``), to the analysis."""
        if self.emit_arp:
            for sink in self.protocol_sinks:
                sink.emit(event)
        analysis = self.analysis
        if analysis is not None:
            analysis.event(event)

    def _drain_events(self, events: list[Any]) -> None:
        deliver = self.deliver_event
        for event in events:
            deliver(event)
        events.clear()
        analysis = self.analysis
        if analysis is not None and analysis.anomalies and events is not analysis.anomalies:
            self._drain_events(analysis.anomalies)

    def _drain_flows(self, records: list[FlowRecord]) -> None:
        deliver = self.deliver_flow
        for record in records:
            deliver(record)
        records.clear()
        analysis = self.analysis
        if analysis is not None and analysis.anomalies:
            self._drain_events(analysis.anomalies)


def arp_event(pkt: Packet) -> ArpEvent:
    """The ARP observation record of a decoded ARP packet (``pkt.arp`` set)."""
    arp = pkt.arp
    assert arp is not None
    return ArpEvent(
        ts=pkt.ts,
        frame=pkt.frame,
        operation=arp.operation,
        operation_name=_ARP_OPERATIONS.get(arp.operation, "UNKNOWN"),
        sender_mac=format_mac(arp.sender_mac) or "",
        sender_ip=format_ip(arp.sender_ip),
        target_mac=format_mac(arp.target_mac) or "",
        target_ip=format_ip(arp.target_ip),
        vlan=pkt.vlan,
    )


LEARN: Final = "learn"
LEARN_THEN_ENFORCE: Final = "learn_then_enforce"
ENFORCE: Final = "enforce"
DETECT: Final = "detect"


def build_analysis(
    config: Config,
    inventory: Inventory,
    *,
    mode: str,
    baseline_path: Any = None,
    rules_dir: Any = None,
    zones_path: Any = None,
    alert_sinks: Sequence[Sink] = (),
    change_sinks: Sequence[Sink] = (),
    on_baseline: Callable[[Any], None] | None = None,
    detection: bool = True,
    worker_checks: WorkerChecks | None = None,
) -> Analysis:
    """Set up inventory, detection and learning for a replay.

    ``mode``: ``learn`` (learn the whole run; always-on detectors only), ``learn_then_enforce``
    (learn for ``config.analysis.learn_for`` capture seconds, then enforce), ``enforce`` (detect
    against the baseline at ``baseline_path``) or ``detect`` (always-on detectors, no baseline).
    ``detection`` False runs no detector at all (``baseline learn``).  ``worker_checks``
    (``worker_checks_of``): the baseline and rules shard workers loaded to check records against
    where they dissect (``Analysis.checks``, ``deviation.WorkerCheck``); their checks count when
    enforcing, and when what this process loads has the same digest.  Rules, zones and baseline
    files that cannot be used raise ``ConfigError`` with one line saying why.
    """
    from ics_monitor.detect.engine import DetectionEngine
    from ics_monitor.detect.rules import RuleSet
    from ics_monitor.detect.zones import Zones
    from ics_monitor.inventory.baseline import Baseline, BaselineLearner

    if mode not in (LEARN, LEARN_THEN_ENFORCE, ENFORCE, DETECT):
        raise ValueError(f"unknown analysis mode {mode!r}")
    rules_before = rules_digest(rules_dir) if worker_checks is not None else None
    rules = _loaded("rules", lambda: RuleSet.load(rules_dir)) if detection else None
    zones = _loaded("zones", lambda: Zones.load(zones_path)) if zones_path is not None else None
    baseline = None
    if mode == ENFORCE:
        baseline = _loaded("baseline", lambda: Baseline.load(baseline_path))

    learner = BaselineLearner() if mode in (LEARN, LEARN_THEN_ENFORCE) else None
    learn_for = config.analysis.learn_for if mode == LEARN_THEN_ENFORCE else None
    engine: DetectionEngineLike | None = None
    enforce: Callable[[Any], DetectionEngineLike] | None = None
    if rules is not None:
        detection_rules = rules
        strict = config.dissect.strict
        engine = DetectionEngine(detection_rules, baseline, zones, strict=strict)

        def enforce(learned: Any) -> DetectionEngineLike:
            return DetectionEngine(detection_rules, learned, zones, strict=strict)

    if mode == LEARN_THEN_ENFORCE and (learn_for is None or enforce is None):
        raise ValueError("learn_then_enforce needs config.analysis.learn_for and detection")
    analysis = Analysis(
        inventory,
        engine=engine,
        learner=learner,
        alert_sinks=alert_sinks,
        change_sinks=change_sinks,
        learn_for=learn_for,
        enforce=enforce if learn_for is not None else None,
        on_baseline=on_baseline,
        tick=config.analysis.tick,
        strict=config.dissect.strict,
    )
    if worker_checks is not None:
        analysis.checks = worker_checks  # what the workers were started with, as WorkerSpec says
        if (
            mode == ENFORCE
            and engine is not None
            and baseline is not None
            and worker_checks[:2] == worker_checks_of(baseline_path, rules_dir, digest="")[:2]
            and loaded_as_digested(worker_checks[2], baseline_path, rules_dir, rules_before, baseline)
        ):
            analysis.checked_engine = engine
    return analysis


# (baseline file, rules directory or None for the shipped rules, digest of both)
WorkerChecks = tuple[str, str | None, str]


def worker_checks_of(baseline_path: Any, rules_dir: Any, digest: str | None = None) -> WorkerChecks:
    """What shard workers load to check read values: baseline file, rules directory, their digest.

    The digest is that of their contents now (``checks_digest``) unless given.
    """
    if digest is None:
        digest = checks_digest(baseline_path, rules_dir)
    return (str(baseline_path), None if rules_dir is None else str(rules_dir), digest)


def checks_digest(baseline_path: Any, rules_dir: Any, baseline_sha256: str | None = None) -> str:
    """sha256 of the baseline file and the rules files (names and bytes); "" when unreadable.

    A worker and the analysis read these files each at its own moment: their checks count only
    when both read what the digest taken before the workers started says (a baseline rewritten
    meanwhile, say by a concurrent ``--learn`` on the same state, turns the workers' checks off).
    ``baseline_sha256``: the baseline's own digest (``Baseline.digest``: of the text it was built
    from) in place of hashing the file again.
    """
    rules = rules_digest(rules_dir)
    if rules is None:
        return ""
    if baseline_sha256 is None:
        try:
            with Path(baseline_path).open("rb") as stream:
                baseline_sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
        except OSError:
            return ""
    return hashlib.sha256(bytes.fromhex(baseline_sha256) + rules).hexdigest()


def loaded_as_digested(
    digest: str, baseline_path: Any, rules_dir: Any, rules_before: bytes | None, baseline: Any
) -> bool:
    """Whether what a process loaded is what ``digest`` (``checks_digest``) says.

    The baseline by the digest of the text it was built from (``Baseline.digest``), the rules by
    theirs taken before loading them (``rules_before``) and again now.
    """
    return (
        bool(baseline.digest)
        and rules_before is not None
        and rules_before == rules_digest(rules_dir)
        and digest == checks_digest(baseline_path, rules_dir, baseline.digest)
    )


def rules_digest(rules_dir: Any) -> bytes | None:
    """The rules files' part of ``checks_digest`` (names and sha256 of each), or None when unreadable."""
    from ics_monitor.detect.rules import RuleError, default_directory

    parts = []
    try:
        directory = default_directory() if rules_dir is None else Path(rules_dir)
        for path in sorted(directory.glob("*.yaml")):
            parts.append(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    except (OSError, RuleError):
        return None
    return b"".join(parts)


def _loaded(what: str, load: Callable[[], Any]) -> Any:
    """Run a loader; turn its file and format errors into configuration errors.

    A file of the right YAML but the wrong shape can trip a loader on a missing key or a wrong
    type: that is the user's file, not a crash, so those become configuration errors too (the
    cause stays chained for ``--debug``).
    """
    try:
        return load()
    except OSError as exc:
        name = getattr(exc, "filename", None) or what
        raise ConfigError(f"{name}: cannot read the {what}: {exc.strerror or exc}") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{what}: {exc}") from exc
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{what}: malformed file ({type(exc).__name__}: {exc})") from exc
