"""Always-on command detectors: one PDU that changes a controller's state is worth an alert by itself.

S7comm: PLC stop, start (hot/warm/cold restart by the ``P_PROGRAM`` PI service), program download
and upload, block delete, memory compress, copy RAM to ROM, block activation, password use and
clock setting.  S7comm-plus: downloads (request data streamed in many fragments), uploads (a
program block's streamed attributes read), CPU stop and start (a SetVariable of the CPU's
operating-state attribute), recognisable from metadata.  DNP3: cold/warm restart, stop/start
application, initialize data/application, disable unsolicited, file open/write/delete,
configuration save/activate, authentication errors, writes and controls sent to a broadcast
address.  Modbus: FC 8 restart communications / force listen-only / clear counters, Schneider UMAS
stop/start/program transfer, writes to unit id 0 (broadcast).

Each detector maps the request's function (and sub-function) to a rule id with one dict lookup;
everything else is dismissed after two comparisons.  The dedup key is the client and server (and
link addresses for DNP3), so a burst of the same command from one host is one alert with a count.

What the device answered decides what the alert means: a PLC that refused a stop for want of the
password was probed, one that acknowledged it stopped.  An S7comm, DNP3 or Modbus command alert
waits for the answer to its request (paired by the dissectors: ``request_frame``); when it comes,
the alert goes out again, same id, with ``evidence.outcome`` (accepted or refused, the error named,
the answer's frame) and a sentence saying so (``answer``, ``_take_answer``).  Unanswered, the alert stays as it was.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from ics_monitor.alerts.record import MAX_FRAMES
from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter, client_endpoints, is_truncated
from ics_monitor.dissect.dnp3.constants import BROADCAST_MIN_ADDRESS
from ics_monitor.dissect.s7comm.constants import PLUS_REQUESTED_STATES, PLUS_STATE_STOP, UNKNOWN
from ics_monitor.inventory.baseline import MODBUS_WRITE_FUNCTIONS
from ics_monitor.inventory.roles import DNP3_IIN_ERRORS, is_plus_block_read, is_plus_mode_change

ACCEPTED: Final = "accepted"
REFUSED: Final = "refused"
_S7_ACKS: Final = (2, 3)  # ACK, ACK_DATA
_DNP3_RESPONSE: Final = 129
# A DNP3 answer refuses its request by an IIN2 error bit, or by ALREADY_EXECUTING (IIN2.4: the
# outstation is still carrying out an earlier request of that kind and does not take this one).
_DNP3_ALREADY_EXECUTING: Final = 0x0010
_DNP3_REFUSALS: Final = DNP3_IIN_ERRORS | _DNP3_ALREADY_EXECUTING
_DNP3_IIN_ERROR_NAMES: Final = (
    "NO_FUNC_CODE_SUPPORT",
    "OBJECT_UNKNOWN",
    "PARAMETER_ERROR",
    "ALREADY_EXECUTING",
)
_UMAS: Final = 90
_UMAS_OK: Final = 0xFE
# What pairs an answer with its request beside its frame (several requests may share a frame):
# the Modbus/TCP transaction id, the S7 PDU reference, the DNP3 application sequence number.
_PAIRING: Final = {"modbus": "transaction_id", "s7comm": "pdu_ref", "dnp3": "sequence"}


def pairing(event: Any) -> Any:
    """The id a request and its answer share (see ``_PAIRING``), or None."""
    name = _PAIRING.get(event.event_type)
    return None if name is None else event.__dict__.get(name)


def answer(event: Any) -> tuple[dict[str, Any], str] | None:
    """What a response says of its request: (``evidence.outcome``, a sentence), or None.

    Refused: a Modbus exception or a UMAS (FC 90) status other than OK, DNP3 IIN2 error bits
    (function not supported, object unknown, parameter error) or ALREADY_EXECUTING, an S7 error
    class in an ACK/ACK_DATA header or an error code in a USERDATA response's parameters.
    Accepted: a response of that kind without them.  None: not a response
    the protocol pairs with a request (a DNP3 unsolicited response, an S7 acknowledgement without
    data of another kind).
    """
    fields: dict[str, Any] = event.__dict__
    event_type: str = fields["event_type"]
    frame = fields["frame"]
    code: Any = None
    reason: Any = None
    if event_type == "modbus":
        code = fields["exception_code"]
        if code is not None:
            reason = fields["exception"] or f"exception {code}"
        elif fields["function_code"] == _UMAS and fields.get("status") not in (None, _UMAS_OK):
            # UMAS answers a refusal with a normal FC 90 reply whose status byte says ERROR.
            code = fields["status"]
            reason = f"UMAS status {fields.get('status_name') or 'not OK'}"
    elif event_type == "dnp3":
        if fields["function_code"] != _DNP3_RESPONSE:
            return None
        iin = fields["iin"] or 0
        if iin & _DNP3_REFUSALS:
            code = iin
            names = [name for name in fields["iin_names"] or () if name in _DNP3_IIN_ERROR_NAMES]
            reason = ", ".join(names) or f"IIN 0x{iin:04x}"
    elif event_type == "s7comm":
        rosctr = fields["rosctr"]
        if rosctr in _S7_ACKS:
            if fields["error_class"]:
                code = (fields["error_class"] << 8) | (fields["error_code"] or 0)
                reason = fields["error_name"] or "error"
        elif rosctr == S7_USERDATA:
            userdata: dict[str, Any] | None = fields["userdata"]
            if userdata is None:
                return None
            if userdata.get("error_code"):
                code = userdata.get("error_code")
                reason = userdata.get("error_name") or "error"
        else:
            return None
    else:
        return None
    if reason is None:
        outcome: dict[str, Any] = {"result": ACCEPTED, "response_frame": frame}
        return outcome, f"The device accepted it: its answer (frame {frame}) reports no error."
    outcome = {"result": REFUSED, "response_frame": frame, "code": code, "reason": reason}
    if event_type != "modbus":
        shown = f"0x{code:04x}"
    elif fields["function_code"] == _UMAS:
        shown = f"0x{code:02x}"
    else:
        shown = str(code)
    return outcome, f"The device refused it: {reason} ({shown}) in its answer (frame {frame})."


def _take_answer(event: Any, out: Emitter) -> None:
    """A response: the alert raised on its request, if one waits, gets the answer."""
    request_frame = event.request_frame
    if request_frame is not None:
        pair = pairing(event)
        if out.awaited(event.flow_id, request_frame, pair):
            said = answer(event)
            if said is not None:
                out.outcome(event.flow_id, request_frame, pair, said[0], said[1])


# -- S7comm ---------------------------------------------------------------------------------------------

S7_JOB: Final = 1
S7_ACK_DATA: Final = 3
MAX_S7_JOBS: Final = 4096
S7_USERDATA: Final = 7
S7_PI_SERVICE: Final = 0x28
S7_JOB_RULES: Final = {
    0x29: "ICS-1001",  # PLC_STOP
    0x1A: "ICS-1003",  # REQUEST_DOWNLOAD
    0x1D: "ICS-1004",  # START_UPLOAD
}
S7_PI_RULES: Final = {
    "P_PROGRAM": "ICS-1002",  # start (hot/warm restart; "C" argument: cold restart)
    "_DELE": "ICS-1005",
    "_GARB": "ICS-1006",
    "_MODU": "ICS-1007",
    "_INSE": "ICS-1010",
    "_INS2": "ICS-1010",
}
S7_USERDATA_REQUEST: Final = 1
S7_USERDATA_RULES: Final[dict[tuple[Any, Any], str]] = {
    (5, 1): "ICS-1008",  # SECURITY / PLC_PASSWORD
    (5, 2): "ICS-1008",  # SECURITY / CLEAR_PASSWORD
    (7, 2): "ICS-1009",  # TIME_FUNCTIONS / SET_CLOCK
    (7, 4): "ICS-1009",  # TIME_FUNCTIONS / SET_CLOCK_2
    (1, 0x0C): "ICS-1011",  # PROGRAMMER_COMMANDS / MEMORY_RESET
    (1, 0x09): "ICS-1012",  # PROGRAMMER_COMMANDS / FORCE
}


class S7Commands(BaseDetector):
    """S7comm requests that stop, start, reprogram or re-time a PLC.

    The PLC's answer names the function it answers (ACK_DATA): a stop, download or upload it
    answered without its request seen as one (lost by the capture, or disguised in the TCP stream:
    segments whose copies differ, an acknowledgement that makes the monitor skip the bytes) is
    reported from that answer.
    """

    name = "s7_commands"
    rule_ids = tuple(f"ICS-{number}" for number in range(1001, 1014))
    event_types = frozenset({"s7comm"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        # (flow, PDU reference) of the S7_JOB_RULES requests seen, until their answer (not by
        # frame: an answer the dissector could not pair still names its PDU reference).
        self.jobs: BoundedDict = BoundedDict(MAX_S7_JOBS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Match JOB functions, PI services and USERDATA requests; answers to those alerted on."""
        if event.direction == "response":
            if (
                event.rosctr == S7_ACK_DATA
                and event.function_code in S7_JOB_RULES
                and self.jobs.pop((event.flow_id, event.pdu_ref), None) is None
            ):
                self._answered_unseen(event, out)
            _take_answer(event, out)
            return
        rosctr = event.rosctr
        fields: dict[str, Any] = {}  # what the explanation names (the evidence keeps the decoded structures)
        key_suffix = ""
        if rosctr == S7_JOB:
            code = event.function_code
            if code == S7_PI_SERVICE:
                rule_id = S7_PI_RULES.get(event.pi_service or "")
                if rule_id is None and (event.pi_service is None or event.pi_service_name == UNKNOWN):
                    # A program invocation whose name the capture cut (a short snap length) or
                    # that no table names: as dangerous as a start or a block activation until
                    # shown otherwise.  Named NC services (a Sinumerik login) are not these.
                    rule_id = "ICS-1013"
                    named = event.pi_service
                    if named is not None:
                        fields["service"] = f"an unknown service named {named!r}"
                    elif is_truncated(event):
                        fields["service"] = "its name cut by the capture"
                    else:
                        fields["service"] = "its parameters hold no readable name (malformed)"
                    key_suffix = f":pi:{named}" if named is not None else ":pi"
            else:
                rule_id = S7_JOB_RULES.get(code)
                if rule_id is not None:
                    self.jobs[(event.flow_id, event.pdu_ref)] = True
                    fields["seen"] = ""
            if rule_id is None:
                return
            evidence: dict[str, Any] = {"function_code": code, "function": event.function}
            if event.pi_service is not None:
                evidence["pi_service"] = event.pi_service
                evidence["pi_service_name"] = event.pi_service_name
                if event.pi_arguments is not None:  # None: withheld (a password among them) or cut
                    arguments = list(event.pi_arguments)[:8]
                    if arguments:
                        evidence["pi_arguments"] = arguments
                    fields["pi_arguments"] = [
                        s7_block_label(a) if isinstance(a, dict) else a for a in arguments
                    ]
            if event.block:
                evidence["block"] = event.block
                fields["block"] = s7_block_label(event.block)
            if rule_id == "ICS-1002":
                # A cold restart resets retentive data where a warm or hot one keeps it: its own
                # alert, not a count on the other's.
                kind = fields["start_kind"] = evidence["start_kind"] = s7_start_kind(event.pi_arguments)
                key_suffix = f":{kind.split()[0]}"
        elif rosctr == S7_USERDATA:
            userdata: dict[str, Any] | None = event.userdata
            if userdata is None or userdata.get("type") != S7_USERDATA_REQUEST:
                return
            rule_id = S7_USERDATA_RULES.get((userdata.get("group"), userdata.get("subfunction")))
            if rule_id is None:
                return
            evidence = {
                "userdata_group": userdata.get("group"),
                "userdata_group_name": userdata.get("group_name"),
                "subfunction": userdata.get("subfunction"),
                "subfunction_name": userdata.get("subfunction_name"),
            }
            if event.clock:
                evidence["clock"] = event.clock
            # Per operation: a password cleared is not a count on one sent.
            key_suffix = f":{userdata.get('subfunction')}"
        else:
            return
        out.fire(
            rule_id,
            f"{event.src_ip}>{event.dst_ip}{key_suffix}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence=evidence,
            fields=fields,
            awaits=True,
            pairing=event.pdu_ref,
        )

    def _answered_unseen(self, event: Any, out: Emitter) -> None:
        """The PLC answered a stop, download or upload whose request was not seen as one."""
        code = event.function_code
        answered_unseen(
            S7_JOB_RULES[code],
            event,
            out,
            f"the PLC's answer (ACK_DATA for function 0x{code:02x}, frame {event.frame})",
            f"PDU reference {event.pdu_ref}",
            {"function_code": code, "function": event.function},
            {"block": "not known"},
        )


