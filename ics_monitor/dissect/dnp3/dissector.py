"""The DNP3 dissector: link frames -> transport segments -> application fragments -> records.

TCP and UDP, port 20000 by hint and any port by probe (0x05 0x64 and a valid header CRC is a strong
signature: a random match is 1 in 2^32).  ``parse`` takes every complete link frame in the buffer at
once.  Broken input after confirmation raises an anomaly and never stops the flow: a bad header CRC
or length makes us scan forward to the next 0x05 0x64 whose header CRC is valid; a bad data block
CRC drops the frame from reassembly as an outstation would.  Such a frame still gives a record
(``crc_ok`` false, not paired) when it alone held a whole fragment, so what was attempted is seen.

Before confirmation the flow state is rebuilt from the buffered bytes on every call, and frames
that do not yet complete a fragment are not consumed (``needed``): the engine confirms a flow on
its first record, so a first multi-frame fragment must not be mistaken for a non-DNP3 stream.

Speed: polling repeats the same frames and fragments all day, so frames whose CRCs were checked and
fragments that were decoded are remembered, keyed by their exact bytes, and a fragment's objects
also by its function code and the bytes after its header, for the next poll's fragment that differs
in its sequence number or IIN alone (nothing is taken on trust; the caches are bounded).  Records
share the cached ``objects`` and ``link`` dicts: read-only.
"""

from __future__ import annotations

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
from ics_monitor.dissect.dnp3.application import DnpObject, parse_fragment
from ics_monitor.dissect.dnp3.constants import (
    APP_TOO_SHORT,
    ASSOCIATION_TABLE_FULL,
    DEFAULT_PORT,
    FUNCTION_NAMES,
    LINK_BAD_LENGTH,
    LINK_CRC_BAD,
    LINK_GARBAGE,
    LINK_HEADER_CRC_BAD,
    LINK_UNKNOWN_FUNCTION,
    MAX_ASSOCIATIONS,
    OBJECT_OVERRUN,
    PRIMARY_FUNCTION_NAMES,
    RESPONSE_FUNCTIONS,
    SECONDARY_FUNCTION_NAMES,
    TRANSPORT_FRAGMENT_DISCARDED,
    UNKNOWN,
    iin_names,
)
from ics_monitor.dissect.dnp3.crc import block_crc_ok, header_crc_ok
from ics_monitor.dissect.dnp3.link import ADDRESSES, FRAME_SIZE, user_data, user_data_unchecked
from ics_monitor.dissect.dnp3.state import Dnp3State
from ics_monitor.events.base import Event
from ics_monitor.events.dnp3 import Dnp3Event, new_dnp3_event

_START: Final = b"\x05\x64"
# Entries per cache.  Frames are at most 292 bytes; only fragments of up to CACHE_FRAGMENT_SIZE
# bytes and CACHE_POINTS points are kept (polls and their answers), so the caches stay within a few
# tens of MB whatever the traffic.
CACHE_ENTRIES: Final = 4096
CACHE_FRAGMENT_SIZE: Final = 512
CACHE_POINTS: Final = 64
# Bytes searched per call for the next frame start when resynchronising (bounded work per call).
RESYNC_WINDOW: Final = 2048
# Junk bytes before a stream's first frame that are skipped (with an anomaly) to find it.
LEADING_JUNK: Final = 64
_unpack_addresses: Final = ADDRESSES.unpack_from

# A decoded fragment: (header fields or None when too short, objects, anomalies).
Header = tuple[int, str, int, bool, bool, bool, bool, int | None, tuple[str, ...] | None, str, int]
Decoded = tuple[Header | None, tuple[DnpObject, ...], tuple[tuple[str, str], ...]]
# A checked frame: (link dict, destination, source, transport segment or None for link-only frames,
# the decoded fragment when the segment is a whole one: FIR and FIN).
KnownFrame = tuple[dict[str, Any], int, int, bytes | None, Decoded | None]


def _link_info(control: int) -> dict[str, Any]:
    """The ``link`` part of a record for one control octet (IEEE 1815 9.2.4.1.3)."""
    function = control & 0x0F
    primary = bool(control & 0x40)
    names = PRIMARY_FUNCTION_NAMES if primary else SECONDARY_FUNCTION_NAMES
    return {
        "control": control,
        "function_code": function,
        "function": names.get(function, UNKNOWN),
        "dir": bool(control & 0x80),
        "prm": primary,
        "fcb": primary and bool(control & 0x20),
        "fcv": primary and bool(control & 0x10),
        "dfc": not primary and bool(control & 0x10),
    }


