"""The Modbus dissector over bytes: detection, framing, splits, UDP, anomalies, resync and pairing."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.dissect import DissectEngine, ParseContext, Probe, default_registry
from ics_monitor.dissect.modbus import ascii_framing, rtu
from ics_monitor.dissect.modbus import constants as c
from ics_monitor.dissect.modbus.dissector import ModbusDissector
from ics_monitor.events.base import AnomalyEvent
from ics_monitor.events.modbus import (
    ModbusDetailEvent,
    ModbusDiagnosticsEvent,
    ModbusEvent,
    ModbusMeiEvent,
    ModbusUmasEvent,
)
from tests.unit.dissect.modbus.adus import (
    CLIENT_PORT,
    Harness,
    adu,
    context,
    read_request,
    registers_response,
)

READ_HOLDING = adu(
    7,  # transaction id
    1,  # unit id
    read_request(3, 107, 3),  # read 3 holding registers from address 107
)
HOLDING_VALUES = adu(
    7,  # transaction id
    1,  # unit id
    registers_response(3, [555, 0, 100]),  # byte count 6, three registers
)


def confirmed(**options: Any) -> Harness:
    harness = Harness(**options)
    harness.feed(READ_HOLDING, 0, frame=1)
    harness.feed(HOLDING_VALUES, 1, frame=2)
    return harness


def probe(data: bytes) -> Probe:
    return ModbusDissector().probe(memoryview(data), 0)


# -- detection ---------------------------------------------------------------------------------------


def test_probe_accepts_modbus() -> None:
    assert probe(READ_HOLDING) is Probe.YES
    assert probe(HOLDING_VALUES) is Probe.YES
    assert probe(adu(1, 1, b"\x83\x02")) is Probe.YES  # an exception response
    assert probe(adu(1, 0, b"\x5a\x00\x34" + bytes(1000))) is Probe.YES  # UMAS beyond 254
    assert probe(READ_HOLDING + READ_HOLDING[:5]) is Probe.YES  # the next ADU has begun


def test_probe_waits_for_enough_bytes() -> None:
    assert probe(READ_HOLDING[:7]) is Probe.MORE
    assert probe(READ_HOLDING[:10]) is Probe.MORE  # the length says 12 bytes


@pytest.mark.parametrize(
    "data",
    [
        adu(1, 1, read_request(3, 0, 1), protocol_id=1),  # protocol id 1
        adu(1, 1, read_request(3, 0, 1), length=1),  # length below unit id + function code
        adu(1, 1, read_request(3, 0, 1) + bytes(300)),  # length 306 for a public function
        adu(1, 1, b"\x00\x00\x00\x00\x01"),  # function code 0
        adu(1, 1, b"\x30\x00\x00\x00\x01"),  # function code 48: not defined anywhere
        adu(1, 1, b"\x83"),  # exception response without exception code
        READ_HOLDING + b"\x00\x08\x00\x01\x00\x06",  # the next header has protocol id 1
        b"\x00\x01\x00\x01",  # protocol id 1: rejected as soon as its bytes are there
        b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # TLS client hello
        b"\x05\x64\x05\xc9\x01\x00\x0a\x00\x00\x00",  # DNP3 link header
        b"\x03\x00\x00\x16\x11\xe0\x00\x00\x00\x01\x00",  # TPKT/COTP (S7comm)
    ],
)
def test_probe_rejects_other_bytes(data: bytes) -> None:
    assert probe(data) is Probe.NO


def test_first_adu_confirms_and_sets_roles() -> None:
    harness = Harness()
    (record,) = harness.feed(READ_HOLDING, 0, frame=4)
    assert harness.state.confirmed
    assert type(record) is ModbusEvent
    assert (record.event_type, record.frame, record.ts, record.flow_id, record.transport) == (
        "modbus",
        4,
        100.0,
        "flow1",
        "tcp",
    )
    assert (record.src_ip, record.src_port, record.dst_ip, record.dst_port) == (
        "10.0.0.1",
        CLIENT_PORT,
        "10.0.0.2",
        502,
    )
    assert (record.direction, record.transaction_id, record.unit_id, record.length) == ("request", 7, 1, 6)
    assert (record.function_code, record.function, record.address, record.quantity) == (
        3,
        "READ_HOLDING_REGISTERS",
        107,
        3,
    )
    assert (record.exception_code, record.exception, record.values, record.request_frame) == (
        None,
        None,
        None,
        None,
    )


def test_connection_opened_from_port_502_keeps_modbus_roles() -> None:
    # The flow table calls the SYN sender the client; here that is the Modbus server (port 502).
    dissector = ModbusDissector()
    ctx = ParseContext("flow1", "tcp", "10.0.0.2", 502, "10.0.0.1", 40000, strict=True)
    state = dissector.new_state(ctx)
    (request,) = dissector.parse(state, memoryview(READ_HOLDING), 1, ctx).events
    (response,) = dissector.parse(state, memoryview(HOLDING_VALUES), 0, ctx).events
    assert (request.direction, request.dst_port) == ("request", 502)
    assert (response.direction, response.src_port, response.values) == ("response", 502, (555, 0, 100))


def test_flaw_on_another_port_rejects_before_confirmation() -> None:
    # Off port 502 the first ADU must be flawless: a quirk there is more likely another protocol.
    harness = Harness(server_port=5020)
    result = harness.dissector.parse(
        harness.state, memoryview(adu(1, 1, read_request(3, 0, 0))), 0, harness.ctx
    )
    assert result.reject and not result.events
    (record,) = Harness(server_port=5020).feed(READ_HOLDING)
    assert record.dst_port == 5020


def test_flaw_on_port_502_is_reported_not_rejected() -> None:
    events = Harness().feed(adu(1, 1, read_request(3, 0, 0)))
    assert Harness.codes(events) == [c.QUANTITY_OUT_OF_RANGE]
    assert Harness.records(events)[0].quantity == 0


def test_broken_header_rejects_before_confirmation() -> None:
    harness = Harness()
    for data in (adu(1, 1, read_request(3, 0, 1), protocol_id=5), adu(1, 1, b"\x03", length=0)):
        result = harness.dissector.parse(harness.state, memoryview(data), 0, harness.ctx)
        assert result.reject and not result.events


# -- framing -----------------------------------------------------------------------------------------


def test_split_inside_the_header_and_inside_the_pdu() -> None:
    harness = Harness()
    assert harness.feed(READ_HOLDING[:3]) == []
    assert harness.results[-1].needed == 5  # the MBAP header and the function code first
    assert harness.feed(READ_HOLDING[3:9]) == []
    assert harness.results[-1].needed == 3  # then what the MBAP length says
    (record,) = harness.feed(READ_HOLDING[9:], frame=3)
    assert (record.frame, record.address, record.quantity) == (3, 107, 3)


def test_byte_by_byte() -> None:
    harness = confirmed()
    events: list[Any] = []
    for offset in range(len(HOLDING_VALUES)):
        events += harness.feed(READ_HOLDING[offset : offset + 1], 0)
    assert [record.address for record in Harness.records(events)] == [107]


def test_two_adus_in_one_segment_and_one_and_a_half() -> None:
    harness = Harness()
    second = adu(8, 2, read_request(4, 0, 1))
    events = harness.feed(READ_HOLDING + second)
    assert [(e.transaction_id, e.unit_id, e.function_code) for e in events] == [(7, 1, 3), (8, 2, 4)]
    third = adu(9, 3, read_request(1, 0, 8))
    events = harness.feed(adu(10, 1, read_request(2, 0, 2)) + third[:6])
    assert [e.transaction_id for e in events] == [10]
    assert [e.transaction_id for e in harness.feed(third[6:])] == [9]


def test_udp_datagrams() -> None:
    harness = Harness("udp")
    events = harness.feed(READ_HOLDING + adu(8, 1, read_request(4, 0, 1)))
    assert [(e.transport, e.transaction_id) for e in events] == [("udp", 7), ("udp", 8)]
    # A datagram shorter than its MBAP length: what is there is all there will be.
    events = harness.feed(adu(9, 1, read_request(3, 5, 1))[:-2])
    assert Harness.codes(events) == [c.LENGTH_MISMATCH, c.TRUNCATED_PDU]
    (record,) = Harness.records(events)
    assert (record.transaction_id, record.address, record.quantity) == (9, 5, None)


def test_umas_adu_over_254_bytes() -> None:
    harness = confirmed()
    block = adu(
        20,  # transaction id
        0,  # unit id
        bytes(
            [
                0x5A,  # function 90: Schneider UMAS
                0x2A,  # session key
                0x34,  # DOWNLOAD_BLOCK
            ]
        )
        + bytes(1000),  # block data
    )
    (record,) = harness.feed(block, 0)
    assert type(record) is ModbusUmasEvent
    assert (record.length, record.sub_function, record.sub_function_name, record.session_key) == (
        1004,
        0x34,
        "DOWNLOAD_BLOCK",
        0x2A,
    )
    assert len(record.data or "") == 2 * 1000


# -- malformed input, resync -------------------------------------------------------------------------


def test_protocol_id_skipped_by_its_length_once() -> None:
    harness = confirmed()
    events = harness.feed(adu(8, 1, read_request(3, 0, 1), protocol_id=1) + adu(9, 1, read_request(3, 9, 1)))
    assert Harness.codes(events) == [c.BAD_PROTOCOL_ID]
    assert [e.transaction_id for e in Harness.records(events)] == [9]


def test_two_bad_protocol_ids_in_a_row_lose_sync() -> None:
    harness = confirmed()
    bad = adu(8, 1, read_request(3, 0, 1), protocol_id=1)
    events = harness.feed(bad + bad + READ_HOLDING)
    assert Harness.codes(events) == [c.BAD_PROTOCOL_ID, c.BAD_PROTOCOL_ID]
    assert harness.results[-1].reject
    assert Harness.records(events) == []  # the engine hunts for the next segment start
    assert [e.transaction_id for e in harness.feed(READ_HOLDING)] == [7]


@pytest.mark.parametrize("length", [0, 1, 255, 1200])
def test_length_out_of_range_loses_sync(length: int) -> None:
    harness = confirmed()
    good = adu(8, 1, read_request(3, 8, 1))
    events = harness.feed(good + adu(9, 1, read_request(3, 0, 1), length=length))
    assert [e.transaction_id for e in Harness.records(events)] == [8]  # what came before is kept
    assert Harness.codes(events) == [c.BAD_LENGTH]
    assert harness.results[-1].reject


# Each anomaly a single request ADU raises on a confirmed flow (the PDU after the function code).
REQUEST_ANOMALIES = [
    (b"\x03\x00\x00\x00\x01\x00\x00", c.LENGTH_MISMATCH),  # 2 bytes more than FC 3 defines
    (b"\x03\x00\x09", c.TRUNCATED_PDU),  # FC 3 without quantity
    (b"\x10\x00\x00\x00\x02\x06\x00\x01\x00\x02\x00\x03", c.BYTE_COUNT_MISMATCH),  # 6 bytes for 2 registers
    (b"\x03\x00\x00\x00\x7e", c.QUANTITY_OUT_OF_RANGE),  # 126 registers
    (b"\x04\xff\xfa\x00\x0a", c.ADDRESS_OVERFLOW),  # 65530 + 10
    (b"\x05\x00\x03\x12\x34", c.BAD_COIL_VALUE),  # coil value 0x1234
    (b"\x14\x07\x07\x00\x04\x00\x01\x00\x02", c.BAD_REFERENCE_TYPE),  # file reference type 7
    (b"\x30\x01\x02", c.UNKNOWN_FUNCTION),  # function 48
    (b"\x83\x00\x00\x00\x01", c.UNKNOWN_FUNCTION),  # a request with the exception bit
    (b"\x09", c.RESERVED_FUNCTION),  # function 9 (legacy)
    (b"\x08\x00\x05\x00\x00", c.UNKNOWN_SUB_FUNCTION),  # diagnostics sub-function 5
    (b"\x2b\x0f\x01\x00", c.UNKNOWN_MEI_TYPE),  # MEI type 15
    (b"\x2b\x0e\x05\x00", c.BAD_READ_DEVICE_ID_CODE),  # read device id code 5
]


@pytest.mark.parametrize(("pdu", "code"), REQUEST_ANOMALIES)
def test_request_anomaly(pdu: bytes, code: str) -> None:
    harness = confirmed()
    events = harness.feed(adu(30, 1, pdu) + adu(31, 1, read_request(3, 31, 1)), frame=5)
    assert Harness.codes(events) == [code]
    anomaly = next(e for e in events if isinstance(e, AnomalyEvent))
    assert (anomaly.protocol, anomaly.frame, anomaly.direction, anomaly.severity) == (
        "modbus",
        5,
        "to_server",
        CATALOGUE[code].severity.name.lower(),
    )
    # The flawed ADU still gives its record, and the next one is read: skipped by its length.
    assert [e.transaction_id for e in Harness.records(events)] == [30, 31]


def test_unknown_exception_code() -> None:
    harness = confirmed()
    harness.feed(adu(8, 1, read_request(4, 0, 1)), 0)
    events = harness.feed(adu(8, 1, b"\x84\x09"), 1)
    assert Harness.codes(events) == [c.UNKNOWN_EXCEPTION]
    (record,) = Harness.records(events)
    assert (record.function_code, record.exception_code, record.exception) == (4, 9, "UNKNOWN")


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8, 10, 11])
def test_exception_responses(code: int) -> None:
    harness = confirmed()
    harness.feed(adu(8, 1, read_request(2, 0, 1)), 0, frame=3)
    (record,) = harness.feed(adu(8, 1, bytes([0x82, code])), 1, frame=4)
    assert (record.function_code, record.function, record.exception_code, record.exception) == (
        2,
        "READ_DISCRETE_INPUTS",
        code,
        c.ExceptionCode(code).name,
    )
    assert (record.request_frame, record.values) == (3, None)


# -- pairing -----------------------------------------------------------------------------------------


def test_read_responses_carry_the_request_range() -> None:
    harness = Harness()
    harness.feed(READ_HOLDING, 0, frame=4)
    (record,) = harness.feed(HOLDING_VALUES, 1, frame=5)
    assert (record.direction, record.request_frame, record.address, record.quantity) == (
        "response",
        4,
        107,
        3,
    )
    assert (record.byte_count, record.values) == (6, (555, 0, 100))
    harness.feed(adu(8, 1, read_request(1, 19, 19)), 0, frame=6)
    (record,) = harness.feed(adu(8, 1, b"\x01\x03\xcd\x6b\x05"), 1, frame=7)
    assert (record.address, record.quantity, record.request_frame) == (19, 19, 6)
    assert record.values == (1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1)
    assert harness.state.pending == {}


def test_pairing_by_unit_and_transaction_id() -> None:
    harness = Harness()
    harness.feed(adu(1, 1, read_request(3, 10, 1)) + adu(1, 2, read_request(3, 20, 1)), 0, frame=2)
    # Answers in the other order: the unit id tells them apart.
    events = harness.feed(
        adu(1, 2, registers_response(3, [2])) + adu(1, 1, registers_response(3, [1])), 1, frame=3
    )
    assert [(e.unit_id, e.address, e.values) for e in events] == [(2, 20, (2,)), (1, 10, (1,))]


def test_a_response_under_another_unit_id_pairs_by_transaction_id() -> None:
    """A device answering as itself (unit 1) a request to unit 255: its request is the pending one
    with that transaction id, reported as an answer under another unit, not as an orphan (with the
    request left unanswered)."""
    harness = confirmed()
    harness.feed(adu(7, 255, read_request(3, 100, 2)), 0, frame=5)
    events = harness.feed(adu(7, 1, registers_response(3, [4, 5])), 1, frame=6)
    assert Harness.codes(events) == [c.RESPONSE_UNIT_MISMATCH]
    (record,) = Harness.records(events)
    assert (record.unit_id, record.request_frame, record.address, record.values) == (1, 5, 100, (4, 5))
    assert "as unit 1 to the request to unit 255 (frame 5, transaction 7)" in events[1].detail
    assert harness.state.pending == {}
    # Asked as 255 and as 0 with one transaction id: the answer takes the one of its function.
    harness.feed(adu(9, 255, read_request(3, 0, 1)) + adu(9, 0, read_request(4, 50, 1)), 0, frame=7)
    events = harness.feed(adu(9, 8, registers_response(4, [3])), 1, frame=8)
    assert [(r.request_frame, r.address) for r in Harness.records(events)] == [(7, 50)]
    assert [key >> 16 for key in harness.state.pending] == [255]
    # No request to 255 or 0 with that transaction id and function (255's is of another function):
    # an orphan, as before, and 255's request stays for its own answer.
    coils = b"\x01\x01\x01"  # FC 1, one byte: coil 0 on
    for response in (adu(10, 8, registers_response(3, [3])), adu(9, 8, coils)):
        events = harness.feed(response, 1, frame=9)
        assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    (record,) = harness.feed(adu(9, 255, registers_response(3, [5])), 1, frame=10)
    assert (record.request_frame, record.address, record.values) == (7, 0, (5,))


def test_a_device_ignoring_the_unit_id_pairs_by_transaction_id() -> None:
    """A device asked as unit 5 that answers as unit 3, a unit its master never asked on this
    flow: the answer is to the one pending request of its transaction id and function, said once
    per flow and pair of units (not on every poll)."""
    harness = confirmed()  # its exchange asked unit 1
    details = []
    for poll in range(3):
        frame = 10 + 2 * poll
        harness.feed(adu(poll, 5, read_request(3, 40, 1)), 0, frame=frame)
        events = harness.feed(adu(poll, 3, registers_response(3, [poll])), 1, frame=frame + 1)
        (record,) = Harness.records(events)
        assert (record.unit_id, record.request_frame) == (3, frame)
        assert (record.address, record.values) == (40, (poll,))
        details += [e.detail for e in events if e.event_type == "anomaly"]
    assert Harness.codes(events) == []
    assert len(details) == 1 and "as unit 3 to the request to unit 5 (frame 10, transaction 0)" in details[0]
    assert harness.state.pending == {}
    # Asked as another unit too, it is said again for that pair.
    harness.feed(adu(9, 6, read_request(3, 40, 1)), 0, frame=20)
    events = harness.feed(adu(9, 3, registers_response(3, [9])), 1, frame=21)
    assert Harness.codes(events) == [c.RESPONSE_UNIT_MISMATCH]
    assert Harness.records(events)[0].request_frame == 20
    # Two units asked with one transaction id: which one answered is a guess, so neither.
    harness.feed(adu(11, 5, read_request(3, 0, 1)) + adu(11, 6, read_request(3, 0, 1)), 0, frame=22)
    events = harness.feed(adu(11, 3, registers_response(3, [1])), 1, frame=23)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    assert len(harness.state.pending) == 2


def test_a_late_answer_of_a_device_ignoring_the_unit_id_is_not_another_units() -> None:
    """A master with one transaction id for all its units: the device that answers unit 5 as unit 3
    answers a retry twice, the second time while unit 6's request of that id is pending.  Unit 6
    answers as itself, so it is not the device answering under another id: the late answer is an
    orphan, and unit 6's own answer pairs with its request."""
    harness = confirmed()
    harness.feed(adu(0, 6, read_request(3, 100, 1)), 0, frame=2)
    harness.feed(adu(0, 6, registers_response(3, [66])), 1, frame=3)
    harness.feed(adu(0, 5, read_request(3, 0, 1)), 0, frame=4)
    harness.feed(adu(0, 5, read_request(3, 0, 1)), 0, frame=5)  # the retry
    (record,) = Harness.records(harness.feed(adu(0, 3, registers_response(3, [55])), 1, frame=6))
    assert (record.request_frame, record.address) == (5, 0)
    harness.feed(adu(0, 6, read_request(3, 100, 1)), 0, frame=7)
    events = harness.feed(adu(0, 3, registers_response(3, [55])), 1, frame=8)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    (record,) = harness.feed(adu(0, 6, registers_response(3, [66])), 1, frame=9)
    assert (record.request_frame, record.address, record.values) == (7, 100, (66,))


