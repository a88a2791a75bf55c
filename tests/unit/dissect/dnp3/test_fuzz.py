"""Property tests: random and mutated DNP3 input never makes the dissector raise or stall.

Mutations are applied to application fragments that are then framed with correct CRCs, so they
reach the transport and application parsers instead of dying at the link layer.  The number of
examples comes from ICS_FUZZ_EXAMPLES (small by default; ``make fuzz`` raises it).
"""

from __future__ import annotations

import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ics_monitor.dissect import ParseResult
from ics_monitor.dissect.dnp3.application import parse_fragment
from ics_monitor.events.base import AnomalyEvent
from ics_monitor.events.dnp3 import Dnp3Event
from tests.unit.dissect.dnp3.frames import Harness, link, segments

EXAMPLES = int(os.environ.get("ICS_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

SEEDS = [
    bytes([0xC0, 0x01, 60, 2, 0x06, 60, 3, 0x06, 60, 4, 0x06, 60, 1, 0x06]),
    bytes([0xC0, 0x81, 0, 0, 1, 2, 0x00, 0, 3, 1, 1, 1, 1, 30, 5, 0x17, 1, 2, 1, 0, 0, 0x80, 0x3F]),
    bytes([0xC0, 0x05, 12, 1, 0x28, 1, 0, 3, 0, 0x41, 1, 100, 0, 0, 0, 100, 0, 0, 0, 0]),
    bytes([0xC0, 0x81, 0, 0, 51, 1, 0x07, 1, 1, 2, 3, 4, 5, 6, 2, 3, 0x17, 1, 0, 0x81, 10, 0]),
    bytes([0xC0, 0x19, 70, 3, 0x5B, 1, 30, 0]) + struct.pack("<HH", 26, 4) + bytes(22) + b"file",
    bytes([0xC0, 0x81, 0, 0, 0, 252, 0x00, 0, 0, 1, 4]) + b"ACME" + bytes([0, 255, 0x00, 0, 0, 254, 2, 1, 2]),
    bytes([0xC0, 0x83, 0, 0, 120, 1, 0x5B, 1, 10, 0, 7, 0, 0, 0, 1, 0, 4, 1, 0xAA, 0xBB]),
    bytes([0xC0, 0x02, 80, 1, 0x00, 7, 7, 0x00, 50, 1, 0x07, 1, 1, 2, 3, 4, 5, 6]),
]


def check(results: list[ParseResult], events: list[object]) -> None:
    for result in results:
        assert isinstance(result, ParseResult)
        assert result.reject or result.consumed or result.needed
    for event in events:
        assert isinstance(event, (Dnp3Event, AnomalyEvent))


def feed(data: bytes, confirmed: bool, transport: str = "tcp") -> None:
    harness = Harness(transport)
    harness.state.confirmed = confirmed
    events: list[object] = []
    for direction in (0, 1):
        buffer = data
        position = 0
        while position < len(buffer):
            result = harness.dissector.parse(
                harness.state, memoryview(buffer)[position:], direction, harness.ctx
            )
            harness.results.append(result)
            events.extend(result.events)
            if result.reject or not result.consumed:
                break
            position += result.consumed
    check(harness.results, events)


@FUZZ
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(data: bytes, confirmed: bool) -> None:
    feed(data, confirmed)


@FUZZ
@given(st.binary(max_size=300))
def test_random_fragment(data: bytes) -> None:
    anomalies: list[tuple[str, str]] = []
    parse_fragment(data, anomalies)
    feed(b"".join(segments(data, 10, 1, True)), True)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6),
    st.integers(0, 400),
    st.sampled_from([249, 40, 7]),
)
def test_mutated_fragments_with_good_crcs(
    seed: bytes, flips: list[tuple[int, int]], cut: int, segment_size: int
) -> None:
    data = bytearray(seed)
    for offset, value in flips:
        if data:
            data[offset % len(data)] = value
    data = data[: max(cut, 1)]
    anomalies: list[tuple[str, str]] = []
    parse_fragment(bytes(data), anomalies)
    stream = b"".join(segments(bytes(data), 10, 1, True, size=segment_size))
    feed(stream, True)
    feed(stream, False, "udp")


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=8), st.binary(max_size=12))
def test_random_link_frames(frames: list[tuple[int, bytes]], junk: bytes) -> None:
    stream = b"".join(link(control, 10, 1, user) for control, user in frames)
    feed(junk + stream, True)
    feed(stream + junk, False)
