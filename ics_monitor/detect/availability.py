"""Availability and integrity of the conversation itself: error storms, floods, silence, replays.

* Exception/error storm: a server answers one client with many errors within a window (Modbus
  exception responses, DNP3 responses with IIN2 error bits, S7 ACKs with an error class).
* Request flood: one client sends a server more requests within a window than any polling needs.
* Device stops answering: consecutive requests to a server go unanswered for a while, counted per
  device behind its address (Modbus unit, DNP3 outstation; requests that never get an answer by
  design are left out: DNP3 confirms, no-ack functions and broadcasts, Modbus unit 0).
* DNP3 request sequence anomaly: a master increments the application sequence number by one per
  new request (IEEE 1815 4.2.2.4.5; a retry repeats it), so many out-of-order sequence numbers
  from one master mean replayed or injected requests.
* Connection flood: more TCP connections to one OT service within a window than clients make
  (tools that open and close connections as fast as they can, or SYN floods), from flow records.
* Sessions held open: one client holding more connections to one OT service at once than any
  HMI or SCADA server does (filling the device's connection table).

Per-key state is a short list in a capped dict; the counters use fixed windows started by the
first occurrence, so each record costs a lookup and an addition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter, client_endpoints
from ics_monitor.detect.commands import MODBUS_GATEWAY_EXCEPTIONS
from ics_monitor.dissect.dnp3.constants import FunctionCode
from ics_monitor.dissect.s7comm.constants import BLOCK_TRANSFER_FUNCTIONS, TPDU_CR
from ics_monitor.inventory.baseline import (
    DNP3_WRITE_FUNCTIONS,
    MAX_RANGES,
    MODBUS_WRITE_FUNCTIONS,
    RATE_WINDOW,
    Baseline,
    RangeSet,
    is_asset_ip,
    is_write_request,
    modbus_write_span,
    protocol_of_event,
)
from ics_monitor.inventory.roles import error_response, expects_answer

MAX_KEYS = 50_000
# An answer this long after the previous one ends a silence (seconds), and how many such ends
# are remembered per client, server and protocol.
RECOVERY_SILENCE: Final = 2.0
MAX_RECOVERIES: Final = 8
# Flow states of a TCP connection attempt the server did not take: refused (RST), or no SYN-ACK.
_FAILED_CONNECTIONS: Final = frozenset({"rejected", "syn_sent"})
# Sources an ICS-4005 alert names (the evidence, not the count).
MAX_SOURCES: Final = 32
# Application protocols that make their server port an OT service wherever it listens.
OT_APPS: Final = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus"})


class _Windowed:
    """Count per key within a fixed window; says when the count first reaches the threshold.

    ``own(key)`` (optional) gives a key a threshold of its own, lower or higher than the
    configured one, asked once per window at its start (0: the configured one).  The state is
    ``[start, count, fired, first_frame, threshold]``.
    """

    __slots__ = ("own", "states", "threshold", "window")

    def __init__(self, window: float, threshold: int, own: Callable[[Any], int] | None = None) -> None:
        self.window = float(window)
        self.threshold = int(threshold)
        self.own = own
        self.states: BoundedDict = BoundedDict(MAX_KEYS)

    def add(self, key: Any, ts: float, frame: int) -> list[Any] | None:
        """Count one; return the state when crossing its threshold."""
        # Typed: compiled, list items are read and written without the generic item protocol.
        state: list[Any] | None = self.states.get(key)
        if state is None or ts - state[0] > self.window:
            threshold = self.threshold
            if self.own is not None:
                threshold = self.own(key) or threshold
            if state is None:
                state = [ts, 0, False, frame, threshold]
                self.states[key] = state
            else:  # a new window, in the key's list (re-setting a key keeps its place anyway)
                state[0] = ts
                state[1] = 0
                state[2] = False
                state[3] = frame
                state[4] = threshold
        state[1] += 1
        if not state[2] and state[1] >= state[4]:
            state[2] = True
            return state
        return None


class _LearnedPeaks:
    """Thresholds raised to what a baseline's conversations showed: learned peak x ``headroom``.

    Per (client, server, protocol), the sum of its conversations' peaks (ports, transports: the
    detectors count them together), scaled from RATE_WINDOW up to a longer detector window (never
    down: a burst fills a short window as it fills a long one).  0 without a baseline or a peak.
    """

    def __init__(self, baseline: Baseline | None, which: int, headroom: float, window: float) -> None:
        self.peaks: dict[tuple[str, str, str], int] = {}
        self.scale = 0.0
        self.used = headroom > 0
        if baseline is None or headroom <= 0:
            return
        for conversation in baseline.conversations.values():
            peak = conversation.peaks[which]
            if peak:
                key = (conversation.client, conversation.server, conversation.protocol)
                self.peaks[key] = self.peaks.get(key, 0) + peak
        self.scale = headroom * max(1.0, window / RATE_WINDOW)

    def threshold(self, client: str, server: str, event_type: str) -> tuple[int, int]:
        """(learned peak, threshold it allows) for a pair and protocol; (0, 0) when none."""
        peak = self.peaks.get((client, server, protocol_of_event(event_type)), 0) if self.peaks else 0
        return peak, math.ceil(peak * self.scale) if peak else 0


class ErrorStorm(BaseDetector):
    """ICS-4001: many error responses from one server to one client within a window."""

    name = "error_storm"
    rule_ids = ("ICS-4001",)
    event_types = frozenset({"modbus", "dnp3", "s7comm"})
    directions = frozenset({"response"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        window = float(rules.param("ICS-4001", "window"))
        self.learned = _LearnedPeaks(
            context.baseline, 1, float(rules.param("ICS-4001", "learned_headroom")), window
        )
        self.counter = _Windowed(window, rules.param("ICS-4001", "min_errors"), self._own)

    def _own(self, key: Any) -> int:
        """A learned pair's threshold: its peak x headroom when above ``min_errors`` (0: none)."""
        server, client, event_type = key
        allowed = self.learned.threshold(client, server, event_type)[1]
        return max(allowed, self.counter.threshold) if allowed else 0

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count error responses per (server, client, protocol)."""
        fields: dict[str, Any] = event.__dict__  # see api.BaseDetector: fields read as dict items
        if fields["direction"] != "response" or not error_response(fields):
            return
        crossed = self.counter.add(
            (fields["src_ip"], fields["dst_ip"], fields["event_type"]), fields["ts"], fields["frame"]
        )
        if crossed is None:
            return
        start, count, _, first_frame, threshold = crossed
        peak = self.learned.threshold(event.dst_ip, event.src_ip, event.event_type)[0]
        out.fire(
            "ICS-4001",
            f"{event.src_ip}>{event.dst_ip}:{event.event_type}",
            ts=event.ts,
            frames=(first_frame, event.frame),
            source=event,
            # The alert's source is the client whose requests drew the errors.
            endpoints=client_endpoints(event),
            evidence={
                "errors": count,
                "window": self.counter.window,
                "window_start": start,
                "last_error": _error_detail(event),
                "threshold": threshold,
                "learned_peak": peak,
            },
            fields={"learned": _learned_text(peak, self.learned.used)},
        )


def _learned_text(peak: int, used: bool) -> str:
    if not peak:
        return "no learned rate" if used else "learned rate not used (learned_headroom 0)"
    return f"learned peak {peak} per {RATE_WINDOW:g} s"


def _error_detail(event: Any) -> dict[str, Any]:
    if event.event_type == "modbus":
        return {
            "function": event.function,
            "exception": event.exception,
            "exception_code": event.exception_code,
        }
    if event.event_type == "dnp3":
        return {
            "request_function": event.request_function,
            "iin": event.iin,
            "iin_names": list(event.iin_names or ()),
        }
    return {"error_class": event.error_class, "error_code": event.error_code, "error_name": event.error_name}


class RequestFlood(BaseDetector):
    """ICS-4002: more requests from one client to one server within a window than polling needs."""

    name = "request_flood"
    rule_ids = ("ICS-4002",)
    event_types = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        window = float(rules.param("ICS-4002", "window"))
        self.learned = _LearnedPeaks(
            context.baseline, 0, float(rules.param("ICS-4002", "learned_headroom")), window
        )
        self.floor = int(rules.param("ICS-4002", "learned_floor"))
        self.counter = _Windowed(window, rules.param("ICS-4002", "min_requests"), self._own)
        # Writes alone, against their own threshold: a client without a learned rate writing a
        # setpoint 80 times a second forces it against the process, under any polling threshold.
        self.writes = _Windowed(window, rules.param("ICS-4002", "min_writes"), self._own_writes)

    def _own_writes(self, key: Any) -> int:
        """A learned client writes up to its learned request threshold, if above ``min_writes``."""
        allowed = self.learned.threshold(*key)[1]
        return max(allowed, self.writes.threshold) if allowed else 0

    def _own(self, key: Any) -> int:
        """A learned client's threshold: its peak x headroom, not under ``learned_floor`` (0: none).

        Lower than ``min_requests`` too: an HMI that polled 5 times a second while learning and
        writes 90 times a second now floods its PLC, at a rate no fixed threshold can tell from an
        IO gateway's polling.
        """
        allowed = self.learned.threshold(*key)[1]
        if not allowed:
            return 0
        if key[2] == "s7comm_plus":
            # Its bulk transfers (a download) come as streams of request fragments: only raised.
            return max(allowed, self.counter.threshold)
        return max(allowed, self.floor)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count requests per (client, server, protocol)."""
        fields: dict[str, Any] = event.__dict__
        if fields["direction"] != "request":
            return
        if fields["event_type"] == "s7comm" and fields["function_code"] in BLOCK_TRANSFER_FUNCTIONS:
            return  # a block upload or download in chunks: the transfer rules' business
        key = (fields["src_ip"], fields["dst_ip"], fields["event_type"])
        crossed = self.counter.add(key, fields["ts"], fields["frame"])
        if crossed is not None:
            self._fire(event, crossed, "", out)
        if is_write_request(fields):
            crossed = self.writes.add(key, fields["ts"], fields["frame"])
            if crossed is not None:
                self._fire(event, crossed, " write", out)

    def _fire(self, event: Any, crossed: list[Any], kind: str, out: Emitter) -> None:
        start, count, _, first_frame, threshold = crossed
        peak = self.learned.threshold(event.src_ip, event.dst_ip, event.event_type)[0]
        out.fire(
            "ICS-4002",
            f"{event.src_ip}>{event.dst_ip}:{event.event_type}",
            ts=event.ts,
            frames=(first_frame, event.frame),
            source=event,
            evidence={
                "requests": count,
                "counted": "writes" if kind else "requests",
                "window": self.counter.window,
                "window_start": start,
                "seconds": round(event.ts - start, 3),
                "rate_per_second": round(count / max(event.ts - start, 1e-3), 1),
                "last_function": getattr(event, "function", None),
                "threshold": threshold,
                "learned_peak": peak,
            },
            fields={"learned": _learned_text(peak, self.learned.used), "kind": kind},
        )


