"""The S7 dissector over bytes: framing, splits, COTP segmentation, pairing, transfers, detection."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest

from ics_monitor.capture import open_capture
from ics_monitor.decode.decoder import Decoder
from ics_monitor.dissect import Probe
from ics_monitor.dissect.s7comm.constants import MAX_PENDING
from ics_monitor.dissect.s7comm.dissector import S7commDissector
from ics_monitor.events.s7comm import CotpEvent, S7commEvent, S7commPlusEvent
from tests.conftest import shared_pcaps
from tests.unit.detect.helpers import run as run_detectors
from tests.unit.dissect.s7comm.frames import (
    CC,
    CR,
    DB1_READ,
    Harness,
    any_item,
    connect,
    dt,
    file_name,
    module_entry,
    plus,
    plus_fragments,
    plus_request,
    plus_response,
    read_answer,
    read_job,
    s7,
    szl_answer,
    tpkt,
    userdata,
)

EMPTY_DT = tpkt(bytes([2, 0xF0, 0x00]))  # the S7-1200/1500 keep-alive
RDP_CR = tpkt(
    bytes([0x1E, 0xE0, 0, 0, 0, 0, 0]) + b"Cookie: mstshash=a\r\n" + bytes([1, 0, 8, 0, 3, 0, 0, 0])
)


def test_probe() -> None:
    dissector = S7commDissector()
    assert dissector.probe(memoryview(CR), 0) is Probe.YES
    assert dissector.probe(memoryview(dt(read_job(1, [DB1_READ]))), 0) is Probe.YES
    assert dissector.probe(memoryview(EMPTY_DT), 0) is Probe.YES
    assert dissector.probe(memoryview(dt(plus(2, b"\x31"))), 0) is Probe.YES
    assert dissector.probe(memoryview(CR[:3]), 0) is Probe.MORE
    assert dissector.probe(memoryview(dt(b"\x0d\x00")), 0) is Probe.NO  # ISO session (MMS) data
    assert dissector.probe(memoryview(b"GET / HTTP/1.1\r\n"), 0) is Probe.NO
    assert dissector.probe(memoryview(tpkt(bytes([2, 0x30, 0]))), 0) is Probe.NO  # TPDU code 3


def test_connection_request_record_and_confirmation() -> None:
    harness = Harness(confirmed=False)
    (record,) = harness.feed(CR)
    assert isinstance(record, CotpEvent)
    assert (record.pdu_type_name, record.direction, record.tpdu_size) == ("CR", "request", 1024)
    assert (record.connection_type_name, record.rack, record.slot) == ("PG", 0, 2)
    assert record.src_tsap == {
        "hex": "0100",
        "connection_type": 1,
        "connection_type_name": "PG",
        "rack": 0,
        "slot": 0,
    }
    assert harness.results[-1].valid and harness.state.confirmed
    (answer,) = harness.feed(CC, 1)
    assert (answer.pdu_type_name, answer.direction, answer.dst_ref) == ("CC", "response", 1)


def test_text_tsaps_of_s7comm_plus() -> None:
    harness = Harness(confirmed=False)
    (record,) = harness.feed(connect(0xE0, b"\x06\x20", b"SIMATIC-ROOT-HMI"))
    assert record.dst_tsap["text"] == "SIMATIC-ROOT-HMI"
    assert record.rack is None


def test_not_s7_before_confirmation() -> None:
    for data in (RDP_CR, dt(b"\x0d\x01\x02"), b"\x03\x00\x00\x03junk", connect(0xE0, b"", b"")):
        harness = Harness(confirmed=False)
        harness.feed(data)
        assert harness.results[-1].reject, data


def test_read_request_and_answer_paired() -> None:
    harness = Harness()
    (request,) = harness.feed(dt(read_job(5, [DB1_READ])), 0, frame=3)
    assert isinstance(request, S7commEvent)
    assert (request.rosctr_name, request.function, request.direction, request.pdu_ref) == (
        "JOB",
        "READ_VAR",
        "request",
        5,
    )
    (answer,) = harness.feed(dt(read_answer(5, [b"\x01\x02\x03\x04"])), 1, frame=4)
    assert (answer.rosctr_name, answer.request_frame, answer.direction) == ("ACK_DATA", 3, "response")
    assert answer.items == request.items  # the answer names what was read
    assert answer.data_items[0]["values"] == [1, 2, 3, 4]


def test_split_tpkt_needs_more() -> None:
    harness = Harness()
    pdu = dt(read_job(1, [DB1_READ]))
    assert harness.feed(pdu[:2]) == []
    assert harness.results[-1].needed == 2
    assert harness.feed(pdu[2:9]) == []
    assert harness.results[-1].needed == len(pdu) - 9
    (record,) = harness.feed(pdu[9:])
    assert record.function == "READ_VAR"


def test_two_pdus_in_one_segment() -> None:
    harness = Harness()
    events = harness.feed(dt(read_job(1, [DB1_READ])) + dt(read_job(2, [DB1_READ])))
    assert [e.pdu_ref for e in events] == [1, 2]


def test_cotp_segmentation_eot_clear() -> None:
    harness = Harness()
    harness.feed(dt(read_job(9, [any_item(0x84, 10, 0, 300)])), 0)
    answer = read_answer(9, [bytes(range(150)) * 2])
    first, second, third = answer[:100], answer[100:250], answer[250:]
    assert harness.feed(dt(first, eot=False) + dt(second, eot=False, number=1), 1, frame=7) == []
    assert harness.results[-1].consumed  # segments are consumed, not waited for
    (record,) = harness.feed(dt(third, number=2), 1, frame=8)
    assert (record.frame, record.segments, record.request_frame) == (8, 3, 1)
    assert record.data_items[0]["length"] == 300


def test_empty_data_tpdu_is_valid_and_silent() -> None:
    harness = Harness(confirmed=False)
    assert harness.feed(EMPTY_DT) == []
    assert harness.results[-1].valid


def test_multi_part_userdata_reassembled() -> None:
    harness = Harness()
    entries = b"".join(module_entry(i, "6ES7 412-5HK06-0AB0", 0x5606, 0x0004) for i in (1, 7))
    whole = struct.pack(">HHHH", 0x0011, 0, 28, 2) + entries
    harness.feed(dt(userdata(1, 1, 4, 1, struct.pack(">HH", 0x0011, 0))), 0, frame=1)
    (first,) = harness.feed(dt(userdata(1, 2, 4, 1, whole[:40], reference=3, last=False)), 1, frame=2)
    assert (first.szl, first.userdata["parts"], first.request_frame) == (None, 1, 1)
    follow_up = bytes([0x00, 0x01, 0x12, 0x08, 0x12, 0x44, 0x01, 0x01, 3, 0x00, 0x00, 0x00])
    harness.feed(dt(s7(7, 2, follow_up, b"\x0a\x00\x00\x00")), 0, frame=3)
    (last,) = harness.feed(dt(userdata(2, 2, 4, 1, whole[40:], sequence=1, reference=3)), 1, frame=4)
    assert (last.szl_id, last.userdata["parts"], last.request_frame) == (0x0011, 2, 3)
    assert last.szl["identity"]["firmware_version"] == "V6.0.4"


def test_orphan_and_unanswered() -> None:
    harness = Harness()
    events = harness.feed(dt(read_answer(77, [b"\x00\x00"])), 1)
    assert Harness.codes(events) == ["s7comm.orphan_response"]
    harness.feed(dt(read_job(78, [DB1_READ])), 0, frame=9)
    closing = harness.close()
    assert Harness.codes(closing) == ["s7comm.unanswered_request"]
    assert "frame 9" in closing[0].detail


def test_answers_after_requests_lost_from_the_capture_are_no_orphans_until_one_pairs() -> None:
    harness = Harness()
    harness.feed(dt(read_job(5, [DB1_READ])), 0, frame=1)
    harness.dissector.gap(harness.state, 0, harness.ctx)  # the client's next requests lost
    assert Harness.codes(harness.feed(dt(read_answer(6, [b"\x00\x00"])), 1, frame=3)) == []
    (answer,) = harness.feed(dt(read_answer(5, [b"\x00\x00"])), 1, frame=4)  # pairs
    assert answer.request_frame == 1
    events = harness.feed(dt(read_answer(7, [b"\x00\x00"])), 1, frame=5)
    assert Harness.codes(events) == ["s7comm.orphan_response"]
    # A loss in the answers' own direction explains no answer.
    harness = Harness()
    harness.dissector.gap(harness.state, 1, harness.ctx)
    events = harness.feed(dt(read_answer(8, [b"\x00\x00"])), 1, frame=2)
    assert Harness.codes(events) == ["s7comm.orphan_response"]


def test_pending_cap() -> None:
    harness = Harness()
    events = harness.feed(b"".join(dt(read_job(n, [DB1_READ])) for n in range(MAX_PENDING + 1)))
    assert Harness.codes(events) == ["s7comm.pending_full"]
    assert len(harness.state.pending) == MAX_PENDING


def test_block_download_hash() -> None:
    harness = Harness()
    request = bytes([0x1A, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0A", 3) + bytes([13]) + b"1000020000012"
    harness.feed(dt(s7(1, 1, request)), 0, frame=1)
    harness.feed(dt(s7(3, 1, bytes([0x1A]))), 1, frame=2)
    chunks = [b"\x70\x70" + bytes(range(8)), b"block-tail"]
    for number, chunk in enumerate(chunks):
        # The PLC pulls the block: DOWNLOAD_BLOCK jobs from the server, answers with the bytes.
        job = bytes([0x1B, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0A", 3)
        harness.feed(dt(s7(1, 10 + number, job)), 1)
        status = 0x01 if number == 0 else 0x00
        harness.feed(
            dt(s7(3, 10 + number, bytes([0x1B, status]), struct.pack(">HH", len(chunk), 0xFB) + chunk)), 0
        )
    (ended,) = harness.feed(dt(s7(1, 20, bytes([0x1C, 0, 0, 0]) + bytes(4) + file_name("0A", 3))), 1)
    assert ended.function == "DOWNLOAD_ENDED"
    assert (ended.block["type"], ended.block["number"], ended.block["length"]) == ("DB", 3, 20)
    assert ended.block["sha256"] == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert (ended.block["chunks"], ended.block["mc7_length"]) == (2, 12)
    assert Harness.codes(harness.close()) == ["s7comm.unanswered_request"]  # DOWNLOAD_ENDED not acked


def test_block_upload_hash_and_incomplete() -> None:
    harness = Harness()
    harness.feed(dt(s7(1, 1, bytes([0x1D, 0, 0, 0]) + bytes(4) + file_name("08", 1, "A"))), 0)
    harness.feed(dt(s7(3, 1, bytes([0x1D, 0, 0, 0]) + struct.pack(">I", 5) + bytes([6]) + b"000006")), 1)
    harness.feed(dt(s7(1, 2, bytes([0x1E, 0, 0, 0]) + struct.pack(">I", 5))), 0)
    (chunk,) = harness.feed(dt(s7(3, 2, bytes([0x1E, 0]), struct.pack(">HH", 6, 0xFB) + b"OB1!!!")), 1)
    assert chunk.block["chunk_length"] == 6
    (end,) = harness.feed(dt(s7(1, 3, bytes([0x1F, 0, 0, 0]) + struct.pack(">I", 5))), 0)
    assert (end.block["type"], end.block["upload_id"], end.block["announced_length"]) == ("OB", 5, 6)
    assert end.block["sha256"] == hashlib.sha256(b"OB1!!!").hexdigest()
    # A second upload never ended.
    harness.feed(dt(s7(1, 4, bytes([0x1D, 0, 0, 0]) + bytes(4) + file_name("0A", 9, "A"))), 0)
    harness.feed(dt(s7(3, 4, bytes([0x1D, 0, 0, 0]) + struct.pack(">I", 6) + bytes([2]) + b"10")), 1)
    assert "s7comm.block_transfer_incomplete" in Harness.codes(harness.close())


def test_rejected_download_is_not_followed() -> None:
    harness = Harness()
    request = bytes([0x1A, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0A", 2) + bytes([13]) + b"1000020000012"
    harness.feed(dt(s7(1, 1, request)), 0)
    (answer,) = harness.feed(dt(s7(2, 1, b"", error=0xD241)), 1)
    assert (answer.function, answer.error_name) == ("REQUEST_DOWNLOAD", "PROTECTION_LEVEL_TOO_LOW")
    assert harness.state.downloads == {}


def test_security_group_never_records_the_password() -> None:
    harness = Harness()
    (record,) = harness.feed(dt(userdata(1, 1, 5, 1, b"\x55\x66\x77\x88\x99\xaa\xbb\xcc")))
    assert record.userdata["subfunction_name"] == "PLC_PASSWORD"
    assert record.data is None
    assert "5566" not in repr(record)


def test_szl_answer_and_clock() -> None:
    harness = Harness()
    events = harness.feed(dt(szl_answer(1, 0x0011, 0, 28, [module_entry(1, "6ES7 151-8AB01-0AB0", 3, 0)])), 1)
    (record,) = Harness.records(events)  # an answer to no request: also an orphan anomaly
    assert (record.szl_id, record.szl_index, record.szl["identity"]["order_number"]) == (
        0x0011,
        0,
        "6ES7 151-8AB01-0AB0",
    )
    clock = bytes([0x00, 0x19, 0x99, 0x12, 0x31, 0x23, 0x59, 0x58, 0x12, 0x34])
    harness.feed(dt(userdata(2, 1, 7, 1, b"")), 0)
    (answer,) = harness.feed(dt(userdata(2, 2, 7, 1, clock)), 1)
    assert answer.clock == "1999-12-31T23:59:58.123"


def test_bad_tpkt_resyncs_to_the_next() -> None:
    harness = Harness()
    events = harness.feed(b"\x04\x00\x00\x09\x02\xf0\x80\x32\x01" + dt(read_job(2, [DB1_READ])))
    assert Harness.codes(events) == ["tpkt.bad_version"]
    assert [e.pdu_ref for e in Harness.records(events)] == [2]
    events = harness.feed(b"\x03\x00\x00\x02" + dt(read_job(3, [DB1_READ])))
    assert Harness.codes(events) == ["tpkt.bad_length"]
    assert [e.pdu_ref for e in Harness.records(events)] == [3]
    events = harness.feed(b"\xff" * 20)
    assert Harness.codes(events) == ["tpkt.bad_version"] and harness.results[-1].reject


def test_cotp_problems() -> None:
    harness = Harness()
    assert Harness.codes(harness.feed(tpkt(bytes([9, 0xF0, 0x80])))) == ["cotp.bad_length"]
    assert Harness.codes(harness.feed(tpkt(bytes([2, 0x30, 0x80])))) == ["cotp.unknown_pdu_type"]
    events = harness.feed(tpkt(bytes([8, 0xE0, 0, 0, 0, 2, 0, 0xC1, 9])))
    assert Harness.codes(events) == ["cotp.bad_parameter"]
    events = harness.feed(dt(b"\x0d\x01") + dt(b"\x0d\x02"))
    assert Harness.codes(events) == ["cotp.unknown_payload"]  # once per flow


def test_cotp_overflow_drops_the_tsdu() -> None:
    harness = Harness()
    flood = b"".join(dt(b"\x32" + bytes(999), eot=False) for _ in range(70)) + dt(bytes(10))
    events = harness.feed(flood)
    assert Harness.codes(events) == ["cotp.reassembly_overflow"]
    assert Harness.records(events) == []
    (record,) = harness.feed(dt(read_job(4, [DB1_READ])))
    assert record.pdu_ref == 4


def test_plus_records_and_pairing() -> None:
    harness = Harness()
    (request,) = harness.feed(dt(plus(3, plus_request(0x054C, 12, 0x3BE), digest=True)), 0, frame=5)
    assert isinstance(request, S7commPlusEvent)
    assert (request.function, request.session_id, request.integrity, request.direction) == (
        "GET_MULTI_VARIABLES",
        0x3BE,
        True,
        "request",
    )
    (response,) = harness.feed(dt(plus(3, plus_response(0x054C, 12), digest=True)), 1, frame=6)
    assert (response.opcode_name, response.request_frame) == ("RESPONSE", 5)
    events = harness.feed(dt(plus(2, bytes([0x31]) + bytes(20), trailer=False)) + dt(plus(2, bytes(8))), 0)
    assert [e.fragment for e in events] == ["first", "last"]


# TIA Portal's stop: SetVariable (0x04F2) of object 52 (CPUexecUnit), attribute 2167
# (operatingStateReq, the VLQ 0x90 0x77), flags 0, DInt, value 1.
_STOP_BODY = (
    plus_request(0x04F2, 9, 0x38C) + struct.pack(">I", 52) + b"\x01\x90\x77" + b"\x00\x08\x01" + bytes(5)
)


@pytest.mark.parametrize("digest", [False, True])
@pytest.mark.parametrize(
    "cuts",
    [
        [0],
        [1],
        [3],
        [5],
        [8],
        [9],
        [11],
        [13],
        [14],
        [15],
        [17],
        [19],
        [21],
        [23],
        [2, 14, 17, 20],
        list(range(1, 24)),
    ],
)
def test_plus_request_set_split_over_fragments(cuts: list[int], digest: bool) -> None:
    """A stop whose request set goes on in later fragments is decoded as if sent whole: the first
    fragment's record waits for the bytes, keeps its frame, and the detection sees a stop."""
    version = 3 if digest else 2
    (whole,) = Harness.records(Harness().feed(dt(plus(version, _STOP_BODY, digest=digest)), 0, frame=3))
    harness = Harness()
    events: list[Any] = []
    for frame, fragment in enumerate(plus_fragments(version, _STOP_BODY, cuts, digest=digest), start=3):
        events += harness.feed(dt(fragment), 0, frame=frame)
    assert Harness.codes(events) == []
    first, *rest = Harness.records(events)
    assert (first.frame, first.fragment, first.function, first.sequence) == (3, "first", "SET_VARIABLE", 9)
    assert (
        (first.object_id, first.attribute_id, first.attribute, first.value)
        == (
            whole.object_id,
            whole.attribute_id,
            whole.attribute,
            whole.value,
        )
        == (52, 2167, "CPUexecUnit.operatingStateReq", 1)
    )
    assert [(r.frame, r.fragment) for r in rest] == [(4 + n, "inner") for n in range(len(cuts) - 1)] + [
        (3 + len(cuts), "last")
    ]
    alerts = {alert.rule_id: alert.frames for alert in run_detectors([first, *rest])}
    assert alerts.pop("ICS-1102") == (3,)
    # Eight fragments and more are also what the download rule looks for.
    assert list(alerts) == (["ICS-1101"] if len(cuts) > 8 else [])


