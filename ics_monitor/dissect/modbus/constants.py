"""Modbus codes, their names, the caps of this dissector and its anomaly codes.

Sources: MODBUS Application Protocol Specification V1.1b3 (function codes section 6, exception codes
section 7, MEI section 6.19-6.21, public / user-defined / reserved ranges section 5) and MODBUS
Messaging on TCP/IP Implementation Guide V1.0b (MBAP header section 3.1.3).  Schneider's UMAS
(function 90) is not public; its sub-function names are those used by published analyses of it.
Names follow the specification in UPPER_SNAKE_CASE; lookups use ``dict.get(value, UNKNOWN)``.
No parsing here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ics_monitor.core.anomalies import Severity, register

UNKNOWN: Final = "UNKNOWN"
DEFAULT_PORT: Final = 502
# How a flow's PDUs are framed (the records' ``framing``): MBAP, or the serial line's RTU or ASCII
# frames carried over TCP/UDP.
FRAMING_MBAP: Final = "mbap"
FRAMING_RTU: Final = "rtu"
FRAMING_ASCII: Final = "ascii"

# -- framing limits ---------------------------------------------------------------------------------
# MBAP length counts the unit id and the PDU: a PDU is at most 253 bytes (Application Protocol 4.1),
# so the length is 2..254.
MIN_LENGTH: Final = 2
MAX_LENGTH: Final = 254
# Schneider UMAS (function 90) moves program blocks of up to 1022 data bytes per PDU after the
# frame size negotiated in INIT_COMM, past the public limit; allow those, not more.
MAX_UMAS_LENGTH: Final = 1100
MBAP_SIZE: Final = 7

# -- caps (every unbounded thing has one; hitting it raises an anomaly) -----------------------------------
# Outstanding requests per flow.  Modbus/TCP servers accept a handful of pipelined transactions
# (commonly 4-16); 256 leaves room for aggressive gateways and still bounds memory.
MAX_PENDING: Final = 256
# An answer under another unit id than its request's is paired by transaction id and function only
# while a flow has at most this many requests pending (a pipelining master's; see ``_response``).
MAX_UNIT_FALLBACK: Final = 16
# Pairs of units (asked, answering) reported as modbus.response_unit_mismatch per flow; past it
# such answers still pair, unreported (a flow forging every pair gets no more memory).
MAX_MISMATCHES_REPORTED: Final = 16
# Capture-time seconds after which an unanswered request is reported.  Masters usually time out
# after 1-3 s; serial gateways with retries can take a few seconds more.
REQUEST_TIMEOUT: Final = 10.0
# Objects recorded per device identification response (the PDU holds at most ~125 empty ones).
MAX_DEVICE_OBJECTS: Final = 128

# -- quantity limits of the specification (section 6) ------------------------------------------------------
MAX_READ_BITS: Final = 2000  # FC 1, 2: 0x07D0
MAX_READ_REGISTERS: Final = 125  # FC 3, 4, 23 read: 0x007D
MAX_WRITE_BITS: Final = 1968  # FC 15: 0x07B0
MAX_WRITE_REGISTERS: Final = 123  # FC 16: 0x007B
MAX_READ_WRITE_REGISTERS: Final = 121  # FC 23 write: 0x0079
MAX_FIFO_COUNT: Final = 31  # FC 24
FILE_REFERENCE_TYPE: Final = 6  # FC 20, 21
MAX_FILE_RECORD_NUMBER: Final = 0x270F  # FC 20, 21: records 0..9999


class FunctionCode(IntEnum):
    """Public function codes (Application Protocol 5.1 and 6), plus Schneider's UMAS."""

    READ_COILS = 1
    READ_DISCRETE_INPUTS = 2
    READ_HOLDING_REGISTERS = 3
    READ_INPUT_REGISTERS = 4
    WRITE_SINGLE_COIL = 5
    WRITE_SINGLE_REGISTER = 6
    READ_EXCEPTION_STATUS = 7
    DIAGNOSTICS = 8
    GET_COMM_EVENT_COUNTER = 11
    GET_COMM_EVENT_LOG = 12
    WRITE_MULTIPLE_COILS = 15
    WRITE_MULTIPLE_REGISTERS = 16
    REPORT_SERVER_ID = 17
    READ_FILE_RECORD = 20
    WRITE_FILE_RECORD = 21
    MASK_WRITE_REGISTER = 22
    READ_WRITE_MULTIPLE_REGISTERS = 23
    READ_FIFO_QUEUE = 24
    ENCAPSULATED_INTERFACE_TRANSPORT = 43
    SCHNEIDER_UMAS = 90


