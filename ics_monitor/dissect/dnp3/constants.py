"""DNP3 (IEEE 1815-2012) codes, their names, the caps of this dissector and its anomaly codes.

Names follow the standard (and the usual tool spellings: READ, DIRECT_OPERATE, DEVICE_RESTART ...).
Every table maps a raw value to a name; lookups use ``dict.get(value, "UNKNOWN")``.  No parsing here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ics_monitor.core.anomalies import Severity, register

UNKNOWN: Final = "UNKNOWN"

# -- caps (every unbounded thing has one; hitting it raises an anomaly) ---------------------------------
# A transport segment carries at most 249 application bytes and the sequence number has 64 values:
# a fragment longer than one whole sequence cycle is abuse (IEEE 1815 allows up to 2048 in practice).
MAX_FRAGMENT_SIZE: Final = 64 * 249
# Reassembly buffers per flow: one per (direction, source, destination); a master polling a few
# dozen outstations over one TCP connection (a gateway) stays well below.
MAX_REASSEMBLY_KEYS: Final = 64
# Associations (master, outstation) with pending requests per flow.
MAX_ASSOCIATIONS: Final = 64
# Object headers per fragment and points recorded per object header.
MAX_OBJECTS: Final = 256
MAX_POINTS: Final = 2048
# A count or range that claims more points than this is malformed whatever the fragment length:
# 16-bit indexes give at most 65536 points per header.
MAX_POINT_COUNT: Final = 65536
DEFAULT_PORT: Final = 20000


class LinkFunction(IntEnum):
    """Link-layer function codes of primary frames (PRM = 1), IEEE 1815 9.2.4.1.3."""

    RESET_LINK_STATES = 0
    RESET_USER_PROCESS = 1  # obsolete
    TEST_LINK_STATES = 2
    CONFIRMED_USER_DATA = 3
    UNCONFIRMED_USER_DATA = 4
    REQUEST_LINK_STATUS = 9


class LinkSecondaryFunction(IntEnum):
    """Link-layer function codes of secondary frames (PRM = 0)."""

    ACK = 0
    NACK = 1
    LINK_STATUS = 11
    NOT_SUPPORTED = 15


class FunctionCode(IntEnum):
    """Application-layer function codes, IEEE 1815 4.2.2.5 / table 4-3."""

    CONFIRM = 0
    READ = 1
    WRITE = 2
    SELECT = 3
    OPERATE = 4
    DIRECT_OPERATE = 5
    DIRECT_OPERATE_NR = 6
    IMMED_FREEZE = 7
    IMMED_FREEZE_NR = 8
    FREEZE_CLEAR = 9
    FREEZE_CLEAR_NR = 10
    FREEZE_AT_TIME = 11
    FREEZE_AT_TIME_NR = 12
    COLD_RESTART = 13
    WARM_RESTART = 14
    INITIALIZE_DATA = 15
    INITIALIZE_APPL = 16
    START_APPL = 17
    STOP_APPL = 18
    SAVE_CONFIG = 19
    ENABLE_UNSOLICITED = 20
    DISABLE_UNSOLICITED = 21
    ASSIGN_CLASS = 22
    DELAY_MEASURE = 23
    RECORD_CURRENT_TIME = 24
    OPEN_FILE = 25
    CLOSE_FILE = 26
    DELETE_FILE = 27
    GET_FILE_INFO = 28
    AUTHENTICATE_FILE = 29
    ABORT_FILE = 30
    ACTIVATE_CONFIG = 31
    AUTHENTICATE_REQ = 32
    AUTH_REQ_NO_ACK = 33
    RESPONSE = 129
    UNSOLICITED_RESPONSE = 130
    AUTHENTICATE_RESP = 131


PRIMARY_FUNCTION_NAMES: dict[int, str] = {m.value: m.name for m in LinkFunction}
SECONDARY_FUNCTION_NAMES: dict[int, str] = {m.value: m.name for m in LinkSecondaryFunction}
FUNCTION_NAMES: dict[int, str] = {m.value: m.name for m in FunctionCode}
RESPONSE_FUNCTIONS: Final = frozenset({129, 130, 131})
# Requests no outstation answers: CONFIRM and the no-acknowledgement functions (DIRECT_OPERATE_NR,
# IMMED_FREEZE_NR, FREEZE_CLEAR_NR, FREEZE_AT_TIME_NR, AUTH_REQ_NO_ACK); and the link addresses
# 0xFFFD-0xFFFF, broadcasts, which no outstation answers either (IEEE 1815 clause 9.2.5.3).
UNANSWERED_FUNCTIONS: Final = frozenset({0, 6, 8, 10, 12, 33})
BROADCAST_MIN_ADDRESS: Final = 0xFFFD
# Link functions that carry a transport segment.
USER_DATA_FUNCTIONS: Final = frozenset({LinkFunction.CONFIRMED_USER_DATA, LinkFunction.UNCONFIRMED_USER_DATA})

# Internal indications: bit position in the 16-bit value IIN1 << 8 | IIN2 (IEEE 1815 4.2.2.7).
IIN_BITS: tuple[tuple[int, str], ...] = (
    (0x0100, "BROADCAST"),
    (0x0200, "CLASS_1_EVENTS"),
    (0x0400, "CLASS_2_EVENTS"),
    (0x0800, "CLASS_3_EVENTS"),
    (0x1000, "NEED_TIME"),
    (0x2000, "LOCAL_CONTROL"),
    (0x4000, "DEVICE_TROUBLE"),
    (0x8000, "DEVICE_RESTART"),
    (0x0001, "NO_FUNC_CODE_SUPPORT"),
    (0x0002, "OBJECT_UNKNOWN"),
    (0x0004, "PARAMETER_ERROR"),
    (0x0008, "EVENT_BUFFER_OVERFLOW"),
    (0x0010, "ALREADY_EXECUTING"),
    (0x0020, "CONFIG_CORRUPT"),
    (0x0040, "RESERVED_2"),
    (0x0080, "RESERVED_1"),
)
_IIN_CACHE: dict[int, tuple[str, ...]] = {}


def iin_names(iin: int) -> tuple[str, ...]:
    """Names of the set IIN bits (cached: a session shows a handful of distinct values)."""
    names = _IIN_CACHE.get(iin)
    if names is None:
        names = tuple(name for bit, name in IIN_BITS if iin & bit)
        if len(_IIN_CACHE) < 4096:
            _IIN_CACHE[iin] = names
    return names


# Object groups (IEEE 1815 annex A), name of the group.
GROUP_NAMES: dict[int, str] = {
    0: "DEVICE_ATTRIBUTES",
    1: "BINARY_INPUT",
    2: "BINARY_INPUT_EVENT",
    3: "DOUBLE_BIT_BINARY_INPUT",
    4: "DOUBLE_BIT_BINARY_INPUT_EVENT",
    10: "BINARY_OUTPUT",
    11: "BINARY_OUTPUT_EVENT",
    12: "BINARY_COMMAND",
    13: "BINARY_COMMAND_EVENT",
    20: "COUNTER",
    21: "FROZEN_COUNTER",
    22: "COUNTER_EVENT",
    23: "FROZEN_COUNTER_EVENT",
    30: "ANALOG_INPUT",
    31: "FROZEN_ANALOG_INPUT",
    32: "ANALOG_INPUT_EVENT",
    33: "FROZEN_ANALOG_INPUT_EVENT",
    34: "ANALOG_INPUT_DEADBAND",
    40: "ANALOG_OUTPUT_STATUS",
    41: "ANALOG_OUTPUT",
    42: "ANALOG_OUTPUT_EVENT",
    43: "ANALOG_OUTPUT_COMMAND_EVENT",
    50: "TIME_AND_DATE",
    51: "COMMON_TIME_OF_OCCURRENCE",
    52: "TIME_DELAY",
    60: "CLASS_DATA",
    70: "FILE_CONTROL",
    80: "INTERNAL_INDICATIONS",
    81: "DEVICE_STORAGE",
    82: "DEVICE_PROFILE",
    83: "DATA_SET_REGISTRATION",
    85: "DATA_SET_PROTOTYPE",
    86: "DATA_SET_DESCRIPTOR",
    87: "DATA_SET_PRESENT_VALUE",
    88: "DATA_SET_SNAPSHOT",
    90: "APPLICATION_IDENTIFIER",
    91: "STATUS_OF_REQUESTED_OPERATION",
    100: "FLOATING_POINT",
    101: "BCD",
    102: "UNSIGNED_INTEGER",
    110: "OCTET_STRING",
    111: "OCTET_STRING_EVENT",
    112: "VIRTUAL_TERMINAL_OUTPUT",
    113: "VIRTUAL_TERMINAL_EVENT",
    120: "AUTHENTICATION",
    121: "SECURITY_STATISTIC",
    122: "SECURITY_STATISTIC_EVENT",
}

# Group 120 (secure authentication v5, IEEE 1815 7.6 / A.45): kind of message per variation.
AUTH_VARIATION_NAMES: dict[int, str] = {
    1: "CHALLENGE",
    2: "REPLY",
    3: "AGGRESSIVE_MODE_REQUEST",
    4: "SESSION_KEY_STATUS_REQUEST",
    5: "SESSION_KEY_STATUS",
    6: "SESSION_KEY_CHANGE",
    7: "ERROR",
    8: "USER_CERTIFICATE",
    9: "MAC",
    10: "USER_STATUS_CHANGE",
    11: "UPDATE_KEY_CHANGE_REQUEST",
    12: "UPDATE_KEY_CHANGE_REPLY",
    13: "UPDATE_KEY_CHANGE",
    14: "UPDATE_KEY_CHANGE_SIGNATURE",
    15: "UPDATE_KEY_CHANGE_CONFIRMATION",
}

# Group 70 (file transfer) variations.
FILE_VARIATION_NAMES: dict[int, str] = {
    1: "FILE_IDENTIFIER",
    2: "AUTHENTICATION",
    3: "FILE_COMMAND",
    4: "FILE_COMMAND_STATUS",
    5: "FILE_TRANSPORT",
    6: "FILE_TRANSPORT_STATUS",
    7: "FILE_DESCRIPTOR",
    8: "FILE_SPECIFICATION_STRING",
}
FILE_STATUS_NAMES: dict[int, str] = {
    0: "SUCCESS",
    1: "PERMISSION_DENIED",
    2: "INVALID_MODE",
    3: "FILE_NOT_FOUND",
    4: "FILE_LOCKED",
    5: "TOO_MANY_OPEN",
    6: "INVALID_HANDLE",
    7: "WRITE_BLOCK_SIZE",
    8: "COMM_LOST",
    9: "CANNOT_ABORT",
    16: "NOT_OPENED",
    17: "HANDLE_EXPIRED",
    18: "BUFFER_OVERRUN",
    19: "FATAL",
    20: "BLOCK_SEQUENCE",
    255: "UNDEFINED",
}
FILE_MODE_NAMES: dict[int, str] = {0: "NULL", 1: "READ", 2: "WRITE", 3: "APPEND"}

# Group 0 device attributes (IEEE 1815 A.2): the inventory reads vendor/model/firmware from these.
ATTRIBUTE_NAMES: dict[int, str] = {
    196: "CONFIGURATION_ID",
    197: "CONFIGURATION_VERSION",
    198: "CONFIGURATION_BUILD_DATE",
    199: "CONFIGURATION_LAST_CHANGE_DATE",
    200: "CONFIGURATION_SIGNATURE",
    201: "CONFIGURATION_SIGNATURE_ALGORITHM",
    202: "MASTER_RESOURCE_ID",
    203: "DEVICE_LOCATION_ALTITUDE",
    204: "DEVICE_LOCATION_LONGITUDE",
    205: "DEVICE_LOCATION_LATITUDE",
    206: "USER_ASSIGNED_SECONDARY_OPERATOR_NAME",
    207: "USER_ASSIGNED_PRIMARY_OPERATOR_NAME",
    208: "USER_ASSIGNED_SYSTEM_NAME",
    209: "SECURE_AUTHENTICATION_VERSION",
    210: "NUMBER_OF_SECURITY_STATISTICS",
    211: "USER_SPECIFIC_ATTRIBUTES_SUPPORT",
    212: "NUMBER_OF_MASTER_DATA_SET_PROTOTYPES",
    213: "NUMBER_OF_OUTSTATION_DATA_SET_PROTOTYPES",
    214: "NUMBER_OF_MASTER_DATA_SETS",
    215: "NUMBER_OF_OUTSTATION_DATA_SETS",
    216: "MAX_BINARY_OUTPUTS_PER_REQUEST",
    217: "LOCAL_TIMING_ACCURACY",
    218: "DURATION_OF_TIME_ACCURACY",
    219: "ANALOG_OUTPUT_EVENTS_SUPPORT",
    220: "MAX_ANALOG_OUTPUT_INDEX",
    221: "NUMBER_OF_ANALOG_OUTPUTS",
    222: "BINARY_OUTPUT_EVENTS_SUPPORT",
    223: "MAX_BINARY_OUTPUT_INDEX",
    224: "NUMBER_OF_BINARY_OUTPUTS",
    225: "FROZEN_COUNTER_EVENTS_SUPPORT",
    226: "FROZEN_COUNTERS_SUPPORT",
    227: "COUNTER_EVENTS_SUPPORT",
    228: "MAX_COUNTER_INDEX",
    229: "NUMBER_OF_COUNTERS",
    230: "FROZEN_ANALOG_INPUTS_SUPPORT",
    231: "ANALOG_INPUT_EVENTS_SUPPORT",
    232: "MAX_ANALOG_INPUT_INDEX",
    233: "NUMBER_OF_ANALOG_INPUTS",
    234: "DOUBLE_BIT_INPUT_EVENTS_SUPPORT",
    235: "MAX_DOUBLE_BIT_INPUT_INDEX",
    236: "NUMBER_OF_DOUBLE_BIT_INPUTS",
    237: "BINARY_INPUT_EVENTS_SUPPORT",
    238: "MAX_BINARY_INPUT_INDEX",
    239: "NUMBER_OF_BINARY_INPUTS",
    240: "MAX_TRANSMIT_FRAGMENT_SIZE",
    241: "MAX_RECEIVE_FRAGMENT_SIZE",
    242: "SOFTWARE_VERSION",
    243: "HARDWARE_VERSION",
    244: "USER_ASSIGNED_OWNER_NAME",
    245: "USER_ASSIGNED_LOCATION",
    246: "USER_ASSIGNED_ID",
    247: "USER_ASSIGNED_DEVICE_NAME",
    248: "SERIAL_NUMBER",
    249: "SUBSET_AND_CONFORMANCE",
    250: "PRODUCT_NAME_AND_MODEL",
    252: "MANUFACTURER_NAME",
    254: "ALL_ATTRIBUTES_REQUEST",
    255: "LIST_OF_ATTRIBUTE_VARIATIONS",
}
ATTRIBUTE_TYPE_NAMES: dict[int, str] = {
    1: "VSTR",
    2: "UINT",
    3: "INT",
    4: "FLT",
    5: "OSTR",
    6: "BSTR",
    7: "TIME",
    254: "U8BS8LIST",
    255: "U8BS8EXLIST",
}

# Control relay output block (group 12): operation type, trip/close code and command status.
CONTROL_OPERATION_NAMES: dict[int, str] = {
    0: "NUL",
    1: "PULSE_ON",
    2: "PULSE_OFF",
    3: "LATCH_ON",
    4: "LATCH_OFF",
}
TRIP_CLOSE_NAMES: dict[int, str] = {0: "NUL", 1: "CLOSE", 2: "TRIP", 3: "RESERVED"}
COMMAND_STATUS_NAMES: dict[int, str] = {
    0: "SUCCESS",
    1: "TIMEOUT",
    2: "NO_SELECT",
    3: "FORMAT_ERROR",
    4: "NOT_SUPPORTED",
    5: "ALREADY_ACTIVE",
    6: "HARDWARE_ERROR",
    7: "LOCAL",
    8: "TOO_MANY_OPS",
    9: "NOT_AUTHORIZED",
    10: "AUTOMATION_INHIBIT",
    11: "PROCESSING_LIMITED",
    12: "OUT_OF_RANGE",
    13: "DOWNSTREAM_LOCAL",
    14: "ALREADY_COMPLETE",
    15: "BLOCKED",
    16: "CANCELLED",
    17: "BLOCKED_OTHER_MASTER",
    18: "DOWNSTREAM_FAIL",
    126: "RESERVED",
    127: "UNDEFINED",
}

# -- anomaly codes -------------------------------------------------------------------------------------
LINK_HEADER_CRC_BAD: Final = "dnp3.link_header_crc_bad"
LINK_CRC_BAD: Final = "dnp3.link_crc_bad"
LINK_BAD_LENGTH: Final = "dnp3.link_bad_length"
LINK_GARBAGE: Final = "dnp3.link_garbage"
LINK_UNKNOWN_FUNCTION: Final = "dnp3.link_unknown_function"
TRANSPORT_NO_FIRST: Final = "dnp3.transport_no_first"
TRANSPORT_SEQUENCE_ERROR: Final = "dnp3.transport_sequence_error"
TRANSPORT_FRAGMENT_DISCARDED: Final = "dnp3.transport_fragment_discarded"
TRANSPORT_FRAGMENT_TOO_LARGE: Final = "dnp3.transport_fragment_too_large"
TRANSPORT_TABLE_FULL: Final = "dnp3.transport_table_full"
APP_TOO_SHORT: Final = "dnp3.app_too_short"
APP_UNKNOWN_FUNCTION: Final = "dnp3.app_unknown_function"
OBJECT_OVERRUN: Final = "dnp3.object_overrun"
INVALID_QUALIFIER: Final = "dnp3.invalid_qualifier"
INVALID_RANGE: Final = "dnp3.invalid_range"
UNKNOWN_OBJECT: Final = "dnp3.unknown_object"
TOO_MANY_POINTS: Final = "dnp3.too_many_points"
POINTS_CAPPED: Final = "dnp3.points_capped"
TOO_MANY_OBJECTS: Final = "dnp3.too_many_objects"
ASSOCIATION_TABLE_FULL: Final = "dnp3.association_table_full"

register(
    LINK_HEADER_CRC_BAD,
    Severity.MEDIUM,
    "DNP3 link header CRC wrong: the frame is dropped (as an outstation would) and parsing resyncs",
)
register(
    LINK_CRC_BAD,
    Severity.MEDIUM,
    "DNP3 link data block CRC wrong: the frame's user data is dropped from reassembly",
)
register(LINK_BAD_LENGTH, Severity.MEDIUM, "DNP3 link length field below 5 or too small for user data")
register(LINK_GARBAGE, Severity.LOW, "bytes between DNP3 link frames skipped while resyncing on 0x05 0x64")
register(LINK_UNKNOWN_FUNCTION, Severity.LOW, "DNP3 link function code not defined for its PRM bit")
register(TRANSPORT_NO_FIRST, Severity.LOW, "DNP3 transport segment without FIR and no fragment in progress")
register(
    TRANSPORT_SEQUENCE_ERROR,
    Severity.MEDIUM,
    "DNP3 transport segment out of sequence: the fragment in progress is discarded",
)
register(
    TRANSPORT_FRAGMENT_DISCARDED,
    Severity.LOW,
    "DNP3 fragment in progress abandoned (new FIR segment, gap or end of flow) before its FIN",
)
register(
    TRANSPORT_FRAGMENT_TOO_LARGE,
    Severity.MEDIUM,
    "DNP3 application fragment grows past the reassembly cap; it is discarded",
)
register(TRANSPORT_TABLE_FULL, Severity.MEDIUM, "too many DNP3 reassembly buffers in one flow")
register(APP_TOO_SHORT, Severity.MEDIUM, "DNP3 application fragment shorter than its header")
register(APP_UNKNOWN_FUNCTION, Severity.MEDIUM, "DNP3 application function code not defined")
register(OBJECT_OVERRUN, Severity.MEDIUM, "DNP3 object header or object data runs past the fragment")
register(
    INVALID_QUALIFIER, Severity.MEDIUM, "DNP3 object qualifier code invalid; rest of the fragment skipped"
)
register(INVALID_RANGE, Severity.MEDIUM, "DNP3 object range with stop below start")
register(
    UNKNOWN_OBJECT,
    Severity.LOW,
    "DNP3 object group/variation unknown; the rest of the fragment is skipped",
)
register(TOO_MANY_POINTS, Severity.MEDIUM, "DNP3 object header claims more points than any device has")
register(POINTS_CAPPED, Severity.LOW, "DNP3 object with more points than recorded per object")
register(TOO_MANY_OBJECTS, Severity.MEDIUM, "DNP3 fragment with more object headers than the cap")
register(ASSOCIATION_TABLE_FULL, Severity.MEDIUM, "too many DNP3 associations with pending requests")
