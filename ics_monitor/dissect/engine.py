"""Per-flow protocol detection and the parse loop around dissectors.

Detection: the registry orders candidates (port hint first); ``probe`` looks at the first bytes of a
direction; the first candidate answering YES parses, and the flow is *confirmed* by the first PDU
that yields a protocol record (or that the dissector declares ``valid`` without one: a COTP
connect, one link frame of a long DNP3 fragment).  A candidate that rejects, or whose first PDU
yields only anomalies, is dropped, so port-502 garbage never becomes Modbus.  After ``detect_limit`` bytes without a
confirmation the flow is left alone.

Alignment: a TCP flow whose handshake was seen starts at a PDU boundary.  A flow picked up mid-stream,
or a direction after a gap or a lost sync, is *hunting*: each new segment start is a candidate
boundary, checked with ``probe``, and bytes before the first good one are dropped.

Containment: an exception inside a dissector becomes ``internal.dissector_error`` and disables
dissection of that flow only; in strict mode (tests) it propagates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Final

from ics_monitor.dissect.api import Dissector, ParseContext, ParseResult, Probe
from ics_monitor.dissect.registry import Registry
from ics_monitor.events.base import AnomalyEvent, Event

DETECT_LIMIT: Final = 8192


class FlowDissection:
    """Dissection state of one flow."""

    __slots__ = (
        "aligned",
        "buffers",
        "candidates",
        "confirmed",
        "ctx",
        "datagrams",
        "dissector",
        "done",
        "examined",
        "hunting",
        "state",
    )

    def __init__(self, ctx: ParseContext, candidates: list[Any], aligned: bool, datagrams: bool) -> None:
        self.ctx = ctx
        self.candidates = candidates
        self.dissector: Any = None
        self.state: Any = None
        self.confirmed = False
        self.done = False
        self.buffers = [b"", b""]
        self.hunting = [not aligned, not aligned]
        self.aligned = [aligned, aligned]
        self.datagrams = datagrams
        self.examined = 0

    @property
    def protocol(self) -> str | None:
        """Name of the confirmed protocol, or None."""
        return self.dissector.name if self.confirmed else None


class DissectEngine:
    """Runs dissectors over flows; collected events wait in ``events`` for the pipeline."""

    def __init__(
        self, registry: Registry, *, strict: bool = False, emit: bool = True, detect_limit: int = DETECT_LIMIT
    ) -> None:
        self.registry = registry
        self.strict = strict
        self.emit = emit
        self.detect_limit = detect_limit
        self.events: list[Event] = []

    def start(self, ctx: ParseContext, aligned: bool) -> FlowDissection | None:
        """Begin dissecting a flow; None when no dissector handles its transport."""
        candidates = self.registry.candidates(ctx.transport, ctx.server_port, ctx.client_port)
        if not candidates:
            return None
        ctx.strict = self.strict
        return FlowDissection(ctx, candidates, aligned or ctx.transport != "tcp", ctx.transport != "tcp")

    # -- input -----------------------------------------------------------------------------------

    def feed(
        self, fd: FlowDissection, direction: int, data: bytes, ts: float, frame: int, cut: int = 0
    ) -> bool:
        """Give in-order bytes (TCP) or one datagram (UDP); return False when the flow needs no more.

        ``cut``: the bytes the capture's snap length cut off the end of this datagram.
        """
        if fd.done:
            return False
        ctx = fd.ctx
        ctx.ts = ts
        ctx.frame = frame
        if cut:
            ctx.cut = cut
        try:
            if fd.confirmed:
                # After lost bytes, only a segment that starts a PDU gets parsed.
                if not fd.hunting[direction] or self._boundary(fd, direction, data):
                    buffered = fd.buffers[direction]
                    self._parse(fd, direction, buffered + data if buffered else data)
            else:
                self._detect(fd, direction, data)
        except Exception as exc:
            if self.strict:
                raise
            self._contain(fd, direction, exc)
        if cut:
            ctx.cut = 0
        return not fd.done

    def gap(self, fd: FlowDissection, direction: int, size: int = 0) -> None:
        """``size`` bytes of ``direction`` were lost (or cut off by the snap length).

        The partial PDU held for the direction ends there: its dissector reads what there is of
        it (``Dissector.truncated``), then the direction hunts for the next boundary.
        """
        if fd.done:
            return
        held = fd.buffers[direction]
        if held and not fd.hunting[direction] and not fd.datagrams and fd.dissector is not None:
            try:
                self._truncated(fd, direction, held, size)
            except Exception as exc:
                if self.strict:
                    raise
                self._contain(fd, direction, exc)
                return
        fd.buffers[direction] = b""
        fd.hunting[direction] = True
        fd.aligned[direction] = False
        if fd.dissector is not None and fd.confirmed:
            try:
                fd.dissector.gap(fd.state, direction, fd.ctx)
            except Exception as exc:
                if self.strict:
                    raise
                self._contain(fd, direction, exc)

    def _truncated(self, fd: FlowDissection, direction: int, held: bytes, size: int) -> None:
        """The PDU held for ``direction`` ends at a gap: what its dissector makes of its head.

        Before the flow is confirmed, only on the dissector's own port (a candidate whose probe
        answered yes): a capture whose snap length cuts every PDU of a flow, as a short one does
        with S7comm and DNP3, still has them read; a head that yields a protocol record confirms.
        """
        dissector = fd.dissector
        if fd.confirmed:
            self._emit(dissector.truncated(fd.state, memoryview(held), direction, fd.ctx, size))
        elif self._confirm_by_head(fd, direction, held, size):
            fd.hunting = [True, True]
            fd.hunting[1 - direction] = not fd.aligned[1 - direction]
        else:
            # The candidate's guess rested on a PDU it never saw whole (an RDP connection request
            # looks like S7's): the next PDU start is probed afresh by every candidate left.
            fd.dissector = None
            fd.state = None

    def _confirm_by_head(self, fd: FlowDissection, direction: int, held: bytes, size: int) -> bool:
        """An unconfirmed flow's first PDU was cut: on the candidate's own port, its head may confirm."""
        dissector = fd.dissector
        ctx = fd.ctx
        ports = dissector.tcp_ports if ctx.transport == "tcp" else dissector.udp_ports
        if ctx.server_port not in ports:
            return False
        events = dissector.truncated(fd.state, memoryview(held), direction, ctx, size)
        if all(isinstance(event, AnomalyEvent) for event in events):
            return False
        fd.confirmed = True
        ctx.protocol = dissector.name
        fd.hunting = [False, False]
        fd.buffers = [b"", b""]
        self._emit(events)
        return True

    def end(self, fd: FlowDissection) -> None:
        """The flow ended: let the dissector report what is left."""
        if fd.dissector is None or not fd.confirmed or fd.done:
            return
        try:
            self._emit(fd.dissector.close(fd.state, fd.ctx))
        except Exception as exc:
            if self.strict:
                raise
            self._contain(fd, 0, exc, flush=False)

    # -- detection -------------------------------------------------------------------------------

    def _detect(self, fd: FlowDissection, direction: int, data: bytes) -> None:
        fd.examined += len(data)
        if fd.hunting[direction]:
            # Mid-stream: this segment start is the only boundary we can trust.
            fd.buffers[direction] = b""
        buf = fd.buffers[direction] + data if fd.buffers[direction] else data
        while True:
            if fd.dissector is None and not self._choose(fd, direction, buf):
                if not fd.done and fd.examined > self.detect_limit:
                    fd.done = True
                return
            dissector = fd.dissector
            result: ParseResult = dissector.parse(fd.state, memoryview(buf), direction, fd.ctx)
            real = [event for event in result.events if not isinstance(event, AnomalyEvent)]
            if result.reject or (result.consumed and not real and not result.valid):
                # Wrong guess: forget the candidate and re-probe the same bytes with the others.
                fd.candidates.remove(dissector)
                fd.dissector = None
                fd.state = None
                if not fd.candidates:
                    fd.done = True
                    return
                continue
            if result.consumed:
                fd.confirmed = True
                fd.ctx.protocol = dissector.name
                # This direction is now in sync; the other one still hunts unless its stream
                # start was seen.
                other = 1 - direction
                fd.hunting = [False, False]
                fd.hunting[other] = not fd.aligned[other]
                # What the other direction sent from its stream start and held for more (a first
                # PDU split over segments, before this direction confirmed the flow) is its first
                # PDU's head: kept, so a command split that way is still read whole.
                held = fd.buffers[other] if fd.aligned[other] else b""
                fd.buffers = [b"", b""]
                fd.buffers[other] = held
                self._emit(result.events)
                if not self.emit:
                    fd.done = True  # detection only: the flow needs nothing more
                    return
                if result.consumed < len(buf):
                    self._parse(fd, direction, buf[result.consumed :])
                return
            if result.needed:
                if fd.datagrams and fd.ctx.cut:
                    # A datagram the snap length cut: read as far as kept, it may confirm; if
                    # not, it proves nothing either way, and the next datagram is probed afresh.
                    if not self._confirm_by_head(fd, direction, buf, fd.ctx.cut):
                        fd.dissector = None
                        fd.state = None
                    return
                if len(buf) + result.needed > dissector.max_pdu or fd.datagrams:
                    fd.candidates.remove(dissector)
                    fd.dissector = None
                    fd.state = None
                    if not fd.candidates:
                        fd.done = True
                        return
                    continue
                fd.buffers[direction] = buf
                if fd.examined > self.detect_limit:
                    fd.done = True
                return
            self._stalled(fd, direction)
            return

    def _choose(self, fd: FlowDissection, direction: int, buf: bytes) -> bool:
        """Probe the candidates on ``buf``; True when one answered YES (it becomes fd.dissector)."""
        view = memoryview(buf)
        waiting = False
        for candidate in list(fd.candidates):
            answer = candidate.probe(view, direction)
            if answer is Probe.YES and candidate.identify_only:
                fd.dissector = candidate
                fd.confirmed = True
                fd.done = True
                fd.ctx.protocol = candidate.name
                return False
            if answer is Probe.YES:
                fd.dissector = candidate
                fd.state = candidate.new_state(fd.ctx)
                fd.hunting[direction] = False
                return True
            if answer is Probe.MORE:
                if fd.datagrams and fd.ctx.cut and fd.ctx.server_port in candidate.udp_ports:
                    # A datagram cut by the snap length on the candidate's own port: more will
                    # never come; its head is read as it is (``_detect``).
                    fd.dissector = candidate
                    fd.state = candidate.new_state(fd.ctx)
                    return True
                waiting = True
            elif fd.aligned[direction]:
                fd.candidates.remove(candidate)  # a stream start that is not this protocol
        if not fd.candidates:
            fd.done = True
        elif waiting and not fd.datagrams:
            fd.buffers[direction] = buf  # a boundary candidate: accumulate from here
            fd.hunting[direction] = False
        else:
            fd.buffers[direction] = b""
            if not fd.datagrams:
                fd.hunting[direction] = True
        return False

    # -- parsing a confirmed flow ----------------------------------------------------------------

    def _boundary(self, fd: FlowDissection, direction: int, data: bytes) -> bool:
        """While hunting: True when ``data`` starts a PDU (hunting ends, nothing held is kept)."""
        if fd.dissector.probe(memoryview(data), direction) is Probe.NO:
            return False  # not a PDU boundary: keep hunting
        fd.hunting[direction] = False
        fd.buffers[direction] = b""
        return True

    def _parse(self, fd: FlowDissection, direction: int, buf: bytes) -> None:
        # Typed: compiled, ``parse`` is then a direct (vtable) call, not a method looked up and
        # called through the generic protocol for every PDU (methods a Python subclass overrides
        # are still its own; its class attributes are not: see ``max_pdu`` below).
        dissector: Dissector = fd.dissector
        state = fd.state
        ctx = fd.ctx
        view = memoryview(buf)
        size = len(buf)
        pos = 0
        while pos < size:
            # Typed: compiled code reads a typed result's fields directly.
            result: ParseResult = dissector.parse(state, view[pos:], direction, ctx)
            if result.events:
                self._emit(result.events)
            if result.reject:
                # Lost sync: drop what is buffered and look for the next PDU start.
                fd.buffers[direction] = b""
                fd.hunting[direction] = not fd.datagrams
                return
            if result.consumed:
                pos += result.consumed
                continue
            if result.needed:
                if fd.datagrams:
                    if ctx.cut:
                        # The snap length cut the datagram: its last PDU as far as kept.
                        self._emit(dissector.truncated(state, view[pos:], direction, ctx, ctx.cut))
                    else:
                        self._emit(
                            (
                                ctx.anomaly(
                                    "dissect.trailing_bytes",
                                    direction,
                                    f"{size - pos} bytes left, PDU needs {result.needed} more",
                                ),
                            )
                        )
                    pos = size
                    break
                # Read untyped: compiled, a typed read would take the compiled base class's
                # value, not the one a dissector written in Python sets in its class body.
                max_pdu: int = fd.dissector.max_pdu
                if size - pos + result.needed > max_pdu:
                    self._emit(
                        (
                            ctx.anomaly(
                                "dissect.pdu_too_large",
                                direction,
                                f"PDU needs {size - pos + result.needed} bytes, cap {max_pdu}",
                            ),
                        )
                    )
                    fd.buffers[direction] = b""
                    fd.hunting[direction] = True
                    return
                break
            self._stalled(fd, direction)
            return
        fd.buffers[direction] = buf[pos:] if pos < size else b""

    # -- helpers ---------------------------------------------------------------------------------

    def _emit(self, events: Sequence[Event]) -> None:
        if self.emit and events:
            self.events.extend(events)

    def _stalled(self, fd: FlowDissection, direction: int) -> None:
        if self.strict:
            raise RuntimeError(f"dissector {fd.dissector.name!r} consumed nothing and needed nothing")
        fd.done = True
        self.events.append(
            fd.ctx.anomaly(
                "internal.parse_stalled",
                direction,
                f"dissector {fd.dissector.name} stalled; disabled for this flow",
            )
        )

    def _contain(self, fd: FlowDissection, direction: int, exc: Exception, flush: bool = True) -> None:
        """A dissector raised: report it, stop dissecting the flow, and keep what it still held.

        ``flush``: ask the dissector's ``close`` for what it holds (records waiting for later
        bytes, unanswered requests, unfinished transfers), as at the flow's end; if that raises
        too, its state is what failed and nothing more comes of it.
        """
        fd.done = True
        dissector = fd.dissector
        name = dissector.name if dissector is not None else "probe"
        self.events.append(
            fd.ctx.anomaly(
                "internal.dissector_error",
                direction,
                f"{name}: {type(exc).__name__}: {exc}; dissection disabled for this flow",
            )
        )
        if flush and dissector is not None and fd.confirmed and fd.state is not None:
            # If close fails too, its state is what failed: the anomaly above reports the flow.
            with contextlib.suppress(Exception):
                self._emit(dissector.close(fd.state, fd.ctx))