# Addresses a device may answer as itself, under its own address: Modbus unit 255 (the TCP device
# itself, in the Modbus/TCP implementation guide) and the DNP3 self-address (IEEE 1815 9.2.5.3).
MODBUS_SELF_UNIT: Final = 255
DNP3_SELF_ADDRESS: Final = 0xFFFC
DNP3_RESPONSE: Final = int(FunctionCode.RESPONSE)  # solicited: it echoes its request's sequence number
# Devices counted per client, server and protocol: every Modbus unit id; past it, a DNP3 address
# sweep (ICS-3008's) whose addresses never answered is forgotten.
MAX_DEVICES: Final = 256
# A device's count of unanswered requests (a list, updated in place): the run's length, its first
# request's time and frame, whether it fired, the device's last answer, the request that would
# fire held for the flow's record (one-direction captures), the run's gateway exceptions and the
# last one's code, the last request's frame while it awaits an answer (None once answered) and its
# Modbus transaction id or DNP3 sequence number (to pair answers that name another device), and,
# on Modbus/TCP while a master pipelines (a request sent before the last was answered), the earlier
# requests still awaiting one, up to MAX_IN_FLIGHT - 1.
_UNANSWERED: Final = 0
_FIRST_TS: Final = 1
_FIRST_FRAME: Final = 2
_FIRED: Final = 3
_LAST_ANSWER: Final = 4
_HELD: Final = 5
_GATEWAY: Final = 6
_GATEWAY_EXCEPTION: Final = 7
_REQUEST_FRAME: Final = 8
_TRANSACTION: Final = 9
_LONGEST: Final = 10  # the longest silence the device ended by answering again, in this run
_EARLIER: Final = 11  # None, or [(frame, transaction id)] of earlier requests awaiting an answer
MAX_IN_FLIGHT: Final = 8


def _device(fields: dict[str, Any]) -> Any:
    """The device behind the server's address a record is about (None for S7).

    A Modbus unit id; a DNP3 outstation's link address (a request's destination, a response's source).
    """
    event_type = fields["event_type"]
    if event_type == "modbus":
        return fields["unit_id"]
    if event_type == "dnp3":
        return fields["dst"] if fields["direction"] == "request" else fields["src"]
    return None


def _new_count() -> list[Any]:
    return [0, None, None, False, None, None, 0, None, None, None, 0.0, None]


def _asked(count: list[Any], request_frame: int) -> bool:
    """Whether ``request_frame`` is a request of the device's still awaiting an answer."""
    if count[_REQUEST_FRAME] == request_frame:
        return True
    earlier: list[tuple[int, Any]] | None = count[_EARLIER]
    return earlier is not None and any(frame == request_frame for frame, _ in earlier)


def _asked_with(count: list[Any], transaction: Any) -> bool:
    """Whether a request of the device's still awaiting an answer had that transaction id."""
    if count[_REQUEST_FRAME] is not None and count[_TRANSACTION] == transaction:
        return True
    earlier: list[tuple[int, Any]] | None = count[_EARLIER]
    return earlier is not None and any(asked == transaction for _, asked in earlier)


def _settle(count: list[Any], fields: dict[str, Any]) -> None:
    """The request an answer is to no longer awaits one.

    The last request (then none earlier does, as far as pairing goes), else the earlier one of
    the answer's frame or transaction id.  Without either (RTU framing, S7, an unpaired DNP3
    answer), the last.  A late answer to none of them settles nothing.
    """
    request_frame = fields["request_frame"]
    transaction = fields["transaction_id"] if fields["event_type"] == "modbus" else None
    if request_frame is not None:
        last = request_frame == count[_REQUEST_FRAME]
    elif transaction is not None:
        last = count[_REQUEST_FRAME] is not None and transaction == count[_TRANSACTION]
    else:
        last = True
    if last:
        # The last id stays: an unpaired answer repeating it is the device's own (``on_event``).
        count[_REQUEST_FRAME] = None
        count[_EARLIER] = None
        return
    earlier: list[tuple[int, Any]] | None = count[_EARLIER]
    if earlier is None:
        return
    for position in range(len(earlier)):
        frame, asked = earlier[position]
        if (frame == request_frame) if request_frame is not None else (asked == transaction):
            del earlier[position]
            return


