"""Roles from behaviour, and a Purdue-level guess from the roles and protocols of an asset.

A role is earned by what a device does on the wire, never by its port alone:

=====================  ===========================================================================
role                   earned by
=====================  ===========================================================================
modbus_client/server   sending Modbus requests / responses
dnp3_master/outstation sending DNP3 requests / responses (link addresses kept beside)
s7_client, s7_plc      sending S7comm (or S7comm-plus) requests / answering them
engineering_station    S7 block transfer, PI service, PLC stop, programmer or block userdata,
                       password use; Modbus UMAS program transfer or start/stop; DNP3 restarts,
                       application start/stop, file transfer, configuration activation
hmi                    polling: the same client reading the same server at least
                       ``POLL_MIN_REQUESTS`` times over at least ``POLL_MIN_SPAN`` seconds
gateway                a MAC that fronts many IPs (router, firewall, NAT; see ``assets``)
=====================  ===========================================================================

The Purdue level is a guess with its reason, for an analyst to confirm: controllers (level 1),
supervisory clients (level 2), hosts speaking only IT protocols (level 4).  No state and no I/O here.
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.dissect.dnp3.constants import BROADCAST_MIN_ADDRESS, UNANSWERED_FUNCTIONS
from ics_monitor.dissect.s7comm.constants import (
    PLUS_BLOCK_OBJECT_MIN,
    PLUS_METADATA_ATTRIBUTES,
    PLUS_OPERATING_STATE_REQ,
)
from ics_monitor.dissect.s7comm.parser import PLUS_FN_GET_VAR_SUBSTREAMED, PLUS_FN_SET_VARIABLE

MODBUS_CLIENT: Final = "modbus_client"
MODBUS_SERVER: Final = "modbus_server"
DNP3_MASTER: Final = "dnp3_master"
DNP3_OUTSTATION: Final = "dnp3_outstation"
S7_CLIENT: Final = "s7_client"
S7_PLC: Final = "s7_plc"
ENGINEERING_STATION: Final = "engineering_station"
HMI: Final = "hmi"
GATEWAY: Final = "gateway"

# event_type -> (role of the client side, role of the server side).
PROTOCOL_ROLES: dict[str, tuple[str, str]] = {
    "modbus": (MODBUS_CLIENT, MODBUS_SERVER),
    "dnp3": (DNP3_MASTER, DNP3_OUTSTATION),
    "s7comm": (S7_CLIENT, S7_PLC),
    "s7comm_plus": (S7_CLIENT, S7_PLC),
}

CONTROLLER_ROLES: Final = frozenset({MODBUS_SERVER, DNP3_OUTSTATION, S7_PLC})
SUPERVISORY_ROLES: Final = frozenset({MODBUS_CLIENT, DNP3_MASTER, S7_CLIENT, HMI, ENGINEERING_STATION})

# Application protocols of the plant floor; everything else an asset speaks counts as IT.
OT_PROTOCOLS: Final = frozenset(
    {
        "modbus",
        "dnp3",
        "s7comm",
        "s7comm_plus",
        "cotp",
        "iec-104",
        "ethernet-ip",
        "ethernet-ip-io",
        "opc-ua",
        "bacnet",
        "profinet-cm",
        "omron-fins",
        "ge-srtp",
        "niagara-fox",
        "niagara-fox-tls",
        "pcworx",
        "proconos",
        "redlion-crimson",
        "modbus-tls",
        "dnp3-tls",
        "opc-ua-tls",
        "melsec",
        "hart-ip",
        "ads",
    }
)

# Polling: enough reads between one client and one server, spread over enough time that a burst
# (a scan, a one-off diagnostic read) does not qualify.
POLL_MIN_REQUESTS: Final = 10
POLL_MIN_SPAN: Final = 10.0

_MODBUS_READS: Final = frozenset({1, 2, 3, 4, 23})
# UMAS: program upload/download (0x30-0x35), start/stop PLC (0x40/0x41), reservation (0x10).
_UMAS_ENGINEERING: Final = frozenset({0x10, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x40, 0x41})
# DNP3: restarts, initialize/start/stop application, file open/delete, activate configuration.
_DNP3_ENGINEERING: Final = frozenset({13, 14, 16, 17, 18, 25, 27, 31})
# S7 job functions the programming device sends: request download (0x1A), start upload, upload,
# end upload (0x1D-0x1F), PI service, PLC stop.  Download block / download ended (0x1B/0x1C) are
# jobs the PLC sends to the programming device during a download: they name the PLC, not an engineer.
_S7_ENGINEERING: Final = frozenset({0x1A, 0x1D, 0x1E, 0x1F, 0x28, 0x29})
# S7 userdata groups: programmer commands (1), block functions (3), security / password (5).
_S7_ENGINEERING_GROUPS: Final = frozenset({1, 3, 5})
_S7_READ_VAR: Final = 0x04
_S7_CYCLIC_GROUP: Final = 2


S7_PORT: Final = 102


def server_sent(fields: dict[str, Any]) -> bool:
    """True when a record's sender is the protocol's server side (PLC, outstation, Modbus server).

    Direction says it for Modbus and DNP3.  S7 is symmetric: in a block download the PLC sends
    jobs to the programming device, so the side on port 102 is the PLC whichever way a job goes.

    These tests take a record's fields (its ``__dict__``): the inventory and the detectors read
    them as dict items, which compiled code does at about half the cost of reading a record's
    attributes (see ``detect.api.BaseDetector``).
    """
    if fields["event_type"] in ("s7comm", "s7comm_plus"):
        src_port = fields["src_port"]
        dst_port = fields["dst_port"]
        if src_port == S7_PORT and dst_port != S7_PORT:
            return True
        if dst_port == S7_PORT and src_port != S7_PORT:
            return False
    return bool(fields["direction"] == "response")


def engineering_request(fields: dict[str, Any], event: Any) -> bool:
    """True when a request changes the controller's program or mode (its sender is an engineer).

    ``event`` is the record whose fields are ``fields`` (the S7comm-plus tests read it).
    """
    if fields["direction"] != "request":
        return False
    kind: str = fields["event_type"]
    if kind == "modbus":
        return bool(fields["function_code"] == 90 and fields.get("sub_function") in _UMAS_ENGINEERING)
    if kind == "dnp3":
        return fields["function_code"] in _DNP3_ENGINEERING
    if kind == "s7comm":
        if fields["function_code"] in _S7_ENGINEERING:
            return True
        userdata = fields.get("userdata")
        return isinstance(userdata, dict) and userdata.get("group") in _S7_ENGINEERING_GROUPS
    if kind == "s7comm_plus":
        return is_plus_mode_change(event) or is_plus_block_read(event)
    return False


def is_plus_mode_change(event: Any) -> bool:
    """An S7comm-plus SetVariable of the CPU's operatingStateReq: TIA Portal's stop and start."""
    return bool(
        event.attribute_id == PLUS_OPERATING_STATE_REQ and event.function_code == PLUS_FN_SET_VARIABLE
    )


def is_plus_block_read(event: Any) -> bool:
    """An S7comm-plus GetVarSubStreamed of a program block's attribute (an upload or comparison).

    Not of its type name (a lookup downloads make), nor when the attribute could not be read.
    """
    object_id = event.object_id
    attribute = event.attribute_id
    return bool(
        object_id is not None
        and object_id >= PLUS_BLOCK_OBJECT_MIN
        and event.function_code == PLUS_FN_GET_VAR_SUBSTREAMED
        and attribute is not None
        and attribute not in PLUS_METADATA_ATTRIBUTES
    )


# DNP3 IIN2 bits that report a rejected request: NO_FUNC_CODE_SUPPORT, OBJECT_UNKNOWN, PARAMETER_ERROR.
DNP3_IIN_ERRORS: Final = 0x0007
_DNP3_RESPONSE: Final = 129
_S7_ACKS: Final[tuple[int, ...]] = (2, 3)  # ACK, ACK_DATA


def error_response(fields: dict[str, Any]) -> bool:
    """A response refusing its request: Modbus exception, DNP3 IIN2 error bits, S7 error class."""
    event_type: str = fields["event_type"]
    if event_type == "modbus":
        return fields["exception_code"] is not None
    if event_type == "dnp3":
        return fields["function_code"] == _DNP3_RESPONSE and bool((fields["iin"] or 0) & DNP3_IIN_ERRORS)
    if event_type == "s7comm":
        return fields["rosctr"] in _S7_ACKS and bool(fields["error_class"])
    return False


def expects_answer(fields: dict[str, Any]) -> bool:
    """Whether a request (its record's fields) is one the server answers.

    Not a Modbus broadcast (unit 0), a DNP3 CONFIRM, no-acknowledgement function or broadcast
    address, an S7 record other than a job or a userdata request, an S7comm-plus notification.
    """
    event_type: str = fields["event_type"]
    if event_type == "modbus":
        return bool(fields["unit_id"] != 0)
    if event_type == "dnp3":
        code = fields["function_code"]
        return bool(
            code is not None and code not in UNANSWERED_FUNCTIONS and fields["dst"] < BROADCAST_MIN_ADDRESS
        )
    if event_type == "s7comm":
        userdata: dict[str, Any] | None = fields["userdata"]
        return bool(fields["rosctr"] == 1 or (userdata is not None and userdata.get("type") == 1))
    return bool(event_type == "s7comm_plus" and fields["opcode"] == 0x31)


def poll_request(fields: dict[str, Any]) -> bool:
    """True for a request that reads process data (what an HMI or SCADA master repeats)."""
    if fields["direction"] != "request":
        return False
    kind: str = fields["event_type"]
    if kind == "modbus":
        return fields["function_code"] in _MODBUS_READS
    if kind == "dnp3":
        return bool(fields["function_code"] == 1)
    if kind == "s7comm":
        if fields["function_code"] == _S7_READ_VAR:
            return True
        userdata = fields.get("userdata")
        return isinstance(userdata, dict) and userdata.get("group") == _S7_CYCLIC_GROUP
    return False


def purdue_guess(roles: set[str] | frozenset[str], protocols: set[str]) -> tuple[int | None, str]:
    """Return (level, reason); level None when the traffic says nothing either way."""
    if roles & CONTROLLER_ROLES:
        return 1, "controller: answers " + ", ".join(sorted(roles & CONTROLLER_ROLES))
    if ENGINEERING_STATION in roles:
        return 2, "engineering station: changes controller programs or modes"
    if roles & SUPERVISORY_ROLES:
        return 2, "supervisory: polls or commands controllers (" + ", ".join(sorted(roles)) + ")"
    if GATEWAY in roles:
        return None, "network device: routes between subnets"
    it_protocols = protocols - OT_PROTOCOLS
    if it_protocols and not protocols & OT_PROTOCOLS:
        return 4, "only IT protocols seen (" + ", ".join(sorted(it_protocols)[:5]) + ")"
    return None, "no role seen yet"