def test_plus_upload_request_set_split_over_fragments() -> None:
    """A GetVarSubStreamed of a block object split after its object id: the attribute comes in the
    next fragment, and the read is an upload (ICS-1104) as when sent whole."""
    body = plus_request(0x0586, 4, 0x38C) + struct.pack(">I", 0x88E10109) + b"\x20\x04\x01\x9d\x29" + bytes(6)
    harness = Harness()
    events = [
        e for n, part in enumerate(plus_fragments(2, body, [18, 21]), 1) for e in harness.feed(dt(part), 0, n)
    ]
    first, *_ = Harness.records(events)
    assert (first.frame, first.object_id, first.attribute_id) == (1, 0x88E10109, 3753)
    assert [a.rule_id for a in run_detectors(Harness.records(events))] == ["ICS-1104"]


def test_plus_real_stop_split_over_fragments() -> None:
    """TIA Portal's stop from a real S7-1200 capture (frame 71), its data part cut in two at every
    position inside the request set: the same object, attribute and value come out each time."""
    path = shared_pcaps() / "s7plus-anomaly" / "s71200_OnlineStopStart.pcapng"
    frames = list(open_capture(str(path)))
    ts, link_type, data, wire_len = frames[70]
    packet = Decoder().decode(71, ts, link_type, data, wire_len)
    assert packet is not None
    pdu = packet.payload[7:]  # after TPKT (4) and COTP DT (3)
    assert pdu[:2] == b"\x72\x03" and pdu[4] == 32
    body = pdu[4 + 33 : 4 + int.from_bytes(pdu[2:4], "big")]
    (whole,) = Harness.records(Harness().feed(dt(plus(3, body, digest=True)), 0, frame=71))
    assert (whole.object_id, whole.attribute_id, whole.value) == (52, 2167, 1)
    for cut in range(9, 14 + 17):
        harness = Harness()
        events = [
            e
            for n, part in enumerate(plus_fragments(3, body, [cut], digest=True), 71)
            for e in harness.feed(dt(part), 0, n)
        ]
        first, last = Harness.records(events)
        assert (first.frame, first.object_id, first.attribute_id, first.value, last.fragment) == (
            71,
            52,
            2167,
            1,
            "last",
        ), cut