def _answered_count(
    devices: dict[Any, list[Any]], own: list[Any] | None, fields: dict[str, Any], self_device: int
) -> list[Any] | None:
    """The count an answer ends when the device it names has none, or may not be the one asked.

    A device may answer a request to another address as itself (a Modbus device asked as unit
    255, or as any unit when it ignores the unit id; a DNP3 outstation asked at the
    self-address): the request it answers is the one the dissector paired it with (its frame);
    unpaired, on Modbus/TCP the one with its transaction id, on DNP3 the self-address's last
    request when the solicited response echoes its sequence number (4 bits: other outstations'
    would match by chance).  Without either (RTU framing, an unsolicited response, a request the
    capture lost), its own device's count, else the only device's, else the self-address's.
    """
    request_frame = fields["request_frame"]
    if request_frame is not None:
        for count in devices.values():
            if _asked(count, request_frame):
                return count
        return None  # the answer to a request not counted (a Modbus unit 0)
    if fields["event_type"] == "modbus":
        transaction = fields["transaction_id"]
        if transaction is not None:
            if own is not None and _asked_with(own, transaction):
                return own
            for count in devices.values():
                if count is not own and _asked_with(count, transaction):
                    return count
            return own
    elif fields["function_code"] == DNP3_RESPONSE:
        asked = devices.get(self_device)
        if asked is not None and _asked_with(asked, fields["sequence"]):
            return asked
    if own is not None:
        return own
    if len(devices) == 1:
        for count in devices.values():
            return count
    return devices.get(self_device)


def _forget_unanswered(devices: dict[Any, list[Any]]) -> bool:
    """Room for one more device: forget those never answered (a sweep's); False when none."""
    for device in [
        device for device, count in devices.items() if count[_LAST_ANSWER] is None and not count[_FIRED]
    ]:
        del devices[device]
    return len(devices) < MAX_DEVICES


