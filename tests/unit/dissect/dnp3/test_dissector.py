"""The DNP3 dissector end to end over bytes: framing, splits, resync, anomalies, pairing, detection."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ics_monitor.dissect import Probe
from ics_monitor.dissect.dnp3.dissector import Dnp3Dissector
from ics_monitor.dissect.dnp3.state import Dnp3State
from tests.unit.dissect.dnp3.frames import (
    MASTER,
    OUTSTATION,
    Harness,
    context,
    crc,
    link,
    request,
    response,
    segments,
)

READ_CLASS0 = bytes(
    [
        0xC3,  # FIR FIN seq 3
        0x01,  # READ
        60, 1, 0x06,  # g60v1 (class 0), all points
    ]
)  # fmt: skip
NULL_RESPONSE = bytes(
    [
        0xC3,  # FIR FIN seq 3
        0x81,  # RESPONSE
        0x00, 0x00,  # IIN
    ]
)  # fmt: skip


def confirmed() -> Harness:
    harness = Harness()
    harness.state.confirmed = True
    return harness


def test_probe() -> None:
    dissector = Dnp3Dissector()
    frame = request(READ_CLASS0)
    assert dissector.probe(memoryview(frame), 0) is Probe.YES
    assert dissector.probe(memoryview(frame[:1]), 0) is Probe.MORE
    assert dissector.probe(memoryview(frame[:6]), 0) is Probe.MORE
    assert dissector.probe(memoryview(b"\x05\x64" + frame[2:8] + b"\x00\x00"), 0) is Probe.NO
    assert dissector.probe(memoryview(b"GET / HTTP/1.1\r\n"), 0) is Probe.NO


def test_request_record() -> None:
    harness = Harness()
    (record,) = harness.feed(request(READ_CLASS0))
    assert (record.src, record.dst, record.direction) == (MASTER, OUTSTATION, "request")
    assert (record.function_code, record.function, record.sequence) == (1, "READ", 3)
    assert (record.fir, record.fin, record.con, record.uns, record.iin, record.iin_names) == (
        True,
        True,
        False,
        False,
        None,
        None,
    )
    assert record.crc_ok is True
    assert record.link["function"] == "UNCONFIRMED_USER_DATA"
    assert record.link["dir"] is True
    assert record.objects[0]["group"] == 60
    assert (record.src_ip, record.dst_port) == ("10.0.0.1", 20000)
    assert harness.state.confirmed


def test_split_frame_needs_more() -> None:
    harness = Harness()
    frame = request(READ_CLASS0)
    assert harness.feed(frame[:7]) == []
    assert harness.results[-1].needed == 3  # the rest of the header
    assert harness.feed(frame[7:12]) == []
    assert harness.results[-1].needed == len(frame) - 12
    (record,) = harness.feed(frame[12:])
    assert record.function == "READ"


def test_two_frames_in_one_segment() -> None:
    harness = confirmed()
    events = harness.feed(request(READ_CLASS0) + request(READ_CLASS0[:1] + b"\x01\x3c\x02\x06"))
    assert [(e.function, e.objects[0]["variation"]) for e in events] == [("READ", 1), ("READ", 2)]


def test_multi_frame_fragment_across_segments() -> None:
    app = bytes([0xC0, 0x81, 0, 0, 30, 1, 0x01]) + struct.pack("<HH", 0, 99) + bytes(500)
    frames = segments(app, MASTER, OUTSTATION, False)
    assert len(frames) == 3
    harness = confirmed()
    stream = b"".join(frames)
    assert harness.feed(stream[:300], 1, frame=5) == []
    (record,) = harness.feed(stream[300:], 1, frame=6)
    assert (record.frames, record.frame, record.length) == (3, 6, len(app))
    assert len(record.objects[0]["points"]) == 100


def test_good_frames_of_an_unfinished_fragment_confirm() -> None:
    # Before confirmation a first segment without FIN is consumed and declared valid (CRCs checked):
    # a fragment longer than the detection limit still gets its flow confirmed.
    app = bytes([0xC0, 0x02, 30, 1, 0x01]) + struct.pack("<HH", 0, 99) + bytes(500)
    frames = segments(app, OUTSTATION, MASTER, True)
    harness = Harness()
    assert harness.feed(frames[0]) == []
    assert harness.results[-1].consumed == len(frames[0])
    assert harness.results[-1].valid
    (record,) = harness.feed(frames[1] + frames[2])
    assert record.frames == 3


def test_unconfirmed_garbage_is_not_dnp3() -> None:
    dissector = Dnp3Dissector()
    state = dissector.new_state(context())
    assert dissector.parse(
        state, memoryview(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03"), 0, context()
    ).reject
    broken = bytearray(request(READ_CLASS0))
    broken[-1] ^= 0xFF  # data CRC: only an anomaly would come out
    assert dissector.parse(state, memoryview(bytes(broken)), 0, context()).reject


def test_junk_before_a_streams_first_frame_is_skipped_and_said() -> None:
    """Outstations scan for a frame start (opendnp3 skips what comes before): a restart behind a
    few junk bytes is carried out, so it is read, with the junk as an anomaly; not past
    LEADING_JUNK bytes, and not when the frame after it is not DNP3."""
    from ics_monitor.dissect.dnp3.dissector import LEADING_JUNK

    dissector = Dnp3Dissector()
    frame = request(READ_CLASS0)
    assert dissector.probe(memoryview(b"\x00\x17\x2a" + frame), 0) is Probe.YES
    assert dissector.probe(memoryview(b"\x00\x17\x2a" + frame[:6]), 0) is Probe.MORE
    assert dissector.probe(memoryview(b"\x00" * (LEADING_JUNK + 1) + frame), 0) is Probe.NO
    harness = Harness()
    events = harness.feed(b"\x00\x17\x2a" + frame)
    assert harness.codes(events) == ["dnp3.link_garbage"]
    assert [e.function for e in harness.records(events)] == ["READ"]
    assert "3 bytes before the first link frame skipped" in events[0].detail  # type: ignore[attr-defined]
    # Cut in two: nothing yet, then the whole.
    harness = Harness()
    assert harness.feed(b"\x00\x17\x2a" + frame[:6]) == []
    events = harness.feed(frame[6:])
    assert [e.function for e in harness.records(events)] == ["READ"]
    state = dissector.new_state(context())
    assert dissector.parse(state, memoryview(b"\x00" * (LEADING_JUNK + 1) + frame), 0, context()).reject
    broken = bytearray(b"\x00\x17" + frame)
    broken[-1] ^= 0xFF  # the frame's data CRC: anomalies only
    assert dissector.parse(state, memoryview(bytes(broken)), 0, context()).reject


def test_link_only_frames() -> None:
    harness = confirmed()
    events = harness.feed(
        link(0xC9, OUTSTATION, MASTER)  # DIR PRM REQUEST_LINK_STATUS
        + link(0x0B, MASTER, OUTSTATION)  # LINK_STATUS (secondary)
        + link(0xC0, OUTSTATION, MASTER)  # RESET_LINK_STATES
        + link(0x00, MASTER, OUTSTATION)  # ACK
    )
    assert [(e.link["function"], e.direction, e.function_code) for e in events] == [
        ("REQUEST_LINK_STATUS", "request", None),
        ("LINK_STATUS", "response", None),
        ("RESET_LINK_STATES", "request", None),
        ("ACK", "response", None),
    ]
    assert events[1].link["prm"] is False


def test_udp_datagram_with_two_frames() -> None:
    harness = Harness("udp")
    events = harness.feed(request(READ_CLASS0) + request(bytes([0xC4, 0x01, 60, 2, 0x06]), 4))
    assert [e.sequence for e in events] == [3, 4]
    assert {e.transport for e in events} == {"udp"}


def test_resync_after_bad_header_crc() -> None:
    harness = confirmed()
    good = request(READ_CLASS0)
    bad = bytearray(good)
    bad[8] ^= 0xFF
    events = harness.feed(bytes(bad) + good)
    assert harness.codes(events) == ["dnp3.link_header_crc_bad"]
    assert [e.function for e in harness.records(events)] == ["READ"]


def test_garbage_then_frame() -> None:
    harness = confirmed()
    events = harness.feed(b"\x01\x02\x03\x05\x64\x00" + request(READ_CLASS0))
    assert harness.codes(events) == ["dnp3.link_garbage"]
    assert len(harness.records(events)) == 1


def test_garbage_ending_in_start_byte_waits() -> None:
    harness = confirmed()
    frame = request(READ_CLASS0)
    events = harness.feed(b"\x11" * 12 + frame[:1])
    assert harness.codes(events) == ["dnp3.link_garbage"]
    events = harness.feed(frame[1:])
    assert [e.function for e in harness.records(events)] == ["READ"]


def test_bad_data_crc_records_with_crc_ok_false() -> None:
    harness = confirmed()
    frame = bytearray(request(READ_CLASS0))
    frame[-1] ^= 0xFF
    events = harness.feed(bytes(frame))
    assert harness.codes(events) == ["dnp3.link_crc_bad"]
    (record,) = harness.records(events)
    assert (record.crc_ok, record.function) == (False, "READ")
    assert harness.state.pending == {}  # not paired: the outstation never saw it


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (link(0xC4, OUTSTATION, MASTER, length=3), "dnp3.link_bad_length"),
        (link(0xC4, OUTSTATION, MASTER), "dnp3.link_bad_length"),  # user data with no transport byte
        (link(0xC7, OUTSTATION, MASTER), "dnp3.link_unknown_function"),
        (link(0xC4, OUTSTATION, MASTER, bytes([0x85, 0xC0, 0x01])), "dnp3.transport_no_first"),
        (
            link(0xC4, OUTSTATION, MASTER, bytes([0x41, 0xC0]))
            + link(0xC4, OUTSTATION, MASTER, bytes([0x83, 0x01])),
            "dnp3.transport_sequence_error",
        ),
        (
            link(0xC4, OUTSTATION, MASTER, bytes([0x41, 0xC0])) + request(READ_CLASS0),
            "dnp3.transport_fragment_discarded",
        ),
        (request(bytes([0xC0])), "dnp3.app_too_short"),
        (request(bytes([0xC0, 0x60])), "dnp3.app_unknown_function"),
        (request(bytes([0xC0, 0x02, 30, 1, 0x00, 0, 5])), "dnp3.object_overrun"),
        (request(bytes([0xC0, 0x02, 30, 1, 0x0C])), "dnp3.invalid_qualifier"),
        (request(bytes([0xC0, 0x02, 30, 1, 0x00, 9, 1])), "dnp3.invalid_range"),
        (request(bytes([0xC0, 0x02, 200, 1, 0x00, 0, 0, 1])), "dnp3.unknown_object"),
        (request(bytes([0xC0, 0x02, 30, 1, 0x09, 0, 0, 0, 1])), "dnp3.too_many_points"),
        (
            response(bytes([0xC0, 0x81, 0, 0, 1, 1, 0x01, 0, 0, 0xFF, 0x0F]) + bytes(512)),
            "dnp3.points_capped",
        ),
        (request(bytes([0xC0, 0x01]) + bytes([60, 1, 0x06]) * 300), "dnp3.too_many_objects"),
    ],
)
def test_anomaly_codes(data: bytes, code: str) -> None:
    harness = confirmed()
    events = harness.feed(data)
    assert code in harness.codes(events)


def test_header_crc_code_through_dissector() -> None:
    harness = confirmed()
    frame = bytearray(request(READ_CLASS0))
    frame[9] ^= 0x01
    assert harness.codes(harness.feed(bytes(frame))) == ["dnp3.link_header_crc_bad"]


def test_reassembly_table_and_fragment_caps() -> None:
    harness = confirmed()
    events = harness.feed(b"".join(link(0xC4, OUTSTATION, 100 + n, bytes([0x40, 0xC0])) for n in range(65)))
    assert harness.codes(events) == ["dnp3.transport_table_full"]
    big = b"".join(segments(bytes([0xC0, 0x02]) + bytes(65 * 249), OUTSTATION, MASTER, True))
    assert "dnp3.transport_fragment_too_large" in harness.codes(harness.feed(big))


def test_association_cap() -> None:
    harness = confirmed()
    events = harness.feed(b"".join(request(READ_CLASS0, src=200 + n) for n in range(65)))
    assert harness.codes(events) == ["dnp3.association_table_full"]
    assert len(harness.state.pending) == 64


def test_every_anomaly_code_is_registered_and_tested() -> None:
    from ics_monitor.core.anomalies import CATALOGUE

    codes = {code for code in CATALOGUE if code.startswith("dnp3.")}
    assert len(codes) == 20
    here = Path(__file__).parent
    source = "".join(
        (here / name).read_text()
        for name in ("test_dissector.py", "test_application.py", "test_transport.py")
    )
    assert {code for code in codes if code not in source} == set()


# -- pairing ---------------------------------------------------------------------------------------


def test_response_knows_its_request() -> None:
    harness = Harness()
    harness.feed(request(READ_CLASS0), 0, frame=4)
    (record,) = harness.feed(response(NULL_RESPONSE), 1, frame=6)
    assert (record.request_function_code, record.request_function, record.request_frame) == (1, "READ", 4)
    assert record.iin == 0 and record.iin_names == ()


def test_multi_fragment_response_pairs_every_fragment() -> None:
    harness = Harness()
    harness.feed(request(READ_CLASS0), 0, frame=4)
    first = bytes([0xA3, 0x81, 0, 0, 1, 2, 0x00, 0, 0, 0x81])  # FIR, CON, seq 3
    last = bytes([0x44, 0x81, 0, 0, 1, 2, 0x00, 1, 1, 0x01])  # FIN, seq 4
    (one,) = harness.feed(response(first), 1, frame=6)
    (confirm,) = harness.feed(request(bytes([0xC3, 0x00])), 0, frame=7)
    (two,) = harness.feed(response(last), 1, frame=8)
    assert (one.fir, one.fin, one.con, one.request_function) == (True, False, True, "READ")
    assert (two.fir, two.fin, two.request_function, two.request_frame) == (False, True, "READ", 4)
    assert (confirm.function, confirm.confirmed_frame) == ("CONFIRM", 6)


def test_unsolicited_and_its_confirm() -> None:
    harness = Harness()
    (unsolicited,) = harness.feed(response(bytes([0xF5, 0x82, 0x80, 0x00])), 1, frame=3)
    (confirm,) = harness.feed(request(bytes([0xD5, 0x00])), 0, frame=4)
    assert (unsolicited.function, unsolicited.uns, unsolicited.con, unsolicited.request_function) == (
        "UNSOLICITED_RESPONSE",
        True,
        True,
        None,
    )
    assert unsolicited.iin_names == ("DEVICE_RESTART",)
    assert (confirm.uns, confirm.confirmed_frame) == (True, 3)


def test_response_to_unseen_request() -> None:
    harness = Harness()
    (record,) = harness.feed(response(NULL_RESPONSE), 1)
    assert record.request_function is None


def test_pairing_is_per_association() -> None:
    harness = Harness()
    harness.feed(request(READ_CLASS0, src=1, dst=10), 0, frame=1)
    harness.feed(request(bytes([0xC3, 0x02, 80, 1, 0x00, 7, 7, 0x00]), src=2, dst=10), 0, frame=2)
    (answer,) = harness.feed(response(NULL_RESPONSE, src=10, dst=2), 1, frame=3)
    assert (answer.request_function, answer.request_frame) == ("WRITE", 2)


def test_gap_and_close() -> None:
    dissector = Dnp3Dissector()
    state = Dnp3State()
    state.confirmed = True
    ctx = context()
    dissector.parse(state, memoryview(link(0xC4, OUTSTATION, MASTER, bytes([0x40, 0xC0]))), 0, ctx)
    dissector.parse(state, memoryview(link(0x44, MASTER, OUTSTATION, bytes([0x40, 0xC0]))), 1, ctx)
    dissector.gap(state, 0, ctx)
    (event,) = dissector.close(state, ctx)
    assert (event.code, event.direction) == ("dnp3.transport_fragment_discarded", "to_client")


def test_cached_frames_give_equal_records() -> None:
    harness = confirmed()
    first = harness.feed(request(READ_CLASS0), frame=1)
    second = harness.feed(request(READ_CLASS0), frame=2)
    assert first[0].objects == second[0].objects
    assert (first[0].frame, second[0].frame) == (1, 2)


def test_fragments_differing_in_sequence_or_iin_share_their_decoded_objects() -> None:
    """The next poll's answer (another sequence number, another IIN) is not decoded again.

    Its objects are those of the answer before (one object: a batch to the analysing process
    holds it once), its header its own; and its record equals a fresh dissector's.
    """
    body = bytes([30, 1, 0x00, 0, 1]) + struct.pack("<BiBi", 1, 7, 1, -8)  # g30v1 points 0-1

    def answer(control: int, iin: int) -> bytes:
        return bytes([control, 0x81]) + struct.pack(">H", iin) + body

    shared = confirmed()
    records = [
        shared.records(shared.feed(response(answer(control, iin)), 1, frame))[0]
        for frame, (control, iin) in enumerate(((0xC1, 0x0000), (0xC2, 0x0080), (0xE3, 0x0000)), 1)
    ]
    assert records[0].objects is records[1].objects is records[2].objects
    assert [(r.sequence, r.iin, r.con) for r in records] == [(1, 0, False), (2, 0x0080, False), (3, 0, True)]
    for frame, (control, iin) in enumerate(((0xC2, 0x0080), (0xE3, 0x0000)), 2):
        fresh = confirmed()
        (alone,) = fresh.records(fresh.feed(response(answer(control, iin)), 1, frame))
        assert alone.__dict__ == records[frame - 1].__dict__
    # An anomaly found in the objects (its text names the offset in the fragment) comes with them.
    cut = bytes([30, 1])  # an object header cut short
    first, again = (
        shared.feed(response(bytes([control, 0x81, 0, 0]) + cut), 1, frame)
        for frame, control in ((5, 0xC4), (6, 0xC5))
    )
    assert shared.codes(first) == shared.codes(again) == ["dnp3.object_overrun"]
    assert [e.detail for e in first if e.event_type == "anomaly"] == [
        e.detail for e in again if e.event_type == "anomaly"
    ]
    fresh = confirmed()
    alone = fresh.feed(response(bytes([0xC5, 0x81, 0, 0]) + cut), 1, 6)
    assert [e.__dict__ for e in alone] == [e.__dict__ for e in again]
    # A response too short for its IIN has no objects to share: decoded alone, as before.
    bodies = dict(shared.dissector._bodies)
    assert shared.codes(shared.feed(response(bytes([0xC6, 0x81, 0x00])), 1, 7)) == ["dnp3.app_too_short"]
    assert shared.dissector._bodies == bodies
    # A request with the same bytes after its header is another function's: decoded for itself.
    write = shared.records(shared.feed(request(bytes([0xC4, 0x02]) + body), 0, 4))[0]
    assert write.function == "WRITE" and write.objects is not records[0].objects


def test_crc_helper_is_independent() -> None:
    # The test CRC is bitwise; check it against the standard's catalogue value.
    assert crc(b"123456789") == struct.pack("<H", 0xEA82)


def test_long_garbage_is_skipped_window_by_window() -> None:
    harness = confirmed()
    events = harness.feed(bytes(5000) + request(READ_CLASS0))
    assert set(harness.codes(events)) == {"dnp3.link_garbage"}
    assert 1 < len(harness.codes(events)) <= 3  # bounded work per call: one anomaly per window
    assert [e.function for e in harness.records(events)] == ["READ"]


def test_large_fragments_are_not_cached() -> None:
    dissector = Dnp3Dissector()
    harness = confirmed()
    harness.dissector = dissector
    big = bytes([0xC0, 0x81, 0, 0, 30, 1, 0x01]) + struct.pack("<HH", 0, 99) + bytes(500)
    harness.feed(response(big), 1)
    harness.feed(response(NULL_RESPONSE), 1)
    assert NULL_RESPONSE in dissector._fragments
    assert big not in dissector._fragments