def test_plus_held_across_keep_alives_capped_and_paired() -> None:
    """Keep-alives between fragments neither end nor feed the held message (their records queue
    behind it); empty fragments cannot hold records back without end; a request whose sequence
    came in a later fragment still pairs with its response."""
    first, last = plus_fragments(2, _STOP_BODY, [5])
    keep_alive = b"\x72\xff\x07\x00"
    harness = Harness()
    pdus = [first, *[keep_alive] * 40, last]
    events = [e for n, pdu in enumerate(pdus, 1) for e in harness.feed(dt(pdu), 0, n)]
    assert Harness.codes(events) == []
    records = Harness.records(events)
    assert [(r.frame, r.version_name) for r in records] == [
        (1, "V2"),
        *[(n, "KEEP_ALIVE") for n in range(2, 42)],
        (42, "V2"),
    ]
    assert (records[0].function, records[0].sequence, records[0].object_id, records[0].value) == (
        "SET_VARIABLE",
        9,
        52,
        1,
    )
    [response] = Harness.records(harness.feed(dt(plus(2, plus_response(0x04F2, 9))), 1, frame=50))
    assert response.request_frame == 1
    # Empty inner fragments: after 64 the held record goes out with what it has, and an anomaly
    # says a request was given up on.
    harness = Harness()
    empty = plus(2, b"", trailer=False)
    events = harness.feed(dt(plus_fragments(2, _STOP_BODY, [19])[0]), 0, 1)
    for n in range(70):
        events += harness.feed(dt(empty), 0, n + 2)
    assert Harness.codes(events) == ["s7comm_plus.held_request_cut"]
    records = Harness.records(events)
    assert [r.frame for r in records] == list(range(1, 72))
    assert (records[0].object_id, records[0].attribute_id) == (52, None)