class StoppedAnswering(BaseDetector):
    """ICS-4003: a server leaves consecutive requests, or connection attempts, unanswered a while.

    Requests on an open connection (a hung device), and TCP connection attempts to a port the
    server answered an OT protocol on (its service gone: refused, or no SYN-ACK at all), counted
    per client, server and protocol until the server answers again.  Requests are counted per
    device behind the server's address (a Modbus unit id, a DNP3 outstation's link address): a
    gateway or terminal server answering for one device says nothing of the one beside it, and a
    Modbus gateway's exception 10 or 11 is its word that the device did not answer.  A server
    never seen answering that protocol is not judged on its requests: a capture of one direction
    shows every request unanswered.
    """

    name = "stopped_answering"
    rule_ids = ("ICS-4003",)
    event_types = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus"})
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.min_unanswered = int(rules.param("ICS-4003", "min_unanswered"))
        self.min_seconds = float(rules.param("ICS-4003", "min_seconds"))
        # (client, server, protocol) -> [last answer ts, times of the answers that ended a silence
        # (the last MAX_RECOVERIES), {device: its requests' count (see _new_count)}]: answers of the
        # server's to any device end an outage of its service (connection attempts, ``on_flow``).
        self.states: BoundedDict = BoundedDict(MAX_KEYS)
        # (client, server, protocol) -> [attempts, first ts, first frame, fired, last answer ts]
        self.attempts: BoundedDict = BoundedDict(MAX_KEYS)
        # (server, port) -> the OT protocol requests there, or a flow, carried
        self.served: BoundedDict = BoundedDict(MAX_KEYS)
        # (server, protocol) seen answering a request
        self.answering: BoundedDict = BoundedDict(MAX_KEYS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Requests count up per device; an answer from the device resets its count."""
        fields: dict[str, Any] = event.__dict__
        ts = fields["ts"]
        event_type: str = fields["event_type"]
        devices: dict[Any, list[Any]]
        count: list[Any] | None
        if fields["direction"] == "response":
            answering = (fields["src_ip"], event_type)
            if answering not in self.answering:
                self.answering[answering] = True
            state: list[Any] | None = self.states.get((fields["dst_ip"], fields["src_ip"], event_type))
            if state is None:
                return
            last = state[0]
            if last is not None and ts - last > RECOVERY_SILENCE:
                # Flow records come as flows end, late: an answer after a silence is remembered by
                # its time, so the connection attempts it ended are told from the ones after it
                # (``on_flow``).  Any answer, a gateway's exception too: the service is there.
                recoveries: list[float] = state[1]
                recoveries.append(ts)
                if len(recoveries) > MAX_RECOVERIES:
                    del recoveries[0]
            state[0] = ts
            devices = state[2]
            if event_type == "modbus":
                count = devices.get(fields["unit_id"])
                request_frame = fields["request_frame"]
                if count is None or (
                    request_frame is None and count[_TRANSACTION] != fields["transaction_id"]
                ):
                    count = _answered_count(devices, count, fields, MODBUS_SELF_UNIT)
                elif request_frame is not None and not _asked(count, request_frame):
                    # Paired with a request to another unit (a device asked as 255 answering as
                    # itself, ``modbus.response_unit_mismatch``): that unit's count it ends.
                    count = _answered_count(devices, count, fields, MODBUS_SELF_UNIT) or count
            elif event_type == "dnp3":
                count = devices.get(fields["src"])
                if count is None or fields["request_frame"] is None:
                    # Unpaired (the dissector pairs by both link addresses): it may answer a
                    # request to the self-address, whose sequence number it echoes.
                    count = _answered_count(devices, count, fields, DNP3_SELF_ADDRESS)
            else:
                count = devices.get(None)
            if count is None:
                return
            _settle(count, fields)
            if event_type == "modbus":
                exception = fields["exception_code"]
                if exception is not None and exception in MODBUS_GATEWAY_EXCEPTIONS:
                    # The gateway answered for the device: it did not answer the gateway.
                    count[_GATEWAY] += 1
                    count[_GATEWAY_EXCEPTION] = exception
                    return
            # A run's other fields are set when it starts (its first request).
            if count[_UNANSWERED] and not count[_FIRED]:
                # Silences it came back from unreported (one reported was an outage, not the
                # device's way), up to 10 x min_seconds: no ratchet an attacker could train.
                silence = min(ts - count[_FIRST_TS], 10 * self.min_seconds)
                count[_LONGEST] = max(count[_LONGEST], silence)
            count[_UNANSWERED] = 0
            count[_FIRED] = False
            count[_LAST_ANSWER] = ts
            return
        if not expects_answer(fields) or not is_asset_ip(fields["dst_ip"]):
            # A request to an IP broadcast or multicast address is answered, if at all, from the
            # devices' own addresses.
            return
        key = (fields["src_ip"], fields["dst_ip"], event_type)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = [None, [], {}]
            # A port that took a connection carrying OT requests is a service of that server.
            self.served[(fields["dst_ip"], fields["dst_port"])] = event_type
        devices = state[2]
        device = _device(fields)
        transaction = (
            fields["transaction_id"]
            if event_type == "modbus"
            else fields["sequence"]
            if event_type == "dnp3"
            else None
        )
        count = devices.get(device)
        if count is None:
            if len(devices) >= MAX_DEVICES and not _forget_unanswered(devices):
                return  # a sweep of addresses fills it: ICS-3001 and ICS-3008 are on it
            count = devices[device] = _new_count()
        frame = fields["frame"]
        if count[_UNANSWERED] == 0:
            count[_FIRST_TS] = ts
            count[_FIRST_FRAME] = frame
            count[_GATEWAY] = 0
        previous = count[_REQUEST_FRAME]
        if previous is not None and event_type == "modbus" and transaction is not None:
            # Sent before the last was answered (a master pipelining from its first request on, or
            # the device silent): an answer under another unit id may be to that one, found by its
            # frame or transaction id.
            earlier: list[tuple[int, Any]] | None = count[_EARLIER]
            if earlier is None:
                earlier = count[_EARLIER] = []
            earlier.append((previous, count[_TRANSACTION]))
            if len(earlier) >= MAX_IN_FLIGHT:
                del earlier[0]
        count[_UNANSWERED] += 1
        count[_REQUEST_FRAME] = frame
        count[_TRANSACTION] = transaction
        if (
            count[_FIRED]
            or count[_UNANSWERED] < self.min_unanswered
            or ts - count[_FIRST_TS] < self.min_seconds
            # A flaky device (a slow serial line behind a gateway) that came back after silences
            # of up to S in this run is judged stopped only past 2 S.
            or ts - count[_FIRST_TS] < 2 * count[_LONGEST]
        ):
            return
        if state[0] is None and (fields["dst_ip"], event_type) not in self.answering:
            # Never seen answering anyone: a capture of one direction (a one-way SPAN session, a
            # TAP's single port) shows every request unanswered.  Judged on the flow's record,
            # which tells whether the server sent anything at all (``on_flow``).
            count[_HELD] = (event.ts, event.frame, event.src_port, event.dst_port)
            return
        count[_FIRED] = True
        self._fire(
            event.src_ip, event.dst_ip, event_type, device, count, event.ts, event.frame, event, None, out
        )

    def _fire(
        self,
        client: str,
        server: str,
        protocol: str,
        device: Any,
        count: list[Any],
        last_ts: float,
        last_frame: int,
        source: Any,
        endpoints: dict[str, Any] | None,
        out: Emitter,
    ) -> None:
        """ICS-4003 for one device's (or an S7 server's) run of unanswered requests."""
        evidence: dict[str, Any] = {
            "unanswered_requests": count[_UNANSWERED],
            "silent_seconds": round(last_ts - count[_FIRST_TS], 3),
            "last_answer_ts": count[_LAST_ANSWER],
        }
        unanswered = f"{count[_UNANSWERED]} consecutive {protocol} requests"
        key = f"{client}>{server}:{protocol}"
        if device is not None:
            key = f"{key}/{device}"
            if protocol == "modbus":
                evidence["unit_id"] = device
                unanswered += f" to unit {device}"
            else:
                evidence["link_address"] = device
                unanswered += f" to outstation {device}"
        if count[_GATEWAY]:
            code: int = count[_GATEWAY_EXCEPTION]
            evidence["gateway_exceptions"] = count[_GATEWAY]
            evidence["gateway_exception_code"] = code
            unanswered += (
                f" ({count[_GATEWAY]} of them answered by the gateway with exception {code},"
                f" {MODBUS_GATEWAY_EXCEPTIONS[code]}: the device behind it did not answer)"
            )
        out.fire(
            "ICS-4003",
            key,
            ts=count[_FIRST_TS],
            last_ts=last_ts,
            frames=(count[_FIRST_FRAME], last_frame),
            source=source,
            protocol=protocol,
            endpoints=endpoints,
            evidence=evidence,
            fields={"unanswered": unanswered},
        )

    def on_flow(self, record: Any, out: Emitter) -> None:
        """A failed TCP connection attempt to a port the server answered an OT protocol on.

        Or the record of a flow whose requests a server never seen answering left unanswered.
        """
        app = record.app_protocol
        if app in OT_APPS:
            self._judge_silence(record, app, out)
        if record.transport != "tcp":
            return
        if app in OT_APPS:
            self.served[(record.dst_ip, record.dst_port)] = app
            return
        if record.state not in _FAILED_CONNECTIONS:
            return
        protocol: str | None = self.served.get((record.dst_ip, record.dst_port))
        if protocol is None:
            return
        key = (record.src_ip, record.dst_ip, protocol)
        ts = record.ts_start
        requests: list[Any] | None = self.states.get(key)
        recoveries: list[float] = requests[1] if requests is not None else []
        state: list[Any] | None = self.attempts.get(key)
        if state is not None:
            first = state[1]
            if any(first < answer <= ts for answer in recoveries):
                state = None  # the server answered since this outage's first attempt: a new one
        if state is None:
            last = requests[0] if requests is not None else None
            before = [answer for answer in recoveries if answer < ts]
            if before:
                last = max(before)
            elif last is not None and last > ts:
                last = None  # answered only since: when it last answered before is not known
            state = self.attempts[key] = [0, ts, record.first_frame, False, last]
        state[0] += 1
        if state[3] or state[0] < self.min_unanswered or ts - state[1] < self.min_seconds:
            return
        state[3] = True
        how = "refused" if record.state == "rejected" else "no answer"
        out.fire(
            "ICS-4003",
            f"{record.src_ip}>{record.dst_ip}:{protocol}",
            ts=state[1],
            last_ts=ts,
            frames=(state[2], record.first_frame),
            source=record,
            protocol=protocol,
            evidence={
                "unanswered_connections": state[0],
                "connection_state": record.state,
                "silent_seconds": round(ts - state[1], 3),
                "last_answer_ts": state[4],
            },
            fields={
                "unanswered": f"{state[0]} consecutive connection attempts to its {protocol} port "
                f"{record.dst_port} ({how})"
            },
        )

    def _judge_silence(self, record: Any, protocol: str, out: Emitter) -> None:
        """Requests held back because the server was never seen answering: its packets say.

        The server's stack sent something (a SYN-ACK, ACKs, a FIN): it is there and leaves the
        requests unanswered, as a device whose application hung or a man in the middle dropping
        them does.  Nothing at all from it: the capture sees one direction, and nothing is said.
        """
        state: list[Any] | None = self.states.get((record.src_ip, record.dst_ip, protocol))
        if state is None:
            return
        sent: bool | None = None
        for device, count in state[2].items():
            held = count[_HELD]
            if held is None or count[_FIRED] or count[_UNANSWERED] == 0:
                continue
            count[_HELD] = None
            if sent is None:
                sent = bool(record.packets_sent(1))
            if not sent:
                continue
            count[_FIRED] = True
            last_ts, last_frame, src_port, dst_port = held
            self._fire(
                record.src_ip,
                record.dst_ip,
                protocol,
                device,
                count,
                last_ts,
                last_frame,
                record,
                {"src_port": src_port, "dst_port": dst_port},
                out,
            )


# Writes waiting for their answer per client, server and device (``CommandsBlocked``).
MAX_PENDING_WRITES: Final = 16


class CommandsBlocked(BaseDetector):
    """ICS-4009: a device answers the requests sent after a write, not the write, time after time.

    A man in the middle that drops the operator's commands (or their answers) while the polls go
    through keeps the screens live and the process out of reach; a device refusing writes without
    a word looks the same.  A write (Modbus FC 5/6/15/16/22/23, DNP3 write, select and operate,
    S7 write var) counts as passed over when the device answers a request sent after it, at
    least ``grace`` seconds after the write, and the write is still unanswered; ``min_blocked``
    in a row (an answer to one of them, an exception too, even late, ends the run) fire.  Counted per client, server
    and device behind the address (Modbus unit, DNP3 outstation).
    """

    name = "commands_blocked"
    rule_ids = ("ICS-4009",)
    event_types = frozenset({"modbus", "dnp3", "s7comm"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.min_blocked = int(rules.param("ICS-4009", "min_blocked"))
        self.grace = float(rules.param("ICS-4009", "grace"))
        # (client, server, protocol, device) -> [[(write frame, ts, function, code)], passed over in a
        # row, first passed-over ts, its frame, fired, functions passed over, the frames of the
        # writes passed over (an answer to one, late, ends the run)]
        self.states: BoundedDict = BoundedDict(MAX_KEYS)

    @staticmethod
    def _through(state: list[Any]) -> None:
        """A write was answered: the run of writes passed over ends (and may fire again)."""
        state[1] = 0
        state[4] = False
        state[5] = []

    def on_event(self, event: Any, out: Emitter) -> None:
        """Writes wait; an answer to a later request passes over the writes still waiting."""
        fields: dict[str, Any] = event.__dict__
        event_type: str = fields["event_type"]
        if fields["direction"] == "request":
            if (
                not is_write_request(fields)
                or not expects_answer(fields)
                or not is_asset_ip(fields["dst_ip"])
            ):
                return
            device = _device(fields)
            key = (fields["src_ip"], fields["dst_ip"], event_type, device)
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = [[], 0, 0.0, 0, False, [], []]
            pending: list[Any] = state[0]
            if len(pending) >= MAX_PENDING_WRITES:
                del pending[0]
            # The function named only if the write is passed over (rare): no string per write.
            pending.append((fields["frame"], fields["ts"], fields["function"], fields["function_code"]))
            return
        request_frame = fields["request_frame"]
        if request_frame is None or not self.states:
            return
        device = _device(fields)
        state = self.states.get((fields["dst_ip"], fields["src_ip"], event_type, device))
        if state is None or not (state[0] or state[6]):
            return
        pending = state[0]
        ts = fields["ts"]
        late: list[int] = state[6]
        for write in pending:
            if write[0] == request_frame:  # its own answer (or exception): the writes get through
                pending.remove(write)
                self._through(state)
                return
        if request_frame in late:  # answered after all, late: it was not blocked
            late.remove(request_frame)
            self._through(state)
            return
        passed = [write for write in pending if write[0] < request_frame and ts - write[1] >= self.grace]
        if not passed:
            return
        for write in passed:
            pending.remove(write)
            if len(late) >= MAX_PENDING_WRITES:
                del late[0]
            late.append(write[0])
            if state[1] == 0:
                state[2], state[3] = write[1], write[0]
            state[1] += 1
            functions: list[str] = state[5]
            name = f"{write[2]} ({write[3]})"
            if name not in functions and len(functions) < 8:
                functions.append(name)
        if state[1] < self.min_blocked or state[4]:
            return
        state[4] = True
        unit = (
            f" to unit {device}"
            if event_type == "modbus"
            else f" to outstation {device}"
            if event_type == "dnp3"
            else ""
        )
        out.fire(
            "ICS-4009",
            f"{fields['dst_ip']}>{fields['src_ip']}:{event_type}/{device}",
            ts=state[2],
            last_ts=ts,
            frames=(state[3], fields["frame"]),
            source=event,
            protocol=event_type,
            endpoints=client_endpoints(event),
            evidence={
                "blocked_writes": state[1],
                "functions": list(state[5]),
                "device": device,
                "answered_request_frame": request_frame,
            },
            fields={"blocked": f"{state[1]} {event_type} writes{unit}", "functions": ", ".join(state[5])},
        )


class Dnp3SequenceAnomaly(BaseDetector):
    """ICS-4004: many DNP3 requests whose application sequence number is out of order."""

    name = "dnp3_sequence_anomaly"
    rule_ids = ("ICS-4004",)
    event_types = frozenset({"dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.counter = _Windowed(
            rules.param("ICS-4004", "window"), rules.param("ICS-4004", "min_out_of_order")
        )
        # Association -> [its last request's sequence number]: a cell updated in place, since
        # storing into a BoundedDict goes through its Python-level ``__setitem__`` (2% of the
        # analysis on DNP3 polling when it was done per request).
        self.last: BoundedDict = BoundedDict(MAX_KEYS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Compare each request's sequence number with the previous one of its association."""
        fields: dict[str, Any] = event.__dict__
        sequence = fields["sequence"]
        if fields["direction"] != "request" or not fields["function_code"] or sequence is None:
            return
        association = (fields["flow_id"], fields["src"], fields["dst"])
        cell: list[int] | None = self.last.get(association)
        if cell is None:
            self.last[association] = [sequence]
            return
        previous = cell[0]
        cell[0] = sequence
        if (sequence - previous) % 16 in (0, 1):
            return
        crossed = self.counter.add((event.src_ip, event.dst_ip), event.ts, event.frame)
        if crossed is None:
            return
        start, count, _, first_frame, _ = crossed
        out.fire(
            "ICS-4004",
            f"{event.src_ip}>{event.dst_ip}",
            ts=event.ts,
            frames=(first_frame, event.frame),
            source=event,
            evidence={
                "out_of_order_requests": count,
                "window": self.counter.window,
                "window_start": start,
                "previous_sequence": previous,
                "sequence": event.sequence,
                "function": event.function,
            },
        )


