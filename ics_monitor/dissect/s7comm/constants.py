"""S7comm, S7comm-plus, COTP and TPKT codes, their names, this dissector's caps and anomaly codes.

Sources: RFC 1006 (TPKT), ISO 8073 / X.224 (COTP), and for the undocumented Siemens protocols the
names used by Wireshark's s7comm dissector and Thomas Wiens' S7comm-plus plug-in (the de-facto
reference; member names here are those names in upper snake case).  Every table maps a raw value
to a name; lookups use ``dict.get(value, UNKNOWN)``.  No parsing here.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from ics_monitor.core.anomalies import Severity, register

UNKNOWN: Final = "UNKNOWN"
DEFAULT_PORT: Final = 102
TPKT_VERSION: Final = 3

# -- caps (every unbounded thing has one; hitting it raises an anomaly) ---------------------------------
# An S7 PDU is at most 960 bytes (S7-400) and S7comm-plus fragments stay below the TPDU size, so a
# COTP-reassembled payload beyond 64 KiB is abuse; TPKT's own length field cannot say more either.
MAX_COTP_PAYLOAD: Final = 65536
# Requests awaiting an answer per flow: a client may pipeline up to "max AmQ" jobs (at most a few
# dozen in every CPU's setup answer); 256 leaves room for PG tools that ignore it.
MAX_PENDING: Final = 256
# Multi-part USERDATA answers in reassembly per flow, and their size (an SZL of a big S7-400
# rack is some 10 KB).
MAX_USERDATA_REASSEMBLIES: Final = 16
MAX_USERDATA_SIZE: Final = 65536
# Block transfers in progress per flow (a PG loads one block at a time) and the size of one
# block: S7-300/400 blocks are at most 64 KB of MC7 code, S7-400H load memory blocks somewhat more.
MAX_TRANSFERS: Final = 16
MAX_BLOCK_SIZE: Final = 4 * 1024 * 1024
# Items recorded per read/write request or answer (the protocol's count byte allows 255; a 960-byte
# PDU fits at most 80 S7ANY items) and values decoded per item.
MAX_ITEMS: Final = 255
MAX_VALUES: Final = 64
# Hex bytes kept of data this dissector does not decode (raw SZL lists, unknown userdata ...).
MAX_RAW_BYTES: Final = 512
# Entries decoded per SZL answer and per block list.
MAX_LIST_ENTRIES: Final = 256
# Unanswered requests reported one by one when a flow ends (the rest are counted in one anomaly).
MAX_UNANSWERED_REPORTED: Final = 16
# Bytes searched for the next TPKT header when resynchronising (bounded work per call).
RESYNC_WINDOW: Final = 4096


# -- TPKT / COTP -------------------------------------------------------------------------------------------


class CotpPduType(IntEnum):
    """COTP TPDU codes (high nibble of the second header byte), ISO 8073 13.1."""

    ED = 0x1  # expedited data
    EA = 0x2  # expedited data acknowledgement
    RJ = 0x5  # reject
    AK = 0x6  # data acknowledgement
    ER = 0x7  # TPDU error
    DR = 0x8  # disconnect request
    DC = 0xC  # disconnect confirm
    CC = 0xD  # connection confirm
    CR = 0xE  # connection request
    DT = 0xF  # data


# A connection request's TPDU code (``CotpPduType.CR``) as the COTP records carry it (``pdu_type``),
# for the detectors that look for connection requests; a literal, which mypyc inlines.
TPDU_CR: Final = 0xE


class CotpParameter(IntEnum):
    """Parameter codes in the variable part of CR/CC/DR/ER TPDUs (ISO 8073 13.3.4)."""

    ACK_TIME = 0x85
    RESIDUAL_ERROR_RATE = 0x86
    PRIORITY = 0x87
    TRANSIT_DELAY = 0x88
    THROUGHPUT = 0x89
    SUBSEQUENCE_NUMBER = 0x8A
    REASSIGNMENT_TIME = 0x8B
    FLOW_CONTROL_CONFIRMATION = 0x8C
    SELECTIVE_ACK = 0x8F
    ADDITIONAL_INFORMATION = 0xE0
    TPDU_SIZE = 0xC0
    CALLING_TSAP = 0xC1  # source TSAP (in an ER: the invalid TPDU)
    CALLED_TSAP = 0xC2  # destination TSAP
    CHECKSUM = 0xC3
    VERSION_NUMBER = 0xC4
    PROTECTION = 0xC5
    ADDITIONAL_OPTIONS = 0xC6
    ALTERNATIVE_CLASSES = 0xC7
    PREFERRED_MAX_TPDU_SIZE = 0xF0
    INACTIVITY_TIMER = 0xF2


class CotpDisconnectReason(IntEnum):
    """DR reason codes, ISO 8073 13.5.3 d)."""

    NOT_SPECIFIED = 0x00
    CONGESTION_AT_TSAP = 0x01
    SESSION_ENTITY_NOT_ATTACHED = 0x02
    ADDRESS_UNKNOWN = 0x03
    NORMAL = 0x80
    REMOTE_CONGESTION = 0x81
    NEGOTIATION_FAILED = 0x82
    DUPLICATE_SOURCE_REFERENCE = 0x83
    MISMATCHED_REFERENCES = 0x84
    PROTOCOL_ERROR = 0x85
    REFERENCE_OVERFLOW = 0x87
    CONNECTION_REFUSED = 0x88
    INVALID_LENGTH = 0x8A


class CotpRejectCause(IntEnum):
    """ER reject causes, ISO 8073 13.12.3 c)."""

    NOT_SPECIFIED = 0x00
    INVALID_PARAMETER_CODE = 0x01
    INVALID_TPDU_TYPE = 0x02
    INVALID_PARAMETER_VALUE = 0x03


class ConnectionType(IntEnum):
    """First byte of a two-byte S7 TSAP: who is connecting (snap7 and TIA naming)."""

    PG = 0x01  # programming device (STEP 7, TIA Portal)
    OP = 0x02  # operator panel / HMI
    S7_BASIC = 0x03  # other S7 clients (S7 basic communication, PUT/GET)


# COTP TPDU size parameter: 2 ** value bytes (7 -> 128 ... 13 -> 8192).
TPDU_SIZES: Final = {code: 1 << code for code in range(7, 14)}


# -- S7comm ----------------------------------------------------------------------------------------------


class Rosctr(IntEnum):
    """PDU type (Remote Operating Service Control), S7comm header byte 1."""

    JOB = 0x01
    ACK = 0x02
    ACK_DATA = 0x03
    USERDATA = 0x07


class Function(IntEnum):
    """Parameter function codes of JOB and ACK_DATA PDUs."""

    CPU_SERVICES = 0x00
    READ_VAR = 0x04
    WRITE_VAR = 0x05
    REQUEST_DOWNLOAD = 0x1A
    DOWNLOAD_BLOCK = 0x1B
    DOWNLOAD_ENDED = 0x1C
    START_UPLOAD = 0x1D
    UPLOAD = 0x1E
    END_UPLOAD = 0x1F
    PI_SERVICE = 0x28
    PLC_STOP = 0x29
    SETUP_COMMUNICATION = 0xF0


BLOCK_TRANSFER_FUNCTIONS: Final = frozenset(range(0x1A, 0x20))


class ErrorClass(IntEnum):
    """Header error class of ACK and ACK_DATA PDUs."""

    NO_ERROR = 0x00
    APPLICATION_RELATIONSHIP = 0x81
    OBJECT_DEFINITION = 0x82
    NO_RESOURCES = 0x83
    SERVICE_PROCESSING = 0x84
    SUPPLIES = 0x85
    ACCESS = 0x87


# Combined error class << 8 | code (header) or parameter error code (USERDATA, block transfer).
ERROR_NAMES: dict[int, str] = {
    0x0000: "NO_ERROR",
    0x0110: "INVALID_BLOCK_NUMBER",
    0x0111: "INVALID_REQUEST_LENGTH",
    0x0112: "INVALID_PARAMETER",
    0x0113: "INVALID_BLOCK_TYPE",
    0x0114: "BLOCK_NOT_FOUND",
    0x0115: "BLOCK_ALREADY_EXISTS",
    0x0116: "BLOCK_WRITE_PROTECTED",
    0x0117: "BLOCK_TOO_LARGE",
    0x0119: "INCORRECT_PASSWORD",
    0x011A: "PG_RESOURCE_ERROR",
    0x011B: "PLC_RESOURCE_ERROR",
    0x011C: "PROTOCOL_ERROR",
    0x011D: "TOO_MANY_BLOCKS",
    0x011F: "RESULT_BUFFER_TOO_SMALL",
    0x0120: "END_OF_BLOCK_LIST",
    0x0140: "INSUFFICIENT_MEMORY",
    0x0141: "LACK_OF_RESOURCES",
    0x8001: "SERVICE_NOT_IN_CURRENT_BLOCK_STATUS",
    0x8003: "BLOCK_TRANSFER_ERROR",
    0x8100: "SERVICE_UNKNOWN",
    0x8104: "SERVICE_NOT_IMPLEMENTED_OR_FRAME_ERROR",
    0x8204: "INCONSISTENT_OBJECT_TYPE",
    0x8205: "COPIED_BLOCK_EXISTS",
    0x8301: "INSUFFICIENT_MEMORY",
    0x8302: "TOO_FEW_RESOURCES",
    0x8304: "NO_FURTHER_PARALLEL_UPLOAD",
    0x8305: "FUNCTION_NOT_AVAILABLE",
    0x8306: "INSUFFICIENT_WORK_MEMORY",
    0x8307: "INSUFFICIENT_RETENTIVE_WORK_MEMORY",
    0x8401: "INVALID_SERVICE_SEQUENCE",
    0x8402: "OBJECT_STATUS_FORBIDS_SERVICE",
    0x8404: "FUNCTION_CANNOT_BE_PERFORMED",
    0x8405: "REMOTE_BLOCK_DISABLED",
    0x8500: "WRONG_FRAMES",
    0x8503: "SERVICE_CANCELED",
    0x8701: "OBJECT_ADDRESS_ERROR",
    0x8702: "SERVICE_NOT_SUPPORTED",
    0x8703: "ACCESS_DENIED",
    0x8704: "OBJECT_DAMAGED",
    0xD001: "ILLEGAL_JOB_NUMBER",
    0xD002: "ILLEGAL_JOB_VARIANT",
    0xD003: "DEBUGGING_NOT_SUPPORTED",
    0xD004: "ILLEGAL_JOB_STATUS",
    0xD005: "ILLEGAL_JOB_TERMINATION",
    0xD00A: "ILLEGAL_TRIGGER_EVENT",
    0xD011: "BLOCK_DOES_NOT_EXIST",
    0xD012: "WRONG_ADDRESS_IN_BLOCK",
    0xD014: "BLOCK_BEING_DELETED",
    0xD015: "ILLEGAL_TAG_ADDRESS",
    0xD031: "INTERNAL_PROTOCOL_ERROR",
    0xD032: "WRONG_RESULT_BUFFER_LENGTH",
    0xD033: "WRONG_JOB_LENGTH",
    0xD03F: "CODING_ERROR_IN_PARAMETERS",
    0xD041: "ILLEGAL_SZL_ID",
    0xD042: "ILLEGAL_TAG_ADDRESS",
    0xD043: "REFERENCED_JOB_NOT_FOUND",
    0xD044: "ILLEGAL_TAG_VALUE",
    0xD05F: "CODING_ERROR_IN_DATA",
    0xD061: "NO_MEMORY_FOR_JOB",
    0xD062: "JOB_LIST_FULL",
    0xD081: "NOT_PERMITTED_IN_CURRENT_MODE",
    0xD082: "CANNOT_EXIT_HOLD",
    0xD0A1: "NOT_PERMITTED_IN_CURRENT_PROTECTION_LEVEL",
    0xD0A2: "MEMORY_MODIFYING_FUNCTION_RUNNING",
    0xD0AD: "OPERATING_MODE_ALREADY_SET",
    0xD201: "SYNTAX_ERROR_IN_BLOCK_NAME",
    0xD202: "SYNTAX_ERROR_IN_FUNCTION_PARAMETERS",
    0xD209: "BLOCK_NOT_FOUND_ON_MODULE",
    0xD20E: "NO_FURTHER_BLOCK",
    0xD210: "INVALID_BLOCK_NUMBER",
    0xD240: "COORDINATION_RULES_VIOLATED",
    0xD241: "PROTECTION_LEVEL_TOO_LOW",
    0xD242: "PROTECTION_VIOLATION_WHILE_PROCESSING_F_BLOCKS",
    0xD401: "INFORMATION_FUNCTION_UNAVAILABLE",
    0xD402: "INFORMATION_FUNCTION_UNAVAILABLE",
    0xD403: "SERVICE_ALREADY_LOGGED_ON_OFF",
    0xD404: "MAXIMUM_NUMBER_OF_NODES_REACHED",
    0xD405: "SERVICE_NOT_SUPPORTED_OR_SYNTAX_ERROR",
    0xD406: "INFORMATION_CURRENTLY_UNAVAILABLE",
    0xD407: "DIAGNOSTICS_ERROR",
    0xD408: "UPDATE_ABORTED",
    0xD409: "DP_BUS_ERROR",
    0xD601: "SYNTAX_ERROR_IN_FUNCTION_PARAMETER",
    0xD602: "INCORRECT_PASSWORD",
    0xD603: "CONNECTION_ALREADY_LEGITIMIZED",
    0xD604: "CONNECTION_ALREADY_ENABLED",
    0xD605: "PASSWORD_DOES_NOT_EXIST",
    0xD801: "INVALID_TAG_ADDRESS",
    0xD802: "JOB_DOES_NOT_EXIST",
    0xD803: "ILLEGAL_JOB_STATUS",
    0xD804: "ILLEGAL_CYCLE_TIME",
    0xD805: "NO_MORE_CYCLIC_READ_JOBS",
    0xDC01: "INVALID_DATE_OR_TIME",
    0xEF01: "ERROR_AT_ID2",
    0xEF02: "RESOURCE_SET_DOES_NOT_EXIST",
}


class Area(IntEnum):
    """Memory areas of an S7ANY address."""

    DATA_RECORD = 0x01
    SYSTEM_INFO_200 = 0x03
    SYSTEM_FLAGS_200 = 0x05
    ANALOG_INPUTS_200 = 0x06
    ANALOG_OUTPUTS_200 = 0x07
    COUNTER = 0x1C  # S7 counters (C)
    TIMER = 0x1D  # S7 timers (T)
    IEC_COUNTER_200 = 0x1E
    IEC_TIMER_200 = 0x1F
    PERIPHERAL = 0x80  # direct peripheral access (P)
    INPUTS = 0x81  # I
    OUTPUTS = 0x82  # Q
    FLAGS = 0x83  # M
    DATA_BLOCK = 0x84  # DB
    INSTANCE_DATA_BLOCK = 0x85  # DI
    LOCAL_DATA = 0x86  # L
    PREVIOUS_LOCAL_DATA = 0x87  # V


# Areas whose address is a timer/counter number, not byte.bit.
NUMBERED_AREAS: Final = frozenset({Area.COUNTER, Area.TIMER, Area.IEC_COUNTER_200, Area.IEC_TIMER_200})


class TransportSize(IntEnum):
    """Element type of a request item (S7ANY transport size)."""

    BIT = 1
    BYTE = 2
    CHAR = 3
    WORD = 4
    INT = 5
    DWORD = 6
    DINT = 7
    REAL = 8
    DATE = 9
    TOD = 10
    TIME = 11
    S5TIME = 12
    DATE_AND_TIME = 15
    COUNTER = 28
    TIMER = 29
    IEC_COUNTER = 30
    IEC_TIMER = 31
    HS_COUNTER = 32


class DataTransportSize(IntEnum):
    """Transport size of a data item; for BIT, BYTE_WORD_DWORD and INTEGER the length is in bits."""

    NULL = 0
    BIT = 3
    BYTE_WORD_DWORD = 4
    INTEGER = 5
    DINTEGER = 6
    REAL = 7
    OCTET_STRING = 9
    NCK_ADDRESS1 = 17
    NCK_ADDRESS2 = 18


LENGTH_IN_BITS: Final = frozenset(
    {DataTransportSize.BIT, DataTransportSize.BYTE_WORD_DWORD, DataTransportSize.INTEGER}
)


class SyntaxId(IntEnum):
    """Address format of a variable specification."""

    S7ANY = 0x10
    PARAMETER_SHORT = 0x11
    PARAMETER_EXTENDED = 0x12
    PBC_R_ID = 0x13
    ALARM_LOCKFREE = 0x15
    ALARM_IND = 0x16
    ALARM_ACK = 0x19
    ALARM_QUERYREQ = 0x1A
    NOTIFY_IND = 0x1C
    NCK = 0x82
    NCK_METRIC = 0x83
    NCK_INCH = 0x84
    DRIVEESANY = 0xA2
    DBREAD = 0xB0
    S7_1200_SYMBOLIC = 0xB2


class ReturnCode(IntEnum):
    """Return code of a data item."""

    RESERVED = 0x00
    HARDWARE_FAULT = 0x01
    ACCESS_FAULT = 0x03
    ADDRESS_OUT_OF_RANGE = 0x05
    DATA_TYPE_NOT_SUPPORTED = 0x06
    DATA_TYPE_INCONSISTENT = 0x07
    OBJECT_DOES_NOT_EXIST = 0x0A
    SUCCESS = 0xFF


class UserdataType(IntEnum):
    """USERDATA parameter type (top 2 bits of the type/group byte)."""

    PUSH = 0  # indication: unsolicited from the PLC (alarms, cyclic data, mode changes)
    REQUEST = 1
    RESPONSE = 2


class UserdataGroup(IntEnum):
    """USERDATA function group (low 6 bits of the type/group byte)."""

    MODE_TRANSITION = 0x00
    PROGRAMMER_COMMANDS = 0x01
    CYCLIC_DATA = 0x02
    BLOCK_FUNCTIONS = 0x03
    CPU_FUNCTIONS = 0x04
    SECURITY = 0x05
    PBC_BSEND = 0x06
    TIME_FUNCTIONS = 0x07
    DR_ROUTING = 0x20
    NC_PROGRAMMING = 0x3F


SUBFUNCTION_NAMES: dict[int, dict[int, str]] = {
    UserdataGroup.PROGRAMMER_COMMANDS: {
        0x01: "BLOCK_STATUS",
        0x02: "VARIABLE_STATUS",
        0x03: "OUTPUT_ISTACK",
        0x04: "OUTPUT_BSTACK",
        0x05: "OUTPUT_LSTACK",
        0x06: "TIME_MEASUREMENT",
        0x07: "FORCE_SELECTION",
        0x08: "MODIFY_VARIABLE",
        0x09: "FORCE",
        0x0A: "BREAKPOINT",
        0x0B: "EXIT_HOLD",
        0x0C: "MEMORY_RESET",
        0x0D: "DISABLE_JOB",
        0x0E: "ENABLE_JOB",
        0x0F: "DELETE_JOB",
        0x10: "READ_JOB_LIST",
        0x11: "READ_JOB",
        0x12: "REPLACE_JOB",
        0x13: "BLOCK_STATUS_V2",
        0x16: "FLASH_LED",
    },
    UserdataGroup.CYCLIC_DATA: {
        0x01: "CYCLIC_TRANSFER",
        0x04: "UNSUBSCRIBE",
        0x05: "CHANGE_DRIVEN_TRANSFER",
        0x07: "CHANGE_DRIVEN_TRANSFER_MODIFY",
        0x08: "RDREC",
    },
    UserdataGroup.BLOCK_FUNCTIONS: {
        0x01: "LIST_BLOCKS",
        0x02: "LIST_BLOCKS_OF_TYPE",
        0x03: "GET_BLOCK_INFO",
    },
    UserdataGroup.CPU_FUNCTIONS: {
        0x01: "READ_SZL",
        0x02: "MESSAGE_SERVICE",
        0x03: "DIAGNOSTIC_MESSAGE",
        0x05: "ALARM_8_INDICATION",
        0x06: "NOTIFY_INDICATION",
        0x07: "ALARM_8_LOCK",
        0x08: "ALARM_8_UNLOCK",
        0x09: "SCAN_INDICATION",
        0x0B: "ALARM_ACK",
        0x0C: "ALARM_ACK_INDICATION",
        0x0D: "ALARM_LOCK_INDICATION",
        0x0E: "ALARM_UNLOCK_INDICATION",
        0x10: "AR_SEND_INDICATION",
        0x11: "ALARM_SQ_INDICATION",
        0x12: "ALARM_S_INDICATION",
        0x13: "ALARM_QUERY",
        0x16: "NOTIFY_8_INDICATION",
    },
    UserdataGroup.SECURITY: {
        0x01: "PLC_PASSWORD",
        0x02: "CLEAR_PASSWORD",
    },
    UserdataGroup.TIME_FUNCTIONS: {
        0x01: "READ_CLOCK",
        0x02: "SET_CLOCK",
        0x03: "READ_CLOCK_FOLLOWING",
        0x04: "SET_CLOCK_2",
    },
    UserdataGroup.NC_PROGRAMMING: {
        0x01: "REQUEST_DOWNLOAD",
        0x02: "DOWNLOAD_BLOCK",
        0x03: "CONTINUE_DOWNLOAD",
        0x04: "DOWNLOAD_ENDED",
        0x06: "START_UPLOAD",
        0x07: "UPLOAD",
        0x08: "CONTINUE_UPLOAD",
    },
    UserdataGroup.DR_ROUTING: {
        0x01: "DRR_INIT",
        0x02: "DRR_FINISH",
        0x03: "DRR_DATA",
    },
}

# Subfunctions whose data is a password (or its obfuscated form): never recorded.
SECRET_SUBFUNCTIONS: Final = frozenset({(UserdataGroup.SECURITY, 0x01), (UserdataGroup.SECURITY, 0x02)})


class CpuMode(IntEnum):
    """Mode in a USERDATA mode-transition push (function 0x01)."""

    STOP = 0
    WARM_RESTART = 1
    RUN = 2
    HOT_RESTART = 3
    HOLD = 4
    COLD_RESTART = 6
    RUN_R = 9  # H system, redundant
    LINK_UP = 11
    UPDATE = 12


class SzlModeState(IntEnum):
    """CPU state nibbles of SZL 0x0424 ``bzu_id`` (requested and previous mode)."""

    STOP_UPDATE = 0x1
    STOP_MEMORY_RESET = 0x2
    STOP_SELF_INITIALIZATION = 0x3
    STOP_INTERNAL = 0x4
    STARTUP_COMPLETE_RESTART = 0x5
    RESTART = 0x7
    RUN = 0x8
    HOLD = 0xA
    DEFECT = 0xD


# SZL partial list numbers (low byte of the SZL id) and their names.
SZL_LIST_NAMES: dict[int, str] = {
    0x00: "LIST_OF_SZL_IDS",
    0x11: "MODULE_IDENTIFICATION",
    0x12: "CPU_CHARACTERISTICS",
    0x13: "USER_MEMORY_AREAS",
    0x14: "SYSTEM_AREAS",
    0x15: "BLOCK_TYPES",
    0x17: "SDB_LIST",
    0x19: "LED_STATUS",
    0x1C: "COMPONENT_IDENTIFICATION",
    0x22: "INTERRUPT_STATUS",
    0x24: "MODES",
    0x25: "PROCESS_IMAGE_PARTITIONS",
    0x31: "COMMUNICATION_CAPABILITY",
    0x32: "COMMUNICATION_STATUS",
    0x33: "DIAGNOSTIC_STATIONS",
    0x37: "ETHERNET_DETAILS",
    0x74: "LED_STATUS",
    0x90: "DP_MASTER_SYSTEMS",
    0x91: "MODULE_STATUS",
    0x92: "RACK_STATION_STATUS",
    0x94: "RACK_STATION_STATUS",
    0x95: "DP_MASTER_SYSTEM_DETAILS",
    0x96: "MODULE_STATUS_PROFINET_PROFIBUS",
    0xA0: "DIAGNOSTIC_BUFFER",
    0xB1: "MODULE_DIAGNOSTIC_DATA",
    0xB2: "MODULE_DIAGNOSTIC_DATA_RECORD_1",
    0xB3: "MODULE_DIAGNOSTIC_DATA",
    0xB4: "DP_SLAVE_DIAGNOSTIC_DATA",
}

# Index names of SZL 0x0011 (module identification) and 0x001C (component identification).
MODULE_IDENTIFICATION_INDEXES: Final = {
    0x0001: "MODULE",
    0x0006: "BASIC_HARDWARE",
    0x0007: "BASIC_FIRMWARE",
    0x0081: "FIRMWARE_EXTENSION",
    0x0082: "FIRMWARE_EXTENSION_2",
}
COMPONENT_IDENTIFICATION_INDEXES: Final = {
    0x0001: "AS_NAME",
    0x0002: "MODULE_NAME",
    0x0003: "PLANT_ID",
    0x0004: "COPYRIGHT",
    0x0005: "SERIAL_NUMBER",
    0x0007: "MODULE_TYPE_NAME",
    0x0008: "MEMORY_CARD_SERIAL_NUMBER",
    0x0009: "MANUFACTURER_AND_PROFILE",
    0x000A: "OEM_ID",
    0x000B: "LOCATION_ID",
}

# Block types as written in file names ("_0A00001P") and PI block lists: two ASCII hex digits.
BLOCK_TYPE_NAMES: dict[str, str] = {
    "08": "OB",
    "09": "CMOD",
    "0A": "DB",
    "0B": "SDB",
    "0C": "FC",
    "0D": "SFC",
    "0E": "FB",
    "0F": "SFB",
}
# The same as one binary byte (block info answers).
SUBBLOCK_TYPE_NAMES: dict[int, str] = {int(code, 16): name for code, name in BLOCK_TYPE_NAMES.items()}
FILESYSTEM_NAMES: Final = {"P": "PASSIVE", "A": "ACTIVE", "B": "ACTIVE_AND_PASSIVE"}
BLOCK_LANGUAGE_NAMES: Final = {
    0x00: "NOT_DEFINED",
    0x01: "AWL",
    0x02: "KOP",
    0x03: "FUP",
    0x04: "SCL",
    0x05: "DB",
    0x06: "GRAPH",
    0x07: "SDB",
    0x08: "CPU_DB",
    0x11: "SDB_AFTER_OVERALL_RESET",
    0x12: "SDB_ROUTING",
    0x29: "ENCRYPT",
}

# PI services (program invocation) named by their ASCII service name.
PI_SERVICE_NAMES: Final = {
    "P_PROGRAM": "PLC_START_STOP",
    "_INSE": "ACTIVATE_BLOCK",
    "_INS2": "ACTIVATE_BLOCK",
    "_DELE": "DELETE_BLOCK",
    "_MODU": "COPY_RAM_TO_ROM",
    "_GARB": "COMPRESS_MEMORY",
    "_N_LOGIN_": "NC_LOGIN",
    "_N_LOGOUT": "NC_LOGOUT",
    "_N_NEWPWD": "NC_NEW_PASSWORD",
}
# PI services whose arguments are block lists, and those whose arguments hold a password.
PI_BLOCK_SERVICES: Final = frozenset({"_INSE", "_INS2", "_DELE"})
PI_SECRET_SERVICES: Final = frozenset({"_N_LOGIN_", "_N_NEWPWD"})


# -- S7comm-plus -----------------------------------------------------------------------------------------


class PlusVersion(IntEnum):
    """Second byte of an S7comm-plus PDU (protocol version / PDU type)."""

    V1 = 0x01  # connection set-up
    V2 = 0x02  # data, integrity part at the end (S7-1200 FW 4, S7-1500 before FW 1.5)
    V3 = 0x03  # data, integrity part right after the header (S7-1500 FW >= 1.5)
    EXTENDED_KEEP_ALIVE = 0xFE
    KEEP_ALIVE = 0xFF


class PlusOpcode(IntEnum):
    """S7comm-plus opcode, the first byte of the data part."""

    RESPONSE2 = 0x02
    REQUEST = 0x31
    RESPONSE = 0x32
    NOTIFICATION = 0x33


class PlusFunction(IntEnum):
    """S7comm-plus function codes."""

    ERROR = 0x04B1
    EXPLORE = 0x04BB
    CREATE_OBJECT = 0x04CA
    DELETE_OBJECT = 0x04D4
    SET_VARIABLE = 0x04F2
    GET_VARIABLE = 0x04FC
    ADD_LINK = 0x0506
    REMOVE_LINK = 0x051A
    GET_LINK = 0x0524
    SET_MULTI_VARIABLES = 0x0542
    GET_MULTI_VARIABLES = 0x054C
    BEGIN_SEQUENCE = 0x0556
    END_SEQUENCE = 0x0560
    INVOKE = 0x056B
    SET_VAR_SUBSTREAMED = 0x057C
    GET_VAR_SUBSTREAMED = 0x0586
    GET_VARIABLES_ADDRESS = 0x0590
    ABORT = 0x059A


PLUS_DIGEST_LENGTH: Final = 32
# Object and attribute ids a SetVariable request may name (the request set's addressing, not its
# values).  CPUexecUnit's operatingStateReq is how TIA Portal stops and starts an S7-1200/1500
# (the public s7plus captures: 1 when it stops the CPU, 3 when it starts it).
PLUS_OPERATING_STATE_REQ: Final = 2167
# Addresses of one SetVariable read, at most (TIA Portal sets one).
PLUS_MAX_ADDRESSES: Final = 64
PLUS_OBJECT_NAMES: Final = {3: "PLCProgram", 52: "CPUexecUnit", 80: "IArea", 81: "QArea", 82: "MArea"}
PLUS_ATTRIBUTE_NAMES: Final = {PLUS_OPERATING_STATE_REQ: "CPUexecUnit.operatingStateReq"}
PLUS_STATE_STOP: Final = 1
PLUS_REQUESTED_STATES: Final = {PLUS_STATE_STOP: "STOP", 3: "RUN"}
# Object ids from here up are program blocks (0x8A0E0000 + n is DB n): TIA Portal uploads a block
# by reading its streamed attributes with GetVarSubStreamed.  Going online, downloads, HMI and OPC
# sessions (the public captures) read only system objects below 0x10000 that way.
PLUS_BLOCK_OBJECT_MIN: Final = 0x80000000
# Attributes whose reading is a lookup, not content: ObjectVariableTypeName (downloads read it on
# a block object).
PLUS_METADATA_ATTRIBUTES: Final = frozenset({233})
# Value datatypes whose plain (not array) encoding is an integer: fixed width (bytes, signed), or
# a variable-length quantity (width None).
PLUS_INTEGER_TYPES: dict[int, tuple[int | None, bool]] = {
    0x01: (1, False),  # Bool
    0x02: (1, False),  # USInt
    0x03: (2, False),  # UInt
    0x04: (None, False),  # UDInt
    0x05: (None, False),  # ULInt
    0x06: (1, True),  # SInt
    0x07: (2, True),  # Int
    0x08: (None, True),  # DInt
    0x09: (None, True),  # LInt
    0x0A: (1, False),  # Byte
    0x0B: (2, False),  # Word
    0x0C: (4, False),  # DWord
}
# TLS record content types (RFC 8446 5.1) seen when S7comm-plus runs over TLS (TIA V17+).
TLS_CONTENT_TYPES: Final = {20: "CHANGE_CIPHER_SPEC", 21: "ALERT", 22: "HANDSHAKE", 23: "APPLICATION_DATA"}


def names(enum: type[IntEnum]) -> dict[int, str]:
    """Raw value -> member name of an IntEnum (a plain dict is the fastest lookup)."""
    return {member.value: member.name for member in enum}


COTP_PDU_TYPE_NAMES: Final = names(CotpPduType)
COTP_PARAMETER_NAMES: Final = names(CotpParameter)
DISCONNECT_REASON_NAMES: Final = names(CotpDisconnectReason)
REJECT_CAUSE_NAMES: Final = names(CotpRejectCause)
CONNECTION_TYPE_NAMES: Final = names(ConnectionType)
ROSCTR_NAMES: Final = names(Rosctr)
FUNCTION_NAMES: Final = names(Function)
ERROR_CLASS_NAMES: Final = names(ErrorClass)
AREA_NAMES: Final = names(Area)
TRANSPORT_SIZE_NAMES: Final = names(TransportSize)
DATA_TRANSPORT_SIZE_NAMES: Final = names(DataTransportSize)
SYNTAX_ID_NAMES: Final = names(SyntaxId)
RETURN_CODE_NAMES: Final = names(ReturnCode)
USERDATA_TYPE_NAMES: Final = names(UserdataType)
USERDATA_GROUP_NAMES: Final = names(UserdataGroup)
CPU_MODE_NAMES: Final = names(CpuMode)
SZL_MODE_STATE_NAMES: Final = names(SzlModeState)
PLUS_VERSION_NAMES: Final = names(PlusVersion)
PLUS_OPCODE_NAMES: Final = names(PlusOpcode)
PLUS_FUNCTION_NAMES: Final = names(PlusFunction)


# -- anomaly codes -----------------------------------------------------------------------------------------

TPKT_BAD_VERSION: Final = "tpkt.bad_version"
TPKT_BAD_LENGTH: Final = "tpkt.bad_length"
COTP_BAD_LENGTH: Final = "cotp.bad_length"
COTP_UNKNOWN_PDU_TYPE: Final = "cotp.unknown_pdu_type"
COTP_BAD_PARAMETER: Final = "cotp.bad_parameter"
COTP_REASSEMBLY_OVERFLOW: Final = "cotp.reassembly_overflow"
COTP_UNKNOWN_PAYLOAD: Final = "cotp.unknown_payload"
S7_TRUNCATED_HEADER: Final = "s7comm.truncated_header"
S7_LENGTH_MISMATCH: Final = "s7comm.length_mismatch"
S7_UNKNOWN_ROSCTR: Final = "s7comm.unknown_rosctr"
S7_UNKNOWN_FUNCTION: Final = "s7comm.unknown_function"
S7_ITEM_COUNT_MISMATCH: Final = "s7comm.item_count_mismatch"
S7_TRUNCATED_ITEM: Final = "s7comm.truncated_item"
S7_TRUNCATED_PARAMETER: Final = "s7comm.truncated_parameter"
S7_UNANSWERED_REQUEST: Final = "s7comm.unanswered_request"
S7_ORPHAN_RESPONSE: Final = "s7comm.orphan_response"
S7_PENDING_FULL: Final = "s7comm.pending_full"
S7_USERDATA_REASSEMBLY_OVERFLOW: Final = "s7comm.userdata_reassembly_overflow"
S7_SZL_TRUNCATED: Final = "s7comm.szl_truncated"
S7_BLOCK_TRANSFER_OVERFLOW: Final = "s7comm.block_transfer_overflow"
S7_BLOCK_TRANSFER_INCOMPLETE: Final = "s7comm.block_transfer_incomplete"
PLUS_TRUNCATED: Final = "s7comm_plus.truncated"
PLUS_LENGTH_MISMATCH: Final = "s7comm_plus.length_mismatch"
PLUS_UNKNOWN_VERSION: Final = "s7comm_plus.unknown_version"
PLUS_HELD_REQUEST_CUT: Final = "s7comm_plus.held_request_cut"

register(TPKT_BAD_VERSION, Severity.MEDIUM, "TPKT header version is not 3: bytes skipped to the next TPKT")
register(TPKT_BAD_LENGTH, Severity.MEDIUM, "TPKT length below 7 (TPKT and the shortest COTP header)")
register(COTP_BAD_LENGTH, Severity.MEDIUM, "COTP header length indicator zero, too short or beyond the TPKT")
register(COTP_UNKNOWN_PDU_TYPE, Severity.LOW, "COTP TPDU code that ISO 8073 does not define")
register(COTP_BAD_PARAMETER, Severity.MEDIUM, "COTP connect/disconnect parameter runs past the header")
register(
    COTP_REASSEMBLY_OVERFLOW,
    Severity.MEDIUM,
    "COTP data segments without end of TSDU beyond the 64 KiB cap: the partial payload is dropped",
)
register(
    COTP_UNKNOWN_PAYLOAD,
    Severity.LOW,
    "COTP data neither S7comm (0x32), S7comm-plus (0x72) nor TLS (reported once per flow)",
)
register(S7_TRUNCATED_HEADER, Severity.MEDIUM, "S7comm PDU shorter than its 10/12-byte header")
register(
    S7_LENGTH_MISMATCH,
    Severity.MEDIUM,
    "S7comm parameter and data lengths disagree with the PDU length: decoded as far as the bytes go",
)
register(S7_UNKNOWN_ROSCTR, Severity.MEDIUM, "S7comm PDU type (ROSCTR) other than 1, 2, 3 or 7")
register(S7_UNKNOWN_FUNCTION, Severity.LOW, "S7comm parameter function code not known")
register(
    S7_ITEM_COUNT_MISMATCH,
    Severity.MEDIUM,
    "S7comm item count disagrees with the items in the parameter or data part",
)
register(S7_TRUNCATED_ITEM, Severity.MEDIUM, "S7comm request or data item runs past its part of the PDU")
register(S7_TRUNCATED_PARAMETER, Severity.MEDIUM, "S7comm parameter part too short for its function")
register(S7_UNANSWERED_REQUEST, Severity.LOW, "S7comm request without an answer when the flow ended")
register(
    S7_ORPHAN_RESPONSE,
    Severity.LOW,
    "S7comm answer whose PDU reference matches no request seen on the flow",
)
register(
    S7_PENDING_FULL, Severity.MEDIUM, "too many unanswered S7comm requests on one flow: the oldest is dropped"
)
register(
    S7_USERDATA_REASSEMBLY_OVERFLOW,
    Severity.MEDIUM,
    "multi-part S7comm USERDATA answer beyond the size or count cap: its parts are dropped",
)
register(S7_SZL_TRUNCATED, Severity.LOW, "SZL answer holds fewer bytes than its entry length and count say")
register(
    S7_BLOCK_TRANSFER_OVERFLOW,
    Severity.MEDIUM,
    "S7comm block transfer beyond the per-block size or per-flow transfer cap: not hashed further",
)
register(
    S7_BLOCK_TRANSFER_INCOMPLETE,
    Severity.LOW,
    "S7comm block upload/download still in progress when the flow ended",
)
register(PLUS_TRUNCATED, Severity.MEDIUM, "S7comm-plus PDU shorter than its header or integrity part")
register(
    PLUS_LENGTH_MISMATCH,
    Severity.MEDIUM,
    "S7comm-plus data length disagrees with the COTP payload (neither fragment nor trailer fits)",
)
register(PLUS_UNKNOWN_VERSION, Severity.LOW, "S7comm-plus protocol version byte not known")
register(
    PLUS_HELD_REQUEST_CUT,
    Severity.MEDIUM,
    "S7comm-plus request split over so many fragments (or keep-alives between them) that its function "
    "or request set was given up on: a way to hide a stop or an upload",
)
