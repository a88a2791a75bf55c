"""DNP3 application layer: header, every qualifier, point data per group, names, anomalies."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from ics_monitor.dissect.dnp3.application import Fragment, _flags_value, _state, parse_fragment
from ics_monitor.dissect.dnp3.constants import FUNCTION_NAMES, MAX_POINTS, iin_names

RESPONSE = bytes([0xC0, 0x81, 0x00, 0x00])  # FIR FIN seq 0, RESPONSE, IIN 0
WRITE = bytes([0xC0, 0x02])  # FIR FIN seq 0, WRITE
READ = bytes([0xC0, 0x01])  # FIR FIN seq 0, READ
T_MS = 1_700_000_000_123
TIME = struct.pack("<IH", T_MS & 0xFFFFFFFF, T_MS >> 32)  # 48-bit ms since 1970


def decode(data: bytes) -> tuple[Fragment, list[tuple[str, str]]]:
    anomalies: list[tuple[str, str]] = []
    fragment = parse_fragment(data, anomalies)
    assert fragment is not None
    return fragment, anomalies


def only_object(data: bytes) -> dict[str, Any]:
    fragment, anomalies = decode(data)
    assert anomalies == []
    assert len(fragment.objects) == 1
    return fragment.objects[0]


# -- header ----------------------------------------------------------------------------------------


def test_request_header() -> None:
    data = bytes(
        [
            0xD3,  # FIR FIN . UNS seq 3
            0x14,  # ENABLE_UNSOLICITED
            60, 2, 0x06,  # g60v2 all
        ]
    )  # fmt: skip
    fragment, anomalies = decode(data)
    assert (fragment.control, fragment.function_code, fragment.iin) == (0xD3, 20, None)
    assert [(o["group"], o["variation"], o["count"]) for o in fragment.objects] == [(60, 2, 0)]
    assert anomalies == []


def test_response_iin() -> None:
    fragment, _ = decode(bytes([0xC0, 0x81, 0x90, 0x02]))  # IIN1 0x90, IIN2 0x02
    assert fragment.iin == 0x9002
    assert iin_names(fragment.iin) == ("NEED_TIME", "DEVICE_RESTART", "OBJECT_UNKNOWN")


@pytest.mark.parametrize("code", [*range(34), 129, 130, 131])
def test_every_function_named(code: int) -> None:
    assert FUNCTION_NAMES[code] != "UNKNOWN"
    data = bytes([0xC0, code, 0, 0]) if code >= 129 else bytes([0xC0, code])
    fragment, anomalies = decode(data)
    assert fragment.function_code == code
    assert anomalies == []


def test_names_match_spec() -> None:
    assert FUNCTION_NAMES[5] == "DIRECT_OPERATE"
    assert FUNCTION_NAMES[24] == "RECORD_CURRENT_TIME"
    assert FUNCTION_NAMES[131] == "AUTHENTICATE_RESP"


# -- qualifiers ------------------------------------------------------------------------------------


def test_qualifier_00_start_stop_8() -> None:
    obj = only_object(RESPONSE + bytes([1, 2, 0x00, 3, 4, 0x81, 0x01]))  # g1v2 3-4
    assert (obj["qualifier"], obj["start"], obj["stop"], obj["count"]) == (0x00, 3, 4, 2)
    assert [(p["index"], p["value"], p["flags"]) for p in obj["points"]] == [
        (3, True, 0x81),
        (4, False, 0x01),
    ]


def test_qualifier_01_start_stop_16() -> None:
    obj = only_object(RESPONSE + bytes([30, 4, 0x01]) + struct.pack("<HHh", 300, 300, -5))  # g30v4
    assert (obj["start"], obj["stop"]) == (300, 300)
    assert obj["points"] == [{"index": 300, "value": -5, "flags": None}]


def test_qualifier_06_all() -> None:
    obj = only_object(READ + bytes([30, 0, 0x06]))  # g30v0 all points
    assert (obj["start"], obj["stop"], obj["count"], obj["points"]) == (None, None, 0, [])


def test_qualifier_07_count_8() -> None:
    obj = only_object(
        WRITE
        + bytes([50, 1, 0x07, 1])  # g50v1 time, count 1
        + TIME
    )
    assert obj["count"] == 1
    assert obj["points"] == [{"index": 0, "value": T_MS / 1000, "flags": None}]


def test_qualifier_08_count_16() -> None:
    obj = only_object(RESPONSE + bytes([52, 2, 0x08]) + struct.pack("<HH", 1, 250))  # g52v2 fine delay
    assert obj["points"] == [{"index": 0, "value": 250, "flags": None}]


def test_qualifier_17_index_8() -> None:
    obj = only_object(
        RESPONSE
        + bytes([2, 2, 0x17, 1])  # g2v2 event with time, 1-byte count, 1-byte index
        + bytes([7, 0x81])  # index 7, flags online + state
        + TIME
    )
    assert obj["points"] == [{"index": 7, "value": True, "flags": 0x81, "time": T_MS / 1000}]


def test_qualifier_28_index_16_crob() -> None:
    obj = only_object(
        bytes([0xC0, 0x05])  # DIRECT_OPERATE
        + bytes([12, 1, 0x28])  # g12v1 CROB, 2-byte count, 2-byte index
        + struct.pack("<H", 1)  # count 1
        + struct.pack("<H", 513)  # index 513
        + bytes([0x41])  # control code: TRIP/CLOSE 1 (CLOSE), PULSE_ON
        + bytes([2])  # count
        + struct.pack("<II", 100, 200)  # on time, off time
        + bytes([0])  # status SUCCESS
    )
    (point,) = obj["points"]
    assert point["index"] == 513
    assert (point["operation"], point["trip_close"], point["count"]) == ("PULSE_ON", "CLOSE", 2)
    assert (point["on_time"], point["off_time"], point["status_name"]) == (100, 200, "SUCCESS")
    assert (point["queue"], point["clear"]) == (False, False)


def test_qualifier_39_index_32() -> None:
    obj = only_object(
        RESPONSE
        + bytes([20, 5, 0x39])  # g20v5 counter without flag, 4-byte count, 4-byte index
        + struct.pack("<I", 1)  # count
        + struct.pack("<I", 70000)  # index
        + struct.pack("<I", 42)  # value
    )
    assert obj["points"] == [{"index": 70000, "value": 42, "flags": None}]


def test_qualifier_5b_file_command() -> None:
    name = b"/data/config.txt"
    body = (
        struct.pack("<H", 26)  # file name offset
        + struct.pack("<H", len(name))  # file name size
        + TIME  # created
        + struct.pack("<H", 0o644)  # permissions
        + struct.pack("<I", 0)  # authentication key
        + struct.pack("<I", 0)  # file size
        + struct.pack("<H", 1)  # mode READ
        + struct.pack("<H", 1024)  # max block size
        + struct.pack("<H", 7)  # request id
        + name
    )
    obj = only_object(
        bytes([0xC0, 25])  # OPEN_FILE
        + bytes([70, 3, 0x5B, 1])  # g70v3, 2-byte size prefix, 1-byte count 1
        + struct.pack("<H", len(body))
        + body
    )
    value = obj["points"][0]["value"]
    assert obj["variation_name"] == "FILE_COMMAND"
    assert (value["file_name"], value["mode_name"], value["max_block_size"], value["request_id"]) == (
        "/data/config.txt",
        "READ",
        1024,
        7,
    )


def test_file_status_and_transport() -> None:
    status = struct.pack("<IIHHB", 0x100, 360, 1024, 7, 0)  # handle, size, block, request, SUCCESS
    transport = struct.pack("<II", 0x100, 0x80000000) + b"abc"  # handle, last block 0, data
    fragment, anomalies = decode(
        RESPONSE
        + bytes([70, 4, 0x5B, 1])
        + struct.pack("<H", len(status))
        + status
        + bytes([70, 5, 0x5B, 1])
        + struct.pack("<H", len(transport))
        + transport
    )
    assert anomalies == []
    status_value = fragment.objects[0]["points"][0]["value"]
    transport_value = fragment.objects[1]["points"][0]["value"]
    assert (status_value["handle"], status_value["file_size"], status_value["status_name"]) == (
        256,
        360,
        "SUCCESS",
    )
    assert (transport_value["block"], transport_value["last"], transport_value["data_length"]) == (0, True, 3)


def test_auth_challenge_named() -> None:
    challenge = struct.pack("<IHBB", 7, 1, 4, 1) + bytes(4)  # CSQ, user, MAC algorithm, reason, data
    obj = only_object(
        bytes([0xC0, 0x83, 0, 0])  # AUTHENTICATE_RESP
        + bytes([120, 1, 0x5B, 1])
        + struct.pack("<H", len(challenge))
        + challenge
    )
    assert obj["variation_name"] == "CHALLENGE"
    assert obj["points"][0]["value"] == {"kind": "CHALLENGE", "length": 12, "sequence": 7, "user": 1}


def test_auth_fixed_size() -> None:
    obj = only_object(bytes([0xC0, 0x20, 120, 4, 0x07, 1]) + struct.pack("<H", 1))  # g120v4 user 1
    assert obj["variation_name"] == "SESSION_KEY_STATUS_REQUEST"
    assert obj["points"][0]["value"] == 1


# -- groups ----------------------------------------------------------------------------------------


def test_packed_binary_g1v1() -> None:
    obj = only_object(RESPONSE + bytes([1, 1, 0x00, 0, 9, 0b1000_0101, 0b10]))  # 10 bits
    assert [p["value"] for p in obj["points"]] == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
        True,
        False,
        True,
    ]


def test_double_bit_g3v1_and_g4() -> None:
    fragment, anomalies = decode(
        RESPONSE
        + bytes([3, 1, 0x00, 0, 3, 0b1001_1110])  # 4 two-bit values: 2, 3, 1, 2
        + bytes([4, 3, 0x17, 1, 5, 0x81, 0x10, 0x00])  # g4v3 index 5, flags, relative time 16 ms
    )
    assert anomalies == []
    assert [p["value"] for p in fragment.objects[0]["points"]] == [2, 3, 1, 2]
    assert fragment.objects[1]["points"] == [{"index": 5, "value": 2, "flags": 0x81, "time": None}]


def test_cto_relative_time() -> None:
    fragment, anomalies = decode(
        RESPONSE
        + bytes([51, 1, 0x07, 1])  # g51v1 common time of occurrence
        + TIME
        + bytes([2, 3, 0x17, 1, 4, 0x01])  # g2v3 index 4, flags
        + struct.pack("<H", 250)  # 250 ms after the CTO
    )
    assert anomalies == []
    assert fragment.objects[1]["points"][0]["time"] == pytest.approx(T_MS / 1000 + 0.25)


@pytest.mark.parametrize(
    ("group", "variation", "body", "point"),
    [
        (10, 2, bytes([0x81]), {"value": True, "flags": 0x81}),
        (11, 2, bytes([0x01]) + TIME, {"value": False, "flags": 0x01, "time": T_MS / 1000}),
        (13, 1, bytes([0x84]), {"value": True, "status": 4, "status_name": "NOT_SUPPORTED"}),
        (20, 1, bytes([0x01]) + struct.pack("<I", 9), {"value": 9, "flags": 1}),
        (21, 5, bytes([0x01]) + struct.pack("<I", 9) + TIME, {"value": 9, "time": T_MS / 1000}),
        (22, 2, bytes([0x01]) + struct.pack("<H", 9), {"value": 9}),
        (23, 1, bytes([0x01]) + struct.pack("<I", 9), {"value": 9}),
        (30, 5, bytes([0x01]) + struct.pack("<f", 2.5), {"value": 2.5}),
        (30, 6, bytes([0x01]) + struct.pack("<d", -1.25), {"value": -1.25}),
        (32, 7, bytes([0x01]) + struct.pack("<f", 1.5) + TIME, {"value": 1.5, "time": T_MS / 1000}),
        (34, 3, struct.pack("<f", 0.5), {"value": 0.5}),
        (40, 2, bytes([0x01]) + struct.pack("<h", -7), {"value": -7}),
        (41, 3, struct.pack("<f", 3.25) + bytes([0]), {"value": 3.25, "status_name": "SUCCESS"}),
        (42, 1, bytes([0x01]) + struct.pack("<i", 12), {"value": 12}),
        (43, 3, bytes([4]) + struct.pack("<i", 12) + TIME, {"value": 12, "status_name": "NOT_SUPPORTED"}),
        (50, 4, TIME + struct.pack("<IB", 60000, 2), {"value": T_MS / 1000, "interval": 60000, "units": 2}),
        (121, 1, bytes([0x01]) + struct.pack("<HI", 3, 99), {"value": 99, "association": 3}),
    ],
)
def test_group_points(group: int, variation: int, body: bytes, point: dict[str, Any]) -> None:
    obj = only_object(RESPONSE + bytes([group, variation, 0x17, 1, 2]) + body)  # one object, index 2
    (decoded,) = obj["points"]
    assert decoded["index"] == 2
    for key, value in point.items():
        assert decoded[key] == value, key


def test_octet_string() -> None:
    obj = only_object(RESPONSE + bytes([110, 3, 0x00, 1, 2]) + b"abcdef")
    assert [(p["index"], p["value"]) for p in obj["points"]] == [(1, "616263"), (2, "646566")]


def test_iin_write_g80() -> None:
    obj = only_object(WRITE + bytes([80, 1, 0x00, 7, 7, 0x00]))  # clear DEVICE_RESTART (bit 7)
    assert obj["points"] == [{"index": 7, "value": False, "flags": None}]


def test_device_attributes() -> None:
    fragment, anomalies = decode(
        RESPONSE
        + bytes([0, 252, 0x00, 0, 0])  # g0v252 manufacturer name, index 0
        + bytes([1, 4])  # VSTR, 4 bytes
        + b"ACME"
        + bytes([0, 240, 0x00, 0, 0])  # g0v240 max transmit fragment size
        + bytes([2, 2])  # UINT, 2 bytes
        + struct.pack("<H", 2048)
        + bytes([0, 255, 0x00, 0, 0])  # g0v255 list of attribute variations
        + bytes([254, 4, 252, 0, 240, 0])  # U8BS8LIST, 4 bytes: two pairs
    )
    assert anomalies == []
    points = [o["points"][0] for o in fragment.objects]
    assert (points[0]["attribute"], points[0]["value"], points[0]["data_type_name"]) == (
        "MANUFACTURER_NAME",
        "ACME",
        "VSTR",
    )
    assert (points[1]["attribute"], points[1]["value"]) == ("MAX_TRANSMIT_FRAGMENT_SIZE", 2048)
    assert points[2]["value"] == [[252, 0], [240, 0]]


def test_read_with_index_prefix_has_no_data() -> None:
    obj = only_object(READ + bytes([30, 1, 0x17, 2, 4, 9]))  # g30v1 indexes 4 and 9
    assert [p["index"] for p in obj["points"]] == [4, 9]


def test_points_cap() -> None:
    fragment, anomalies = decode(RESPONSE + bytes([1, 1, 0x01]) + struct.pack("<HH", 0, 4095) + bytes(512))
    assert len(fragment.objects[0]["points"]) == MAX_POINTS
    assert [code for code, _ in anomalies] == ["dnp3.points_capped"]


# -- anomalies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes([0xC0]), "dnp3.app_too_short"),
        (bytes([0xC0, 0x81, 0x00]), "dnp3.app_too_short"),
        (bytes([0xC0, 0x50]), "dnp3.app_unknown_function"),
        (RESPONSE + bytes([30, 1]), "dnp3.object_overrun"),  # header cut short
        (RESPONSE + bytes([30, 1, 0x00, 0, 9, 0x01]), "dnp3.object_overrun"),  # data cut short
        (WRITE + bytes([30, 1, 0x0A, 0]), "dnp3.invalid_qualifier"),  # range code 0xA
        (WRITE + bytes([30, 1, 0x80, 0, 0]), "dnp3.invalid_qualifier"),  # reserved bit
        (WRITE + bytes([30, 1, 0x10, 0, 0]), "dnp3.invalid_qualifier"),  # prefix with start/stop
        (WRITE + bytes([70, 3, 0x0B, 1]), "dnp3.invalid_qualifier"),  # free format without size
        (WRITE + bytes([1, 2, 0x00, 5, 2]), "dnp3.invalid_range"),
        (WRITE + bytes([99, 1, 0x00, 0, 0, 1]), "dnp3.unknown_object"),
        (WRITE + bytes([30, 99, 0x00, 0, 0, 1]), "dnp3.unknown_object"),
        (WRITE + bytes([30, 1, 0x09]) + struct.pack("<I", 1 << 20), "dnp3.too_many_points"),
        (READ + bytes([60, 1, 0x06]) * 257, "dnp3.too_many_objects"),
    ],
)
def test_anomaly(data: bytes, code: str) -> None:
    anomalies: list[tuple[str, str]] = []
    parse_fragment(data, anomalies)
    assert [c for c, _ in anomalies] == [code]


def test_broken_header_is_still_listed() -> None:
    fragment, anomalies = decode(WRITE + bytes([60, 1, 0x06, 30, 1, 0x0A]))
    assert [(o["group"], o["variation"]) for o in fragment.objects] == [(60, 1), (30, 1)]
    assert [code for code, _ in anomalies] == ["dnp3.invalid_qualifier"]


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        # g30v1 (flags, value) from a start index, then with a 1-byte index before each object.
        (
            bytes([30, 1, 0x00, 7, 8]),
            bytes([0x01]) + struct.pack("<i", -3) + bytes([0x21]) + struct.pack("<i", 40),
            [{"index": 7, "value": -3, "flags": 0x01}, {"index": 8, "value": 40, "flags": 0x21}],
        ),
        (
            bytes([30, 2, 0x17, 2]),
            bytes([9, 0x01]) + struct.pack("<h", 5) + bytes([4, 0x02]) + struct.pack("<h", -6),
            [{"index": 9, "value": 5, "flags": 0x01}, {"index": 4, "value": -6, "flags": 0x02}],
        ),
        # g1v2 (binary with flags): the state is bit 7 of the flags, a bool.
        (
            bytes([1, 2, 0x28, 2, 0]),
            struct.pack("<H", 300) + bytes([0x81]) + struct.pack("<H", 2) + bytes([0x01]),
            [{"index": 300, "value": True, "flags": 0x81}, {"index": 2, "value": False, "flags": 0x01}],
        ),
        (
            bytes([1, 2, 0x00, 0, 1]),
            bytes([0x01, 0x81]),
            [{"index": 0, "value": False, "flags": 0x01}, {"index": 1, "value": True, "flags": 0x81}],
        ),
    ],
)
def test_common_layouts_build_the_builders_points(
    header: bytes, body: bytes, expected: list[dict[str, Any]]
) -> None:
    """Counters, analogs and binaries with flags are built inline: the same dicts, in key order, as their builder's."""
    obj = only_object(RESPONSE + header + body)
    assert obj["points"] == expected
    # As the layout's builder makes them (it still builds size-prefixed objects): from the rows as
    # unpacked, an index first when one is prefixed; g1v2's row holds the flags alone.
    builder = _flags_value if header[0] == 30 else _state
    offset = 1 if header[2] in (0x17, 0x28) else 0
    rows = [
        ((point["index"],) if offset else ())
        + ((point["flags"], point["value"]) if builder is _flags_value else (point["flags"],))
        for point in expected
    ]
    built = [builder(row, offset, point["index"], None) for row, point in zip(rows, expected, strict=True)]
    assert built == obj["points"]
    assert [list(point) for point in obj["points"]] == [["index", "value", "flags"]] * len(expected)
    assert [type(point["value"]) for point in obj["points"]] == [type(point["value"]) for point in expected]
