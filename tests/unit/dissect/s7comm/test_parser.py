"""The pure S7comm / S7comm-plus decoders: header, items, values, block transfer, PI, USERDATA, SZL."""

from __future__ import annotations

import struct

import pytest

from ics_monitor.dissect.s7comm.parser import (
    decode_clock,
    decode_szl,
    decode_values,
    parse_file_name,
    parse_pdu,
    parse_plus,
    pi_service_name,
)
from tests.unit.dissect.s7comm.frames import (
    DB1_READ,
    any_item,
    component_entry,
    file_name,
    module_entry,
    plus,
    plus_request,
    plus_response,
    read_answer,
    read_job,
    s7,
    userdata,
)

READ_DB1_DBX6_2_BIT = bytes(
    [
        0x32,  # protocol id
        0x01,  # ROSCTR JOB
        0x00, 0x00,  # redundancy id
        0x01, 0x00,  # PDU reference 256
        0x00, 0x0E,  # parameter length 14
        0x00, 0x00,  # data length 0
        0x04,  # function READ_VAR
        0x01,  # item count
        0x12,  # variable specification
        0x0A,  # length of the address specification
        0x10,  # syntax id S7ANY
        0x01,  # transport size BIT
        0x00, 0x01,  # length 1
        0x00, 0x01,  # DB 1
        0x84,  # area DB
        0x00, 0x00, 0x32,  # address 6 * 8 + 2
    ]
)  # fmt: skip


def test_read_request_s7any_item() -> None:
    problems: list[tuple[str, str]] = []
    pdu = parse_pdu(READ_DB1_DBX6_2_BIT, problems)
    assert problems == []
    assert (pdu.rosctr, pdu.pdu_ref, pdu.parameter_length, pdu.data_length) == (1, 256, 14, 0)
    assert (pdu.function_code, pdu.item_count) == (4, 1)
    assert pdu.items == (
        {
            "syntax_id": 0x10,
            "syntax": "S7ANY",
            "area": 0x84,
            "area_name": "DATA_BLOCK",
            "db": 1,
            "address": 6,
            "bit": 2,
            "transport_size": 1,
            "transport_size_name": "BIT",
            "length": 1,
        },
    )


def test_timer_and_counter_addresses_are_numbers() -> None:
    pdu = parse_pdu(read_job(1, [any_item(0x1D, 0, 0, 2, 29)[:-3] + (5).to_bytes(3, "big")]), [])
    assert pdu.items is not None
    assert (pdu.items[0]["area_name"], pdu.items[0]["address"], pdu.items[0]["bit"]) == ("TIMER", 5, None)


def test_ack_data_error_header() -> None:
    pdu = parse_pdu(s7(2, 7, b"", error=0xD241), [])
    assert (pdu.rosctr, pdu.error_class, pdu.error_code, pdu.function_code) == (2, 0xD2, 0x41, None)


def test_read_answer_values_typed_by_request() -> None:
    request = parse_pdu(read_job(2, [any_item(0x84, 1, 0, 2, 8), any_item(0x84, 1, 8, 2, 5)]), []).items
    answer = read_answer(2, [struct.pack(">ff", 3.5, -1.25), struct.pack(">hh", 1234, -2)])
    pdu = parse_pdu(answer, [], request)
    assert pdu.data_items is not None
    real, integer = pdu.data_items
    assert (real["return_code_name"], real["length"], real["values"]) == ("SUCCESS", 8, [3.5, -1.25])
    assert integer["values"] == [1234, -2]
    assert integer["data"] == "04d2fffe"


def test_read_answer_fill_byte_and_error_item() -> None:
    data = bytes(
        [
            0xFF, 0x04, 0x00, 0x08, 0xAB, 0x00,  # 1 byte (8 bits) + fill byte
            0x0A, 0x00, 0x00, 0x00,  # object does not exist: no data
            0xFF, 0x03, 0x00, 0x01, 0x01,  # one bit
        ]
    )  # fmt: skip
    pdu = parse_pdu(s7(3, 3, bytes([0x04, 3]), data), [])
    assert pdu.data_items is not None
    assert [item["return_code"] for item in pdu.data_items] == [0xFF, 0x0A, 0xFF]
    assert pdu.data_items[0]["values"] == [0xAB]
    assert pdu.data_items[1]["return_code_name"] == "OBJECT_DOES_NOT_EXIST"
    assert pdu.data_items[2]["values"] == [1]


