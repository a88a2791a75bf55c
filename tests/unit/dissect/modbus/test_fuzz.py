"""Property tests: random and mutated Modbus input never makes the dissector raise or stall.

The dissector documents no exception for traffic: whatever the bytes, ``parse`` returns a
``ParseResult`` that consumes, asks for more or rejects, with only Modbus records and catalogued
anomalies.  Mutations start from valid request/response pairs of every function family, so the
response decoders also run with their request pending.  The number of examples comes from
ICS_FUZZ_EXAMPLES (small by default; ``make fuzz`` raises it).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.dissect import DissectEngine, ParseResult, Probe, default_registry
from ics_monitor.dissect.modbus import rtu
from ics_monitor.dissect.modbus.dissector import ModbusDissector
from ics_monitor.events.base import AnomalyEvent
from ics_monitor.events.modbus import ModbusEvent
from tests.unit.dissect.modbus.adus import Harness, adu, context

EXAMPLES = int(os.environ.get("ICS_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# (request PDU, response PDU) of every family.
PAIRS = [
    (b"\x01\x00\x13\x00\x13", b"\x01\x03\xcd\x6b\x05"),
    (b"\x02\x00\xc4\x00\x16", b"\x02\x03\xac\xdb\x35"),
    (b"\x03\x00\x6b\x00\x03", b"\x03\x06\x02\x2b\x00\x00\x00\x64"),
    (b"\x04\x00\x08\x00\x01", b"\x04\x02\x00\x0a"),
    (b"\x05\x00\xac\xff\x00", b"\x05\x00\xac\xff\x00"),
    (b"\x06\x00\x01\x00\x03", b"\x06\x00\x01\x00\x03"),
    (b"\x07", b"\x07\x6d"),
    (b"\x08\x00\x00\xa5\x37", b"\x08\x00\x00\xa5\x37"),
    (b"\x08\x00\x15\x00\x03", b"\x08\x00\x15" + bytes(108)),
    (b"\x0b", b"\x0b\xff\xff\x01\x08"),
    (b"\x0c", b"\x0c\x08\x00\x00\x01\x08\x01\x21\x20\x00"),
    (b"\x0f\x00\x13\x00\x0a\x02\xcd\x01", b"\x0f\x00\x13\x00\x0a"),
    (b"\x10\x00\x01\x00\x02\x04\x00\x0a\x01\x02", b"\x10\x00\x01\x00\x02"),
    (b"\x11", b"\x11\x07\x2a\xffPLC-1"),
    (
        b"\x14\x0e\x06\x00\x04\x00\x01\x00\x02\x06\x00\x03\x00\x09\x00\x02",
        b"\x14\x0c\x05\x06\x0d\xfe\x00\x20\x05\x06\x33\xcd\x00\x40",
    ),
    (b"\x15\x0d\x06\x00\x04\x00\x07\x00\x03\x06\xaf\x04\xbe\x10\x0d",) * 2,
    (b"\x16\x00\x04\x00\xf2\x00\x25",) * 2,
    (
        b"\x17\x00\x03\x00\x06\x00\x0e\x00\x03\x06\x00\xff\x00\xff\x00\xff",
        b"\x17\x0c\x00\xfe\x0a\xcd\x00\x01\x00\x03\x00\x0d\x00\xff",
    ),
    (b"\x18\x04\xde", b"\x18\x00\x06\x00\x02\x01\xb8\x12\x84"),
    (b"\x2b\x0e\x01\x00", b"\x2b\x0e\x01\x01\x00\x00\x02\x00\x04ACME\x80\x02\xff\x00"),
    (b"\x2b\x0d\x00\x01\x60\x00\x00", b"\x2b\x0d\x00\x01\x60\x00\x00\x2a\x00"),
    (b"\x5a\x00\x34\x01\x00" + bytes(300), b"\x5a\x00\xfe"),
    (b"\x41\x01\x02", b"\x41\x00"),
    (b"\x03\x00\x00\x00\x01", b"\x83\x02"),
]


def check(results: list[ParseResult], events: list[Any]) -> None:
    for result in results:
        assert isinstance(result, ParseResult)
        assert result.reject or result.consumed or result.needed
        assert result.consumed >= 0 and result.needed >= 0
    for event in events:
        assert isinstance(event, (ModbusEvent, AnomalyEvent))
        if isinstance(event, AnomalyEvent):
            assert event.code in CATALOGUE


def feed(chunks: list[tuple[int, bytes]], confirmed: bool, transport: str = "tcp", port: int = 502) -> None:
    """Chunks in order, buffered per direction as the engine does (a reject drops the buffer)."""
    harness = Harness(transport, port, max_pending=8, timeout=1.0)
    harness.state.confirmed = confirmed
    events: list[Any] = []
    for step, (direction, data) in enumerate(chunks):
        buffer = harness.buffers[direction] + data
        position = 0
        harness.ctx.ts += 0.4 * step
        while position < len(buffer):
            result = harness.dissector.parse(
                harness.state, memoryview(buffer)[position:], direction, harness.ctx
            )
            harness.results.append(result)
            events.extend(result.events)
            if result.reject or not result.consumed:
                break
            position += result.consumed
        harness.buffers[direction] = b"" if transport == "udp" else buffer[position:]
    events.extend(harness.dissector.close(harness.state, harness.ctx))
    check(harness.results, events)


def mutated_pair(
    request: bytes, response: bytes, flips: list[tuple[int, int]], cut: int, mutate_request: bool
) -> list[tuple[int, bytes]]:
    """The pair as chunks, one of them with ``flips`` written into it and cut after ``cut`` bytes."""
    target = bytearray(request if mutate_request else response)
    for offset, value in flips:
        target[offset % len(target)] = value
    mutated = bytes(target[:cut])
    return [(0, mutated), (1, response)] if mutate_request else [(0, request), (1, mutated)]


def fed_in_pieces(harness: Harness, data: bytes, direction: int, sizes: list[int]) -> list[Any]:
    """``data`` fed in pieces of ``sizes`` (repeated; whole when empty); the events it gave."""
    events: list[Any] = []
    position = 0
    for size in sizes * (len(data) // len(sizes) + 1) if sizes else [len(data)]:
        if position >= len(data):
            break
        events += harness.feed(data[position : position + size], direction)
        position += size
    return events


@FUZZ
@given(st.binary(max_size=600), st.booleans(), st.sampled_from(["tcp", "udp"]))
def test_random_bytes(data: bytes, confirmed: bool, transport: str) -> None:
    feed([(0, data), (1, data)], confirmed, transport)
    assert ModbusDissector().probe(memoryview(data), 0) in (Probe.YES, Probe.NO, Probe.MORE)


@FUZZ
@given(st.integers(0, 255), st.binary(max_size=260), st.integers(0, 0xFFFF), st.booleans())
def test_random_pdu_in_a_good_header(
    function_code: int, body: bytes, transaction_id: int, confirmed: bool
) -> None:
    pdu = bytes([function_code]) + body
    feed([(0, adu(transaction_id, 1, pdu)), (1, adu(transaction_id, 1, pdu))], confirmed)


@FUZZ
@given(
    st.sampled_from(PAIRS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(1, 400),
    st.booleans(),
    st.sampled_from(["tcp", "udp"]),
    st.sampled_from([502, 5020]),
)
def test_mutated_adus(
    pair: tuple[bytes, bytes],
    flips: list[tuple[int, int]],
    cut: int,
    mutate_request: bool,
    transport: str,
    port: int,
) -> None:
    chunks = mutated_pair(adu(9, 1, pair[0]), adu(9, 1, pair[1]), flips, cut, mutate_request)
    feed(chunks, False, transport, port)
    feed(chunks + chunks, True, transport, port)


@FUZZ
@given(
    st.lists(st.sampled_from(PAIRS), min_size=1, max_size=6),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
    st.integers(0, 0xFFFF),
)
def test_random_segmentation(pairs: list[tuple[bytes, bytes]], sizes: list[int], first_id: int) -> None:
    # The same ADUs cut at random places give the same records as whole (TCP keeps the order).
    requests = b"".join(adu((first_id + n) & 0xFFFF, 1, q) for n, (q, _r) in enumerate(pairs))
    responses = b"".join(adu((first_id + n) & 0xFFFF, 1, r) for n, (_q, r) in enumerate(pairs))

    def records(cut: bool) -> list[Any]:
        harness = Harness()
        events: list[Any] = []
        for direction, stream in ((0, requests), (1, responses)):
            events += fed_in_pieces(harness, stream, direction, sizes if cut else [])
        check(harness.results, events)
        return [(e.transaction_id, e.function_code, e.direction, e.values) for e in Harness.records(events)]

    whole = records(False)
    assert len(whole) == 2 * len(pairs)
    assert records(True) == whole


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 1), st.binary(min_size=1, max_size=80)), max_size=12), st.booleans())
def test_random_chunks_through_the_engine(chunks: list[tuple[int, bytes]], aligned: bool) -> None:
    # Strict mode: any exception inside a dissector would propagate here.
    engine = DissectEngine(default_registry(), strict=True)
    fd = engine.start(context("tcp", 502), aligned=aligned)
    assert fd is not None
    start = adu(1, 1, PAIRS[2][0])
    engine.feed(fd, 0, start, 1.0, 1)
    for frame, (direction, data) in enumerate(chunks, start=2):
        engine.feed(fd, direction, data, float(frame), frame)
        if frame % 3 == 0:
            engine.gap(fd, direction)
    engine.end(fd)
    for event in engine.events:
        if isinstance(event, AnomalyEvent):
            assert event.code in CATALOGUE


# -- serial framings over TCP/UDP: RTU (address, PDU, CRC) and ASCII (colon, hex, LRC, CR LF) ------------


def rtu_frame(unit: int, pdu: bytes) -> bytes:
    frame = bytes([unit]) + pdu
    return frame + rtu.crc16(frame, 0, len(frame)).to_bytes(2, "little")


def ascii_frame(unit: int, pdu: bytes) -> bytes:
    frame = bytes([unit]) + pdu
    return b":" + (frame + bytes([(-sum(frame)) & 0xFF])).hex().upper().encode() + b"\r\n"


# The seeds that fit a serial frame (not the 300-byte UMAS request).
SERIAL_PAIRS = [pair for pair in PAIRS if len(pair[0]) <= 250 and len(pair[1]) <= 250]
# (framing, frame builder, server port, bytes a mutation writes)
SERIALS = [
    ("rtu", rtu_frame, 4001, st.integers(0, 255)),
    ("ascii", ascii_frame, 4002, st.sampled_from(b":0123456789ABCDEFaz\r\n\x00")),
]


@FUZZ
@given(
    st.sampled_from(SERIALS).flatmap(
        lambda serial: st.tuples(
            st.just(serial), st.lists(st.tuples(st.integers(0, 600), serial[3]), max_size=4)
        )
    ),
    st.sampled_from(SERIAL_PAIRS),
    st.integers(1, 600),
    st.booleans(),
    st.sampled_from(["tcp", "udp"]),
)
def test_mutated_serial_frames(
    serial_flips: tuple[Any, list[tuple[int, int]]],
    pair: tuple[bytes, bytes],
    cut: int,
    mutate_request: bool,
    transport: str,
) -> None:
    (_framing, make, port, _values), flips = serial_flips
    request, response = make(1, pair[0]), make(1, pair[1])
    chunks = mutated_pair(request, response, flips, cut, mutate_request)
    feed(chunks, False, transport, port)
    feed([(0, request), (1, response), *chunks], True, transport, port)


@FUZZ
@given(
    st.sampled_from(SERIALS),
    st.lists(st.sampled_from(SERIAL_PAIRS), min_size=1, max_size=6),
    st.lists(st.integers(1, 40), min_size=1, max_size=20),
)
def test_random_serial_segmentation(
    serial: tuple[Any, ...], pairs: list[tuple[bytes, bytes]], sizes: list[int]
) -> None:
    # The same frames cut at random places give the same records as whole: RTU frame ends found by
    # the function's size or by the CRC, ASCII ones at CR LF, do not depend on where TCP cut the
    # stream.  The flow's first frame comes whole (a master writes a frame at once).
    framing, make, port, _values = serial

    def records(cut: bool) -> list[Any]:
        harness = Harness(server_port=port)
        events: list[Any] = []
        for number, (request, response) in enumerate(pairs):
            for direction, frame in ((0, make(1, request)), (1, make(1, response))):
                whole = not cut or (number == 0 and direction == 0)
                events += fed_in_pieces(harness, frame, direction, [] if whole else sizes)
        check(harness.results, events)
        return [(e.framing, e.function_code, e.direction, e.values) for e in Harness.records(events)]

    whole = records(False)
    assert len(whole) == 2 * len(pairs)
    assert {record[0] for record in whole} == {framing}
    assert records(True) == whole


def test_seeds_are_valid() -> None:
    # The mutation seeds themselves give records and no anomaly.
    harness = Harness()
    for number, (request, response) in enumerate(PAIRS):
        events = harness.feed(adu(number, 1, request), 0) + harness.feed(adu(number, 1, response), 1)
        assert Harness.codes(events) == [], number
        assert len(Harness.records(events)) == 2
