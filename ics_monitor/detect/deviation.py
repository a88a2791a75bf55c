"""Baseline deviations (enforcing mode): what the learned baseline says is not normal here.

One detector does the per-record work for all baseline rules, so a record costs one flow-cache
lookup however many rules are on:

* ICS-5001 new asset: an address the baseline does not know (first seen in a conversation, a flow
  record or an inventory ``new_asset`` change).
* ICS-5002 new conversation: a client and server that never talked while learning.
* ICS-5003 new protocol or port: a known pair talking another protocol or on another port.
* ICS-5004 new function code on a known conversation.
* ICS-5005 write to an address or point never written (Modbus unit/table ranges, DNP3 point ranges
  per function and group, S7 areas and DBs).
* ICS-5006 written value outside its learned range (plus a margin), or, for a point never written
  while learning, outside the range it was read with.  S7 writes as the values they set
  (``BaselineDeviation._s7_written``: typed elements, bytes decoded as the variable or the flag
  bits learned there).
* ICS-5007 read/reported value outside its learned range (plus a wider margin): Modbus read
  answers, DNP3 responses' points, S7 READ_VAR answers (per element and type, ``s7_points``).
* ICS-5008 polling interval drift: the recent median interval of a learned recurring request moved
  away from the learned median by more than the tolerance.

``IdentityChange`` (ICS-5009) turns the inventory's ``identity_change`` records (firmware, module,
order number ...) into alerts and needs no baseline.  Caches are capped; alerted keys are
remembered so each deviation is reported once per key (throttling adds the counts).  Writes from a
client the baseline does not know are judged against the server's merged profile (what all known
clients wrote to and read from it), so a new host writing an out-of-range value is reported as such,
not only as a new conversation.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from operator import gt, itemgetter, lt
from typing import Any, Final

from ics_monitor.core.addresses import ip_sort_key
from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter, SeenSet
from ics_monitor.detect.commands import pairing
from ics_monitor.detect.rules import RuleSet
from ics_monitor.inventory.assets import asset_id_for
from ics_monitor.inventory.baseline import (
    DNP3_ANY_OUTSTATION,
    DNP3_RESPONSE_FUNCTIONS,
    DNP3_STATUS_OF_OUTPUT,
    DNP3_VALUE_GROUPS,
    DNP3_WRITE_FUNCTIONS,
    MAX_RANGES,
    MAX_VALUE_POINTS,
    MIN_POLL_SAMPLES,
    MODBUS_FLOAT_ORDERS,
    MODBUS_READ_TABLES,
    MODBUS_WRITE_TABLES,
    POLL_WINDOW,
    S7_BLOCK,
    S7_BYTE,
    S7_BYTE_WIDE,
    S7_COUNTING_AREAS,
    S7_READ_VAR,
    S7_WRITE_VAR,
    TABLE_ABBREVIATIONS,
    UNWATCHED_SECONDS,
    Baseline,
    Conversation,
    ConversationKey,
    RangeSet,
    crob_code_text,
    crob_point,
    dnp3_point,
    dnp3_points,
    function_key,
    is_asset_ip,
    is_conversation,
    is_probe,
    is_scan_probe,
    is_write_request,
    modbus_write_span,
    protocol_of_event,
    protocol_of_flow,
    register_floats,
    request_signature,
    s7_area,
    s7_item_span,
    s7_points,
)
from ics_monitor.inventory.oui import is_unicast_mac

MAX_FLOWS: Final = 65_536


def _say_target(
    emit: Callable[..., None], rule_id: str, key: str, event: Any, evidence: dict[str, Any], named: str
) -> None:
    """An ICS-5005 or ICS-5011 alert through ``Emitter.fire`` or ``Emitter.widen``."""
    _say(emit, rule_id, key, event, evidence, {"target": named})


def _say(
    emit: Callable[..., None],
    rule_id: str,
    key: str,
    event: Any,
    evidence: dict[str, Any],
    fields: dict[str, Any],
) -> None:
    """A grouped alert (new targets, values out of range) through ``Emitter.fire`` or ``widen``."""
    emit(rule_id, key, ts=event.ts, frames=(event.frame,), source=event, evidence=evidence, fields=fields)


def write_name(fields: dict[str, Any]) -> str:
    """A write request as the analyst reads it: its function and what it addressed."""
    event_type = fields["event_type"]
    function = f"{fields['function']} ({fields['function_code']})"
    if event_type == "modbus":
        address = fields["address"]
        if address is None:
            return f"{function}, unit {fields['unit_id']}"
        quantity = fields["quantity"]
        span = "" if quantity is None or quantity <= 1 else f"..{address + quantity - 1}"
        return f"{function}, unit {fields['unit_id']}, address {address}{span}"
    if event_type == "dnp3":
        targets = [
            f"g{obj.get('group')}" + (f" index {obj['points'][0].get('index')}" if obj.get("points") else "")
            for obj in fields["objects"] or ()
        ]
        return f"{function}, {', '.join(targets[:4]) or 'no objects'}"
    items = [f"{s7_area(item)} byte {item.get('address')}" for item in fields["items"] or ()]
    return f"{function}, {', '.join(items[:4]) or 'no items'}"


# Modbus MASK_WRITE_REGISTER: the register's new value depends on its current one (``_mask_write``),
# tried for each value of a learned range of at most MASK_VALUES_TRIED + 1 values.
MODBUS_MASK_WRITE: Final = 22
MASK_VALUES_TRIED: Final = 4096
# New write targets an ICS-5005 alert lists (the count goes on).
MAX_TARGETS_LISTED: Final = 32
# The DNP3 application function READ (IEEE 1815 table 4-1): what ICS-5011 judges of DNP3.
DNP3_READ: Final = 1
# Points of one conversation that get an ICS-5006 (or ICS-5007) alert of their own when the rule
# is not throttled (each firing an alert).
MAX_POINT_ALERTS: Final = 64
# Throttled: one alert per conversation names the points out of range: this many with their
# values, and counts up to MAX_GROUPED_POINTS distinct ones.
MAX_POINTS_LISTED: Final = 16
MAX_GROUPED_POINTS: Final = 4096
# Recent intervals per polled signature whose median is compared with the learned cycle.
RECENT_INTERVALS: Final = POLL_WINDOW
# The ``what`` fields name a value by table/point; a write carries at most this many values checked.
MAX_VALUES_CHECKED: Final = 128
# Per conversation: Modbus and S7 poll signatures looked up by their fields.
MAX_POLLS_PER_CONVERSATION: Final = 64
# Learned values stay as learned (a register's integers) in limits and alerts: annotated ``float``,
# compiled code would hold them as C doubles and report [1400.0, 1480.0] for [1400, 1480].
Number = int | float
Limit = tuple[Number, Number, Number, Number]
# Read and write shapes whose per-value bounds are kept (each up to 2 x MAX_VALUES_CHECKED floats).
MAX_SHAPES: Final = 8192
# ICS-5012: how often (capture seconds) the polled conversations are looked over for silence, and
# the longest step of the capture clock still watched through: a longer one (the gap between two
# capture files, a sensor that saw nothing at all) is time nobody watched, not silence, as the
# learner has it (``UNWATCHED_SECONDS``).
STOP_SCAN_SECONDS: Final = 5.0
STOP_GAP_SECONDS: Final = UNWATCHED_SECONDS


def _value_evidence(cell: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A value group's (evidence, template fields): led by its first point, every point listed."""
    listed: dict[str, dict[str, Any]] = cell[0]
    points = list(listed.values())
    distinct = len(cell[1])
    more = distinct - len(points)
    text = "; ".join(_point_text(entry) for entry in points) + (f"; and {more} more" if more > 0 else "")
    return {**points[0], "points": points, "distinct_points": distinct}, {"points_text": text}


def _point_text(found: dict[str, Any]) -> str:
    """One value out of range as an explanation lists it."""
    learned_from = found.get("learned_from")
    where = f"{learned_from} there while learning" if learned_from else "learned"
    sent = f", sent as {found['written_as']}" if found.get("written_as") else ""
    return (
        f"{found['point']} = {found['value']} ({where}: {found['learned_min']} to {found['learned_max']},"
        f" margin {found['margin']}{sent})"
    )