LINK_INFO: tuple[dict[str, Any], ...] = tuple(_link_info(control) for control in range(256))


def _header_stub(obj: DnpObject) -> bool:
    """An object header recorded without its range or count (``parse_objects`` keeps those)."""
    range_code = obj["range_code"]
    if range_code <= 5:
        return obj["start"] is None
    return range_code != 6 and obj["count"] == 0 and not obj["points"]


def _find_frame(data: memoryview, position: int) -> int:
    """Offset of the next 0x05 0x64 at or after ``position`` whose header CRC is valid.

    A start too close to the end to check its CRC is returned as a candidate.  At most
    RESYNC_WINDOW bytes are searched; without a start there, the offset after them is returned
    (less one when the last is 0x05, which may begin the next frame), and the caller goes on.
    """
    size = len(data)
    chunk = bytes(data[position : position + RESYNC_WINDOW])
    offset = 0
    while True:
        found = chunk.find(_START, offset)
        if found < 0:
            end = position + len(chunk)
            return max(end - 1 if chunk.endswith(b"\x05") else end, position)
        at = position + found
        if at + 10 > size or (data[at + 2] >= 5 and header_crc_ok(data, at)):
            return at
        offset = found + 1


def _first_frame(data: memoryview) -> int:
    """Offset of the first frame start after at most LEADING_JUNK bytes at a stream's start, or -1.

    A frame start: 0x05 0x64 with a length of at least 5 and a valid header CRC, or a 0x05 0x64
    too close to the end to check them yet.
    """
    chunk = bytes(data[: LEADING_JUNK + 10])
    offset = 1
    while True:
        found = chunk.find(_START, offset)
        if found < 0 or found > LEADING_JUNK:
            return -1
        if found + 10 > len(data) or (data[found + 2] >= 5 and header_crc_ok(data, found)):
            return found
        offset = found + 1


def _header(fragment: bytes, function_code: int, control: int, iin: int | None) -> Header:
    return (
        function_code,
        FUNCTION_NAMES.get(function_code, UNKNOWN),
        control & 0x0F,
        bool(control & 0x80),
        bool(control & 0x40),
        bool(control & 0x20),
        bool(control & 0x10),
        iin,
        iin_names(iin) if iin is not None else None,
        "response" if function_code >= 128 else "request",
        len(fragment),
    )


