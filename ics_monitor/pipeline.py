"""The whole flow, end to end, in one place.

    frames ─▶ Decoder ─▶ FlowTable (+TCP reassembly) ─▶ DissectEngine ─▶ events ─▶ sinks
                 └─ anomalies ─────────┴─ flow records, anomalies ─────────────────▶ sinks

The pipeline owns the bridge between the flow table and the dissectors (``FlowHandler``), drains
what every stage produced after each frame, and finishes cleanly whatever happens to the input: a
damaged capture still has every record before the damage processed and written.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ics_monitor.config import Config
from ics_monitor.core.addresses import format_ip, format_mac
from ics_monitor.core.errors import CaptureError
from ics_monitor.core.packet import IPPROTO_TCP, IPPROTO_UDP, Packet
from ics_monitor.decode import Decoder
from ics_monitor.dissect import DissectEngine, FlowDissection, ParseContext, Registry
from ics_monitor.events import ArpEvent
from ics_monitor.events.flow import FlowRecord
from ics_monitor.flows import Flow, FlowTable
from ics_monitor.sinks import Sink

Frame = tuple[float, int, bytes, int]
Progress = Callable[[int, int], None]

_ARP_OPERATIONS = {1: "request", 2: "reply"}
_PROGRESS_EVERY = 1 << 14


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
    errors: list[CaptureError] = field(default_factory=list)

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

    def payload(self, flow: Flow, direction: int, data: bytes, ts: float, frame: int) -> None:
        engine = self.engine
        assert engine is not None
        fd = self._dissection(flow, engine)
        if fd is None:
            return
        if not engine.feed(fd, direction, data, ts, frame):
            flow.deliver = False
        if flow.app_protocol is None and fd.confirmed:
            flow.app_protocol = fd.protocol

    def gap(self, flow: Flow, direction: int, size: int) -> None:
        engine = self.engine
        if engine is not None:
            fd = self._dissection(flow, engine)
            if fd is not None:
                engine.gap(fd, direction)

    def flow_ended(self, flow: Flow, reason: str) -> None:
        fd: FlowDissection | None = flow.app
        if fd is not None and self.engine is not None:
            self.engine.end(fd)
            if flow.app_protocol is None and fd.confirmed:
                flow.app_protocol = fd.protocol


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
    ) -> None:
        self.config = config
        self.decoder = Decoder(config.decode.fragment_timeout, config.decode.max_fragment_datagrams)
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
        self.flow_sinks = list(flow_sinks)
        self.emit_arp = emit_arp
        self.progress = progress
        self.stats = RunStats()

    def run(self, frames: Iterable[Frame], position: Callable[[], int] | None = None) -> RunStats:
        """Process every frame, then flush all state into the sinks and close them."""
        stats = self.stats
        decode = self.decoder.decode
        table = self.table
        process = table.process
        decoder_anomalies = self.decoder.anomalies
        table_records = table.records
        table_anomalies = table.anomalies
        engine_events = self.engine.events if self.engine is not None else []
        progress = self.progress
        started = time.perf_counter()
        frame_no = 0
        total_bytes = 0
        ip_packets = 0
        first_ts: float | None = None
        ts = 0.0
        try:
            for ts, link_type, data, wire_len in frames:
                frame_no += 1
                total_bytes += wire_len
                pkt = decode(frame_no, ts, link_type, data, wire_len)
                if pkt is not None:
                    if pkt.ip_version:
                        ip_packets += 1
                        process(pkt)
                    elif pkt.arp is not None:
                        self._arp(pkt)
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
            stats.first_ts = first_ts
            stats.last_ts = ts if frame_no else None
            self._finish()
            stats.seconds = time.perf_counter() - started
            if progress is not None:
                progress(position() if position else 0, frame_no)
        return stats

    def _finish(self) -> None:
        """End of input: complete fragments, flows and dissectors, then close the sinks."""
        try:
            self.decoder.flush()
            self.table.flush()
            self._drain_events(self.decoder.anomalies)
            if self.engine is not None:
                self._drain_events(self.engine.events)
            self._drain_events(self.table.anomalies)
            self._drain_flows(self.table.records)
        finally:
            for sink in (*self.event_sinks, *self.flow_sinks):
                sink.close()

    def _arp(self, pkt: Packet) -> None:
        self.stats.arp_packets += 1
        arp = pkt.arp
        if not self.emit_arp or arp is None:
            return
        event = ArpEvent(
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
        for sink in self.event_sinks:
            sink.emit(event)

    def _drain_events(self, events: list[Any]) -> None:
        stats = self.stats
        sinks = self.event_sinks
        for event in events:
            if event.event_type == "anomaly":
                stats.anomalies[event.code] += 1
            else:
                stats.events += 1
            for sink in sinks:
                sink.emit(event)
        events.clear()

    def _drain_flows(self, records: list[FlowRecord]) -> None:
        stats = self.stats
        sinks = self.flow_sinks
        for record in records:
            stats.flows += 1
            stats.protocols[record.app_protocol or record.service or record.transport] += 1
            for sink in sinks:
                sink.emit(record)
        records.clear()