def test_unit_mismatches_reported_per_flow_are_capped() -> None:
    """Every answer under another unit still pairs; past the cap of pairs reported, unreported."""
    harness = confirmed()
    reported = 0
    for n in range(c.MAX_MISMATCHES_REPORTED + 4):
        harness.feed(adu(n, 10 + n, read_request(3, 0, 1)), 0, frame=10 + 2 * n)
        events = harness.feed(adu(n, 200, registers_response(3, [n])), 1, frame=11 + 2 * n)
        assert Harness.records(events)[0].request_frame == 10 + 2 * n
        reported += len(Harness.codes(events))
    assert reported == c.MAX_MISMATCHES_REPORTED
    assert harness.state.pending == {}


def test_no_unit_fallback_when_the_request_answered_is_a_guess() -> None:
    """Two requests of that transaction id and function (which one is answered?), a request to
    another unit than 255 or 0 when the answer's own unit was asked on this flow, requests the
    capture lost (the answer may be to one of those), or more pending requests than a pipelining
    master keeps: an answer under another unit id is an orphan, or the capture's loss, as before."""
    harness = confirmed()
    harness.feed(adu(4, 255, read_request(3, 0, 1)) + adu(4, 0, read_request(3, 10, 1)), 0, frame=2)
    events = harness.feed(adu(4, 9, registers_response(3, [1])), 1, frame=3)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    assert len(harness.state.pending) == 2
    # A request to another unit: a master with one transaction id for all its units, unit 1
    # answering a second time (a retry's answer) while unit 2's request of that id is pending.
    one_id = confirmed()
    one_id.feed(adu(0, 1, read_request(3, 0, 2)), 0, frame=2)
    one_id.feed(adu(0, 1, registers_response(3, [1, 2])), 1, frame=3)
    one_id.feed(adu(0, 2, read_request(3, 100, 4)), 0, frame=4)
    events = one_id.feed(adu(0, 1, registers_response(3, [1, 2])), 1, frame=5)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    (record,) = one_id.feed(adu(0, 2, registers_response(3, [1, 2, 3, 4])), 1, frame=6)
    assert (record.request_frame, record.address) == (4, 100)
    # After a gap in the requests: answers that pair with nothing say nothing until one pairs.
    lossy = confirmed()
    lossy.feed(adu(4, 255, read_request(3, 0, 1)), 0, frame=2)
    lossy.dissector.gap(lossy.state, 0, lossy.ctx)
    events = lossy.feed(adu(4, 1, registers_response(3, [1])), 1, frame=3)
    assert Harness.codes(events) == [] and Harness.records(events)[0].request_frame is None
    assert lossy.state.lost_requests
    # A full table: not searched.
    many = confirmed()
    count = c.MAX_UNIT_FALLBACK + 1
    many.feed(b"".join(adu(n, 255, read_request(3, n, 1)) for n in range(count)), 0, frame=2)
    events = many.feed(adu(0, 1, registers_response(3, [1])), 1, frame=3)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    assert len(many.state.pending) == count