def answered_unseen(
    rule_id: str,
    event: Any,
    out: Emitter,
    shown_by: str,
    pairing_text: str,
    evidence: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    """``rule_id`` for a command a device answered, its request not seen as that command.

    The response names the command (an S7 ACK_DATA its function, a Modbus FC 8 echo its
    sub-function): a request the capture lost, or one hidden from the monitor in the TCP stream
    (copies of a segment with different bytes, an acknowledgement that makes it skip the bytes),
    is still shown by the answer.  The alert is the client's, as the request's would be, under the
    same dedup key; ``shown_by`` names the answer, ``pairing_text`` the id it echoes.
    """
    request_frame = event.request_frame
    if request_frame is None:
        how = "its request was not seen (lost by the capture, or hidden from the monitor in the TCP stream)"
    else:
        how = (
            f"its request (frame {request_frame}, {pairing_text}) read here as another command (the"
            " monitor and the device read different bytes: a disguise in the TCP stream, or a capture"
            " error)"
        )
    said = answer(event)
    evidence = {
        **evidence,
        "request_seen": False,
        "request_frame": request_frame,
        "answer_frame": event.frame,
    }
    sentence = ""
    if said is not None:
        evidence["outcome"] = said[0]
        sentence = f" {said[1]}"
    out.fire(
        rule_id,
        f"{event.dst_ip}>{event.src_ip}",  # the client's, as for the request
        ts=event.ts,
        frames=(event.frame,) if request_frame is None else (request_frame, event.frame),
        source=event,
        endpoints=client_endpoints(event),
        evidence=evidence,
        fields={**fields, "seen": f" Only {shown_by} shows it: {how}.{sentence}"},
    )


def s7_start_kind(arguments: Any) -> str:
    """What a ``P_PROGRAM`` start asks for: argument ``C`` a cold restart, none a warm (or hot) one.

    ``arguments`` None: not recorded (withheld or cut by the capture), so not known.
    """
    if arguments is None:
        return "restart"
    for argument in arguments:
        if isinstance(argument, str) and argument.strip().upper() == "C":
            return "cold restart"
    return "warm or hot restart"


def s7_block_label(block: dict[str, Any]) -> str:
    """A block as engineers name it: ``OB1 (passive, 90 bytes of load memory)``.

    From the dissector's block descriptor (type, number, file system, lengths); what is missing
    is left out.  The file system says which copy: ``P`` the passive one a download writes,
    ``A`` the active one the PLC runs.
    """
    kind, number = block.get("type"), block.get("number")
    if kind is not None and number is not None:
        name = f"{kind}{number}"
    else:
        name = str(block.get("file_name") or kind or "?")
    details = []
    filesystem = block.get("filesystem_name")
    if filesystem:
        details.append(str(filesystem).lower())
    length = block.get("load_memory_length")
    if isinstance(length, int):
        details.append(f"{length} bytes of load memory")
    return f"{name} ({', '.join(details)})" if details else name


# -- S7comm-plus ------------------------------------------------------------------------------------------

PLUS_REQUEST_FRAGMENTS: Final = frozenset({"first", "inner", "last"})
MAX_PLUS_FLOWS: Final = 16_384


class S7PlusDownload(BaseDetector):
    """ICS-1101: an S7comm-plus client streams fragmented request data into the PLC (a download).

    Only S7comm-plus metadata is decoded.  TIA Portal sends program and hardware configuration as
    large objects split over many fragments; ordinary sessions (going online, HMI reads, uploads,
    stop/start) send short single-fragment requests.  Stop and start have their own detector.
    """

    name = "s7plus_download"
    rule_ids = ("ICS-1101",)
    event_types = frozenset({"s7comm_plus"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.min_fragments = int(context.rules.param("ICS-1101", "min_fragments"))
        self.counts: BoundedDict = BoundedDict(MAX_PLUS_FLOWS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count request fragments per flow; fire once when the count reaches the threshold."""
        if event.direction != "request" or event.fragment not in PLUS_REQUEST_FRAGMENTS:
            return
        flow_id = event.flow_id
        count = self.counts.get(flow_id, 0) + 1
        self.counts[flow_id] = count
        if count != self.min_fragments:
            return
        out.fire(
            "ICS-1101",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={"request_fragments": count, "session_id": event.session_id, "version": event.version},
        )


class S7PlusOperatingState(BaseDetector):
    """ICS-1102 / ICS-1103: TIA Portal (or a tool speaking as it) stops or starts an S7-1200/1500.

    S7comm-plus changes the CPU's operating mode with a SetVariable request whose request set
    names the CPU execution unit's ``operatingStateReq`` attribute (id 2167): 1 asks for STOP, 3
    for RUN.  Other SetVariable requests (session set-up, subscriptions) name other attributes.
    A request whose value could not be read still names the attribute: it is reported as a mode
    change of unknown direction rather than dropped.
    """

    name = "s7plus_operating_state"
    rule_ids = ("ICS-1102", "ICS-1103")
    event_types = frozenset({"s7comm_plus"})
    directions = frozenset({"request"})

    def on_event(self, event: Any, out: Emitter) -> None:
        """Fire on a SetVariable of operatingStateReq."""
        if not is_plus_mode_change(event):
            return
        value = event.value
        state = "unknown" if value is None else PLUS_REQUESTED_STATES.get(value, f"state {value}")
        out.fire(
            "ICS-1102" if value == PLUS_STATE_STOP else "ICS-1103",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "object_id": event.object_id,
                "object_name": event.object_name,
                "attribute_id": event.attribute_id,
                "attribute": event.attribute,
                "requested_state": value,
                "requested_state_name": state,
                "session_id": event.session_id,
                "version": event.version,
            },
        )


class S7PlusUpload(BaseDetector):
    """ICS-1104: an S7comm-plus client reads a program block's streamed attributes (an upload).

    TIA Portal uploads a block (to back it up, compare it online, or take the program) with
    GetVarSubStreamed requests on the block's object, whose id lies in the block range.  In the
    public captures going online, downloads, HMI and OPC sessions read only system objects that
    way, or a block object's type name (a lookup, left out).  The attribute ids are
    not documented: the rule says "upload or online comparison" and stays at medium severity.
    One alert per client and PLC, the requests counted.
    """

    name = "s7plus_upload"
    rule_ids = ("ICS-1104",)
    event_types = frozenset({"s7comm_plus"})
    directions = frozenset({"request"})

    def on_event(self, event: Any, out: Emitter) -> None:
        """Fire on a GetVarSubStreamed request for a block object."""
        if not is_plus_block_read(event):
            return
        object_id = event.object_id
        out.fire(
            "ICS-1104",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "object_id": object_id,
                "block_object": f"0x{object_id:08X}",
                "attribute_id": event.attribute_id,
                "session_id": event.session_id,
                "version": event.version,
            },
        )


# -- DNP3 -------------------------------------------------------------------------------------------------

DNP3_FUNCTION_RULES: Final = {
    13: "ICS-1201",  # COLD_RESTART
    14: "ICS-1202",  # WARM_RESTART
    18: "ICS-1203",  # STOP_APPL
    17: "ICS-1204",  # START_APPL
    15: "ICS-1205",  # INITIALIZE_DATA
    16: "ICS-1205",  # INITIALIZE_APPL
    21: "ICS-1206",  # DISABLE_UNSOLICITED
    27: "ICS-1207",  # DELETE_FILE
    25: "ICS-1208",  # OPEN_FILE
    19: "ICS-1211",  # SAVE_CONFIG
    31: "ICS-1211",  # ACTIVATE_CONFIG
}
DNP3_WRITE: Final = 2
# Secure Authentication requests (AUTHENTICATE_REQ, AUTH_REQ_NO_ACK), and the IIN2.0 bit of an
# outstation that does not support a function (IEEE 1815 clause 4.2.2.7 and 7.5.2.3).
DNP3_AUTH_REQUESTS: Final = frozenset({32, 33})
DNP3_NO_FUNC_CODE_SUPPORT: Final = 0x0001
# Authentication requests waiting for their answer, at most.
MAX_AUTH_REQUESTS: Final = 1024
DNP3_ENABLE_UNSOLICITED: Final = 20
DNP3_DISABLE_UNSOLICITED: Final = 21
DNP3_DISABLE_UNSOLICITED_RULE: Final = "ICS-1206"
# Disables waiting for their re-enable at once (one per master, outstation and link addresses); past
# it a disable is reported at once.
MAX_HELD_DISABLES: Final = 4096
# Requests of a held disable's association waiting for the outstation's answer, at most.
MAX_PENDING_ANSWERS: Final = 16
# A master's start-up requests on a new connection (a disable among them may be re-enabled), and
# the flows whose requests are counted up to that.
STARTUP_REQUESTS: Final = 4
MAX_DNP3_FLOWS: Final = 65_536
# Class objects of the unsolicited-reporting functions: g60v2, v3, v4 are classes 1, 2, 3.
DNP3_CLASS_GROUP: Final = 60
DNP3_EVENT_CLASSES: Final = {2: 1, 3: 2, 4: 3}
ALL_EVENT_CLASSES: Final = frozenset(DNP3_EVENT_CLASSES.values())
DISABLE_MID_SESSION: Final = "during a session, not as a master's start-up does"
DISABLE_UNHELD: Final = "reported without waiting for a re-enable (too many disables pending)"
DISABLE_NO_WAIT: Final = "reported without waiting for a re-enable (reenable_seconds is 0)"
# ASSIGN_CLASS (function 22): a class header (g60v1 class 0 ... g60v4 class 3), then the object
# headers of the points it puts in that class.  Class 0 means static data only: those points'
# changes are no longer reported as events (IEEE 1815 clause 4.4.4).
DNP3_ASSIGN_CLASS: Final = 22
DNP3_CLASS_0_VARIATION: Final = 1
DNP3_CLASS_0_RULE: Final = "ICS-1213"
# Qualifiers of a bare count of points (8 and 16 bit), indexes from 0; what an alert lists.
DNP3_COUNT_QUALIFIERS: Final = frozenset({0x07, 0x08})
MAX_CLASS_0_HEADERS: Final = 16
MAX_CLASS_0_INDEXES: Final = 8
DNP3_FILE_GROUP: Final = 70
DNP3_AUTH_GROUP: Final = 120
DNP3_AUTH_ERROR_VARIATION: Final = 7
# The rule of writes and controls sent to a broadcast address (its explanation says "broadcast").
DNP3_BROADCAST_RULE: Final = "ICS-1210"
# Link addresses 0xFFFD-0xFFFF are broadcasts (IEEE 1815 9.2.5.3); READ and CONFIRM are harmless.
DNP3_BROADCAST_MIN: Final = BROADCAST_MIN_ADDRESS
DNP3_HARMLESS_BROADCAST: Final = frozenset({0, 1})


class Dnp3Commands(BaseDetector):
    """DNP3 requests that restart, stop, re-initialise, reconfigure or silence an outstation.

    DISABLE_UNSOLICITED (ICS-1206) is also the first step of a master's start-up on every new
    connection: disable, integrity poll, ENABLE_UNSOLICITED, within a second or two.  So a disable
    among the first ``STARTUP_REQUESTS`` requests of its session (its flow and link addresses: a
    master starts up each outstation of a multi-drop line sharing one connection in turn) is held
    for ``reenable_seconds`` of capture time: re-enabled by the same master for the same
    outstation by then, it was that start-up (no alert); otherwise the alert goes out then, with
    its own time, frames and the number of disables held (at the end of input at the latest).
    A disable later in a session is reported at once, re-enabled or not.
    """

    name = "dnp3_commands"
    rule_ids = tuple(f"ICS-{number}" for number in range(1201, 1214))
    event_types = frozenset({"dnp3"})
    wants_time = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.reenable_seconds = float(context.rules.param("ICS-1206", "reenable_seconds"))
        # (master ip, outstation ip, master link, outstation link) -> the disables held
        self.held: dict[tuple[Any, ...], _HeldDisable] = {}
        # Requests seen per session (flow, master link, outstation link), counted up to
        # STARTUP_REQUESTS.
        self.requests: BoundedDict = BoundedDict(MAX_DNP3_FLOWS)
        # (master ip, outstation ip, master link, outstation link, sequence) -> a Secure
        # Authentication request waiting for its answer (ICS-1212).
        self.auth_requests: BoundedDict = BoundedDict(MAX_AUTH_REQUESTS)
        # Disables and ENABLE requests numbered as they come: what came after what, even for two
        # requests of one frame (a TCP segment carrying both), which frame numbers cannot tell.
        self.order = 0

    def on_event(self, event: Any, out: Emitter) -> None:
        """Match the application function, file writes, broadcasts and authentication errors."""
        fields: dict[str, Any] = event.__dict__  # read as its dict (see ``BaseDetector``)
        code = fields["function_code"]
        if code is None:
            return
        objects = fields["objects"]
        if fields["direction"] == "request":
            session = (fields["flow_id"], fields["src"], fields["dst"])
            requests = self.requests
            seen = requests.get(session, 0)
            if seen < STARTUP_REQUESTS:
                requests[session] = seen + 1
            rule_id = DNP3_FUNCTION_RULES.get(code)
            if (
                rule_id is None
                and code == DNP3_WRITE
                and any(o.get("group") == DNP3_FILE_GROUP for o in objects)
            ):
                rule_id = "ICS-1208"
            if rule_id == DNP3_DISABLE_UNSOLICITED_RULE:
                if self.reenable_seconds > 0 and seen < STARTUP_REQUESTS:
                    self._hold(event, out)
                else:
                    context = DISABLE_MID_SESSION if seen >= STARTUP_REQUESTS else DISABLE_NO_WAIT
                    self._fire(rule_id, event, out, {"disable_context": context})
            elif rule_id is not None:
                self._fire(rule_id, event, out)
            elif code == DNP3_ENABLE_UNSOLICITED and self.held and fields["crc_ok"]:
                self._enabling(event)
            elif code == DNP3_ASSIGN_CLASS:
                unreported = _class_0_points(objects)
                if unreported:
                    # Per point set: a second request that silences other points is an alert of
                    # its own, not one more count on the first one's list.
                    self._fire(
                        DNP3_CLASS_0_RULE,
                        event,
                        out,
                        {"class_0_points": unreported},
                        fields={"points": ", ".join(unreported)},
                        key_suffix=":" + ";".join(unreported),
                    )
            elif code in DNP3_AUTH_REQUESTS:
                key = (fields["src_ip"], fields["dst_ip"], fields["src"], fields["dst"], fields["sequence"])
                self.auth_requests[key] = event
            if fields["dst"] >= DNP3_BROADCAST_MIN and code not in DNP3_HARMLESS_BROADCAST:
                # Outstations answer no broadcast; per function: a broadcast restart is not one
                # more count on a broadcast write.
                self._fire(DNP3_BROADCAST_RULE, event, out, awaits=False, key_suffix=f":{code}")
        else:
            _take_answer(event, out)
            if fields["request_function_code"] in DNP3_AUTH_REQUESTS and self.auth_requests:
                self._auth_answered(event, out)
            if self.held and fields["request_function_code"] in (
                DNP3_ENABLE_UNSOLICITED,
                DNP3_DISABLE_UNSOLICITED,
            ):
                self._answered(event)
        for header in objects:
            obj: dict[str, Any] = header  # typed: a direct dict lookup, compiled
            if obj.get("group") == DNP3_AUTH_GROUP and obj.get("variation") == DNP3_AUTH_ERROR_VARIATION:
                self._fire(
                    "ICS-1209",
                    event,
                    out,
                    {"object": f"g{DNP3_AUTH_GROUP}v{DNP3_AUTH_ERROR_VARIATION}"},
                    awaits=False,  # an error object: itself an answer
                )
                break

    def _auth_answered(self, event: Any, out: Emitter) -> None:
        """ICS-1212: an outstation answered a Secure Authentication request "function not supported".

        Its own master never sends one to an outstation without Secure Authentication: a
        fuzzer or an exploitation framework probing the device's security does (and a master set
        up for another device).  Where Secure Authentication runs, the requests are answered and
        this stays quiet.
        """
        request = self.auth_requests.pop(
            (event.dst_ip, event.src_ip, event.dst, event.src, event.sequence), None
        )
        if request is None or not (event.iin or 0) & DNP3_NO_FUNC_CODE_SUPPORT:
            return
        self._fire(
            "ICS-1212",
            request,
            out,
            {"answer": "NO_FUNC_CODE_SUPPORT (IIN2.0)", "answer_frame": event.frame},
            frames=(request.frame, event.frame),
            awaits=False,  # answered: refused
        )

    def _hold(self, event: Any, out: Emitter) -> None:
        self.order += 1
        key = (event.src_ip, event.dst_ip, event.src, event.dst)
        held = self.held.get(key)
        if held is None:
            if len(self.held) >= MAX_HELD_DISABLES:
                # No room to wait: reported at once.
                self._fire(DNP3_DISABLE_UNSOLICITED_RULE, event, out, {"disable_context": DISABLE_UNHELD})
                return
            held = self.held[key] = _HeldDisable(event, event.ts + self.reenable_seconds)
        held.add(event, self.order)

    def _enabling(self, event: Any) -> None:
        """An ENABLE_UNSOLICITED request (CRCs good) to a held disable's outstation: note its classes.

        They count as reporting again only once the outstation accepts the request (``_answered``).
        """
        self.order += 1
        held = self.held.get((event.src_ip, event.dst_ip, event.src, event.dst))
        if held is not None and len(held.enabling) < MAX_PENDING_ANSWERS:
            held.enabling[event.sequence] = (_event_classes(event.objects), self.order)

    def _answered(self, event: Any) -> None:
        """The outstation's answer to a held disable or to an ENABLE_UNSOLICITED after it.

        Accepted (good CRCs, no IIN2 error bit), an ENABLE's classes report again: the held disable
        is that start-up once every class it disabled does (an ENABLE of fewer classes, of none, or
        refused leaves it held).  The outstation takes requests in order: a class disabled again
        after the ENABLE request (sent before its answer came) stays disabled.  Refused, a disable silenced nothing: once every held disable is
        refused (an outstation without unsolicited reporting), nothing is left to report.
        """
        key = (event.dst_ip, event.src_ip, event.dst, event.src)
        held = self.held.get(key)
        if held is None or not event.crc_ok:
            return
        refused = bool((event.iin or 0) & _DNP3_REFUSALS)
        sequence = event.sequence
        if event.request_function_code == DNP3_ENABLE_UNSOLICITED:
            enabling = held.enabling.pop(sequence, None)
            if enabling is None or refused:
                return
            classes, order = enabling
            disabled_at = held.disabled_at
            held.classes -= {number for number in classes if disabled_at.get(number, order) < order}
            if not held.classes:
                del self.held[key]
        elif refused and sequence in held.sequences:
            held.sequences.discard(sequence)
            held.refused += 1
            if held.refused >= held.count:
                del self.held[key]

    def advance(self, ts: float, out: Emitter) -> None:
        """Report the disables their master did not re-enable in time."""
        if self.held:
            for key in [key for key, held in self.held.items() if held.deadline <= ts]:
                self._release(self.held.pop(key), out)

    def finish(self, out: Emitter) -> None:
        """End of input: the disables still held were not re-enabled."""
        for held in self.held.values():
            self._release(held, out)
        self.held.clear()

    def _release(self, held: _HeldDisable, out: Emitter) -> None:
        event, classes = held.event, sorted(held.classes)
        self._fire(
            DNP3_DISABLE_UNSOLICITED_RULE,
            event,
            out,
            {
                "disable_context": f"among the first {STARTUP_REQUESTS} requests to the outstation on its "
                "connection, and "
                f"class{'es' if len(classes) > 1 else ''} {', '.join(map(str, classes))} not re-enabled by "
                f"{event.src_ip} (an ENABLE_UNSOLICITED the outstation accepted) within "
                f"{self.reenable_seconds:g} s",
                "not_reenabled_classes": classes,
            },
            count=held.count,
            last_ts=held.last_ts,
            frames=tuple(held.frames),
            # Its own alert, apart from the disables reported at once on that association.
            key_suffix=":connection-start",
            awaits=False,  # raised after the fact: the answers went by
        )

    @staticmethod
    def _fire(
        rule_id: str,
        event: Any,
        out: Emitter,
        extra: dict[str, Any] | None = None,
        *,
        count: int = 1,
        last_ts: float | None = None,
        frames: tuple[int, ...] | None = None,
        key_suffix: str = "",
        awaits: bool = True,
        fields: dict[str, Any] | None = None,
    ) -> None:
        evidence: dict[str, Any] = {
            "function_code": event.function_code,
            "function": event.function,
            "link_src": event.src,
            "link_dst": event.dst,
            "sequence": event.sequence,
            "objects": [f"g{o.get('group')}v{o.get('variation')}" for o in event.objects[:8]],
        }
        if extra:
            evidence.update(extra)
        out.fire(
            rule_id,
            f"{event.src_ip}>{event.dst_ip}:{event.src}>{event.dst}{key_suffix}",
            ts=event.ts,
            frames=frames or (event.frame,),
            source=event,
            evidence=evidence,
            # A broadcast address says so where the explanation names the link address.
            fields=(
                {**(fields or {}), "link_dst": f"{event.dst}, broadcast"}
                if event.dst >= DNP3_BROADCAST_MIN and rule_id != DNP3_BROADCAST_RULE
                else fields
            ),
            count=count,
            last_ts=last_ts,
            # No outstation answers a broadcast (IEEE 1815 link addresses 0xFFFD-0xFFFF).
            awaits=awaits and event.dst < DNP3_BROADCAST_MIN,
            pairing=event.sequence,
        )


def _class_0_points(objects: Any) -> list[str]:
    """The object headers an ASSIGN_CLASS request puts in class 0.

    ``g1v0 all`` (qualifier 6), ``g30v0 3-7`` (a start-stop range), ``g30v0 4,5,9`` (indexes),
    ``g30v0 first 12`` (a count, qualifiers 7 and 8: indexes from 0); the first
    MAX_CLASS_0_HEADERS headers, then how many more.
    """
    points: list[str] = []
    more = 0
    assigning_class_0 = False
    for header in objects:
        obj: dict[str, Any] = header
        group = obj.get("group")
        if group == DNP3_CLASS_GROUP:
            assigning_class_0 = obj.get("variation") == DNP3_CLASS_0_VARIATION
            continue
        if not assigning_class_0:
            continue
        if len(points) >= MAX_CLASS_0_HEADERS:
            more += 1
            continue
        start, stop = obj.get("start"), obj.get("stop")
        indexes = obj.get("points")
        if start is not None and stop is not None:
            span = f"{start}-{stop}" if start != stop else f"{start}"
        elif indexes:
            span = ",".join(str(point.get("index")) for point in indexes[:MAX_CLASS_0_INDEXES])
            if len(indexes) > MAX_CLASS_0_INDEXES:
                span += f" (+{len(indexes) - MAX_CLASS_0_INDEXES} more)"
        elif obj.get("qualifier") in DNP3_COUNT_QUALIFIERS and obj.get("count"):
            span = f"first {obj.get('count')}"
        else:
            span = "all"
        points.append(f"g{group}v{obj.get('variation')} {span}")
    if more:
        points.append(f"+{more} more headers")
    return points


class _HeldDisable:
    """DISABLE_UNSOLICITED requests of one master to one outstation, waiting for a re-enable."""

    __slots__ = (
        "classes",
        "count",
        "deadline",
        "disabled_at",
        "enabling",
        "event",
        "frames",
        "last_ts",
        "refused",
        "sequences",
    )

    def __init__(self, event: Any, deadline: float) -> None:
        self.event = event  # the first
        self.deadline = deadline
        self.count = 0
        self.refused = 0
        self.last_ts = event.ts
        self.frames: list[int] = []
        # The classes disabled (and when each one's latest disable came: ``Dnp3Commands.order``),
        # the disables' sequence numbers awaiting their answer, and the ENABLE requests awaiting
        # theirs (sequence -> classes and when the request came).
        self.classes: set[int] = set()
        self.disabled_at: dict[int, int] = {}
        self.sequences: set[int] = set()
        self.enabling: dict[int, tuple[set[int], int]] = {}

    def add(self, event: Any, order: int) -> None:
        """One more disable, the ``order``-th request held or enabling (no class named: all)."""
        self.count += 1
        self.last_ts = event.ts
        if len(self.frames) < MAX_FRAMES:
            self.frames.append(event.frame)
        classes = _event_classes(event.objects) or ALL_EVENT_CLASSES
        self.classes |= classes
        for number in classes:
            self.disabled_at[number] = order
        if event.sequence is not None and len(self.sequences) < MAX_PENDING_ANSWERS:
            self.sequences.add(event.sequence)


def _event_classes(objects: Any) -> set[int]:
    """The event classes (1-3) a DISABLE/ENABLE_UNSOLICITED names by its class objects."""
    return {
        DNP3_EVENT_CLASSES[variation]
        for obj in objects
        if obj.get("group") == DNP3_CLASS_GROUP and (variation := obj.get("variation")) in DNP3_EVENT_CLASSES
    }


# -- Modbus -----------------------------------------------------------------------------------------------

MODBUS_DIAGNOSTICS: Final = 8
MODBUS_UMAS: Final = 90
MODBUS_DIAGNOSTIC_RULES: Final = {
    1: "ICS-1301",  # RESTART_COMMUNICATIONS_OPTION
    3: "ICS-1309",  # CHANGE_ASCII_INPUT_DELIMITER
    4: "ICS-1302",  # FORCE_LISTEN_ONLY_MODE
    10: "ICS-1303",  # CLEAR_COUNTERS_AND_DIAGNOSTIC_REGISTER
    20: "ICS-1303",  # CLEAR_OVERRUN_COUNTER_AND_FLAG
}
# UMAS names a transfer's direction from the PLC's side, the opposite of ATT&CK's and Siemens'
# words: its "upload" (0x30-0x32) carries the program in the requests, into the PLC (a program
# download, T0843); its "download" (0x33-0x35) in the responses, out of the PLC (a program
# upload, T0845).  iti/modicon_test.pcap: Unity Pro's DOWNLOAD_BLOCK requests are 14 bytes, the
# PLC's answers up to 260.
MODBUS_UMAS_RULES: Final = {
    0x41: "ICS-1304",  # STOP_PLC
    0x40: "ICS-1305",  # START_PLC
    0x30: "ICS-1306",  # INITIALIZE_UPLOAD: a program into the PLC
    0x31: "ICS-1306",  # UPLOAD_BLOCK
    0x32: "ICS-1306",  # END_STRATEGY_UPLOAD
    0x33: "ICS-1307",  # INITIALIZE_DOWNLOAD: the program out of the PLC
    0x34: "ICS-1307",  # DOWNLOAD_BLOCK
    0x35: "ICS-1307",  # END_STRATEGY_DOWNLOAD
}
_CHANGE_ASCII_INPUT_DELIMITER: Final = 3


# Writes to unit 0 waiting for the time a device has to answer them (``ModbusCommands``).
MAX_HELD_BROADCASTS: Final = 4096
# FC 8 requests alerted on, waiting for their answer (``ModbusCommands``).
MAX_PENDING_DIAGNOSTICS: Final = 4096
# Gateway exceptions (Modbus application protocol 7): the gateway found no path for the request,
# or forwarded it and no device answered (a broadcast on the serial side is never answered).
MODBUS_GATEWAY_EXCEPTIONS: Final = {
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}


def _diagnostic_evidence(event: Any) -> dict[str, Any]:
    """The evidence of an FC 8 or FC 90 request alerted on (or of an FC 8 answer echoing one)."""
    sub_function = getattr(event, "sub_function", None)
    evidence = {
        "function_code": event.function_code,
        "function": event.function,
        "sub_function": sub_function,
        "sub_function_name": getattr(event, "sub_function_name", None),
        "unit_id": event.unit_id,
    }
    if event.function_code == MODBUS_DIAGNOSTICS and sub_function == _CHANGE_ASCII_INPUT_DELIMITER:
        # Data: the new delimiter and a zero byte (6.8.1, sub-function 03).
        data = getattr(event, "data", None) or ""
        evidence["delimiter"] = f"0x{data[:2]}" if len(data) >= 2 else "? (no data field)"
    return evidence


class ModbusCommands(BaseDetector):
    """Modbus diagnostics that disrupt a device or its line, UMAS state/program changes, broadcast writes.

    A write to unit 0 (ICS-1308) is a broadcast only where no device answers it: behind a gateway
    every serial device takes it and none may reply.  Many Modbus/TCP clients address a device
    directly as unit 0, and many devices and gateways answer it (some as unit 1).  So each such
    write waits ``answer_timeout`` seconds of capture time for its own answer (matched by its
    transaction id, whatever unit the answer names): a response, or an exception from the device,
    means it was no broadcast and raises nothing.  Unanswered, or answered by a gateway with
    exception 10 or 11 (no path, no device answered behind it: the broadcast went out, or was
    tried), the alert goes out then, dated at the write (at the end of input at the latest).
    """

    name = "modbus_commands"
    rule_ids = (
        "ICS-1301",
        "ICS-1302",
        "ICS-1303",
        "ICS-1304",
        "ICS-1305",
        "ICS-1306",
        "ICS-1307",
        "ICS-1308",
        "ICS-1309",
    )
    event_types = frozenset({"modbus"})
    wants_time = True
    rule_tables: ClassVar[dict[int, dict[int, str]]] = {
        MODBUS_DIAGNOSTICS: MODBUS_DIAGNOSTIC_RULES,
        MODBUS_UMAS: MODBUS_UMAS_RULES,
    }

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.answer_timeout = float(context.rules.param("ICS-1308", "answer_timeout"))
        # (flow id, transaction id, or request frame without one) -> the unanswered write to unit 0
        # and its evidence
        self.broadcasts: dict[tuple[Any, Any], tuple[Any, dict[str, Any]]] = {}
        # (flow, transaction id) of the FC 8 requests alerted on, until their answer (a force to
        # listen-only mode too: the standard says no answer comes, some servers answer it).
        self.diagnostics: BoundedDict = BoundedDict(MAX_PENDING_DIAGNOSTICS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Match FC 8 and FC 90 sub-functions, and writes to unit 0; answers to those alerted on.

        An FC 8 answer echoes its sub-function: one of those alerted on, its request not seen as
        one, is reported from the answer (``answered_unseen``).
        """
        if event.direction != "request":
            if self.broadcasts:
                self._answered(event, out)
            if event.function_code == MODBUS_DIAGNOSTICS and event.exception_code is None:
                rule_id = MODBUS_DIAGNOSTIC_RULES.get(getattr(event, "sub_function", None))  # type: ignore[arg-type]
                if (
                    rule_id is not None
                    and self.diagnostics.pop((event.flow_id, event.transaction_id), None) is None
                ):
                    self._answered_unseen(rule_id, event, out)
            _take_answer(event, out)
            return
        code = event.function_code
        table = self.rule_tables.get(code)
        evidence: dict[str, Any]
        if table is not None:
            sub_function = getattr(event, "sub_function", None)
            rule_id = table.get(sub_function)  # type: ignore[arg-type]
            if rule_id is None:
                return
            evidence = _diagnostic_evidence(event)
            if code == MODBUS_DIAGNOSTICS:
                self.diagnostics[(event.flow_id, event.transaction_id)] = True
        elif event.unit_id == 0 and code in MODBUS_WRITE_FUNCTIONS:
            evidence = {
                "function_code": code,
                "function": event.function,
                "unit_id": 0,
                "address": event.address,
                "quantity": event.quantity,
                "values": list(event.values[:16]) if event.values else None,
                "answer_timeout": self.answer_timeout,
            }
            if self.answer_timeout <= 0:
                self._broadcast(event, evidence, out, "not waited for (answer_timeout 0)")
            elif len(self.broadcasts) >= MAX_HELD_BROADCASTS:
                self._broadcast(event, evidence, out, "not waited for (too many writes to unit 0 pending)")
            else:
                tid = event.transaction_id
                self.broadcasts[(event.flow_id, event.frame if tid is None else tid)] = (event, evidence)
            return
        else:
            return
        out.fire(
            rule_id,
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence=evidence,
            fields={"seen": ""},
            awaits=True,
            pairing=event.transaction_id,
        )

    @staticmethod
    def _answered_unseen(rule_id: str, event: Any, out: Emitter) -> None:
        """A device echoed an FC 8 sub-function alerted on, its request not seen as one."""
        sub_function = event.sub_function
        answered_unseen(
            rule_id,
            event,
            out,
            f"the device's answer (FC 8 sub-function {sub_function} echoed, frame {event.frame})",
            f"transaction id {event.transaction_id}",
            _diagnostic_evidence(event),
            {},
        )

    def _answered(self, event: Any, out: Emitter) -> None:
        """An answer to a held write to unit 0: no broadcast, unless a gateway says it went out."""
        tid = event.transaction_id
        key = (event.flow_id, event.request_frame if tid is None else tid)
        held = self.broadcasts.get(key)
        if held is None:
            return
        write, evidence = held
        paired = event.request_frame
        if (paired is not None and paired != write.frame) or (
            paired is None and event.function_code != write.function_code
        ):
            # The answer to another request reusing the transaction id (the dissector paired it
            # with that one), or an unpaired answer of another function: not this write's.
            return
        del self.broadcasts[key]
        exception = event.exception_code
        if exception in MODBUS_GATEWAY_EXCEPTIONS:
            evidence["answer"] = {"frame": event.frame, "exception_code": exception}
            how = MODBUS_GATEWAY_EXCEPTIONS[exception]
            self._broadcast(write, evidence, out, f"{event.src_ip} answered exception {exception} ({how})")

    def advance(self, ts: float, out: Emitter) -> None:
        """Report the writes to unit 0 no device answered in time."""
        if self.broadcasts:
            timeout = self.answer_timeout
            said = f"no device answered within {timeout:g} s"
            for key in [k for k, (event, _) in self.broadcasts.items() if ts - event.ts >= timeout]:
                event, evidence = self.broadcasts.pop(key)
                self._broadcast(event, evidence, out, said)

    def finish(self, out: Emitter) -> None:
        """End of input: the writes to unit 0 still unanswered were broadcasts."""
        said = f"no device answered (within {self.answer_timeout:g} s, or before the capture ended)"
        for event, evidence in self.broadcasts.values():
            self._broadcast(event, evidence, out, said)
        self.broadcasts.clear()

    def _broadcast(self, event: Any, evidence: dict[str, Any], out: Emitter, said: str) -> None:
        out.fire(
            "ICS-1308",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence=evidence,
            fields={"answered": said},
            awaits=False,  # no answer came (or none was waited for)
        )
