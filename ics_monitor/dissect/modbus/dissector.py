"""The Modbus dissector: MBAP framing over TCP and UDP, PDU decoding, request/response pairing.

Also the serial line's framings carried over TCP and UDP: a flow whose first bytes are whole RTU
frames with good CRCs (``dissect.modbus.rtu``, ``_parse_rtu``) or whole ASCII frames with good
LRCs (``dissect.modbus.ascii_framing``, ``_parse_ascii``) is read frame by frame into the same
records, ``framing`` "rtu" or "ascii" and no transaction id; the MBAP description below is the
default case.

Port 502 by hint, any port by probe: protocol id 0, a length of 2..254 (1100 for Schneider UMAS)
that agrees with the bytes at hand, and a function code that is public, user-defined, reserved or
UMAS (or the exception response of one).  Until the flow is confirmed (the first record), a PDU
with any structural problem rejects a flow on another port than 502 (on 502 the probe alone decides,
so a device's quirk there does not hide its traffic); with the probe's checks, non-Modbus bytes on
port 502 give no Modbus record.

``parse`` takes every complete ADU in the buffer at once.  After confirmation, broken input raises
anomalies and never stops the flow: an ADU whose PDU disagrees with its function still gives its
record (with what could be decoded) beside the anomalies, and is skipped by its MBAP length; a
protocol id other than 0 is skipped by its length once; a length out of range (or a second framing
error in a row) returns ``NOT_THIS_PROTOCOL``, and the engine resynchronises at the next segment
that ``probe`` accepts.

Pairing, per flow: a response takes the pending request with its (unit id, transaction id); reads
get the request's address and quantity.  Unanswered requests are reported when a later packet of
the flow comes after the timeout (capture time) and when the flow closes.

It must not raise on any bytes (a property test feeds it random and mutated ADUs), log, or keep
more per flow than the capped table of pending requests.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from ics_monitor.dissect.api import (
    NOT_THIS_PROTOCOL,
    Dissector,
    ParseContext,
    ParseResult,
    Probe,
    mark_truncated,
)
from ics_monitor.dissect.modbus import ascii_framing
from ics_monitor.dissect.modbus.constants import (
    ASCII_BAD_FRAME,
    BAD_LENGTH,
    BAD_PROTOCOL_ID,
    DEFAULT_PORT,
    DUPLICATE_TRANSACTION,
    FRAMING_ASCII,
    FRAMING_MBAP,
    FRAMING_RTU,
    FUNCTION_NAMES,
    LENGTH_MISMATCH,
    MAX_LENGTH,
    MAX_MISMATCHES_REPORTED,
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    MAX_UMAS_LENGTH,
    MAX_UNIT_FALLBACK,
    MIN_LENGTH,
    PENDING_FULL,
    PLAUSIBLE_FIRST_CODES,
    RESERVED_FUNCTION,
    RESERVED_FUNCTIONS,
    RESPONSE_FUNCTION_MISMATCH,
    RESPONSE_UNIT_MISMATCH,
    RTU_BAD_CRC,
    RTU_INCOMPLETE_FRAME,
    TRUNCATED_PDU,
    UNANSWERED_REQUEST,
    UNKNOWN,
    UNKNOWN_FUNCTION,
    UNMATCHED_RESPONSE,
    DiagnosticSubFunction,
    FunctionCode,
)
from ics_monitor.dissect.modbus.parser import (
    MBAP,
    REQUEST_DECODERS,
    RESPONSE_DECODERS,
    Problems,
    Request,
    bits,
    exception_response,
    opaque,
    registers,
)
from ics_monitor.dissect.modbus.rtu import (
    MIN_FRAME,
    frame_end,
    frame_length,
    plausible_head,
    probe_frames,
)
from ics_monitor.dissect.modbus.state import ModbusState
from ics_monitor.events.base import Event
from ics_monitor.events.modbus import (
    ModbusDetailEvent,
    ModbusDiagnosticsEvent,
    ModbusEvent,
    ModbusMeiEvent,
    ModbusUmasEvent,
    new_modbus_event,
    set_own,
)

_unpack_mbap: Final = MBAP.unpack_from
_unpack_pair: Final = struct.Struct(">HH").unpack_from
_UMAS: Final = FunctionCode.SCHNEIDER_UMAS
# The record class of each function code (exception responses are plain ModbusEvents).
_PLAIN: Final = frozenset({1, 2, 3, 4, 5, 6, 15, 16})
EVENT_CLASSES: Final[dict[int, type[ModbusEvent]]] = {
    code: (
        ModbusEvent
        if code in _PLAIN
        else ModbusDiagnosticsEvent
        if code == FunctionCode.DIAGNOSTICS
        else ModbusMeiEvent
        if code == FunctionCode.ENCAPSULATED_INTERFACE_TRANSPORT
        else ModbusUmasEvent
        if code == _UMAS
        else ModbusDetailEvent
    )
    for code in range(128)
}
# Functions whose sub-function (own field 0) is remembered with the request.
_SUB_FUNCTIONS: Final = frozenset({FunctionCode.DIAGNOSTICS, _UMAS})
# FC 8/4 puts the server in listen-only mode: it must not answer, so no answer is no anomaly.
_LISTEN_ONLY: Final = DiagnosticSubFunction.FORCE_LISTEN_ONLY_MODE


def _function_problems(function_code: int) -> Problems:
    """Anomalies a function code raises by itself (unknown or reserved)."""
    if function_code in RESERVED_FUNCTIONS:
        return ((RESERVED_FUNCTION, f"function code {function_code} is reserved"),)
    if function_code not in FUNCTION_NAMES:
        return ((UNKNOWN_FUNCTION, f"function code {function_code}"),)
    return ()


# Quantity limit of the read functions (FC 1-4) by function code, 0 for every other code.
_READ_LIMITS: Final[tuple[int, ...]] = tuple(
    {1: MAX_READ_BITS, 2: MAX_READ_BITS, 3: MAX_READ_REGISTERS, 4: MAX_READ_REGISTERS}.get(code, 0)
    for code in range(256)
)
FUNCTION_PROBLEMS: Final[tuple[Problems, ...]] = tuple(_function_problems(code) for code in range(128))
FUNCTION_NAME_TABLE: Final[tuple[str, ...]] = tuple(FUNCTION_NAMES.get(code, UNKNOWN) for code in range(128))


def _max_length(function_code: int) -> int:
    return MAX_UMAS_LENGTH if function_code & 0x7F == _UMAS else MAX_LENGTH


def mbap_probe(data: memoryview) -> Probe:
    """Protocol id 0, a plausible length agreeing with the bytes at hand, a plausible function."""
    size = len(data)
    # Bytes 2-3 (protocol id) must be zero as soon as they are there.
    if (size > 2 and data[2]) or (size > 3 and data[3]):
        return Probe.NO
    if size < 8:
        return Probe.MORE
    length = (data[4] << 8) | data[5]
    function_code = data[7]
    if function_code not in PLAUSIBLE_FIRST_CODES:
        return Probe.NO
    if not MIN_LENGTH <= length <= _max_length(function_code):
        return Probe.NO
    if function_code & 0x80 and length < 3:
        return Probe.NO
    end = 6 + length
    if size < end:
        return Probe.MORE
    # More bytes than one ADU: the next must start like an MBAP header too.
    if size >= end + 4 and (data[end + 2] or data[end + 3]):
        return Probe.NO
    return Probe.YES


class ModbusDissector(Dissector):
    """Modbus/TCP (MBAP) over TCP and UDP (Modbus Application Protocol V1.1b3)."""

    name = "modbus"
    transports = frozenset({"tcp", "udp"})
    tcp_ports = frozenset({DEFAULT_PORT})
    udp_ports = frozenset({DEFAULT_PORT})
    max_pdu = 6 + MAX_UMAS_LENGTH

    def __init__(self, max_pending: int | None = None, timeout: float | None = None) -> None:
        self._state_options: dict[str, Any] = {}
        if max_pending is not None:
            self._state_options["max_pending"] = max_pending
        if timeout is not None:
            self._state_options["timeout"] = timeout

    # -- detection ---------------------------------------------------------------------------------

    def probe(self, data: memoryview, direction: int) -> Probe:
        """An MBAP ADU, or whole ASCII frames with good LRCs, or whole RTU frames with good CRCs.

        ``mbap_probe``, ``ascii_framing.probe_frames``, ``rtu.probe_frames``.  RTU: direction 0 is
        read as requests first, then as responses (a connection opened from port 502 has its
        requests in direction 1).
        """
        answer = mbap_probe(data)
        if answer is Probe.YES or len(data) < 2:
            return answer
        if data[0] == ascii_framing.COLON:
            as_ascii = ascii_framing.probe_frames(data)
            if as_ascii == 1:
                return Probe.YES
            if as_ascii < 0:
                return Probe.MORE
            # A colon is also serial address 58 of an RTU frame.
        if not plausible_head(data, 0):
            return answer
        # RTU says "more" only after a whole frame whose CRC held (a master writes a frame at
        # once): a frame's head alone would hold back other protocols and let a mid-ADU segment
        # of an MBAP flow pass for a boundary.
        as_requests = probe_frames(data, direction == 0, True)
        as_responses = probe_frames(data, direction != 0, True)
        if as_requests == 1 or as_responses == 1:
            return Probe.YES
        return Probe.MORE if as_requests < 0 or as_responses < 0 else answer

    def new_state(self, ctx: ParseContext) -> Any:
        """Pending requests and the per-direction record heads of one flow."""
        ports = self.tcp_ports if ctx.transport == "tcp" else self.udp_ports
        standard = ctx.server_port in ports or ctx.client_port in ports
        # A connection opened *from* port 502 (seen in crafted captures) still has its server there:
        # Modbus roles follow the registered port, not the SYN.
        swapped = int(ctx.client_port in ports and ctx.server_port not in ports)
        roles = ("request", "response")
        heads = (
            (ctx.flow_id, ctx.transport, *ctx.endpoints(0), roles[swapped]),
            (ctx.flow_id, ctx.transport, *ctx.endpoints(1), roles[1 - swapped]),
        )
        state = ModbusState(heads, **self._state_options)
        state.standard_port = standard
        state.swapped = swapped
        return state

    # -- parsing ----------------------------------------------------------------------------------

    def parse(self, state: ModbusState, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        """Every complete ADU in ``data``; see the module docstring for broken input.

        Well-formed FC 1-4 requests and their responses (most of any polling network) are decoded
        inline; everything else, and any of those with a flaw, goes through ``_request`` /
        ``_response``, which give the same records for the inline cases (a unit test checks it).
        """
        framing = state.framing
        if framing != FRAMING_MBAP:
            if framing == FRAMING_RTU:
                return self._parse_rtu(state, data, direction, ctx)
            return self._parse_ascii(state, data, direction, ctx)
        if not state.confirmed:
            is_request = direction == state.swapped
            if len(data) and data[0] == ascii_framing.COLON and ascii_framing.probe_frames(data) == 1:
                first = ascii_framing.first_frame(data)
                if (
                    first is not None
                    and not ascii_framing.reads_as(first, is_request)
                    and ascii_framing.reads_as(first, not is_request)
                ):
                    state.swap_roles()  # as for RTU below: a device server in client mode
                return self._parse_ascii(state, data, direction, ctx)
            rtu = probe_frames(data, is_request)
            if rtu == 1:
                return self._parse_rtu(state, data, direction, ctx)
            if rtu == 0 and probe_frames(data, not is_request) == 1:
                # Answers first where the port said requests: a device server that opens the
                # connection to its master (client mode) sends its responses from the client side.
                state.swap_roles()
                return self._parse_rtu(state, data, direction, ctx)
            if rtu < 0 and mbap_probe(data) is Probe.NO:
                return ParseResult(0, 1, [])  # the start of an RTU frame, not of an ADU
        size = len(data)
        events: list[Event] = []
        append = events.append
        ts = ctx.ts
        frame = ctx.frame
        if ts > state.check_at:
            self._expire(state, ctx, events)
        pending = state.pending
        is_request = direction == state.swapped
        head = state.heads[direction]
        position = 0
        while size - position >= 8:
            transaction_id, protocol_id, length, unit_id, function_code = _unpack_mbap(data, position)
            end = position + 6 + length
            if (protocol_id or length < MIN_LENGTH or length > MAX_LENGTH) and (
                protocol_id or length < MIN_LENGTH or length > _max_length(function_code)
            ):
                if not state.confirmed:
                    return NOT_THIS_PROTOCOL
                if position:
                    break  # report what came before; the next call starts at the broken header
                return self._framing_error(state, data, protocol_id, length, direction, ctx, events)
            if end > size:
                if ctx.transport != "udp" or ctx.cut:
                    break  # the rest is to come, or (a datagram cut by the snap length) is not there
                # One ADU per datagram: what is there is all there will be.
                append(
                    ctx.anomaly(
                        LENGTH_MISMATCH, direction, f"MBAP length {length} but {size - position - 6} bytes"
                    )
                )
                if not state.confirmed and not state.standard_port:
                    return NOT_THIS_PROTOCOL
                end = size
            elif length == 6 and is_request:
                # Fast path: a well-formed read request that opens a new transaction.
                limit = _READ_LIMITS[function_code]
                if limit:
                    address, quantity = _unpack_pair(data, position + 8)
                    key = (unit_id << 16) | transaction_id
                    if (
                        0 < quantity <= limit
                        and address + quantity <= 0x10000
                        and key not in pending
                        and len(pending) < state.max_pending
                    ):
                        append(
                            new_modbus_event(
                                ModbusEvent,
                                head,
                                ts,
                                frame,
                                transaction_id,
                                unit_id,
                                6,
                                function_code,
                                FUNCTION_NAME_TABLE[function_code],
                                None,
                                None,
                                address,
                                quantity,
                                None,
                                None,
                                None,
                            )
                        )
                        if not pending:
                            state.check_at = ts + state.timeout
                        pending[key] = (frame, ts, function_code, address, quantity, None)
                        if unit_id != state.last_asked:
                            state.ask(unit_id)
                        state.confirmed = True
                        position = end
                        continue
            elif not is_request and length > 2 and _READ_LIMITS[function_code]:
                # Fast path: the response that a pending read of the same function expects.
                key = (unit_id << 16) | transaction_id
                request = pending.get(key)
                if request is not None and request[2] == function_code:
                    quantity = request[4]
                    byte_count = data[position + 8]
                    if length == 3 + byte_count and quantity is not None:
                        if function_code > 2:
                            good = byte_count == quantity << 1
                            values = registers(data, position + 9, quantity) if good else None
                        else:
                            good = byte_count == (quantity + 7) >> 3
                            values = bits(data, position + 9, end, quantity) if good else None
                        if good:
                            del pending[key]
                            state.lost_requests = False
                            if unit_id != state.last_answered:
                                state.answered_as_asked(unit_id)
                            append(
                                new_modbus_event(
                                    ModbusEvent,
                                    head,
                                    ts,
                                    frame,
                                    transaction_id,
                                    unit_id,
                                    length,
                                    function_code,
                                    FUNCTION_NAME_TABLE[function_code],
                                    None,
                                    None,
                                    request[3],
                                    quantity,
                                    byte_count,
                                    values,
                                    request[0],
                                )
                            )
                            state.confirmed = True
                            position = end
                            continue
            if is_request:
                ok = self._request(
                    state,
                    data,
                    position + 8,
                    end,
                    transaction_id,
                    unit_id,
                    length,
                    function_code,
                    direction,
                    ctx,
                    events,
                )
            else:
                ok = self._response(
                    state,
                    data,
                    position + 8,
                    end,
                    transaction_id,
                    unit_id,
                    length,
                    function_code,
                    direction,
                    ctx,
                    events,
                )
            if not ok:
                return NOT_THIS_PROTOCOL
            position = end
        if position:
            state.skipped = False
            return ParseResult(position, 0, events)
        if size < 8:
            return ParseResult(0, 8 - size, events)
        return ParseResult(0, 6 + ((data[4] << 8) | data[5]) - size, events)

    def _parse_rtu(
        self, state: ModbusState, data: memoryview, direction: int, ctx: ParseContext
    ) -> ParseResult:
        """Every complete RTU frame in ``data`` (``dissect.modbus.rtu``), paired per serial address.

        Records as for MBAP, without transaction id.  A frame whose CRC is wrong gives no record
        (the device drops it) but an anomaly, and is skipped by the size its function gives;
        where that is unknown the engine resynchronises.
        A flow whose single first frame was RTU by chance is switched back when what follows is MBAP.
        """
        size = len(data)
        events = self._serial_events(state, ctx)
        state.framing = FRAMING_RTU
        is_request = direction == state.swapped
        datagram = ctx.transport == "udp"
        position = 0
        needed = 0
        while position < size:
            if size - position < 2:
                needed = 2 - (size - position)
                break
            plausible = plausible_head(data, position)
            end = frame_end(data, position, size, is_request) if plausible else 0
            if end <= 0 and state.rtu_frames == 1 and not position and mbap_probe(data) is Probe.YES:
                # MBAP after all: the flow's first segment was a valid RTU frame by chance (its
                # CRC matched, 1 in 65,536); what it gave is taken back as far as it can be.
                state.framing = FRAMING_MBAP
                state.rtu_frames = 0
                state.pending.clear()
                state.check_at = float("inf")
                return self.parse(state, data, direction, ctx)
            if end < 0:
                needed = -end
                break
            if end == 0:
                if position:
                    break  # report what came before; the next call starts at the bad frame
                expected = frame_length(data, position, size, is_request) if plausible else 0
                known = expected >= MIN_FRAME and position + expected <= size
                events.append(
                    ctx.anomaly(
                        RTU_BAD_CRC,
                        direction,
                        f"unit {data[position]} function {data[position + 1]}: "
                        + (
                            f"{expected}-byte frame with a wrong CRC, dropped"
                            if known
                            else "no RTU frame starts here; resynchronising"
                        ),
                    )
                )
                if not state.confirmed:
                    return NOT_THIS_PROTOCOL
                if known:
                    position += expected
                    continue
                if datagram:
                    position = size
                    break
                return ParseResult(reject=True, events=events)
            if not self._serial_frame(state, data, position, end - 2, direction, ctx, events):
                return NOT_THIS_PROTOCOL
            state.rtu_frames += 1
            position = end
        if needed and datagram and ctx.cut:
            # The snap length cut the datagram: its last frame is the capture's loss (``truncated``).
            return ParseResult(position, 0, events) if position else ParseResult(0, needed, events)
        if needed and datagram:
            # One datagram holds whole frames: what is left will not be completed.
            events.append(
                ctx.anomaly(RTU_INCOMPLETE_FRAME, direction, f"{size - position} bytes after the last frame")
            )
            position = size
            needed = 0
        if position:
            return ParseResult(position, 0, events)
        return ParseResult(0, max(needed, 1), events)

    def _parse_ascii(
        self, state: ModbusState, data: memoryview, direction: int, ctx: ParseContext
    ) -> ParseResult:
        """Every complete ASCII frame in ``data`` (``dissect.modbus.ascii_framing``), as ``_parse_rtu``.

        Frames end at CR LF (or as ``ascii_framing.frame_end`` says); one with a wrong LRC or
        broken digits gives no record (the device drops it) but an anomaly; bytes that start no
        frame are skipped to the next colon.
        """
        size = len(data)
        events = self._serial_events(state, ctx)
        state.framing = FRAMING_ASCII
        datagram = ctx.transport == "udp"
        position = 0
        needed = 0
        if state.ascii_cr_end[direction]:
            state.ascii_cr_end[direction] = False
            if size and data[0] != ascii_framing.COLON:
                position = 1  # the delimiter after the last frame's CR, quietly
        while position < size:
            end = ascii_framing.frame_end(data, position, size)
            if end < 0:
                needed = 1
                break
            frame = ascii_framing.decode(data, position, end) if end else None
            if frame is None or not ascii_framing.lrc_ok(frame) or not plausible_head(frame, 0):
                if not state.confirmed:
                    return NOT_THIS_PROTOCOL
                if not end:
                    # Bytes before the next colon: line ends or padding some gateways add are
                    # skipped quietly, anything else is reported.
                    skip = ascii_framing.next_start(data, position, size)
                    stray = bytes(data[position:skip])
                    if stray.strip(b"\r\n\x00 "):
                        events.append(
                            ctx.anomaly(
                                ASCII_BAD_FRAME,
                                direction,
                                f"{skip - position} bytes that start no frame, skipped",
                            )
                        )
                    position = skip
                    continue
                detail = (
                    f"{end - position}-byte frame with a wrong LRC or broken digits, dropped"
                    if frame is None or not ascii_framing.lrc_ok(frame)
                    else f"frame of address {frame[0]}, function {frame[1]}: no Modbus frame, dropped"
                )
                events.append(ctx.anomaly(ASCII_BAD_FRAME, direction, detail))
                position = end
                continue
            if not self._serial_frame(state, memoryview(frame), 0, len(frame) - 1, direction, ctx, events):
                return NOT_THIS_PROTOCOL
            position = end
            if position == size and not datagram and ascii_framing.ends_at_cr(data, end):
                state.ascii_cr_end[direction] = True
        if needed and datagram and not ctx.cut:
            events.append(
                ctx.anomaly(
                    ASCII_BAD_FRAME, direction, f"{size - position} bytes after the last frame, no line end"
                )
            )
            position = size
            needed = 0
        if position:
            return ParseResult(position, 0, events)
        return ParseResult(0, needed or 1, events)

    def _serial_events(self, state: ModbusState, ctx: ParseContext) -> list[Event]:
        """The events list a serial-framing parse starts with: requests that timed out."""
        events: list[Event] = []
        if ctx.ts > state.check_at:
            self._expire(state, ctx, events)
        return events

    def _serial_frame(
        self,
        state: ModbusState,
        data: memoryview,
        start: int,
        pdu_end: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> bool:
        """One RTU or ASCII frame's record: address at ``start``, then the PDU up to ``pdu_end``."""
        return (self._request if direction == state.swapped else self._response)(
            state,
            data,
            start + 2,
            pdu_end,
            None,
            data[start],
            pdu_end - start,
            data[start + 1],
            direction,
            ctx,
            events,
        )

    def _rtu_pending(
        self, state: ModbusState, unit_id: int, request: Request, ctx: ParseContext, events: list[Event]
    ) -> None:
        """Remember an RTU request; one to the same address still waiting was given up by the master."""
        replaced, evicted = state.add(unit_id << 16, request)
        for lost in (replaced, evicted):
            if lost is not None and not (lost[2] == FunctionCode.DIAGNOSTICS and lost[5] == _LISTEN_ONLY):
                events.append(_unanswered(ctx, state, unit_id << 16, lost, "before the next request to it"))

    def _framing_error(
        self,
        state: ModbusState,
        data: memoryview,
        protocol_id: int,
        length: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> ParseResult:
        """A broken MBAP header at the start of ``data`` on a confirmed flow.

        A protocol id other than 0 with a plausible length is skipped by that length, once: a
        second broken header right after it means the stream is out of step, and so does a length
        out of range; then the engine resynchronises at the next segment.
        """
        if length < MIN_LENGTH or length > MAX_LENGTH or state.skipped:
            events.append(
                ctx.anomaly(
                    BAD_PROTOCOL_ID if protocol_id else BAD_LENGTH,
                    direction,
                    f"protocol id {protocol_id}, length {length}: resynchronising",
                )
            )
            state.skipped = False
            return ParseResult(reject=True, events=events)
        end = 6 + length
        if end > len(data):
            return ParseResult(0, end - len(data), events)
        events.append(
            ctx.anomaly(BAD_PROTOCOL_ID, direction, f"protocol id {protocol_id}; {end} bytes skipped")
        )
        state.skipped = True
        return ParseResult(end, 0, events)

    def _request(
        self,
        state: ModbusState,
        data: memoryview,
        start: int,
        end: int,
        transaction_id: int | None,
        unit_id: int,
        length: int,
        function_code: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> bool:
        """One request ADU: its record and anomalies into ``events``; False to reject the flow."""
        code = function_code & 0x7F
        decoder = REQUEST_DECODERS.get(function_code)
        cls = EVENT_CLASSES[code]
        if decoder is None:
            cls = ModbusDetailEvent
            address, quantity, byte_count, values, own, problems = opaque(data, start, end)
            problems = FUNCTION_PROBLEMS[code] + problems
            if function_code & 0x80:
                problems += ((UNKNOWN_FUNCTION, f"request with the exception bit: 0x{function_code:02x}"),)
        else:
            address, quantity, byte_count, values, own, problems = decoder(data, start, end)
        if problems and not state.confirmed and not state.standard_port:
            return False
        ts = ctx.ts
        frame = ctx.frame
        event = new_modbus_event(
            cls,
            state.heads[direction],
            ts,
            frame,
            transaction_id,
            unit_id,
            length,
            code,
            FUNCTION_NAME_TABLE[code],
            None,
            None,
            address,
            quantity,
            byte_count,
            values,
            None,
        )
        if transaction_id is None:
            event.__dict__["framing"] = state.framing
        sub_function = None
        if own is not None:
            set_own(event, own)
            # Not for an opaque request (FC 8/90 with the exception bit): its ``own`` is the
            # ``extra`` dict, not a sub-function code.
            if code in _SUB_FUNCTIONS and decoder is not None:
                sub_function = own[0]
        events.append(event)
        state.confirmed = True
        if problems:
            for anomaly_code, detail in problems:
                events.append(ctx.anomaly(anomaly_code, direction, detail))
        if transaction_id is None:
            if unit_id:  # address 0 is a serial broadcast: no device answers it
                self._rtu_pending(
                    state, unit_id, (frame, ts, code, address, quantity, sub_function), ctx, events
                )
            return True
        if unit_id != state.last_asked:
            state.ask(unit_id)
        replaced, evicted = state.add(
            (unit_id << 16) | transaction_id, (frame, ts, code, address, quantity, sub_function)
        )
        if replaced is not None:
            events.append(
                ctx.anomaly(
                    DUPLICATE_TRANSACTION,
                    direction,
                    f"unit {unit_id} transaction {transaction_id} reused; request of frame {replaced[0]} unanswered",
                )
            )
        if evicted is not None:
            events.append(
                ctx.anomaly(
                    PENDING_FULL,
                    direction,
                    f"{state.max_pending} requests pending; request of frame {evicted[0]} forgotten",
                )
            )
        return True

    def _response(
        self,
        state: ModbusState,
        data: memoryview,
        start: int,
        end: int,
        transaction_id: int | None,
        unit_id: int,
        length: int,
        function_code: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> bool:
        """One response ADU: its record and anomalies into ``events``; False to reject the flow."""
        code = function_code & 0x7F
        # RTU: one request per serial address at a time (the line is half duplex).
        key = unit_id << 16 if transaction_id is None else (unit_id << 16) | transaction_id
        request: Request | None = state.pending.get(key)
        asked_unit = unit_id
        if (
            request is None
            and transaction_id is not None
            and not state.lost_requests
            and 0 < len(state.pending) <= MAX_UNIT_FALLBACK
        ):
            # A device answering as itself where the specification says it echoes the unit id:
            # asked as unit 255 or 0 (on TCP, "the device at this address"), or asked as any unit
            # when it ignores the unit id.  Its request is the only one pending with that
            # transaction id and function (tshark leaves such an answer unpaired): to 255 or 0, or, when this
            # flow never asked the unit it answers as, to a unit that never answered as itself
            # here.  Not a request to another unit otherwise: a master with one transaction id
            # for all its units would have an answer whose request has gone (a retry's second
            # answer, a late one) decoded as the next unit's.  A unit that echoes its id is not
            # the device answering under another, so its requests are not candidates either.
            # Left: an answer whose request has gone (a retry's late answer, or one to a request
            # sent before a flow picked up mid-stream) may still pair with a request of that id to
            # a unit that has not yet answered as itself on the flow; and once a unit has answered
            # as itself (an exception too), it stays out of the candidates for the flow.
            # Not after requests the capture lost (the answer may be to one of those), and not
            # among more pending requests than a pipelining master keeps (a silent device's, a
            # flood's): the search stays short, and those answers stay orphans, as before.
            key = _by_transaction(
                state.pending,
                transaction_id,
                function_code & 0x7F,
                -1 if (state.asked_units >> unit_id) & 1 else state.answered_units,
            )
            if key >= 0:
                request = state.pending[key]
                asked_unit = key >> 16
        own = None
        exception_code = exception_name = None
        if function_code & 0x80:
            exception_code, exception_name, problems = exception_response(data, start, end)
            address = quantity = byte_count = values = None
            cls: type[ModbusEvent] = ModbusEvent
            if request is None or request[2] != code:
                # A device refusing an unknown or reserved function it was sent answers as it
                # should: the function was reported on the request.
                problems = FUNCTION_PROBLEMS[code] + problems
        else:
            decoder = RESPONSE_DECODERS.get(function_code)
            if decoder is None:
                address, quantity, byte_count, values, own, problems = opaque(data, start, end)
                problems = FUNCTION_PROBLEMS[code] + problems
            else:
                address, quantity, byte_count, values, own, problems = decoder(data, start, end, request)
            cls = EVENT_CLASSES[code]
        if problems and not state.confirmed and not state.standard_port:
            return False
        if request is not None:
            del state.pending[key]
            request_frame: int | None = request[0]
            state.lost_requests = False
            if asked_unit == unit_id and unit_id != state.last_answered:
                state.answered_as_asked(unit_id)
        else:
            request_frame = None
        event = new_modbus_event(
            cls,
            state.heads[direction],
            ctx.ts,
            ctx.frame,
            transaction_id,
            unit_id,
            length,
            code,
            FUNCTION_NAME_TABLE[code],
            exception_code,
            exception_name,
            address,
            quantity,
            byte_count,
            values,
            request_frame,
        )
        if transaction_id is None:
            event.__dict__["framing"] = state.framing
        if own is not None:
            set_own(event, own)
        events.append(event)
        state.confirmed = True
        if problems:
            for anomaly_code, detail in problems:
                events.append(ctx.anomaly(anomaly_code, direction, detail))
        if asked_unit != unit_id and request is not None:
            # Once per flow and pair of units: a device that always answers as itself would
            # otherwise add a record to every poll.
            reported = state.unit_mismatches
            if reported is None:
                reported = state.unit_mismatches = set()
            pair = (asked_unit << 8) | unit_id
            if pair not in reported and len(reported) < MAX_MISMATCHES_REPORTED:
                reported.add(pair)
                events.append(
                    ctx.anomaly(
                        RESPONSE_UNIT_MISMATCH,
                        direction,
                        f"response as unit {unit_id} to the request to unit {asked_unit} (frame {request[0]}, "
                        f"transaction {transaction_id}); its later answers so in this flow are paired "
                        "alike without another record",
                    )
                )
        if request is None:
            if state.lost_requests:
                return True  # it may answer a request the capture lost (``gap``)
            asked = (
                f"transaction {transaction_id}"
                if transaction_id is not None
                else f"over {state.framing.upper()}"
            )
            events.append(
                ctx.anomaly(
                    UNMATCHED_RESPONSE,
                    direction,
                    f"no pending request with unit {unit_id} {asked} (function {code})",
                )
            )
        elif request[2] != code:
            events.append(
                ctx.anomaly(
                    RESPONSE_FUNCTION_MISMATCH,
                    direction,
                    f"response function {code} to a function {request[2]} request (frame {request[0]})",
                )
            )
        return True

    # -- unanswered requests ----------------------------------------------------------------------

    def _expire(self, state: ModbusState, ctx: ParseContext, events: list[Event]) -> None:
        for key, request in state.expire(ctx.ts):
            if request[2] == FunctionCode.DIAGNOSTICS and request[5] == _LISTEN_ONLY:
                continue
            events.append(_unanswered(ctx, state, key, request, f"after {state.timeout:g} s"))

    def gap(self, state: Any, direction: int, ctx: ParseContext) -> None:
        """Bytes were lost: pairing survives (responses still carry their ids), nothing to drop.

        Lost requests, though, leave answers that pair with nothing: until an answer pairs again
        those are the capture's loss (reported as ``tcp.reassembly_gap``), not answers nobody
        asked for.
        """
        if direction == state.swapped:
            state.lost_requests = True

    def truncated(
        self, state: Any, data: memoryview, direction: int, ctx: ParseContext, missing: int
    ) -> Sequence[Event]:
        """The head of an ADU whose end is gone: MBAP, function and the fields kept, values up to the cut.

        The request or response it is pairs as a whole one would (so no unanswered request), its
        record is marked ``truncated``, and only the anomalies the kept bytes prove are reported:
        not the PDU's shortness, which is the capture's.
        """
        size = len(data)
        if state.framing == FRAMING_ASCII:
            # A cut frame's LRC cannot be checked: no record, but a cut answer still answers.
            if direction != state.swapped and ascii_framing.plausible_start(data, 0, size):
                state.answer(int(bytes(data[1:3]), 16) << 16)
            return ()
        if state.framing == FRAMING_RTU:
            # A cut frame's CRC cannot be checked: no record, but a cut answer still answers.
            if size >= 2 and direction != state.swapped and plausible_head(data, 0):
                state.answer(data[0] << 16)
            return ()
        if size < 8:
            return ()  # not even the function code
        transaction_id, protocol_id, length, unit_id, function_code = _unpack_mbap(data, 0)
        if protocol_id or not MIN_LENGTH <= length <= _max_length(function_code) or 6 + length <= size:
            return ()  # not the head of one ADU: the hunt that follows will find the next one
        events: list[Event] = []
        if direction == state.swapped:
            self._request(
                state, data, 8, size, transaction_id, unit_id, length, function_code, direction, ctx, events
            )
        else:
            self._response(
                state, data, 8, size, transaction_id, unit_id, length, function_code, direction, ctx, events
            )
        return mark_truncated(events, TRUNCATED_PDU)

    def close(self, state: Any, ctx: ParseContext) -> Sequence[Event]:
        """The flow ended: its pending requests were never answered."""
        events: list[Event] = []
        for key, request in state.drain():
            if request[2] == FunctionCode.DIAGNOSTICS and request[5] == _LISTEN_ONLY:
                continue
            events.append(_unanswered(ctx, state, key, request, "before the flow ended"))
        return events


def _by_transaction(pending: dict[int, Any], transaction_id: int, code: int, excluded: int) -> int:
    """The key of the one pending request with that transaction id and function, or -1.

    To unit 255 or 0, or, with ``excluded`` not -1, to any unit but those whose bit it sets.  -1
    too when there are several (units asked with one transaction id): which one the device
    answered is a guess, and a wrong one would decode its values by another request's.
    """
    found = -1
    for key in pending:
        unit = key >> 16
        if (
            key & 0xFFFF == transaction_id
            and (unit in (0, 255) or (excluded >= 0 and not (excluded >> unit) & 1))
            and pending[key][2] == code
        ):
            if found >= 0:
                return -1
            found = key
    return found


def _unanswered(ctx: ParseContext, state: ModbusState, key: int, request: Request, when: str) -> Event:
    which = f"transaction {key & 0xFFFF}" if state.framing == FRAMING_MBAP else state.framing.upper()
    return ctx.anomaly(
        UNANSWERED_REQUEST,
        state.swapped,
        f"request of frame {request[0]} (unit {key >> 16}, {which}, function {request[2]}) not answered {when}",
    )
