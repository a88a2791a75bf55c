"""The dissect engine with test-only dissectors over hand-built byte streams."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.dissect import DissectEngine, ParseContext, Registry
from tests.support.lenmsg import CrashingDissector, LenMsgDissector, StallingDissector


def pdu(body: bytes) -> bytes:
    return (
        struct.pack(
            "!HH",
            0xABCD,  # magic
            len(body),  # body length
        )
        + body
    )


def context(port: int = 7777, transport: str = "tcp") -> ParseContext:
    return ParseContext("f1", transport, "192.0.2.10", 40000, "192.0.2.20", port)


def engine_for(*dissectors: object, strict: bool = True, emit: bool = True) -> DissectEngine:
    return DissectEngine(Registry(dissectors), strict=strict, emit=emit)  # type: ignore[arg-type]


def feed_all(
    engine: DissectEngine,
    chunks: list[tuple[int, bytes]],
    aligned: bool = True,
    port: int = 7777,
    transport: str = "tcp",
) -> list[object]:
    fd = engine.start(context(port, transport), aligned=aligned)
    assert fd is not None
    for frame, (direction, data) in enumerate(chunks, start=1):
        engine.feed(fd, direction, data, float(frame), frame)
    engine.end(fd)
    return engine.events


def bodies(events: list[object]) -> list[str]:
    return [e.body for e in events if getattr(e, "event_type", "") == "lenmsg"]  # type: ignore[attr-defined]


def test_split_pdu_needs_more_then_completes_in_later_frame() -> None:
    whole = pdu(b"hello")
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(0, whole[:3]), (0, whole[3:])])
    assert bodies(events) == ["hello"]
    assert events[0].frame == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("cut", [1, 3, 5, 8])
def test_first_pdu_split_before_the_other_direction_confirms_is_read_whole(cut: int) -> None:
    """A client's first PDU cut over two segments, the server's greeting confirming the flow in
    between (a DNP3 outstation's unsolicited null response on connect): the head the client sent
    first is kept, so its PDU (a restart command, say) is read whole, not skipped as garbage."""
    request = pdu(b"restart")
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(0, request[:cut]), (1, pdu(b"hello")), (0, request[cut:]), (1, pdu(b"ok"))])
    assert bodies(events) == ["hello", "restart", "ok"]
    assert [e.frame for e in events] == [2, 3, 4]  # type: ignore[attr-defined]
    # Mid-stream (no stream start seen), the client's first bytes are no PDU head: nothing kept.
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(1, pdu(b"hello")), (0, request[cut:]), (0, pdu(b"next"))], aligned=False)
    assert bodies(events) == ["hello", "next"]


def test_two_pdus_in_one_segment_and_both_directions() -> None:
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(0, pdu(b"req1") + pdu(b"req2")), (1, pdu(b"rsp"))])
    assert bodies(events) == ["req1", "req2", "rsp"]
    assert [e.direction for e in events] == ["request", "request", "response"]  # type: ignore[attr-defined]
    assert events[2].src_port == 7777  # type: ignore[attr-defined]


def test_not_this_protocol_on_its_port_gives_no_events() -> None:
    engine = engine_for(LenMsgDissector())
    fd = engine.start(context(), aligned=True)
    assert fd is not None
    assert engine.feed(fd, 0, b"GET / HTTP/1.1\r\n\r\n", 1.0, 1) is False
    assert fd.done and fd.protocol is None and engine.events == []


def test_found_on_other_port_by_probe() -> None:
    engine = engine_for(LenMsgDissector())
    assert bodies(feed_all(engine, [(0, pdu(b"x"))], port=12345)) == ["x"]


def test_first_pdu_with_only_anomalies_does_not_confirm() -> None:
    engine = engine_for(LenMsgDissector())
    fd = engine.start(context(), aligned=True)
    assert fd is not None
    engine.feed(fd, 0, pdu(b""), 1.0, 1)  # magic right but the only result is an anomaly
    assert not fd.confirmed and engine.events == []


def test_valid_pdu_without_record_confirms() -> None:
    engine = engine_for(LenMsgDissector())
    fd = engine.start(context(port=12345), aligned=True)
    assert fd is not None
    engine.feed(fd, 0, pdu(b"!"), 1.0, 1)  # handshake: consumed, valid, no event
    assert fd.confirmed and fd.protocol == "lenmsg" and engine.events == []
    engine.feed(fd, 1, pdu(b"ok"), 2.0, 2)
    assert bodies(engine.events) == ["ok"]


def test_malformed_after_confirmation_resyncs_at_next_boundary() -> None:
    engine = engine_for(LenMsgDissector())
    events = feed_all(
        engine,
        [
            (0, pdu(b"one")),
            (0, pdu(b"") + b"\x00\x00garbage"),  # anomaly, then lost sync
            (0, b"more garbage"),  # not a PDU start: skipped while hunting
            (0, pdu(b"two")),
        ],
    )
    assert bodies(events) == ["one", "two"]
    assert [e.code for e in events if e.event_type == "anomaly"] == ["lenmsg.empty_body"]  # type: ignore[attr-defined]


def test_midstream_start_waits_for_a_boundary() -> None:
    engine = engine_for(LenMsgDissector())
    events = feed_all(
        engine, [(0, b"ail-of-pdu" + pdu(b"lost")), (0, pdu(b"found")), (1, pdu(b"r"))], aligned=False
    )
    assert bodies(events) == ["found", "r"]


def test_gap_drops_partial_pdu_and_hunts() -> None:
    engine = engine_for(LenMsgDissector())
    fd = engine.start(context(), aligned=True)
    assert fd is not None
    whole = pdu(b"abcdef")
    engine.feed(fd, 0, pdu(b"first"), 1.0, 1)
    engine.feed(fd, 0, whole[:5], 2.0, 2)
    engine.gap(fd, 0)
    engine.feed(fd, 0, b"def", 3.0, 3)  # the rest of the broken PDU: dropped
    engine.feed(fd, 0, pdu(b"next"), 4.0, 4)
    assert bodies(engine.events) == ["first", "next"]


def test_pdu_larger_than_cap() -> None:
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(0, pdu(b"ok")), (0, struct.pack("!HH", 0xABCD, 60000) + b"x" * 10)])
    assert [e.code for e in events if e.event_type == "anomaly"] == ["dissect.pdu_too_large"]  # type: ignore[attr-defined]


def test_udp_trailing_bytes() -> None:
    engine = engine_for(LenMsgDissector())
    events = feed_all(engine, [(0, pdu(b"a") + b"\xab\xcd\x00\x09xx")], transport="udp")
    assert bodies(events) == ["a"]
    assert [e.code for e in events if e.event_type == "anomaly"] == ["dissect.trailing_bytes"]  # type: ignore[attr-defined]


def test_exception_contained_per_flow_and_raised_in_strict_mode() -> None:
    engine = engine_for(CrashingDissector(), strict=False)
    fd = engine.start(context(), aligned=True)
    other = engine.start(context(), aligned=True)
    assert fd is not None and other is not None
    for frame in range(1, 5):
        engine.feed(fd, 0, pdu(b"p%d" % frame), float(frame), frame)
    assert fd.done
    codes = [e.code for e in engine.events if e.event_type == "anomaly"]  # type: ignore[attr-defined]
    assert codes == ["internal.dissector_error"]
    # What the dissector still held comes out with the containment, once (not again at the end).
    assert bodies(engine.events) == ["p1", "p2", "held after 3"]
    engine.end(fd)
    assert bodies(engine.events) == ["p1", "p2", "held after 3"]
    engine.feed(other, 0, pdu(b"fine"), 9.0, 9)  # the other flow is untouched
    assert bodies(engine.events)[-1] == "fine"
    strict = engine_for(CrashingDissector(), strict=True)
    with pytest.raises(ValueError, match="boom"):
        feed_all(strict, [(0, pdu(b"1") + pdu(b"2") + pdu(b"3"))])


def test_stalled_dissector_is_reported() -> None:
    engine = engine_for(StallingDissector(), strict=False)
    events = feed_all(engine, [(0, pdu(b"a") + pdu(b"b"))])
    assert [e.code for e in events if e.event_type == "anomaly"] == ["internal.parse_stalled"]  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="consumed nothing"):
        feed_all(engine_for(StallingDissector(), strict=True), [(0, pdu(b"a") + pdu(b"b"))])


def test_detect_only_mode_labels_and_stops() -> None:
    engine = engine_for(LenMsgDissector(), emit=False)
    fd = engine.start(context(), aligned=True)
    assert fd is not None
    assert engine.feed(fd, 0, pdu(b"x") + pdu(b"y"), 1.0, 1) is False
    assert fd.protocol == "lenmsg" and engine.events == []


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.binary(max_size=40)), max_size=12), st.booleans())
def test_random_chunks_never_raise_and_codes_are_catalogued(
    chunks: list[tuple[int, bytes]], aligned: bool
) -> None:
    engine = engine_for(LenMsgDissector(), strict=True)
    events = feed_all(
        engine, [(d, b"\xab\xcd" + c if i == 0 else c) for i, (d, c) in enumerate(chunks)], aligned=aligned
    )
    for event in events:
        if event.event_type == "anomaly":  # type: ignore[attr-defined]
            assert event.code in CATALOGUE  # type: ignore[attr-defined]
