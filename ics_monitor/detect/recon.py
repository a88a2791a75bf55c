"""Reconnaissance: sweeps and enumeration that precede an attack on a control system.

* Modbus unit-id sweep: one client addresses many unit ids of one server within a window.
* Modbus function-code sweep: one client tries many function codes on one server, or gets
  ILLEGAL_FUNCTION back for several (probing what the device supports).
* Device identification enumeration: Modbus FC 43/14 or FC 17, or DNP3 group 0 reads, aimed at
  several devices (server and unit) by one client.
* S7 SZL enumeration from a new host: several distinct identifying SZL lists (module and component
  identification, list of lists, memory and block types ...) read by a client that the baseline
  does not know as an S7 client of that PLC (every client, without a baseline).
* DNP3 address sweep: one host sends requests (link-only probes included) to many DNP3 link
  addresses that send it no application data (a master hears back from every outstation it polls).
* TCP scan of OT ports: one host with failed or probe-only connections (rejected, unanswered SYN,
  reset without payload) to many (server, port) pairs, at least one of them an OT service port.
* OT port misuse: a flow to a Modbus, DNP3 or S7 port whose bytes are another protocol (TLS, HTTP,
  RDP ...), or on the Modbus and DNP3 ports no protocol known here.
* UDP scan of OT ports: one host with unanswered UDP probes (a datagram or a few, nothing back) to
  many (server, port) pairs, at least one of them an OT service port (DNP3, BACnet, EtherNet/IP,
  PROFINET, Modbus/UDP ...).
* ICMP host sweep: one host pinging (echo, timestamp or address-mask requests) many addresses that
  never answer; answered pings do not count, so a monitoring server polling live devices is quiet.

With a baseline, what a (client, server) pair did while learning is routine and does not count
toward its sweeps (``Baseline.pair_profile``): the unit ids and DNP3 link addresses its requests
addressed, the function codes it used, the devices whose identification it read.  A SCADA server
polling the thirty units behind a gateway, or a master polling the outstations of a multi-drop
line, is quiet; the same host walking units or addresses it never used still counts every new one.

State is one small set per key within a window (``WindowedSets``), keys capped, sets capped at a
few times the threshold; each detector reads its thresholds from its rule's ``params``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final

from ics_monitor.core.addresses import ip_sort_key
from ics_monitor.core.bounded import BoundedDict
from ics_monitor.core.ports import TCP_SERVICES, UDP_SERVICES
from ics_monitor.detect.api import BaseDetector, Context, Emitter
from ics_monitor.dissect.s7comm.constants import TPDU_CR
from ics_monitor.inventory.baseline import (
    Baseline,
    Conversation,
    identification_target,
    is_asset_ip,
    is_tcp_knock,
)

MAX_KEYS = 50_000
# ICS-3005: how stale an exchange's place in the capped table may get (see Dnp3AddressSweep).
EXCHANGE_REFRESH_SECONDS: Final = 60.0
# Past its threshold, a key's set keeps growing up to MAX_SCOPE values: the scope its alert shows
# (every unit id of a sweep, not the first few).  At most MAX_WIDE_KEYS keys at a time grow past
# the cap below the threshold (a host or two scanning at once is the case; thousands, a flood).
MAX_SCOPE: Final = 1024
MAX_WIDE_KEYS: Final = 256
# A grown set is reported (``take_grown``) once it is a tenth larger than last reported, once the
# sweep paused this long (capture seconds), or this long after its last report: a fast sweep of a
# thousand values gives a few dozen copies of its alert, a slow one a copy per new value at most.
GROWTH_RATIO: Final = 1.1
PAUSE_SECONDS: Final = 2.0
REPORT_SECONDS: Final = 60.0

# The fields of a key's state (a list).
_START: Final = 0  # window start
_VALUES: Final = 1  # the distinct values
_CROSSED: Final = 2  # threshold reached
_LAST: Final = 3  # time of the latest new value
_SOURCE: Final = 4  # the record that brought it (once crossed)
_REPORTED: Final = 5  # set size last reported
_REPORTED_AT: Final = 6  # when


class WindowedSets:
    """Distinct values per key while new ones keep coming; says when a key's set first reaches the threshold.

    The window runs from the latest new value (never backwards): a key's values are one sweep as
    long as each new value comes within ``window`` seconds of the one before it, however long the
    sweep takes.  So a walk paced at one probe a minute (nmap's slower timing templates, a
    patient attacker) crosses the threshold as a fast one does, a few values at a time.  Values
    seen again do not keep the sweep alive: a poller's fixed set never grows.  Once the threshold
    is reached the set keeps growing while the sweep goes on; ``take_grown`` says which sets grew
    enough to be reported again.
    """

    __slots__ = ("cap", "grown", "pruned", "states", "threshold", "wide", "window")

    def __init__(self, window: float, threshold: int, limit: int = MAX_KEYS) -> None:
        self.window = float(window)
        self.threshold = int(threshold)
        self.cap = max(4 * self.threshold, 16)
        # key -> [window start, values, threshold reached, time of the latest new value, its
        # record, set size last reported, when]
        self.states: BoundedDict = BoundedDict(limit)
        self.grown: dict[Any, None] = {}
        self.wide: set[Any] = set()
        self.pruned = -math.inf  # when the wide keys were last looked over

    def add(
        self, key: Any, value: Any, ts: float, source: Any = None, force: bool = False
    ) -> tuple[float, set[Any]] | None:
        """Add ``value`` under ``key``; return (window start, values) when the threshold is crossed.

        ``source``: the record that brought the value, kept (the latest) once the threshold is
        reached, for the alert ``take_grown`` leads to.  ``force``: add it below the threshold
        even when the set is at its cap (a value the rule needs to fire at all).
        """
        state = self.states.get(key)
        if state is None or abs(ts - state[_LAST]) > self.window:
            if state is None:
                state = [ts, set(), False, ts, None, 0, ts]
                self.states[key] = state
            else:  # a new sweep, in the key's list (a new set: a crossing's caller may hold the old)
                state[:] = [ts, set(), False, ts, None, 0, ts]
            self.wide.discard(key)
        values = state[_VALUES]
        if value in values:
            return None
        if state[_CROSSED]:
            # The sweep goes on, even when its set is full: the window slides, never backwards
            # (flow records come in the order they end, not begin).
            state[_LAST] = max(state[_LAST], ts)
            if len(values) < self.cap or (len(values) < MAX_SCOPE and self._widen(key, ts)):
                values.add(value)
                state[_SOURCE] = source
                self.grown[key] = None
            return None
        if len(values) < self.cap or force:
            values.add(value)
            state[_LAST] = max(state[_LAST], ts)
        if len(values) >= self.threshold:
            state[_CROSSED] = True
            state[_LAST] = max(state[_LAST], ts)
            state[_SOURCE] = source
            state[_REPORTED] = len(values)
            state[_REPORTED_AT] = ts
            return state[_START], values
        return None

    def _widen(self, key: Any, ts: float) -> bool:
        """Whether ``key``'s set may grow past the cap (room among the live keys that do)."""
        wide = self.wide
        if key in wide:
            return True
        if len(wide) >= MAX_WIDE_KEYS:
            # Looked over at most once a second of capture: with every slot taken by a live sweep,
            # each further value would walk them all.
            if abs(ts - self.pruned) < 1.0:
                return False
            self.pruned = ts
            states = self.states
            cap = self.cap
            window = self.window
            wide.intersection_update(
                [
                    k
                    for k in wide
                    if k in states and len(states[k][_VALUES]) > cap and abs(ts - states[k][_LAST]) <= window
                ]
            )
            if len(wide) >= MAX_WIDE_KEYS:
                return False
        wide.add(key)
        return True

    def take_grown(self, now: float | None) -> list[tuple[Any, float, set[Any], float, Any]]:
        """(key, window start, values, time and record of the latest new value) per set to report.

        A set that grew since last reported, by GROWTH_RATIO, or whose sweep paused PAUSE_SECONDS
        before ``now``, or last reported REPORT_SECONDS before it; every grown set when ``now`` is
        None (the end).  The others wait for a later call.
        """
        grown = self.grown
        if not grown:
            return []
        states = self.states
        out = []
        waiting: dict[Any, None] = {}
        for key in grown:
            state = states.get(key)
            if state is None or not state[_CROSSED]:
                continue
            size = len(state[_VALUES])
            last = state[_LAST]
            if (
                now is None
                or size >= state[_REPORTED] * GROWTH_RATIO
                or now - last >= PAUSE_SECONDS
                or now - state[_REPORTED_AT] >= REPORT_SECONDS
            ):
                state[_REPORTED] = size
                state[_REPORTED_AT] = last if now is None else now
                out.append((key, state[_START], state[_VALUES], last, state[_SOURCE]))
            else:
                waiting[key] = None
        self.grown = waiting
        return out

    def rearm(self, key: Any) -> None:
        """Count ``key`` as below its threshold again (it reached it without what the rule needs)."""
        state = self.states.get(key)
        if state is not None:
            state[_CROSSED] = False
            state[_SOURCE] = None
        self.grown.pop(key, None)