class Dnp3Dissector(Dissector):
    """DNP3 over TCP and UDP (IEEE 1815-2012, link + transport + application layers)."""

    name = "dnp3"
    transports = frozenset({"tcp", "udp"})
    tcp_ports = frozenset({DEFAULT_PORT})
    udp_ports = frozenset({DEFAULT_PORT})
    # Detection may buffer a whole multi-frame fragment before the first record (64 frames max).
    max_pdu = 64 * 292

    def __init__(self) -> None:
        self._frames: dict[bytes, KnownFrame] = {}
        self._fragments: dict[bytes, Decoded] = {}
        # Function code and the bytes after the header -> (objects, anomalies) (see ``_decode``).
        self._bodies: dict[bytes, tuple[tuple[DnpObject, ...], tuple[tuple[str, str], ...]]] = {}

    def probe(self, data: memoryview, direction: int) -> Probe:
        """0x05 0x64, a length of at least 5 and a valid header CRC; after a few junk bytes too.

        Outstations scan for a frame start and skip what comes before (opendnp3 does): a command
        behind a few junk bytes is carried out, so it must be read (``_first_frame``).
        """
        size = len(data)
        if size < 2:
            return Probe.MORE if size == 0 or data[0] == 0x05 else Probe.NO
        if data[0] != 0x05 or data[1] != 0x64:
            start = _first_frame(data)
            if start < 0:
                return Probe.NO
            return Probe.MORE if size - start < 10 else Probe.YES
        if size < 10:
            return Probe.MORE
        return Probe.YES if data[2] >= 5 and header_crc_ok(data, 0) else Probe.NO

    def new_state(self, ctx: ParseContext) -> Any:
        """Reassembly buffers and pending requests of one flow."""
        return Dnp3State(ctx.endpoints(0), ctx.endpoints(1))

    def parse(self, state: Dnp3State, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        """Every complete link frame in ``data``; see the module docstring for broken input."""
        confirmed = state.confirmed
        size = len(data)
        position = 0
        events: list[Event] = []
        junk: Event | None = None
        first = 0
        if not confirmed:
            state.reset()
            if size >= 2 and (data[0] != 0x05 or data[1] != 0x64):
                # Junk before the stream's first frame (``probe``): skipped, and said.
                position = _first_frame(data)
                if position < 0:
                    return NOT_THIS_PROTOCOL
                first = position
                junk = ctx.anomaly(
                    LINK_GARBAGE, direction, f"{position} bytes before the first link frame skipped"
                )
        known_frames = self._frames
        while size - position >= 10:
            frame_size = FRAME_SIZE[data[position + 2]]
            if frame_size and size - position >= frame_size:
                known = known_frames.get(data[position : position + frame_size].tobytes())
                if known is not None:
                    decoded = known[4]
                    if decoded is not None and not state.reassembler.fragments:
                        self._fragment(state, decoded, 1, known, direction, ctx, events, True)
                    elif known[3] is None:
                        self._link_only(state, known, direction, ctx, events)
                    else:
                        self._segment(state, known, direction, ctx, events)
                    position += frame_size
                    continue
            if (
                data[position] != 0x05
                or data[position + 1] != 0x64
                or not frame_size
                or not header_crc_ok(data, position)
            ):
                if not confirmed:
                    return NOT_THIS_PROTOCOL
                position = self._resync(data, position, direction, ctx, events)
                continue
            if size - position < frame_size:
                break
            self._frame(state, data, position, data[position + 2], direction, ctx, events)
            position += frame_size
        if confirmed:
            if position:
                return ParseResult(position, 0, events)
            needed = 10 - size if size < 10 else FRAME_SIZE[data[2]] - size
            return ParseResult(0, needed, events)
        if any(isinstance(event, Dnp3Event) and event.crc_ok for event in events):
            state.confirmed = True
            return ParseResult(position, 0, events if junk is None else [junk, *events])
        if events:
            return NOT_THIS_PROTOCOL  # anomalies only (or a record of a bad frame): not healthy DNP3
        if position > first:
            # Good frames of a fragment longer than one segment: CRC-checked DNP3, so confirm.
            state.confirmed = True
            return ParseResult(position, 0, [] if junk is None else [junk], valid=True)
        if size - position < 10:
            return ParseResult(0, 10 - (size - position))
        return ParseResult(0, FRAME_SIZE[data[position + 2]] - (size - position))

    def _resync(
        self, data: memoryview, position: int, direction: int, ctx: ParseContext, events: list[Event]
    ) -> int:
        """Skip to the next plausible frame start, with an anomaly naming what was skipped."""
        if data[position] == 0x05 and data[position + 1] == 0x64:
            if data[position + 2] < 5:
                code, detail = LINK_BAD_LENGTH, f"link length {data[position + 2]}"
            else:
                code, detail = LINK_HEADER_CRC_BAD, "link header CRC does not match; frame dropped"
        else:
            code, detail = LINK_GARBAGE, "bytes that do not start a link frame"
        found = _find_frame(data, position + 1)
        events.append(ctx.anomaly(code, direction, f"{detail}; {found - position} bytes skipped"))
        return found

    def _frame(
        self,
        state: Dnp3State,
        data: memoryview,
        position: int,
        length: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> None:
        """One link frame with a valid header, wholly in ``data``, not seen before."""
        control = data[position + 3]
        dst, src = _unpack_addresses(data, position + 4)
        function = control & 0x0F
        primary = control & 0x40
        link = LINK_INFO[control]
        segment: bytes | None = None
        if primary and function in {3, 4}:
            if length == 5:
                events.append(
                    ctx.anomaly(LINK_BAD_LENGTH, direction, "user data frame with no transport header")
                )
                return
            segment, bad_block = user_data(data, position, length)
            if bad_block >= 0:
                events.append(
                    ctx.anomaly(
                        LINK_CRC_BAD,
                        direction,
                        f"data block {bad_block} CRC does not match; frame {src}->{dst} dropped",
                    )
                )
                segment = user_data_unchecked(data, position, length)
                if segment[0] & 0xC0 == 0xC0:
                    # Not reassembled nor paired, but recorded: the attempt is worth seeing.
                    bad: KnownFrame = (link, dst, src, segment, None)
                    self._fragment(state, self._decode(segment[1:]), 1, bad, direction, ctx, events, False)
                return
        elif link["function"] == UNKNOWN:
            events.append(
                ctx.anomaly(
                    LINK_UNKNOWN_FUNCTION,
                    direction,
                    f"{'primary' if primary else 'secondary'} link function {function}",
                )
            )
            self._link_only(state, (link, dst, src, None, None), direction, ctx, events)
            return
        whole = segment is not None and segment[0] & 0xC0 == 0xC0
        known = (link, dst, src, segment, self._decode(segment[1:]) if whole and segment else None)
        if len(self._frames) >= CACHE_ENTRIES:
            self._frames.clear()
        self._frames[data[position : position + FRAME_SIZE[length]].tobytes()] = known
        if segment is None:
            self._link_only(state, known, direction, ctx, events)
        else:
            self._segment(state, known, direction, ctx, events)

    def _segment(
        self, state: Dnp3State, known: KnownFrame, direction: int, ctx: ParseContext, events: list[Event]
    ) -> None:
        """A transport segment with good CRCs into reassembly; a completed fragment is recorded."""
        _, dst, src, segment, _ = known
        assert segment is not None
        anomalies: list[tuple[str, str]] = []
        complete = state.reassembler.add((direction, src, dst), segment, anomalies)
        if anomalies:
            for code, detail in anomalies:
                events.append(ctx.anomaly(code, direction, detail))
        if complete is not None:
            fragment, frames = complete
            decoded = self._fragments.get(fragment) or self._decode(fragment)
            self._fragment(state, decoded, frames, known, direction, ctx, events, True)

    def _link_only(
        self, state: Dnp3State, known: KnownFrame, direction: int, ctx: ParseContext, events: list[Event]
    ) -> None:
        """Record of a frame without user data (reset link, link status, ACK ...)."""
        link, dst, src, _, _ = known
        src_ip, src_port, dst_ip, dst_port = state.endpoints[direction]
        events.append(
            new_dnp3_event(
                ts=ctx.ts,
                frame=ctx.frame,
                flow_id=ctx.flow_id,
                transport=ctx.transport,
                src_ip=src_ip,
                src_port=src_port,
                dst_ip=dst_ip,
                dst_port=dst_port,
                # Primary frames start a link transaction, secondary frames answer it, whichever
                # station (DIR) sends them: outstations poll link status too.
                direction="request" if link["prm"] else "response",
                src=src,
                dst=dst,
                link=link,
                frames=1,
                length=None,
                function_code=None,
                function=None,
                sequence=None,
                fir=None,
                fin=None,
                con=None,
                uns=None,
                iin=None,
                iin_names=None,
                crc_ok=True,
                objects=(),
            )
        )

    def _decode(self, fragment: bytes) -> Decoded:
        """Decode a fragment, from the cache when these exact bytes were decoded before.

        The objects (and the anomalies found in them) depend on the function code and the bytes
        after the header alone: a fragment that differs only in its sequence number, flags or IIN
        (the next poll, and its answer) takes them from the one decoded before (``_bodies``), the
        same objects, not decoded again nor sent to the analysing process again (a batch holds
        a repeated record part once: ``shard.marshalled``).
        """
        cached = self._fragments.get(fragment)
        if cached is None:
            size = len(fragment)
            body: bytes | None = None
            shared: tuple[tuple[DnpObject, ...], tuple[tuple[str, str], ...]] | None = None
            function_code = control = 0
            iin: int | None = None
            if 2 <= size <= CACHE_FRAGMENT_SIZE:
                control = fragment[0]
                function_code = fragment[1]
                start = 2
                if function_code in RESPONSE_FUNCTIONS:
                    start = 4  # a response's IIN: parse_fragment reads it, not the objects
                    if size >= 4:
                        iin = fragment[2] << 8 | fragment[3]
                if size >= start:
                    body = fragment[1:2] + fragment[start:]
                    shared = self._bodies.get(body)
            if shared is not None:
                cached = (_header(fragment, function_code, control, iin), shared[0], shared[1])
            else:
                anomalies: list[tuple[str, str]] = []
                decoded = parse_fragment(fragment, anomalies)
                if decoded is None:
                    cached = (None, (), tuple(anomalies))
                else:
                    header = _header(fragment, decoded.function_code, decoded.control, decoded.iin)
                    cached = (header, tuple(decoded.objects), tuple(anomalies))
            if size <= CACHE_FRAGMENT_SIZE and sum(len(obj["points"]) for obj in cached[1]) <= CACHE_POINTS:
                if shared is None and body is not None:  # decoded here, not taken from ``_bodies``
                    bodies = self._bodies
                    if len(bodies) >= CACHE_ENTRIES:
                        bodies.clear()
                    bodies[body] = (cached[1], cached[2])
                if len(self._fragments) >= CACHE_ENTRIES:
                    self._fragments.clear()
                self._fragments[fragment] = cached
        return cached

    def _fragment(
        self,
        state: Dnp3State,
        decoded: Decoded,
        frames: int,
        known: KnownFrame,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
        crc_ok: bool,
    ) -> None:
        """One complete application fragment: decode, pair, record."""
        header, objects, anomalies = decoded
        if anomalies:
            for code, detail in anomalies:
                events.append(ctx.anomaly(code, direction, detail))
        if header is None:
            return
        function_code, function, sequence, fir, fin, con, uns, iin, names, kind, length = header
        link, dst, src, _, _ = known
        request_function_code = request_function = request_frame = confirmed_frame = None
        frame = ctx.frame
        if crc_ok:
            if function_code in {129, 131}:
                request = state.response(dst, src, sequence, fir, fin)
                if request is not None:
                    request_function_code, request_frame = request
                    request_function = FUNCTION_NAMES.get(request_function_code, UNKNOWN)
                if con:
                    state.expect_confirm(src, dst, sequence, False, frame)
            elif function_code == 130:
                if con:
                    state.expect_confirm(src, dst, sequence, True, frame)
            elif function_code == 0:
                if state.confirmable:
                    confirmed_frame = state.confirm(src, dst, sequence, uns)
            elif not state.request(src, dst, sequence, function_code, frame):
                events.append(
                    ctx.anomaly(
                        ASSOCIATION_TABLE_FULL,
                        direction,
                        f"{MAX_ASSOCIATIONS} associations with pending requests; the oldest is dropped",
                    )
                )
        src_ip, src_port, dst_ip, dst_port = state.endpoints[direction]
        # Positional (the hot path), in field order: see new_dnp3_event.
        events.append(
            new_dnp3_event(
                ctx.ts,
                frame,
                ctx.flow_id,
                ctx.transport,
                src_ip,
                src_port,
                dst_ip,
                dst_port,
                kind,
                src,
                dst,
                link,
                frames,
                length,
                function_code,
                function,
                sequence,
                fir,
                fin,
                con,
                uns,
                iin,
                names,
                crc_ok,
                objects,
                request_function_code,
                request_function,
                request_frame,
                confirmed_frame,
            )
        )

    def truncated(
        self, state: Any, data: memoryview, direction: int, ctx: ParseContext, missing: int
    ) -> Sequence[Event]:
        """The head of a link frame whose end is gone, when it starts an application fragment.

        The header CRC and those of the data blocks kept whole must match (a block with a bad
        CRC is damage, not a cut); the bytes of the block the cut falls in are taken unchecked.
        A frame with the first transport segment (FIR) gives the fragment's record as far as
        kept: function, IIN, the objects whole before the cut; it pairs as a complete one.  The
        rest of a fragment of several frames is not awaited.  ``crc_ok`` says the CRCs kept matched.
        """
        size = len(data)
        if size < 13 or data[0] != 0x05 or data[1] != 0x64 or not header_crc_ok(data, 0):
            return ()
        length = data[2]
        frame_size = FRAME_SIZE[length]
        control = data[3]
        if frame_size <= size or length == 5 or not control & 0x40 or control & 0x0F not in (3, 4):
            return ()
        parts: list[memoryview] = []
        position = 10
        remaining = length - 5
        while remaining > 0:
            block = 16 if remaining > 16 else remaining
            if size < position + block + 2:
                parts.append(data[position : min(size, position + block)])
                break
            if not block_crc_ok(data, position, block):
                return ()
            parts.append(data[position : position + block])
            position += block + 2
            remaining -= block
        segment = b"".join(parts)
        if len(segment) < 3 or not segment[0] & 0x40:
            return ()  # not the first segment of a fragment: no application header
        dst, src = _unpack_addresses(data, 4)
        known: KnownFrame = (LINK_INFO[control], dst, src, segment, None)
        decoded = self._decode(segment[1:])
        objects = decoded[1]
        if objects and _header_stub(objects[-1]):
            # The cut fell in the last object's range or count: its header says nothing yet.
            decoded = (decoded[0], objects[:-1], decoded[2])
        events: list[Event] = []
        self._fragment(state, decoded, 1, known, direction, ctx, events, True)
        if any(isinstance(event, Dnp3Event) for event in events):
            state.confirmed = True
        return mark_truncated(events, APP_TOO_SHORT, OBJECT_OVERRUN)

    def gap(self, state: Any, direction: int, ctx: ParseContext) -> None:
        """Bytes lost: fragments in progress in that direction can no longer complete."""
        state.reassembler.drop_direction(direction)

    def close(self, state: Any, ctx: ParseContext) -> Sequence[Event]:
        """Fragments still in progress when the flow ends."""
        return [
            ctx.anomaly(
                TRANSPORT_FRAGMENT_DISCARDED,
                key[0],
                f"flow ended with {fragment.size} bytes of a fragment {key[1]}->{key[2]} pending",
            )
            for key, fragment in state.reassembler.fragments.items()
        ]
