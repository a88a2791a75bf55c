"""DNP3 transport reassembly: FIR/FIN, sequence, discards, caps."""

from __future__ import annotations

from ics_monitor.dissect.dnp3.constants import MAX_FRAGMENT_SIZE, MAX_REASSEMBLY_KEYS
from ics_monitor.dissect.dnp3.transport import Reassembler

KEY = (0, 1, 10)


def segment(fir: bool, fin: bool, sequence: int, payload: bytes = b"ab") -> bytes:
    return bytes([(0x80 if fin else 0) | (0x40 if fir else 0) | sequence]) + payload


def test_single_segment() -> None:
    anomalies: list[tuple[str, str]] = []
    assert Reassembler().add(KEY, segment(True, True, 5), anomalies) == (b"ab", 1)
    assert anomalies == []


def test_three_segments_with_wrap() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    assert reassembler.add(KEY, segment(True, False, 62, b"a"), anomalies) is None
    assert reassembler.add(KEY, segment(False, False, 63, b"b"), anomalies) is None
    assert reassembler.add(KEY, segment(False, True, 0, b"c"), anomalies) == (b"abc", 3)
    assert anomalies == []
    assert reassembler.fragments == {}


def test_keys_are_independent() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    reassembler.add((0, 1, 10), segment(True, False, 0, b"x"), anomalies)
    reassembler.add((1, 10, 1), segment(True, False, 7, b"y"), anomalies)
    assert reassembler.add((0, 1, 10), segment(False, True, 1, b"z"), anomalies) == (b"xz", 2)
    assert reassembler.add((1, 10, 1), segment(False, True, 8, b"w"), anomalies) == (b"yw", 2)
    assert anomalies == []


def test_no_first() -> None:
    anomalies: list[tuple[str, str]] = []
    assert Reassembler().add(KEY, segment(False, True, 3), anomalies) is None
    assert [code for code, _ in anomalies] == ["dnp3.transport_no_first"]


def test_out_of_sequence_discards() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    reassembler.add(KEY, segment(True, False, 1), anomalies)
    assert reassembler.add(KEY, segment(False, True, 3), anomalies) is None
    assert [code for code, _ in anomalies] == ["dnp3.transport_sequence_error"]
    assert reassembler.fragments == {}


def test_new_first_abandons_fragment() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    reassembler.add(KEY, segment(True, False, 1, b"old"), anomalies)
    assert reassembler.add(KEY, segment(True, True, 9, b"new"), anomalies) == (b"new", 1)
    assert [code for code, _ in anomalies] == ["dnp3.transport_fragment_discarded"]


def test_size_cap() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    payload = bytes(249)
    reassembler.add(KEY, segment(True, False, 0, payload), anomalies)
    number = 1
    while not anomalies:
        reassembler.add(KEY, segment(False, False, number & 0x3F, payload), anomalies)
        number += 1
    assert [code for code, _ in anomalies] == ["dnp3.transport_fragment_too_large"]
    assert number * 249 > MAX_FRAGMENT_SIZE
    assert reassembler.fragments == {}


def test_table_cap_evicts_oldest() -> None:
    reassembler = Reassembler()
    anomalies: list[tuple[str, str]] = []
    for source in range(MAX_REASSEMBLY_KEYS + 1):
        reassembler.add((0, source, 10), segment(True, False, 0), anomalies)
    assert [code for code, _ in anomalies] == ["dnp3.transport_table_full"]
    assert len(reassembler.fragments) == MAX_REASSEMBLY_KEYS
    assert (0, 0, 10) not in reassembler.fragments
    assert reassembler.drop_direction(0) == MAX_REASSEMBLY_KEYS