def _params(context: Context, rule_id: str, *names: str) -> list[Any]:
    return [context.rules.param(rule_id, name) for name in names]


def spans(numbers: Iterable[int]) -> str:
    """Sorted integers as runs: ``0-30, 40, 42-45`` (a sweep's scope at a glance)."""
    runs: list[str] = []
    first = last = None
    for number in sorted(set(numbers)):
        if last is not None and number == last + 1:
            last = number
            continue
        if first is not None:
            runs.append(str(first) if first == last else f"{first}-{last}")
        first = last = number
    if first is not None:
        runs.append(str(first) if first == last else f"{first}-{last}")
    return ", ".join(runs)


# What a sweep alert says: (rule id, alert key, frame, evidence, fields, endpoints).
Report = tuple[str, str, int, dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]
# Endpoints of an alert about a source host, not one flow.
_HOST_ONLY: Final = {"dst_ip": None, "dst_port": None, "flow_id": None, "src_port": None}


def _profile(baseline: Baseline | None, client: Any, server: Any, protocol: str) -> Conversation | None:
    """What ``client`` did with ``server`` over ``protocol`` while learning, or None (no baseline, new pair)."""
    if baseline is None:
        return None
    return baseline.pair_profile(client, server, protocol)


# The evidence note of a sweep counted against a baseline, and what its explanation adds.
_NOT_COUNTED: Final = "not counted: {} this client used with the server while learning"
_UNLEARNED: Final = " it never used while learning"


def _identity_learned(baseline: Baseline | None, event: Any, address: int) -> bool:
    """Whether the request's client read the identification of ``address`` while learning.

    ``address``: the server's unit id or DNP3 link address.  False without a baseline.
    """
    profile = _profile(baseline, event.src_ip, event.dst_ip, event.event_type)
    return profile is not None and profile.identified.covers(address, address)


def _send(emit: Callable[..., None], found: Report, ts: float, source: Any) -> None:
    """A sweep's alert through ``Emitter.fire`` or ``Emitter.widen``."""
    rule_id, alert_key, frame, evidence, fields, endpoints = found
    emit(
        rule_id,
        alert_key,
        ts=ts,
        frames=(frame,),
        source=source,
        evidence=evidence,
        fields=fields,
        endpoints=endpoints,
    )