def test_response_without_request() -> None:
    harness = confirmed()
    events = harness.feed(adu(99, 1, registers_response(3, [1, 2])), 1)
    assert Harness.codes(events) == [c.UNMATCHED_RESPONSE]
    (record,) = Harness.records(events)
    assert (record.request_frame, record.address, record.values) == (None, None, (1, 2))


def test_response_with_another_function() -> None:
    harness = confirmed()
    harness.feed(adu(8, 1, read_request(3, 0, 1)), 0, frame=5)
    events = harness.feed(adu(8, 1, registers_response(4, [1])), 1, frame=6)
    assert Harness.codes(events) == [c.RESPONSE_FUNCTION_MISMATCH]
    assert Harness.records(events)[0].request_frame == 5


def test_duplicate_transaction_id() -> None:
    harness = confirmed()
    harness.feed(adu(8, 1, read_request(3, 0, 1)), 0, frame=5)
    events = harness.feed(adu(8, 1, read_request(3, 1, 1)), 0, frame=6)
    assert Harness.codes(events) == [c.DUPLICATE_TRANSACTION]
    (record,) = harness.feed(adu(8, 1, registers_response(3, [1])), 1, frame=7)
    assert (record.request_frame, record.address) == (6, 1)  # the latest request of that id


def test_pending_requests_are_capped() -> None:
    harness = confirmed(max_pending=4)
    events = harness.feed(b"".join(adu(n, 1, read_request(3, n, 1)) for n in range(10, 15)), 0, frame=5)
    assert Harness.codes(events) == [c.PENDING_FULL]
    assert sorted(key & 0xFFFF for key in harness.state.pending) == [11, 12, 13, 14]  # the oldest went