# Function codes the specification reserves for legacy products (Annex A); 90 is among them but
# has its own name above.
RESERVED_FUNCTIONS: Final = frozenset({9, 10, 13, 14, 41, 42, 91, 125, 126, 127})
USER_DEFINED_FUNCTIONS: Final = frozenset(range(65, 73)) | frozenset(range(100, 111))
RESERVED: Final = "RESERVED"
USER_DEFINED: Final = "USER_DEFINED"


def _function_names() -> dict[int, str]:
    names = dict.fromkeys(RESERVED_FUNCTIONS, RESERVED)
    names.update(dict.fromkeys(USER_DEFINED_FUNCTIONS, USER_DEFINED))
    names.update({member.value: member.name for member in FunctionCode})
    return names


FUNCTION_NAMES: dict[int, str] = _function_names()
# Function codes a stream may plausibly start with (the probe): every named one, and their
# exception responses.
PLAUSIBLE_FIRST_CODES: Final = frozenset(FUNCTION_NAMES) | frozenset(code | 0x80 for code in FUNCTION_NAMES)


class ExceptionCode(IntEnum):
    """Exception codes (Application Protocol section 7; 7 from the older Modicon reference)."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    SERVER_DEVICE_FAILURE = 4
    ACKNOWLEDGE = 5
    SERVER_DEVICE_BUSY = 6
    NEGATIVE_ACKNOWLEDGE = 7
    MEMORY_PARITY_ERROR = 8
    GATEWAY_PATH_UNAVAILABLE = 10
    GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND = 11


EXCEPTION_NAMES: dict[int, str] = {member.value: member.name for member in ExceptionCode}


class DiagnosticSubFunction(IntEnum):
    """FC 8 sub-function codes (Application Protocol 6.8.1; 19 and 21 from the Modicon reference)."""

    RETURN_QUERY_DATA = 0
    RESTART_COMMUNICATIONS_OPTION = 1
    RETURN_DIAGNOSTIC_REGISTER = 2
    CHANGE_ASCII_INPUT_DELIMITER = 3
    FORCE_LISTEN_ONLY_MODE = 4
    CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER = 10
    RETURN_BUS_MESSAGE_COUNT = 11
    RETURN_BUS_COMMUNICATION_ERROR_COUNT = 12
    RETURN_BUS_EXCEPTION_ERROR_COUNT = 13
    RETURN_SERVER_MESSAGE_COUNT = 14
    RETURN_SERVER_NO_RESPONSE_COUNT = 15
    RETURN_SERVER_NAK_COUNT = 16
    RETURN_SERVER_BUSY_COUNT = 17
    RETURN_BUS_CHARACTER_OVERRUN_COUNT = 18
    RETURN_IOP_OVERRUN_COUNT = 19
    CLEAR_OVERRUN_COUNTER_AND_FLAG = 20
    GET_CLEAR_MODBUS_PLUS_STATISTICS = 21


DIAGNOSTIC_NAMES: dict[int, str] = {member.value: member.name for member in DiagnosticSubFunction}


class MeiType(IntEnum):
    """FC 43 MEI types (Application Protocol 6.19-6.21)."""

    CANOPEN_GENERAL_REFERENCE = 13
    READ_DEVICE_IDENTIFICATION = 14


MEI_NAMES: dict[int, str] = {member.value: member.name for member in MeiType}


class ReadDeviceIdCode(IntEnum):
    """FC 43/14 read device id codes (Application Protocol 6.21)."""

    BASIC_STREAM = 1
    REGULAR_STREAM = 2
    EXTENDED_STREAM = 3
    INDIVIDUAL_ACCESS = 4


READ_DEVICE_ID_NAMES: dict[int, str] = {member.value: member.name for member in ReadDeviceIdCode}

# Conformity level: the category, with 0x80 set when individual access is supported too.
CONFORMITY_LEVEL_NAMES: dict[int, str] = {
    0x01: "BASIC_STREAM_ONLY",
    0x02: "REGULAR_STREAM_ONLY",
    0x03: "EXTENDED_STREAM_ONLY",
    0x81: "BASIC_STREAM_AND_INDIVIDUAL",
    0x82: "REGULAR_STREAM_AND_INDIVIDUAL",
    0x83: "EXTENDED_STREAM_AND_INDIVIDUAL",
}


class DeviceObject(IntEnum):
    """FC 43/14 object ids (Application Protocol 6.21, table of objects); 0x80-0xFF are private."""

    VendorName = 0x00
    ProductCode = 0x01
    MajorMinorRevision = 0x02
    VendorUrl = 0x03
    ProductName = 0x04
    ModelName = 0x05
    UserApplicationName = 0x06


def _object_names() -> dict[int, str]:
    names = dict.fromkeys(range(7, 128), "RESERVED")
    names.update(dict.fromkeys(range(128, 256), "PRIVATE"))
    names.update({member.value: member.name for member in DeviceObject})
    return names


OBJECT_NAMES: dict[int, str] = _object_names()

RUN_INDICATOR_NAMES: dict[int, str] = {0x00: "OFF", 0xFF: "ON"}


class UmasFunction(IntEnum):
    """Schneider UMAS sub-function codes (second byte after function 90; not a public spec)."""

    INIT_COMM = 0x01
    READ_ID = 0x02
    READ_PROJECT_INFO = 0x03
    READ_PLC_INFO = 0x04
    READ_CARD_INFO = 0x06
    REPEAT = 0x0A
    TAKE_PLC_RESERVATION = 0x10
    RELEASE_PLC_RESERVATION = 0x11
    KEEP_ALIVE = 0x12
    READ_MEMORY_BLOCK = 0x20
    READ_VARIABLES = 0x22
    WRITE_VARIABLES = 0x23
    READ_COILS_REGISTERS = 0x24
    WRITE_COILS_REGISTERS = 0x25
    INITIALIZE_UPLOAD = 0x30
    UPLOAD_BLOCK = 0x31
    END_STRATEGY_UPLOAD = 0x32
    INITIALIZE_DOWNLOAD = 0x33
    DOWNLOAD_BLOCK = 0x34
    END_STRATEGY_DOWNLOAD = 0x35
    READ_ETH_MASTER_DATA = 0x39
    START_PLC = 0x40
    STOP_PLC = 0x41
    MONITOR_PLC = 0x50
    CHECK_PLC = 0x58
    READ_IO_OBJECT = 0x70
    WRITE_IO_OBJECT = 0x71
    GET_STATUS_MODULE = 0x73


UMAS_NAMES: dict[int, str] = {member.value: member.name for member in UmasFunction}
UMAS_STATUS_NAMES: dict[int, str] = {0xFE: "OK", 0xFD: "ERROR"}

# -- anomaly codes ---------------------------------------------------------------------------------------
BAD_PROTOCOL_ID: Final = "modbus.bad_protocol_id"
BAD_LENGTH: Final = "modbus.bad_length"
LENGTH_MISMATCH: Final = "modbus.length_mismatch"
TRUNCATED_PDU: Final = "modbus.truncated_pdu"
BYTE_COUNT_MISMATCH: Final = "modbus.byte_count_mismatch"
QUANTITY_OUT_OF_RANGE: Final = "modbus.quantity_out_of_range"
ADDRESS_OVERFLOW: Final = "modbus.address_overflow"
BAD_COIL_VALUE: Final = "modbus.bad_coil_value"
BAD_REFERENCE_TYPE: Final = "modbus.bad_reference_type"
UNKNOWN_FUNCTION: Final = "modbus.unknown_function"
RESERVED_FUNCTION: Final = "modbus.reserved_function"
UNKNOWN_EXCEPTION: Final = "modbus.unknown_exception_code"
UNKNOWN_SUB_FUNCTION: Final = "modbus.unknown_diagnostic_sub_function"
UNKNOWN_MEI_TYPE: Final = "modbus.unknown_mei_type"
BAD_READ_DEVICE_ID_CODE: Final = "modbus.bad_read_device_id_code"
UNMATCHED_RESPONSE: Final = "modbus.unmatched_response"
UNANSWERED_REQUEST: Final = "modbus.unanswered_request"
DUPLICATE_TRANSACTION: Final = "modbus.duplicate_transaction_id"
PENDING_FULL: Final = "modbus.pending_requests_full"
RESPONSE_FUNCTION_MISMATCH: Final = "modbus.response_function_mismatch"
RESPONSE_UNIT_MISMATCH: Final = "modbus.response_unit_mismatch"
RTU_BAD_CRC: Final = "modbus.rtu_bad_crc"
RTU_INCOMPLETE_FRAME: Final = "modbus.rtu_incomplete_frame"
ASCII_BAD_FRAME: Final = "modbus.ascii_bad_frame"

_ANOMALIES: tuple[tuple[str, Severity, str], ...] = (
    (
        BAD_PROTOCOL_ID,
        Severity.MEDIUM,
        "MBAP protocol identifier is not 0 (not Modbus); skipped by its length",
    ),
    (
        BAD_LENGTH,
        Severity.MEDIUM,
        "MBAP length outside 2..254 (1100 for UMAS): the stream is resynchronised",
    ),
    (LENGTH_MISMATCH, Severity.MEDIUM, "MBAP length does not match the PDU its function defines"),
    (TRUNCATED_PDU, Severity.MEDIUM, "PDU shorter than the fixed fields of its function"),
    (BYTE_COUNT_MISMATCH, Severity.MEDIUM, "byte count does not match the quantity or the PDU length"),
    (QUANTITY_OUT_OF_RANGE, Severity.MEDIUM, "quantity outside the range the specification allows"),
    (ADDRESS_OVERFLOW, Severity.MEDIUM, "starting address plus quantity runs past 65535"),
    (BAD_COIL_VALUE, Severity.LOW, "write single coil value other than 0x0000 or 0xFF00"),
    (BAD_REFERENCE_TYPE, Severity.LOW, "file record reference type other than 6"),
    (UNKNOWN_FUNCTION, Severity.MEDIUM, "function code neither public, user-defined nor known vendor"),
    (RESERVED_FUNCTION, Severity.LOW, "function code reserved for legacy products"),
    (UNKNOWN_EXCEPTION, Severity.LOW, "exception code the specification does not define"),
    (UNKNOWN_SUB_FUNCTION, Severity.LOW, "diagnostics (FC 8) sub-function the specification does not define"),
    (UNKNOWN_MEI_TYPE, Severity.LOW, "encapsulated interface (FC 43) MEI type other than 13 or 14"),
    (BAD_READ_DEVICE_ID_CODE, Severity.LOW, "read device identification code other than 1..4"),
    (UNMATCHED_RESPONSE, Severity.LOW, "response whose (unit id, transaction id) no pending request has"),
    (UNANSWERED_REQUEST, Severity.LOW, "request without response before the timeout or the flow's end"),
    (DUPLICATE_TRANSACTION, Severity.MEDIUM, "request reuses the (unit id, transaction id) of a pending one"),
    (PENDING_FULL, Severity.MEDIUM, "too many outstanding requests on one flow; the oldest was dropped"),
    (
        RESPONSE_FUNCTION_MISMATCH,
        Severity.MEDIUM,
        "response function code differs from its request's (exception bit aside)",
    ),
    (
        RESPONSE_UNIT_MISMATCH,
        Severity.LOW,
        "response under another unit id than its request's (same transaction id and function): a device "
        "asked as unit 255 or 0 answering as itself",
    ),
    (
        RTU_BAD_CRC,
        Severity.MEDIUM,
        "RTU frame over TCP/UDP whose CRC-16 is wrong: a device drops it (corruption, or crafted)",
    ),
    (RTU_INCOMPLETE_FRAME, Severity.MEDIUM, "RTU datagram or stream end that holds no complete frame"),
    (
        ASCII_BAD_FRAME,
        Severity.MEDIUM,
        "ASCII frame over TCP/UDP with a wrong LRC, odd or non-hexadecimal digits: a device drops it",
    ),
)

for _code, _severity, _description in _ANOMALIES:
    register(_code, _severity, _description)