def test_plus_held_record_released_by_a_new_message_or_the_end() -> None:
    """A held first fragment whose set never completes still gives its record: when the next message
    starts (after lost bytes, say) or when the flow ends."""
    first, _ = plus_fragments(2, _STOP_BODY, [19])
    harness = Harness()
    assert harness.feed(dt(first), 0, frame=1) == []
    harness.dissector.gap(harness.state, 0, harness.ctx)
    events = harness.feed(dt(plus(2, plus_request(0x054C, 10, 0x38C))), 0, frame=7)
    assert [(e.frame, e.function, e.object_id, e.attribute_id) for e in events] == [
        (1, "SET_VARIABLE", 52, None),
        (7, "GET_MULTI_VARIABLES", None, None),
    ]
    # After lost bytes the next data in either direction releases it (the client may stay quiet).
    harness = Harness()
    assert harness.feed(dt(first), 0, frame=1) == []
    harness.dissector.gap(harness.state, 0, harness.ctx)
    events = harness.feed(dt(plus(2, plus_response(0x054C, 3))), 1, frame=8)
    assert [(e.frame, e.function) for e in Harness.records(events)] == [
        (1, "SET_VARIABLE"),
        (8, "GET_MULTI_VARIABLES"),
    ]
    harness = Harness()
    assert harness.feed(dt(first), 0, frame=2) == []
    [record] = Harness.records(harness.close())
    assert (record.frame, record.object_id, record.value) == (2, 52, None)
    assert Harness.records(harness.close()) == []


def test_tls_reported_once_per_direction() -> None:
    harness = Harness()
    events = harness.feed(dt(b"\x16\x03\x01\x00\x01\x01") + dt(b"\x17\x03\x03\x00\x01\x00"), 0)
    (record,) = events
    assert (record.tls, record.tls_content_type_name, record.tls_version, record.version) == (
        True,
        "HANDSHAKE",
        0x0301,
        None,
    )
    assert len(harness.feed(dt(b"\x16\x03\x03\x00\x01\x02"), 1)) == 1


def test_gap_drops_partial_state() -> None:
    harness = Harness()
    harness.feed(dt(b"\x32\x01", eot=False))
    harness.dissector.gap(harness.state, 0, harness.ctx)
    (record,) = harness.feed(dt(read_job(1, [DB1_READ])))
    assert record.segments == 1