def test_unanswered_after_the_timeout_and_at_close() -> None:
    harness = confirmed(timeout=5.0)
    harness.feed(adu(8, 1, read_request(3, 0, 1)), 0, frame=5, ts=200.0)
    harness.feed(adu(9, 1, read_request(3, 0, 1)), 0, frame=6, ts=203.0)
    assert Harness.codes(harness.feed(adu(10, 1, read_request(3, 0, 1)), 0, frame=7, ts=204.0)) == []
    events = harness.feed(adu(10, 1, registers_response(3, [1])), 1, frame=8, ts=205.5)
    assert Harness.codes(events) == [c.UNANSWERED_REQUEST]
    late = next(e for e in events if isinstance(e, AnomalyEvent))
    assert (late.frame, late.direction) == (8, "to_server")
    assert "frame 5" in late.detail
    closing = harness.close()
    assert Harness.codes(closing) == [c.UNANSWERED_REQUEST]
    assert "frame 6" in closing[0].detail
    assert harness.state.pending == {}


def test_listen_only_mode_needs_no_answer() -> None:
    harness = confirmed()
    harness.feed(adu(8, 1, b"\x08\x00\x04\x00\x00"), 0)  # diagnostics 4: force listen only mode
    assert harness.close() == []


def test_gap_keeps_pairing() -> None:
    harness = confirmed()
    harness.feed(READ_HOLDING, 0, frame=9)
    harness.dissector.gap(harness.state, 1, harness.ctx)
    (record,) = harness.feed(HOLDING_VALUES, 1, frame=10)
    assert record.request_frame == 9


def test_answers_after_requests_lost_from_the_capture_are_no_orphans_until_one_pairs() -> None:
    harness = confirmed()
    harness.dissector.gap(harness.state, 0, harness.ctx)  # requests lost: a capture gap
    (record,) = harness.feed(HOLDING_VALUES, 1, frame=10)  # answers one of them: no anomaly
    assert record.request_frame is None
    harness.feed(READ_HOLDING, 0, frame=11)
    harness.feed(HOLDING_VALUES, 1, frame=12)  # pairs: the loss is behind
    assert Harness.codes(harness.feed(HOLDING_VALUES, 1, frame=13)) == ["modbus.unmatched_response"]
    # Answers lost are not requests lost: an answer to nothing after them is still reported.
    harness = confirmed()
    harness.dissector.gap(harness.state, 1, harness.ctx)
    assert Harness.codes(harness.feed(HOLDING_VALUES, 1, frame=10)) == ["modbus.unmatched_response"]


# -- records of each family --------------------------------------------------------------------------


def test_family_record_classes() -> None:
    harness = Harness()
    families = [
        (b"\x08\x00\x00\xa5\x37", ModbusDiagnosticsEvent),
        (b"\x2b\x0e\x01\x00", ModbusMeiEvent),
        (b"\x5a\x00\x04", ModbusUmasEvent),
        (b"\x16\x00\x04\x00\xf2\x00\x25", ModbusDetailEvent),
        (b"\x41\x01", ModbusDetailEvent),
        (b"\x06\x00\x01\x00\x03", ModbusEvent),
    ]
    for number, (pdu, cls) in enumerate(families):
        (record,) = harness.feed(adu(number, 1, pdu))
        assert type(record) is cls
    (diagnostics,) = harness.feed(adu(0, 1, b"\x08\x00\x00\xa5\x37"), 1)
    assert (diagnostics.sub_function, diagnostics.sub_function_name, diagnostics.data) == (
        0,
        "RETURN_QUERY_DATA",
        "a537",
    )
    (user,) = harness.feed(adu(4, 1, b"\x41\x00\x10"), 1)
    assert (user.function, user.extra, user.request_frame) == ("USER_DEFINED", {"data": "0010"}, 1)


def test_device_identification_response_record() -> None:
    harness = Harness()
    harness.feed(adu(1, 1, b"\x2b\x0e\x01\x00"), 0, frame=2)
    (record,) = harness.feed(adu(1, 1, b"\x2b\x0e\x01\x01\x00\x00\x01\x00\x04ACME"), 1, frame=3)
    assert (record.mei_type, record.mei_type_name, record.request_frame) == (
        14,
        "READ_DEVICE_IDENTIFICATION",
        2,
    )
    assert record.device_id["objects"] == [{"id": 0, "name": "VendorName", "value": "ACME"}]


def test_umas_response_takes_the_request_code() -> None:
    harness = Harness()
    harness.feed(adu(1, 0, b"\x5a\x2a\x41\xff\x00"), 0, frame=2)  # STOP_PLC
    (record,) = harness.feed(adu(1, 0, b"\x5a\x2a\xfe"), 1, frame=3)
    assert (record.sub_function, record.sub_function_name, record.status_name, record.request_frame) == (
        0x41,
        "STOP_PLC",
        "OK",
        2,
    )