class _Sweep(BaseDetector):
    """A detector over ``WindowedSets``: its rule fires when a key's set reaches the threshold.

    While the sweep goes on, the alert widens (``Emitter.widen``) at the clock ticks its set has
    grown enough by (``WindowedSets.take_grown``): the analyst sees the whole scope (every unit id,
    port or address probed), not the first few that crossed the threshold.  Subclasses say what
    the alert says (``report``).
    """

    wants_time = True
    sets: WindowedSets

    def advance(self, ts: float, out: Emitter) -> None:
        """A clock tick: the alerts of the sets grown enough since last reported (``widen_all``)."""
        self.widen_all(out, ts)

    def finish(self, out: Emitter) -> None:
        """The end: the alerts of every set grown since last reported."""
        self.widen_all(out, None)

    def widen_all(self, out: Emitter, now: float | None) -> None:
        """``widen`` over the detector's sets (``sets``; a detector with others says which)."""
        self.widen(self.sets, out, now)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """The alert of ``key``'s set, or None when it is not one (yet)."""
        raise NotImplementedError

    def raised(self, key: Any, start: float, values: set[Any], source: Any, ts: float, out: Emitter) -> bool:
        """Fire the alert of a set that reached its threshold; False when ``report`` said none."""
        found = self.report(key, start, values, source)
        if found is None:
            return False
        _send(out.fire, found, ts, source)
        return True

    # The evidence field that counts what the alert names.
    scope_field: ClassVar[str] = ""

    def scope(self, evidence: dict[str, Any]) -> tuple[int, ...]:
        """How much of a sweep an alert's evidence names (compared, never shrunk)."""
        return (int(evidence.get(self.scope_field) or 0),)

    def widen(self, sets: WindowedSets, out: Emitter, now: float | None) -> None:
        """The alerts of ``sets``' keys that grew enough since last reported (all: ``now`` None).

        An open alert that names more (another window's sweep counted into it) is left as it is.
        """
        for key, start, values, ts, source in sets.take_grown(now):
            found = self.report(key, start, values, source)
            if found is None:
                continue
            current = out.open_alert(found[0], found[1], ts)
            if current is not None and self.scope(found[3]) <= self.scope(current.evidence):
                continue
            _send(out.widen, found, ts, source)


