"""S7comm and S7comm-plus PDU decoding: bytes in, fields out.  Pure: no flow state, no I/O.

S7comm PDU (one COTP TSDU, protocol id 0x32)::

    +----+--------+-----------+---------+-----------+-----------+---------------+-----------+------+
    | 32 | ROSCTR | redundancy| PDU ref | parameter | data      | error class,  | parameter | data |
    |    |        | id (0)    |         | length    | length    | code (2, 3)   |           |      |
    +----+--------+-----------+---------+-----------+-----------+---------------+-----------+------+
      1      1         2          2          2           2          0 or 2

JOB and ACK_DATA parameters start with a function code; read/write requests then carry items
``12 len syntax-id ...`` (S7ANY: transport size, length, DB, area, 3-byte bit address), data parts
carry items ``return-code transport-size length data [fill byte]``.  USERDATA parameters::

    00 01 12 | len (4/8) | 11 req / 12 resp | type << 6 | group | subfunction | sequence
             | [data unit reference | last data unit | error code (2)]            (len 8)

and their data part is ``return-code transport-size length payload``.  SZL answers' payload is
``id index entry-length entry-count entries``.  Block uploads and downloads move the block file in
ACK_DATA data parts ``length(2) 00 FB payload``.

S7comm-plus PDU (protocol id 0x72)::

    +----+---------+--------+-----------------------+--------+--------+----------+-----------+
    | 72 | version | length | V3: 20 + 32-byte      | opcode | 00 00  | function | 00 00 ... |
    |    |         |        | integrity digest      |        |        |  (2)     | seq (2)   |
    +----+---------+--------+-----------------------+--------+--------+----------+-----------+
    requests go on with a 4-byte session id; the last fragment of a message ends in 72 vv 00 00.

Decoding never raises on input bytes: everything odd becomes an (anomaly code, detail) pair in the
``problems`` list handed in, and decoding stops at the first structure that does not fit.
References: Wireshark's packet-s7comm.c / packet-s7comm_szl_ids.c, the S7comm-plus plug-in.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ics_monitor.dissect.s7comm.constants import (
    AREA_NAMES,
    BLOCK_LANGUAGE_NAMES,
    BLOCK_TYPE_NAMES,
    COMPONENT_IDENTIFICATION_INDEXES,
    CPU_MODE_NAMES,
    DATA_TRANSPORT_SIZE_NAMES,
    ERROR_NAMES,
    FILESYSTEM_NAMES,
    LENGTH_IN_BITS,
    MAX_ITEMS,
    MAX_LIST_ENTRIES,
    MAX_RAW_BYTES,
    MAX_VALUES,
    MODULE_IDENTIFICATION_INDEXES,
    NUMBERED_AREAS,
    PI_BLOCK_SERVICES,
    PI_SECRET_SERVICES,
    PI_SERVICE_NAMES,
    PLUS_ATTRIBUTE_NAMES,
    PLUS_DIGEST_LENGTH,
    PLUS_FUNCTION_NAMES,
    PLUS_INTEGER_TYPES,
    PLUS_LENGTH_MISMATCH,
    PLUS_MAX_ADDRESSES,
    PLUS_OBJECT_NAMES,
    PLUS_OPCODE_NAMES,
    PLUS_OPERATING_STATE_REQ,
    PLUS_TRUNCATED,
    PLUS_UNKNOWN_VERSION,
    PLUS_VERSION_NAMES,
    RETURN_CODE_NAMES,
    S7_ITEM_COUNT_MISMATCH,
    S7_LENGTH_MISMATCH,
    S7_SZL_TRUNCATED,
    S7_TRUNCATED_HEADER,
    S7_TRUNCATED_ITEM,
    S7_TRUNCATED_PARAMETER,
    S7_UNKNOWN_FUNCTION,
    S7_UNKNOWN_ROSCTR,
    SUBBLOCK_TYPE_NAMES,
    SUBFUNCTION_NAMES,
    SYNTAX_ID_NAMES,
    SZL_LIST_NAMES,
    SZL_MODE_STATE_NAMES,
    TRANSPORT_SIZE_NAMES,
    UNKNOWN,
    USERDATA_GROUP_NAMES,
    DataTransportSize,
    Function,
    PlusFunction,
    PlusOpcode,
    PlusVersion,
    Rosctr,
    SyntaxId,
    TransportSize,
)

Problems = list[tuple[str, str]]

HEADER: Final = struct.Struct(">BBHHHH")
U16: Final = struct.Struct(">H")
U32: Final = struct.Struct(">I")
S7ANY = struct.Struct(">BHHBBH")  # transport size, length, DB, area, address (high byte, low word)
SETUP: Final = struct.Struct(">xHHH")
SZL_HEADER: Final = struct.Struct(">HHHH")
_u16: Final = U16.unpack_from
_u32: Final = U32.unpack_from
_s7any: Final = S7ANY.unpack_from

# Value decoders by request transport size: (element size, struct format letter).
_VALUE_FORMATS: dict[int, tuple[int, str]] = {
    TransportSize.WORD: (2, "H"),
    TransportSize.INT: (2, "h"),
    TransportSize.DWORD: (4, "I"),
    TransportSize.DINT: (4, "i"),
    TransportSize.REAL: (4, "f"),
    TransportSize.COUNTER: (2, "H"),
    TransportSize.TIMER: (2, "H"),
    TransportSize.DATE: (2, "H"),
    TransportSize.TOD: (4, "I"),
    TransportSize.TIME: (4, "i"),
    TransportSize.S5TIME: (2, "H"),
}
# The same by data transport size, when the request is not known.
_DATA_VALUE_FORMATS: dict[int, tuple[int, str]] = {
    DataTransportSize.INTEGER: (2, "h"),
    DataTransportSize.DINTEGER: (4, "i"),
    DataTransportSize.REAL: (4, "f"),
}
# Epoch of S7 block timestamps (days since 1984-01-01, milliseconds of the day).
_S7_EPOCH: Final = datetime(1984, 1, 1, tzinfo=UTC)
# Enum members compared per PDU (here, in the dissector and in the inventory's roles), as module
# constants: compiled code reads these as statics and compares natively, where ``Rosctr.USERDATA``
# is a class attribute lookup (about 900 instructions under mypyc) and a rich comparison.
DTS_BIT: Final = int(DataTransportSize.BIT)
DTS_BYTE_WORD_DWORD: Final = int(DataTransportSize.BYTE_WORD_DWORD)
FN_CPU_SERVICES: Final = int(Function.CPU_SERVICES)
FN_DOWNLOAD_BLOCK: Final = int(Function.DOWNLOAD_BLOCK)
FN_DOWNLOAD_ENDED: Final = int(Function.DOWNLOAD_ENDED)
FN_END_UPLOAD: Final = int(Function.END_UPLOAD)
FN_PI_SERVICE: Final = int(Function.PI_SERVICE)
FN_PLC_STOP: Final = int(Function.PLC_STOP)
FN_READ_VAR: Final = int(Function.READ_VAR)
FN_REQUEST_DOWNLOAD: Final = int(Function.REQUEST_DOWNLOAD)
FN_SETUP_COMMUNICATION: Final = int(Function.SETUP_COMMUNICATION)
FN_START_UPLOAD: Final = int(Function.START_UPLOAD)
FN_UPLOAD: Final = int(Function.UPLOAD)
FN_WRITE_VAR: Final = int(Function.WRITE_VAR)
PLUS_FN_GET_VAR_SUBSTREAMED: Final = int(PlusFunction.GET_VAR_SUBSTREAMED)
PLUS_FN_SET_VARIABLE: Final = int(PlusFunction.SET_VARIABLE)
PLUS_OP_REQUEST: Final = int(PlusOpcode.REQUEST)
PLUS_OP_RESPONSE: Final = int(PlusOpcode.RESPONSE)
PLUS_OP_RESPONSE2: Final = int(PlusOpcode.RESPONSE2)
PLUS_V_EXTENDED_KEEP_ALIVE: Final = int(PlusVersion.EXTENDED_KEEP_ALIVE)
PLUS_V_KEEP_ALIVE: Final = int(PlusVersion.KEEP_ALIVE)
PLUS_V_V1: Final = int(PlusVersion.V1)
PLUS_V_V3: Final = int(PlusVersion.V3)
ROSCTR_ACK: Final = int(Rosctr.ACK)
ROSCTR_ACK_DATA: Final = int(Rosctr.ACK_DATA)
ROSCTR_JOB: Final = int(Rosctr.JOB)
ROSCTR_USERDATA: Final = int(Rosctr.USERDATA)
SYNTAX_DBREAD: Final = int(SyntaxId.DBREAD)
SYNTAX_PBC_R_ID: Final = int(SyntaxId.PBC_R_ID)
SYNTAX_S7ANY: Final = int(SyntaxId.S7ANY)
TS_BIT: Final = int(TransportSize.BIT)
TS_BYTE: Final = int(TransportSize.BYTE)
TS_CHAR: Final = int(TransportSize.CHAR)


def text(raw: bytes) -> str:
    """ASCII/Latin-1 field without padding (NULs and trailing blanks)."""
    return raw.split(b"\x00", 1)[0].decode("latin-1").strip()


def raw_hex(raw: bytes) -> str:
    """Hex of undecoded bytes, capped at MAX_RAW_BYTES."""
    return raw[:MAX_RAW_BYTES].hex()


def error_name(code: int) -> str:
    """Name of a combined S7 error code (class << 8 | code, or a parameter error code)."""
    return ERROR_NAMES.get(code, UNKNOWN)


class S7Pdu:
    """Decoded fields of one S7comm PDU (record fields plus what pairing and transfers need)."""

    __slots__ = (
        "block",
        "block_list",
        "chunk",
        "clock",
        "data",
        "data_items",
        "data_length",
        "error_class",
        "error_code",
        "function_code",
        "function_status",
        "item_count",
        "items",
        "mode",
        "parameter_length",
        "pdu_ref",
        "pi_arguments",
        "pi_service",
        "return_codes",
        "rosctr",
        "setup",
        "szl",
        "szl_id",
        "szl_index",
        "ud_payload",
        "ud_return_code",
        "upload_id",
        "userdata",
    )

    def __init__(self) -> None:
        self.rosctr: int | None = None
        self.pdu_ref = 0
        self.parameter_length = 0
        self.data_length = 0
        self.error_class: int | None = None
        self.error_code: int | None = None
        self.function_code: int | None = None
        self.function_status: int | None = None
        self.item_count: int | None = None
        self.items: tuple[dict[str, Any], ...] | None = None
        self.data_items: tuple[dict[str, Any], ...] | None = None
        self.return_codes: tuple[int, ...] | None = None
        self.userdata: dict[str, Any] | None = None
        self.ud_payload: bytes | None = None
        self.ud_return_code: int | None = None
        self.szl_id: int | None = None
        self.szl_index: int | None = None
        self.szl: dict[str, Any] | None = None
        self.setup: dict[str, int] | None = None
        self.pi_service: str | None = None
        self.pi_arguments: tuple[Any, ...] | None = None
        self.block: dict[str, Any] | None = None
        self.block_list: tuple[dict[str, Any], ...] | None = None
        self.upload_id: int | None = None
        self.chunk: bytes | None = None
        self.clock: str | None = None
        self.mode: dict[str, Any] | None = None
        self.data: str | None = None


# -- header --------------------------------------------------------------------------------------------


def parse_pdu(pdu: bytes, problems: Problems, requests: tuple[dict[str, Any], ...] | None = None) -> S7Pdu:
    """Decode one S7comm PDU (``pdu[0]`` is 0x32).  ``rosctr`` stays None when the header is cut.

    ``requests``: the items of the read request a read answer belongs to (they type its values).
    """
    result = S7Pdu()
    size = len(pdu)
    if size < 10:
        problems.append((S7_TRUNCATED_HEADER, f"{size} bytes, the header needs 10"))
        return result
    _, rosctr, _, pdu_ref, parameter_length, data_length = HEADER.unpack_from(pdu)
    header_length = 12 if rosctr in (ROSCTR_ACK, ROSCTR_ACK_DATA) else 10
    if size < header_length:
        problems.append((S7_TRUNCATED_HEADER, f"{size} bytes, the ACK header needs 12"))
        return result
    result.rosctr = rosctr
    result.pdu_ref = pdu_ref
    result.parameter_length = parameter_length
    result.data_length = data_length
    if header_length == 12:
        result.error_class = pdu[10]
        result.error_code = pdu[11]
    if rosctr not in (ROSCTR_JOB, ROSCTR_ACK, ROSCTR_ACK_DATA, ROSCTR_USERDATA):
        problems.append((S7_UNKNOWN_ROSCTR, f"ROSCTR {rosctr}"))
        return result
    parameter_end = header_length + parameter_length
    end = parameter_end + data_length
    if end != size:
        problems.append(
            (
                S7_LENGTH_MISMATCH,
                f"header {header_length} + parameter {parameter_length} + data {data_length} bytes "
                f"but the PDU has {size}",
            )
        )
    parameter = pdu[header_length:parameter_end]
    data = pdu[parameter_end:end]
    if rosctr == ROSCTR_USERDATA:
        _userdata(result, parameter, data, problems)
    elif parameter:
        _job_or_ack(result, rosctr, parameter, data, problems, requests)
    return result


def _job_or_ack(
    result: S7Pdu,
    rosctr: int,
    parameter: bytes,
    data: bytes,
    problems: Problems,
    requests: tuple[dict[str, Any], ...] | None,
) -> None:
    function = parameter[0]
    result.function_code = function
    job = rosctr == ROSCTR_JOB
    if function in (FN_READ_VAR, FN_WRITE_VAR):
        if len(parameter) < 2:
            problems.append((S7_TRUNCATED_PARAMETER, "read/write without an item count"))
            return
        count = parameter[1]
        result.item_count = count
        if job:
            items = parse_request_items(parameter, count, problems)
            result.items = items
            if function == FN_WRITE_VAR:
                result.data_items = parse_data_items(data, count, items, problems)
        elif function == FN_READ_VAR:
            result.data_items = parse_data_items(data, count, requests, problems)
        else:
            if len(data) != count:
                problems.append(
                    (S7_ITEM_COUNT_MISMATCH, f"write answer counts {count} items, holds {len(data)} codes")
                )
            result.return_codes = tuple(data[:count])
    elif function == FN_SETUP_COMMUNICATION:
        if len(parameter) < 8:
            problems.append((S7_TRUNCATED_PARAMETER, f"setup communication of {len(parameter)} bytes"))
            return
        calling, called, pdu_length = SETUP.unpack_from(parameter, 1)
        result.setup = {"max_amq_calling": calling, "max_amq_called": called, "pdu_length": pdu_length}
    elif 0x1A <= function <= 0x1F:
        _block_transfer(result, function, job, parameter, data, problems)
    elif function == FN_PI_SERVICE:
        if job:
            _pi_service(result, parameter, problems)
        elif len(parameter) >= 2:
            result.function_status = parameter[1]
    elif function == FN_PLC_STOP:
        if job:
            if len(parameter) < 7 or len(parameter) < 7 + parameter[6]:
                problems.append((S7_TRUNCATED_PARAMETER, "PLC stop service name cut short"))
                return
            result.pi_service = text(parameter[7 : 7 + parameter[6]])
    elif function != FN_CPU_SERVICES:
        problems.append((S7_UNKNOWN_FUNCTION, f"function 0x{function:02x}"))
        if data:
            result.data = raw_hex(data)


# -- read/write items ------------------------------------------------------------------------------------


def parse_request_items(
    parameter: bytes, count: int, problems: Problems, start: int = 2
) -> tuple[dict[str, Any], ...]:
    """Variable specifications of a read/write request, from ``start`` (after function and count)."""
    items: list[dict[str, Any]] = []
    size = len(parameter)
    offset = start
    for index in range(count):
        if offset + 3 > size:
            problems.append((S7_TRUNCATED_ITEM, f"item {index + 1} of {count} missing"))
            return tuple(items)
        length = parameter[offset + 1]
        syntax = parameter[offset + 2]
        end = offset + 2 + length
        if end > size:
            problems.append(
                (S7_TRUNCATED_ITEM, f"item {index + 1}: {length} bytes, {size - offset - 2} left")
            )
            return tuple(items)
        if length == 10 and syntax == SYNTAX_S7ANY:
            items.append(_s7any_item(parameter, offset + 3))
        elif syntax == SYNTAX_DBREAD and length >= 7:
            items.append(_dbread_item(parameter, offset + 3, end))
        else:
            items.append(
                {
                    "syntax_id": syntax,
                    "syntax": SYNTAX_ID_NAMES.get(syntax, UNKNOWN),
                    "specification": parameter[offset + 3 : end].hex(),
                }
            )
        offset = end
        if length % 2 and index < count - 1:
            offset += 1  # fill byte after an odd-length item (not after the last)
        if len(items) >= MAX_ITEMS:
            break
    if size - offset > 1:
        problems.append(
            (S7_ITEM_COUNT_MISMATCH, f"{size - offset} parameter bytes after the {count} counted items")
        )
    return tuple(items)


def _s7any_item(parameter: bytes, offset: int) -> dict[str, Any]:
    transport_size, length, db, area, address_high, address_low = _s7any(parameter, offset)
    address = (address_high << 16) | address_low
    if area in NUMBERED_AREAS or area == 0x01:
        byte_address, bit = address, None  # timer/counter number or data record id
    else:
        byte_address, bit = address >> 3, address & 7
    return {
        "syntax_id": SyntaxId.S7ANY.value,
        "syntax": "S7ANY",
        "area": area,
        "area_name": AREA_NAMES.get(area, UNKNOWN),
        "db": db,
        "address": byte_address,
        "bit": bit,
        "transport_size": transport_size,
        "transport_size_name": TRANSPORT_SIZE_NAMES.get(transport_size, UNKNOWN),
        "length": length,
    }


def _dbread_item(parameter: bytes, offset: int, end: int) -> dict[str, Any]:
    count = parameter[offset]
    areas = []
    position = offset + 1
    for _ in range(count):
        if position + 5 > end:
            break
        areas.append(
            {
                "length": parameter[position],
                "db": _u16(parameter, position + 1)[0],
                "address": _u16(parameter, position + 3)[0],
            }
        )
        position += 5
    return {"syntax_id": SyntaxId.DBREAD.value, "syntax": "DBREAD", "areas": areas}


def parse_data_items(
    data: bytes, count: int, requests: tuple[dict[str, Any], ...] | None, problems: Problems
) -> tuple[dict[str, Any], ...]:
    """Data items of a read answer or a write request (``requests``: the request items, for types)."""
    items: list[dict[str, Any]] = []
    size = len(data)
    offset = 0
    for index in range(count):
        if offset + 4 > size:
            if offset < size or index < count:
                problems.append((S7_ITEM_COUNT_MISMATCH, f"{count} data items counted, {index} present"))
            return tuple(items)
        return_code = data[offset]
        transport_size = data[offset + 1]
        length = (data[offset + 2] << 8) | data[offset + 3]
        offset += 4
        byte_length = (length + 7) >> 3 if transport_size in LENGTH_IN_BITS else length
        item: dict[str, Any] = {
            "return_code": return_code,
            "return_code_name": RETURN_CODE_NAMES.get(return_code, UNKNOWN),
            "transport_size": transport_size,
            "transport_size_name": DATA_TRANSPORT_SIZE_NAMES.get(transport_size, UNKNOWN),
            "length": byte_length,
        }
        if return_code in (0x00, 0xFF):
            value = data[offset : offset + byte_length]
            offset += byte_length
            if len(value) < byte_length:
                problems.append(
                    (S7_TRUNCATED_ITEM, f"data item {index + 1}: {byte_length} bytes, {len(value)} present")
                )
            request = requests[index] if requests is not None and index < len(requests) else None
            item["data"] = value[: MAX_VALUES * 4].hex()
            values = decode_values(value, transport_size, request)
            if values is not None:
                item["values"] = values
            items.append(item)
            if len(value) < byte_length:
                return tuple(items)
            if byte_length % 2 and index < count - 1:
                offset += 1  # fill byte
        else:
            item["length"] = 0
            items.append(item)
    if size - offset > 1:
        problems.append(
            (S7_ITEM_COUNT_MISMATCH, f"{size - offset} data bytes after the {count} counted items")
        )
    return tuple(items)


def decode_values(
    value: bytes, transport_size: int, request: dict[str, Any] | None
) -> list[int] | list[float] | None:
    """Numbers in a data item where the type is known; None for octet strings and unknown types."""
    request_size = request.get("transport_size") if request is not None else None
    if transport_size == DTS_BIT or request_size == TS_BIT:
        return [byte & 1 for byte in value[:MAX_VALUES]]
    element: tuple[int, str] | None = None
    if request_size is not None:
        if request_size in (TS_BYTE, TS_CHAR):
            return list(value[:MAX_VALUES])
        element = _VALUE_FORMATS.get(request_size)
    if element is None:
        if transport_size == DTS_BYTE_WORD_DWORD:
            return list(value[:MAX_VALUES])
        element = _DATA_VALUE_FORMATS.get(transport_size)
        if element is None:
            return None
    width, letter = element
    count = min(len(value) // width, MAX_VALUES)
    if not count:
        return []
    decoded = struct.unpack_from(f">{count}{letter}", value)
    return list(decoded)


# -- block transfer, PI services -----------------------------------------------------------------------------


def parse_file_name(name: bytes) -> dict[str, Any]:
    """A block file name: ``_`` + two-digit block type + five-digit number + file system letter."""
    decoded = name.decode("latin-1")
    if len(name) == 9 and decoded[0] in "_$" and "08" <= decoded[1:3] <= "0F":
        type_code = decoded[1:3]
        number_text = decoded[3:8]
        return {
            "type": BLOCK_TYPE_NAMES.get(type_code, UNKNOWN),
            "type_code": type_code,
            "number": int(number_text) if number_text.isascii() and number_text.isdigit() else None,
            "filesystem": decoded[8],
            "filesystem_name": FILESYSTEM_NAMES.get(decoded[8], UNKNOWN),
            "file_name": decoded,
        }
    return {"type": None, "type_code": None, "number": None, "filesystem": None, "file_name": decoded}


def _file_name(parameter: bytes, offset: int, problems: Problems) -> dict[str, Any] | None:
    if offset >= len(parameter) or offset + 1 + parameter[offset] > len(parameter):
        problems.append((S7_TRUNCATED_PARAMETER, "block file name cut short"))
        return None
    return parse_file_name(parameter[offset + 1 : offset + 1 + parameter[offset]])


# Block transfer jobs that name the block file (the others carry the upload id).
_NAMED_TRANSFER_JOBS: Final = frozenset(
    {Function.REQUEST_DOWNLOAD, Function.DOWNLOAD_BLOCK, Function.DOWNLOAD_ENDED, Function.START_UPLOAD}
)


def _block_transfer(
    result: S7Pdu, function: int, job: bool, parameter: bytes, data: bytes, problems: Problems
) -> None:
    size = len(parameter)
    if size >= 2:
        result.function_status = parameter[1]
    if job:
        if size < 8:
            problems.append((S7_TRUNCATED_PARAMETER, f"block transfer job of {size} bytes"))
            return
        if function in (FN_UPLOAD, FN_END_UPLOAD, FN_START_UPLOAD):
            result.upload_id = _u32(parameter, 4)[0]
        if function in _NAMED_TRANSFER_JOBS:
            result.block = _file_name(parameter, 8, problems)
        if function in (FN_DOWNLOAD_ENDED, FN_END_UPLOAD):
            code = _u16(parameter, 2)[0]
            if code:
                block = result.block if result.block is not None else {}
                block["error_code"] = code
                block["error_name"] = error_name(code)
                result.block = block
        if function == FN_REQUEST_DOWNLOAD and result.block is not None:
            part2 = 9 + parameter[8]
            if size >= part2 + 14 and parameter[part2] >= 13:
                load_text = parameter[part2 + 2 : part2 + 8]
                mc7_text = parameter[part2 + 8 : part2 + 14]
                if load_text.isdigit():
                    result.block["load_memory_length"] = int(load_text)
                if mc7_text.isdigit():
                    result.block["mc7_length"] = int(mc7_text)
        return
    # ACK_DATA
    if function == FN_START_UPLOAD and size >= 8:
        result.upload_id = _u32(parameter, 4)[0]
        if size > 8 and size >= 9 + parameter[8]:
            length_text = parameter[9 : 9 + parameter[8]]
            if length_text.isdigit():
                result.block = {"length": int(length_text)}
    elif function in (FN_UPLOAD, FN_DOWNLOAD_BLOCK) and len(data) >= 4:
        result.chunk = data[4:]


def _pi_service(result: S7Pdu, parameter: bytes, problems: Problems) -> None:
    size = len(parameter)
    if size < 10:
        problems.append((S7_TRUNCATED_PARAMETER, f"PI service of {size} bytes"))
        return
    block_length = _u16(parameter, 8)[0]
    name_at = 10 + block_length
    if name_at >= size or name_at + 1 + parameter[name_at] > size:
        problems.append((S7_TRUNCATED_PARAMETER, "PI service name cut short"))
        return
    name = parameter[name_at + 1 : name_at + 1 + parameter[name_at]].decode("latin-1")
    result.pi_service = name
    arguments = parameter[10:name_at]
    if name in PI_SECRET_SERVICES:
        result.pi_arguments = None  # a password is among them: record only that the service ran
    elif name in PI_BLOCK_SERVICES and len(arguments) >= 2:
        blocks: list[dict[str, Any]] = []
        for index in range(min(arguments[0], MAX_LIST_ENTRIES)):
            start = 2 + 8 * index
            if start + 8 > len(arguments):
                problems.append((S7_TRUNCATED_PARAMETER, f"PI {name}: block {index + 1} cut short"))
                break
            blocks.append(parse_file_name(b"_" + arguments[start : start + 8]))
            del blocks[-1]["file_name"]
        result.pi_arguments = tuple(blocks)
    elif name.startswith("_N_"):
        strings: list[str] = []
        position = 0
        while position < len(arguments) and len(strings) < MAX_LIST_ENTRIES:
            length = arguments[position]
            strings.append(text(arguments[position + 1 : position + 1 + length]))
            position += 1 + length + (length % 2 == 0)
        result.pi_arguments = tuple(strings)
    else:
        result.pi_arguments = (arguments.decode("latin-1"),) if arguments else ()


def pi_service_name(service: str | None) -> str | None:
    """Meaning of a PI service name (``P_PROGRAM`` -> ``PLC_START_STOP``); NC services generically."""
    if service is None:
        return None
    name = PI_SERVICE_NAMES.get(service)
    if name is None:
        return "NC_SERVICE" if service.startswith("_N_") else UNKNOWN
    return name


# -- USERDATA ---------------------------------------------------------------------------------------------


def _userdata(result: S7Pdu, parameter: bytes, data: bytes, problems: Problems) -> None:
    size = len(parameter)
    if size >= 8 and parameter[0] == 0x01:
        # Mode-transition indication: the CPU announces a new operating mode, no data part.
        mode = parameter[6]
        result.mode = {"mode": mode, "mode_name": _cpu_mode_name(mode)}
        result.userdata = {
            "type": 0,
            "type_name": "PUSH",
            "group": 0,
            "group_name": "MODE_TRANSITION",
            "subfunction": mode,
            "subfunction_name": _cpu_mode_name(mode),
            "sequence": None,
        }
        return
    if size < 8:
        problems.append((S7_TRUNCATED_PARAMETER, f"USERDATA parameter of {size} bytes"))
        return
    syntax = parameter[4]
    type_group = parameter[5]
    userdata: dict[str, Any] = {
        "type": type_group >> 6,
        "type_name": _USERDATA_TYPES[type_group >> 6],
        "group": type_group & 0x3F,
        "group_name": USERDATA_GROUP_NAMES.get(type_group & 0x3F, UNKNOWN),
        "subfunction": parameter[6],
        "subfunction_name": _subfunction_name(type_group & 0x3F, parameter[6]),
        "sequence": parameter[7],
        "method": parameter[4],
    }
    if syntax == SYNTAX_PBC_R_ID:
        # USEND: an unsolicited block-send indication, its parameter holds an R_ID instead.
        userdata.update(type=0, type_name="PUSH", group=6, group_name="PBC_BSEND", subfunction_name="USEND")
        if size >= 10:
            userdata["r_id"] = _u32(parameter, 6)[0]
        userdata["sequence"] = None
        result.userdata = userdata
        return
    if size >= 12:
        userdata["data_unit_reference"] = parameter[8]
        userdata["last_data_unit"] = parameter[9] == 0
        userdata["error_code"] = _u16(parameter, 10)[0]
        userdata["error_name"] = error_name(userdata["error_code"])
    result.userdata = userdata
    if len(data) >= 4:
        result.ud_return_code = data[0]
        userdata["return_code"] = data[0]
        userdata["return_code_name"] = RETURN_CODE_NAMES.get(data[0], UNKNOWN)
        length = (data[2] << 8) | data[3]
        payload = data[4 : 4 + length]
        if len(payload) < length:
            problems.append((S7_TRUNCATED_ITEM, f"USERDATA data of {length} bytes, {len(payload)} present"))
        result.ud_payload = payload


_USERDATA_TYPES: Final[tuple[str, ...]] = ("PUSH", "REQUEST", "RESPONSE", UNKNOWN)


def _subfunction_name(group: int, subfunction: int) -> str:
    return SUBFUNCTION_NAMES.get(group, {}).get(subfunction, UNKNOWN)


def _cpu_mode_name(mode: int) -> str:
    return CPU_MODE_NAMES.get(mode, UNKNOWN)


def decode_userdata_payload(
    result: S7Pdu, group: int, subfunction: int, kind: int, payload: bytes, problems: Problems
) -> None:
    """Fill the group-specific fields from a (reassembled) USERDATA payload."""
    if group == 0x04 and subfunction == 0x01:  # CPU functions: read SZL
        if kind == 1:
            if len(payload) >= 4:
                result.szl_id, result.szl_index = _u16(payload, 0)[0], _u16(payload, 2)[0]
        elif payload:
            result.szl = decode_szl(payload, problems)
            if result.szl is not None:
                result.szl_id, result.szl_index = result.szl["id"], result.szl["index"]
        return
    if group == 0x05:
        return  # security: the payload is a (scrambled) password, never recorded
    if group == 0x07:
        if len(payload) >= 10 and (
            (subfunction in (1, 3) and kind == 2) or (subfunction in (2, 4) and kind == 1)
        ):
            result.clock = decode_clock(payload[:10])
            return
    elif group == 0x03:
        _block_functions(result, subfunction, kind, payload)
        return
    elif group == 0x02 and subfunction in (0x01, 0x05, 0x07) and len(payload) >= 2:
        # Cyclic data: the subscription's items (request) or their values (answer, push).
        count = payload[1]
        result.item_count = count
        if kind == 1:
            result.items = parse_request_items(payload, count, problems, start=4)
        else:
            result.data_items = parse_data_items(payload[2:], count, None, problems)
        return
    if payload:
        result.data = raw_hex(payload)


def _block_functions(result: S7Pdu, subfunction: int, kind: int, payload: bytes) -> None:
    if subfunction == 0x01 and kind == 2:  # list blocks: (type, count) pairs
        result.block_list = tuple(
            {
                "type": BLOCK_TYPE_NAMES.get(payload[i : i + 2].decode("latin-1"), UNKNOWN),
                "type_code": payload[i : i + 2].decode("latin-1"),
                "count": _u16(payload, i + 2)[0],
            }
            for i in range(0, min(len(payload) // 4, MAX_LIST_ENTRIES) * 4, 4)
        )
    elif subfunction == 0x02 and kind == 1 and len(payload) >= 2:
        code = payload[:2].decode("latin-1")
        result.block = {"type": BLOCK_TYPE_NAMES.get(code, UNKNOWN), "type_code": code}
    elif subfunction == 0x02 and kind == 2:  # list blocks of type: (number, flags, language)
        result.block_list = tuple(
            {
                "number": _u16(payload, i)[0],
                "flags": payload[i + 2],
                "language": payload[i + 3],
                "language_name": BLOCK_LANGUAGE_NAMES.get(payload[i + 3], UNKNOWN),
            }
            for i in range(0, min(len(payload) // 4, MAX_LIST_ENTRIES) * 4, 4)
        )
    elif subfunction == 0x03 and kind == 1 and len(payload) >= 8:
        block = parse_file_name(b"_" + payload[:8])
        del block["file_name"]
        result.block = block
    elif subfunction == 0x03 and kind == 2 and len(payload) >= 78:
        result.block = decode_block_info(payload)
    elif payload:
        result.data = raw_hex(payload)


def decode_block_info(payload: bytes) -> dict[str, Any]:
    """A GET_BLOCK_INFO answer: the block header fields (78 bytes)."""
    code = payload[:2].decode("latin-1")
    subblock = payload[11]
    return {
        "type": SUBBLOCK_TYPE_NAMES.get(subblock, BLOCK_TYPE_NAMES.get(code, UNKNOWN)),
        "type_code": code,
        "number": _u16(payload, 12)[0],
        "flags": payload[9],
        "language": payload[10],
        "language_name": BLOCK_LANGUAGE_NAMES.get(payload[10], UNKNOWN),
        "load_memory_length": _u32(payload, 14)[0],
        "security": _u32(payload, 18)[0],
        "code_timestamp": _s7_timestamp(payload, 22),
        "interface_timestamp": _s7_timestamp(payload, 28),
        "ssb_length": _u16(payload, 34)[0],
        "add_length": _u16(payload, 36)[0],
        "local_data_length": _u16(payload, 38)[0],
        "mc7_length": _u16(payload, 40)[0],
        "author": text(payload[42:50]),
        "family": text(payload[50:58]),
        "name": text(payload[58:66]),
        "header_version": f"{payload[66] >> 4}.{payload[66] & 0x0F}",
        "checksum": _u16(payload, 68)[0],
    }


def _s7_timestamp(payload: bytes, offset: int) -> str:
    milliseconds = _u32(payload, offset)[0]
    days = _u16(payload, offset + 4)[0]
    moment = _S7_EPOCH + timedelta(days=days, milliseconds=milliseconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _bcd(byte: int) -> int:
    return (byte >> 4) * 10 + (byte & 0x0F)


def decode_clock(raw: bytes) -> str | None:
    """A 10-byte BCD DATE_AND_TIME (reserved, year hi, year lo, month, day, h, m, s, ms) as ISO text."""
    year = _bcd(raw[2])
    year += 2000 if year < 89 else 1900  # the high year byte is unreliable on some CPUs
    month, day, hour, minute, second = (_bcd(b) for b in raw[3:8])
    milliseconds = _bcd(raw[8]) * 10 + (raw[9] >> 4)
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{milliseconds:03d}"


# -- SZL ----------------------------------------------------------------------------------------------------


def decode_szl(payload: bytes, problems: Problems) -> dict[str, Any] | None:
    """An SZL answer: header, and for the identity, mode and communication lists named entries."""
    if len(payload) < 8:
        problems.append((S7_SZL_TRUNCATED, f"SZL answer of {len(payload)} bytes, header needs 8"))
        return None
    szl_id, index, entry_length, entry_count = SZL_HEADER.unpack_from(payload)
    entries = payload[8:]
    number = szl_id & 0xFF
    result: dict[str, Any] = {
        "id": szl_id,
        "index": index,
        "list_name": SZL_LIST_NAMES.get(number, UNKNOWN),
        "entry_length": entry_length,
        "entry_count": entry_count,
    }
    # SZL ids 0x0Fxx ask for the list header only: the entries are counted, not sent.
    if entry_length * entry_count > len(entries) and szl_id >> 8 != 0x0F:
        problems.append(
            (
                S7_SZL_TRUNCATED,
                f"SZL 0x{szl_id:04x}: {entry_count} entries of {entry_length} bytes, {len(entries)} present",
            )
        )
    if not entry_length and entries:
        problems.append(
            (S7_SZL_TRUNCATED, f"SZL 0x{szl_id:04x}: entry length 0 but {len(entries)} bytes of entries")
        )
    count = min(entry_count, len(entries) // entry_length if entry_length else 0, MAX_LIST_ENTRIES)
    rows = [entries[i * entry_length : (i + 1) * entry_length] for i in range(count)]
    # Module identification entries are 28 bytes; some servers (python-snap7 3.x) cut the last
    # version word: the order number is still there.
    if number == 0x11 and entry_length >= 22:
        decoded, identity = _module_identification(rows)
        result["entries"] = decoded
        result["identity"] = identity
    elif number == 0x1C and entry_length >= 34:
        decoded, identity = _component_identification(rows)
        result["entries"] = decoded
        result["identity"] = identity
    elif number == 0x24 and entry_length >= 20:
        result["entries"] = [_mode_entry(row) for row in rows]
    elif number == 0x31 and entry_length >= 14:
        result["entries"] = [_communication_capability(row) for row in rows]
    elif number == 0x32 and entry_length >= 12:
        result["entries"] = [_communication_status(row) for row in rows]
    elif number == 0x00 and entry_length == 2:
        result["entries"] = [{"id": _u16(row, 0)[0]} for row in rows]
    else:
        result["data"] = raw_hex(entries)
    return result


def _version(high: int, low: int) -> str | None:
    """``Ausbg``/``Ausbe`` as a version: 'V' major, minor, patch (firmware) or a plain number."""
    if high >> 8 == 0x56:  # 'V'
        return f"V{high & 0xFF}.{low >> 8}.{low & 0xFF}"
    if high < 0x100:
        return str(high)
    return None


def _module_identification(rows: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    decoded = []
    identity: dict[str, Any] = {}
    for row in rows:
        index = _u16(row, 0)[0]
        order_number = text(row[2:22])
        module_type_id = _u16(row, 22)[0] if len(row) >= 24 else None
        high = _u16(row, 24)[0] if len(row) >= 26 else None
        low = _u16(row, 26)[0] if len(row) >= 28 else None
        version = _version(high, low) if high is not None and low is not None else None
        decoded.append(
            {
                "index": index,
                "index_name": MODULE_IDENTIFICATION_INDEXES.get(index, UNKNOWN),
                "order_number": order_number,
                "module_type_id": module_type_id,
                "ausbg": high,
                "ausbe": low,
                "version": version,
            }
        )
        if index == 0x0001:
            identity["order_number"] = order_number
            identity["module_version"] = version
        elif index == 0x0006:
            identity["hardware_order_number"] = order_number
            identity["hardware_version"] = version
        elif index == 0x0007:
            identity["firmware_version"] = version
        elif index == 0x0081:
            identity["firmware_extension"] = order_number
            identity["firmware_extension_version"] = version
    return decoded, identity


_COMPONENT_TEXT_KEYS: Final = {
    0x0001: "as_name",
    0x0002: "module_name",
    0x0003: "plant_id",
    0x0004: "copyright",
    0x0005: "serial_number",
    0x0007: "module_type_name",
    0x0008: "memory_card_serial_number",
    0x000B: "location_id",
}


def _component_identification(rows: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    decoded = []
    identity: dict[str, Any] = {}
    for row in rows:
        index = _u16(row, 0)[0]
        entry: dict[str, Any] = {
            "index": index,
            "index_name": COMPONENT_IDENTIFICATION_INDEXES.get(index, UNKNOWN),
        }
        key = _COMPONENT_TEXT_KEYS.get(index)
        if key is not None:
            value = text(row[2:34])
            entry[key] = value
            identity[key] = value
        elif index == 0x0009:
            for name, at in (("manufacturer_id", 2), ("profile_id", 4), ("profile_specific_type", 6)):
                entry[name] = identity[name] = _u16(row, at)[0]
        elif index == 0x000A:
            entry["oem_copyright"] = identity["oem_copyright"] = text(row[2:28])
            entry["oem_id"] = identity["oem_id"] = _u16(row, 28)[0]
            entry["oem_additional_id"] = identity["oem_additional_id"] = _u32(row, 30)[0]
        else:
            entry["data"] = row[2:].hex()
        decoded.append(entry)
    return decoded, identity


def _mode_entry(row: bytes) -> dict[str, Any]:
    state = row[3]
    return {
        "event_id": _u16(row, 0)[0],
        "ae": row[2],
        "bzu_id": state,
        "requested_mode": state & 0x0F,
        "requested_mode_name": SZL_MODE_STATE_NAMES.get(state & 0x0F, UNKNOWN),
        "previous_mode": state >> 4,
        "previous_mode_name": SZL_MODE_STATE_NAMES.get(state >> 4, UNKNOWN),
        "startup_info": row[8:12].hex(),
        "time": row[12:20].hex(),
    }


def _communication_capability(row: bytes) -> dict[str, Any]:
    index = _u16(row, 0)[0]
    if index != 0x0001:
        return {"index": index, "data": row[2:].hex()}
    return {
        "index": index,
        "max_pdu_size": _u16(row, 2)[0],
        "max_connections": _u16(row, 4)[0],
        "mpi_rate": _u32(row, 6)[0],
        "kbus_rate": _u32(row, 10)[0],
    }


_MODE_SWITCH_NAMES: Final = {0: UNKNOWN, 1: "RUN", 2: "RUN_P", 3: "STOP", 4: "MRES"}
_STARTUP_SWITCH_NAMES: Final = {0: UNKNOWN, 1: "CRST", 2: "WRST"}


def _communication_status(row: bytes) -> dict[str, Any]:
    index = _u16(row, 0)[0]
    if index != 0x0004:
        return {"index": index, "data": row[2:].hex()}
    switch = _u16(row, 8)[0]
    startup = _u16(row, 10)[0]
    return {
        "index": index,
        "key_switch_protection_level": _u16(row, 2)[0],
        "assigned_protection_level": _u16(row, 4)[0],
        "valid_protection_level": _u16(row, 6)[0],
        "mode_switch": switch,
        "mode_switch_name": _MODE_SWITCH_NAMES.get(switch, UNKNOWN),
        "startup_switch": startup,
        "startup_switch_name": _STARTUP_SWITCH_NAMES.get(startup, UNKNOWN),
    }


# -- S7comm-plus ----------------------------------------------------------------------------------------------


class PlusPdu:
    """Fields of one S7comm-plus PDU (one COTP TSDU starting with 0x72)."""

    __slots__ = (
        "attribute",
        "attribute_id",
        "body",
        "data_length",
        "fragment",
        "function",
        "function_code",
        "integrity",
        "object_id",
        "object_name",
        "opcode",
        "opcode_name",
        "sequence",
        "session_id",
        "trailer",
        "value",
        "version",
        "version_name",
    )

    def __init__(self, version: int) -> None:
        self.version = version
        self.version_name = PLUS_VERSION_NAMES.get(version, UNKNOWN)
        self.data_length: int | None = None
        self.opcode: int | None = None
        self.opcode_name: str | None = None
        self.function_code: int | None = None
        self.function: str | None = None
        self.sequence: int | None = None
        self.session_id: int | None = None
        self.integrity: bool | None = None
        self.trailer = False
        self.fragment: str | None = None
        # SetVariable requests: the object, the attribute written and, when an integer, its value;
        # GetVarSubStreamed requests: the object and (first) attribute read.
        self.object_id: int | None = None
        self.object_name: str | None = None
        self.attribute_id: int | None = None
        self.attribute: str | None = None
        self.value: int | None = None
        # The first fragment of such a request: its data part from the opcode on (the rest comes
        # in later fragments, see ``decode_plus_request_set``); a continuation fragment: its data
        # bytes; either up to ``PLUS_REQUEST_SET_CAP`` bytes of request set.
        self.body: bytes | None = None


def parse_plus(payload: bytes, continuing: bool, problems: Problems) -> PlusPdu | None:
    """Decode an S7comm-plus PDU; ``continuing``: a fragmented message of this direction is open.

    Returns None when not even the 4-byte header is there.  A PDU without the 4-byte trailer opens
    (or continues) a fragmented message: only its first fragment carries opcode and function.
    """
    size = len(payload)
    if size < 4:
        problems.append((PLUS_TRUNCATED, f"{size} bytes, the header needs 4"))
        return None
    result = PlusPdu(payload[1])
    version = payload[1]
    if version not in PLUS_VERSION_NAMES:
        problems.append((PLUS_UNKNOWN_VERSION, f"version byte 0x{version:02x}"))
    if version == PLUS_V_KEEP_ALIVE:
        result.sequence = payload[2]
        return result
    length = _u16(payload, 2)[0]
    result.data_length = length
    if version == PLUS_V_EXTENDED_KEEP_ALIVE:
        return result
    if size == length + 8 and payload[length + 4] == 0x72:
        result.trailer = True
        if continuing:
            result.fragment = "last"
    elif size == length + 4:
        result.fragment = "inner" if continuing else "first"
    else:
        problems.append((PLUS_LENGTH_MISMATCH, f"data length {length} in a {size}-byte PDU"))
    offset = 4
    if version == PLUS_V_V1:
        result.integrity = False
    elif version == PLUS_V_V3:
        if size >= 4 + 1 + PLUS_DIGEST_LENGTH and payload[4] == PLUS_DIGEST_LENGTH:
            result.integrity = True
            offset = 5 + PLUS_DIGEST_LENGTH
        else:
            result.integrity = False
    if result.fragment in ("inner", "last"):
        # Continuation bytes of a message whose header came earlier.
        result.body = payload[offset : min(size, 4 + length, offset + PLUS_REQUEST_SET_CAP)]
        return result
    first = result.fragment == "first"
    if offset >= size:
        if first:
            # A first fragment may end before its data part: opcode and function come next.
            result.body = b""
            return result
        problems.append((PLUS_TRUNCATED, "no data part after the header"))
        return result
    opcode = payload[offset]
    result.opcode = opcode
    result.opcode_name = PLUS_OPCODE_NAMES.get(opcode, UNKNOWN)
    if opcode in (PLUS_OP_REQUEST, PLUS_OP_RESPONSE, PLUS_OP_RESPONSE2):
        if offset + 9 > size:
            if first and opcode == PLUS_OP_REQUEST:
                result.body = payload[offset:size]  # function and sequence come in the next fragment
                return result
            problems.append((PLUS_TRUNCATED, "data part shorter than opcode, function and sequence"))
            return result
        _plus_function(payload, offset, result)
        if opcode != PLUS_OP_REQUEST:
            return result
        if offset + 13 <= size:
            result.session_id = _u32(payload, offset + 9)[0]
        end = min(size, 4 + length)
        if _plus_request_set(payload, offset, end, result) and first:
            # The request set may go on in the next fragments: the data part from the opcode on.
            result.body = payload[offset : min(end, offset + PLUS_REQUEST_SET_START + PLUS_REQUEST_SET_CAP)]
    return result


def _plus_function(data: bytes, offset: int, pdu: PlusPdu) -> None:
    """Function code, its name and the sequence number of the data part at ``offset`` (9 bytes there)."""
    function = _u16(data, offset + 3)[0]
    pdu.function_code = function
    pdu.function = PLUS_FUNCTION_NAMES.get(function, UNKNOWN)
    pdu.sequence = _u16(data, offset + 7)[0]


def _plus_request_set(data: bytes, offset: int, end: int, pdu: PlusPdu) -> bool:
    """The request set of a SetVariable or GetVarSubStreamed whose data part starts at ``offset``.

    False for the other functions, whose request sets are not read.
    """
    function = pdu.function_code
    if function == PLUS_FN_SET_VARIABLE:
        _plus_set_variable(data, offset + PLUS_REQUEST_SET_START, end, pdu)
    elif function == PLUS_FN_GET_VAR_SUBSTREAMED:
        _plus_get_substreamed(data, offset + PLUS_REQUEST_SET_START, end, pdu)
    else:
        return False
    return True


# Where a request's request set starts in its data part: opcode (1), reserved (2), function (2),
# reserved (2), sequence (2), session id (4), transport flags (1).
PLUS_REQUEST_SET_START: Final = 14
# What of a fragmented request set is kept to decode it: the object, one address and its value
# take at most 17 bytes.
PLUS_REQUEST_SET_CAP: Final = 64


def plus_request_set_complete(pdu: PlusPdu) -> bool:
    """True when nothing more of a first fragment's message is needed to describe it.

    That is once its opcode says it is no request, its function is neither SetVariable nor
    GetVarSubStreamed, the SetVariable's value or the GetVarSubStreamed's attribute is decoded.
    """
    opcode = pdu.opcode
    if opcode is None:
        return False
    if opcode != PLUS_OP_REQUEST:
        return True
    function = pdu.function_code
    if function is None:
        return False
    if function == PLUS_FN_SET_VARIABLE:
        return pdu.value is not None
    if function == PLUS_FN_GET_VAR_SUBSTREAMED:
        return pdu.attribute_id is not None
    return True


def decode_plus_request_set(pdu: PlusPdu, data: bytes) -> None:
    """Decode a message's data part gathered over fragments into ``pdu`` (its first fragment's).

    A request split over S7comm-plus fragments may carry its opcode, function and sequence, and a
    SetVariable (a TIA Portal stop) or GetVarSubStreamed (an upload) its object and address, in
    later fragments: the dissector joins the ``body`` of each fragment and decodes the whole
    here, as if it had come in one PDU.
    """
    size = len(data)
    if pdu.opcode is None:
        if not size:
            return
        pdu.opcode = data[0]
        pdu.opcode_name = PLUS_OPCODE_NAMES.get(data[0], UNKNOWN)
    if pdu.opcode != PLUS_OP_REQUEST:
        return
    if pdu.function_code is None:
        if size < 9:
            return
        _plus_function(data, 0, pdu)
    if pdu.session_id is None and size >= 13:
        pdu.session_id = _u32(data, 9)[0]
    pdu.object_id = pdu.object_name = pdu.attribute_id = pdu.attribute = pdu.value = None
    _plus_request_set(data, 0, size, pdu)


def _plus_get_substreamed(payload: bytes, offset: int, end: int, result: PlusPdu) -> None:
    """A GetVarSubStreamed request set: the object read and its first attribute.

    Object id (4 bytes), then an address array: flags 0x20, datatype UDInt, count and addresses
    as VLQs.
    """
    if offset + 4 > end:
        return
    object_id = _u32(payload, offset)[0]
    result.object_id = object_id
    result.object_name = PLUS_OBJECT_NAMES.get(object_id)
    if offset + 6 > end or payload[offset + 4] != 0x20 or payload[offset + 5] != 0x04:
        return
    count, offset = _plus_vlq(payload, offset + 6, end, False)
    if not count:
        return
    attribute, _ = _plus_vlq(payload, offset, end, False)
    if attribute is not None:
        result.attribute_id = attribute
        result.attribute = PLUS_ATTRIBUTE_NAMES.get(attribute)


def _plus_set_variable(payload: bytes, offset: int, end: int, result: PlusPdu) -> None:
    """A SetVariable request set: object id (4 bytes), address count and addresses (VLQ), values.

    TIA Portal and the public captures set one address.  Of several (up to PLUS_MAX_ADDRESSES),
    the CPU's operatingStateReq is the one read when among them (its last: a stop must not hide
    behind a second address, nor a start set before it); else none is.  A value is read when it and the values before it are plain
    integers.  Anything short or unusual leaves the fields unset: no anomaly, the header fields
    already describe the PDU.
    """
    if offset + 4 > end:
        return
    object_id = _u32(payload, offset)[0]
    result.object_id = object_id
    result.object_name = PLUS_OBJECT_NAMES.get(object_id)
    count, offset = _plus_vlq(payload, offset + 4, end, False)
    if count is None or not 1 <= count <= PLUS_MAX_ADDRESSES:
        return
    addresses: list[int] = []
    for _ in range(count):
        address, offset = _plus_vlq(payload, offset, end, False)
        if address is None:
            return
        addresses.append(address)
    if count == 1:
        chosen = 0
    elif PLUS_OPERATING_STATE_REQ in addresses:
        # Set in order: the last request of the state is the one the CPU is left with.
        chosen = len(addresses) - 1 - addresses[::-1].index(PLUS_OPERATING_STATE_REQ)
    else:
        return
    attribute = addresses[chosen]
    result.attribute_id = attribute
    result.attribute = PLUS_ATTRIBUTE_NAMES.get(attribute)
    for position in range(chosen + 1):  # the values, in the addresses' order
        if offset + 2 > end or payload[offset] != 0:  # flags: arrays and address arrays are not read
            return
        kind = PLUS_INTEGER_TYPES.get(payload[offset + 1])
        if kind is None:
            return
        offset += 2
        width, signed = kind
        value: int | None
        if width is None:
            value, offset = _plus_vlq(payload, offset, end, signed)
        elif offset + width <= end:
            value = int.from_bytes(payload[offset : offset + width], "big", signed=signed)
            offset += width
        else:
            return
        if position == chosen:
            result.value = value


def _plus_vlq(payload: bytes, offset: int, end: int, signed: bool) -> tuple[int | None, int]:
    """An S7comm-plus variable-length 32-bit integer and the offset after it.

    7 bits a byte, the high bit saying more follow, a fifth byte whole; signed, the first byte's
    0x40 is the sign.  The result is cut to 32 bits as a 32-bit decoder cuts it.  None when the
    bytes end first.
    """
    value = 0
    for position in range(5):
        if offset >= end:
            return None, offset
        byte = payload[offset]
        offset += 1
        if position == 4:
            value = value * 256 + byte
            break
        if position == 0 and signed and byte & 0x40:
            value = (byte & 0x3F) - 0x40
        else:
            value = value * 128 + (byte & 0x7F)
        if not byte & 0x80:
            break
    value &= 0xFFFFFFFF
    if signed and value & 0x80000000:
        value -= 0x100000000
    return value, offset
