"""Property tests: random and mutated S7 input never makes the dissector raise or stall.

Mutations are applied to S7comm / S7comm-plus PDUs and COTP headers that are then framed in valid
TPKTs, so they reach the deep decoders instead of dying at the framing.  The number of examples
comes from ICS_FUZZ_EXAMPLES (small by default; ``make fuzz`` raises it).
"""

from __future__ import annotations

import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ics_monitor.dissect import ParseResult
from ics_monitor.dissect.s7comm.parser import decode_szl, parse_pdu, parse_plus
from ics_monitor.events.base import AnomalyEvent
from ics_monitor.events.s7comm import CotpEvent, S7commEvent, S7commPlusEvent
from tests.unit.dissect.s7comm.frames import (
    CR,
    DB1_READ,
    Harness,
    any_item,
    dt,
    file_name,
    module_entry,
    plus,
    plus_fragments,
    plus_request,
    read_answer,
    read_job,
    s7,
    szl_answer,
    tpkt,
    userdata,
)

EXAMPLES = int(os.environ.get("ICS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

SEEDS = [
    read_job(1, [DB1_READ, any_item(0x1D, 0, 0, 2, 29), any_item(0x83, 0, 4, 1, 1, 3)]),
    read_answer(1, [b"\x01\x02\x03", b"\x04"]),
    s7(1, 2, bytes([0x05, 1]) + DB1_READ, bytes([0, 4, 0, 32]) + b"\xde\xad\xbe\xef"),
    s7(3, 2, bytes([0x05, 2]), b"\xff\x0a"),
    s7(1, 3, bytes([0xF0, 0, 0, 1, 0, 1, 1, 0xE0])),
    s7(1, 4, bytes([0x1A, 0, 1, 0]) + bytes(4) + file_name("0A", 1) + bytes([13]) + b"1000100000084"),
    s7(3, 5, bytes([0x1E, 1]), struct.pack(">HH", 4, 0xFB) + b"MC7!"),
    s7(1, 6, bytes([0x28]) + bytes(6) + b"\xfd\x00\x0a\x01\x00" + b"0A00001P" + b"\x05_DELE"),
    szl_answer(7, 0x0011, 0, 28, [module_entry(1, "6ES7 315-2EH14-0AB0", 4, 1)]),
    userdata(8, 2, 4, 1, struct.pack(">HHHH", 0x001C, 0, 34, 1) + bytes(34), reference=3, last=False),
    userdata(9, 2, 3, 3, bytes(78)),
    userdata(10, 2, 7, 1, bytes([0, 0x20, 0x24, 5, 17, 12, 34, 56, 0, 0])),
    s7(2, 11, b"", error=0xD241),
]
PLUS_SEEDS = [
    plus(1, plus_request(0x04CA, 1, 0x120)),
    plus(3, plus_request(0x054C, 2, 0x3BE), digest=True),
    plus(2, bytes([0x31]) + bytes(40), trailer=False),
    b"\x72\xff\x01\x00",
]


def check(harness: Harness, events: list[object]) -> None:
    for result in harness.results:
        assert isinstance(result, ParseResult)
        assert result.reject or result.consumed or result.needed
    for event in events:
        assert isinstance(event, (S7commEvent, S7commPlusEvent, CotpEvent, AnomalyEvent))


def feed(stream: bytes, confirmed: bool) -> None:
    harness = Harness(confirmed=confirmed)
    events: list[object] = []
    for direction in (0, 1):
        events += harness.feed(stream, direction)
    events += harness.close()
    check(harness, events)


def mutate(data: bytes, flips: list[tuple[int, int]], cut: int) -> bytes:
    mutated = bytearray(data)
    for offset, value in flips:
        if mutated:
            mutated[offset % len(mutated)] = value
    return bytes(mutated[: max(cut, 1)])


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data: bytes, confirmed: bool) -> None:
    feed(data, confirmed)


@FUZZ
@given(st.binary(max_size=400))
def test_random_pdus_in_valid_framing(data: bytes) -> None:
    parse_pdu(b"\x32" + data, [])
    parse_plus(b"\x72" + data, bool(data and data[0] & 1), [])
    decode_szl(data, [])
    feed(CR + dt(b"\x32" + data) + dt(b"\x72" + data), True)


@FUZZ
@given(
    st.sampled_from(SEEDS + PLUS_SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(1, 400),
    st.integers(0, 3),
)
def test_mutated_pdus(seed: bytes, flips: list[tuple[int, int]], cut: int, segments: int) -> None:
    pdu = mutate(seed, flips, cut)
    problems: list[tuple[str, str]] = []
    if pdu[0] == 0x32:
        parse_pdu(pdu, problems)
    # Split over 1-4 COTP data TPDUs (EOT clear on all but the last).
    size = max(1, len(pdu) // (segments + 1))
    parts = [pdu[i : i + size] for i in range(0, len(pdu), size)]
    stream = b"".join(dt(part, eot=index == len(parts) - 1) for index, part in enumerate(parts))
    feed(stream, True)
    feed(CR + stream, False)


# TIA Portal's stop (SetVariable of CPUexecUnit.operatingStateReq = 1), as its data part.
_STOP = plus_request(0x04F2, 9, 0x38C) + struct.pack(">I", 52) + b"\x01\x90\x77\x00\x08\x01" + bytes(5)


@FUZZ
@given(
    st.lists(st.integers(0, len(_STOP)), max_size=40),
    st.lists(st.integers(0, 45), max_size=30),
    st.booleans(),
    st.binary(max_size=40),
)
def test_fragmented_requests_lose_and_duplicate_no_record(
    cuts: list[int], keep_alives: list[int], digest: bool, tail: bytes
) -> None:
    """A stop cut into fragments anywhere, keep-alives between them, then more traffic: one record
    per PDU in frame order whatever is held, and the stop is decoded unless the hold gave up (then
    an anomaly says so)."""
    version = 3 if digest else 2
    pdus = plus_fragments(version, _STOP, sorted(set(cuts)), digest=digest)
    for position in sorted(keep_alives, reverse=True):
        pdus.insert(min(position, len(pdus) - 1) + 1 if len(pdus) > 1 else 1, b"\x72\xff\x07\x00")
    pdus.append(plus(version, plus_request(0x054C, 10, 0x38C) + tail, digest=digest))
    harness = Harness()
    events: list[object] = []
    for frame, pdu in enumerate(pdus, 1):
        events += harness.feed(dt(pdu), 0, frame)
    events += harness.close()
    check(harness, events)
    records = Harness.records(events)
    assert [r.frame for r in records] == list(range(1, len(pdus) + 1))  # type: ignore[attr-defined]
    stop = records[0]
    if "s7comm_plus.held_request_cut" not in Harness.codes(events):
        assert (stop.function, stop.object_id, stop.attribute_id, stop.value) == ("SET_VARIABLE", 52, 2167, 1)  # type: ignore[attr-defined]


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=30)), max_size=6), st.binary(max_size=12))
def test_random_cotp_headers(tpdus: list[tuple[int, bytes]], junk: bytes) -> None:
    stream = b"".join(tpkt(bytes([len(body) + 1, code]) + body) for code, body in tpdus)
    feed(junk + stream, True)
    feed(stream + junk, False)
