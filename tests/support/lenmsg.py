"""Test-only dissectors over a toy protocol, to exercise the engine and TCP reassembly.

``lenmsg`` PDU: magic 0xAB 0xCD, 2-byte big-endian body length, body.  Port 7777 (TCP and UDP).
"""

from __future__ import annotations

import gc
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ics_monitor.core.anomalies import Severity, register
from ics_monitor.dissect import NOT_THIS_PROTOCOL, Dissector, ParseContext, ParseResult, Probe
from ics_monitor.events import Event, ProtocolEvent

register("lenmsg.empty_body", Severity.LOW, "test protocol: PDU with an empty body")

_HEADER = struct.Struct("!HH")
MAGIC = 0xABCD


@dataclass(frozen=True, slots=True, kw_only=True)
class LenMsgEvent(ProtocolEvent):
    event_type: str = "lenmsg"
    body: str
    length: int


class LenMsgDissector(Dissector):
    name = "lenmsg"
    transports = frozenset({"tcp", "udp"})
    tcp_ports = frozenset({7777})
    udp_ports = frozenset({7777})
    max_pdu = 4096

    def probe(self, data: memoryview, direction: int) -> Probe:
        if len(data) < 2:
            return Probe.MORE
        return Probe.YES if data[0] == 0xAB and data[1] == 0xCD else Probe.NO

    def new_state(self, ctx: ParseContext) -> Any:
        return {"pdus": 0}

    def parse(self, state: Any, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        if len(data) < 4:
            return ParseResult(needed=4 - len(data))
        magic, length = _HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            return NOT_THIS_PROTOCOL
        if len(data) < 4 + length:
            return ParseResult(needed=4 + length - len(data))
        state["pdus"] += 1
        if bytes(data[4 : 4 + length]) == b"!":
            # A handshake PDU: well formed, no record of its own (like a COTP connect).
            return ParseResult(4 + length, valid=True)
        if length == 0:
            return ParseResult(4, 0, [ctx.anomaly("lenmsg.empty_body", direction, "empty body")])
        event = lenmsg_event(ctx, direction, bytes(data[4 : 4 + length]).decode("ascii", "replace"), length)
        return ParseResult(4 + length, 0, [event])


def lenmsg_event(ctx: ParseContext, direction: int, body: str, length: int) -> LenMsgEvent:
    """A record of ``body`` in ``direction`` of the context's flow."""
    src_ip, src_port, dst_ip, dst_port = ctx.endpoints(direction)
    return LenMsgEvent(
        ts=ctx.ts,
        frame=ctx.frame,
        flow_id=ctx.flow_id,
        transport=ctx.transport,
        src_ip=src_ip,
        src_port=src_port,
        dst_ip=dst_ip,
        dst_port=dst_port,
        direction="request" if direction == 0 else "response",
        body=body,
        length=length,
    )


class CrashingDissector(LenMsgDissector):
    """Raises on the third PDU of a flow: the engine must contain it to that flow.

    Its ``close`` gives what a dissector may still hold (here a record naming the PDUs it parsed).
    """

    name = "crashing"

    def parse(self, state: Any, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        result = super().parse(state, data, direction, ctx)
        if state["pdus"] == 3:
            raise ValueError("boom")
        return result

    def close(self, state: Any, ctx: ParseContext) -> Sequence[Event]:
        return [lenmsg_event(ctx, 0, f"held after {state['pdus']}", 0)]


class StallingDissector(LenMsgDissector):
    """Violates the contract (consumed 0, needed 0) after its first PDU."""

    name = "stalling"

    def parse(self, state: Any, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        if state["pdus"] >= 1:
            return ParseResult()
        return super().parse(state, data, direction, ctx)


class CollectorReportingDissector(LenMsgDissector):
    """``lenmsg`` whose records say the young-generation threshold and the pid of the process that
    parsed them (their body: ``gc 1000000 pid 4242``).

    For the shard workers' collector settings: a worker is a fork server's child, which starts
    at CPython's default (a collection every 700 allocations) unless it sets its own.
    """

    def __init__(self, udp_ports: frozenset[int] = frozenset({7777})) -> None:
        self.udp_ports = udp_ports

    def parse(self, state: Any, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        result = super().parse(state, data, direction, ctx)
        if result.events:  # a fresh result (NOT_THIS_PROTOCOL, shared, has none)
            result.events = [
                lenmsg_event(ctx, direction, f"gc {gc.get_threshold()[0]} pid {os.getpid()}", event.length)
                if isinstance(event, LenMsgEvent)
                else event
                for event in result.events
            ]
        return result


class SlowStartingDissector(CollectorReportingDissector):
    """``CollectorReportingDissector`` of which the first copy unpickled (the first to create the
    file ``claim``) sleeps ``delay`` seconds first: a live worker slow to build its pipeline."""

    def __init__(self, udp_ports: frozenset[int], claim: str, delay: float) -> None:
        super().__init__(udp_ports)
        self.claim = claim
        self.delay = delay

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through a function (the compiled base class pickles its own attributes only).
        return (_slow_copy, (self.udp_ports, self.claim, self.delay))


def _slow_copy(udp_ports: frozenset[int], claim: str, delay: float) -> SlowStartingDissector:
    """A ``SlowStartingDissector`` unpickled: the first to claim the file sleeps before it is made."""
    try:
        os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        pass
    else:
        time.sleep(delay)
    return SlowStartingDissector(udp_ports, claim, delay)