class ConnectionFlood(BaseDetector):
    """ICS-4005: many TCP connections to one OT service (server and port) within a window.

    Controllers take a handful of TCP connections; a tool opening and closing them as fast as it
    can (a public DNP3/Modbus lab's DoS script does, on a non-standard port), or a SYN flood, fills
    the device's connection table and locks its HMI out.  Counted from flow records (a connection
    is one whether refused, half-open or closed), per server and port: the configured OT ports,
    and any port where an OT protocol was identified (Modbus on 5020, say).  Spoofed sources count
    together.  Clients that open a connection per poll make a few a second.  Records come as flows
    end, not in the order they began: the window runs on their ends, the rate on their starts.
    """

    name = "connection_flood"
    rule_ids = ("ICS-4005",)
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.window = float(rules.param("ICS-4005", "window"))
        self.threshold = int(rules.param("ICS-4005", "min_connections"))
        self.ports = frozenset(int(port) for port in rules.param("ICS-4005", "ot_ports"))
        # (server, port) where an OT protocol was identified: an OT service on any port.
        self.services: BoundedDict = BoundedDict(MAX_KEYS)
        # (server, port) -> [window start (flow end), count, fired, first frame, earliest start,
        # latest start, connections per source (at most MAX_SOURCES sources)]
        self.states: BoundedDict = BoundedDict(MAX_KEYS)

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Count one connection attempt per TCP flow record that saw its SYN."""
        if record.transport != "tcp":
            return
        key = (record.dst_ip, record.dst_port)
        app = record.app_protocol
        if app in OT_APPS:
            self.services[key] = app
        elif record.dst_port not in self.ports and key not in self.services:
            return
        if "SYN" not in record.tcp_flags_to_server:
            return
        began: float = record.ts_start
        ended: float = record.ts_end
        state: list[Any] | None = self.states.get(key)
        if state is None or ended - state[0] > self.window:
            state = self.states[key] = [ended, 0, False, record.first_frame, began, began, {}]
        state[1] += 1
        state[4] = min(state[4], began)
        state[5] = max(state[5], began)
        sources: dict[str, int] = state[6]
        source = record.src_ip
        if source in sources or len(sources) < MAX_SOURCES:
            sources[source] = sources.get(source, 0) + 1
        if state[2] or state[1] < self.threshold:
            return
        state[2] = True
        seconds = round(state[5] - state[4], 3)
        ranked = sorted(sources.items(), key=lambda item: (-item[1], item[0]))
        listed = [f"{ip} ({count})" for ip, count in ranked]
        out.fire(
            "ICS-4005",
            f"{record.dst_ip}:{record.dst_port}",
            ts=state[5],
            frames=(state[3], record.first_frame),
            source=record,
            # The source of most of them, when one sent most.
            endpoints={"src_ip": ranked[0][0] if 2 * ranked[0][1] > state[1] else None, "src_port": None},
            evidence={
                "connections": state[1],
                "window": self.window,
                "window_start": state[4],
                "seconds": seconds,
                "rate_per_second": round(state[1] / max(seconds, 1e-3), 1),
                "threshold": self.threshold,
                "service": record.service or self.services.get(key) or app,
                "sources": listed,
                "distinct_sources": f"{len(ranked)}+" if len(ranked) >= MAX_SOURCES else str(len(ranked)),
            },
        )


# Sessions kept per (client, server, port) for the count (the oldest ended ones go first), and
# how many before those ended long ago are forgotten.
MAX_SESSIONS_KEPT: Final = 512
PRUNE_SESSIONS_AT: Final = 64
# Protocols whose connections are counted from their flow records: S7's from its COTP connection
# requests, as they come, but one that never sent one (opened and held idle).
_COUNTED_BY_RECORD: Final = frozenset({"modbus", "dnp3", "s7comm"})


class _Sessions:
    """The connections one client opened to one service: flow id -> [opened, frame, ended or None]."""

    __slots__ = ("armed", "due", "open", "protocol", "since")

    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.open: dict[str, list[Any]] = {}
        # When the count is judged (None: nothing to judge), and the time it reached the threshold.
        self.due: float | None = None
        self.since = 0.0
        # False from an alert until a new connection finds fewer than half the threshold open.
        self.armed = True


class SessionExhaustion(BaseDetector):
    """ICS-4006: one client holding many sessions open to one OT service at the same time.

    A controller serves a handful of connections (an S7-300 CPU 16, an S7-1200 8 HMI ones, many
    Modbus devices 4 to 16): a client that opens more and holds them locks out the HMI and the
    engineering station while sending nothing suspicious on any one of them.  HMIs, SCADA servers
    and engineering stations hold one to a few per device.

    Only connections seen from their opening count: a capture that lacks handshakes (filtered to
    data packets, say) must not make every short flow a held one.  An S7 connection counts from
    its COTP connection request, live; a Modbus or DNP3 one (no opening PDU), or one to an OT port
    that never sent anything (held idle, it takes a slot all the same), from its flow record, if
    that saw the handshake: after it ended, 600 s of silence, or the capture's end.  Each ends with
    its last packet, as its flow record says (one the capture's end cut was open to the end).
    A closed connection's record comes some seconds after its end (the flow table's closed
    timeout), so a count that reaches ``max_sessions`` is judged ``settle`` seconds later, on the
    connections' real open and close times: a client that opens a connection per poll and closes
    it holds one at a time however fast it polls.  The count must stay at the threshold for
    ``min_hold`` seconds: a burst opened and closed within moments is a flood (ICS-4005).  One
    alert per client and service until a new connection finds fewer than half the threshold open.
    """

    name = "session_exhaustion"
    rule_ids = ("ICS-4006",)
    event_types = frozenset({"cotp"})
    directions = frozenset({"request"})
    wants_flows = True
    wants_time = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.threshold = int(rules.param("ICS-4006", "max_sessions"))
        self.settle = float(rules.param("ICS-4006", "settle"))
        self.min_hold = float(rules.param("ICS-4006", "min_hold"))
        # The latest time seen (events, flow records, clock ticks).
        self.clock = 0.0
        # flow id -> (client, server, port) of the S7 connections counted and not yet ended.
        self.flows: BoundedDict = BoundedDict(MAX_KEYS)
        self.services: BoundedDict = BoundedDict(MAX_KEYS)
        self.pending: dict[tuple[str, str, int], _Sessions] = {}

    def _state(self, key: tuple[str, str, int], protocol: str) -> _Sessions:
        state: _Sessions | None = self.services.get(key)
        if state is None:
            state = self.services[key] = _Sessions(protocol)
        return state

    def _add(
        self, key: tuple[str, str, int], state: _Sessions, flow: str, session: list[Any], due: float
    ) -> None:
        """Count a connection; schedule a judgement when as many as the threshold overlap it."""
        sessions = state.open
        opened: float = session[0]
        overlapping = sum(1 for other in sessions.values() if other[2] is None or other[2] >= opened)
        if not state.armed and 2 * overlapping < self.threshold:
            state.armed = True
        sessions[flow] = session
        if (len(sessions) > PRUNE_SESSIONS_AT and state.due is None) or len(sessions) > MAX_SESSIONS_KEPT:
            self._prune(sessions, opened)
        if state.due is None and state.armed and overlapping + 1 >= self.threshold:
            state.due = due
            state.since = opened
            self.pending[key] = state

    def on_event(self, event: Any, out: Emitter) -> None:
        """An S7 COTP connection request: a connection counts from it."""
        fields = event.__dict__
        flow = fields["flow_id"]
        if fields["pdu_type"] != TPDU_CR or flow in self.flows or fields["transport"] != "tcp":
            return
        key = (fields["src_ip"], fields["dst_ip"], fields["dst_port"])
        self.flows[flow] = key
        ts: float = fields["ts"]
        self.clock = max(self.clock, ts)
        self._add(key, self._state(key, "s7comm"), flow, [ts, fields["frame"], None], ts + self.settle)

    def _prune(self, sessions: dict[str, list[Any]], ts: float) -> None:
        """Forget connections ended more than ``settle`` s before ``ts``, then the oldest, to the cap."""
        for flow in [f for f, s in sessions.items() if s[2] is not None and s[2] < ts - self.settle]:
            del sessions[flow]
        while len(sessions) > MAX_SESSIONS_KEPT:
            del sessions[next(iter(sessions))]

    def on_flow(self, record: Any, out: Emitter) -> None:
        """A connection's record: the end of an S7 one; a Modbus or DNP3 one seen from its SYN."""
        self.clock = max(self.clock, record.ts_end)
        if record.end_reason == "active_timeout":
            return  # the connection goes on under the same flow id
        # Closed, reset, or gone idle (600 s of silence: a connection held idle to exhaust the
        # device is judged long before its record comes): it ended with its last packet.  One the
        # capture's end cut stays open to the end.
        ended = None if record.end_reason == "end_of_capture" else record.ts_end
        key = self.flows.pop(record.flow_id, None)
        if key is not None:
            state: _Sessions | None = self.services.get(key)
            session = state.open.get(record.flow_id) if state is not None else None
            if session is not None:
                session[2] = ended
            return
        # Its protocol, or for a connection that carried nothing (held idle: it takes a slot all the
        # same), its port's.
        protocol = record.app_protocol or (None if record.payload_bytes_to_server else record.service)
        if (
            protocol not in _COUNTED_BY_RECORD
            or record.transport != "tcp"
            or "SYN" not in record.tcp_flags_to_server
            or "SYN" not in record.tcp_flags_to_client
            or record.packets_sent(0) < 2
        ):
            return
        key = (record.src_ip, record.dst_ip, record.dst_port)
        # The records of connections it overlapped come by the closed timeout after their ends.
        due = record.ts_end + 2 * self.settle
        session = [record.ts_start, record.first_frame, ended]
        self._add(key, self._state(key, protocol), record.flow_id, session, due)

    def advance(self, ts: float, out: Emitter) -> None:
        """Judge the counts whose settling time has passed."""
        self.clock = max(self.clock, ts)
        if self.pending:
            for key in [
                key for key, state in self.pending.items() if state.due is not None and state.due <= ts
            ]:
                # Only what happened ``settle`` s ago is sure: later closes may not be known yet.
                self._judge(key, self.pending.pop(key), out, ts - self.settle)

    def finish(self, out: Emitter) -> None:
        """The end: every count still waiting is judged on what is known."""
        for key, state in list(self.pending.items()):
            self._judge(key, state, out, math.inf)
        self.pending.clear()

    def _judge(self, key: tuple[str, str, int], state: _Sessions, out: Emitter, until: float) -> None:
        """The most connections open at once from the count's start (``since``) up to ``until``.

        Fires at ``max_sessions``.  Connections ended before ``since`` were judged before, if ever:
        they are forgotten, so an old peak never fires again.
        """
        state.due = None
        since = state.since
        sessions = state.open
        for flow in [flow for flow, (_, _, ended) in sessions.items() if ended is not None and ended < since]:
            del sessions[flow]
        live = 0
        changes: list[tuple[float, int]] = []
        for opened, _, ended in sessions.values():
            if opened > until:
                continue
            if opened <= since:
                live += 1
            else:
                changes.append((opened, 1))
            if ended is not None:
                changes.append((ended, -1))
        # Ends before opens at the same instant: a reconnection is not two at once.
        changes.sort()
        threshold = self.threshold
        peak, peak_ts = live, since
        # How long the count stayed at the threshold or above, at the longest: a burst of
        # connections opened and closed within moments is a flood (ICS-4005), not a hold.
        above: float | None = since if live >= threshold else None
        held_for = 0.0
        for when, step in changes:
            live += step
            if live > peak:
                peak, peak_ts = live, when
            if live >= threshold:
                if above is None:
                    above = when
            elif above is not None:
                held_for = max(held_for, when - above)
                above = None
        if above is not None:  # still held: to the judgement, or to the last time seen
            held_for = max(held_for, min(until, self.clock) - above)
            if held_for < self.min_hold and until < math.inf:
                # Held, not long enough yet to say: judged again once it could be.
                state.due = until + self.settle + self.min_hold - held_for
                self.pending[key] = state
                return
        if peak < threshold or held_for < self.min_hold:
            return
        state.armed = False
        # The connections open at the peak: the first of them opened, the last made the peak.
        held = sorted(
            (opened, frame)
            for opened, frame, ended in sessions.values()
            if opened <= peak_ts and (ended is None or ended > peak_ts)
        )
        first_ts, first_frame = held[0]
        peak_frame = held[-1][1]
        client, server, port = key
        out.fire(
            "ICS-4006",
            f"{client}>{server}:{port}",
            ts=peak_ts,
            frames=(first_frame, peak_frame) if first_frame != peak_frame else (peak_frame,),
            endpoints={
                "src_ip": client,
                "dst_ip": server,
                "dst_port": port,
                "src_port": None,
                "flow_id": None,
            },
            protocol=state.protocol,
            evidence={
                "sessions": peak,
                "threshold": self.threshold,
                "first_opened": first_ts,
                "peak_at": peak_ts,
                "protocol": state.protocol,
            },
        )