def test_inline_reads_equal_the_general_path() -> None:
    # parse() decodes well-formed FC 1-4 pairs inline; _request/_response must give equal records.
    for function_code, quantity, values in (
        (1, 10, b"\x02\xff\x03"),
        (2, 3, b"\x01\x05"),
        (3, 2, b"\x04\x00\x01\x00\x02"),
        (4, 1, b"\x02\xff\xff"),
    ):
        request = adu(5, 9, read_request(function_code, 100, quantity))
        response = adu(5, 9, bytes([function_code]) + values)
        fast = Harness()
        fast_events = fast.feed(request, 0, frame=3) + fast.feed(response, 1, frame=4)
        slow = Harness()
        slow_events: list[Any] = []
        for frame, direction, data in ((3, 0, request), (4, 1, response)):
            slow.ctx.frame = frame
            header = struct.unpack_from(">HHHBB", data)
            method = slow.dissector._request if direction == 0 else slow.dissector._response
            assert method(
                slow.state,
                memoryview(data),
                8,  # the PDU's data, after MBAP header and function code
                len(data),
                header[0],
                header[3],
                header[2],
                header[4],
                direction,
                slow.ctx,
                slow_events,
            )
        assert fast_events == slow_events
        assert [dataclasses.asdict(e) for e in fast_events] == [dataclasses.asdict(e) for e in slow_events]


# -- through the engine with every shipped dissector -----------------------------------------------


def run_engine(chunks: list[tuple[int, bytes]], port: int = 502, transport: str = "tcp") -> list[Any]:
    engine = DissectEngine(default_registry(), strict=True)
    fd = engine.start(context(transport, port), aligned=True)
    assert fd is not None
    for frame, (direction, data) in enumerate(chunks, start=1):
        engine.feed(fd, direction, data, float(frame), frame)
    engine.end(fd)
    return engine.events