class BaselineDeviation(BaseDetector):
    """ICS-5001..5008 against the learned baseline."""

    name = "baseline_deviation"
    rule_ids = (
        "ICS-5001",
        "ICS-5002",
        "ICS-5003",
        "ICS-5004",
        "ICS-5005",
        "ICS-5006",
        "ICS-5007",
        "ICS-5008",
        "ICS-5010",
        "ICS-5011",
        "ICS-5012",
        "ICS-5013",
    )
    # ARP too: a device stating its address is a sighting, the same one in every run over the
    # same capture (the inventory's ``new_asset`` change is not: a restored inventory knows it).
    event_types = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus", "arp"})
    wants_flows = True
    wants_changes = True
    wants_time = True
    needs_baseline = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        assert context.baseline is not None
        self.baseline: Baseline = context.baseline
        rules = context.rules
        on = rules.enabled
        self.check_assets = on("ICS-5001")
        self.check_conversations = on("ICS-5002") or on("ICS-5003")
        self.check_functions = on("ICS-5004")
        self.check_writes = on("ICS-5005")
        self.check_written_values = on("ICS-5006")
        self.check_read_values = on("ICS-5007")
        self.check_polling = on("ICS-5008")
        self.check_writers = on("ICS-5010")
        self.check_reads = on("ICS-5011")
        self.check_stops = on("ICS-5012")
        self.check_operations = on("ICS-5013")
        # Learned conversation -> whether its client wrote while learning (``_write_profile``).
        self.wrote: dict[ConversationKey, bool] = {}
        self.written_margin = self.written_magnitude = self.read_margin = self.read_magnitude = 0.0
        if self.check_written_values:
            self.written_margin = float(rules.param("ICS-5006", "margin_ratio"))
            self.written_magnitude = float(rules.param("ICS-5006", "magnitude_ratio"))
        if self.check_read_values:
            self.read_margin = float(rules.param("ICS-5007", "margin_ratio"))
            self.read_magnitude = float(rules.param("ICS-5007", "magnitude_ratio"))
        if self.check_polling:
            self.drift_ratio = float(rules.param("ICS-5008", "max_ratio"))
            self.drift_spreads = float(rules.param("ICS-5008", "spread_factor"))
            self.drift_minimum = float(rules.param("ICS-5008", "min_seconds"))
        self.stop_cycles = self.stop_minimum = self.stop_silences = 0.0
        if self.check_stops:
            self.stop_cycles = float(rules.param("ICS-5012", "cycles"))
            self.stop_minimum = float(rules.param("ICS-5012", "min_seconds"))
            self.stop_silences = float(rules.param("ICS-5012", "silence_factor"))
        # ICS-5012, per conversation with a learned poll, once seen in this run: [time of its last
        # record moved on by the unwatched time since, its frame, its flow id, the silence that is
        # a stop, the learned cycle, reported, the longest silence learned, time of its last record].
        self.watches: BoundedDict = BoundedDict(MAX_FLOWS)
        # The watches of conversations watched (``_watch`` says), the ones ``_stops`` looks over.
        self.watched: BoundedDict = BoundedDict(MAX_FLOWS)
        self._next_stop_scan: float | None = None
        self._last_tick: float | None = None
        self.flows: BoundedDict = BoundedDict(MAX_FLOWS)
        self.polls: BoundedDict = BoundedDict(MAX_FLOWS)
        self.limits: BoundedDict = BoundedDict(MAX_FLOWS)
        # (conversation, table, unit, address, count) -> per value (lows, highs), or None when no
        # value there has learned limits: a repeated poll is checked in C, not value by value.
        self.read_bounds: BoundedDict = BoundedDict(MAX_SHAPES)
        # Modbus read shapes seen once (``_modbus_reads``): bounds are kept from a shape's second
        # read on.  A shape read once (a scan, a client browsing, polls of changing ranges) is
        # checked value by value: building its bounds cost three times that, to be evicted unused.
        self.read_once: BoundedDict = BoundedDict(MAX_SHAPES)
        # The same for writes: (conversation, table, unit, first address, count) -> bounds or None.
        self.write_bounds: BoundedDict = BoundedDict(MAX_SHAPES)
        # Per write shape of holding registers: the register pairs learned as floats (``_floats``).
        self.write_floats: BoundedDict = BoundedDict(MAX_SHAPES)
        # Per conversation, shared by its flows' entries: the function codes checked (Modbus,
        # DNP3) and the poll fields (Modbus, S7; see ``_polling``) -> learned cycle.
        self.checked_functions: BoundedDict = BoundedDict(MAX_FLOWS)
        # Per conversation: ``Conversation.outstation_index`` (DNP3 reads at an outstation).
        self.outstation_index: BoundedDict = BoundedDict(MAX_FLOWS)
        self.poll_fields: BoundedDict = BoundedDict(MAX_FLOWS)
        self.seen = SeenSet()
        # (conversation, scope) -> [address ranges first written since learning, the first
        # MAX_TARGETS_LISTED of them]: one ICS-5005 alert per scope names them all.
        self.new_targets: BoundedDict = BoundedDict(MAX_FLOWS)
        # (conversation key, rule id) -> the point alert keys raised (``_out_of_range``)
        self.point_alerts: BoundedDict = BoundedDict(MAX_FLOWS)
        # (ICS-5005, ICS-5011, ICS-5006 or ICS-5007, alert key) -> what its alert would say, grown
        # since last said (``_new_target``, ``_value_group``): (event, evidence, template fields)
        self.unreported: dict[tuple[str, str], tuple[Any, dict[str, Any], dict[str, Any]]] = {}
        # (conversation key, client, ICS-5006 or ICS-5007) -> [points out of range listed (name -> what
        # was seen there first), names of every point out of range (capped), the last record
        # counted (frame, time)]
        self.value_groups: BoundedDict = BoundedDict(MAX_FLOWS)
        # Set by the engine around one record: the shard worker that owns the record's flow found
        # nothing in it that deviates from the conversation its endpoints name (``WorkerCheck``):
        # a response's read values within their limits, a request's function, targets and
        # written values all learned.
        self.passed = False
        # Findings of the checks a worker runs (``WorkerCheck``) so far: values out of range, new
        # write and read targets, new CROB operations, whether alerted on or not.
        self.deviations = 0
        # A worker's ``WorkerCheck``: findings are counted, not turned into alerts.
        self.probing = False

    # -- first sight of a flow: assets and conversation -------------------------------------------------

    def _start(
        self, key: ConversationKey, source: Any, ts: float, frame: int, out: Emitter
    ) -> Conversation | None:
        baseline = self.baseline
        client, server, transport, port, protocol = key
        if self.check_assets:
            for ip, role in ((client, "client"), (server, "server")):
                self._new_asset(ip, role, source, ts, frame, out)
        conversation = baseline.conversation(key)
        if conversation is None and self.check_conversations and self.seen.first(("conversation", key)):
            # Client -> server, whichever side spoke first (a DNP3 outstation's unsolicited
            # null response, a server banner): the conversation is what the alert names.
            oriented = None
            how = ""
            if getattr(source, "direction", None) == "response":
                oriented = {
                    "src_ip": source.dst_ip,
                    "src_port": source.dst_port,
                    "dst_ip": source.src_ip,
                    "dst_port": source.src_port,
                }
                # Said so: a response nothing asked for (a forged DNP3 unsolicited response, a
                # server's banner) reads as the client's doing otherwise.
                how = f" (its first record: a response {server} sent from port {port}, with no request seen)"
            fields = {
                "client": client,
                "server": server,
                "protocol": protocol,
                "transport": transport,
                "port": port,
            }
            if baseline.knows_pair(client, server):
                out.fire(
                    "ICS-5003",
                    f"{client}>{server}:{protocol}:{transport}/{port}",
                    ts=ts,
                    frames=(frame,),
                    source=source,
                    evidence={**fields, "learned": baseline.protocols_of_pair(client, server)},
                    endpoints=oriented,
                    fields={"how": how},
                )
            else:
                out.fire(
                    "ICS-5002",
                    f"{client}>{server}:{protocol}:{transport}/{port}",
                    ts=ts,
                    frames=(frame,),
                    source=source,
                    evidence=fields,
                    endpoints=oriented,
                    fields={"how": how},
                )
        return conversation

    def _new_asset(
        self, ip: str, role: str, source: Any, ts: float, frame: int, out: Emitter, mac: str | None = None
    ) -> None:
        baseline = self.baseline
        if not ip or baseline.knows_ip(ip) or not is_asset_ip(ip):
            return
        # An IPv6 link-local address is a second name of an interface (auto-configured, often
        # rotated); the device itself shows up with its routable address or its MAC.
        if ip.startswith("fe80:") or (mac is not None and baseline.knows_mac(mac)):
            return
        if not self.seen.first(("asset", ip)):
            return
        out.fire(
            "ICS-5001",
            ip,
            ts=ts,
            frames=(frame,) if frame else (),
            source=source,
            endpoints=None if source is not None else {"src_ip": ip, "src_mac": mac},
            evidence={"ip": ip, "seen_as": role, "mac": mac},
        )

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Flows without protocol records (IT, unknown) get their conversation checked here.

        Probes (``is_probe``) are the scan rules' business (ICS-3006/3009/3010), and the baseline
        never learns them, except one a TCP server accepted (``is_scan_probe``).
        """
        if not is_conversation(record):
            return
        # An accepted knock from a host ICS-3006 already reports as scanning is one more target of
        # the scan, not a conversation of its own (nmap -sS: a new conversation per open port).
        if is_scan_probe(record) or (
            is_probe(record) and out.open_alert("ICS-3006", record.src_ip, record.ts_start)
        ):
            return
        # Another protocol tried on an OT service port (an nmap -sV probe: HTTP, TLS, RDP, SMB to
        # 502): ICS-3007/3008's open alert for the client and port names it, not a conversation
        # per protocol tried.
        port_key = f"{record.src_ip}>{record.dst_ip}:{record.transport}/{record.dst_port}"
        if out.open_alert("ICS-3007", port_key, record.ts_start) or out.open_alert(
            "ICS-3008", port_key, record.ts_start
        ):
            return
        key = (record.src_ip, record.dst_ip, record.transport, record.dst_port, protocol_of_flow(record))
        if record.flow_id in self.flows:
            return
        self.flows[record.flow_id] = [self._start(key, record, record.ts_start, record.first_frame, out), key]

    def on_changes(self, changes: list[Any], out: Emitter) -> None:
        """Inventory ``new_asset`` changes: an asset the baseline does not know."""
        if not self.check_assets:
            return
        for change in changes:
            if change.kind == "new_asset" and change.ip:
                self._new_asset(change.ip, "asset", None, change.ts, change.frame, out, change.mac)

    # -- per protocol record ----------------------------------------------------------------------------

    def on_event(self, event: Any, out: Emitter) -> None:
        """Look the record's conversation up (cached per flow) and check what it does."""
        # Fields read as dict items (see api.BaseDetector), here and in the methods it calls.
        fields: dict[str, Any] = event.__dict__
        event_type: str = fields["event_type"]
        if event_type == "arp":
            if self.check_assets:
                self._new_asset(event.sender_ip, "asset", None, event.ts, event.frame, out, event.sender_mac)
            return
        flow_id = fields["flow_id"]
        entry = self.flows.get(flow_id)
        request = fields["direction"] == "request"
        if entry is None:
            if request:
                client, server, port = event.src_ip, event.dst_ip, event.dst_port
            else:
                client, server, port = event.dst_ip, event.src_ip, event.src_port
            key = (client, server, event.transport, port, protocol_of_event(event_type))
            known = self._start(key, event, event.ts, event.frame, out)
            merged = None
            if known is None:
                merged = self.baseline.server_profile(server, event.transport, port, key[4])
            # [conversation, key, merged profile, its checked function codes, its poll lookups,
            # its ICS-5012 watch]
            entry = self.flows[flow_id] = [known, key, merged, None, None, None]
        conversation: Conversation | None = entry[0]
        if self.check_stops and conversation is not None and conversation.polling:
            # ICS-5012: anything either way says the conversation is alive (a PLC's cyclic data,
            # an outstation's unsolicited responses keep the operators' view without a request).
            watch: list[Any] | None = entry[5]
            if watch is None:
                watch = entry[5] = self._watch(conversation)
            if watch:
                watch[0] = watch[7] = fields["ts"]
                watch[1] = fields["frame"]
                watch[2] = flow_id
                watch[5] = False
        if request and self.check_writers and is_write_request(fields):
            self._writer(entry[1], event, fields, out)
        if conversation is None:
            # A client the baseline does not know (already reported as new): its writes are still
            # judged against what the known clients wrote to, and read from, the same server.
            profile: Conversation | None = entry[2]
            if request and profile is not None and (self.check_writes or self.check_written_values):
                self._writes(profile, event, fields, out)
            return
        if request:
            # Checked already where it was dissected (``WorkerCheck``) when the flow began the
            # same way round: function, write and read targets, written values all learned.
            if not (
                self.passed
                and entry[1]
                == (
                    fields["src_ip"],
                    fields["dst_ip"],
                    fields["transport"],
                    fields["dst_port"],
                    protocol_of_event(event_type),
                )
            ):
                if self.check_functions:
                    self._function(conversation, event, fields, out, entry)
                if self.check_writes or self.check_written_values:
                    self._writes(self._write_profile(conversation, entry), event, fields, out)
                if self.check_reads:
                    self._read_targets(conversation, event, fields, out)
            if self.check_polling and conversation.polling:
                self._polling(conversation, event, fields, out, entry)
        elif self.check_read_values and conversation.values:
            # Checked already where it was dissected (``WorkerCheck``), against the conversation its
            # endpoints name: that is this flow's when the flow began the same way round.
            if self.passed and entry[1] == (
                fields["dst_ip"],
                fields["src_ip"],
                fields["transport"],
                fields["src_port"],
                protocol_of_event(event_type),
            ):
                return
            self._reads(conversation, event, fields, out)

    def _write_profile(self, conversation: Conversation, entry: list[Any]) -> Conversation:
        """What a known client's writes are judged against: its own, or what the server's writers did.

        A client that never wrote while learning (it only read) is judged as a new client is.
        Otherwise its first write would be "an address never written" where the HMI writes every
        minute, and its value judged against nothing.
        """
        wrote = self.wrote.get(conversation.key)
        if wrote is None:
            wrote = self.wrote[conversation.key] = conversation.wrote()
        if wrote:
            return conversation
        profile: Conversation | None = entry[2]
        if profile is None:
            profile = self.baseline.server_profile(
                conversation.server, conversation.transport, conversation.port, conversation.protocol
            )
            if profile is None:
                return conversation
            entry[2] = profile
        return profile

    def _writer(self, key: ConversationKey, event: Any, fields: dict[str, Any], out: Emitter) -> None:
        """ICS-5010: a write or control from a client that never wrote to the server while learning.

        The baseline knows which hosts write to each device (``Baseline.writers``): an HMI, a SCADA
        master, an engineering station.  Another one writing, a new host or one that only read,
        is reported whatever it writes: a value inside the learned range, to a point the real
        master operates, is still an unauthorised command.  Once per client, server and protocol
        (throttling counts the rest); the device's answer says whether it was carried out.
        """
        client, server, _, _, protocol = key
        writers = self.baseline.writers(server, protocol)
        if client in writers:
            return
        known = self.baseline.pair_profile(client, server, protocol) is not None
        out.fire(
            "ICS-5010",
            f"{client}>{server}:{protocol}",
            ts=fields["ts"],
            frames=(fields["frame"],),
            source=event,
            evidence={
                "function": write_name(fields),
                "client_known": known,
                "writers_learned": sorted(writers, key=ip_sort_key)[:8],
            },
            fields={
                "who": "a host that only read from it while learning"
                if known
                else "a host that never talked to it while learning",
                "writers": ", ".join(sorted(writers, key=ip_sort_key)[:8]) or "none",
            },
            awaits=True,
            pairing=pairing(event),
        )

    def _function(
        self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter, entry: list[Any]
    ) -> None:
        event_type: str = fields["event_type"]
        code: Any = None
        if event_type in ("modbus", "dnp3"):
            code = fields["function_code"]
        elif event_type == "s7comm":
            userdata: dict[str, Any] | None = fields["userdata"]
            if fields["rosctr"] == 7 and userdata is not None:
                code = (userdata.get("group"), userdata.get("subfunction"))
            else:
                code = fields["function_code"]
        if code is not None:
            # What the function key is made of (``function_key``): once a conversation's function
            # was checked (known, or reported once per conversation), its later requests have
            # nothing left to report.
            checked: set[Any] | None = entry[3]
            if checked is None:
                checked = entry[3] = self._per_conversation(self.checked_functions, conversation, set)
            elif code in checked:
                return
            checked.add(code)  # at most 256 codes (S7 USERDATA: 16 groups of 256 subfunctions)
        function = function_key(event)
        if function is None or conversation.knows_function(function[0]):
            return
        if not self.seen.first(("function", conversation.key, function[0])):
            return
        out.fire(
            "ICS-5004",
            f"{conversation.client}>{conversation.server}:{conversation.protocol}:{function[0]}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={
                "function_key": function[0],
                "function": function[1],
                "learned_functions": sorted(str(v[0]) for v in conversation.functions.values())[:32],
            },
        )

    def _read_targets(
        self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter
    ) -> None:
        """ICS-5011: a known client reads what it never read while learning.

        Modbus addresses per unit and table, DNP3 objects (the group, and the points a range
        names) of a READ, S7 areas and byte ranges: as ICS-5005 judges writes, one alert per
        scope that widens as more new addresses are read.  A client reading the process image
        beyond what its screens show is mapping it (point and tag identification), or a new
        screen went live.
        """
        event_type: str = fields["event_type"]
        if event_type == "modbus":
            table = MODBUS_READ_TABLES.get(fields["function_code"])
            address = fields["address"]
            quantity = fields["quantity"]
            if table is None or address is None or not quantity:
                return
            unit = fields["unit_id"]
            last = address + quantity - 1
            key = (unit, table, "read")
            if not conversation.covered(conversation.modbus, key, address, last):
                self._new_target(
                    conversation,
                    event,
                    out,
                    f"unit {unit} {table}",
                    address,
                    last,
                    "ICS-5011",
                    conversation.modbus.get(key),
                )
        elif event_type == "dnp3":
            if fields["function_code"] != DNP3_READ:
                return
            for obj in event.objects:
                group = obj.get("group")
                if isinstance(group, int):
                    self._dnp3_targets(
                        conversation, event, out, DNP3_READ, group, dnp3_points(obj), "ICS-5011"
                    )
        elif (
            event_type == "s7comm"
            and fields["rosctr"] == 1
            and fields["function_code"] == S7_READ_VAR
            and fields["items"]
        ):
            for item in event.items:
                span = s7_item_span(item)
                if span is None:
                    continue
                area = s7_area(item)
                if not conversation.covered(conversation.s7, ("read", area), span[0], span[1]):
                    learned = conversation.s7.get(("read", area))
                    self._new_target(conversation, event, out, area, span[0], span[1], "ICS-5011", learned)

    def _writes(self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter) -> None:
        # One method per protocol: their locals (values, points) hold different types.
        event_type: str = fields["event_type"]
        if event_type == "modbus":
            if fields["function_code"] in MODBUS_WRITE_TABLES:
                self._modbus_writes(conversation, event, out)
        elif event_type == "dnp3":
            if fields["function_code"] in DNP3_WRITE_FUNCTIONS:
                self._dnp3_writes(conversation, event, out)
        elif (
            event_type == "s7comm"
            and fields["rosctr"] == 1
            and fields["function_code"] == S7_WRITE_VAR
            and fields["items"]
        ):
            self._s7_writes(conversation, event, out)

    def _modbus_writes(self, conversation: Conversation, event: Any, out: Emitter) -> None:
        write = modbus_write_span(event)
        if write is None:
            return
        table, first, last, values = write
        unit = event.unit_id
        if self.check_written_values and event.function_code == MODBUS_MASK_WRITE and not values:
            self._mask_write(conversation, event, f"{TABLE_ABBREVIATIONS[table]}:{unit}:{first}", out)
        if self.check_writes and not conversation.covered(
            conversation.modbus, (unit, table, "write"), first, last
        ):
            self._new_target(
                conversation,
                event,
                out,
                f"unit {unit} {table}",
                first,
                last,
                learned=conversation.modbus.get((unit, table, "write")),
            )
        if self.check_written_values and values:
            abbreviation = TABLE_ABBREVIATIONS[table]
            values = values[:MAX_VALUES_CHECKED]
            bounds_key = (conversation.key, table, unit, first, len(values))
            if table == "holding_registers" and len(values) >= 2:
                values = self._floats(conversation, event, bounds_key, values, out)
            # Per write shape, every value's limits once; then all values checked in C, value
            # by value only when one may be out of range (or is not a plain number).
            bounds = self.write_bounds.get(bounds_key, _UNKNOWN)
            if bounds is _UNKNOWN:
                # As ``_value``: the point's written limits, else its read ones.
                bounds = self.write_bounds[bounds_key] = _bounds(
                    self._limits(conversation, "written"),
                    self._limits(conversation, "read"),
                    f"{abbreviation}:{unit}:",
                    first,
                    len(values),
                )
            if bounds is None or _within(values, bounds[0], bounds[1]):
                return
            for offset, value in enumerate(values):
                self._value(
                    "ICS-5006", conversation, event, f"{abbreviation}:{unit}:{first + offset}", value, out
                )

    def _floats(
        self, conversation: Conversation, event: Any, shape: Any, values: tuple[Any, ...], out: Emitter
    ) -> tuple[Any, ...]:
        """Register pairs learned as 32-bit floats (``register_floats``), judged as floats.

        A pair learned as a float in an order whose low word looks like one (its written range
        all 0, round setpoints, or half the 16-bit span or more, mantissa bits; a register of its
        own, such as a scaled analog, is narrower) and whose value reads as a plausible float in
        that order is judged by the float's written range: out of it, ICS-5006 on the float, and
        the two registers are not judged again; within it, the low word is not judged (it is no
        process value: 55.3 after round setpoints) but the high word still is.  The float catches
        what the high word's margin lets by (6208.0 after 50 to 60).  Returns the values left to
        judge one by one (None where judged here).
        """
        _, _, unit, first, count = shape
        pairs = self.write_floats.get(shape, _UNKNOWN)
        if pairs is _UNKNOWN:
            written = self._limits(conversation, "written")
            found: list[tuple[int, dict[str, tuple[Limit, int]]]] = []
            for offset in range(0, count - 1, 2):
                limits: dict[str, tuple[Limit, int]] = {}
                for order, swapped in MODBUS_FLOAT_ORDERS:
                    limit = written.get(f"hr:{unit}:{first + offset}:{order}")
                    low = offset if swapped else offset + 1  # the low word's position
                    word = written.get(f"hr:{unit}:{first + low}")
                    if (
                        limit is not None
                        and word is not None
                        and (word[3] == word[2] == 0 or word[3] - word[2] >= 0x8000)
                    ):
                        limits[order] = (limit, low)
                if limits:
                    found.append((offset, limits))
            pairs = self.write_floats[shape] = found or None
        if pairs is None:
            return values
        rest = list(values)
        for offset, limits in pairs:
            readings = [(order, value) for order, value in register_floats(values, offset) if order in limits]
            if not readings:
                continue  # no plausible float in a learned order: the registers judge
            within = [
                order for order, value in readings if limits[order][0][0] <= value <= limits[order][0][1]
            ]
            if within:
                rest[limits[within[0]][1]] = None
                continue
            rest[offset] = rest[offset + 1] = None
            order, value = readings[0]
            self._out_of_range(
                "ICS-5006",
                conversation,
                event,
                f"hr:{unit}:{first + offset}:{order}",
                value,
                limits[order][0],
                out,
                "written",
                f"registers {first + offset}-{first + offset + 1} = {values[offset]}, {values[offset + 1]}"
                f" read as a 32-bit float ({'high' if order == 'f32' else 'low'} word first)",
            )
        return tuple(rest)

    def _mask_write(self, conversation: Conversation, event: Any, point: str, out: Emitter) -> None:
        """A mask write (FC 22) with an AND mask other than 0, judged by what it can leave.

        The register becomes (current AND and_mask) OR (or_mask AND NOT and_mask): the bits the
        AND mask clears are set from the OR mask, the others keep the current value, which the
        request does not carry.  Whatever that value, the result lies between the forced bits
        alone and the forced bits with every kept bit set.  When even that whole span is outside
        the register's learned range (its written one, else the one it was read with), the write
        is out of range whatever the register held: ICS-5006 on the nearest value it can give.
        """
        extra = getattr(event, "extra", None) or {}
        and_mask, or_mask = extra.get("and_mask"), extra.get("or_mask")
        if not isinstance(and_mask, int) or not isinstance(or_mask, int):
            return
        forced = or_mask & ~and_mask & 0xFFFF
        least, most = forced, forced | (and_mask & 0xFFFF)
        limit, origin = _written_else_read(
            point, self._limits(conversation, "written"), self._limits(conversation, "read"), None
        )
        if limit is None:
            return
        if least > limit[1]:
            value = least
            held = "whatever the register held"
        elif most < limit[0]:
            value = most
            held = "whatever the register held"
        else:
            # Within reach of the learned range: what the register held decides.  Held within
            # its learned range (what it was seen with), does every result still leave it?
            low, high = limit[2], limit[3]
            if not isinstance(low, int) or not isinstance(high, int) or high - low > MASK_VALUES_TRIED:
                return
            kept = and_mask & 0xFFFF
            allowed_low, allowed_high = limit[0], limit[1]
            results = {(current & kept) | forced for current in range(max(low, 0), min(high, 0xFFFF) + 1)}
            if not results or any(allowed_low <= result <= allowed_high for result in results):
                return  # a value it may hold stays within range
            value = min(results, key=lambda result: _distance(result, limit))
            least, most = min(results), max(results)
            held = f"whatever it held within its learned {low} to {high}"
        self._out_of_range(
            "ICS-5006",
            conversation,
            event,
            point,
            value,
            limit,
            out,
            origin,
            f"mask write AND 0x{and_mask:04x} OR 0x{or_mask:04x}: {least} to {most} {held}",
        )

    def _dnp3_targets(
        self,
        conversation: Conversation,
        event: Any,
        out: Emitter,
        code: int,
        group: int,
        points: list[int] | tuple[int, int] | None,
        rule_id: str,
    ) -> None:
        """The points of one DNP3 object header (``dnp3_points``) the client never addressed so.

        ICS-5005 for writes and controls, ICS-5011 for reads: first by the IP's pooled ranges
        (points new to the IP, or a whole-group request of a group never addressed), else by the
        outstation's own (``_dnp3_at_outstation``).
        """
        spans = [points] if isinstance(points, tuple) else [(i, i) for i in points or ()]
        scope = f"function {code} g{group}"
        pooled = conversation.dnp3_points
        if not spans:
            if (code, group) not in pooled:
                self._new_target(conversation, event, out, scope, None, None, rule_id)
                return
        else:
            for start, stop in spans[:MAX_VALUES_CHECKED]:
                if not conversation.covered(pooled, (code, group), start, stop):
                    learned = pooled.get((code, group))
                    self._new_target(conversation, event, out, scope, start, stop, rule_id, learned)
                    return
        self._dnp3_at_outstation(conversation, event, code, group, spans, out, rule_id)

    def _dnp3_at_outstation(
        self,
        conversation: Conversation,
        event: Any,
        code: int,
        group: int,
        spans: list[tuple[int, int]],
        out: Emitter,
        rule_id: str,
    ) -> None:
        """A request whose points the client addressed while learning, but at another outstation of the IP.

        One IP (a gateway, a terminal server in front of a multi-drop line) may front several
        outstations, whose point 3 are different breakers: learned TRIP and CLOSE of point 3 at
        outstation 10 say nothing of point 3 at outstation 11.  Judged by the ranges learned per
        outstation (``dnp3_outstation_points``); called once the IP's pooled ranges found nothing
        new.  ICS-5005 (``rule_id``) for writes and controls, ICS-5011 for reads.  An outstation
        never addressed with the function and group: for a write, ``_dnp3_outstation``; for a
        read, only when the baseline holds every outstation the client addressed.
        """
        dst = event.dst
        if not isinstance(dst, int):
            return
        table = conversation.dnp3_outstation_points
        key = (code, group, dst)
        learned = table.get(key)
        if learned is None:
            if rule_id == "ICS-5005":
                self._dnp3_outstation(conversation, event, code, group, spans, out)
            else:
                # Per conversation once: whether every outstation it addressed is in the table,
                # and where each function and group went (not a scan of the table per request).
                index: tuple[bool, dict[tuple[int, int], RangeSet]] | None = self.outstation_index.get(
                    conversation.key
                )
                if index is None:
                    index = self.outstation_index[conversation.key] = conversation.outstation_index()
                if not index[0]:
                    return
                scope = f"function {code} g{group} at outstation {dst}"
                others = index[1].get((code, group))
                if others is not None:
                    scope = f"{scope} (only at {_runs(others)} while learning)"
                start, stop = spans[0] if spans else (None, None)
                self._new_target(conversation, event, out, scope, start, stop, rule_id)
            return
        for start, stop in spans[:MAX_VALUES_CHECKED]:
            if not conversation.covered(table, key, start, stop):
                scope = f"function {code} g{group} at outstation {dst}"
                self._new_target(conversation, event, out, scope, start, stop, rule_id, learned)
                break

    def _dnp3_outstation(
        self, conversation: Conversation, event: Any, code: int, group: int, spans: Any, out: Emitter
    ) -> None:
        """A write or control to an outstation of the IP that the client never wrote this way to.

        One IP (a gateway, a terminal server) may carry several outstations: the points and
        controls learned on one say nothing of another's.  Judged where the baseline learned
        which outstations each write function and group went to (``dnp3_outstations``).
        """
        learned = conversation.dnp3_outstations
        dst = event.dst
        if not learned or not isinstance(dst, int):
            return
        outstations = learned.get((code, group))
        if outstations is None or outstations.covers(dst, dst):
            return  # never written this way at all: the point check names it
        scope = f"function {code} g{group} at outstation {dst} (only at {_runs(outstations)} while learning)"
        start, stop = spans[0] if spans else (None, None)
        self._new_target(conversation, event, out, scope, start, stop)

    def _dnp3_writes(self, conversation: Conversation, event: Any, out: Emitter) -> None:
        code = event.function_code
        if code not in DNP3_WRITE_FUNCTIONS:
            return
        for obj in event.objects:
            group = obj.get("group")
            if self.check_writes and isinstance(group, int):
                self._dnp3_targets(conversation, event, out, code, group, dnp3_points(obj), "ICS-5005")
            if group == 12 and (self.check_operations or self.check_written_values):
                self._crob(conversation, event, obj, out)
            if self.check_written_values and group == 41:
                for point in (obj.get("points") or ())[:MAX_VALUES_CHECKED]:
                    index = point.get("index")
                    self._value(
                        "ICS-5006",
                        conversation,
                        event,
                        dnp3_point(41, event.dst, index),
                        point.get("value"),
                        out,
                        read_point=dnp3_point(DNP3_STATUS_OF_OUTPUT[41], event.dst, index),
                        outstations=True,
                    )

    def _crob(self, conversation: Conversation, event: Any, obj: dict[str, Any], out: Emitter) -> None:
        """DNP3 control relay output blocks: the operation (ICS-5013), its pulse time and count (ICS-5006).

        A point operated while learning with CLOSE only, now sent TRIP (a breaker opened), or
        LATCH_ON where it was pulsed, is a new operation on a known point (a point never operated
        is a new write target, ICS-5005).  On-time and count are judged as written values.
        """
        for point in (obj.get("points") or ())[:MAX_VALUES_CHECKED]:
            index, control = point.get("index"), point.get("code")
            if not isinstance(index, int) or not isinstance(control, int):
                continue
            if self.check_operations:
                # The outstation's own point (one IP may front several), else any outstation's.
                crob = conversation.crob
                learned = crob.get(crob_point(event.dst, index))
                if learned is None:
                    learned = crob.get(crob_point(None, index))
                if learned is None:
                    # Never operated at this outstation, but at another of the IP's: judged as
                    # the IP's point (its write target there is ICS-5005's, ``_dnp3_at_outstation``).
                    suffix = f":{index}"
                    pooled = [codes for key, codes in crob.items() if key.endswith(suffix)]
                    learned = set().union(*pooled) if pooled else None
                if learned is not None and control not in learned:
                    self.deviations += 1
                    if self.probing:
                        continue
                    client = event.src_ip
                    name = dnp3_point(12, event.dst, index)
                    out.fire(
                        "ICS-5013",
                        f"{client}>{conversation.server}:dnp3:{name}:{control}",
                        ts=event.ts,
                        frames=(event.frame,),
                        source=event,
                        evidence={
                            "point": name,
                            "code": control,
                            "operation": crob_code_text(control),
                            "learned": [crob_code_text(code) for code in sorted(learned)],
                            "function": f"{event.function} ({event.function_code})",
                        },
                    )
            if self.check_written_values:
                for part in ("on_time", "count"):
                    self._value(
                        "ICS-5006",
                        conversation,
                        event,
                        dnp3_point(12, event.dst, index, part),
                        point.get(part),
                        out,
                        outstations=True,
                    )

    def _s7_writes(self, conversation: Conversation, event: Any, out: Emitter) -> None:
        # A WRITE_VAR job with items (``_writes`` checked).
        data_items = event.data_items or ()
        for index, item in enumerate(event.items):
            span = s7_item_span(item)
            if span is None:
                continue
            area = s7_area(item)
            if self.check_writes and not conversation.covered(
                conversation.s7, ("write", area), span[0], span[1]
            ):
                self._new_target(
                    conversation,
                    event,
                    out,
                    area,
                    span[0],
                    span[1],
                    learned=conversation.s7.get(("write", area)),
                )
            if self.check_written_values and index < len(data_items):
                values = data_items[index].get("values")
                if values:
                    self._s7_written(conversation, event, item, area, values[:MAX_VALUES_CHECKED], out)

    def _s7_written(
        self,
        conversation: Conversation,
        event: Any,
        item: dict[str, Any],
        area: str,
        values: Any,
        out: Emitter,
    ) -> None:
        """Judge the values of an S7 write item as the values they set.

        The first that applies:

        1. every element written while learning (``s7_points``: ``DB1:8:REAL``): by its written
           range;
        2. a range written at the item's bare address (``FLAGS:8``): baselines learned before S7
           written values were typed pooled every write there, typed or not;
        3. a block of values of no one type (``s7_points`` says None), chars, more bytes than
           are learned one by one, or bytes in a baseline learned before that, where such a block
           was written while learning: by that block's range (``FLAGS:8:BLOCK``);
        4. 2 or 4 BYTEs where one variable of that width was written, else read, at the address:
           decoded as that variable, judged by its written, else read, range (clients such as
           snap7's write REAL 35.0 as 66, 12, 0, 0; two BYTEs written while learning are learned
           as an INT, ``baseline._s7_block_points``);
        5. BYTEs over bytes written or read one at a time, or over flag bits written or read:
           byte by byte, each as its ``:BYTE`` point or else bit by bit, each by its written,
           else read, range;
        6. each element by its written, else read, range of the same type.

        Counters and timers (``S7_COUNTING_AREAS``) are not judged: they count.
        """
        if item.get("area") in S7_COUNTING_AREAS:
            return  # counters and timers count: no range says what they may be set to
        written = self._limits(conversation, "written")
        elements = s7_points(item, len(values))
        if elements is not None:
            limits: list[Limit] = []
            for element in elements:
                limit = written.get(element)
                if limit is None:
                    break
                limits.append(limit)
            else:
                for position, element in enumerate(elements):
                    self._judged(
                        "ICS-5006",
                        conversation,
                        event,
                        element,
                        values[position],
                        limits[position],
                        out,
                        "written",
                    )
                return
        address = item.get("address")
        pooled = f"{area}:{address}"
        limit = written.get(pooled)
        if limit is None and (elements is None or item.get("transport_size") in S7_BYTE_WIDE):
            pooled = f"{area}:{address}:{S7_BLOCK}"
            limit = written.get(pooled)
        if limit is not None:
            if not _all_within(values, limit[0], limit[1]):
                for value in values:
                    self._judged("ICS-5006", conversation, event, pooled, value, limit, out, "written")
            return
        read = self._limits(conversation, "read")
        if not written and not read:
            return  # no S7 value learned here: nothing to judge by (and no per-byte lookups)
        if _raw_bytes(item, values):
            # Bytes: the variable, else each byte or its flag bits, learned where they go.
            judged = _bytes_as_variable(item, area, values, written, read) or _bytes_one_by_one(
                item, area, values, written, read
            )
            if judged:
                # What the wire carried, beside the value it was judged as.
                raw = f"{len(values)} BYTE {bytes(values).hex()} at {area}:{item.get('address')}"
                for point, value, point_limit, origin in judged:
                    self._judged("ICS-5006", conversation, event, point, value, point_limit, out, origin, raw)
                return
        if elements is not None:
            judged_any = False
            for position, element in enumerate(elements):
                limit, origin = _written_else_read(element, written, read)
                if limit is not None:
                    judged_any = True
                    self._judged(
                        "ICS-5006", conversation, event, element, values[position], limit, out, origin
                    )
            if judged_any:
                return
            # Nothing learned of this type here: the same bytes as the variable learned there (a
            # DB that is not optimized stores bytes; two WORDs or a DWORD set a REAL as well).
            typed = _typed_bytes(item, values)
            if typed is not None:
                name = item.get("transport_size_name")
                shown = f"{len(values)} {name} {typed.hex()} at {area}:{item.get('address')}"
                for point, value, point_limit, origin in _bytes_as_variable(item, area, typed, written, read):
                    self._judged(
                        "ICS-5006", conversation, event, point, value, point_limit, out, origin, shown
                    )

    def _judged(
        self,
        rule_id: str,
        conversation: Conversation,
        event: Any,
        point: str,
        value: Any,
        limit: Limit,
        out: Emitter,
        learned_from: str = "",
        written_as: str = "",
    ) -> None:
        """``value`` (a bool as 0/1; not a number: not judged) reported when outside ``limit``.

        ``learned_from``, ``written_as``: see ``_out_of_range``.
        """
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, float)):
            return
        if not limit[0] <= value <= limit[1]:
            self._out_of_range(
                rule_id, conversation, event, point, value, limit, out, learned_from, written_as
            )

    def _new_target(
        self,
        conversation: Conversation,
        event: Any,
        out: Emitter,
        scope: str,
        first: int | None = None,
        last: int | None = None,
        rule_id: str = "ICS-5005",
        learned: RangeSet | None = None,
    ) -> None:
        """A write to ``first``-``last`` of ``scope``, never written while learning: one alert per scope.

        ``rule_id`` ICS-5011: a read, never read while learning, in the same way.  ``learned``: what
        was written (read) in the scope while learning; the alert names only the addresses outside it.

        A scope: a Modbus unit's table, a DNP3 function and group, an S7 area.  The alert names
        the scope's new addresses as merged runs ("holding_registers 0-3, 5") and every function
        that wrote them.  A file moved block by block into holding registers (a covert channel) is
        one finding that grows, not an alert per block.
        """
        self.deviations += 1
        if self.probing or not self.seen.first(("target", rule_id, conversation.key, scope, first, last)):
            return
        # [writes counted, merged address runs, functions that wrote, the first write's target]
        cell: list[Any] | None = self.new_targets.get((conversation.key, rule_id, scope))
        if cell is None:
            written = (
                scope if first is None else f"{scope} {first}" if first == last else f"{scope} {first}-{last}"
            )
            cell = self.new_targets[(conversation.key, rule_id, scope)] = [0, RangeSet(), [], written]
        cell[0] += 1
        written_ranges: RangeSet = cell[1]
        if first is not None and last is not None and len(written_ranges) < MAX_RANGES:
            # Short of its cap, where the closest ranges would merge over addresses nobody wrote:
            # past it a scope's new targets are counted, not named.
            for low, high in learned.missing(first, last) if learned is not None else ((first, last),):
                written_ranges.add(low, high)
        runs = written_ranges.ranges
        functions: list[str] = cell[2]
        function = f"{event.function} ({event.function_code})"
        if function not in functions and len(functions) < 8:
            functions.append(function)
        count: int = cell[0]
        shown = [f"{a}-{b}" if b != a else str(a) for a, b in runs[:MAX_TARGETS_LISTED]]
        more = ", ..." if len(runs) > MAX_TARGETS_LISTED else ""
        named = f"{scope} {', '.join(shown)}{more}" if shown else scope
        if count > 1:
            named = f"{named} ({count} {'reads' if rule_id == 'ICS-5011' else 'writes'})"
        key = f"{conversation.client}>{conversation.server}:{conversation.protocol}:{scope}"
        evidence = {
            "target": cell[3],
            "targets": [f"{scope} {run}" for run in shown] or [scope],
            "distinct_targets": count,
            "function": ", ".join(functions),
        }
        # The open alert of the scope named wider, else a new one: widened at the 2nd, 4th, 8th ...
        # new target (an alert update per target of a sweep of thousands is a storm downstream).
        widen = count > 1 and out.open_alert(rule_id, key, event.ts) is not None
        if widen and count & (count - 1):
            # Said at the next clock tick (``advance``), or at the end, whichever comes first.
            self.unreported[(rule_id, key)] = (event, evidence, {"target": named})
            return
        self.unreported.pop((rule_id, key), None)
        _say_target(out.widen if widen else out.fire, rule_id, key, event, evidence, named)

    def advance(self, ts: float, out: Emitter) -> None:
        """A clock tick: new-target alerts widened (``_new_target``), silent polled conversations (ICS-5012).

        New-target alerts grown since last said are widened; polled conversations gone silent
        for too long are reported (``_stops``, looked over every STOP_SCAN_SECONDS of capture time).
        """
        if self.unreported:
            self._widen_targets(out)
        if self.check_stops:
            last_tick = self._last_tick
            self._last_tick = ts
            if last_tick is not None and ts - last_tick > STOP_GAP_SECONDS:
                # Nothing at all was seen for a while: unwatched time, not the polls' silence.
                for watch in self.watched.values():
                    watch[0] += ts - last_tick
            next_scan = self._next_stop_scan
            if next_scan is None or ts >= next_scan:
                self._next_stop_scan = ts + STOP_SCAN_SECONDS
                self._stops(ts, out)

    def _watch(self, conversation: Conversation) -> list[Any]:
        """The conversation's ICS-5012 watch (shared by its flows), or [] when it is not watched.

        Its cycle: the slowest learned 8-interval median (the top of the window) of its fastest
        poll.  A stop is a silence of ``cycles`` of them, at least ``min_seconds``, and at least
        ``silence_factor`` times the longest silence learned: a master that reads in bursts (an
        HMI asking only while a screen is open) is not stopped between two bursts.  Not watched:
        a conversation with no learned poll, one whose polls lasted less than twice that silence
        while learning, or one learned before silences were (``silence`` 0).
        """
        watch: list[Any] | None = self.watches.get(conversation.key)
        if watch is None:
            polls = [
                poll
                for poll in conversation.polling.values()
                if poll.median is not None and poll.count >= MIN_POLL_SAMPLES
            ]
            watch = []
            if polls and conversation.silence:
                cycle: float = min(poll.window[1] if poll.window else poll.median or 0.0 for poll in polls)
                threshold = max(
                    self.stop_cycles * cycle, self.stop_minimum, self.stop_silences * conversation.silence
                )
                # Polled for at least twice that while learning (samples times cycle): a client
                # seen polling for a moment (a tool, a one-off session) stops as it always did.
                polled_for = max(poll.count * (poll.median or 0.0) for poll in polls)
                if polled_for >= 2 * threshold:
                    watch = [0.0, 0, None, threshold, cycle, True, conversation.silence, 0.0]
                    self.watched[conversation.key] = watch
            self.watches[conversation.key] = watch
        return watch

    def _stops(self, now: float, out: Emitter) -> None:
        """ICS-5012: a polled conversation seen in this run, then silent both ways for too long."""
        for key, watch in self.watched.items():
            if watch[5]:
                continue
            silent: float = now - watch[0]
            if silent <= watch[3]:
                continue
            watch[5] = True
            client, server, transport, port, protocol = key
            conversation = self.baseline.conversation(key)
            polls = 0 if conversation is None else len(conversation.polling)
            out.fire(
                "ICS-5012",
                f"{client}>{server}:{protocol}:{transport}/{port}",
                ts=now,
                frames=(watch[1],),
                fields={"protocol": protocol},
                protocol=protocol,
                endpoints={
                    "flow_id": watch[2],
                    "transport": transport,
                    "src_ip": client,
                    "dst_ip": server,
                    "dst_port": port,
                },
                evidence={
                    "last_seen_ts": watch[7],
                    "silent_seconds": round(silent, 3),
                    "learned_cycle": round(watch[4], 6),
                    "threshold_seconds": round(watch[3], 3),
                    "learned_silence": round(watch[6], 3),
                    "learned_polls": polls,
                },
            )

    def finish(self, out: Emitter) -> None:
        """The end: every grouped alert (new targets, values out of range) grown since last said is widened."""
        if self.unreported:
            self._widen_targets(out)

    def _widen_targets(self, out: Emitter) -> None:
        for (rule_id, key), (event, evidence, fields) in list(self.unreported.items()):
            _say(out.widen, rule_id, key, event, evidence, fields)
        self.unreported.clear()

    def _limits(self, conversation: Conversation, kind: str) -> PointLimits:
        """A conversation's learned ``kind`` ("written", "read") values as limits, point by point."""
        cache_key = (conversation.key, kind)
        limits: PointLimits | None = self.limits.get(cache_key)
        if limits is None:
            if kind == "written":
                limits = PointLimits(conversation.values, kind, self.written_margin, self.written_magnitude)
            else:
                limits = PointLimits(conversation.values, kind, self.read_margin, self.read_magnitude)
            self.limits[cache_key] = limits
        return limits

    def _value(
        self,
        rule_id: str,
        conversation: Conversation,
        event: Any,
        point: str,
        value: Any,
        out: Emitter,
        read_point: str | None = None,
        outstations: bool = False,
    ) -> None:
        if rule_id == "ICS-5006":
            # A register nobody wrote while learning is judged by the values it was read with
            # (those of ``read_point`` when the output is read elsewhere: DNP3 g41 as g40).
            # ``outstations``: a DNP3 point (``dnp3_point``), whose own outstation's ranges come
            # first, then any outstation's (``*``, written then read), last the same point as the
            # IP's other outstations had it (``PointLimits.pooled``, written then read).
            written = self._limits(conversation, "written")
            read = self._limits(conversation, "read")
            at_read = point if read_point is None else read_point
            limit, origin = written.get(point), "written"
            if limit is None and outstations and written.anywhere():
                limit = written.get(_outstation_as(point, DNP3_ANY_OUTSTATION))
            if limit is None:
                limit, origin = read.get(at_read), "read"
                if limit is None and outstations:
                    if read.anywhere():
                        limit = read.get(_outstation_as(at_read, DNP3_ANY_OUTSTATION))
                    if limit is None:
                        limit, origin = written.pooled(point), "written"
                    if limit is None:
                        limit, origin = read.pooled(at_read), "read"
        else:
            limit, origin = self._limits(conversation, "read").get(point), ""
        if limit is not None:
            self._judged(rule_id, conversation, event, point, value, limit, out, origin)

    def _out_of_range(
        self,
        rule_id: str,
        conversation: Conversation,
        event: Any,
        point: str,
        value: Any,
        limit: Limit,
        out: Emitter,
        learned_from: str = "",
        written_as: str = "",
    ) -> None:
        """Fire ``rule_id`` for ``value`` at ``point`` outside ``limit``.

        ICS-5006 says which learned range judged the write: ``learned_from``, "written" or "read"
        (``_written_else_read``; S7 writes may be judged by another point's range).  ``written_as``:
        what the wire carried when the value is a decoding of it (S7 bytes read as a REAL or as
        bits), kept in the evidence.
        """
        # Counted before any grouping or cap: a worker's ``WorkerCheck`` passes no record with a
        # value out of range, whether or not it made an alert.
        self.deviations += 1
        if self.probing:
            return
        low, high = limit[2], limit[3]
        # Above and below the range are findings of their own: a 0 written after a 9999 is not
        # one more count on the 9999.
        side = "above" if value > limit[1] else "below"
        evidence: dict[str, Any] = {
            "point": point,
            "value": value,
            "learned_min": low,
            "learned_max": high,
            "margin": round(limit[1] - high, 9),
            "side": side,
        }
        if rule_id == "ICS-5006":
            # A read range reads as "never written while learning": say which judged.
            evidence["learned_from"] = learned_from
            if written_as:
                evidence["written_as"] = written_as
        if out.throttles(rule_id):
            self._value_group(rule_id, conversation, event, evidence, out)
            return
        # Unthrottled (every firing its own alert, as a worker's ``ReadCheck`` runs it): an alert
        # per point and side.  At most MAX_POINT_ALERTS points of one conversation each get one: a
        # tool writing every register out of range is one sweep (ICS-4007, ICS-5005), not
        # thousands of alerts; the points that have one go on counting.
        key = f"{conversation.client}>{conversation.server}:{conversation.protocol}:{point}:{side}"
        named: set[str] | None = self.point_alerts.get((conversation.key, rule_id))
        if named is None:
            named = self.point_alerts[(conversation.key, rule_id)] = set()
        if key not in named:
            if len(named) >= MAX_POINT_ALERTS:
                return
            named.add(key)
        out.fire(
            rule_id,
            key,
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence=evidence,
            fields={"points_text": _point_text(evidence)},
        )

    def _value_group(
        self, rule_id: str, conversation: Conversation, event: Any, found: dict[str, Any], out: Emitter
    ) -> None:
        """A value out of range, in the one alert per conversation and rule that names them all.

        A process excursion takes several read values out of their bands at once (speed, pressure,
        an alarm bit), and a rogue write may set several registers: one alert lists the points
        with the first value seen out of range at each (``points``, up to MAX_POINTS_LISTED; the
        count of all in ``distinct_points``), its evidence led by the first point.  A point seen
        out of range again is one more occurrence of the alert; a new point widens it (at the 2nd,
        4th, 8th ... new point at once, the others at the next clock tick, as ``_new_target``).
        """
        # The client by the record (a request's source, a response's destination): a server
        # profile judging new clients (``conversation.client`` "*") keeps one alert per client.
        client = event.src_ip if event.direction == "request" else event.dst_ip
        group_key = (conversation.key, client, rule_id)
        key = f"{client}>{conversation.server}:{conversation.protocol}:{conversation.transport}/{conversation.port}"
        name = f"{found['point']}:{found['side']}"
        # A record with several values out of range is one occurrence (one frame, one count).
        record = (event.frame, event.ts)
        cell: list[Any] | None = self.value_groups.get(group_key)
        if cell is None or out.open_alert(rule_id, key, event.ts) is None:
            # A new alert (the first, or the last one's window has passed): its own points.
            cell = self.value_groups[group_key] = [{name: found}, {name}, record]
            self.unreported.pop((rule_id, key), None)
            _say(out.fire, rule_id, key, event, *_value_evidence(cell))
            return
        listed: dict[str, dict[str, Any]] = cell[0]
        names: set[str] = cell[1]
        counted = cell[2] == record
        cell[2] = record
        # Past MAX_GROUPED_POINTS a new point counts as an occurrence, as a point already named.
        new = name not in names and len(names) < MAX_GROUPED_POINTS
        if not new:
            # One more occurrence, unless this record was counted already.  A widening not yet
            # said stays due: an occurrence does not carry the evidence.
            if not counted:
                _say(out.fire, rule_id, key, event, *_value_evidence(cell))
            return
        names.add(name)
        if len(listed) < MAX_POINTS_LISTED:
            listed[name] = found
        count = len(names)
        if count & (count - 1):
            # Said at the next clock tick (``advance``), or at the end, whichever comes first.
            self.unreported[(rule_id, key)] = (event, *_value_evidence(cell))
            return
        self.unreported.pop((rule_id, key), None)
        _say(out.widen, rule_id, key, event, *_value_evidence(cell))

    def _reads(self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter) -> None:
        event_type: str = fields["event_type"]
        if event_type == "modbus":
            self._modbus_reads(conversation, event, fields, out)
        elif event_type == "dnp3" and fields["function_code"] in DNP3_RESPONSE_FUNCTIONS:
            self._dnp3_reads(conversation, event, out)
        elif (
            event_type == "s7comm"
            and fields["rosctr"] == 3
            and fields["function_code"] == S7_READ_VAR
            and fields["items"]
            and fields["data_items"]
        ):
            self._s7_reads(conversation, event, out)

    def _s7_reads(self, conversation: Conversation, event: Any, out: Emitter) -> None:
        # A READ_VAR answer: its items are the request's, its data items the values read, each
        # value judged against its element's point (``s7_points``).
        limits = self._limits(conversation, "read")
        if not limits:
            return
        data_items = event.data_items
        for index, item in enumerate(event.items[: len(data_items)]):
            values = data_items[index].get("values")
            if not values:
                continue
            if len(values) > MAX_VALUES_CHECKED:
                values = values[:MAX_VALUES_CHECKED]
            points = s7_points(item, len(values))
            if points is None:
                continue
            for point, value in zip(points, values, strict=True):
                limit = limits.get(point)
                if limit is not None:
                    self._judged("ICS-5007", conversation, event, point, value, limit, out)

    def _modbus_reads(
        self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter
    ) -> None:
        table = MODBUS_READ_TABLES.get(fields["function_code"])
        values = fields["values"]
        address = fields["address"]
        if table is None or not values or address is None:
            return
        limits = self._limits(conversation, "read")
        if not limits:
            return
        if len(values) > MAX_VALUES_CHECKED:
            values = values[:MAX_VALUES_CHECKED]
        unit = fields["unit_id"]
        prefix = f"{TABLE_ABBREVIATIONS[table]}:{unit}:"
        key = (conversation.key, table, unit, address, len(values))
        bounds = self.read_bounds.get(key, _UNKNOWN)
        if bounds is _UNKNOWN:
            once = self.read_once
            if key not in once:
                once[key] = True
                for offset, learned in limits.outside(prefix, address, values):
                    point = f"{prefix}{address + offset}"
                    self._out_of_range("ICS-5007", conversation, event, point, values[offset], learned, out)
                return
            del once[key]
            bounds = self._read_bounds(key, limits, prefix, address)
        # The hot path of polling traffic.  A poll mostly reads what the last one read: values
        # equal to the last ones found in range are in range (one tuple comparison in C).
        # Otherwise every value against its limits in two C loops; the value-by-value walk
        # only when one is out of range.
        if bounds is None or values == bounds[2]:
            return
        lows, highs = bounds[0], bounds[1]
        if not (any(map(lt, values, lows)) or any(map(gt, values, highs))):
            bounds[2] = values
            return
        for offset, value in enumerate(values):
            if not lows[offset] <= value <= highs[offset]:  # unlearned points are unbounded
                point = f"{prefix}{address + offset}"
                limit = limits.get(point)
                if limit is not None:
                    self._out_of_range("ICS-5007", conversation, event, point, value, limit, out)

    def _read_bounds(
        self, key: tuple[Any, ...], limits: PointLimits, prefix: str, first: int, fallback: str | None = None
    ) -> Any:
        """[lows, highs, last values found in range] of a read shape, computed once.

        ``key`` ends with the shape's value count.  None when none of its points was learned.
        """
        bounds = self.read_bounds.get(key, _UNKNOWN)
        if bounds is _UNKNOWN:
            # ``compute``: the shape keeps the result, the point cache need not.
            found = limits.bounds(prefix, first, key[-1], fallback)
            bounds = self.read_bounds[key] = None if found is None else [found[0], found[1], None]
        return bounds

    def _dnp3_reads(self, conversation: Conversation, event: Any, out: Emitter) -> None:
        limits = self._limits(conversation, "read")
        if not limits:
            return
        outstation = event.src
        if not isinstance(outstation, int):
            outstation = DNP3_ANY_OUTSTATION
        anywhere = limits.anywhere()
        for header in event.objects:
            # Object headers and points are dicts (``events.dnp3``): typed, their ``get`` is a
            # direct dict lookup in compiled code, not a method call.
            obj: dict[str, Any] = header
            points = obj.get("points")
            if not points:
                continue
            # Events and frozen values as their static point; counters and the rest not at all.
            group = DNP3_VALUE_GROUPS.get(obj.get("group", -1))
            if group is None:
                continue
            if len(points) > MAX_VALUES_CHECKED:
                points = points[:MAX_VALUES_CHECKED]
            # The answering outstation's points (``dnp3_point``), else any outstation's.
            prefix = f"g{group}:{outstation}:"
            start = obj.get("start")
            first_point: dict[str, Any] = points[0]
            last_point: dict[str, Any] = points[-1]
            if (
                obj.get("prefix_code") == 0
                and start is not None
                and first_point.get("index") == start
                and last_point.get("index") == start + len(points) - 1
            ):
                # A range of points (the usual static or class poll): as Modbus reads, the limits
                # per response shape once, a response equal to the last in-range one passes, else
                # every value checked in C.  Point by point below only when one may be off.
                values = [_point_value(point) for point in points]
                bounds = self._read_bounds(
                    (conversation.key, outstation, group, start, len(values)),
                    limits,
                    prefix,
                    start,
                    f"g{group}:{DNP3_ANY_OUTSTATION}:" if anywhere else None,
                )
                if bounds is None or values == bounds[2]:
                    continue
                if _within(values, bounds[0], bounds[1]):
                    bounds[2] = values
                    continue
            # As ``_value`` per point, with the limits looked up once per response.
            for point in points:
                entry: dict[str, Any] = point
                if "value" not in entry:
                    continue
                index = entry.get("index")
                key = f"{prefix}{index}"
                limit = limits.get(key)
                if limit is None and anywhere:
                    limit = limits.get(f"g{group}:{DNP3_ANY_OUTSTATION}:{index}")
                if limit is None:
                    continue
                value = entry["value"]
                if isinstance(value, bool):
                    value = int(value)
                elif not isinstance(value, (int, float)):
                    continue
                if not limit[0] <= value <= limit[1]:
                    self._out_of_range("ICS-5007", conversation, event, key, value, limit, out)

    def _polling(
        self, conversation: Conversation, event: Any, fields: dict[str, Any], out: Emitter, entry: list[Any]
    ) -> None:
        # A poll's signature (``request_signature``) is made of a few fields: the common polls are
        # looked up per conversation by those fields' tuple, without formatting the signature
        # (records hold integers there: equal tuples format to equal signatures).
        event_type: str = fields["event_type"]
        shape: Any = None
        if event_type == "modbus":
            shape = (fields["function_code"], fields["unit_id"], fields["address"], fields["quantity"])
        elif event_type == "dnp3":
            shape = (
                fields["function_code"],
                fields["src"],
                fields["dst"],
                *[_header_shape(obj) for obj in fields["objects"][:8]],
            )
        elif event_type == "s7comm":
            rosctr = fields["rosctr"]
            items = fields["items"]
            if rosctr == 1 and items:
                try:
                    if len(items) == 1:  # the usual job: one item, its tuple without a star build
                        shape = (fields["function_code"], _S7_ITEM_FIELDS(items[0]))
                    else:
                        shape = (fields["function_code"], *map(_S7_ITEM_FIELDS, items[:8]))
                except (KeyError, TypeError):  # an item without a plain address: the signature says
                    shape = None
            elif rosctr == 7:
                userdata: dict[str, Any] | None = fields["userdata"]
                if userdata is not None:  # an SZL or cyclic read: "ud" keeps it apart from jobs
                    shape = (
                        "ud",
                        userdata.get("group"),
                        userdata.get("subfunction"),
                        fields["szl_id"],
                        fields["szl_index"],
                    )
        if shape is None:
            slot = self._poll_slot(conversation, request_signature(event))
        else:
            polls: dict[Any, Any] | None = entry[4]
            if polls is None:
                polls = entry[4] = self._per_conversation(self.poll_fields, conversation, dict)
            slot = polls.get(shape)
            if slot is None:
                slot = self._poll_slot(conversation, request_signature(event))
                if len(polls) < MAX_POLLS_PER_CONVERSATION:
                    polls[shape] = slot
        if slot is not _NOT_POLLED:
            self._interval(conversation, event, fields["ts"], slot, out)

    @staticmethod
    def _per_conversation(table: BoundedDict, conversation: Conversation, make: Callable[[], Any]) -> Any:
        """The conversation's entry of ``table`` (its flows share it: memory goes by conversations)."""
        found = table.get(conversation.key)
        if found is None:
            found = table[conversation.key] = make()
        return found

    def _poll_slot(self, conversation: Conversation, signature: str | None) -> Any:
        """(signature, learned median, spread, tolerance, state) of a learned recurring request.

        The state, shared by the conversation's flows: [last time, recent intervals, drifted,
        how many recent intervals are off the learned cycle].
        """
        if signature is None:
            return _NOT_POLLED
        learned = conversation.polling.get(signature)
        if learned is None or learned.median is None or learned.count < MIN_POLL_SAMPLES:
            # Too few samples to be a rhythm: the saved baseline leaves it out (``to_dict``), and
            # the one enforced right after ``--learn-for`` must be the one the file shows.
            return _NOT_POLLED
        key = (conversation.key, signature)
        slot = self.polls.get(key)
        if slot is None:
            # Drift: the cycle is ``max_ratio`` times slower or faster, and the change exceeds both
            # the learned jitter (spread) and a floor that ignores scheduling noise of fast polls.
            tolerance = max(self.drift_spreads * (learned.spread or 0.0), self.drift_minimum)
            low, high = learned.window or (learned.median, learned.median)
            slot = self.polls[key] = (
                signature,
                learned.median,
                learned.spread,
                tolerance,
                [None, [], False, 0],
                low,
                high,
            )
        return slot

    def _interval(self, conversation: Conversation, event: Any, ts: float, slot: Any, out: Emitter) -> None:
        signature, learned_median, learned_spread, slot_tolerance, slot_state, slot_low, slot_high = slot
        # Typed locals: compiled, the list is indexed and the bounds compared as C values.
        state: list[Any] = slot_state  # [last ts, recent intervals, drifted, off count]
        tolerance: float = slot_tolerance
        low: float = slot_low
        high: float = slot_high
        last = state[0]
        state[0] = ts
        if last is None:
            return
        interval: float = ts - last
        ratio = self.drift_ratio
        recent: list[float] = state[1]
        recent.append(interval)
        off = state[3]
        # Within the tolerance of the learned window is never off (the usual case, tested inline).
        if (interval > high + tolerance or interval < low - tolerance) and _drifted(
            interval, low, high, tolerance, ratio
        ):
            off += 1
        if len(recent) > RECENT_INTERVALS:
            gone = recent.pop(0)
            if (gone > high + tolerance or gone < low - tolerance) and _drifted(
                gone, low, high, tolerance, ratio
            ):
                off -= 1
            state[3] = off
        else:
            state[3] = off
            if len(recent) < RECENT_INTERVALS:
                return
        # The window's median lies between two of its intervals: with every interval within the
        # learned cycle's bounds (an interval around the learned median), so is the median.
        if off:
            ordered = sorted(recent)
            median = (ordered[RECENT_INTERVALS // 2 - 1] + ordered[RECENT_INTERVALS // 2]) / 2
            drifted = _drifted(median, low, high, tolerance, ratio)
        else:
            drifted = False
        if drifted and not state[2]:
            state[2] = True
            out.fire(
                "ICS-5008",
                f"{conversation.client}>{conversation.server}:{conversation.protocol}:{signature}",
                ts=event.ts,
                frames=(event.frame,),
                source=event,
                evidence={
                    "signature": signature,
                    "recent_median": round(median, 6),
                    "learned_median": round(learned_median, 6),
                    "learned_spread": None if learned_spread is None else round(learned_spread, 6),
                    "learned_window": [round(low, 6), round(high, 6)],
                    "tolerance": round(tolerance, 6),
                    "max_ratio": ratio,
                },
                fields={"learned_low": round(low, 6), "learned_high": round(high, 6)},
            )
        elif not drifted:
            state[2] = False


# What a worker checks (``WorkerCheck``): responses of these protocols for their read values,
# requests of these for their function, targets and written values.
_CHECKED_RESPONSES: Final = frozenset({"modbus", "dnp3", "s7comm"})
_CHECKED_REQUESTS: Final = frozenset({"modbus", "dnp3", "s7comm"})
# The rules whose findings a worker's check looks for.
_CHECKED_RULES: Final = ("ICS-5004", "ICS-5005", "ICS-5006", "ICS-5007", "ICS-5011", "ICS-5013")


class WorkerCheck:
    """The baseline's stateless checks of a record, run where it is dissected: in the shard workers.

    A worker owns every record of its flows and has the CPU the analysing process may lack: on
    traffic whose polls are mostly new shapes (new clients, changing reads), checking read values
    was a fifth of that process's work, and checking requests (function, write and read targets,
    written values) a seventh of it on S7 traffic.  ``passes`` runs ``BaselineDeviation``'s own
    checks against the conversation the record's endpoints name, probing (``probing``: findings
    are counted, no alert is made): a Modbus, DNP3 or S7 response's read values (ICS-5007); a Modbus,
    DNP3 or S7 request's function (ICS-5004), write and read targets (ICS-5005, ICS-5011), written
    values (ICS-5006) and CROB operations (ICS-5013).  Those depend on the baseline and the
    record alone, not on what came before.  A record with no finding crosses the pipe marked so
    (``shard.EVENT_PASSED``); the analysing process skips those checks of it when its engine
    enforces the baseline the worker loaded and the flow's conversation is that same one
    (``BaselineDeviation.on_event``).  Anything else (a finding, an unknown conversation) is
    checked there as before, so alerts, their evidence and throttling stay where they were and
    equal a one-process run.  What depends on earlier records (polling rhythm, new assets and
    conversations, writers, stops) is always the analysing process's.
    """

    def __init__(self, rules: RuleSet, baseline: Baseline) -> None:
        self._detector: BaselineDeviation | None = None
        self._requests = False
        if any(rules.enabled(rule_id) for rule_id in _CHECKED_RULES):
            detector = self._detector = BaselineDeviation(Context(rules, baseline))
            detector.probing = True
            self._requests = (
                detector.check_functions
                or detector.check_writes
                or detector.check_written_values
                or detector.check_reads
                or detector.check_operations
            )
        self._conversations: dict[ConversationKey, Conversation] = baseline.conversations
        # Per conversation: the entry ``BaselineDeviation`` keeps per flow (its write profile).
        self._entries: BoundedDict = BoundedDict(MAX_FLOWS)
        self._out = Emitter(rules)

    def passes(self, event: Any) -> bool:
        """True when the checks find nothing in ``event`` (a response's values, a request's targets)."""
        detector = self._detector
        if detector is None:
            return False
        fields: dict[str, Any] = event.__dict__
        event_type: str = fields["event_type"]
        direction = fields.get("direction")
        if direction == "response":
            if event_type not in _CHECKED_RESPONSES or not detector.check_read_values:
                return False
            conversation = self._conversations.get(
                (fields["dst_ip"], fields["src_ip"], fields["transport"], fields["src_port"], event_type)
            )
            if conversation is None or not conversation.values:
                return False
        elif direction == "request":
            if event_type not in _CHECKED_REQUESTS or not self._requests:
                return False
            key = (fields["src_ip"], fields["dst_ip"], fields["transport"], fields["dst_port"], event_type)
            conversation = self._conversations.get(key)
            if conversation is None:
                return False
        else:
            return False
        out = self._out
        found = detector.deviations
        try:
            if direction == "response":
                detector._reads(conversation, event, fields, out)
            elif not self._request(detector, conversation, event, fields, out):
                return False
        except Exception:  # the analysis checks it again, and reports its own failure as one process does
            out.out.clear()
            return False
        if out.out or detector.deviations != found:
            # A finding, alerted on or not (past a cap, throttled): the analysis has its own.
            out.out.clear()
            return False
        return True

    def _request(
        self,
        detector: BaselineDeviation,
        conversation: Conversation,
        event: Any,
        fields: dict[str, Any],
        out: Emitter,
    ) -> bool:
        """A request's checks as ``BaselineDeviation.on_event`` runs them; False on a new function."""
        if detector.check_functions:
            function = function_key(event)
            if function is not None and not conversation.knows_function(function[0]):
                return False
        if detector.check_writes or detector.check_written_values:
            entry: list[Any] | None = self._entries.get(conversation.key)
            if entry is None:
                entry = self._entries[conversation.key] = [conversation, conversation.key, None]
            detector._writes(detector._write_profile(conversation, entry), event, fields, out)
        if detector.check_reads:
            detector._read_targets(conversation, event, fields, out)
        return True


class LazyWorkerCheck:
    """A ``WorkerCheck`` built when first needed: by the first record it could pass.

    Loading the baseline and rules costs a worker 0.4-0.7 s of the CPU it dissects with (11,900
    conversations); a capture of other protocols never needs them.  ``load`` returns None when the
    check cannot be had (the files changed, or do not load): every answer is then False.
    """

    def __init__(self, load: Callable[[], WorkerCheck | None]) -> None:
        self._load = load
        self._check: WorkerCheck | None = None
        self._loaded = False

    def passes(self, event: Any) -> bool:
        """``WorkerCheck.passes``, after loading it if this is the first record it applies to."""
        check = self._check
        if check is None:
            if self._loaded:
                return False
            fields: dict[str, Any] = event.__dict__
            direction = fields.get("direction")
            event_type = fields["event_type"]
            if not (
                (direction == "response" and event_type in _CHECKED_RESPONSES)
                or (direction == "request" and event_type in _CHECKED_REQUESTS)
            ):
                return False
            self._loaded = True
            check = self._check = self._load()
            if check is None:
                return False
        return check.passes(event)


# S7ANY types a block of 2 or 4 written bytes may be read as: (type name, struct format).
_S7_TYPES_OF_WIDTH: Final = {
    2: (("INT", ">h"), ("WORD", ">H")),
    4: (("REAL", ">f"), ("DINT", ">i"), ("DWORD", ">I")),
}


# S7ANY types of 2 or 4 bytes a write may carry, as their bytes (``_typed_bytes``).
_S7_LAYOUTS: Final = {name: layout for types in _S7_TYPES_OF_WIDTH.values() for name, layout in types}


def _typed_bytes(item: dict[str, Any], values: Any) -> bytes | None:
    """The bytes of a write of WORD, INT, DWORD, DINT or REAL values, when 2 or 4 in all; else None."""
    layout = _S7_LAYOUTS.get(item.get("transport_size_name") or "")
    if layout is None:
        return None
    try:
        raw = b"".join(struct.pack(layout, value) for value in values)
    except (struct.error, TypeError):
        return None  # a value that is not of the type (cut, or malformed)
    return raw if len(raw) in _S7_TYPES_OF_WIDTH else None


def _raw_bytes(item: dict[str, Any], values: Any) -> bool:
    """Whether ``values`` are bytes written as BYTEs to a plain address.

    Counters and timers never reach here (``_s7_written`` returns before).
    """
    return (
        item.get("transport_size") == S7_BYTE
        and isinstance(item.get("address"), int)
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values)
    )


def _bytes_as_variable(
    item: dict[str, Any], area: str, values: Any, written: PointLimits, read: PointLimits
) -> list[tuple[str, Any, Limit, str]]:
    """2 or 4 raw bytes (``_raw_bytes``) where one variable of that width was learned there.

    The variable's type is the one written at the item's address (as ``s7_points`` names it),
    else the one read there, when exactly one type of that width was; its value is judged by its
    written, else read, range.  [(point, value, limit, origin)], or [] when no type is known.
    """
    types = _S7_TYPES_OF_WIDTH.get(len(values))
    if types is None:
        return []
    address = item.get("address")
    for learned in (written, read):
        found: tuple[str, str] | None = None
        for name, layout in types:
            point = f"{area}:{address}:{name}"
            if learned.get(point) is None:
                continue
            if found is not None:
                found = None  # learned as two types of that width: which one is meant is unknown
                break
            found = (point, layout)
        if found is not None:
            limit, origin = _written_else_read(found[0], written, read)
            if limit is not None:
                return [(found[0], struct.unpack(found[1], bytes(values))[0], limit, origin)]
    return []


def _bytes_one_by_one(
    item: dict[str, Any], area: str, values: Any, written: PointLimits, read: PointLimits
) -> list[tuple[str, Any, Limit, str]]:
    """Raw bytes (``_raw_bytes``) over bytes or flag bits learned one at a time: (point, value, limit, origin).

    An HMI sets single bytes and single flag bits, and reads them; a write of whole bytes sets
    every bit of each.  A byte learned as a ``:BYTE`` point is judged as one, else each of its
    bits learned as a ``:BIT`` point (named as ``s7_points`` names them) is judged.
    """
    judged: list[tuple[str, Any, Limit, str]] = []
    address: int = item["address"]  # an int: ``_raw_bytes``
    for offset, byte in enumerate(values):
        point = f"{area}:{address + offset}:BYTE"
        limit, origin = _written_else_read(point, written, read)
        if limit is not None:
            judged.append((point, byte, limit, origin))
            continue
        for position in range(8):
            point = f"{area}:{address + offset}.{position}:BIT"
            limit, origin = _written_else_read(point, written, read)
            if limit is not None:
                judged.append((point, byte >> position & 1, limit, origin))
    return judged


def _distance(value: int, limit: Limit) -> float:
    """How far ``value`` lies outside the allowed range of ``limit`` (0 within it)."""
    return max(limit[0] - value, value - limit[1], 0)


def _written_else_read(
    point: str, written: PointLimits, read: PointLimits, read_point: str | None = None
) -> tuple[Limit | None, str]:
    """The limits a write to ``point`` is judged by, and which they are ("written" or "read").

    ``read_point``: where the written point's values are read, when not at ``point`` itself.
    """
    limit = written.get(point)
    if limit is not None:
        return limit, "written"
    return read.get(point if read_point is None else read_point), "read"


def _outstation_as(point: str, outstation: str) -> str:
    """A DNP3 point's name (``dnp3_point``) with another outstation: ``g41:10:1`` -> ``g41:*:1``."""
    parts = point.split(":")
    return ":".join([parts[0], outstation, *parts[2:]]) if len(parts) >= 3 else point


def _point_value(point: dict[str, Any]) -> Any:
    return point.get("value")


def _header_shape(obj: dict[str, Any]) -> tuple[Any, ...]:
    """What a DNP3 object header adds to a poll's signature (``request_signature``)."""
    return (obj.get("group"), obj.get("variation"), obj.get("qualifier"))


_UNKNOWN: Final = object()
_INFINITY: Final = float("inf")
_NOT_POLLED: Final[tuple[Any, ...]] = ()
# What an S7 item adds to a poll's signature (``request_signature``).
_S7_ITEM_FIELDS: Final = itemgetter("area", "db", "address", "length")


def _within(values: Any, lows: tuple[float, ...], highs: tuple[float, ...]) -> bool:
    """True when every value is a number within its (low, high), checked in C.

    False when one may be out of range or is not a plain number (a string, None, a NaN that no
    comparison catches): the caller then checks value by value, as it would without this.
    """
    try:
        if any(map(lt, values, lows)) or any(map(gt, values, highs)):
            return False
        return not math.isnan(sum(values))
    except (TypeError, OverflowError):
        return False


def _all_within(values: Any, low: float, high: float) -> bool:
    """``_within`` with one (low, high) for every value."""
    try:
        if len(values) == 1:
            # The common case (one variable written): one comparison, no builtin calls.  A NaN
            # compares False; a string raises TypeError.
            return bool(low <= values[0] <= high)
        if not values or min(values) < low or max(values) > high:
            return False
        return not math.isnan(sum(values))
    except (TypeError, OverflowError):
        return False


def _drifted(interval: float, low: float, high: float, tolerance: float, max_ratio: float) -> bool:
    """Whether ``interval`` (or a window's median) is off a learned cycle.

    The cycle: the range [low, high] the window median took while learning (one point for a steady
    poll).  Off: ``max_ratio`` times slower than its top or faster than its bottom, and farther
    from it than ``tolerance``.  The values that are not off form one interval of numbers.
    """
    if interval > high:
        return max(interval, 1e-6) / max(high, 1e-6) > max_ratio and interval - high > tolerance
    if interval < low:
        return max(interval, 1e-6) / max(low, 1e-6) < 1 / max_ratio and low - interval > tolerance
    return False


def _margin(width: float, low: float, high: float, ratio: float, magnitude: float) -> float:
    """A learned range's margin: ``ratio`` of its width, at least ``magnitude`` of its larger size.

    In C doubles when compiled (no builtin calls); ties and signs as max() and abs() give them.
    """
    low_size = low if low >= 0.0 else -low
    high_size = high if high >= 0.0 else -high
    by_width = width * ratio
    by_size = (low_size if low_size >= high_size else high_size) * magnitude
    return by_width if by_width >= by_size else by_size


class PointLimits:
    """Per point of one conversation: (low - margin, high + margin, low, high) from its learned range.

    Margin: a share of the learned width, but at least a share of the value's size, so a counter
    learned at 14017 may reach 14018 while a coil learned at 0 must stay 0.  Computed when a point
    is first asked for, not for every learned point at once: a conversation may hold thousands of
    points (MAX_VALUE_POINTS) of which traffic checks a few, and 5,000 of them computed in full
    took a second and most of a replay's memory.  ``get`` remembers what it computed (unlearned
    points too, up to a cap); ``compute`` does not (for callers that keep their own result).
    """

    __slots__ = ("_any", "_anywhere", "_kind", "_known", "_magnitude", "_ratio", "_values")

    def __init__(
        self, values: dict[tuple[str, str], tuple[Number, Number]], kind: str, ratio: float, magnitude: float
    ) -> None:
        self._values = values
        self._kind = kind
        self._ratio = ratio
        self._magnitude = magnitude
        self._known: dict[str, Limit | None] = {}
        self._any: bool | None = None
        self._anywhere: bool | None = None

    def __bool__(self) -> bool:
        """Whether any value of this kind was learned for the conversation."""
        if self._any is None:
            kind = self._kind
            self._any = any(key[0] == kind for key in self._values)
        return self._any

    def anywhere(self) -> bool:
        """Whether a DNP3 point of any outstation (``g30:*:5``, ``inventory.baseline.dnp3_point``) is here."""
        if self._anywhere is None:
            kind = self._kind
            marker = f":{DNP3_ANY_OUTSTATION}:"
            self._anywhere = any(key[0] == kind and marker in key[1] for key in self._values)
        return self._anywhere

    def compute(self, point: str) -> Limit | None:
        """The point's limits, or None when it was never learned."""
        bounds = self._values.get((self._kind, point))
        if bounds is None:
            return None
        low, high = bounds[0], bounds[1]
        # The width taken exactly first (ints), then C doubles as Python's mixed arithmetic converts.
        low_f: float = low
        high_f: float = high
        margin = _margin(high - low, low_f, high_f, self._ratio, self._magnitude)
        return (low_f - margin, high_f + margin, low, high)

    def bounds(
        self, prefix: str, address: int, count: int, fallback: str | None = None
    ) -> tuple[tuple[Number, ...], tuple[Number, ...]] | None:
        """``_bounds`` without a fallback, in one pass: (lows, highs) of ``count`` points from ``address``.

        The read path's cold step, once per read shape of a conversation: ``compute``'s margin
        without a method call and a 4-tuple per point.  None when no point was learned.
        ``fallback``: the prefix of a point's name to try when it is not learned under ``prefix``
        (a DNP3 point of any outstation).
        """
        values = self._values
        kind = self._kind
        ratio: float = self._ratio
        magnitude: float = self._magnitude
        lows: list[float] = []
        highs: list[float] = []
        known = False
        for offset in range(count):
            learned = values.get((kind, f"{prefix}{address + offset}"))
            if learned is None and fallback is not None:
                learned = values.get((kind, f"{fallback}{address + offset}"))
            if learned is None:
                lows.append(-_INFINITY)
                highs.append(_INFINITY)
                continue
            known = True
            low = learned[0]
            high = learned[1]
            low_f: float = low
            high_f: float = high
            margin = _margin(high - low, low_f, high_f, ratio, magnitude)
            lows.append(low_f - margin)
            highs.append(high_f + margin)
        return (tuple(lows), tuple(highs)) if known else None

    def outside(self, prefix: str, address: int, values: Any) -> list[tuple[int, Limit]]:
        """(offset, limits) of the ``values`` (of the points from ``address`` on) outside their limits.

        A shape's values checked once, without its bounds (``bounds``): a value within its
        learned range needs no margin; only one beyond it is judged by its limits (``get``).
        Unlearned points are not judged.
        """
        learned_values = self._values
        kind = self._kind
        found: list[tuple[int, Limit]] = []
        for offset in range(len(values)):
            learned = learned_values.get((kind, f"{prefix}{address + offset}"))
            if learned is None:
                continue
            value = values[offset]
            if learned[0] <= value <= learned[1]:
                continue
            limit = self.get(f"{prefix}{address + offset}")
            if limit is not None and not limit[0] <= value <= limit[1]:
                found.append((offset, limit))
        return found

    def pooled(self, point: str) -> Limit | None:
        """A DNP3 point's limits over the same point of every outstation, remembered.

        ``g41:11:1`` -> the union of ``g41:10:1``, ``g41:*:1`` ... as learned.  For a write or
        control to a point this outstation never had written while learning, when the IP's other
        outstations did: judged as the IP's point, as before points were kept per outstation.
        """
        parts = point.split(":")
        if len(parts) < 3:
            return None
        name = _outstation_as(point, "?")  # remembered apart from the points themselves
        known = self._known
        limit = known.get(name, _UNKNOWN)
        if limit is _UNKNOWN:
            kind = self._kind
            head = parts[0] + ":"
            tail = parts[2:]
            low: Any = None
            high: Any = None
            for key, bounds in self._values.items():
                if key[0] != kind or not key[1].startswith(head):
                    continue
                other = key[1].split(":")
                if len(other) != len(parts) or other[2:] != tail:
                    continue
                if low is None or bounds[0] < low:
                    low = bounds[0]
                if high is None or bounds[1] > high:
                    high = bounds[1]
            limit = None
            if low is not None:
                low_f: float = low
                high_f: float = high
                margin = _margin(high - low, low_f, high_f, self._ratio, self._magnitude)
                limit = (low_f - margin, high_f + margin, low, high)
            if len(known) < 2 * MAX_VALUE_POINTS:
                known[name] = limit
        return limit  # type: ignore[return-value]

    def get(self, point: str) -> Limit | None:
        """As ``compute``, remembered."""
        known = self._known
        limit = known.get(point, _UNKNOWN)
        if limit is _UNKNOWN:
            limit = self.compute(point)
            # Capped: the unlearned points traffic asks for are not bounded by the baseline.
            if len(known) < 2 * MAX_VALUE_POINTS:
                known[point] = limit
        return limit  # type: ignore[return-value]


def _runs(ranges: RangeSet, limit: int = 8) -> str:
    """Ranges as text: "10-12, 15" (the first ``limit``)."""
    return ", ".join(f"{a}-{b}" if b != a else str(a) for a, b in ranges.ranges[:limit])


def _bounds(
    limits: PointLimits, fallback: PointLimits | None, prefix: str, address: int, count: int
) -> tuple[tuple[Number, ...], tuple[Number, ...]] | None:
    """Per value at ``address``: (lows, highs) from ``limits`` (else ``fallback``); None if none has limits."""
    lows: list[Number] = []
    highs: list[Number] = []
    known = False
    for offset in range(count):
        point = f"{prefix}{address + offset}"
        limit = limits.compute(point)
        if limit is None and fallback is not None:
            limit = fallback.compute(point)
        if limit is None:
            lows.append(-_INFINITY)
            highs.append(_INFINITY)
        else:
            known = True
            lows.append(limit[0])
            highs.append(limit[1])
    return (tuple(lows), tuple(highs)) if known else None


# Learned addresses sharing one MAC that make it a router's (``IdentityChange``).
ROUTED_IPS: Final = 3


class IdentityChange(BaseDetector):
    """ICS-5009: the inventory saw a device report a different identity (firmware, module ...).

    With a baseline, also a learned address claimed in ARP by a MAC it was never learned with:
    the inventory reports a MAC replacing another only within its own memory, which a fresh state
    directory (``--baseline FILE``) does not have.  The same key as the inventory's change: both
    make one alert.
    """

    name = "identity_change"
    rule_ids = ("ICS-5009",)
    wants_changes = True
    event_types = frozenset({"arp"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.baseline: Baseline | None = context.baseline
        self.seen = SeenSet()
        # MACs the baseline learned with ROUTED_IPS addresses or more: a router's, which the hosts
        # behind it were learned with; such a host claiming its address on a mirrored segment
        # (a VLAN added to the SPAN) is no new MAC of its own.
        self.routers: set[str] = set()
        if self.baseline is not None:
            counts: dict[str, int] = {}
            for macs in self.baseline.asset_macs.values():
                for learned_mac in macs:
                    counts[learned_mac] = counts.get(learned_mac, 0) + 1
            self.routers = {learned_mac for learned_mac, n in counts.items() if n >= ROUTED_IPS}

    def on_event(self, event: Any, out: Emitter) -> None:
        """An ARP claim of a learned address by a MAC not learned with it."""
        baseline = self.baseline
        if baseline is None:
            return
        ip, mac = event.sender_ip, event.sender_mac
        learned = baseline.asset_macs.get(ip) if ip else None
        if not learned or mac in learned or not is_unicast_mac(mac):
            return
        if not self.routers.isdisjoint(learned) or not self.seen.first((ip, mac)):
            return
        before = ", ".join(learned)
        out.fire(
            "ICS-5009",
            f"{asset_id_for('ip', ip)}:mac",
            ts=event.ts,
            frames=(event.frame,),
            endpoints={"src_ip": ip, "src_mac": mac},
            evidence={
                "asset_id": asset_id_for("ip", ip),
                "ip": ip,
                "mac": mac,
                "field": "mac",
                "before": f"{before} (the baseline)",
                "after": mac,
            },
        )

    def on_changes(self, changes: list[Any], out: Emitter) -> None:
        """Fire per identity change."""
        for change in changes:
            if change.kind != "identity_change":
                continue
            out.fire(
                "ICS-5009",
                f"{change.asset_id}:{change.field}",
                ts=change.ts,
                frames=(change.frame,) if change.frame else (),
                endpoints={"src_ip": change.ip, "src_mac": change.mac},
                evidence={
                    "asset_id": change.asset_id,
                    "ip": change.ip,
                    "mac": change.mac,
                    "field": change.field,
                    "before": change.before,
                    "after": change.after,
                },
            )