# Scopes (client, server, unit or group, table) whose written addresses ICS-4007 counts.
MAX_WRITE_SCOPES: Final = 10_000
# The most addresses one write request's range may span to count: Modbus writes at most 1968 coils
# (FC 15) or 123 registers (FC 16) at once.
MAX_RUN: Final = 2000


class WriteSweep(BaseDetector):
    """ICS-4007: one client writing across a large part of a device's addresses within a window.

    An HMI writes a handful of setpoints and commands; a recipe download a block.  Writing
    hundreds of distinct coils, registers or control points, one by one or in blocks, is the
    "write all" denial of service of Smod and of Metasploit and ISF scripts: every output forced,
    every setpoint overwritten.  ICS-4002 counts requests and misses it when it goes slowly, or
    in a few large requests.  Counted per client, server, Modbus unit and table (DNP3: group),
    as distinct addresses within ``window``; with a baseline, addresses inside what the client
    wrote there while learning do not count.  One alert per scope, widened as the sweep goes on.
    """

    name = "write_sweep"
    rule_ids = ("ICS-4007",)
    event_types = frozenset({"modbus", "dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.window = float(rules.param("ICS-4007", "window"))
        self.threshold = int(rules.param("ICS-4007", "min_addresses"))
        self.baseline = context.baseline
        # scope -> [window start, first frame, the addresses written (RangeSet), how many, fired,
        # addresses counted past MAX_RANGES ranges, addresses the alert last named]
        self.scopes: BoundedDict = BoundedDict(MAX_WRITE_SCOPES)

    def on_event(self, event: Any, out: Emitter) -> None:
        """A write request: the addresses it touches, counted per scope."""
        fields = event.__dict__
        code = fields["function_code"]
        if fields["event_type"] == "modbus":
            if code not in MODBUS_WRITE_FUNCTIONS:
                return
            span = modbus_write_span(event)
            if span is None:
                return
            table, first, last, _ = span
            self._count(
                event,
                fields,
                (fields["unit_id"], table, "write"),
                f"unit {fields['unit_id']} {table}",
                [(first, last)],
                out,
            )
            return
        if code not in DNP3_WRITE_FUNCTIONS:
            return
        for obj in fields["objects"] or ():
            group = obj.get("group")
            # The points the request carries (a range header whose objects are not there, as a
            # fuzzer sends, writes nothing).
            points = [point.get("index") for point in obj.get("points") or ()]
            runs = [(index, index) for index in points if isinstance(index, int)]
            if isinstance(group, int) and runs:
                self._count(event, fields, (code, group), f"g{group}", runs, out)

    def _count(
        self,
        event: Any,
        fields: dict[str, Any],
        learned_key: Any,
        label: str,
        runs: list[tuple[int, int]],
        out: Emitter,
    ) -> None:
        # A range no request of a real device spans (a fuzzer's or a broken header: 65535 points,
        # or its end before its start) is the anomaly detectors' business, not a sweep.
        runs = [run for run in runs if 0 <= run[1] - run[0] < MAX_RUN]
        if not runs:
            return
        client, server, protocol = fields["src_ip"], fields["dst_ip"], fields["event_type"]
        baseline = self.baseline
        if baseline is not None:
            learned = baseline.pair_profile(client, server, protocol)
            if learned is not None:
                table = learned.modbus if protocol == "modbus" else learned.dnp3_points
                runs = [run for run in runs if not learned.covered(table, learned_key, run[0], run[1])]
                if not runs:
                    return
        ts: float = fields["ts"]
        scope = (client, server, protocol, label)
        state: list[Any] | None = self.scopes.get(scope)
        if state is None or ts - state[0] > self.window:
            state = self.scopes[scope] = [ts, fields["frame"], RangeSet(), 0, False, 0, 0]
        written: RangeSet = state[2]
        for first, last in runs:
            if len(written) < MAX_RANGES:
                written.add(first, last)
            else:
                # Scattered writes past the cap (every other coil, say) are counted, not named:
                # the closest ranges would merge over addresses nobody wrote.
                state[5] += last - first + 1
        merged = written.ranges
        state[3] = sum(last - first + 1 for first, last in merged) + state[5]
        if state[3] < self.threshold:
            return
        shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in merged[:16])
        more = ", ..." if len(merged) > 16 else ""
        evidence = {
            "addresses": state[3],
            "scope": label,
            "runs": [[a, b] for a, b in merged[:64]],
            "window": self.window,
            "window_start": state[0],
            "threshold": self.threshold,
        }
        key = f"{client}>{server}:{protocol}:{label}"
        fields_text = {"ranges": f"{label} {shown}{more}", "seconds": round(ts - state[0], 1)}
        if state[4] and out.open_alert("ICS-4007", key, ts) is not None:
            # Widened each time the sweep doubles (an update per request of a sweep of thousands
            # would be a storm downstream).
            if state[3] < 2 * state[6]:
                return
            state[6] = state[3]
            out.widen(
                "ICS-4007",
                key,
                ts=ts,
                frames=(fields["frame"],),
                source=event,
                evidence=evidence,
                fields=fields_text,
            )
            return
        state[4] = True
        state[6] = state[3]
        out.fire(
            "ICS-4007",
            key,
            ts=ts,
            frames=(state[1], fields["frame"]),
            source=event,
            evidence=evidence,
            fields=fields_text,
        )


# Connections per service (server, port) that ICS-4008 keeps to pair ends with starts, and the
# clients holding persistent sessions it remembers.
MAX_RECENT_CONNECTIONS: Final = 64
MAX_HOLDERS: Final = 64


class SessionDisplaced(BaseDetector):
    """ICS-4008: a client's sessions to an OT service ending as another host connects, again and again.

    Many DNP3 outstations, serial gateways and small PLCs serve one master connection: a new one
    takes its place and the old one is dropped.  An attacker connecting over and over (a DNP3
    script, a scanner) knocks the SCADA master off each time; the master reconnects and is
    knocked off again, losing its view and control while every request on both connections is
    answered.  From flow records (their ends come late, in any order): a session with an
    identified OT protocol that ended at most ``max_gap`` seconds after another host's
    connection to the same server and port began counts as displaced by that host, when its
    client holds the service (``_incumbent``) and keeps a persistent session to it (one of its
    sessions lasted ``min_session``: a client that connects per poll is displaced by nobody); ``min_count``
    of them within ``window`` seconds fire, once per intruder and service while it goes on.
    """

    name = "session_displaced"
    rule_ids = ("ICS-4008",)
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self.window = float(rules.param("ICS-4008", "window"))
        self.max_gap = float(rules.param("ICS-4008", "max_gap"))
        self.min_count = int(rules.param("ICS-4008", "min_count"))
        # (server, port) -> recent connections [(start, end, client, first frame, app, paired)]
        self.recent: BoundedDict = BoundedDict(MAX_KEYS)
        # (intruder, server, port) -> [window start, displaced count, victims, frames]
        self.counts: BoundedDict = BoundedDict(MAX_KEYS)
        # (server, port) -> (start, client) of its earliest session seen
        self.incumbents: BoundedDict = BoundedDict(MAX_KEYS)
        # (server, port) -> clients seen holding a session of min_session seconds or more
        self.holders: BoundedDict = BoundedDict(MAX_KEYS)
        self.min_session = float(rules.param("ICS-4008", "min_session"))
        self.baseline = context.baseline

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Pair this connection's end or start with the others' of the same service."""
        if record.transport != "tcp" or record.end_reason == "active_timeout":
            return
        key = (record.dst_ip, record.dst_port)
        recent: list[list[Any]] | None = self.recent.get(key)
        if recent is None:
            if record.app_protocol not in OT_APPS:
                return
            recent = self.recent[key] = []
        ended = record.end_reason in ("closed", "reset")
        this = [
            record.ts_start,
            record.ts_end if ended else None,
            record.src_ip,
            record.first_frame,
            record.app_protocol,
            False,
        ]
        # The service's incumbent: the client of the earliest session seen (its record may come
        # after later ones'), the one a ping-pong of reconnections keeps knocking off.
        first: tuple[float, str] | None = self.incumbents.get(key)
        if first is None or record.ts_start < first[0]:
            self.incumbents[key] = (record.ts_start, record.src_ip)
        # Clients that hold a persistent session to the service (one lasted ``min_session``): a
        # client that connects per poll ends a session every moment, some as another host
        # connects, and is displaced by nobody.
        if this[1] is None or this[1] - this[0] >= self.min_session:
            holders: set[str] | None = self.holders.get(key)
            if holders is None:
                holders = self.holders[key] = set()
            if len(holders) < MAX_HOLDERS:
                holders.add(record.src_ip)
        # Connections long gone cannot pair with this one or later ones (records come as flows end).
        horizon = record.ts_end - self.window
        while recent and (recent[0][1] if recent[0][1] is not None else recent[0][0]) < horizon:
            del recent[0]
        if not self.holders.get(key):
            # Nobody holds a session to pair a displacement with: the loop is for nothing (a
            # client polling with a connection per request makes every record one of these).
            recent.append(this)
            if len(recent) > MAX_RECENT_CONNECTIONS:
                del recent[0]
            return
        for other in recent:
            if other[2] == this[2]:
                continue
            # This one displaced by the other (its end just after the other's start), or the other
            # displaced by this one.
            if self._displaced(this, other, key):
                self._count(other, this, key, out)
            elif self._displaced(other, this, key):
                self._count(this, other, key, out)
        recent.append(this)
        if len(recent) > MAX_RECENT_CONNECTIONS:
            del recent[0]

    def _displaced(self, victim: list[Any], intruder: list[Any], key: tuple[str, int]) -> bool:
        ended: float | None = victim[1]
        if victim[5] or ended is None or victim[4] not in OT_APPS:
            return False
        holders: set[str] | None = self.holders.get(key)
        if holders is None or victim[2] not in holders:
            return False
        if not self._incumbent(victim[2], intruder[2], key, victim[4]):
            return False
        start: float = intruder[0]
        return start <= ended <= start + self.max_gap

    def _incumbent(self, victim: str, intruder: str, key: tuple[str, int], protocol: str) -> bool:
        """Whether ``victim`` holds the service against ``intruder``.

        A client of it the baseline knows and ``intruder`` not; without a baseline, the client of
        its earliest session: in a ping-pong (the master reconnects the moment it is dropped, the
        intruder's next connection drops it again) the intruder's own connections are no
        sessions the master displaced.
        """
        baseline = self.baseline
        if baseline is not None:
            server = key[0]
            return (
                baseline.pair_profile(victim, server, protocol) is not None
                and baseline.pair_profile(intruder, server, protocol) is None
            )
        first: tuple[float, str] | None = self.incumbents.get(key)
        return first is not None and first[1] == victim

    def _count(self, intruder: list[Any], victim: list[Any], key: tuple[str, int], out: Emitter) -> None:
        victim[5] = True
        server, port = key
        scope = (intruder[2], server, port)
        ts: float = victim[1]
        state: list[Any] | None = self.counts.get(scope)
        if state is None or ts - state[0] > self.window:
            state = self.counts[scope] = [ts, 0, [], []]
        state[1] += 1
        if victim[2] not in state[2]:
            state[2].append(victim[2])
        if len(state[3]) < 8:
            state[3].append(intruder[3])
        if state[1] < self.min_count:
            return
        out.fire(
            "ICS-4008",
            f"{intruder[2]}>{server}:{port}",
            ts=ts,
            frames=tuple(state[3]) if state[1] == self.min_count else (intruder[3],),
            endpoints={
                "src_ip": intruder[2],
                "dst_ip": server,
                "dst_port": port,
                "src_port": None,
                "flow_id": None,
            },
            protocol=victim[4],
            evidence={
                "displaced": state[1],
                "victims": list(state[2]),
                "protocol": victim[4],
                "window": self.window,
                "window_start": state[0],
            },
        )