def test_write_request_and_answer() -> None:
    data = bytes([0x00, 0x04, 0x00, 0x20]) + b"\xde\xad\xbe\xef"
    pdu = parse_pdu(s7(1, 4, bytes([0x05, 1]) + any_item(0x83, 0, 4, 4), data), [])
    assert pdu.data_items is not None and pdu.data_items[0]["data"] == "deadbeef"
    assert pdu.data_items[0]["values"] == [0xDE, 0xAD, 0xBE, 0xEF]  # request transport size BYTE
    answer = parse_pdu(s7(3, 4, bytes([0x05, 2]), bytes([0xFF, 0x05])), [])
    assert answer.return_codes == (0xFF, 0x05)


def test_item_count_and_truncation_problems() -> None:
    problems: list[tuple[str, str]] = []
    parse_pdu(s7(1, 5, bytes([0x04, 1]) + DB1_READ + DB1_READ), problems)
    assert [code for code, _ in problems] == ["s7comm.item_count_mismatch"]
    problems.clear()
    parse_pdu(s7(1, 5, bytes([0x04, 2]) + DB1_READ), problems)
    assert [code for code, _ in problems] == ["s7comm.truncated_item"]
    problems.clear()
    parse_pdu(s7(1, 5, bytes([0x04, 1]) + DB1_READ)[:-2], problems)
    assert [code for code, _ in problems] == ["s7comm.length_mismatch", "s7comm.truncated_item"]


def test_header_problems() -> None:
    problems: list[tuple[str, str]] = []
    assert parse_pdu(b"\x32\x01\x00", problems).rosctr is None
    assert problems[0][0] == "s7comm.truncated_header"
    problems.clear()
    pdu = parse_pdu(s7(5, 1, b"\x04\x00"), problems)
    assert pdu.rosctr == 5 and problems[0][0] == "s7comm.unknown_rosctr"
    problems.clear()
    parse_pdu(s7(1, 1, b"\x77\x00", b"\x01"), problems)
    assert problems[0][0] == "s7comm.unknown_function"


def test_setup_communication() -> None:
    parameter = bytes([0xF0, 0x00, 0x00, 0x08, 0x00, 0x0A, 0x03, 0xC0])  # AmQ 8/10, PDU 960
    pdu = parse_pdu(s7(3, 0, parameter), [])
    assert pdu.setup == {"max_amq_calling": 8, "max_amq_called": 10, "pdu_length": 960}
    problems: list[tuple[str, str]] = []
    parse_pdu(s7(1, 0, parameter[:4]), problems)
    assert problems[0][0] == "s7comm.truncated_parameter"


def test_file_names() -> None:
    assert parse_file_name(b"_0A00001P") == {
        "type": "DB",
        "type_code": "0A",
        "number": 1,
        "filesystem": "P",
        "filesystem_name": "PASSIVE",
        "file_name": "_0A00001P",
    }
    assert parse_file_name(b"_0800035A")["type"] == "OB"
    assert parse_file_name(b"NC/PROG.MPF")["type"] is None


