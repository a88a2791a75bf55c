"""Property tests of IP fragment reassembly (decode/fragments.py), beyond the decoder's random bytes.

Any cut of a datagram into 8-byte-aligned fragments, sent in any order with duplicates and
consistent overlaps, reassembles to exactly the original with no anomaly; arbitrary fragments
never raise, only report catalogued codes, and never hold more datagrams than the cap.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.decode.fragments import FragmentReassembler

# An IP protocol without a transport-header minimum (tiny first fragments are reported for TCP/UDP).
PROTO = 253
KEY = (4, b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02", PROTO, 77)


@st.composite
def fragmented(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes, bool]]]:
    """A datagram and fragments covering it: a partition plus extra overlapping copies, shuffled."""
    size = draw(st.integers(min_value=1, max_value=3000))
    datagram = draw(st.binary(min_size=size, max_size=size))
    cuts = sorted(set(draw(st.lists(st.integers(min_value=0, max_value=(size - 1) // 8), max_size=12))))
    bounds = [0, *(cut * 8 for cut in cuts if 0 < cut * 8 < size), size]
    pieces = [(start, end) for start, end in pairwise(bounds) if end > start]
    extras = draw(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=(size - 1) // 8), st.integers(min_value=1, max_value=400)
            ),
            max_size=4,
        )
    )
    pieces += [(block * 8, min(size, block * 8 + length)) for block, length in extras]
    fragments = [(start, datagram[start:end], end < size) for start, end in pieces]
    return datagram, draw(st.permutations(fragments))


@settings(max_examples=300, deadline=None)
@given(fragmented())
def test_any_fragmentation_reassembles_the_original(
    case: tuple[bytes, list[tuple[int, bytes, bool]]],
) -> None:
    datagram, fragments = case
    codes: list[str] = []
    reassembler = FragmentReassembler()
    result = None
    for number, (offset, payload, more) in enumerate(fragments, start=1):
        result = reassembler.add(KEY, float(number), len(payload) + 34, offset, more, payload, report(codes))
        if result is not None:
            break
    assert result is not None
    assert result[0] == datagram
    assert result[1] == number  # frames counted up to the completing one
    assert codes == []
    assert len(reassembler) == 0


def report(codes: list[str]) -> Callable[[str, str], None]:
    def add(code: str, detail: str) -> None:
        codes.append(code)

    return add


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),  # datagram id
            st.integers(min_value=0, max_value=8191),  # offset in 8-byte units
            st.booleans(),  # more fragments
            st.binary(max_size=64),
            st.sampled_from([6, 17, PROTO]),
            st.floats(min_value=0, max_value=100),  # seconds later
        ),
        max_size=30,
    )
)
def test_arbitrary_fragments_never_raise(fragments: list[tuple[int, int, bool, bytes, int, float]]) -> None:
    codes: list[str] = []
    reassembler = FragmentReassembler(timeout=30.0, max_datagrams=2)
    now = 0.0
    for ident, units, more, payload, proto, later in fragments:
        now += later
        key = (4, b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", proto, ident)
        result = reassembler.add(key, now, len(payload) + 34, units * 8, more, payload, report(codes))
        if result is not None:
            assert len(result[0]) <= 65535
        assert len(reassembler) <= 2
    reassembler.flush(report(codes))
    assert len(reassembler) == 0
    assert all(code in CATALOGUE for code in codes)
