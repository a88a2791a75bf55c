"""Modbus PDU decoders, one function family at a time, on the examples of the specification.

Unless noted, the byte strings are the request/response examples of the MODBUS Application Protocol
Specification V1.1b3, section 6 (function code byte left out: decoders get the data after it).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from ics_monitor.dissect.modbus import constants as c
from ics_monitor.dissect.modbus.parser import (
    REQUEST_DECODERS,
    RESPONSE_DECODERS,
    Parsed,
    Request,
    bits,
    exception_response,
    opaque,
    registers,
)


def request(function_code: int, data: bytes) -> Parsed:
    return REQUEST_DECODERS[function_code](data, 0, len(data))


def response(function_code: int, data: bytes, pending: Request | None = None) -> Parsed:
    return RESPONSE_DECODERS[function_code](data, 0, len(data), pending)


def pending(function_code: int, address: int | None, quantity: int | None, sub: int | None = None) -> Request:
    return (3, 1.0, function_code, address, quantity, sub)


def codes(parsed: Parsed) -> list[str]:
    return [code for code, _detail in parsed[5]]


def own(parsed: Parsed) -> Any:
    assert parsed[4] is not None
    return parsed[4]


# -- helpers ---------------------------------------------------------------------------------------


def test_bits_are_lsb_first_and_cut_to_quantity() -> None:
    assert bits(b"\xcd\x6b\x05", 0, 3, 19) == (
        1, 0, 1, 1, 0, 0, 1, 1,  # 0xCD: coils 20-27, bit 0 first
        1, 1, 0, 1, 0, 1, 1, 0,  # 0x6B: coils 28-35
        1, 0, 1,  # 0x05: coils 36-38 (the 5 high bits are padding)
    )  # fmt: skip
    assert bits(b"\x80", 0, 1, None) == (0, 0, 0, 0, 0, 0, 0, 1)


def test_registers_big_endian_also_past_the_table() -> None:
    assert registers(b"\x02\x2b\x00\x00\x00\x64", 0, 3) == (555, 0, 100)
    assert registers(bytes(range(2)) * 130, 0, 130) == (1,) * 130


# -- FC 1, 2, 3, 4: reads --------------------------------------------------------------------------


def test_read_coils() -> None:
    # 19 coils from address 19 (coil 20).
    assert request(1, b"\x00\x13\x00\x13") == (19, 19, None, None, None, ())
    data = bytes(
        [
            0x03,  # byte count
            0xCD, 0x6B, 0x05,  # coil status 27-20, 35-28, 38-36
        ]
    )  # fmt: skip
    address, quantity, byte_count, values, extra, problems = response(1, data, pending(1, 19, 19))
    assert (address, quantity, byte_count, extra, problems) == (19, 19, 3, None, ())
    assert values == (1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1)


def test_read_discrete_inputs() -> None:
    assert request(2, b"\x00\xc4\x00\x16")[:2] == (196, 22)
    parsed = response(2, b"\x03\xac\xdb\x35", pending(2, 196, 22))
    assert parsed[0:3] == (196, 22, 3)
    assert parsed[3] == bits(b"\xac\xdb\x35", 0, 3, 22)
    assert len(parsed[3] or ()) == 22
    assert parsed[5] == ()


def test_read_holding_registers() -> None:
    assert request(3, b"\x00\x6b\x00\x03") == (107, 3, None, None, None, ())
    data = bytes(
        [
            0x06,  # byte count
            0x02, 0x2B,  # register 108: 555
            0x00, 0x00,  # register 109: 0
            0x00, 0x64,  # register 110: 100
        ]
    )  # fmt: skip
    parsed = response(3, data, pending(3, 107, 3))
    assert parsed == (107, 3, 6, (555, 0, 100), None, ())


def test_read_input_registers() -> None:
    assert request(4, b"\x00\x08\x00\x01")[:2] == (8, 1)
    assert response(4, b"\x02\x00\x0a", pending(4, 8, 1)) == (8, 1, 2, (10,), None, ())


def test_response_without_request_keeps_every_value() -> None:
    assert response(1, b"\x01\x05")[0:4] == (None, None, 1, (1, 0, 1, 0, 0, 0, 0, 0))
    assert response(3, b"\x04\x00\x01\x00\x02")[0:4] == (None, None, 4, (1, 2))


@pytest.mark.parametrize(
    ("function_code", "data", "code"),
    [
        (1, b"\x00\x00\x00\x00", c.QUANTITY_OUT_OF_RANGE),  # quantity 0
        (1, b"\x00\x00\x07\xd1", c.QUANTITY_OUT_OF_RANGE),  # 2001 coils (limit 2000)
        (3, b"\x00\x00\x00\x7e", c.QUANTITY_OUT_OF_RANGE),  # 126 registers (limit 125)
        (4, b"\xff\xfa\x00\x0a", c.ADDRESS_OVERFLOW),  # 65530 + 10 > 65536
        (3, b"\x00\x00\x00\x01\x00", c.LENGTH_MISMATCH),  # one byte too many
        (2, b"\x00\x01", c.TRUNCATED_PDU),  # no quantity
    ],
)
def test_read_request_problems(function_code: int, data: bytes, code: str) -> None:
    assert codes(request(function_code, data)) == [code]


def test_truncated_read_request_keeps_the_address() -> None:
    assert request(3, b"\x00\x09")[0:2] == (9, None)
    assert request(3, b"\x00")[0:2] == (None, None)


@pytest.mark.parametrize(
    ("function_code", "data", "pending_request", "expected"),
    [
        (3, b"\x04\x00\x01", pending(3, 0, 2), [c.TRUNCATED_PDU]),  # 2 of 4 value bytes
        (3, b"\x02\x00\x01\x00", pending(3, 0, 1), [c.LENGTH_MISMATCH]),  # a byte after the values
        (3, b"\x04\x00\x01\x00\x02", pending(3, 0, 1), [c.BYTE_COUNT_MISMATCH]),  # 4 bytes for 1 register
        (3, b"\x03\x00\x01\x00", None, [c.BYTE_COUNT_MISMATCH]),  # odd byte count
        (1, b"\x02\x01\x00", pending(1, 0, 8), [c.BYTE_COUNT_MISMATCH]),  # 8 coils take one byte
        (1, b"", pending(1, 0, 8), [c.TRUNCATED_PDU]),  # no byte count
    ],
)
def test_read_response_problems(
    function_code: int, data: bytes, pending_request: Request | None, expected: list[str]
) -> None:
    assert codes(response(function_code, data, pending_request)) == expected


# -- FC 5, 6, 15, 16: writes -----------------------------------------------------------------------


def test_write_single_coil() -> None:
    data = bytes(
        [
            0x00, 0xAC,  # output address 172
            0xFF, 0x00,  # ON
        ]
    )  # fmt: skip
    parsed = request(5, data)
    assert parsed == (172, 1, None, (1,), None, ())
    assert response(5, b"\x00\xac\x00\x00") == (172, 1, None, (0,), None, ())
    assert request(5, b"\x00\xac\x12\x34")[3] == (0x1234,)
    assert codes(request(5, b"\x00\xac\x12\x34")) == [c.BAD_COIL_VALUE]


def test_write_single_register() -> None:
    assert request(6, b"\x00\x01\x00\x03") == (1, 1, None, (3,), None, ())
    assert response(6, b"\x00\x01\x00\x03") == (1, 1, None, (3,), None, ())
    assert codes(request(6, b"\x00\x01\x00")) == [c.TRUNCATED_PDU]


def test_write_multiple_coils() -> None:
    data = bytes(
        [
            0x00, 0x13,  # starting address 19
            0x00, 0x0A,  # 10 outputs
            0x02,  # byte count
            0xCD, 0x01,  # outputs 27-20, 29-28
        ]
    )  # fmt: skip
    parsed = request(15, data)
    assert parsed == (19, 10, 2, (1, 0, 1, 1, 0, 0, 1, 1, 1, 0), None, ())
    assert response(15, b"\x00\x13\x00\x0a") == (19, 10, None, None, None, ())
    assert codes(request(15, b"\x00\x13\x00\x0a\x01\xcd")) == [c.BYTE_COUNT_MISMATCH]
    assert codes(request(15, b"\x00\x13\x07\xb1\xf7" + bytes(0xF7))) == [c.QUANTITY_OUT_OF_RANGE]


def test_write_multiple_registers() -> None:
    data = bytes(
        [
            0x00, 0x01,  # starting address 1
            0x00, 0x02,  # 2 registers
            0x04,  # byte count
            0x00, 0x0A,  # 10
            0x01, 0x02,  # 258
        ]
    )  # fmt: skip
    parsed = request(16, data)
    assert parsed == (1, 2, 4, (10, 258), None, ())
    assert response(16, b"\x00\x01\x00\x02") == (1, 2, None, None, None, ())
    assert codes(request(16, b"\x00\x01\x00\x02\x06\x00\x0a\x01\x02\x00\x00")) == [c.BYTE_COUNT_MISMATCH]
    assert codes(request(16, b"\x00\x01\x00\x02\x04\x00\x0a")) == [c.TRUNCATED_PDU]
    assert codes(request(16, b"\x00\x01\x00\x00\x00")) == [c.QUANTITY_OUT_OF_RANGE]
    assert codes(request(16, b"\x00\x01")) == [c.TRUNCATED_PDU]


# -- FC 7, 8, 11, 12, 17: serial line and diagnostics -----------------------------------------------


def test_read_exception_status() -> None:
    assert request(7, b"") == (None, None, None, None, ({},), ())
    assert response(7, b"\x6d") == (None, None, None, None, ({"exception_status": 0x6D},), ())
    assert codes(request(7, b"\x00")) == [c.LENGTH_MISMATCH]


def test_diagnostics_return_query_data() -> None:
    data = bytes(
        [
            0x00, 0x00,  # sub-function 0: return query data
            0xA5, 0x37,  # data
        ]
    )  # fmt: skip
    parsed = request(8, data)
    assert parsed == (None, None, None, (0xA537,), (0, "RETURN_QUERY_DATA", "a537"), ())
    assert response(8, b"\x00\x00\xa5\x37") == parsed


@pytest.mark.parametrize("sub_function", [*range(5), *range(10, 22)])
def test_every_diagnostics_sub_function_is_named(sub_function: int) -> None:
    parsed = request(8, struct.pack(">HH", sub_function, 0))
    assert own(parsed)[0] == sub_function
    assert own(parsed)[1] == c.DiagnosticSubFunction(sub_function).name
    assert parsed[5] == ()


def test_diagnostics_problems() -> None:
    assert codes(request(8, b"\x00\x05\x00\x00")) == [c.UNKNOWN_SUB_FUNCTION]  # 5-9 are reserved
    assert own(request(8, b"\x00\x05\x00\x00"))[1] == c.UNKNOWN
    assert codes(request(8, b"\x00")) == [c.TRUNCATED_PDU]
    # A listen-only answer without its data word (pymodbus sends that): too short.
    assert codes(response(8, b"\x00\x04")) == [c.TRUNCATED_PDU]
    assert codes(request(8, b"\x00\x01\x00\x00\x00\x00")) == [c.LENGTH_MISMATCH]


def test_get_comm_event_counter() -> None:
    assert request(11, b"") == (None, None, None, None, ({},), ())
    data = bytes(
        [
            0xFF, 0xFF,  # status: a previous command is still in progress
            0x01, 0x08,  # event count 264
        ]
    )  # fmt: skip
    parsed = response(11, data)
    assert own(parsed) == ({"status": 0xFFFF, "event_count": 264},)


def test_get_comm_event_log() -> None:
    data = bytes(
        [
            0x08,  # byte count
            0x00, 0x00,  # status
            0x01, 0x08,  # event count 264
            0x01, 0x21,  # message count 289
            0x20, 0x00,  # events, most recent first
        ]
    )  # fmt: skip
    parsed = response(12, data)
    assert parsed[2] == 8
    assert own(parsed) == ({"status": 0, "event_count": 264, "message_count": 289, "events": [0x20, 0x00]},)
    assert parsed[5] == ()
    assert codes(response(12, b"\x02\x00\x00")) == [c.BYTE_COUNT_MISMATCH]


def test_report_server_id() -> None:
    # Not from the specification (the contents are device-specific): server id 0x2A, run indicator
    # ON, then "PLC-1" as additional data.
    parsed = response(
        17,
        bytes(
            [
                0x07,  # byte count
                0x2A,  # server id
                0xFF,  # run indicator: ON
            ]
        )
        + b"PLC-1",  # additional data
    )
    assert own(parsed) == (
        {
            "server_id": "2a",
            "server_id_text": "*",
            "run_indicator": 0xFF,
            "run_indicator_name": "ON",
            "additional_data": "504c432d31",
        },
    )
    # pymodbus: its identity text, then the run indicator.
    text = b"Pymodbus-PM-3.16"
    parsed = response(17, bytes([len(text) + 1]) + text + b"\xff")
    assert own(parsed)[0]["server_id_text"] == "Pymodbus-PM-3.16"
    assert own(parsed)[0]["run_indicator_name"] == "ON"
    assert codes(response(17, b"\x05\x01")) == [c.TRUNCATED_PDU]


# -- FC 20, 21: file records -----------------------------------------------------------------------


def test_read_file_record() -> None:
    data = bytes(
        [
            0x0E,  # byte count
            0x06, 0x00, 0x04, 0x00, 0x01, 0x00, 0x02,  # group 1: type 6, file 4, record 1, 2 words
            0x06, 0x00, 0x03, 0x00, 0x09, 0x00, 0x02,  # group 2: type 6, file 3, record 9, 2 words
        ]
    )  # fmt: skip
    parsed = request(20, data)
    assert own(parsed) == (
        {
            "records": [
                {"reference_type": 6, "file_number": 4, "record_number": 1, "record_length": 2},
                {"reference_type": 6, "file_number": 3, "record_number": 9, "record_length": 2},
            ]
        },
    )
    assert parsed[5] == ()
    data = bytes(
        [
            0x0C,  # response data length
            0x05, 0x06, 0x0D, 0xFE, 0x00, 0x20,  # group 1: length 5, type 6, 0x0DFE 0x0020
            0x05, 0x06, 0x33, 0xCD, 0x00, 0x40,  # group 2: length 5, type 6, 0x33CD 0x0040
        ]
    )  # fmt: skip
    parsed = response(20, data)
    assert own(parsed) == (
        {
            "records": [
                {"reference_type": 6, "length": 5, "values": [0x0DFE, 0x0020]},
                {"reference_type": 6, "length": 5, "values": [0x33CD, 0x0040]},
            ]
        },
    )
    assert parsed[5] == ()
    assert codes(request(20, b"\x07\x07\x00\x04\x00\x01\x00\x02")) == [c.BAD_REFERENCE_TYPE]
    assert codes(request(20, b"\x06\x06\x00\x04\x00\x01\x00")) == [c.BYTE_COUNT_MISMATCH]


def test_write_file_record() -> None:
    data = bytes(
        [
            0x0D,  # byte count
            0x06,  # reference type
            0x00, 0x04,  # file 4
            0x00, 0x07,  # record 7
            0x00, 0x03,  # 3 words
            0x06, 0xAF, 0x04, 0xBE, 0x10, 0x0D,  # record data
        ]
    )  # fmt: skip
    expected = (
        {
            "records": [
                {
                    "reference_type": 6,
                    "file_number": 4,
                    "record_number": 7,
                    "record_length": 3,
                    "values": [0x06AF, 0x04BE, 0x100D],
                }
            ]
        },
    )
    assert own(request(21, data)) == expected
    assert own(response(21, data)) == expected
    assert request(21, data)[5] == ()
    # Cut short of its byte count: the PDU is short, its counts agree (the record as far as kept).
    assert codes(request(21, data[:-2])) == [c.TRUNCATED_PDU]
    assert own(request(21, data[:-2]))[0]["records"][0]["values"] == [0x06AF, 0x04BE]
    # A record longer than the byte count: the counts disagree.
    longer = data[:7] + b"\x00\x04" + data[9:]
    assert codes(request(21, longer)) == [c.BYTE_COUNT_MISMATCH]
    # Bytes after the last record, within the byte count.
    assert codes(request(21, b"\x0e" + data[1:] + b"\x00")) == [c.BYTE_COUNT_MISMATCH]


# -- FC 22, 23, 24 ---------------------------------------------------------------------------------


def test_mask_write_register() -> None:
    data = bytes(
        [
            0x00, 0x04,  # reference address 4
            0x00, 0xF2,  # AND mask
            0x00, 0x25,  # OR mask
        ]
    )  # fmt: skip
    assert request(22, data) == (4, None, None, None, ({"and_mask": 0xF2, "or_mask": 0x25},), ())
    assert response(22, data) == request(22, data)


def test_read_write_multiple_registers() -> None:
    data = bytes(
        [
            0x00, 0x03,  # read starting address 3
            0x00, 0x06,  # read 6 registers
            0x00, 0x0E,  # write starting address 14
            0x00, 0x03,  # write 3 registers
            0x06,  # write byte count
            0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF,  # values written
        ]
    )  # fmt: skip
    parsed = request(23, data)
    assert parsed[0:3] == (3, 6, 6)
    assert own(parsed) == ({"write_address": 14, "write_quantity": 3, "write_values": [255, 255, 255]},)
    assert parsed[5] == ()
    values = [0x00FE, 0x0ACD, 0x0001, 0x0003, 0x000D, 0x00FF]
    parsed = response(23, bytes([12]) + struct.pack(">6H", *values), pending(23, 3, 6))
    assert parsed[0:4] == (3, 6, 12, tuple(values))
    assert codes(request(23, b"\x00\x03\x00\x06\x00\x0e\x00\x7a\xf4" + bytes(0xF4))) == [
        c.QUANTITY_OUT_OF_RANGE
    ]


def test_read_fifo_queue() -> None:
    assert request(24, b"\x04\xde")[0] == 1246
    data = bytes(
        [
            0x00, 0x06,  # byte count
            0x00, 0x02,  # FIFO count
            0x01, 0xB8,  # 440
            0x12, 0x84,  # 4740
        ]
    )  # fmt: skip
    parsed = response(24, data, pending(24, 1246, None))
    assert parsed == (1246, 2, 6, (440, 4740), ({"fifo_count": 2},), ())
    assert codes(response(24, b"\x00\x42\x00\x20" + bytes(64))) == [c.QUANTITY_OUT_OF_RANGE]


# -- FC 43: encapsulated interface transport --------------------------------------------------------


def test_read_device_identification_request() -> None:
    parsed = request(43, b"\x0e\x01\x00")  # MEI 14, basic stream, from object 0
    assert own(parsed) == (
        14,
        "READ_DEVICE_IDENTIFICATION",
        {"read_code": 1, "read_code_name": "BASIC_STREAM", "object_id": 0, "object_name": "VendorName"},
        None,
    )
    assert codes(request(43, b"\x0e\x05\x00")) == [c.BAD_READ_DEVICE_ID_CODE]
    assert own(request(43, b"\x0e\x04\x85"))[2]["object_name"] == "PRIVATE"


def test_read_device_identification_response() -> None:
    # The specification's example, with the text lengths counted here.
    data = (
        bytes(
            [
                0x0E,  # MEI type 14
                0x01,  # read device id code: basic
                0x01,  # conformity level: basic, stream only
                0x00,  # more follows: no
                0x00,  # next object id
                0x03,  # number of objects
            ]
        )
        + b"\x00\x16Company identification"  # object 0: VendorName
        + b"\x01\x0fProduct code XX"  # object 1: ProductCode
        + b"\x02\x05V2.11"  # object 2: MajorMinorRevision
    )
    parsed = response(43, data)
    mei_type, mei_name, device_id, raw = own(parsed)
    assert (mei_type, mei_name, raw) == (14, "READ_DEVICE_IDENTIFICATION", None)
    assert device_id == {
        "read_code": 1,
        "read_code_name": "BASIC_STREAM",
        "conformity_level": 1,
        "conformity_level_name": "BASIC_STREAM_ONLY",
        "more_follows": False,
        "next_object_id": 0,
        "number_of_objects": 3,
        "objects": [
            {"id": 0, "name": "VendorName", "value": "Company identification"},
            {"id": 1, "name": "ProductCode", "value": "Product code XX"},
            {"id": 2, "name": "MajorMinorRevision", "value": "V2.11"},
        ],
    }
    assert parsed[5] == ()
    assert codes(response(43, data[:-2])) == [c.TRUNCATED_PDU]
    assert codes(response(43, data + b"\x00")) == [c.LENGTH_MISMATCH]


@pytest.mark.parametrize(
    ("object_id", "name"),
    [
        (0, "VendorName"),
        (1, "ProductCode"),
        (2, "MajorMinorRevision"),
        (3, "VendorUrl"),
        (4, "ProductName"),
        (5, "ModelName"),
        (6, "UserApplicationName"),
        (0x07, "RESERVED"),
        (0x7F, "RESERVED"),
        (0x80, "PRIVATE"),
        (0xFF, "PRIVATE"),
    ],
)
def test_every_device_object_is_named(object_id: int, name: str) -> None:
    data = b"\x0e\x04\x83\x00\x00\x01" + bytes([object_id, 2]) + b"\xc3\xa9"
    (device_object,) = own(response(43, data))[2]["objects"]
    assert device_object == {"id": object_id, "name": name, "value": "\u00e9"}


def test_undecodable_object_text_is_escaped() -> None:
    data = b"\x0e\x04\x83\x00\x00\x01\x85\x03\x01\x02\xfe"
    (device_object,) = own(response(43, data))[2]["objects"]
    assert device_object["value"] == "\x01\x02\\xfe"


def test_other_mei_types() -> None:
    parsed = request(43, b"\x0d\x00\x01\x60\x00\x00")  # MEI 13, CANopen general reference
    assert own(parsed) == (13, "CANOPEN_GENERAL_REFERENCE", None, "0001600000")
    assert parsed[5] == ()
    assert codes(request(43, b"\x0f\x01")) == [c.UNKNOWN_MEI_TYPE]
    assert codes(response(43, b"\x0f\x01")) == [c.UNKNOWN_MEI_TYPE]


# -- FC 90: Schneider UMAS; anything else; exceptions ----------------------------------------------


def test_umas() -> None:
    parsed = request(90, b"\x2a\x41\xff\x00")  # session key 0x2A, STOP_PLC
    assert own(parsed) == (0x41, "STOP_PLC", 0x2A, None, None, "ff00")
    parsed = response(90, b"\x2a\xfe", pending(90, None, None, 0x41))
    assert own(parsed) == (0x41, "STOP_PLC", 0x2A, 0xFE, "OK", "")
    assert own(response(90, b"\x2a\xfd\x81"))[3:5] == (0xFD, "ERROR")
    assert codes(request(90, b"\x2a")) == [c.TRUNCATED_PDU]


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (0x01, "INIT_COMM"),
        (0x04, "READ_PLC_INFO"),
        (0x40, "START_PLC"),
        (0x41, "STOP_PLC"),
        (0x34, "DOWNLOAD_BLOCK"),
    ],
)
def test_umas_sub_functions_named(code: int, name: str) -> None:
    assert own(request(90, bytes([0, code])))[1] == name


def test_opaque() -> None:
    assert opaque(b"\x01\x02", 0, 2) == (None, None, None, None, ({"data": "0102"},), ())


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8, 10, 11])
def test_every_exception_code_is_named(code: int) -> None:
    assert exception_response(bytes([code]), 0, 1) == (code, c.ExceptionCode(code).name, ())


def test_exception_problems() -> None:
    assert exception_response(b"\x09", 0, 1) == (9, c.UNKNOWN, ((c.UNKNOWN_EXCEPTION, "exception code 9"),))
    assert exception_response(b"", 0, 0)[2][0][0] == c.TRUNCATED_PDU
    assert exception_response(b"\x02\x00", 0, 2)[2][0][0] == c.LENGTH_MISMATCH


def test_function_names() -> None:
    for code in (*range(65, 73), *range(100, 111)):
        assert c.FUNCTION_NAMES[code] == "USER_DEFINED"
    assert c.FUNCTION_NAMES[90] == "SCHNEIDER_UMAS"
    assert c.FUNCTION_NAMES[9] == "RESERVED"
    assert 48 not in c.FUNCTION_NAMES


@pytest.mark.parametrize("function_code", sorted(REQUEST_DECODERS))
def test_decoders_take_offsets_inside_a_buffer(function_code: int) -> None:
    # Decoders see data[start:end] only: bytes around the PDU must change nothing.
    body = b"\x0e\x01\x00" if function_code == 43 else b"\x00\x01\x00\x02\x04\x00\x0a\x01\x02"
    alone = REQUEST_DECODERS[function_code](body, 0, len(body))
    inside = REQUEST_DECODERS[function_code](b"\xee" * 5 + body + b"\xee" * 3, 5, 5 + len(body))
    assert inside == alone