@pytest.mark.parametrize(
    "chunks",
    [
        [(0, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n"), (1, b"HTTP/1.1 200 OK\r\n\r\n")],
        [(0, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(160))],
        [(0, bytes(range(7, 250, 3))), (1, bytes(range(255, 0, -2)))],
        [(0, b"\x00\x01\x00\x00\x04\x00\x01\x03" + bytes(40))],  # protocol id 0, length 1024
        [(0, b"\x00\x01\x00\x00\x00\x06\x01\x00\x00\x00\x00\x01")],  # function code 0
    ],
)
def test_other_bytes_on_port_502_give_no_modbus_event(chunks: list[tuple[int, bytes]]) -> None:
    events = run_engine(chunks)
    assert [e for e in events if getattr(e, "event_type", "") == "modbus"] == []
    assert [e.code for e in events if e.code.startswith("modbus.")] == []


def test_modbus_on_another_port_by_content() -> None:
    events = run_engine([(0, READ_HOLDING), (1, HOLDING_VALUES)], port=5020)
    assert [
        (e.event_type, e.direction, e.dst_port if e.direction == "request" else e.src_port) for e in events
    ] == [
        ("modbus", "request", 5020),
        ("modbus", "response", 5020),
    ]
    udp = run_engine([(0, READ_HOLDING), (1, HOLDING_VALUES)], port=1502, transport="udp")
    assert [e.transport for e in udp] == ["udp", "udp"]


def test_engine_resyncs_after_a_bad_length() -> None:
    bad = adu(8, 1, read_request(3, 0, 1), length=300)
    events = run_engine(
        [(0, READ_HOLDING), (1, HOLDING_VALUES), (0, bad), (0, adu(9, 1, read_request(3, 9, 1)))]
    )
    assert [getattr(e, "code", None) or e.transaction_id for e in events] == [
        7,
        7,
        c.BAD_LENGTH,
        9,
        c.UNANSWERED_REQUEST,
    ]


def test_every_anomaly_code_is_registered_and_tested() -> None:
    codes = {code for code in CATALOGUE if code.startswith("modbus.")}
    assert len(codes) == 24
    constants = {value for name, value in vars(c).items() if name.isupper() and isinstance(value, str)}
    assert codes <= constants
    here = Path(__file__).read_text()
    names = {
        name
        for name, value in vars(c).items()
        if name.isupper() and isinstance(value, str) and value in codes
    }
    assert {name for name in names if f"c.{name}" not in here} == set()


def test_read_response_without_byte_count() -> None:
    # Found by the fuzz test: the inline response path must not read past a 2-byte PDU.
    harness = confirmed()
    harness.feed(adu(8, 1, read_request(3, 0, 1)), 0, frame=5)
    events = harness.feed(adu(8, 1, b"\x03"), 1, frame=6)
    assert Harness.codes(events) == [c.TRUNCATED_PDU]
    assert Harness.records(events)[0].request_frame == 5


def test_umas_response_to_an_opaque_umas_request_is_decoded() -> None:
    # FC 0xDA is UMAS (90) with the exception bit: decoded opaque, its own fields are (extra,).
    # The pending request must not carry that dict as the UMAS code: the FC 90 response that
    # pairs with it would look the dict up in the UMAS names and raise (dissection disabled).
    harness = Harness()
    harness.feed(adu(7, 0, b"\xda\x00\x34"), 0, frame=1)
    events = harness.feed(adu(7, 0, b"\x5a\x00\xfe"), 1, frame=2)
    response = next(event for event in events if not isinstance(event, AnomalyEvent))
    assert response.function_code == 90
    assert response.request_frame == 1
    assert response.sub_function is None  # the request's UMAS code is unknown
    assert response.status == 0xFE


# -- RTU frames over TCP/UDP ("RTU over TCP") ------------------------------------------------------


def with_crc(frame: bytes) -> bytes:
    """``frame`` + its CRC-16/MODBUS, bit by bit (independent of the dissector's table)."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return frame + crc.to_bytes(2, "little")


RTU_READ = with_crc(b"\x01\x03\x00\x00\x00\x0a")  # unit 1, FC 3, holding 0 x10
RTU_VALUES = with_crc(b"\x01\x03\x14" + b"".join(struct.pack(">H", 100 + i) for i in range(10)))
RTU_WRITE = with_crc(b"\x01\x06\x00\x05\x10\x92")  # holding 5 = 4242, echoed as the response


def test_rtu_crc_of_the_specification_example() -> None:
    # MODBUS over Serial Line V1.02 / every RTU tutorial: 01 03 00 00 00 0A -> CRC C5 CD.
    assert RTU_READ[-2:] == b"\xc5\xcd"
    assert rtu.crc16(RTU_READ, 0, 6) == 0xCDC5
    assert rtu.crc_ok(RTU_READ, 0, 8)
    assert not rtu.crc_ok(RTU_READ[:-1] + b"\x00", 0, 8)


@pytest.mark.parametrize(
    ("frame", "is_request", "size"),
    [
        (RTU_READ, True, 8),
        (RTU_VALUES, False, 25),
        (with_crc(b"\x01\x10\x00\x0a\x00\x03\x06\x00\x01\x00\x02\x00\x03"), True, 15),  # FC 16
        (with_crc(b"\x01\x83\x02"), False, 5),  # exception
        (with_crc(b"\x01\x07"), True, 4),  # FC 7
        (with_crc(b"\x01\x18\x00\x06\x00\x02\x00\x05\x00\x07"), False, 12),  # FC 24: 2-byte count
        # FC 43/14 answer, walked object by object: vendor "ab", product "c".
        (with_crc(b"\x01\x2b\x0e\x01\x01\x00\x00\x02\x00\x02ab\x01\x01c"), False, 17),
    ],
)
def test_rtu_frame_sizes_follow_the_function(frame: bytes, is_request: bool, size: int) -> None:
    assert len(frame) == size
    assert rtu.frame_length(frame, 0, len(frame), is_request) == size
    assert rtu.frame_end(frame + RTU_READ, 0, len(frame) + 8, is_request) == size
    assert rtu.frame_end(frame[:-1], 0, size - 1, is_request) == -1  # one byte still to come


def test_rtu_frame_of_unknown_size_ends_where_its_crc_holds() -> None:
    echo = with_crc(b"\x01\x08\x00\x00\x01\x02\x03\x04\x05")  # FC 8/0 echo of 5 bytes, not 8
    assert rtu.frame_length(echo, 0, len(echo), False) == 8  # the usual size: its CRC fails there
    assert rtu.frame_end(echo, 0, len(echo), False) == len(echo)
    vendor = with_crc(b"\x01\x41\x99\x98\x97")  # user-defined function 65
    assert rtu.frame_length(vendor, 0, len(vendor), True) == rtu.UNKNOWN
    assert rtu.frame_end(vendor + RTU_READ, 0, len(vendor) + 8, True) == len(vendor)
    assert rtu.frame_end(vendor[:-2], 0, len(vendor) - 2, True) == -1  # may still be arriving
    assert rtu.frame_end(vendor[:-2], 0, len(vendor) - 2, True, probing=True) == 0


def test_rtu_probe() -> None:
    dissector = ModbusDissector()
    assert dissector.probe(memoryview(RTU_READ), 0) is Probe.YES
    assert dissector.probe(memoryview(RTU_VALUES), 1) is Probe.YES
    assert dissector.probe(memoryview(RTU_READ + RTU_WRITE), 0) is Probe.YES
    assert dissector.probe(memoryview(RTU_READ[:5]), 0) is Probe.MORE
    assert dissector.probe(memoryview(RTU_READ[:-1] + b"\x00"), 0) is Probe.NO  # bad CRC
    assert dissector.probe(memoryview(b"\x00\x03" + RTU_READ[2:]), 0) is Probe.NO  # broadcast read
    # MBAP still reads as MBAP, also where its bytes start like an RTU frame.
    assert dissector.probe(memoryview(READ_HOLDING), 0) is Probe.YES
    # Text whose first letters read as unit 71, vendor function 69 ("GE"), with a CRC-valid end:
    # a first frame whose size only its CRC tells does not open an RTU flow (1 in 65,536 texts).
    assert dissector.probe(memoryview(with_crc(b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n")), 0) is Probe.NO


def test_rtu_over_tcp_on_port_502_and_by_content_elsewhere() -> None:
    for port in (502, 4001):
        events = run_engine([(0, RTU_READ), (1, RTU_VALUES), (0, RTU_WRITE), (1, RTU_WRITE)], port=port)
        assert [
            (e.direction, e.framing, e.transaction_id, e.unit_id, e.function_code, e.address, e.request_frame)
            for e in events
        ] == [
            ("request", "rtu", None, 1, 3, 0, None),
            ("response", "rtu", None, 1, 3, 0, 1),
            ("request", "rtu", None, 1, 6, 5, None),
            ("response", "rtu", None, 1, 6, 5, 3),
        ]
        assert events[1].values == tuple(range(100, 110))
        assert events[1].length == len(RTU_VALUES) - 2  # address and PDU, as MBAP's length counts
        assert events[2].values == (4242,)


def test_rtu_frames_split_and_merged_across_segments() -> None:
    # A read and a broadcast write in one stream, cut inside both frames; the answer in two parts.
    stream = RTU_READ + with_crc(b"\x00\x06\x00\x05\x10\x92")
    events = run_engine(
        [(0, stream[:3]), (0, stream[3:11]), (0, stream[11:]), (1, RTU_VALUES[:20]), (1, RTU_VALUES[20:])]
    )
    assert [(e.direction, e.unit_id, e.function_code, e.request_frame) for e in events] == [
        ("request", 1, 3, None),
        ("request", 0, 6, None),
        ("response", 1, 3, 3),
    ]
    assert events[2].values == tuple(range(100, 110))


def test_rtu_bad_crc_is_an_anomaly_and_no_record() -> None:
    corrupt = RTU_WRITE[:-1] + bytes([RTU_WRITE[-1] ^ 0xFF])
    events = run_engine([(0, RTU_READ), (1, RTU_VALUES), (0, corrupt), (0, RTU_READ), (1, RTU_VALUES)])
    assert [getattr(e, "code", None) or (e.direction, e.function_code) for e in events] == [
        ("request", 3),
        ("response", 3),
        c.RTU_BAD_CRC,
        ("request", 3),
        ("response", 3),
    ]
    assert "wrong CRC" in events[2].detail


def test_rtu_pairing_is_per_address_and_a_broadcast_waits_for_no_answer() -> None:
    broadcast = with_crc(b"\x00\x06\x00\x05\x10\x92")
    unit2 = with_crc(b"\x02\x03\x00\x00\x00\x01")
    events = run_engine([(0, RTU_READ), (0, broadcast), (0, unit2), (1, with_crc(b"\x02\x03\x02\x00\x07"))])
    codes = [getattr(e, "code", None) or (e.unit_id, e.function_code, e.request_frame) for e in events]
    # Unit 2's answer pairs with unit 2's request; unit 1's read was never answered (reported at
    # the end); the broadcast write expects no answer and is not reported.
    assert codes == [(1, 3, None), (0, 6, None), (2, 3, None), (2, 3, 3), c.UNANSWERED_REQUEST]
    assert "RTU" in events[-1].detail


def test_rtu_datagram_with_an_incomplete_frame() -> None:
    events = run_engine([(0, RTU_READ), (1, RTU_VALUES[:-3])], port=502, transport="udp")
    assert [getattr(e, "code", None) or e.function_code for e in events] == [
        3,
        c.RTU_INCOMPLETE_FRAME,
        c.UNANSWERED_REQUEST,
    ]


def engine_run(steps: list[tuple[Any, ...]], port: int = 502, transport: str = "tcp") -> list[Any]:
    """``run_engine`` with gaps (``("gap", direction)``) and snap-length cuts (a third item)."""
    engine = DissectEngine(default_registry(), strict=True)
    fd = engine.start(context(transport, port), aligned=True)
    assert fd is not None
    for frame, step in enumerate(steps, start=1):
        if step[0] == "gap":
            engine.gap(fd, step[1])
        else:
            engine.feed(fd, step[0], step[1], float(frame), frame, *step[2:])
    engine.end(fd)
    return engine.events


RTU_READ2 = with_crc(b"\x01\x03\x00\x00\x00\x02")  # its MBAP reading: length 2, function 11
RTU_VALUES2 = with_crc(b"\x01\x03\x04\x00\x07\x00\x08")


def test_rtu_flow_stays_rtu_after_a_bad_frame_early_on() -> None:
    # Found in review: a bad CRC in the second request made the flow MBAP for good (fake records).
    bad = RTU_READ2[:-2] + b"\x00\x03"
    assert ModbusDissector().probe(memoryview(RTU_READ2), 0) is Probe.YES
    events = run_engine([(0, RTU_READ2), (1, RTU_VALUES2), (0, bad), (0, RTU_READ2), (1, RTU_VALUES2)])
    assert [getattr(e, "code", None) or (e.framing, e.function_code, e.request_frame) for e in events] == [
        ("rtu", 3, None),
        ("rtu", 3, 1),
        c.RTU_BAD_CRC,
        ("rtu", 3, None),
        ("rtu", 3, 4),
    ]


def test_mbap_flow_whose_first_request_is_a_valid_rtu_frame_by_chance() -> None:
    # 1 in 65,536 MBAP requests also reads as a CRC-valid RTU frame (here FC 8 of 12 bytes): the
    # answer, which does not, turns the flow back to MBAP and later transactions are MBAP again.
    chance = next(
        segment
        for address in range(0x10000)
        if rtu.crc_ok(segment := adu(0x0108, 1, read_request(3, address, 0x5E)), 0, 12)
    )
    assert ModbusDissector().probe(memoryview(chance), 0) is Probe.YES
    answer = adu(0x0108, 1, b"\x03\xbc" + bytes(0xBC))
    events = run_engine([(0, chance), (1, answer), (0, READ_HOLDING), (1, HOLDING_VALUES)])
    framings = [(e.framing, e.transaction_id) for e in events if not isinstance(e, AnomalyEvent)]
    assert framings[-3:] == [("mbap", 0x0108), ("mbap", 7), ("mbap", 7)]
    assert [e.code for e in events if isinstance(e, AnomalyEvent)] == [c.UNMATCHED_RESPONSE]


def test_mbap_segment_after_a_gap_that_starts_like_an_rtu_frame_is_no_boundary() -> None:
    # Found in review: the probe said "more" to it, and the hunt took it for an ADU start.
    middle = b"\x01\x10\x00\x00\x00\x06\x30\x30\x00\x00\x00\x00"
    events = engine_run([(0, READ_HOLDING), (1, HOLDING_VALUES), ("gap", 0), (0, middle), (0, READ_HOLDING)])
    assert [getattr(e, "code", None) or (e.framing, e.function_code) for e in events] == [
        ("mbap", 3),
        ("mbap", 3),
        ("mbap", 3),
        c.UNANSWERED_REQUEST,
    ]


def test_rtu_device_server_in_client_mode_answers_from_the_client_side() -> None:
    # The serial device server connects to its master: requests come from the port's server side.
    events = run_engine([(1, RTU_READ), (0, RTU_VALUES)], port=4001)
    assert [(e.direction, e.src_port, e.function_code, e.request_frame) for e in events] == [
        ("request", 4001, 3, None),
        ("response", 40000, 3, 1),
    ]


def test_rtu_bad_frame_after_a_good_one_is_reported_once() -> None:
    events = run_engine([(0, RTU_READ2), (1, RTU_VALUES2), (0, RTU_READ2 + b"\xfa\xfa\x00\x00\x00\x00")])
    assert [e.code for e in events if isinstance(e, AnomalyEvent)] == [c.RTU_BAD_CRC, c.UNANSWERED_REQUEST]
    assert "no RTU frame starts here" in next(e.detail for e in events if isinstance(e, AnomalyEvent))


def test_rtu_datagram_cut_by_the_snap_length_still_answers() -> None:
    events = engine_run([(0, RTU_READ), (1, RTU_VALUES[:10], len(RTU_VALUES) - 10)], transport="udp")
    assert [getattr(e, "code", None) or e.function_code for e in events] == [3]


# -- ASCII frames over TCP/UDP ---------------------------------------------------------------------


def ascii_frame(frame: bytes, lrc: int | None = None) -> bytes:
    """``:`` + hex of ``frame`` and its LRC (two's complement of the byte sum) + CR LF."""
    check = (-sum(frame)) & 0xFF if lrc is None else lrc
    return b":" + (frame + bytes([check])).hex().upper().encode() + b"\r\n"


ASCII_READ = ascii_frame(b"\x01\x03\x00\x00\x00\x0a")
ASCII_VALUES = ascii_frame(b"\x01\x03\x14" + b"".join(struct.pack(">H", 100 + i) for i in range(10)))


def test_ascii_lrc_of_the_specification_example() -> None:
    # Serial Line V1.02 2.5.2.2: read 1 register of unit 1 is ":010300000001FB" + CR LF.
    assert ascii_frame(b"\x01\x03\x00\x00\x00\x01") == b":010300000001FB\r\n"
    frame = ascii_framing.decode(b":010300000001FB\r\n", 0, 17)
    assert frame == b"\x01\x03\x00\x00\x00\x01\xfb" and ascii_framing.lrc_ok(frame)
    assert ascii_framing.decode(b":010300000001fb\r\n", 0, 17) == frame  # either case
    assert ascii_framing.decode(b":01030000001FB\r\n", 0, 16) is None  # odd digits


def test_ascii_probe() -> None:
    dissector = ModbusDissector()
    assert dissector.probe(memoryview(ASCII_READ), 0) is Probe.YES
    assert dissector.probe(memoryview(ASCII_READ + ASCII_READ), 0) is Probe.YES
    assert dissector.probe(memoryview(ascii_frame(b"\x01\x03\x00\x00\x00\x0a", lrc=0)), 0) is Probe.NO
    assert dissector.probe(memoryview(b":irc.example.net 001 plc :Welcome\r\n"), 0) is Probe.NO
    assert dissector.probe(memoryview(ascii_frame(b"\x01\x30\x00")), 0) is Probe.NO  # function 48


def test_ascii_over_tcp_on_port_502_and_by_content_elsewhere() -> None:
    for port in (502, 4002):
        events = run_engine([(0, ASCII_READ), (1, ASCII_VALUES[:20]), (1, ASCII_VALUES[20:])], port=port)
        assert [
            (e.direction, e.framing, e.transaction_id, e.function_code, e.request_frame) for e in events
        ] == [
            ("request", "ascii", None, 3, None),
            ("response", "ascii", None, 3, 1),
        ]
        assert events[1].values == tuple(range(100, 110))
        assert events[1].length == 23  # address and PDU, as MBAP's length counts


def test_ascii_bad_lrc_is_an_anomaly_and_no_record() -> None:
    bad = ascii_frame(b"\x01\x06\x00\x05\x10\x92", lrc=0x55)
    events = run_engine([(0, ASCII_READ), (1, ASCII_VALUES), (0, bad + ASCII_READ), (1, ASCII_VALUES)])
    assert [getattr(e, "code", None) or (e.direction, e.function_code) for e in events] == [
        ("request", 3),
        ("response", 3),
        c.ASCII_BAD_FRAME,
        ("request", 3),
        ("response", 3),
    ]
    assert "wrong LRC" in events[2].detail


ASCII_WRITE = ascii_frame(b"\x01\x06\x00\x05\x10\x92")


def test_rtu_frames_of_unit_58_whose_address_is_a_colon() -> None:
    # Found in review: a first byte 0x3A went to the ASCII check only.
    read, values = with_crc(b"\x3a\x03\x00\x00\x00\x02"), with_crc(b"\x3a\x03\x04\x00\x07\x00\x08")
    assert ModbusDissector().probe(memoryview(read), 0) is Probe.YES
    assert [(e.framing, e.unit_id, e.values) for e in run_engine([(0, read), (1, values)], port=4001)] == [
        ("rtu", 58, None),
        ("rtu", 58, (7, 8)),
    ]


def test_ascii_first_frame_split_across_segments() -> None:
    # Found in review: the probe said no to a frame's head, and the flow was lost.
    events = run_engine([(0, ASCII_READ[:5]), (0, ASCII_READ[5:]), (1, ASCII_VALUES)], port=4002)
    assert [(e.framing, e.direction) for e in events] == [("ascii", "request"), ("ascii", "response")]
    events = run_engine([(0, ASCII_READ + ASCII_WRITE[:5]), (0, ASCII_WRITE[5:])], port=4002)
    assert [(e.function_code, e.direction) for e in events if not isinstance(e, AnomalyEvent)] == [
        (3, "request"),
        (6, "request"),
    ]


def test_ascii_answer_cut_by_the_snap_length_still_answers() -> None:
    cut = len(ASCII_VALUES) - 30
    events = engine_run([(0, ASCII_READ), (1, ASCII_VALUES[:30], cut)], port=502, transport="udp")
    assert [getattr(e, "code", None) or e.function_code for e in events] == [3]


def test_ascii_bytes_between_frames() -> None:
    # Line ends and padding between frames are skipped quietly; other bytes are reported once.
    events = run_engine([(0, ASCII_READ), (1, ASCII_VALUES), (0, ASCII_WRITE + b"\r\n \x00" + ASCII_READ)])
    # (The write, to the same address, is given up by the read that follows it.)
    assert [getattr(e, "code", None) or e.function_code for e in events] == [
        3,
        3,
        6,
        3,
        c.UNANSWERED_REQUEST,
        c.UNANSWERED_REQUEST,
    ]
    events = run_engine([(0, ASCII_READ), (1, ASCII_VALUES), (0, b"xyz" + ASCII_WRITE)])
    assert [getattr(e, "code", None) or e.function_code for e in events] == [
        3,
        3,
        c.ASCII_BAD_FRAME,
        6,
        c.UNANSWERED_REQUEST,
    ]
    implausible = ascii_frame(b"\x01\x30\x00")  # function 48: no Modbus frame, though its LRC holds
    events = run_engine([(0, ASCII_READ), (1, ASCII_VALUES), (0, implausible + ASCII_WRITE)])
    assert [getattr(e, "code", None) or e.function_code for e in events] == [
        3,
        3,
        c.ASCII_BAD_FRAME,
        6,
        c.UNANSWERED_REQUEST,
    ]
    assert "no Modbus frame" in events[2].detail


def test_an_intel_hex_file_is_no_modbus_ascii_flow() -> None:
    # Found in review: Intel HEX lines have the same colon, hex digits, checksum and CR LF (a
    # firmware sent over FTP); records at 0x0800 read as FC 8.  A master has one frame out at a time.
    def record(address: int, data: bytes) -> bytes:
        raw = bytes([len(data)]) + address.to_bytes(2, "big") + b"\x00" + data
        return b":" + (raw + bytes([(-sum(raw)) & 0xFF])).hex().upper().encode() + b"\r\n"

    firmware = b"".join(record(0x0800 + 16 * n, bytes(range(n, n + 16))) for n in range(64))
    assert ModbusDissector().probe(memoryview(firmware[:1460]), 0) is Probe.NO
    segments = [(0, firmware[i : i + 1460]) for i in range(0, len(firmware), 1460)]
    assert [e for e in run_engine(segments, port=20021) if getattr(e, "event_type", "") == "modbus"] == []


def test_ascii_line_ends_other_than_cr_lf() -> None:
    # FC 8/3 (Change ASCII Input Delimiter) makes another byte follow CR; some gateways send a lone
    # LF, or CR alone (before the next colon, or ending the segment).  Each ends a frame.
    change = ascii_frame(b"\x01\x08\x00\x03\x3b\x00")  # the new delimiter: ';'
    read, values = ASCII_READ[:-1] + b";", ASCII_VALUES[:-1] + b";"
    assert ascii_framing.frame_end(read, 0, len(read)) == len(read)
    assert ascii_framing.decode(read, 0, len(read)) == ascii_framing.decode(ASCII_READ, 0, len(ASCII_READ))
    events = run_engine([(0, change), (1, change), (0, read), (1, values[:-1]), (1, values[-1:])], port=4002)
    assert [(e.direction, e.function_code, e.request_frame) for e in events] == [
        ("request", 8, None),
        ("response", 8, 1),
        ("request", 3, None),
        ("response", 3, 3),
    ]
    assert events[0].sub_function == 3 and events[0].data == "3b00"
    assert events[3].values == tuple(range(100, 110))
    lone_lf = ASCII_READ[:-2] + b"\n"
    cr_only = ASCII_READ[:-1]
    events = run_engine(
        [(0, lone_lf), (1, ASCII_VALUES), (0, cr_only + ASCII_READ), (1, ASCII_VALUES)], port=4002
    )
    assert [getattr(e, "code", None) or (e.direction, e.function_code) for e in events] == [
        ("request", 3),
        ("response", 3),
        ("request", 3),
        ("request", 3),
        c.UNANSWERED_REQUEST,  # the master gave up the first
        ("response", 3),
    ]
    # Not a line end: a frame whose digits stop at another byte.
    broken = ASCII_READ[:-2] + b"\t\n"
    assert ascii_framing.frame_end(broken, 0, len(broken)) == 0
    # Found in review: a delimiter set to CR itself (CR CR) broke every frame.
    cr_cr = ASCII_READ[:-1] + b"\r"
    assert ascii_framing.decode(cr_cr, 0, len(cr_cr)) == ascii_framing.decode(ASCII_READ, 0, len(ASCII_READ))


def test_ascii_sender_ending_frames_with_cr_alone() -> None:
    # Found in review: a CR that ends a segment waited for a delimiter that never comes, so each
    # frame was held back to the sender's next one (wrong frame and time) and the last was lost.
    read, values, write = ASCII_READ[:-1], ASCII_VALUES[:-1], ASCII_WRITE[:-1]
    for port in (502, 4002):
        events = run_engine([(0, read), (1, values), (0, write), (1, write)], port=port)
        assert [(e.direction, e.function_code, e.frame, e.request_frame) for e in events] == [
            ("request", 3, 1, None),
            ("response", 3, 2, 1),
            ("request", 6, 3, None),
            ("response", 6, 4, 3),
        ]
    events = run_engine([(0, read), (1, values)], port=502, transport="udp")
    assert [(e.direction, e.function_code) for e in events] == [("request", 3), ("response", 3)]
    # CR and its delimiter in two segments: the delimiter opening the next one is skipped quietly.
    semicolon = ASCII_READ[:-1] + b";"
    events = run_engine([(0, semicolon[:-1]), (0, b";" + semicolon), (1, ASCII_VALUES)], port=4002)
    assert [getattr(e, "code", None) or (e.direction, e.frame) for e in events] == [
        ("request", 1),
        ("request", 2),
        c.UNANSWERED_REQUEST,
        ("response", 3),
    ]


def test_ascii_device_server_in_client_mode() -> None:
    # The device server opens the connection to its master and answers from the client side:
    # roles follow the frames' shapes (a read request and its answer differ in size), not the SYN.
    for port in (502, 4002):
        events = run_engine(
            [(1, ASCII_READ), (0, ASCII_VALUES), (1, ASCII_WRITE), (0, ASCII_WRITE)], port=port
        )
        assert [(e.direction, e.function_code, e.request_frame, e.src_port) for e in events] == [
            ("request", 3, None, port),
            ("response", 3, 1, 40000),
            ("request", 6, None, port),
            ("response", 6, 3, 40000),
        ]