def test_block_transfer_parameters() -> None:
    request = bytes([0x1A, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0C", 7) + bytes([13]) + b"1000100000084"
    pdu = parse_pdu(s7(1, 9, request), [])
    assert pdu.block is not None
    assert (
        pdu.block["type"],
        pdu.block["number"],
        pdu.block["load_memory_length"],
        pdu.block["mc7_length"],
    ) == (
        "FC",
        7,
        100,  # "1" then six digits of load memory length, then six of MC7 length
        84,
    )
    start = parse_pdu(s7(3, 10, bytes([0x1D, 0, 0, 0]) + struct.pack(">I", 7) + bytes([6]) + b"000292"), [])
    assert (start.upload_id, start.block) == (7, {"length": 292})
    chunk = parse_pdu(s7(3, 11, bytes([0x1E, 0x01]), struct.pack(">HH", 4, 0x00FB) + b"MC7!"), [])
    assert (chunk.function_status, chunk.chunk) == (1, b"MC7!")
    end = parse_pdu(s7(1, 12, bytes([0x1F, 0x00, 0x00, 0x00]) + struct.pack(">I", 7)), [])
    assert end.upload_id == 7


def test_pi_services() -> None:
    def pi(block: bytes, name: bytes) -> bytes:
        parameter = bytes([0x28]) + bytes(6) + b"\xfd" + struct.pack(">H", len(block)) + block
        return s7(1, 1, parameter + bytes([len(name)]) + name)

    cold = parse_pdu(pi(b"C ", b"P_PROGRAM"), [])
    assert (cold.pi_service, cold.pi_arguments) == ("P_PROGRAM", ("C ",))
    assert pi_service_name(cold.pi_service) == "PLC_START_STOP"
    delete = parse_pdu(pi(b"\x02\x00" + b"0A00002P" + b"0C00010A", b"_DELE"), [])
    assert delete.pi_arguments is not None
    assert [(b["type"], b["number"], b["filesystem"]) for b in delete.pi_arguments] == [
        ("DB", 2, "P"),
        ("FC", 10, "A"),
    ]
    # NC log-in: the arguments hold a password and are not kept.
    login = parse_pdu(pi(b"\x01P\x00\x06secret\x00", b"_N_LOGIN_"), [])
    assert (login.pi_service, login.pi_arguments) == ("_N_LOGIN_", None)
    stop = parse_pdu(s7(1, 2, bytes([0x29]) + bytes(5) + b"\x09P_PROGRAM"), [])
    assert (stop.function_code, stop.pi_service) == (0x29, "P_PROGRAM")


def test_userdata_header() -> None:
    pdu = parse_pdu(userdata(3, 2, 4, 1, b"", sequence=5, reference=9, last=False), [])
    assert pdu.userdata is not None
    assert {k: pdu.userdata[k] for k in ("type", "type_name", "group", "group_name", "subfunction")} == {
        "type": 2,
        "type_name": "RESPONSE",
        "group": 4,
        "group_name": "CPU_FUNCTIONS",
        "subfunction": 1,
    }
    assert (pdu.userdata["subfunction_name"], pdu.userdata["sequence"]) == ("READ_SZL", 5)
    assert (pdu.userdata["data_unit_reference"], pdu.userdata["last_data_unit"]) == (9, False)
    mode = parse_pdu(s7(7, 0, bytes([0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00])), [])
    assert mode.mode == {"mode": 2, "mode_name": "RUN"}


def test_szl_module_and_component_identification() -> None:
    entries = [
        module_entry(1, "6ES7 315-2EH14-0AB0", 0x0004, 0x0001),
        module_entry(6, "6ES7 315-2EH14-0AB0", 0x0004, 0x0001),
        module_entry(7, "", 0x5603, 0x0206),  # 'V' 3, 2.6
    ]
    payload = struct.pack(">HHHH", 0x0011, 0, 28, 3) + b"".join(entries)
    szl = decode_szl(payload, [])
    assert szl is not None
    assert (szl["id"], szl["list_name"], szl["entry_count"]) == (0x11, "MODULE_IDENTIFICATION", 3)
    assert szl["identity"] == {
        "order_number": "6ES7 315-2EH14-0AB0",
        "module_version": "4",
        "hardware_order_number": "6ES7 315-2EH14-0AB0",
        "hardware_version": "4",
        "firmware_version": "V3.2.6",
    }
    components = [
        component_entry(1, "PLANT-AS"),
        component_entry(2, "CPU 315-2 PN/DP"),
        component_entry(5, "S C-C2UR28922012"),
    ]
    payload = struct.pack(">HHHH", 0x001C, 0, 34, 3) + b"".join(components)
    szl = decode_szl(payload, [])
    assert szl is not None
    assert szl["identity"] == {
        "as_name": "PLANT-AS",
        "module_name": "CPU 315-2 PN/DP",
        "serial_number": "S C-C2UR28922012",
    }


def test_szl_mode_protection_capabilities() -> None:
    mode = struct.pack(">HBB", 0x4303, 0xFF, 0x48) + bytes(16)  # RUN requested, STOP (internal) before
    szl = decode_szl(struct.pack(">HHHH", 0x0424, 0, 20, 1) + mode, [])
    assert szl is not None
    assert (szl["entries"][0]["requested_mode_name"], szl["entries"][0]["previous_mode_name"]) == (
        "RUN",
        "STOP_INTERNAL",
    )
    protection = struct.pack(">HHHHHH", 4, 1, 0, 1, 3, 2) + bytes(28)
    szl = decode_szl(struct.pack(">HHHH", 0x0232, 4, 40, 1) + protection, [])
    assert szl is not None
    assert (szl["entries"][0]["mode_switch_name"], szl["entries"][0]["startup_switch_name"]) == (
        "STOP",
        "WRST",
    )
    capability = struct.pack(">HHHII", 1, 240, 12, 187500, 1500000) + bytes(26)
    szl = decode_szl(struct.pack(">HHHH", 0x0131, 1, 40, 1) + capability, [])
    assert szl is not None
    assert (szl["entries"][0]["max_pdu_size"], szl["entries"][0]["max_connections"]) == (240, 12)


def test_szl_problems() -> None:
    problems: list[tuple[str, str]] = []
    entry = module_entry(1, "6ES7 315-2EH14-0AB0", 4, 1)
    szl = decode_szl(struct.pack(">HHHH", 0x0011, 0, 28, 4) + entry, problems)
    assert szl is not None and len(szl["entries"]) == 1
    assert problems[0][0] == "s7comm.szl_truncated"
    problems.clear()
    assert decode_szl(struct.pack(">HHHH", 0x0F11, 0, 28, 4), problems) is not None  # header only
    assert problems == []
    assert decode_szl(b"\x00\x11", problems) is None


def test_clock() -> None:
    raw = bytes([0x00, 0x20, 0x24, 0x05, 0x17, 0x12, 0x34, 0x56, 0x78, 0x96])
    assert decode_clock(raw) == "2024-05-17T12:34:56.789"
    assert decode_clock(bytes([0, 0x19, 0x99, 0x13, 0x01, 0, 0, 0, 0, 0])) is None  # month 13


def test_values_without_request() -> None:
    assert decode_values(struct.pack(">i", -5), 6, None) == [-5]
    assert decode_values(b"\x00\x01\x02", 4, None) == [0, 1, 2]
    assert decode_values(b"abc", 9, None) is None


def test_plus_header_fields() -> None:
    request = parse_plus(plus(1, plus_request(0x04CA, 1, 0x120)), False, [])
    assert request is not None
    assert (request.version, request.opcode_name, request.function, request.session_id) == (
        1,
        "REQUEST",
        "CREATE_OBJECT",
        0x120,
    )
    assert (request.sequence, request.integrity, request.trailer, request.fragment) == (1, False, True, None)
    response = parse_plus(plus(3, plus_response(0x054C, 9), digest=True), False, [])
    assert response is not None
    assert (response.integrity, response.opcode_name, response.sequence, response.session_id) == (
        True,
        "RESPONSE",
        9,
        None,
    )


def test_plus_fragments_and_problems() -> None:
    first = parse_plus(plus(2, plus_request(0x0542, 4, 1) + bytes(20), trailer=False), False, [])
    assert first is not None and (first.fragment, first.function) == ("first", "SET_MULTI_VARIABLES")
    inner = parse_plus(plus(2, bytes(30), trailer=False), True, [])
    assert inner is not None and (inner.fragment, inner.opcode) == ("inner", None)
    last = parse_plus(plus(2, bytes(30)), True, [])
    assert last is not None and last.fragment == "last"
    problems: list[tuple[str, str]] = []
    assert parse_plus(b"\x72\x02", False, problems) is None
    parse_plus(b"\x72\x02\x01\x00\x31", False, problems)
    parse_plus(plus(9, plus_request(0x054C, 1, 1)), False, problems)
    assert [code for code, _ in problems] == [
        "s7comm_plus.truncated",
        "s7comm_plus.length_mismatch",
        "s7comm_plus.truncated",
        "s7comm_plus.unknown_version",
    ]
    keep_alive = parse_plus(b"\x72\xff\x07\x00", False, [])
    assert keep_alive is not None and (keep_alive.version_name, keep_alive.sequence) == ("KEEP_ALIVE", 7)


def _set_variable(request_set: bytes, digest: bool = True) -> bytes:
    return plus(3, plus_request(0x04F2, 9, 0x38C) + request_set, digest=digest)


# Object 52 (CPUexecUnit), one address, attribute 2167 as a 2-byte VLQ (0x90 0x77), then a value:
# flags 0, datatype, encoding.
_STATE_REQ = struct.pack(">I", 52) + b"\x01\x90\x77"


@pytest.mark.parametrize(
    ("value_bytes", "value"),
    [
        (b"\x00\x08\x01", 1),  # DInt, signed VLQ: TIA Portal's STOP
        (b"\x00\x08\x03", 3),  # RUN
        (b"\x00\x08\x7f", -1),  # the first byte's 0x40 is the sign
        (b"\x00\x08\x81\x00", 128),  # two bytes
        (b"\x00\x04\x90\x77", 2167),  # UDInt, unsigned VLQ
        (b"\x00\x03\x01\x02", 0x0102),  # UInt: two bytes, not a VLQ
        (b"\x00\x07\xff\xfe", -2),  # Int: two bytes, signed
        (b"\x00\x02\x05", 5),  # USInt: one byte
        (b"\x00\x0e\x3f\x80\x00\x00", None),  # Real: not an integer
        (b"\x10\x08\x01\x01", None),  # an array (flags 0x10): not a plain value
        (b"\x00\x04\x81\x81\x81\x81\xff", 0x204081FF),  # the 5th byte whole
        (b"\x00\x08\xff\xff\xff\xff\xff", -1),  # the same, signed
        (b"\x00\x08\x40", -64),
        (b"\x00\x04\x88\x80\x80\x88\x77", 2167),  # 0x100000877 cut to 32 bits, as Wireshark does
    ],
)
def test_plus_set_variable_request_set(value_bytes: bytes, value: int | None) -> None:
    pdu = parse_plus(_set_variable(_STATE_REQ + value_bytes + bytes(5)), False, [])
    assert pdu is not None and pdu.function == "SET_VARIABLE"
    assert (pdu.object_id, pdu.object_name, pdu.attribute_id, pdu.attribute) == (
        52,
        "CPUexecUnit",
        2167,
        "CPUexecUnit.operatingStateReq",
    )
    assert pdu.value == value


def test_plus_set_variable_cut_short_or_unusual() -> None:
    """A request set cut anywhere fills what it can and raises nothing; other functions, responses
    and more than one address without the CPU's operatingStateReq leave the fields unset."""
    whole = _STATE_REQ + b"\x00\x08\x01"
    seen = []
    for cut in range(len(whole) + 1):
        problems: list[tuple[str, str]] = []
        pdu = parse_plus(_set_variable(whole[:cut], digest=False), False, problems)
        assert pdu is not None and problems == []
        seen.append((pdu.object_id, pdu.attribute_id, pdu.value))
    assert seen[0] == (None, None, None) and seen[3] == (None, None, None)
    assert seen[4] == (52, None, None) and seen[6] == (52, None, None)  # the VLQ address cut in two
    assert seen[7] == (52, 2167, None) and seen[9] == (52, 2167, None)
    assert seen[-1] == (52, 2167, 1)
    two = parse_plus(_set_variable(struct.pack(">I", 52) + b"\x02\x05\x01" + bytes(6)), False, [])
    assert two is not None and (two.object_id, two.attribute_id) == (52, None)
    # Found by a red-team review: a stop as the second of two addresses was not read.  The state
    # request is the address read, its value after the first one's.
    second = parse_plus(
        _set_variable(struct.pack(">I", 52) + b"\x02\x01\x90\x77\x00\x08\x05\x00\x08\x01" + bytes(5)),
        False,
        [],
    )
    assert second is not None and (second.attribute_id, second.value) == (2167, 1)
    # The state set twice (RUN, then STOP): the CPU is left with the last.
    twice = parse_plus(
        _set_variable(struct.pack(">I", 52) + b"\x02\x90\x77\x90\x77\x00\x08\x03\x00\x08\x01" + bytes(5)),
        False,
        [],
    )
    assert twice is not None and (twice.attribute_id, twice.value) == (2167, 1)
    # The value before it not an integer: the address known, the value not.
    real = b"\x00\x0e\x3f\x80\x00\x00"
    unread = parse_plus(
        _set_variable(struct.pack(">I", 52) + b"\x02\x01\x90\x77" + real + b"\x00\x08\x01"), False, []
    )
    assert unread is not None and (unread.attribute_id, unread.value) == (2167, None)
    # More addresses than are read (PLUS_MAX_ADDRESSES): none.
    many = parse_plus(_set_variable(struct.pack(">I", 52) + b"\x41" + b"\x90\x77" * 65), False, [])
    assert many is not None and many.attribute_id is None
    other = parse_plus(plus(3, plus_request(0x0542, 9, 0x38C) + whole, digest=True), False, [])
    assert other is not None and (other.object_id, other.attribute_id) == (None, None)
    response = parse_plus(plus(3, plus_response(0x04F2, 9) + whole, digest=True), False, [])
    assert response is not None and response.object_id is None


def test_plus_get_var_substreamed_request_set() -> None:
    """Object id, then an address array (flags 0x20, UDInt, count, VLQ addresses): the object and
    its first attribute; cut short or of another shape, what could be read stays."""
    request_set = struct.pack(">I", 0x88E10109) + b"\x20\x04\x01\x9d\x29" + bytes(6)  # 3753 = 0x9d 0x29

    def parsed(body: bytes) -> tuple[object, object]:
        pdu = parse_plus(plus(3, plus_request(0x0586, 9, 0x38C) + body, digest=True), False, [])
        assert pdu is not None and pdu.function == "GET_VAR_SUBSTREAMED"
        return pdu.object_id, pdu.attribute_id

    assert parsed(request_set) == (0x88E10109, 3753)
    assert parsed(request_set[:6]) == (0x88E10109, None)
    assert parsed(request_set[:8]) == (0x88E10109, None)  # the VLQ address cut in two
    assert parsed(struct.pack(">I", 52) + b"\x00\x04\x01\x01") == (52, None)  # not an address array
    assert parsed(b"\x00\x00") == (None, None)