class ModbusUnitSweep(_Sweep):
    """ICS-3001: many unit ids of one server from one client."""

    name = "modbus_unit_sweep"
    rule_ids = ("ICS-3001",)
    scope_field = "distinct_unit_ids"
    event_types = frozenset({"modbus"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3001", "window", "min_unit_ids")
        self.sets = WindowedSets(window, threshold)
        self.baseline = context.baseline

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct unit ids per (client, server), but the ones the pair used while learning."""
        if event.direction != "request":
            return
        client = event.src_ip
        server = event.dst_ip
        unit = event.unit_id
        if self.baseline is not None:
            profile = _profile(self.baseline, client, server, "modbus")
            if profile is not None and isinstance(unit, int) and profile.addresses.covers(unit, unit):
                return
        key = (client, server)
        crossed = self.sets.add(key, unit, event.ts, event)
        if crossed is not None:
            self.raised(key, crossed[0], crossed[1], event, event.ts, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``."""
        evidence = {
            "unit_ids": sorted(values)[:64],
            "distinct_unit_ids": len(values),
            "window_start": start,
            "threshold": self.sets.threshold,
        }
        if self.baseline is not None:
            evidence["baseline"] = _NOT_COUNTED.format("unit ids")
        fields = {
            "unit_spans": spans(unit for unit in values if isinstance(unit, int)),
            "unlearned": "" if self.baseline is None else _UNLEARNED,
        }
        return "ICS-3001", f"{key[0]}>{key[1]}", source.frame, evidence, fields, None


# ICS-3002's reasons as the explanation words them.
_SWEEP_HOW: Final = {
    "distinct_functions": "{} distinct function codes requested",
    "illegal_function_exceptions": "{} function codes refused with ILLEGAL FUNCTION",
}


class ModbusFunctionSweep(_Sweep):
    """ICS-3002: many function codes tried, or several answered ILLEGAL_FUNCTION.

    One alert per (client, server) for either reason; once the codes tried reach their threshold,
    the alert names them (the refused ones are among them).
    """

    name = "modbus_function_sweep"
    rule_ids = ("ICS-3002",)
    event_types = frozenset({"modbus"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, distinct, illegal = _params(
            context, "ICS-3002", "window", "min_distinct_functions", "min_illegal_function_exceptions"
        )
        self.tried = WindowedSets(window, distinct)
        self.refused = WindowedSets(window, illegal)
        self.baseline = context.baseline

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct request functions and refused functions per (client, server).

        A function code the pair used while learning counts for neither (refused then too, it is
        the client's routine).
        """
        if event.direction == "request":
            key = (event.src_ip, event.dst_ip)
            sets = self.tried
        elif event.exception_code == 1:
            key = (event.dst_ip, event.src_ip)
            sets = self.refused
        else:
            return
        code = event.function_code
        if self.baseline is not None:
            profile = _profile(self.baseline, key[0], key[1], "modbus")
            if profile is not None and str(code) in profile.functions:
                return
        crossed = sets.add(key, code, event.ts, event)
        if crossed is not None:
            self.raised(key, crossed[0], crossed[1], event, event.ts, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``: the codes tried once they reached their threshold, else the refused ones."""
        tried = self.tried.states.get(key)
        if tried is not None and tried[_CROSSED]:
            reason, start, values = "distinct_functions", tried[_START], tried[_VALUES]
        else:
            reason = "illegal_function_exceptions"
        evidence = {
            "reason": reason,
            "function_codes": sorted(values)[:64],
            "distinct_function_codes": len(values),
            "window_start": start,
        }
        if self.baseline is not None:
            evidence["baseline"] = _NOT_COUNTED.format("function codes")
        client, server = key
        endpoints = {"src_ip": client, "dst_ip": server, "src_port": None, "dst_port": None}
        how = _SWEEP_HOW[reason].format(len(values))
        fields = {"how": how if self.baseline is None else f"{how}, none of them used while learning"}
        return "ICS-3002", f"{client}>{server}", source.frame, evidence, fields, endpoints

    def scope(self, evidence: dict[str, Any]) -> tuple[int, ...]:
        """See ``_Sweep``: the codes tried name more than the codes refused."""
        tried = 1 if evidence.get("reason") == "distinct_functions" else 0
        return (
            tried,
            int(evidence.get("distinct_function_codes") or len(evidence.get("function_codes") or ())),
        )

    def widen_all(self, out: Emitter, now: float | None) -> None:
        """See ``_Sweep``: refused codes widen the alert only while the codes tried are below theirs."""
        self.widen(self.tried, out, now)
        tried = self.tried.states
        refused = self.refused.grown
        for key in list(refused):
            state = tried.get(key)
            if state is not None and state[_CROSSED]:
                del refused[key]
        self.widen(self.refused, out, now)


class DeviceIdEnumeration(_Sweep):
    """ICS-3003: identification requests aimed at several devices by one client."""

    name = "device_id_enumeration"
    rule_ids = ("ICS-3003",)
    scope_field = "distinct_devices"
    event_types = frozenset({"modbus", "dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3003", "window", "min_devices")
        self.sets = WindowedSets(window, threshold)
        self.baseline = context.baseline

    def on_event(self, event: Any, out: Emitter) -> None:
        """Modbus FC 43/14 and FC 17 requests; DNP3 READ of group 0 (device attributes).

        A device whose identification the client read while learning does not count.
        """
        if event.direction != "request":
            return
        address = identification_target(event)
        if address is None or _identity_learned(self.baseline, event, address):
            return
        crossed = self.sets.add(event.src_ip, (event.dst_ip, address), event.ts, event)
        if crossed is not None:
            self.raised(event.src_ip, crossed[0], crossed[1], event, event.ts, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``."""
        by_host: dict[str, list[int]] = {}
        for ip, unit in values:
            by_host.setdefault(ip, []).append(unit)
        hosts = sorted(by_host, key=ip_sort_key)
        evidence = {
            # Per host, its unit ids or link addresses as runs: "10.0.0.3/1-100" (every one of a
            # sweep named, in numeric order, not the first 32 of a text sort).
            "devices": [f"{ip}/{spans(by_host[ip])}" for ip in hosts][:32],
            "distinct_devices": len(values),
            "window_start": start,
        }
        unlearned = ""
        if self.baseline is not None:
            evidence["baseline"] = _NOT_COUNTED.format("devices whose identification")
            unlearned = " it never read while learning"
        return "ICS-3003", str(key), source.frame, evidence, {"unlearned": unlearned}, None


class S7SzlEnumeration(_Sweep):
    """ICS-3004: several SZL lists read by a host not known as an S7 client of that PLC."""

    name = "s7_szl_enumeration"
    rule_ids = ("ICS-3004",)
    scope_field = "distinct_szl"
    event_types = frozenset({"s7comm"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold, lists = _params(
            context, "ICS-3004", "window", "min_distinct_szl", "identity_lists"
        )
        self.sets = WindowedSets(window, threshold)
        # SZL partial-list numbers (low byte of the id) that describe the device rather than its
        # state: HMIs poll mode (0x24) and communication status (0x31, 0x32) as routine.
        self.identity_lists = frozenset(int(number) for number in lists)
        self.baseline = context.baseline
        # The baseline's S7 (client, server) pairs, indexed once: a walk over every conversation
        # per new pair cost minutes on a plant of thousands of learned conversations.
        self.known: set[tuple[str, str]] | None = None

    def _new_host(self, client: str, server: str) -> bool:
        baseline = self.baseline
        if baseline is None:
            return True
        known = self.known
        if known is None:
            known = self.known = {
                (c.client, c.server) for c in baseline.conversations.values() if c.protocol == "s7comm"
            }
        return (client, server) not in known

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct SZL ids read per (client, server)."""
        if event.rosctr != 7:
            return
        userdata: dict[str, Any] | None = event.userdata
        if (
            userdata is None
            or userdata.get("type") != 1
            or userdata.get("group") != 4
            or userdata.get("subfunction") != 1
        ):
            return
        szl_id = event.szl_id
        if szl_id is None or szl_id & 0xFF not in self.identity_lists:
            return
        key = (event.src_ip, event.dst_ip)
        crossed = self.sets.add(key, szl_id, event.ts, event)
        if crossed is not None:
            self.raised(key, crossed[0], crossed[1], event, event.ts, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``: none for a learned client of the PLC."""
        client, server = key
        if not self._new_host(client, server):
            return None
        evidence = {
            "szl_ids": [
                f"0x{szl:04x}" if isinstance(szl, int) else str(szl) for szl in sorted(values, key=str)
            ][:32],
            "distinct_szl": len(values),
            "baseline": "no baseline loaded" if self.baseline is None else "not a learned client of this PLC",
            "window_start": start,
        }
        return "ICS-3004", f"{client}>{server}", source.frame, evidence, None, None


def _tsap_label(tsap: dict[str, Any]) -> str:
    """A destination TSAP as the analyst reads it: rack, slot and connection type, or its text."""
    if "rack" in tsap:
        kind = tsap.get("connection_type_name") or tsap.get("connection_type")
        return f"0x{tsap['hex']} (rack {tsap['rack']}, slot {tsap['slot']}, {kind})"
    text = tsap.get("text")
    return f"{text!r}" if text else f"0x{tsap.get('hex', '')}"


class S7TsapSweep(_Sweep):
    """ICS-3012: COTP connection requests to one PLC for several destination TSAPs (rack/slot pairs).

    An S7 client is configured for one CPU: its rack and slot (and connection type: PG, OP or S7
    basic) make one destination TSAP, the same on every connection.  plcscan, s7scan, ISF and
    Metasploit's S7 modules find the CPU by trying rack/slot pairs in turn, a connection each.
    nmap's s7-info tries two TSAPs (0x0102, then 0x0200) and an engineering station may use a PG
    and an OP connection: ``min_tsaps`` is above two.  Counted per (client, server) and window on
    the requests alone, whatever the PLC answered (a real CPU refuses a wrong slot; a PLC
    emulator or gateway accepts any).
    """

    name = "s7_tsap_sweep"
    rule_ids = ("ICS-3012",)
    scope_field = "distinct_tsaps"
    event_types = frozenset({"cotp"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3012", "window", "min_tsaps")
        self.sets = WindowedSets(window, threshold)
        self.window = float(window)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Count distinct destination TSAPs of the connection requests per (client, server)."""
        fields = event.__dict__
        if fields["pdu_type"] != TPDU_CR:
            return
        tsap: dict[str, Any] | None = fields["dst_tsap"]
        if not tsap:
            return
        key = (fields["src_ip"], fields["dst_ip"])
        crossed = self.sets.add(key, _tsap_label(tsap), fields["ts"], event)
        if crossed is not None:
            self.raised(key, crossed[0], crossed[1], event, fields["ts"], out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``."""
        client, server = key
        evidence = {
            "tsaps": sorted(values)[:32],
            "distinct_tsaps": len(values),
            "window_start": start,
        }
        fields = {"window": f"{self.window:g}"}
        return "ICS-3012", f"{client}>{server}", source.frame, evidence, fields, None


# DNP3 device-attribute variations (group 0) named in an ICS-3011 alert; the others by number.
_DNP3_ATTRIBUTE_NAMES: Final = {254: "all attributes", 255: "list of attribute variations"}


class Dnp3AttributeRead(BaseDetector):
    """ICS-3011: a DNP3 READ of device attributes (group 0) by a host not known to read them there.

    The DNP3 counterpart of an S7 SZL identity read (ICS-3004) or Modbus device identification:
    vendor, model, firmware and serial number, read to fingerprint the outstation.  Masters rarely
    read them in routine polling.  With a baseline, a client that read the attributes of that link
    address while learning (``identified_addresses``) is quiet.  One alert per client, server and
    link address and throttling window.
    """

    name = "dnp3_attribute_read"
    rule_ids = ("ICS-3011",)
    event_types = frozenset({"dnp3"})
    directions = frozenset({"request"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.baseline = context.baseline

    def on_event(self, event: Any, out: Emitter) -> None:
        """READ requests with a group 0 object header (``identification_target``)."""
        if event.direction != "request":
            return
        address = identification_target(event)
        if address is None or _identity_learned(self.baseline, event, address):
            return
        note = "no baseline loaded" if self.baseline is None else "not read by this client while learning"
        listed = sorted(
            {
                obj["variation"]
                for obj in event.objects
                if obj.get("group") == 0 and isinstance(obj.get("variation"), int)
            }
        )
        out.fire(
            "ICS-3011",
            f"{event.src_ip}>{event.dst_ip}:{address}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            evidence={"link_src": event.src, "link_dst": address, "variations": listed, "baseline": note},
            fields={
                "attributes": ", ".join(
                    f"g0v{v}" + (f" ({_DNP3_ATTRIBUTE_NAMES[v]})" if v in _DNP3_ATTRIBUTE_NAMES else "")
                    for v in listed
                )
            },
        )


# The addresses that answered a host an ICS-3005 alert lists (the evidence, not the count).
MAX_ANSWERED: Final = 64
# DNP3 requests no answer is owed to: CONFIRM and the _NR (no response) functions sent as
# unconfirmed link frames (a confirmed one is owed a link ACK), and requests to the broadcast
# addresses (0xFFFD-0xFFFF) and the self address (0xFFFC).
DNP3_UNANSWERED_FUNCTIONS: Final = frozenset({0, 6, 8, 10, 12})
DNP3_UNCONFIRMED_USER_DATA: Final = 4
DNP3_SPECIAL_ADDRESSES: Final = 0xFFFC
# Why addresses counted toward an ICS-3005 sweep, as its explanation says it.
_UNLEARNED_ADDRESS: Final = " it never used with their server while learning"
_SILENT_ADDRESS: Final = " that sent it no application data within {} s"


class Dnp3AddressSweep(_Sweep):
    """ICS-3005: requests from one host to many DNP3 link addresses that hold no data exchange with it.

    A master polling its outstations gets application responses from every one of them, however
    many share a line or a terminal server; a sweep's probes (link status requests, mostly) hit
    addresses nobody holds, or are answered at the link layer only (some stations, and lab
    responders, answer any address).  So a request counts once ``answer_timeout`` seconds
    (capture time) passed without an application response from that address to the host; an
    address that sent the host one never counts, nor the host's own address seen from a server that
    answered it (an outstation's keep-alives to its masters; requests prove nothing, any host may
    claim a source address).  The state holds at most ``MAX_KEYS`` exchanges, oldest forgotten
    first.  Requests no answer is owed to (CONFIRM and the _NR functions in unconfirmed link
    frames, broadcasts) never count.  Link-layer answers count as nothing
    but evidence: the addresses that answered at all are what the sweep found.  (A one-way SPAN
    shows no answers at all: every poll then counts, as ICS-3010 says of pings.)

    With a baseline that knows the host as a client of the server, what it addresses there is
    judged against what it addressed while learning instead, answered or not: a new address of a
    known line is what a sweep from a known master finds.
    """

    name = "dnp3_address_sweep"
    rule_ids = ("ICS-3005",)
    scope_field = "distinct_addresses"
    event_types = frozenset({"dnp3"})
    directions = frozenset({"request", "response"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold, timeout = _params(context, "ICS-3005", "window", "min_addresses", "answer_timeout")
        self.sets = WindowedSets(window, threshold)
        self.timeout = float(timeout)
        self.baseline = context.baseline
        # (host, server, address) -> the first request still unanswered: (its time, the record)
        self.pending: BoundedDict = BoundedDict(MAX_KEYS)
        # (host, server, address) with an application exchange, as only the server can show it:
        # an application response from (server, address) to the host, or one from the host to
        # (server, address); the value is when it was last refreshed.  The least recent exchange
        # is forgotten first (to within EXCHANGE_REFRESH_SECONDS).
        self.exchanged: BoundedDict = BoundedDict(MAX_KEYS)
        # host -> the first MAX_ANSWERED (server, address) that answered it at all (the evidence)
        self.answered: BoundedDict = BoundedDict(MAX_WIDE_KEYS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """A request waits for its answer; an answer clears its address for the host."""
        # Fields read as dict items (see api.BaseDetector): every DNP3 record passes here.
        fields: dict[str, Any] = event.__dict__
        code = fields["function_code"]
        direction = fields["direction"]
        if direction == "request":
            client = fields["src_ip"]
            server = fields["dst_ip"]
            address = fields["dst"]
            if not isinstance(address, int) or address >= DNP3_SPECIAL_ADDRESSES:
                return
            if (
                code in DNP3_UNANSWERED_FUNCTIONS
                and fields["link"].get("function_code") == DNP3_UNCONFIRMED_USER_DATA
            ):
                return
            profile = _profile(self.baseline, client, server, "dnp3")
            if profile is not None and profile.addresses:
                # A learned pair: an address it never used counts, answered or not.  (A baseline
                # from before link addresses were learned has none: the answers decide.)
                if not profile.addresses.covers(address, address):
                    self._count(client, server, address, fields["ts"], event, out)
                return
            key = (client, server, address)
            if key not in self.exchanged and key not in self.pending:
                self.pending[key] = (fields["ts"], event)
        elif direction == "response":
            host = fields["dst_ip"]
            server = fields["src_ip"]
            found = self.answered.get(host)
            if found is None:
                found = self.answered[host] = set()
            if len(found) < MAX_ANSWERED:
                found.add((server, fields["src"]))
            if code is not None:
                # Application data from the server: (server, src) is a live station of the host,
                # and the host's address one of the server's (its keep-alives to it are no probes).
                exchanged = self.exchanged
                pending = self.pending
                ts = fields["ts"]
                for key in ((host, server, fields["src"]), (server, host, fields["dst"])):
                    if pending:
                        pending.pop(key, None)
                    # Refreshed (moved to the newest end) at most every EXCHANGE_REFRESH seconds:
                    # a polled station answers many times a second, and its place among 50,000
                    # need not move each time.
                    last = exchanged.get(key)
                    if last is None:
                        exchanged[key] = ts
                    elif ts - last >= EXCHANGE_REFRESH_SECONDS:
                        del exchanged[key]
                        exchanged[key] = ts

    def advance(self, ts: float, out: Emitter) -> None:
        """A clock tick: requests unanswered for ``answer_timeout`` count, then the grown sets report."""
        self._expire(ts, out)
        self.widen_all(out, ts)

    def finish(self, out: Emitter) -> None:
        """The end: requests still unanswered count (the capture holds no answer to them)."""
        self._expire(None, out)
        self.widen_all(out, None)

    def _expire(self, now: float | None, out: Emitter) -> None:
        pending = self.pending
        if not pending:
            return
        timeout = self.timeout
        expired = [key for key, (ts, _) in pending.items() if now is None or now - ts >= timeout]
        for key in expired:
            ts, record = pending.pop(key)
            self._count(key[0], key[1], key[2], ts, record, out)

    def _count(self, client: Any, server: Any, address: int, ts: float, record: Any, out: Emitter) -> None:
        crossed = self.sets.add(client, (server, address), ts, record)
        if crossed is not None:
            self.raised(client, crossed[0], crossed[1], record, ts, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``."""
        addresses = {address for _, address in values if isinstance(address, int)}
        answers = self.answered.get(key) or ()
        found = sorted({address for _, address in answers if isinstance(address, int)})
        evidence = {
            "link_addresses": sorted(addresses)[:64],
            "distinct_addresses": len(values),
            "answered_addresses": found[:64],
            "answer_timeout": self.timeout,
            "window_start": start,
        }
        if self.baseline is not None:
            evidence["baseline"] = _NOT_COUNTED.format("link addresses")
        # Why they counted, worked out per (server, address) as ``on_event`` chose.
        unlearned = silent = False
        for server in {server for server, _ in values}:
            profile = _profile(self.baseline, key, server, "dnp3")
            if profile is not None and profile.addresses:
                unlearned = True
            else:
                silent = True
        reasons = [_UNLEARNED_ADDRESS] if unlearned else []
        if silent or not unlearned:
            reasons.append(_SILENT_ADDRESS.format(f"{self.timeout:g}"))
        fields = {
            "address_spans": spans(addresses),
            "how": " or".join(reasons),
            "answered": spans(found) if found else "none",
        }
        return "ICS-3005", str(key), source.frame, evidence, fields, None


class _PortProbes(_Sweep):
    """Probes of (server, port) pairs per source host, for a scan rule with an OT port among them.

    Fires the rule once a host probed ``min_targets`` pairs within ``window`` seconds, at least one
    of them on ``ot_ports``; a threshold reached on IT ports only keeps counting until an OT port
    comes.  Subclasses say what a probe is (``probe``).
    """

    wants_flows = True
    scope_field = "distinct_targets"

    def __init__(self, context: Context, rule_id: str) -> None:
        super().__init__(context)
        window, threshold, ports = _params(context, rule_id, "window", "min_targets", "ot_ports")
        self.rule_id = rule_id
        self.sets = WindowedSets(window, threshold)
        self.ot_ports = frozenset(int(port) for port in ports)

    def probe(self, record: Any) -> bool:
        """Whether the flow record is a probe of its server port."""
        raise NotImplementedError

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Count probes per source host; fire when the threshold is crossed with an OT port."""
        if not self.probe(record):
            return
        key = record.src_ip
        # A probe of an OT port counts even past the cap: IT ports alone must not keep it out.
        port = record.dst_port
        crossed = self.sets.add(key, (record.dst_ip, port), record.ts_start, record, port in self.ot_ports)
        if crossed is not None and not self.raised(key, crossed[0], crossed[1], record, record.ts_start, out):
            # Reached the threshold on IT ports only; an OT port later still fires (state kept).
            self.sets.rearm(key)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``: none before an OT port is among the targets."""
        ot_targets = sorted(f"{ip}:{port}" for ip, port in values if port in self.ot_ports)
        if not ot_targets:
            return None
        evidence = {
            "distinct_targets": len(values),
            "ot_targets": ot_targets[:32],
            "hosts": len({ip for ip, _ in values}),
            "ports": sorted({port for _, port in values})[:64],
            "window_start": start,
        }
        return self.rule_id, str(key), source.first_frame, evidence, None, _HOST_ONLY


class OtPortScan(_PortProbes):
    """ICS-3006: failed or probe-only TCP connections to many targets, OT service ports among them.

    With a baseline, knocks at a service the source reached while learning do not count: a
    monitoring system or load balancer checks services by connecting and resetting, all day
    (the baseline learns those it saw accepted: ``is_scan_probe``).
    """

    name = "ot_port_scan"
    rule_ids = ("ICS-3006",)

    def __init__(self, context: Context) -> None:
        super().__init__(context, "ICS-3006")
        self.baseline = context.baseline

    def probe(self, record: Any) -> bool:
        """A TCP knock (``is_tcp_knock``) at a service the source did not reach while learning.

        Not a lone ACK or keepalive with nothing back, which ``is_probe`` also counts: a peer that
        went away, seen from the side still trying, is no scan.
        """
        if not is_tcp_knock(record):
            return False
        baseline = self.baseline
        return baseline is None or not baseline.knows_service(
            record.src_ip, record.dst_ip, "tcp", record.dst_port
        )


class OtUdpScan(_PortProbes):
    """ICS-3009: unanswered UDP probes to many (server, port) pairs, OT service ports among them.

    A probe: a UDP flow of at most ``max_probe_packets`` datagrams to a host address (not broadcast
    or multicast discovery, ``is_asset_ip``) with nothing back (a closed port answers with ICMP port
    unreachable, a separate flow; a filtered one not at all).  UDP scanners (nmap -sU, protocol
    discovery scripts) send one or two datagrams per port; a one-way stream (syslog, a flow
    exporter) goes to one collector, not to many targets.  With a baseline, datagrams to a port the
    source talked to while learning are not probes (a DNP3/UDP master polling outstations that went
    silent is ICS-4003's business); per port, not per host: a scan during the learning window whose
    DNP3 probe the dissector decoded (and the baseline learned) still counts its other ports.
    """

    name = "ot_udp_scan"
    rule_ids = ("ICS-3009",)

    def __init__(self, context: Context) -> None:
        super().__init__(context, "ICS-3009")
        (probe,) = _params(context, "ICS-3009", "max_probe_packets")
        self.max_probe_packets = int(probe)
        self.baseline = context.baseline

    def probe(self, record: Any) -> bool:
        """An unanswered UDP flow of a few datagrams to a port the source did not talk to while learning."""
        if (
            record.transport != "udp"
            or record.packets_to_client
            or record.packets_sent(0) > self.max_probe_packets
            or not is_asset_ip(record.dst_ip)
        ):
            return False
        baseline = self.baseline
        return baseline is None or not baseline.knows_service(
            record.src_ip, record.dst_ip, "udp", record.dst_port
        )


# ICMP requests a host must answer, with their answers: echo, timestamp and address mask (IPv4),
# echo (ICMPv6).  Host discovery (nmap -sn -PE/-PP/-PM, fping, ping sweeps) sends these.
ICMP_PROBES: Final = {"icmp": ((8, 0), (13, 14), (17, 18)), "ipv6-icmp": ((128, 129),)}


class IcmpSweep(_Sweep):
    """ICS-3010: pings from one host to many addresses that never answer.

    Per ICMP flow (one per host pair): a request sent and its answer never seen.  Answered pings do
    not count, as ICS-7003 counts only unanswered ARP: monitoring servers ping live devices all day,
    sweeps find out which addresses are live and mostly hit empty ones.  Pings to empty addresses of
    another subnet show only on the scanner's side of the router; on the far side the router's
    unanswered ARP for them is all there is (ICS-7003 with the router as its source).
    """

    name = "icmp_sweep"
    rule_ids = ("ICS-3010",)
    scope_field = "distinct_targets"
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        window, threshold = _params(context, "ICS-3010", "window", "min_targets")
        self.sets = WindowedSets(window, threshold)
        self.window = float(window)

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Count unanswered ICMP requests per source host."""
        probes = ICMP_PROBES.get(record.transport)
        if probes is None:
            return
        sent: tuple[int, ...] = record.icmp_types_to_server
        back: tuple[int, ...] = record.icmp_types_to_client
        if not any(request in sent and answer not in back for request, answer in probes):
            return
        if not is_asset_ip(record.dst_ip):
            return
        crossed = self.sets.add(record.src_ip, record.dst_ip, record.ts_start, record)
        if crossed is not None:
            self.raised(record.src_ip, crossed[0], crossed[1], record, record.ts_start, out)

    def report(self, key: Any, start: float, values: set[Any], source: Any) -> Report | None:
        """See ``_Sweep``."""
        evidence = {
            "distinct_targets": len(values),
            "targets": sorted(values, key=ip_sort_key)[:32],
            "window_start": start,
        }
        return "ICS-3010", str(key), source.first_frame, evidence, {"window": f"{self.window:g}"}, _HOST_ONLY


# Port services whose protocol this tool decodes: a flow to one of them is expected to decode as it.
DECODED_SERVICES: Final = frozenset({"modbus", "dnp3", "s7comm"})


# Clients and ports whose foreign protocols ICS-3007 remembers.
MAX_TRIED_KEYS: Final = 10_000
# A client's packets without payload in a whole TCP connection: SYN, the handshake's ACK, FIN and
# the last ACK.
_HANDSHAKE_PACKETS: Final = 4
# Server ports found speaking an OT protocol off its registered port (S7 on 1102, Modbus on 5020),
# and the flows to ports not known as such yet, kept to judge once one is: per port at most
# _PENDING_PER_PORT, for _PENDING_SECONDS of capture time.
MAX_OT_PORTS: Final = 10_000
MAX_PENDING_PORTS: Final = 256
_PENDING_PER_PORT: Final = 8
_PENDING_SECONDS: Final = 600.0


class OtPortMisuse(BaseDetector):
    """ICS-3007 / ICS-3008: a flow to an OT service port that does not speak the port's protocol.

    ICS-3007: the client's opening bytes identify another protocol (TLS, HTTP, RDP, SSH, SMB ...).
    Internet scanners and attack tools fingerprint exposed controllers that way, and nothing in a
    control network has a reason to.  One alert per client, server and port names every protocol
    tried there.  ICS-3008: payload that decodes neither as the port's
    protocol nor as a known one (a fuzzer, a proprietary or broken dialect such as Modbus RTU
    framing over TCP), on the Modbus and DNP3 ports; on port 102 (``services_opened``) only for
    connections seen from their SYN: IEC 61850 MMS and ICCP share S7's TPKT/COTP framing, and a
    connection of theirs picked up mid-stream decodes as nothing here, but every one of them opens
    with a COTP connection request, which the S7 dissector takes.  Judged on flow records (at the
    flow's end or active timeout); flows with lost bytes, or with fewer than ``min_payload``
    client bytes beyond one per packet (keep-alive probes; ``min_payload_opened`` for a
    connection seen from its SYN, whose first bytes are no probe), are not.
    The alert cites the client's first payload frame and the device's first answer, if any.

    An OT protocol served on another port (S7 on 1102, Modbus on 5020) makes that port an OT
    service of its server too: learned in the baseline, or seen decoded in this run.  Flows to it
    are judged as flows to the registered port are, those that came before it was seen too (nmap
    -sV probes a port before its scripts speak the protocol there).
    """

    name = "ot_port_misuse"
    rule_ids = ("ICS-3007", "ICS-3008")
    wants_flows = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        minimum, opened, services, opened_services = _params(
            context, "ICS-3008", "min_payload", "min_payload_opened", "services", "services_opened"
        )
        self.min_payload = int(minimum)
        self.min_payload_opened = int(opened)
        self.undecoded_services = frozenset(str(name) for name in services)
        # ICS-3007 key -> the protocols its open alert names, in the order they came.
        self.tried: BoundedDict = BoundedDict(MAX_TRIED_KEYS)
        # Services judged only on connections seen from their SYN: their client's first bytes are
        # then the protocol's opening (on port 102 a COTP connection request, whatever runs in it).
        self.opened_services = frozenset(str(name) for name in opened_services)
        # (server, transport, port) -> the OT protocol it serves off its registered port.
        self.ot_ports: BoundedDict = BoundedDict(MAX_OT_PORTS)
        # (server, transport, port) not known as such -> flow records to it not decoded as OT.
        self.pending: BoundedDict = BoundedDict(MAX_PENDING_PORTS)
        baseline = context.baseline
        if baseline is not None:
            for key in baseline.conversations:
                _, server, transport, port, protocol = key
                registered = (TCP_SERVICES if transport == "tcp" else UDP_SERVICES).get(port)
                if protocol in DECODED_SERVICES and registered != protocol:
                    self.ot_ports[(server, transport, port)] = protocol

    def on_flow(self, record: Any, out: Emitter) -> None:
        """Fire when the flow's port says one protocol and its bytes another (or none)."""
        service = record.service
        app = record.app_protocol
        if service not in DECODED_SERVICES:
            port = (record.dst_ip, record.transport, record.dst_port)
            if app in DECODED_SERVICES:
                # An OT protocol off its registered port: the port is that service from now on,
                # and what came to it before is judged as such.
                if self.ot_ports.get(port) is None:
                    self.ot_ports[port] = app
                    for earlier in self.pending.pop(port, None) or ():
                        if record.ts_start - earlier.ts_end <= _PENDING_SECONDS:
                            self._judge(earlier, str(app), earlier.app_protocol, out)
                return
            served = self.ot_ports.get(port)
            if served is None:
                if record.dst_port and record.transport in ("tcp", "udp"):
                    held: list[Any] | None = self.pending.get(port)
                    if held is None:
                        held = self.pending[port] = []
                    while held and record.ts_end - held[0].ts_end > _PENDING_SECONDS:
                        held.pop(0)
                    if len(held) < _PENDING_PER_PORT:
                        held.append(record)
                return
            service = served
        elif app == service:
            return
        self._judge(record, str(service), app, out)

    def _judge(self, record: Any, service: str, app: Any, out: Emitter) -> None:
        """``on_flow`` for a flow to a ``service`` port whose bytes were ``app`` (None: nothing known)."""
        if app is None:
            # Keep-alive probes carry one byte each and never reach a dissector: an idle
            # connection of a Windows client collects them.  Only bytes beyond one per client
            # packet count, but for the handshake's and teardown's packets of a flow seen from its
            # SYN, which carry none: a tool that connects, sends one bad PDU and closes is judged.
            packets = record.packets_sent(0)
            minimum = self.min_payload
            if "SYN" in record.tcp_flags_to_server:
                packets = max(0, packets - _HANDSHAKE_PACKETS)
                # A keep-alive probe follows data: the bytes of a connection that never carried any
                # before are its client's opening.
                minimum = self.min_payload_opened
                judged = service in self.undecoded_services or service in self.opened_services
            else:
                judged = service in self.undecoded_services
            if not judged or record.payload_bytes_to_server - packets < minimum or record.missed_bytes:
                return
            rule_id = "ICS-3008"
            key = f"{record.src_ip}>{record.dst_ip}:{record.transport}/{record.dst_port}"
        else:
            rule_id = "ICS-3007"
            key = f"{record.src_ip}>{record.dst_ip}:{record.transport}/{record.dst_port}"
        answered = record.payload_bytes_to_client > 0
        # The bytes the finding is about: the client's first payload, and the device's first
        # answer, of the record's period (after an active timeout, of that part of the flow); the
        # flow's first frame, its SYN, when the record carries neither.
        sent: int = record.first_payload_frame_to_server
        reply: int = record.first_payload_frame_to_client
        frames = tuple(sorted(frame for frame in (sent, reply) if frame)) or (record.first_frame,)
        evidence = {
            "service": service,
            "app_protocol": app,
            "payload_bytes_to_server": record.payload_bytes_to_server,
            "payload_bytes_to_client": record.payload_bytes_to_client,
            "answered": answered,
            "state": record.state,
        }
        fields = {"reply": "the device answered" if answered else "no answer came back"}
        if rule_id == "ICS-3007":
            # One alert per client and port, naming every protocol tried (a service scan such as
            # nmap -sV sends a dozen probes to each port): each new one widens it.
            tried: list[str] | None = self.tried.get(key)
            if tried is None or out.open_alert(rule_id, key, record.ts_start) is None:
                tried = self.tried[key] = []
            new = app not in tried
            if new:
                tried.append(str(app))
            evidence["app_protocols"] = list(tried)
            fields["protocols"] = ", ".join(tried)
            if new and len(tried) > 1:
                out.widen(
                    rule_id,
                    key,
                    ts=record.ts_end,
                    frames=frames,
                    source=record,
                    evidence=evidence,
                    fields=fields,
                )
                return
        out.fire(
            rule_id,
            key,
            ts=record.ts_start,
            last_ts=record.ts_end,
            frames=frames,
            source=record,
            evidence=evidence,
            fields=fields,
        )
