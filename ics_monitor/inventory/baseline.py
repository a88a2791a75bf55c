"""The learned behaviour baseline: who talks to whom, with which functions, addresses, values and rhythm.

``BaselineLearner`` watches protocol events and flow records during a learning window and builds a
``Baseline``: the known assets, and per conversation (client, server, transport, server port,
protocol) the function codes with counts; Modbus address ranges read and written per unit and table;
DNP3 objects and point ranges per request function; S7 areas/DBs read and written; the ranges of
written and of read process values; the polling interval of every recurring request (median,
spread, and the band of the 8-interval median the drift check compares); and the peak requests and
error responses per 10 s.  ``Baseline`` saves as sorted, diffable YAML that an analyst may review
and edit, loads it back, diffs two baselines, and answers the detectors' questions in O(1) or
O(log ranges).

Memory is bounded by assets and conversations, never by packets: address ranges merge (and the
closest ones coalesce past ``MAX_RANGES``), value points, polling signatures and conversations are
capped.  Must not import detectors or alerts; no I/O except ``save``/``load``.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import hashlib
import ipaddress
import json
import math
import re
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TextIO

import orjson
import yaml

from ics_monitor.core.addresses import ipv4_assignable, ipv4_packed
from ics_monitor.core.bounded import BoundedDict
from ics_monitor.core.collector import collector_paused
from ics_monitor.core.packet import TRANSPORT_NAMES
from ics_monitor.core.ports import port_number
from ics_monitor.core.yamlfile import SafeLoader
from ics_monitor.dissect.dnp3.constants import CONTROL_OPERATION_NAMES, TRIP_CLOSE_NAMES
from ics_monitor.inventory.roles import error_response, expects_answer

FORMAT: Final = "ics-monitor-baseline/1"

# -- caps ------------------------------------------------------------------------------------------------
# Conversations learned: a large plant has a few thousand; past the cap new ones are not learned
# (and would alert as new when enforcing, which is what an analyst wants to see anyway).
MAX_CONVERSATIONS = 20_000
MAX_ASSETS: Final = 50_000
MAX_MACS_PER_ASSET: Final = 8
# Ranges per (unit, table) / (function, group) / S7 area: polling reads a handful of blocks; past the
# cap the two closest ranges merge, so coverage only ever grows.  A baseline cache holds ranges in
# this form and is read back as it is (``_cached_ranges``): changing it changes ``CACHE_FORMAT``.
MAX_RANGES: Final = 64
# Range keys per conversation: Modbus (unit, table, kind), DNP3 (function, group), S7 (kind, area).
MAX_RANGE_KEYS: Final = 512
# DNP3 (function, group, outstation) keys per conversation: a master polling 32 outstations behind
# one gateway with 4 functions over 8 groups each needs 1,024.  Past it, outstations not learned
# are not judged as new (``Conversation.outstation_index``).
MAX_OUTSTATION_RANGE_KEYS: Final = 1024
# Value points (address or point index) tracked per conversation, written and read together.
MAX_VALUE_POINTS: Final = 4096
# Recurring request signatures per conversation, and the intervals kept per signature while learning.
MAX_SIGNATURES: Final = 64
# A step of the capture clock this long with no record at all is time nobody watched (between two
# capture files, a sensor down): not a silence of any conversation (``longest_silence``, ICS-5012).
UNWATCHED_SECONDS: Final = 10.0
# DNP3 CROB points per conversation whose control codes are learned, and codes per point.
MAX_CROB_POINTS: Final = 1024
MAX_CROB_CODES: Final = 16
MAX_INTERVALS: Final = 128
# A request signature seen fewer times than this is not periodic enough to learn a rhythm from.
MIN_POLL_SAMPLES: Final = 8
# The drift check (detect.deviation) compares the median of a poll's last POLL_WINDOW intervals;
# learning keeps the band that same median took over the learned intervals (trimmed).  A steady
# cycle gives a point; a cadence of two rhythms (two requests a few seconds apart every few minutes)
# gives what such a window really shows, where the median of all intervals is one of the two.
POLL_WINDOW: Final = 8
# Share of the learned window medians left out at each end of the band.
POLL_WINDOW_TRIM: Final = 0.1
# Request and error-response rates are learned as the most seen in one window of RATE_WINDOW
# capture seconds, each window started by the first record after the last one ended: the windows
# the flood and error-storm detectors count in (their default window), so the learned peak is the
# count those detectors would have seen on the learned traffic.
RATE_WINDOW: Final = 10.0
# Flow ids remembered to map a record to its conversation without recomputing the key.
MAX_FLOW_CACHE: Final = 65_536
# Response times: learned per conversation and response key (``response_key``: the function, and
# the Modbus unit or DNP3 outstation it went to), at most MAX_RESPONSE_KEYS of them.  A block of
# RESPONSE_BLOCK answers in a row gives one median; the baseline keeps the median and the band
# (POLL_WINDOW_TRIM trimmed) of those block medians, so a short burst of slow answers while
# learning does not set the band's top.  At most MAX_RESPONSE_BLOCKS medians are kept, thinned
# evenly over the learning window when full.  ICS-5014 compares the lower median of the last
# RESPONSE_BLOCK answers (5 of 8 took that long or longer) with that band.
MAX_RESPONSE_KEYS: Final = 64
RESPONSE_BLOCK: Final = 8
MAX_RESPONSE_BLOCKS: Final = 256
# Answers learned before a key is saved and judged: 11 blocks, so the band's trim drops at least
# the slowest block and one slow moment while learning does not set the band's top.  An entry
# written by hand without ``samples`` counts as this many.
MIN_RESPONSE_SAMPLES: Final = RESPONSE_BLOCK * 11
# ``AnswerTimes``: flows (and servers) followed, requests awaiting their answer per flow, how long
# an unanswered request is kept, and the answers per server that say whether it was still busy.
MAX_TIMED_FLOWS: Final = 16_384
MAX_PENDING_PER_FLOW: Final = 16
ANSWER_WAIT_SECONDS: Final = 10.0
RECENT_ANSWERS: Final = 8

MODBUS_READ_TABLES: Final[dict[int, str]] = {
    1: "coils",
    2: "discrete_inputs",
    3: "holding_registers",
    4: "input_registers",
    23: "holding_registers",
}
MODBUS_WRITE_TABLES: Final[dict[int, str]] = {
    5: "coils",
    15: "coils",
    6: "holding_registers",
    16: "holding_registers",
    22: "holding_registers",
    23: "holding_registers",
}
TABLE_ABBREVIATIONS: Final = {
    "coils": "co",
    "discrete_inputs": "di",
    "holding_registers": "hr",
    "input_registers": "ir",
}
# Modbus functions that write: coils, registers, file records, mask write, read/write.
MODBUS_WRITE_FUNCTIONS: Final = frozenset({5, 6, 15, 16, 21, 22, 23})
# A pair of holding registers written together may be one 32-bit float, high word first
# (``:f32``) or low word first (``:f32sw``): learned and judged as one where its value is
# plausible (``register_floats``), for its halves are no process values of their own.
MODBUS_FLOAT_ORDERS: Final = (("f32", False), ("f32sw", True))
# A plausible process value: 0, or a magnitude between these (what integer pairs are rarely read as).
FLOAT_SMALLEST: Final = 1e-4
FLOAT_LARGEST: Final = 1e7
# DNP3 request functions that change outputs or data in the outstation (IEEE 1815 table 4-3).
DNP3_WRITE_FUNCTIONS: Final = frozenset({2, 3, 4, 5, 6})
DNP3_RESPONSE_FUNCTIONS: Final = frozenset({129, 130})
# DNP3 object groups whose point values get a learned range, by the group they are learned under:
# an analog event (g32, g42) or frozen value (g31, g33) reports the same point as its static group
# (g30, g40), so all count toward one range ("g30:10:5": outstation 10, point 5; ``dnp3_point``).
# Binary events (g2, g4, g11) keep their own:
# a state change is what they report, and a short learning window's integrity polls may have seen
# one state only.  Counters (g20-g23) are not there: they only grow, and roll over.  Nor are time,
# IIN, file, string or command-event objects.
DNP3_VALUE_GROUPS: Final = {
    1: 1, 2: 2, 3: 3, 4: 4, 10: 10, 11: 11,  # binary and double-bit inputs, binary outputs, events
    30: 30, 31: 30, 32: 30, 33: 30,  # analog input, frozen, events, frozen events
    34: 34,  # analog input deadband
    40: 40, 42: 40,  # analog output status, its events
}  # fmt: skip
# A write or operate of an analog output (g41) without a learned written range is judged by the
# range its status (g40) was read with.
DNP3_STATUS_OF_OUTPUT: Final = {41: 40}
# The outstation of a DNP3 value point learned before points were kept per outstation
# (``dnp3_point``): any outstation of the conversation.
DNP3_ANY_OUTSTATION: Final = "*"
# S7 JOB functions.
S7_READ_VAR: Final = 0x04
S7_WRITE_VAR: Final = 0x05
# The function keys (``function_key``) of writes and controls, per protocol: a conversation that
# used one wrote (``Conversation.wrote``), whatever its requests addressed.
_WRITE_FUNCTION_KEYS: Final = {
    "modbus": frozenset(str(code) for code in MODBUS_WRITE_FUNCTIONS),
    "dnp3": frozenset(str(code) for code in DNP3_WRITE_FUNCTIONS),
    "s7comm": frozenset({str(S7_WRITE_VAR)}),
}
# Bytes per element of an S7ANY transport size (BIT/BYTE/CHAR 1, WORD/INT 2, DWORD/DINT/REAL 4).
S7_ELEMENT_SIZES: Final = {1: 1, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 4, 8: 4}
# Failed connection attempts are scans or outages, not conversations.
FAILED_STATES: Final = frozenset({"rejected", "syn_sent"})

ConversationKey = tuple[str, str, str, int, str]
# A learned value: integers stay integers (compiled, a ``float`` annotation would turn them into
# floats, and the YAML and alert texts with them).
Number = int | float


@lru_cache(maxsize=65_536)
def is_asset_ip(ip: str) -> bool:
    """True for an address a device can own: not multicast, unspecified or broadcast.

    An IPv4 address ending in .255 is taken as a subnet broadcast (the /24 convention of control
    networks; without netmasks it cannot be told from a host at .255 of a wider subnet, which is
    then not tracked).  Asked for nearly every request (``StoppedAnswering``): the answers are
    kept per address, for the latest ``_ASSET_IPS_KEPT`` addresses.
    """
    known = _ASSET_IPS.get(ip)
    if known is None:
        known = _ASSET_IPS[ip] = _asset_ip(ip)
    return known


_ASSET_IPS_KEPT: Final = 65_536
_ASSET_IPS: BoundedDict = BoundedDict(_ASSET_IPS_KEPT)


def _asset_ip(ip: str) -> bool:
    packed = ipv4_packed(ip)
    if packed is not None:
        return ipv4_assignable(packed) and not ip.endswith(".255")
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if address.is_multicast or address.is_unspecified:
        return False
    return not (address.version == 4 and ip.endswith(".255"))


def protocol_of_event(event_type: str) -> str:
    """The conversation protocol of a record type (S7comm-plus and COTP share S7comm's TCP/102 flow)."""
    if event_type in ("s7comm_plus", "cotp"):
        return "s7comm"
    return event_type


def protocol_of_flow(record: Any) -> str:
    """The conversation protocol of a flow record: confirmed protocol, else the port's service."""
    return str(record.app_protocol or record.service or "unknown")


# ICMPv6 neighbour discovery and multicast listener messages (RFC 4861, RFC 3810): the link layer's
# housekeeping of IPv6, the ARP of it, not a conversation between two hosts.
ICMPV6_LINK_TYPES: Final = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})


def is_conversation(record: Any) -> bool:
    """Whether a flow record is a conversation to learn or check.

    Not a failed connection attempt (scans are the recon detectors' business), not discovery
    chatter to a broadcast or multicast address, and not IPv6 neighbour discovery (unicast
    neighbour solicitations and their advertisements are the ARP of IPv6).
    """
    if record.state in FAILED_STATES and not record.payload_bytes_to_server:
        return False
    if record.transport == "ipv6-icmp" and ICMPV6_LINK_TYPES.issuperset(
        (*record.icmp_types_to_server, *record.icmp_types_to_client)
    ):
        return False
    return is_asset_ip(record.dst_ip)


# Datagrams one way with nothing back that make a stream (syslog, flow export, a data diode), not a
# probe: scanners send one or two per port (ICS-3009's default, rules/recon.yaml).
PROBE_DATAGRAMS: Final = 3


def is_tcp_knock(record: Any) -> bool:
    """Whether a TCP flow is what SYN and connect scans leave (ICS-3006 counts these).

    Refused, unanswered (SYN only), or reset after at most 3 packets, all without payload.  Copies
    the mirroring made are not packets sent.
    """
    if record.transport != "tcp" or record.payload_bytes_to_server or record.payload_bytes_to_client:
        return False
    state = record.state
    return state in FAILED_STATES or (state == "reset" and record.packets_sent(0) <= 3)


def is_probe(record: Any) -> bool:
    """Whether a flow only knocked at its server port or address instead of talking to it.

    TCP: a knock (``is_tcp_knock``), or no payload and nothing back (an ACK as ``nmap -sn`` and ACK
    scans send); a connection opened and closed in order is a health check.  ICMP: requests never
    answered.  UDP and the rest: nothing came back, and no more datagrams went than a scanner sends
    per port (a one-way stream such as syslog sends more).  A flow picked up mid-stream carries
    payload.
    """
    transport = record.transport
    if transport == "tcp":
        return is_tcp_knock(record) or not (
            record.packets_to_client or record.payload_bytes_to_server or record.payload_bytes_to_client
        )
    if record.packets_to_client:
        return False
    return transport in ("icmp", "ipv6-icmp") or record.packets_sent(0) <= PROBE_DATAGRAMS


def is_scan_probe(record: Any) -> bool:
    """Whether a flow is a probe (``is_probe``) the baseline neither learns nor checks.

    All probes but a TCP knock the server accepted (SYN-ACK) before the reset: the client now
    knows the service is there, which a new conversation should say even once; and a monitoring
    system or load balancer that checks services so (HAProxy's and many NMS's TCP checks connect
    and reset) does it all day, which learning must make quiet.  Refused and unanswered knocks
    stay the scan detectors' alone.
    """
    return is_probe(record) and not (record.transport == "tcp" and "SYN" in record.tcp_flags_to_client)


def conversation_label(key: ConversationKey) -> str:
    """Human-readable conversation name, the YAML key: ``client -> server protocol transport/port``."""
    client, server, transport, port, protocol = key
    return f"{client} -> {server} {protocol} {transport}/{port}"


# -- ranges ----------------------------------------------------------------------------------------------


def _canonical(pairs: list[tuple[int, int]]) -> bool:
    """Whether ``pairs`` is already a RangeSet's form: ordered ranges with gaps between, within the cap."""
    if len(pairs) > MAX_RANGES:
        return False
    previous_end = None
    for start, end in pairs:
        if end < start or (previous_end is not None and start <= previous_end + 1):
            return False
        previous_end = end
    return True


class RangeSet:
    """Sorted, merged, inclusive integer ranges with a cap (past it the closest two coalesce)."""

    __slots__ = ("ranges",)

    def __init__(self, ranges: Iterable[Iterable[int]] = ()) -> None:
        self.ranges: list[list[int]] = []
        pairs = [(int(start), int(end)) for start, end in ranges]
        if _canonical(pairs):
            # What to_dict wrote (the usual load): already sorted, merged and capped.
            self.ranges = [[start, end] for start, end in pairs]
            return
        for start, end in pairs:
            self.add(start, end)

    def __len__(self) -> int:
        return len(self.ranges)

    def add(self, start: int, end: int) -> None:
        """Include ``start..end``; adjacent and overlapping ranges merge."""
        if end < start:
            start, end = end, start
        ranges = self.ranges
        index = bisect.bisect_right(ranges, start, key=_first)
        # The range before may reach into (or touch) the new one.
        if index and ranges[index - 1][1] >= start - 1:
            index -= 1
            if ranges[index][1] >= end:
                return
            start = ranges[index][0]
        stop = index
        while stop < len(ranges) and ranges[stop][0] <= end + 1:
            end = max(end, ranges[stop][1])
            stop += 1
        ranges[index:stop] = [[start, end]]
        if len(ranges) > MAX_RANGES:
            self._coalesce()

    def _coalesce(self) -> None:
        ranges = self.ranges
        gaps = [ranges[i + 1][0] - ranges[i][1] for i in range(len(ranges) - 1)]
        i = gaps.index(min(gaps))
        ranges[i : i + 2] = [[ranges[i][0], ranges[i + 1][1]]]

    def covers(self, start: int, end: int) -> bool:
        """Whether every value of ``start..end`` lies in the set."""
        ranges = self.ranges
        index = bisect.bisect_right(ranges, start, key=_first) - 1
        return index >= 0 and ranges[index][1] >= end

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The runs of ``start..end`` not in the set, in order."""
        ranges = self.ranges
        out: list[tuple[int, int]] = []
        cursor = start
        for index in range(max(bisect.bisect_right(ranges, start, key=_first) - 1, 0), len(ranges)):
            low, high = ranges[index][0], ranges[index][1]
            if low > end:
                break
            if high < cursor:
                continue
            if low > cursor:
                out.append((cursor, low - 1))
            cursor = high + 1
            if cursor > end:
                return out
        out.append((cursor, end))
        return out

    def to_list(self) -> list[list[int]]:
        """Plain lists for YAML."""
        return [list(r) for r in self.ranges]


def _first(item: list[int]) -> int:
    return item[0]


# -- per-conversation model ---------------------------------------------------------------------------------


class PollStats:
    """Intervals between repeats of one request signature (learning) or their summary (baseline)."""

    __slots__ = ("count", "intervals", "last_ts", "median", "spread", "window")

    def __init__(
        self,
        median: float | None = None,
        spread: float | None = None,
        count: int = 0,
        window: tuple[float, float] | None = None,
    ) -> None:
        self.last_ts: float | None = None
        self.intervals: list[float] = []
        self.count = count
        self.median = median
        self.spread = spread
        # Lowest and highest median of POLL_WINDOW consecutive intervals (None: not learned, as
        # in baselines from before it was; the check then takes the median alone).
        self.window = window

    def observe(self, ts: float) -> None:
        """One more repeat at capture time ``ts``."""
        last = self.last_ts
        if last is not None and ts >= last:
            intervals = self.intervals
            if len(intervals) >= MAX_INTERVALS:
                # Keep the most recent intervals: the end of the window reflects the settled rhythm.
                del intervals[: MAX_INTERVALS // 2]
            intervals.append(ts - last)
            self.count += 1
        self.last_ts = ts

    def summarise(self) -> None:
        """Compute median and spread (median absolute deviation) of the kept intervals."""
        intervals = self.intervals
        if intervals:
            median = _median(intervals)
            self.median = median
            self.spread = _median([abs(value - median) for value in intervals])
            if len(intervals) >= POLL_WINDOW:
                # The 10th to 90th percentile of the window medians: a rhythm that keeps coming
                # back widens the band, a one-off outage or burst while learning does not.
                self.window = _trimmed_band(
                    sorted(
                        _median(intervals[start : start + POLL_WINDOW])
                        for start in range(len(intervals) - POLL_WINDOW + 1)
                    )
                )
            else:
                self.window = (median, median)


class ResponseStats:
    """How fast a server answers one kind of request: learned block medians, or their summary."""

    __slots__ = ("block", "count", "median", "medians", "stride", "window")

    def __init__(
        self, median: float | None = None, count: int = 0, window: tuple[float, float] | None = None
    ) -> None:
        self.count = count
        self.median = median
        self.window = window
        self.block: list[float] = []
        self.medians: list[float] = []
        # Every stride-th block median is kept (doubles each time the list fills).
        self.stride = 1

    def add(self, seconds: float) -> None:
        """One more answer, ``seconds`` after its request."""
        self.count += 1
        block = self.block
        block.append(seconds)
        if len(block) < RESPONSE_BLOCK:
            return
        median = _median(block)
        block.clear()
        if (self.count // RESPONSE_BLOCK) % self.stride:
            return
        medians = self.medians
        medians.append(median)
        if len(medians) >= MAX_RESPONSE_BLOCKS:
            del medians[1::2]
            self.stride *= 2

    def summarise(self) -> None:
        """Median and trimmed band of the block medians (nothing before one whole block)."""
        medians = sorted(self.medians)
        if medians:
            self.median = _median(medians)
            self.window = _trimmed_band(medians)


class AnswerTimes:
    """Pairs requests with their answers: how long the device spent on each request.

    A device (a PLC, an outstation, a gateway in front of serial devices) works through the
    requests it gets in turn.  An answer to a request that arrived while the device was still busy
    with an earlier one (the client pipelined, or another client's request came first) waited for
    that one: so a request's time runs from when it was sent or from the latest answer the device
    gave to a request sent before it, whichever is later.  Requests sent after it do not count: a
    man in the middle that holds one client's frames lets the device answer others meanwhile, and
    that client's delay stays whole.  A request nobody answers is forgotten after
    ANSWER_WAIT_SECONDS (or past MAX_PENDING_PER_FLOW on its connection).
    """

    __slots__ = ("flows", "servers")

    def __init__(self) -> None:
        # flow id -> request frame -> (its time, its response key or None: not timed)
        # (both capped at MAX_TIMED_FLOWS entries, the oldest forgotten first)
        self.flows: BoundedDict = BoundedDict(MAX_TIMED_FLOWS)
        # server (ip, port) -> its last RECENT_ANSWERS answers: (request time, answer time)
        self.servers: BoundedDict = BoundedDict(MAX_TIMED_FLOWS)

    def request(self, flow_id: Any, frame: int, ts: float, key: str | None) -> None:
        """A request the device answers (``roles.expects_answer``).

        ``key`` None: not timed, but the device's answer to it still counts.
        """
        flows = self.flows
        pending = flows.get(flow_id)
        if pending is None:
            pending = flows[flow_id] = {}
        elif len(pending) >= MAX_PENDING_PER_FLOW:
            for waiting, entry in list(pending.items()):
                if ts - entry[0] > ANSWER_WAIT_SECONDS:
                    del pending[waiting]  # never answered
            if len(pending) >= MAX_PENDING_PER_FLOW:
                del pending[next(iter(pending))]
        pending[frame] = (ts, key)

    def answer(self, flow_id: Any, server: Any, request_frame: int, ts: float) -> tuple[str, float] | None:
        """The response key and the device's time of the request ``request_frame`` answered at ``ts``.

        None when the request was not seen, not timed, or answered before it was sent.
        """
        pending = self.flows.get(flow_id)
        if not pending:
            return None
        entry = pending.pop(request_frame, None)
        if entry is None or ts < entry[0]:
            return None
        sent = entry[0]
        servers = self.servers
        answers = servers.get(server)
        if answers is None:
            answers = servers[server] = []
        start = sent
        if answers and answers[-1][1] > sent:  # else the device answered everything before it
            for asked, answered in answers:
                if asked <= sent < answered and answered > start:
                    start = answered  # the device was still busy with an earlier request
        answers.append((sent, ts))
        if len(answers) > RECENT_ANSWERS:
            del answers[0]
        key = entry[1]
        if key is None:
            return None
        return key, ts - start


def response_key(event: Any) -> str | None:
    """What a request's answer time is learned and judged by: its function and the device addressed.

    ``unit 1 function 3`` (Modbus), ``outstation 10 function 1`` (DNP3), ``function 4`` or
    ``userdata 4/1`` (S7comm), ``function plus 1356`` (S7comm-plus, its function as
    ``function_key`` names it: GetMultiVariables here; not a request sent in fragments); None for
    other records.  Requests nobody answers are never timed: callers ask ``roles.expects_answer``
    first.
    """
    event_type = event.event_type
    if event_type == "modbus":
        if event.function_code is None:
            return None
        return f"unit {event.unit_id} function {event.function_code}"
    if event_type == "dnp3":
        if event.function_code is None:
            return None
        return f"outstation {event.dst} function {event.function_code}"
    if event_type == "s7comm_plus" and event.fragment is not None:
        # Sent in fragments: the device answers once the last is in, and the sender's own pace
        # (Nagle, delayed ACKs: 200 ms stalls) between them is no answer time.
        return None
    if event_type in ("s7comm", "s7comm_plus"):
        function = function_key(event)
        if function is None:
            return None
        key = function[0]
        return key if key.startswith("userdata") else f"function {key}"
    return None


def _trimmed_band(ordered: list[float]) -> tuple[float, float]:
    """Low and high of sorted medians with POLL_WINDOW_TRIM of them left out at each end."""
    last = len(ordered) - 1
    return ordered[int(last * POLL_WINDOW_TRIM)], ordered[math.ceil(last * (1 - POLL_WINDOW_TRIM))]


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


class Conversation:
    """What one client does with one server over one protocol and port."""

    __slots__ = (
        "addresses",
        "client",
        "crob",
        "dnp3_outstation_points",
        "dnp3_outstations",
        "dnp3_points",
        "flows",
        "functions",
        "identified",
        "key",
        "last_seen",
        "last_unwatched",
        "modbus",
        "peaks",
        "polling",
        "port",
        "protocol",
        "requests",
        "responses",
        "s7",
        "server",
        "silence",
        "transport",
        "values",
        "windows",
    )

    def __init__(self, client: str, server: str, transport: str, port: int, protocol: str) -> None:
        self.client = client
        self.server = server
        self.transport = transport
        self.port = port
        self.protocol = protocol
        # The identifying 5-tuple (client, server, transport, port, protocol).
        self.key: ConversationKey = (client, server, transport, port, protocol)
        self.flows = 0
        self.requests = 0
        # What the client's requests addressed below the IP address: Modbus unit ids, DNP3
        # destination link addresses of application requests (``ADDRESS_SECTIONS``), and of those
        # the ones whose identification it read (``IDENTIFIED_SECTIONS``, ``identification_target``).
        # The reconnaissance detectors do not count them.
        self.addresses = RangeSet()
        self.identified = RangeSet()
        # function key ("3", "userdata 4/1") -> [name, count]
        self.functions: dict[str, list[Any]] = {}
        # (unit, table, "read"|"write") -> ranges of addresses
        self.modbus: dict[tuple[int, str, str], RangeSet] = {}
        # (function code, group) -> ranges of point indexes ("no ranges" = whole-group requests)
        self.dnp3_points: dict[tuple[int, int], RangeSet] = {}
        # Of the write and control functions: (function code, group) -> the outstation link
        # addresses written to (one IP, a gateway or terminal server, may carry several)
        self.dnp3_outstations: dict[tuple[int, int], RangeSet] = {}
        # (function code, group, outstation link address) -> ranges of point indexes: what the
        # client read, wrote and operated at each outstation of the IP (``dnp3_points`` pools them)
        self.dnp3_outstation_points: dict[tuple[int, int, int], RangeSet] = {}
        # DNP3 control relay output block (g12) points (``crob_point``: "10:3", outstation 10
        # index 3) -> the control codes (operation type, trip/close, queue and clear bits) sent
        self.crob: dict[str, set[int]] = {}
        # ("read"|"write", area such as "DB1" or "M") -> byte ranges
        self.s7: dict[tuple[str, str], RangeSet] = {}
        # ("written"|"read", point) -> [min, max]
        # (kind, point) -> (min, max): immutable, so equal ranges can be one object (``_shared``)
        self.values: dict[tuple[str, str], tuple[Number, Number]] = {}
        # request signature -> interval statistics
        self.polling: dict[str, PollStats] = {}
        # response key (``response_key``) -> answer time statistics
        self.responses: dict[str, ResponseStats] = {}
        # Most requests and most error responses seen in one RATE_WINDOW, and (learning) the
        # current windows: [requests start, count, errors start, count].
        self.peaks = [0, 0]
        self.windows: list[float] | None = None
        # The longest time nothing passed between client and server (either way) while learning,
        # in seconds (0.0: not learned); and (learning) the time of the last record.
        self.silence = 0.0
        self.last_seen: float | None = None
        self.last_unwatched = 0.0  # the learner's unwatched time when ``last_seen`` was

    # -- learning ---------------------------------------------------------------------------------------

    def wrote(self) -> bool:
        """Whether the client wrote or sent controls while learning.

        Modbus writes, DNP3 write, select, operate and direct operate, S7 write var.
        """
        written = _WRITE_FUNCTION_KEYS.get(self.protocol)
        return (
            any(key[2] == "write" for key in self.modbus)
            or any(key[0] in DNP3_WRITE_FUNCTIONS for key in self.dnp3_points)
            or any(key[0] == "write" for key in self.s7)
            or (written is not None and not written.isdisjoint(self.functions))
        )

    def count_function(self, key: str, name: str) -> None:
        """One more request of function ``key``."""
        entry = self.functions.get(key)
        if entry is None:
            self.functions[key] = [name, 1]
        else:
            entry[1] += 1

    def add_crob(self, point: str, code: int) -> None:
        """A DNP3 CROB (g12) with control ``code`` sent to ``point`` (``crob_point``: outstation:index)."""
        codes = self.crob.get(point)
        if codes is None:
            if len(self.crob) >= MAX_CROB_POINTS:
                return
            codes = self.crob[point] = set()
        if len(codes) < MAX_CROB_CODES:
            codes.add(code)

    def add_range(
        self,
        table: dict[Any, RangeSet],
        key: Any,
        start: int | None,
        end: int | None,
        cap: int = MAX_RANGE_KEYS,
    ) -> None:
        """Extend the ranges of ``key`` (``start`` None: record the key without a range)."""
        ranges = table.get(key)
        if ranges is None:
            if len(table) >= cap:
                return
            ranges = table[key] = RangeSet()
        if start is not None and end is not None:
            ranges.add(start, end)

    def add_value(self, kind: str, point: str, value: Any) -> None:
        """Widen the learned range of a process value (booleans count as 0/1; text is ignored)."""
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, float)) or (isinstance(value, float) and not math.isfinite(value)):
            return
        values = self.values
        key = (kind, point)
        bounds = values.get(key)
        if bounds is None:
            if len(values) < MAX_VALUE_POINTS:
                # Interned: the clients of one server learn the same point names.
                values[(kind, sys.intern(point))] = (value, value)
        elif value < bounds[0]:
            values[key] = (value, bounds[1])
        elif value > bounds[1]:
            values[key] = (bounds[0], value)

    def repeat(self, signature: str, ts: float) -> None:
        """One more occurrence of a request signature (polling rhythm)."""
        stats = self.polling.get(signature)
        if stats is None:
            if len(self.polling) >= MAX_SIGNATURES:
                return
            stats = self.polling[signature] = PollStats()
        stats.observe(ts)

    def answered(self, key: str, seconds: float) -> None:
        """A request of kind ``key`` answered ``seconds`` after it was sent."""
        stats = self.responses.get(key)
        if stats is None:
            if len(self.responses) >= MAX_RESPONSE_KEYS:
                return
            stats = self.responses[key] = ResponseStats()
        stats.add(seconds)

    def passed(self, ts: float, unwatched: float = 0.0) -> None:
        """A record of the conversation at ``ts``, either way: the longest silence between two.

        ``unwatched``: the capture time so far in which nothing at all was seen (steps of the
        clock of UNWATCHED_SECONDS or more: between two files, a sensor down); not silence.
        """
        last = self.last_seen
        if last is None or ts > last:
            if last is not None:
                silent = ts - last - (unwatched - self.last_unwatched)
                self.silence = max(self.silence, silent)
            self.last_seen = ts
            self.last_unwatched = unwatched

    def rate(self, ts: float, error: bool) -> None:
        """One more request (or error response) at ``ts``: the peak per RATE_WINDOW."""
        windows = self.windows
        if windows is None:
            windows = self.windows = [ts, 0, ts, 0]
        slot = 2 if error else 0
        if ts - windows[slot] > RATE_WINDOW:
            windows[slot] = ts
            windows[slot + 1] = 0
        windows[slot + 1] += 1
        peak = 1 if error else 0
        if windows[slot + 1] > self.peaks[peak]:
            self.peaks[peak] = int(windows[slot + 1])

    # -- queries (enforcing) ----------------------------------------------------------------------------

    def knows_function(self, key: str) -> bool:
        """Whether function ``key`` was seen while learning."""
        return key in self.functions

    def covered(self, table: dict[Any, RangeSet], key: Any, start: int, end: int) -> bool:
        """Whether ``start..end`` of ``key`` was seen (a key learned without ranges covers all)."""
        ranges = table.get(key)
        if ranges is None:
            return False
        return not ranges.ranges or ranges.covers(start, end)

    def outstation_index(self) -> tuple[bool, dict[tuple[int, int], RangeSet]]:
        """(complete, (function, group) -> the outstations addressed so) from ``dnp3_outstation_points``.

        ``complete``: every outstation the client addressed while learning (``addresses``, the
        destination link addresses of its requests) has points in the table, and the table is
        short of its cap: an outstation missing from it was not used.  False for a baseline
        learned before points were kept per outstation, or edited to hold some.
        """
        by_function: dict[tuple[int, int], RangeSet] = {}
        held = RangeSet()
        for code, group, outstation in self.dnp3_outstation_points:
            by_function.setdefault((code, group), RangeSet()).add(outstation, outstation)
            held.add(outstation, outstation)
        complete = (
            bool(self.dnp3_outstation_points)
            and len(self.dnp3_outstation_points) < MAX_OUTSTATION_RANGE_KEYS
            and all(held.covers(low, high) for low, high in self.addresses.ranges)
        )
        return complete, by_function

    def imply_outstations(self) -> None:
        """Add to ``dnp3_outstations`` the outstations each write function and group went to per outstation."""
        for code, group, outstation in self.dnp3_outstation_points:
            if code in DNP3_WRITE_FUNCTIONS:
                ranges = self.dnp3_outstations.get((code, group))
                if ranges is None:
                    ranges = self.dnp3_outstations[(code, group)] = RangeSet()
                ranges.add(outstation, outstation)

    def value_range(self, kind: str, point: str) -> list[Number] | None:
        """Learned ``[min, max]`` of a point, or None."""
        bounds = self.values.get((kind, point))
        return None if bounds is None else list(bounds)

    # -- YAML ----------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Sorted plain data (keys as strings so YAML stays readable and diffable)."""
        result: dict[str, Any] = {
            "client": self.client,
            "server": self.server,
            "protocol": self.protocol,
            "transport": self.transport,
            "port": self.port,
            "flows": self.flows,
            "requests": self.requests,
        }
        if self.peaks[0]:
            result["peak_requests_10s"] = self.peaks[0]
        if self.peaks[1]:
            result["peak_errors_10s"] = self.peaks[1]
        if self.silence:
            result["longest_silence"] = round(self.silence, 3)
        if self.functions:
            result["functions"] = {
                key: {"name": name, "count": count}
                for key, (name, count) in sorted(self.functions.items(), key=_natural)
            }
        section = ADDRESS_SECTIONS.get(self.protocol)
        if section is not None and self.addresses:
            result[section] = self.addresses.to_list()
        section = IDENTIFIED_SECTIONS.get(self.protocol)
        if section is not None and self.identified:
            result[section] = self.identified.to_list()
        if self.modbus:
            units: dict[str, dict[str, dict[str, list[list[int]]]]] = {}
            for (unit, table, kind), ranges in sorted(self.modbus.items()):
                units.setdefault(str(unit), {}).setdefault(kind, {})[table] = ranges.to_list()
            result["modbus_units"] = units
        if self.dnp3_points:
            functions: dict[str, dict[str, list[list[int]]]] = {}
            for (function_code, group), ranges in sorted(self.dnp3_points.items()):
                functions.setdefault(str(function_code), {})[f"g{group}"] = ranges.to_list()
            result["dnp3_objects"] = functions
        if self.dnp3_outstation_points:
            by_outstation: dict[str, dict[str, dict[str, list[list[int]]]]] = {}
            for (function_code, group, outstation), ranges in sorted(
                self.dnp3_outstation_points.items(), key=_by_outstation
            ):
                by_outstation.setdefault(str(outstation), {}).setdefault(str(function_code), {})[
                    f"g{group}"
                ] = ranges.to_list()
            result["dnp3_outstation_objects"] = by_outstation
        if self.dnp3_outstations:
            # Implied by ``dnp3_outstation_objects`` where that was learned, and still written: an
            # earlier version reading the file judges writes by it.
            outstations: dict[str, dict[str, list[list[int]]]] = {}
            for (function_code, group), ranges in sorted(self.dnp3_outstations.items()):
                outstations.setdefault(str(function_code), {})[f"g{group}"] = ranges.to_list()
            result["dnp3_written_outstations"] = outstations
        if self.crob:
            result["dnp3_crob_operations"] = {
                point: [crob_code_text(code) for code in sorted(codes)]
                for point, codes in sorted(self.crob.items(), key=_crob_order)
            }
        if self.s7:
            areas: dict[str, dict[str, list[list[int]]]] = {}
            for (kind, area), ranges in sorted(self.s7.items()):
                areas.setdefault(kind, {})[area] = ranges.to_list()
            result["s7_areas"] = areas
        if self.values:
            values: dict[str, dict[str, list[Number]]] = {}
            for (kind, point), bounds in sorted(self.values.items(), key=_natural):
                values.setdefault(kind, {})[point] = list(bounds)
            result["values"] = values
        polling = {
            signature: {
                "median": round(stats.median, 6),
                "spread": round(stats.spread or 0.0, 6),
                "samples": stats.count,
                **(
                    {"window": [round(stats.window[0], 6), round(stats.window[1], 6)]} if stats.window else {}
                ),
            }
            for signature, stats in sorted(self.polling.items())
            if stats.median is not None and stats.count >= MIN_POLL_SAMPLES
        }
        if polling:
            result["polling"] = polling
        responses = {
            key: {
                "median": round(stats.median, 6),
                "window": [round(stats.window[0], 6), round(stats.window[1], 6)],
                "samples": stats.count,
            }
            for key, stats in sorted(self.responses.items(), key=_natural)
            if stats.median is not None and stats.window is not None and stats.count >= MIN_RESPONSE_SAMPLES
        }
        if responses:
            result["response_time"] = responses
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """Inverse of ``to_dict`` (hand-edited files welcome: missing sections mean nothing learned)."""
        conversation = cls(*_conversation_key(data))
        conversation.flows = int(data.get("flows", 0))
        conversation.requests = int(data.get("requests", 0))
        conversation.peaks = [
            _count(data, "peak_requests_10s", conversation.key),
            _count(data, "peak_errors_10s", conversation.key),
        ]
        conversation.silence = _seconds(data, "longest_silence", conversation.key)
        for key, entry in (data.get("functions") or {}).items():
            conversation.functions[str(key)] = [entry.get("name"), int(entry.get("count", 0))]
        conversation.addresses, conversation.identified = _address_sections(data, conversation)
        for unit, kinds in (data.get("modbus_units") or {}).items():
            for kind, tables in (kinds or {}).items():
                for table, ranges in (tables or {}).items():
                    conversation.modbus[(int(unit), str(table), str(kind))] = RangeSet(ranges or ())
        for function_code, groups in (data.get("dnp3_objects") or {}).items():
            for group, ranges in (groups or {}).items():
                conversation.dnp3_points[(int(function_code), int(str(group).lstrip("g")))] = RangeSet(
                    ranges or ()
                )
        for function_code, groups in (data.get("dnp3_written_outstations") or {}).items():
            for group, ranges in (groups or {}).items():
                conversation.dnp3_outstations[(int(function_code), int(str(group).lstrip("g")))] = RangeSet(
                    ranges or ()
                )
        for outstation, functions in (data.get("dnp3_outstation_objects") or {}).items():
            for function_code, groups in (functions or {}).items():
                for group, ranges in (groups or {}).items():
                    key = (int(function_code), int(str(group).lstrip("g")), int(outstation))
                    conversation.dnp3_outstation_points[key] = RangeSet(ranges or ())
        conversation.imply_outstations()
        for kind, areas in (data.get("s7_areas") or {}).items():
            for area, ranges in (areas or {}).items():
                conversation.s7[(str(kind), str(area))] = RangeSet(ranges or ())
        for index, codes in (data.get("dnp3_crob_operations") or {}).items():
            if not isinstance(codes, list):
                raise ValueError(
                    f"conversation {_key_text(conversation.key)}: dnp3_crob_operations {index} must be a"
                    f" list of control codes, not {codes!r}"
                )
            point = _crob_file_point(index, conversation.key)
            for code in codes:
                conversation.add_crob(point, _crob_code(code, conversation.key))
        # Any: the shared key and range objects go in as they are (see _VALUE_KEYS).
        values: dict[Any, Any] = conversation.values
        dnp3 = conversation.protocol == "dnp3"
        for kind, points in (data.get("values") or {}).items():
            kind = str(kind)
            for point, bounds in (points or {}).items():
                name = _any_outstation(str(point)) if dnp3 else str(point)
                values[_shared_key(kind, name)] = _shared(_value_range(bounds, conversation.key, point))
        for signature, entry in (data.get("polling") or {}).items():
            conversation.polling[str(signature)] = PollStats(
                float(entry["median"]),
                float(entry.get("spread", 0.0)),
                int(entry.get("samples", 0)),
                _window(entry.get("window"), conversation.key, str(signature)),
            )
        for key, entry in (data.get("response_time") or {}).items():
            conversation.responses[str(key)] = _response_stats(entry, conversation.key, str(key))
        return conversation

    # -- the load cache (``Baseline._save_cache``) ----------------------------------------------------

    def to_record(self, value_keys: str, value_ranges: str) -> list[Any]:
        """The conversation as plain data for the cache, as it is (every section in its order).

        Its values are ``value_keys`` and ``value_ranges``: index arrays into the cache's tables.
        """
        return [
            list(self.key),
            self.flows,
            self.requests,
            list(self.peaks),
            [[key, name, count] for key, (name, count) in self.functions.items()],
            [[list(key), ranges.ranges] for key, ranges in self.modbus.items()],
            [[list(key), ranges.ranges] for key, ranges in self.dnp3_points.items()],
            [[list(key), ranges.ranges] for key, ranges in self.s7.items()],
            value_keys,
            value_ranges,
            [
                [signature, stats.median, stats.spread, stats.count, stats.window]
                for signature, stats in self.polling.items()
            ],
            self.addresses.ranges,
            self.identified.ranges,
            self.silence,
            [[point, sorted(codes)] for point, codes in self.crob.items()],
            [[list(key), ranges.ranges] for key, ranges in self.dnp3_outstations.items()],
            [
                [key, stats.median, stats.count, stats.window]
                for key, stats in self.responses.items()
                if stats.median is not None
                and stats.window is not None
                and stats.count >= MIN_RESPONSE_SAMPLES
            ],
            [[list(key), ranges.ranges] for key, ranges in self.dnp3_outstation_points.items()],
        ]

    @classmethod
    def from_record(cls, record: list[Any], keys: list[Any], ranges: list[Any]) -> Conversation:
        """Inverse of ``to_record``, the value keys and ranges taken from the cache's tables.

        Raises (TypeError, ValueError, IndexError ...) on a record that is not one: the caller
        then reads the YAML.
        """
        client, server, transport, port, protocol = record[0]
        conversation = cls(str(client), str(server), str(transport), int(port), str(protocol))
        conversation.flows = int(record[1])
        conversation.requests = int(record[2])
        conversation.peaks = [int(record[3][0]), int(record[3][1])]
        functions = conversation.functions
        for key, name, count in record[4]:
            functions[str(key)] = [name, int(count)]
        modbus: dict[Any, RangeSet] = conversation.modbus
        for key, spans in record[5]:
            modbus[(int(key[0]), str(key[1]), str(key[2]))] = _cached_ranges(spans)
        dnp3: dict[Any, RangeSet] = conversation.dnp3_points
        for key, spans in record[6]:
            dnp3[(int(key[0]), int(key[1]))] = _cached_ranges(spans)
        s7: dict[Any, RangeSet] = conversation.s7
        for key, spans in record[7]:
            s7[(str(key[0]), str(key[1]))] = _cached_ranges(spans)
        value_keys = memoryview(base64.b64decode(record[8], validate=True)).cast(_INDEX)
        value_ranges = memoryview(base64.b64decode(record[9], validate=True)).cast(_INDEX)
        # One dict built in C (strict: arrays of different lengths are a damaged cache); the
        # shared key and range objects go in as they are (see _VALUE_KEYS).
        conversation.values = dict(
            zip(map(keys.__getitem__, value_keys), map(ranges.__getitem__, value_ranges), strict=True)
        )
        for signature, median, spread, count, window in record[10]:
            conversation.polling[str(signature)] = PollStats(
                None if median is None else float(median),
                None if spread is None else float(spread),
                int(count),
                None if window is None else (float(window[0]), float(window[1])),
            )
        conversation.addresses = _cached_ranges(record[11])
        conversation.identified = _cached_ranges(record[12])
        conversation.silence = float(record[13])
        crob = conversation.crob
        for point, codes in record[14]:
            crob[str(point)] = {int(code) for code in codes}
        outstations: dict[Any, RangeSet] = conversation.dnp3_outstations
        for key, spans in record[15]:
            outstations[(int(key[0]), int(key[1]))] = _cached_ranges(spans)
        responses = conversation.responses
        for key, median, count, window in record[16]:
            responses[str(key)] = ResponseStats(
                float(median), int(count), (float(window[0]), float(window[1]))
            )
        per_outstation: dict[Any, RangeSet] = conversation.dnp3_outstation_points
        for key, spans in record[17]:
            per_outstation[(int(key[0]), int(key[1]), int(key[2]))] = _cached_ranges(spans)
        return conversation


def _cached_ranges(spans: Any) -> RangeSet:
    """A RangeSet of spans as a cache holds them: ``RangeSet.ranges`` written as they were.

    Taken as they are (not sorted, merged and checked again: a fifth of loading a large baseline's
    cache): the cache's body hash, compared once every line is read, vouches for them, and a cache
    that fails it is dropped for the YAML (compiled, a value that is not a list raises TypeError
    here first, with the same end).  So the cache holds RangeSets in their current form: a change
    to what RangeSet keeps (``MAX_RANGES``, how ranges merge) must change ``CACHE_FORMAT`` too.
    """
    ranges = RangeSet()
    ranges.ranges = spans
    return ranges


def _merge(profile: Conversation, member: Conversation) -> None:
    """Fold ``member``'s functions, ranges, addresses and values into ``profile``."""
    profile.requests += member.requests
    for code, (name, count) in member.functions.items():
        entry = profile.functions.setdefault(code, [name, 0])
        entry[1] += count
    tables: tuple[tuple[dict[Any, RangeSet], dict[Any, RangeSet]], ...] = (
        (member.modbus, profile.modbus),
        (member.dnp3_points, profile.dnp3_points),
        (member.dnp3_outstations, profile.dnp3_outstations),
        (member.dnp3_outstation_points, profile.dnp3_outstation_points),
        (member.s7, profile.s7),
    )
    for table, merged in tables:
        for range_key, ranges in table.items():
            target = merged.setdefault(range_key, RangeSet())
            for start, end in ranges.ranges:
                target.add(start, end)
    for start, end in member.addresses.ranges:
        profile.addresses.add(start, end)
    for start, end in member.identified.ranges:
        profile.identified.add(start, end)
    for point, controls in member.crob.items():
        for control in controls:
            profile.add_crob(point, control)
    for (kind, point), (low, high) in member.values.items():
        profile.add_value(kind, point, low)
        profile.add_value(kind, point, high)


# The YAML sections of ``Conversation.addresses`` and ``Conversation.identified`` per protocol:
# what a request addresses behind the server's IP address.  Protocols not named have none.
ADDRESS_SECTIONS: Final = {"modbus": "unit_ids", "dnp3": "link_addresses"}
IDENTIFIED_SECTIONS: Final = {"modbus": "identified_units", "dnp3": "identified_addresses"}
# The largest Modbus unit id and DNP3 link address.
_MAX_ADDRESS: Final = {"modbus": 0xFF, "dnp3": 0xFFFF}
_SECTION_PROTOCOL: Final = {
    section: protocol
    for table in (ADDRESS_SECTIONS, IDENTIFIED_SECTIONS)
    for protocol, section in table.items()
}


def _address_sections(data: dict[str, Any], conversation: Conversation) -> tuple[RangeSet, RangeSet]:
    """A conversation's addresses and identified addresses, from its YAML.

    A section of another protocol's conversations is refused: it would silently count for nothing.
    """
    protocol = conversation.protocol
    for section, owner in _SECTION_PROTOCOL.items():
        if owner != protocol and data.get(section) is not None:
            raise ValueError(
                f"conversation {_key_text(conversation.key)}: {section} belongs to {owner} conversations"
            )
    found = []
    for table in (ADDRESS_SECTIONS, IDENTIFIED_SECTIONS):
        name = table.get(protocol)
        found.append(RangeSet() if name is None else _address_ranges(data.get(name), conversation, name))
    return found[0], found[1]


def _address_ranges(value: Any, conversation: Conversation, section: str) -> RangeSet:
    """``unit_ids``, ``link_addresses`` ...: inclusive ``[first, last]`` ranges (or single numbers)."""
    if value is None:
        return RangeSet()
    top = _MAX_ADDRESS[conversation.protocol]
    if isinstance(value, list):
        pairs = []
        for item in value:
            if _is_address(item, top):
                item = [item, item]  # a hand-edited single address
            if isinstance(item, list) and len(item) == 2 and all(_is_address(n, top) for n in item):
                pairs.append(item)
            else:
                break
        else:
            return RangeSet(pairs)
    raise ValueError(
        f"conversation {_key_text(conversation.key)}: {section} must be a list of [first, last] ranges "
        f"(or single numbers) 0-{top}, not {value!r}"
    )


def _is_address(value: Any, top: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top


# Modbus identification functions: REPORT SERVER ID, and READ DEVICE IDENTIFICATION (FC 43 MEI 14).
MODBUS_REPORT_SERVER_ID: Final = 17
MODBUS_MEI: Final = 43
MODBUS_MEI_DEVICE_ID: Final = 14


def identification_target(event: Any) -> int | None:
    """The unit id or DNP3 link address whose identification a request reads, or None.

    Modbus FC 17 and FC 43/14; a DNP3 READ of group 0 (device attributes).
    """
    if event.event_type == "modbus":
        code = event.function_code
        if code == MODBUS_REPORT_SERVER_ID or (
            code == MODBUS_MEI and getattr(event, "mei_type", None) == MODBUS_MEI_DEVICE_ID
        ):
            unit: int | None = event.unit_id
            return unit
        return None
    if event.event_type == "dnp3" and event.function_code == 1:
        for obj in event.objects:
            header: dict[str, Any] = obj
            if header.get("group") == 0:
                address: int | None = event.dst
                return address
    return None


def _macs(ip: Any, entry: Any) -> list[str]:
    """An asset's learned MACs: a list of text (one MAC alone is not read as its characters)."""
    macs = (entry or {}).get("macs") or []
    if not isinstance(macs, list) or not all(isinstance(mac, str) for mac in macs):
        raise ValueError(f"asset {ip}: macs must be a list of MAC addresses, not {macs!r}")
    return list(macs)


# What a flow record names its transport (an IP protocol without a name: its number).
_TRANSPORTS: Final = frozenset(TRANSPORT_NAMES.values())


def _conversation_key(data: dict[str, Any]) -> ConversationKey:
    """A conversation's (client, server, transport, port, protocol), else a ValueError naming it.

    A hand-edited value of the wrong kind would make a conversation that no traffic matches (a
    port of -502, a protocol list): refused, as a number where a range is expected.
    """
    client, server, transport, port, protocol = (
        data["client"],
        data["server"],
        data["transport"],
        data["port"],
        data["protocol"],
    )
    label = f"conversation {client} -> {server}"
    try:
        port = port_number(port)  # a quoted one too, as a YAML writer may leave it
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from None
    transport = transport.lower() if isinstance(transport, str) else transport
    if not isinstance(transport, str) or not (transport in _TRANSPORTS or transport.isdigit()):
        raise ValueError(
            f"{label}: transport must be tcp, udp, icmp ... (a flow's transport), not {data['transport']!r}"
        )
    if not isinstance(protocol, str) or not protocol:
        raise ValueError(f"{label}: protocol must be a protocol name, not {protocol!r}")
    for name, address in (("client", client), ("server", server)):
        if not isinstance(address, str) or not address:
            raise ValueError(f"{label}: {name} must be an address, not {address!r}")
    return (client, server, transport, port, protocol)


def _value_range(bounds: Any, key: ConversationKey, point: Any) -> tuple[Any, Any]:
    """A learned value range [low, high] of numbers (true/false for coils), else a ValueError."""
    if (
        isinstance(bounds, (list, tuple))
        and len(bounds) == 2
        and all(
            isinstance(v, (int, float)) and (not isinstance(v, float) or math.isfinite(v)) for v in bounds
        )
        and bounds[0] <= bounds[1]
    ):
        return bounds[0], bounds[1]
    raise ValueError(
        f"conversation {_key_text(key)}: value range of {point} must be [low, high], two numbers "
        f"with low <= high, not {bounds!r}"
    )


def _response_stats(entry: Any, key: ConversationKey, response: str) -> ResponseStats:
    """A ``response_time`` entry: median and window in seconds, samples; else a ValueError naming it.

    Written by hand, the median alone will do (its band is that point), or the window alone (its
    median is the window's middle); ``samples`` absent counts as enough to be judged.
    """
    where = f"conversation {_key_text(key)}, response_time {response}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a mapping of median, window and samples, not {entry!r}")
    median = entry.get("median")
    if median is not None and (
        isinstance(median, bool)
        or not isinstance(median, (int, float))
        or not math.isfinite(median)
        or median < 0
    ):
        raise ValueError(f"{where}: median must be seconds from 0, not {median!r}")
    window = _window(entry.get("window"), key, response, "response_time")
    if window is None:
        if median is None:
            raise ValueError(f"{where}: give a median or a window [low, high] in seconds")
        window = (float(median), float(median))
    elif median is not None and not window[0] <= median <= window[1]:
        raise ValueError(f"{where}: median {median!r} lies outside its window {list(window)!r}")
    samples = entry.get("samples", MIN_RESPONSE_SAMPLES)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise ValueError(f"{where}: samples must be a whole number from 0, not {samples!r}")
    return ResponseStats((window[0] + window[1]) / 2 if median is None else float(median), samples, window)


def _count(data: dict[str, Any], field: str, key: ConversationKey) -> int:
    """A learned count of a conversation: a whole number from 0 (absent: 0), else a ValueError."""
    value = data.get(field, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"conversation {_key_text(key)}: {field} must be a whole number from 0, not {value!r}"
        )
    return value


def _seconds(data: dict[str, Any], field: str, key: ConversationKey) -> float:
    """A learned duration of a conversation: finite seconds from 0 (absent: 0.0), else a ValueError."""
    value = data.get(field, 0.0)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"conversation {_key_text(key)}: {field} must be seconds from 0, not {value!r}")
    return float(value)


def crob_code_text(code: int) -> str:
    """A CROB control code as the baseline file shows it: ``0x41 PULSE_ON CLOSE`` (queue, clear flags after)."""
    parts = [
        f"0x{code:02x}",
        CONTROL_OPERATION_NAMES.get(code & 0x0F, "UNKNOWN"),
        TRIP_CLOSE_NAMES[code >> 6 & 3],
    ]
    if code & 0x10:
        parts.append("QUEUE")
    if code & 0x20:
        parts.append("CLEAR")
    return " ".join(parts)


def crob_point(outstation: Any, index: int) -> str:
    """A CROB point's key among a conversation's learned operations: ``10:3`` (outstation 10, index 3).

    ``*:3``: index 3 of any outstation (what a baseline learned before 2026-12-06 holds as ``3``).
    """
    return f"{outstation if isinstance(outstation, int) else DNP3_ANY_OUTSTATION}:{index}"


def _crob_file_point(value: Any, key: ConversationKey) -> str:
    """A ``dnp3_crob_operations`` key from the file: ``10:3``, ``*:3``, or ``3`` (any outstation)."""
    text = str(value).strip()
    outstation, _, index = text.rpartition(":")
    if index.isdigit() and (outstation == DNP3_ANY_OUTSTATION or outstation.isdigit() or not outstation):
        return crob_point(int(outstation) if outstation.isdigit() else None, int(index))
    raise ValueError(
        f"conversation {_key_text(key)}: dnp3_crob_operations keys must be outstation:index"
        f" (10:3, or *:3 for any outstation), not {value!r}"
    )


def _by_outstation(item: tuple[tuple[int, int, int], Any]) -> tuple[int, int, int]:
    """Per-outstation DNP3 point ranges in the file by outstation, then function, then group."""
    code, group, outstation = item[0]
    return (outstation, code, group)


def _crob_order(item: tuple[str, Any]) -> tuple[int, int]:
    """CROB points in the file by outstation (any outstation first), then index."""
    outstation, _, index = item[0].partition(":")
    return (int(outstation) if outstation.isdigit() else -1, int(index) if index.isdigit() else -1)


def _crob_code(value: Any, key: ConversationKey) -> int:
    """A CROB control code from the file: ``0x41 ...`` (its first word read) or a number 0-255."""
    try:
        code = int(value.split()[0], 0) if isinstance(value, str) else value
    except (ValueError, IndexError):
        code = None
    if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 255:
        raise ValueError(
            f"conversation {_key_text(key)}: dnp3_crob_operations entries must be control codes"
            f" (0x41 PULSE_ON CLOSE or 0-255), not {value!r}"
        )
    return code


def _window(
    value: Any, key: ConversationKey, signature: str, what: str = "poll"
) -> tuple[float, float] | None:
    """A poll's (``what``'s) learned window [low, high] (absent: None), else a ValueError naming it."""
    if value is None:
        return None
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and 0 <= value[0] <= value[1]
    ):
        return float(value[0]), float(value[1])
    raise ValueError(
        f"conversation {_key_text(key)}, {what} {signature}: window must be [low, high] in seconds "
        f"(0 <= low <= high), not {value!r}"
    )


def _key_text(key: ConversationKey) -> str:
    client, server, transport, port, protocol = key
    return f"{client} -> {server}:{port}/{transport} {protocol}"


def _natural(item: tuple[Any, Any]) -> tuple[Any, ...]:
    """Sort key: digit runs compare as numbers ("hr:1:8" before "hr:1:10"), the rest as text."""
    key = item[0]
    parts = key if isinstance(key, tuple) else (key,)
    return tuple(
        tuple((0, int(run), "") if run.isdigit() else (1, 0, run) for run in _RUNS.findall(str(part)))
        for part in parts
    )


_RUNS: Final = re.compile(r"\d+|\D+")


# -- request signatures and per-protocol learning --------------------------------------------------------


def function_key(event: Any) -> tuple[str, str] | None:
    """The (key, name) a request's function is learned and checked by; None when it has none."""
    event_type = event.event_type
    if event_type in ("modbus", "dnp3"):
        if event.function_code is None:
            return None
        return str(event.function_code), str(event.function)
    if event_type == "s7comm":
        userdata = event.userdata
        if event.rosctr == 7 and userdata is not None:
            return (
                f"userdata {userdata.get('group')}/{userdata.get('subfunction')}",
                f"{userdata.get('group_name')}/{userdata.get('subfunction_name')}",
            )
        if event.function_code is None:
            return None
        return str(event.function_code), str(event.function)
    if event_type == "s7comm_plus":
        if event.function_code is None:
            return None
        return f"plus {event.function_code}", str(event.function)
    return None


def request_signature(event: Any) -> str | None:
    """What makes two requests "the same poll" (function and what it addresses); None: not a poll."""
    event_type = event.event_type
    if event_type == "modbus":
        return f"{event.function_code}:{event.unit_id}:{event.address}:{event.quantity}"
    if event_type == "dnp3":
        if event.function_code is None or event.function_code == 0:
            return None
        objects = ",".join(
            f"g{obj.get('group')}v{obj.get('variation')}q{obj.get('qualifier')}" for obj in event.objects[:8]
        )
        return f"{event.function_code}:{event.src}>{event.dst}:{objects}"
    if event_type == "s7comm":
        if event.rosctr == 7 and event.userdata is not None:
            userdata = event.userdata
            return f"ud{userdata.get('group')}/{userdata.get('subfunction')}:{event.szl_id}:{event.szl_index}"
        if event.function_code not in (S7_READ_VAR, S7_WRITE_VAR) or not event.items:
            return None
        items = ",".join(
            f"{item.get('area')}.{item.get('db')}.{item.get('address')}.{item.get('length')}"
            for item in event.items[:8]
        )
        return f"{event.function_code}:{items}"
    return None


def s7_area(item: dict[str, Any]) -> str:
    """Area key of an S7 item: ``DB5`` for data blocks, else the area name (``FLAGS``, ``INPUTS`` ...)."""
    area = item.get("area")
    if area in (0x84, 0x85) or (area is None and item.get("db") is not None):
        return f"DB{item.get('db')}"
    return str(item.get("area_name") or area)


# The type a block of S7 values of no one type (bytes, chars; ``s7_points`` says None) is learned
# under, written whole at its address: ``DB3:20:BLOCK``.
S7_BLOCK: Final = "BLOCK"
# Bytes written in one item learned one by one, at most (``_s7_block_points``).
S7_BYTES_ONE_BY_ONE: Final = 8
# S7 areas whose values count by design (S7 counters and timers, IEC counters and timers): a
# learned range says nothing of the next value.
S7_COUNTING_AREAS: Final = frozenset({0x1C, 0x1D, 0x1E, 0x1F})
# S7ANY transport sizes: BIT, BYTE, and the byte-wide ones (BYTE, CHAR) a block of mixed
# variables is moved as.
_S7_BIT: Final = 1
S7_BYTE: Final = 2
S7_BYTE_WIDE: Final = frozenset({S7_BYTE, 3})


def s7_points(item: dict[str, Any], count: int) -> list[str] | None:
    """The points the ``count`` values an S7 item reads or writes are learned and judged under, or None.

    One point per element, named by area, byte address (and bit) and type: ``DB3:8:INT``,
    ``DB3:10:INT`` for two INTs from DB3.DBW8, ``FLAGS:103.2:BIT``: values read and written are
    learned under the same names, so a write never made while learning is judged by the range read
    there, and only with the same type.  None for an item without a plain address (NCK, DBREAD,
    symbolic items), for counters and timers, and for more than one BYTE or CHAR (a block moved
    whole, its bytes parts of variables of other types).
    """
    address = item.get("address")
    area = item.get("area")
    size = item.get("transport_size")
    if not isinstance(address, int) or area in S7_COUNTING_AREAS or not isinstance(size, int):
        return None
    prefix = s7_area(item)
    if size == _S7_BIT:
        bit = item.get("bit") or 0
        return [f"{prefix}:{address + (bit + i) // 8}.{(bit + i) % 8}:BIT" for i in range(count)]
    width = S7_ELEMENT_SIZES.get(size)
    if width is None or (size in S7_BYTE_WIDE and count > 1):
        return None
    name = item.get("transport_size_name") or str(size)
    return [f"{prefix}:{address + i * width}:{name}" for i in range(count)]


def s7_item_span(item: dict[str, Any]) -> tuple[int, int] | None:
    """Byte range an S7ANY item addresses, or None when it has no plain address."""
    address = item.get("address")
    length = item.get("length")
    if not isinstance(address, int) or not isinstance(length, int):
        return None
    size = S7_ELEMENT_SIZES.get(item.get("transport_size") or 2, 1)
    return address, address + max(length, 1) * size - 1


def is_write_request(fields: dict[str, Any]) -> bool:
    """Whether a request (its record's fields) writes or controls.

    Modbus FC 5/6/15/16/21/22/23, DNP3 WRITE and the SELECT/OPERATE family, an S7 WRITE_VAR job.
    """
    event_type = fields["event_type"]
    if event_type == "modbus":
        return fields["function_code"] in MODBUS_WRITE_FUNCTIONS
    if event_type == "dnp3":
        return fields["function_code"] in DNP3_WRITE_FUNCTIONS
    return bool(event_type == "s7comm" and fields["rosctr"] == 1 and fields["function_code"] == S7_WRITE_VAR)


def modbus_write_span(event: Any) -> tuple[str, int, int, tuple[Any, ...]] | None:
    """(table, first, last, values) a Modbus write request touches, or None (values as the record holds them)."""
    code = event.function_code
    table = MODBUS_WRITE_TABLES.get(code)
    if table is None or event.exception_code is not None:
        return None
    if code == 23:
        extra = getattr(event, "extra", None) or {}
        address = extra.get("write_address")
        quantity = extra.get("write_quantity")
        values = tuple(extra.get("write_values") or ())
    elif code == 22:
        # (current AND and_mask) OR (or_mask AND NOT and_mask): with an AND mask of 0 the register
        # becomes the OR mask whatever it held, a value like any written; else it depends on the
        # register's current value, which the request does not carry.
        extra = getattr(event, "extra", None) or {}
        address = event.address
        quantity = 1
        values = (extra["or_mask"],) if extra.get("and_mask") == 0 and "or_mask" in extra else ()
    else:
        address = event.address
        quantity = event.quantity if code in (15, 16) else 1
        values = event.values or ()
    if address is None:
        return None
    return table, address, address + max(quantity or 1, 1) - 1, values


def register_floats(values: Any, offset: int) -> list[tuple[str, float]]:
    """The plausible float readings of the registers at ``offset`` and ``offset + 1``: [(order, value)].

    An order (``MODBUS_FLOAT_ORDERS``) whose reading is 0 or of a magnitude between FLOAT_SMALLEST
    and FLOAT_LARGEST; none for values that are not 16-bit registers.
    """
    first, second = values[offset], values[offset + 1]
    if not (
        isinstance(first, int) and isinstance(second, int) and 0 <= first <= 0xFFFF and 0 <= second <= 0xFFFF
    ):
        return []
    found: list[tuple[str, float]] = []
    for order, swapped in MODBUS_FLOAT_ORDERS:
        (value,) = struct.unpack(">f", struct.pack(">HH", *((second, first) if swapped else (first, second))))
        if value == 0.0 or FLOAT_SMALLEST <= abs(value) <= FLOAT_LARGEST:
            found.append((order, value))
    return found


def dnp3_points(obj: dict[str, Any]) -> list[int] | tuple[int, int] | None:
    """Point indexes of a DNP3 object header: explicit (prefixed), a start..stop range, or None."""
    points = obj.get("points")
    if points:
        return [p["index"] for p in points if isinstance(p.get("index"), int)]
    start, stop = obj.get("start"), obj.get("stop")
    if isinstance(start, int) and isinstance(stop, int):
        return (start, stop)
    return None


def learn_event(conversation: Conversation, event: Any, request: bool, unwatched: float = 0.0) -> None:
    """Fold one protocol record into its conversation (the learner's per-PDU work).

    ``unwatched``: see ``Conversation.passed``.
    """
    event_type = event.event_type
    conversation.passed(event.ts, unwatched)
    if request:
        conversation.requests += 1
        conversation.rate(event.ts, False)
        # DNP3: application requests only (a link status sweep while learning teaches nothing).
        if event_type == "modbus":
            address = event.unit_id
        elif event_type == "dnp3" and event.function_code is not None:
            address = event.dst
        else:
            address = None
        if isinstance(address, int):
            ranges = conversation.addresses.ranges
            # The usual case first: the one unit or outstation the client always addresses.
            if len(ranges) != 1 or not ranges[0][0] <= address <= ranges[0][1]:
                conversation.addresses.add(address, address)
            identified = identification_target(event)
            if identified is not None:
                conversation.identified.add(identified, identified)
        function = function_key(event)
        if function is not None:
            conversation.count_function(function[0], function[1])
        signature = request_signature(event)
        if signature is not None:
            conversation.repeat(signature, event.ts)
    elif error_response(event.__dict__):
        conversation.rate(event.ts, True)
    if event_type == "modbus":
        _learn_modbus(conversation, event, request)
    elif event_type == "dnp3":
        _learn_dnp3(conversation, event, request)
    elif event_type == "s7comm":
        _learn_s7(conversation, event, request)


def _learn_modbus(conversation: Conversation, event: Any, request: bool) -> None:
    if event.exception_code is not None:
        return
    unit = event.unit_id
    code = event.function_code
    if request:
        read_table = MODBUS_READ_TABLES.get(code)
        if read_table is not None and event.address is not None and event.quantity:
            conversation.add_range(
                conversation.modbus,
                (unit, read_table, "read"),
                event.address,
                event.address + event.quantity - 1,
            )
        write = modbus_write_span(event)
        if write is not None:
            table, first, last, values = write
            conversation.add_range(conversation.modbus, (unit, table, "write"), first, last)
            abbreviation = TABLE_ABBREVIATIONS[table]
            for offset, value in enumerate(values[: last - first + 1]):
                conversation.add_value("written", f"{abbreviation}:{unit}:{first + offset}", value)
            if table == "holding_registers" and len(values) >= 2:
                # Pairs from the write's start: the 32-bit floats they may be (``register_floats``).
                for offset in range(0, min(len(values), last - first + 1) - 1, 2):
                    for order, reading in register_floats(values, offset):
                        conversation.add_value("written", f"hr:{unit}:{first + offset}:{order}", reading)
    else:
        read_table = MODBUS_READ_TABLES.get(code)
        if read_table is not None and event.values and event.address is not None:
            abbreviation = TABLE_ABBREVIATIONS[read_table]
            address = event.address
            for offset, value in enumerate(event.values):
                conversation.add_value("read", f"{abbreviation}:{unit}:{address + offset}", value)


def dnp3_point(group: int, outstation: Any, index: Any, part: str = "") -> str:
    """A DNP3 value point's name: ``g30:10:5`` (group, outstation link address, index), ``g12:10:3:on_time``.

    Per outstation: one IP (a gateway, a terminal server in front of a multi-drop line) may carry
    several outstations, whose point 5 of group 30 are different things (a voltage at one, a
    current at the next).  ``g30:*:5`` is point 5 of any outstation: what a baseline learned before
    2026-12-06 holds (``g30:5`` there, read as ``g30:*:5``), or an analyst wrote; judged where the
    outstation's own point was not learned.
    """
    where = outstation if isinstance(outstation, int) else DNP3_ANY_OUTSTATION
    return f"g{group}:{where}:{index}:{part}" if part else f"g{group}:{where}:{index}"


def _any_outstation(point: str) -> str:
    """A DNP3 value point as learned before points were kept per outstation, in today's form.

    ``g30:5`` -> ``g30:*:5``, ``g12:3:on_time`` -> ``g12:*:3:on_time``; other points as they are.
    """
    if not point.startswith("g"):
        return point
    parts = point.split(":")
    if len(parts) == 2 or (len(parts) == 3 and parts[0] == "g12" and not parts[2].isdigit()):
        return ":".join([parts[0], DNP3_ANY_OUTSTATION, *parts[1:]])
    return point


def _learn_dnp3(conversation: Conversation, event: Any, request: bool) -> None:
    code = event.function_code
    if code is None:
        return
    if request:
        for obj in event.objects:
            group = obj.get("group")
            if not isinstance(group, int):
                continue
            points = dnp3_points(obj)
            key = (code, group)
            # Pooled over the IP's outstations, and per outstation (one IP may front several).
            tables: list[tuple[dict[Any, RangeSet], Any, int]] = [
                (conversation.dnp3_points, key, MAX_RANGE_KEYS)
            ]
            if isinstance(event.dst, int):
                tables.append(
                    (conversation.dnp3_outstation_points, (code, group, event.dst), MAX_OUTSTATION_RANGE_KEYS)
                )
            for table, table_key, cap in tables:
                if isinstance(points, tuple):
                    conversation.add_range(table, table_key, points[0], points[1], cap)
                elif points:
                    for index in points:
                        conversation.add_range(table, table_key, index, index, cap)
                else:
                    conversation.add_range(table, table_key, None, None, cap)
            if code in DNP3_WRITE_FUNCTIONS and isinstance(event.dst, int):
                conversation.add_range(conversation.dnp3_outstations, key, event.dst, event.dst)
            if code in DNP3_WRITE_FUNCTIONS and group == 41:
                for point in obj.get("points") or ():
                    conversation.add_value(
                        "written", dnp3_point(41, event.dst, point.get("index")), point.get("value")
                    )
            elif code in DNP3_WRITE_FUNCTIONS and group == 12:
                # A CROB: the operation per point, and how long and how often it pulses.
                for point in obj.get("points") or ():
                    index, control = point.get("index"), point.get("code")
                    if isinstance(index, int) and isinstance(control, int):
                        conversation.add_crob(crob_point(event.dst, index), control)
                        for part in ("on_time", "count"):
                            conversation.add_value(
                                "written", dnp3_point(12, event.dst, index, part), point.get(part)
                            )
    elif code in DNP3_RESPONSE_FUNCTIONS:
        outstation = event.src  # the answering outstation's points
        for obj in event.objects:
            group = DNP3_VALUE_GROUPS.get(obj.get("group"))
            if group is None:
                continue
            for point in obj.get("points") or ():
                if "value" in point:
                    conversation.add_value(
                        "read", dnp3_point(group, outstation, point.get("index")), point["value"]
                    )


def _learn_s7(conversation: Conversation, event: Any, request: bool) -> None:
    if not request:
        # A read answer (ACK_DATA) carries its request's items: the values read, point by point.
        if event.rosctr == 3 and event.function_code == S7_READ_VAR and event.items and event.data_items:
            read_items = event.data_items
            for index, item in enumerate(event.items[: len(read_items)]):
                values = read_items[index].get("values")
                points = s7_points(item, len(values)) if values else None
                if points is not None:
                    for point, value in zip(points, values, strict=True):
                        conversation.add_value("read", point, value)
        return
    if event.rosctr != 1 or not event.items:
        return
    if event.function_code == S7_READ_VAR:
        kind = "read"
    elif event.function_code == S7_WRITE_VAR:
        kind = "write"
    else:
        return
    data_items = event.data_items or ()
    for index, item in enumerate(event.items):
        span = s7_item_span(item)
        if span is None:
            continue
        area = s7_area(item)
        conversation.add_range(conversation.s7, (kind, area), span[0], span[1])
        if kind == "write" and index < len(data_items) and item.get("area") not in S7_COUNTING_AREAS:
            values = data_items[index].get("values")
            if not values:
                continue
            # Element by element and typed, as values read (``s7_points``).  Not counters and
            # timers: they count.
            points = s7_points(item, len(values))
            if points is None:
                points = _s7_block_points(item, area, values)
                if len(points) == 1:  # two bytes: one INT
                    conversation.add_value(
                        "written", points[0], int.from_bytes(bytes(values), "big", signed=True)
                    )
                    continue
            for point, value in zip(points, values, strict=True):
                conversation.add_value("written", point, value)


def _s7_block_points(item: dict[str, Any], area: str, values: Any) -> list[str]:
    """Where a write of several BYTEs (no one type said) is learned.

    Two bytes are a 16-bit variable (clients such as snap7's write an INT as its two bytes): one
    ``:INT`` point, its value the big-endian signed number, which the write checks decode them as
    (``detect.deviation``: a variable of that width learned there).  Up to S7_BYTES_ONE_BY_ONE
    bytes (a DINT or REAL, a few status bytes): each byte at its own address (``:BYTE``), so a
    changed high byte is not hidden in a range pooled over every byte.  A longer block (a recipe,
    a data block written whole), chars (text) and what has no plain address: one range over the
    block, as before: a point per byte of a 600-byte block would crowd the baseline.
    """
    address = item.get("address")
    if (
        item.get("transport_size") == S7_BYTE
        and isinstance(address, int)
        and len(values) <= S7_BYTES_ONE_BY_ONE
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in values)
    ):
        if len(values) == 2:
            return [f"{area}:{address}:INT"]
        return [f"{area}:{address + offset}:BYTE" for offset in range(len(values))]
    return [f"{area}:{address}:{S7_BLOCK}"] * len(values)


# -- learner -----------------------------------------------------------------------------------------------


class BaselineLearner:
    """Builds a ``Baseline`` from the records of a learning window (cheap per record)."""

    def __init__(self) -> None:
        self.conversations: dict[ConversationKey, Conversation] = {}
        self.assets: dict[str, set[str]] = {}
        self._flows: dict[str, Conversation | None] = {}
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        # Capture time in which nothing at all was seen (``Conversation.passed``).
        self.unwatched = 0.0
        self.events = 0
        self.flows = 0
        # Requests awaiting their answer, whose delay ``Conversation.answered`` learns.
        self._answers = AnswerTimes()

    def _conversation(self, key: ConversationKey) -> Conversation | None:
        conversation = self.conversations.get(key)
        if conversation is None:
            if len(self.conversations) >= MAX_CONVERSATIONS:
                return None
            conversation = self.conversations[key] = Conversation(key[0], key[1], key[2], key[3], key[4])
            self._asset(key[0], None)
            self._asset(key[1], None)
        return conversation

    def _asset(self, ip: str | None, mac: str | None) -> None:
        if not ip or not is_asset_ip(ip):
            return
        macs = self.assets.get(ip)
        if macs is None:
            if len(self.assets) >= MAX_ASSETS:
                return
            macs = self.assets[ip] = set()
        if mac and len(macs) < MAX_MACS_PER_ASSET:
            macs.add(mac)

    def _time(self, ts: float) -> None:
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        last = self.last_ts
        if last is None or ts > last:
            if last is not None and ts - last >= UNWATCHED_SECONDS:
                self.unwatched += ts - last
            self.last_ts = ts

    def observe(self, event: Any) -> None:
        """Learn from one protocol record; an ARP record makes its sender a known asset.

        Anomalies and other records are ignored.
        """
        if event.event_type == "arp":
            self._asset(event.sender_ip, event.sender_mac or None)
            return
        direction = getattr(event, "direction", None)
        if direction not in ("request", "response") or not hasattr(event, "flow_id"):
            return
        self.events += 1
        self._time(event.ts)
        flow_id = event.flow_id
        if flow_id in self._flows:
            conversation = self._flows[flow_id]
        else:
            request = direction == "request"
            client, server = (event.src_ip, event.dst_ip) if request else (event.dst_ip, event.src_ip)
            port = event.dst_port if request else event.src_port
            key = (client, server, event.transport, port, protocol_of_event(event.event_type))
            conversation = self._conversation(key)
            if len(self._flows) >= MAX_FLOW_CACHE:
                self._flows.clear()
            self._flows[flow_id] = conversation
        if conversation is not None:
            learn_event(conversation, event, direction == "request", self.unwatched)
            self._answer_time(conversation, event, direction == "request")

    def _answer_time(self, conversation: Conversation, event: Any, request: bool) -> None:
        """Requests remembered; an answer (not an error) learns how long its request waited."""
        if request:
            if expects_answer(event.__dict__):
                self._answers.request(event.flow_id, event.frame, event.ts, response_key(event))
            return
        request_frame = getattr(event, "request_frame", None)
        if request_frame is None:
            return
        timed = self._answers.answer(event.flow_id, (event.src_ip, event.src_port), request_frame, event.ts)
        if timed is not None and not error_response(event.__dict__):
            conversation.answered(timed[0], timed[1])

    def observe_flow(self, record: Any) -> None:
        """Learn from one flow record: the conversation exists, the endpoints are assets."""
        self.flows += 1
        self._time(record.ts_end)
        # Every sender is an asset, as the inventory has it (a host that only sends broadcast
        # discovery, or only scans, too), and so is a target that answered.
        self._asset(record.src_ip, record.src_mac)
        if not is_conversation(record) or is_scan_probe(record):
            # A probe is the scan detectors' business: learned, a scan during the learning window
            # would make its targets "talked to" (ICS-3009 quiet on the next one), and every empty
            # address a sweep knocked at a known asset.  ``BaselineDeviation`` skips probes alike.
            # A knock the server accepted is a conversation (``is_scan_probe``).
            if record.packets_to_client:
                self._asset(record.dst_ip, record.dst_mac)
            return
        key = (record.src_ip, record.dst_ip, record.transport, record.dst_port, protocol_of_flow(record))
        conversation = self._conversation(key)
        if conversation is not None:
            conversation.flows += 1
        self._asset(record.dst_ip, record.dst_mac)

    def learn_late_flow(self, record: Any, baseline: Baseline) -> bool:
        """A flow that began in the learning window and ended after it: learned, into ``baseline`` too.

        A flow's record comes when it ends: a UDP exchange (NTP, DNS, SNMP) or a long TCP session
        still open when ``--learn-for`` switched to enforcing was not learned, and its record
        then read as a new conversation.  True when ``baseline`` gained something.
        """
        conversation_key: ConversationKey | None = None
        if is_conversation(record) and not is_scan_probe(record):
            conversation_key = (
                record.src_ip,
                record.dst_ip,
                record.transport,
                record.dst_port,
                protocol_of_flow(record),
            )
        new_conversation = conversation_key is not None and conversation_key not in self.conversations
        ips = [ip for ip in (record.src_ip, record.dst_ip) if ip not in self.assets]
        self.observe_flow(record)
        learned = self.conversations.get(conversation_key) if new_conversation and conversation_key else None
        assets = {ip: sorted(self.assets[ip]) for ip in ips if ip in self.assets}
        if learned is None and not assets:
            return False
        baseline.adopt(learned, assets)
        return True

    def baseline(self) -> Baseline:
        """The baseline learned so far (polling summaries computed now; learning may go on)."""
        for conversation in self.conversations.values():
            for stats in conversation.polling.values():
                stats.summarise()
            for answers in conversation.responses.values():
                answers.summarise()
        return Baseline(
            conversations=list(self.conversations.values()),
            assets={ip: sorted(macs) for ip, macs in self.assets.items()},
            learned={
                "first_ts": self.first_ts,
                "last_ts": self.last_ts,
                "events": self.events,
                "flows": self.flows,
            },
        )


# -- baseline ----------------------------------------------------------------------------------------------


# libyaml's emitter and parser when PyYAML has them (its wheels do): a baseline of thousands of
# conversations is megabytes of YAML, which the pure-Python ones take seconds and gigabytes to handle.
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


# Lists of scalars (ranges, MAC lists) on one line; everything else in block style.  Made with
# ``type``: a class statement over a base chosen at run time cannot be compiled (mypyc).
_FlowStyleDumper: type[yaml.SafeDumper] = type("_FlowStyleDumper", (_SafeDumper,), {})


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, (dict, list)) for item in data) or all(
        isinstance(item, list) and all(not isinstance(x, (dict, list)) for x in item) for item in data
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowStyleDumper.add_representer(list, _represent_list)


# Width of the text; entries emitted on their own are indented by ``_NESTED`` afterwards, so they
# wrap ``_NESTED`` columns earlier to end up where a nested emitter would have wrapped them.
_WIDTH: Final = 110
_NESTED: Final = 2


def _dump(data: dict[str, Any], width: int = _WIDTH) -> str:
    return yaml.dump(
        data,
        Dumper=_FlowStyleDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=width,
    )


def _section(name: str, entries: Iterator[tuple[str, Any]]) -> Iterator[str]:
    """``name:`` then each ``key: value`` entry indented under it; ``name: {}`` when empty."""
    first = True
    pad = " " * _NESTED
    for key, value in entries:
        if first:
            yield f"{name}:\n"
            first = False
        text = _dump({key: value}, _WIDTH - _NESTED)
        yield "".join(pad + line for line in text.splitlines(keepends=True))
    if first:
        yield f"{name}: {{}}\n"


# The cache beside a baseline YAML (``.NAME.cache``): JSON lines.  A header (cache marker, the
# YAML's sha256, format, learned window, assets, conversation count); the tables of every distinct
# value key and value range; then one line per conversation whose learned values are two arrays of
# indexes into those tables (base64 of native unsigned 32-bit integers).  So loading builds each
# conversation from one line, its thousands of values as one dict in C (no step per value in
# Python), the keys and equal integer ranges shared by every conversation as a YAML load shares
# them; and no parsed document sits in memory whole.  Strict JSON (no NaN, no type JSON lacks: no
# cache then) read by orjson, which rejects what is not JSON and builds only plain data.  Version 2
# (``.NAME.json``) held each conversation's values as JSON: a 5,435-conversation baseline took 2.4 s
# to load, most of it a Python step per value.  Version 3 was written by a loader that read an
# unquoted base-60 looking scalar (a MAC such as ``10:20:30:40:50:51``) as a number: version 4
# holds what ``yamlfile.SafeLoader`` reads, text.  Version 5 added each conversation's addresses
# (unit ids, link addresses), version 6 the addresses whose identification was read, version 10
# each conversation's response times, version 11 DNP3 values and CROB operations per outstation,
# version 12 the DNP3 points each request function and group addressed per outstation.  Its
# RangeSets are read back as written (``_cached_ranges``): a change to their form needs a new one.
CACHE_FORMAT: Final = "ics-monitor-baseline-cache/12"
_CACHE_START: Final = b'{"cache":"' + CACHE_FORMAT.encode() + b'"'
_INDEX: Final = "I"
# Where a version-2 cache was: removed when a newer one is written.
_OLD_CACHE_SUFFIX: Final = ".json"


# While a baseline loads: one (kind, point) key object per distinct point, shared by every
# conversation that learned it (a plant's clients read the same registers, and 2 million points of
# 5,000 conversations otherwise held 2 million copies of a few hundred keys), and one object per
# equal integer range.  Emptied when the load ends (``_sharing``); capped.  Typed ``Any`` on
# purpose: compiled (mypyc), a ``tuple[str, str]`` value is unboxed into a C struct and boxed again
# as a new tuple wherever it is stored, so nothing would be shared.
_VALUE_KEYS: dict[Any, Any] = {}
MAX_SHARED_KEYS: Final = 1_000_000


def _intern(table: dict[Any, Any], value: Any) -> Any:
    """The object equal to ``value`` already in ``table``, else ``value`` (kept, below the cap)."""
    shared = table.get(value)
    if shared is not None:
        return shared
    if len(table) < MAX_SHARED_KEYS:
        table[value] = value
    return value


def _shared_key(kind: str, point: str) -> Any:
    return _intern(_VALUE_KEYS, (kind, point))


# The same for integer ranges: coils and status words repeat (0, 0), (0, 1), (1, 1) everywhere.
# Floats are left alone (0.0 equals -0.0, and analog ranges rarely repeat).
_RANGES: dict[Any, Any] = {}


def _shared(bounds: Any) -> Any:
    if type(bounds[0]) is not int or type(bounds[1]) is not int:
        return bounds
    return _intern(_RANGES, bounds)


@contextlib.contextmanager
def _sharing() -> Iterator[None]:
    """Around a load: what it shared is forgotten afterwards (the loaded objects keep it)."""
    try:
        yield
    finally:
        _VALUE_KEYS.clear()
        _RANGES.clear()


def _cache_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.cache")


def _cache_line(value: Any) -> bytes:
    """One line of the cache: strict JSON (ValueError for NaN or infinity, TypeError for a date, a set ...)."""
    return json.dumps(value, allow_nan=False, separators=(",", ":")).encode() + b"\n"


def _exact_in_json(value: Any) -> bool:
    """Whether orjson reads ``value``'s integers back as integers (past 64 bits it reads floats)."""
    if type(value) is int:
        return _MIN_JSON_INT <= value <= _MAX_JSON_INT
    if isinstance(value, (list, tuple)):
        return all(_exact_in_json(item) for item in value)
    if isinstance(value, dict):
        return all(_exact_in_json(item) for item in value.values())
    return True


_MIN_JSON_INT: Final = -(2**63)
_MAX_JSON_INT: Final = 2**64 - 1


def _indexes(numbers: array[int]) -> str:
    return base64.b64encode(numbers.tobytes()).decode("ascii")


def _load_cache(target: Path, yaml_sha256: str) -> tuple[dict[str, Any], list[Conversation]] | None:
    """The header and conversations cached for exactly this YAML text, or None (no cache, stale, damaged)."""
    try:
        with _cache_path(target).open("rb") as lines:
            if lines.read(len(_CACHE_START)) != _CACHE_START:
                return None  # another format
            lines.seek(0)
            header = orjson.loads(lines.readline())
            if (
                not isinstance(header, dict)
                or header.get("cache") != CACHE_FORMAT
                or header.get("yaml_sha256") != yaml_sha256
                or header.get("format") != FORMAT
                or header.get("byteorder") != sys.byteorder
            ):
                return None
            body = hashlib.blake2b(digest_size=16)
            line = lines.readline()
            body.update(line)
            tables = orjson.loads(line)
            keys: list[Any] = [(str(kind), str(point)) for kind, point in tables[0]]
            ranges: list[Any] = [(low, high) for low, high in tables[1]]
            conversations = []
            for line in lines:
                body.update(line)
                conversations.append(Conversation.from_record(orjson.loads(line), keys, ranges))
            if len(conversations) != header.get("conversations") or body.hexdigest() != header.get("body"):
                return None  # cut short at a line's end, or changed since written
    except OSError:
        return None
    except (
        orjson.JSONDecodeError,
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        OverflowError,
    ):
        return None  # a damaged cache: the YAML decides
    return header, conversations


def _read_document(stream: str | TextIO) -> tuple[Any, list[Conversation]]:
    """The baseline document from a YAML stream, with ``conversations`` built one entry at a time.

    libyaml's (or PyYAML's) parser hands out events lazily; each conversation's subtree becomes a
    dict, then a ``Conversation``, before the next one is read, so the whole document never sits
    in memory as YAML nodes.  Scalars are resolved and constructed as ``safe_load`` would.
    Returns the top-level mapping (conversations left out) and the conversations.
    """
    loader: Any = SafeLoader(stream)
    conversations: list[Conversation] = []
    try:
        events = iter(lambda: loader.get_event() if loader.check_event() else None, None)
        _expect(next(events), yaml.StreamStartEvent)
        start = next(events, None)
        if start is None or isinstance(start, yaml.StreamEndEvent):
            return None, conversations  # an empty file
        _expect(start, yaml.DocumentStartEvent)
        top = next(events)
        if not isinstance(top, yaml.MappingStartEvent):
            data = _build(loader, top, events, {})
        else:
            data = {}
            anchors: dict[str, Any] = {}
            for event in events:
                if isinstance(event, yaml.MappingEndEvent):
                    break
                key = _build(loader, event, events, anchors)
                value_start = next(events)
                if key == "conversations" and isinstance(value_start, yaml.MappingStartEvent):
                    for entry in events:
                        if isinstance(entry, yaml.MappingEndEvent):
                            break
                        _build(loader, entry, events, anchors)  # the label: derived, not trusted
                        body = _build(loader, next(events), events, anchors)
                        conversations.append(Conversation.from_dict(body))
                else:
                    data[key] = _build(loader, value_start, events, anchors)
        _expect(next(events), yaml.DocumentEndEvent)
        following = next(events)
        if not isinstance(following, yaml.StreamEndEvent):
            raise yaml.YAMLError("expected a single document in the stream")
        return data, conversations
    finally:
        loader.dispose()


def _expect(event: Any, kind: type) -> None:
    if not isinstance(event, kind):
        raise yaml.YAMLError(f"unexpected {type(event).__name__} in the baseline YAML")


_COLLECTION_TAGS: Final = {None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"}


def _build(loader: Any, event: Any, events: Iterator[Any], anchors: dict[str, Any]) -> Any:
    """The Python value of the node starting with ``event`` (its other events come from ``events``)."""
    if isinstance(event, yaml.ScalarEvent):
        tag = event.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        node = yaml.ScalarNode(tag, event.value, None, None, event.style)
        # The constructor itself, not construct_object(): that one keeps every node it built.
        construct = loader.yaml_constructors.get(tag) or loader.yaml_constructors[None]
        value = construct(loader, node)
    elif getattr(event, "tag", None) not in _COLLECTION_TAGS:  # a collection's tag: the plain YAML ones only
        raise yaml.YAMLError(f"unsupported tag {event.tag!r} in the baseline YAML")
    elif isinstance(event, yaml.SequenceStartEvent):
        value = []
        for item in events:
            if isinstance(item, yaml.SequenceEndEvent):
                break
            value.append(_build(loader, item, events, anchors))
    elif isinstance(event, yaml.MappingStartEvent):
        value = {}
        merged: dict[Any, Any] = {}
        for item in events:
            if isinstance(item, yaml.MappingEndEvent):
                break
            if isinstance(item, yaml.ScalarEvent) and item.value == "<<" and item.implicit[0]:
                # A merge key (<<: *anchor or a list of them): explicit keys win, earlier merges first.
                source = _build(loader, next(events), events, anchors)
                for part in source if isinstance(source, list) else [source]:
                    if not isinstance(part, dict):
                        raise yaml.YAMLError("a merge key (<<) needs a mapping or a list of mappings")
                    for merged_key, merged_value in part.items():
                        merged.setdefault(merged_key, merged_value)
                continue
            key = _build(loader, item, events, anchors)
            value[key] = _build(loader, next(events), events, anchors)
        for merged_key, merged_value in merged.items():
            value.setdefault(merged_key, merged_value)
    elif isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise yaml.YAMLError(f"found undefined alias {event.anchor!r}")
        return anchors[event.anchor]
    else:
        raise yaml.YAMLError(f"unexpected {type(event).__name__} in the baseline YAML")
    anchor = getattr(event, "anchor", None)
    if anchor is not None:
        anchors[anchor] = value
    return value


class Baseline:
    """Known assets and conversations; the detectors' reference when enforcing."""

    def __init__(
        self,
        conversations: Iterable[Conversation] = (),
        assets: dict[str, list[str]] | None = None,
        learned: dict[str, Any] | None = None,
    ) -> None:
        self.conversations: dict[ConversationKey, Conversation] = {c.key: c for c in conversations}
        self.asset_macs: dict[str, list[str]] = dict(assets or {})
        self.learned: dict[str, Any] = dict(learned or {})
        for conversation in self.conversations.values():
            for ip in (conversation.client, conversation.server):
                if is_asset_ip(ip):
                    self.asset_macs.setdefault(ip, [])
        self.pairs: set[tuple[str, str]] = {(c.client, c.server) for c in self.conversations.values()}
        self._services: set[tuple[str, str, str, int]] | None = None
        # (server, protocol) -> the clients that wrote to it while learning (``writers``).
        self._writers: dict[tuple[str, str], set[str]] | None = None
        self._profiles: dict[tuple[str, str, int, str], Conversation | None] = {}
        self._pair_profiles: dict[tuple[str, str, str], Conversation] | None = None
        self.macs: set[str] = {mac for macs in self.asset_macs.values() for mac in macs}
        # sha256 (hex) of the file text this baseline was read from (``load``); "" when not read.
        self.digest = ""

    # -- queries --------------------------------------------------------------------------------------------

    @property
    def assets(self) -> list[dict[str, Any]]:
        """Known assets: ``[{ip, macs}]`` sorted by address."""
        return [{"ip": ip, "macs": list(macs)} for ip, macs in sorted(self.asset_macs.items(), key=_ip_key)]

    def knows_ip(self, ip: str) -> bool:
        """Whether ``ip`` was seen while learning."""
        return ip in self.asset_macs

    def knows_mac(self, mac: str) -> bool:
        """Whether ``mac`` was seen while learning."""
        return mac in self.macs

    def adopt(self, conversation: Conversation | None, assets: dict[str, list[str]]) -> None:
        """Add a conversation and assets learned late (``BaselineLearner.learn_late_flow``).

        The indexes built from the conversations are dropped, to be rebuilt on next use.
        """
        if conversation is not None:
            self.conversations[conversation.key] = conversation
            self.pairs.add((conversation.client, conversation.server))
            for ip in (conversation.client, conversation.server):
                if is_asset_ip(ip):
                    self.asset_macs.setdefault(ip, [])
            self._services = None
            self._writers = None
            self._profiles = {}
            self._pair_profiles = None
        for ip, macs in assets.items():
            known = self.asset_macs.setdefault(ip, [])
            known.extend(mac for mac in macs if mac not in known)
            self.macs.update(macs)

    def conversation(self, key: ConversationKey) -> Conversation | None:
        """The learned conversation ``(client, server, transport, port, protocol)``, or None."""
        return self.conversations.get(key)

    def knows_pair(self, client: str, server: str) -> bool:
        """Whether ``client`` talked to ``server`` at all (any protocol or port) while learning."""
        return (client, server) in self.pairs

    def writers(self, server: str, protocol: str) -> set[str]:
        """The clients that wrote to (or sent controls to) ``server`` over ``protocol`` while learning."""
        writers = self._writers
        if writers is None:  # built on first use: only a write asks
            writers = self._writers = {}
            for conversation in self.conversations.values():
                if conversation.wrote():
                    writers.setdefault((conversation.server, conversation.protocol), set()).add(
                        conversation.client
                    )
        return writers.get((server, protocol), set())

    def knows_service(self, client: str, server: str, transport: str, port: int) -> bool:
        """Whether ``client`` talked to ``server`` on ``transport``/``port`` (any protocol) while learning."""
        services = self._services
        if services is None:  # built on first use: only the scan detectors ask
            services = self._services = {
                (c.client, c.server, c.transport, c.port) for c in self.conversations.values()
            }
        return (client, server, transport, port) in services

    def server_profile(self, server: str, transport: str, port: int, protocol: str) -> Conversation | None:
        """What every learned client did with one server service, merged (client ``*``), or None.

        Used for clients the baseline does not know: a new host writing a register is judged
        against the addresses and values that register had with the known clients.  A service on
        a port (or transport) nothing used while learning takes what the server's other ports of
        that protocol learned: the registers are the device's, whichever port reaches them (a
        second Modbus port opened for an attacker must not evade the value checks).
        """
        key = (server, transport, port, protocol)
        if key in self._profiles:
            return self._profiles[key]
        members = [
            c for c in self.conversations.values() if (c.server, c.transport, c.port, c.protocol) == key
        ]
        if not members:
            members = [
                c for c in self.conversations.values() if c.server == server and c.protocol == protocol
            ]
        profile = None
        if members:
            profile = Conversation("*", server, transport, port, protocol)
            for member in members:
                _merge(profile, member)
        self._profiles[key] = profile
        return profile

    def pair_profile(self, client: str, server: str, protocol: str) -> Conversation | None:
        """What ``client`` did with ``server`` over ``protocol`` while learning, every port merged, or None.

        The sweep detectors' reference: a unit id, DNP3 link address or function code the pair used
        while learning is routine, not a probe.  Indexed once, on first use.
        """
        profiles = self._pair_profiles
        if profiles is None:
            profiles = self._pair_profiles = {}
            merged: set[tuple[str, str, str]] = set()
            for conversation in self.conversations.values():
                key = (conversation.client, conversation.server, conversation.protocol)
                found = profiles.get(key)
                if found is None:
                    profiles[key] = conversation
                    continue
                if key not in merged:  # a second port of the pair: merge into a copy, not the first
                    merged.add(key)
                    first = found
                    found = profiles[key] = Conversation(key[0], key[1], "*", 0, key[2])
                    _merge(found, first)
                _merge(found, conversation)
        return profiles.get((client, server, protocol))

    def protocols_of_pair(self, client: str, server: str) -> list[str]:
        """``protocol transport/port`` of every learned conversation between the two."""
        return sorted(
            f"{c.protocol} {c.transport}/{c.port}"
            for c in self.conversations.values()
            if c.client == client and c.server == server
        )

    # -- persistence ---------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain sorted data: the YAML document."""
        learned = self._learned_section()
        assets = self._assets_section()
        conversations = {
            conversation_label(key): conversation.to_dict()
            for key, conversation in sorted(self.conversations.items(), key=_conversation_order)
        }
        return {"format": FORMAT, "learned": learned, "assets": assets, "conversations": conversations}

    def to_yaml(self) -> str:
        """The human-reviewable, diffable text."""
        return "".join(self.yaml_chunks())

    def yaml_chunks(self) -> Iterator[str]:
        """``to_yaml`` piece by piece: one conversation or asset at a time.

        A baseline of thousands of conversations would otherwise be held as one tree of YAML
        nodes several times the size of the data; emitting each entry on its own (indented under
        its section, wrapped as if nested) gives the same text with memory for one entry.
        """
        yield (
            "# ics-monitor baseline: reviewed and edited by analysts. Remove what should not be\n"
            "# normal; ranges are inclusive [first, last]; values are [min, max] seen while learning;\n"
            "# peak_*_10s: most requests / error responses in 10 s (flood and error-storm thresholds);\n"
            "# polling window: [low, high] of the median of 8 intervals (the drift check's band);\n"
            "# response_time: seconds from request to answer, median and [low, high] of 8-answer medians.\n"
        )
        yield _dump({"format": FORMAT, "learned": self._learned_section()})
        yield from _section("assets", iter(self._assets_section().items()))
        yield from _section(
            "conversations",
            (
                (conversation_label(key), conversation.to_dict())
                for key, conversation in sorted(self.conversations.items(), key=_conversation_order)
            ),
        )

    def save(self, path: str | Path) -> None:
        """Write the YAML file (to a temporary file first, renamed over ``path`` once complete).

        Beside it goes ``.NAME.cache``: the same baseline as JSON lines with the SHA-256 of the
        YAML text, which ``load`` reads instead of parsing YAML while the YAML is unchanged (a
        baseline of thousands of conversations parses in a minute as YAML, in under a second from
        the cache).  An edited YAML no longer matches the hash and is parsed; the cache is only
        ever a shortcut.
        """
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        digest = hashlib.sha256()
        try:
            with partial.open("wb") as out:
                for chunk in self.yaml_chunks():
                    data = chunk.encode("utf-8")
                    digest.update(data)
                    out.write(data)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        self._save_cache(target, digest.hexdigest(), saved=True)

    def _save_cache(self, target: Path, yaml_sha256: str, *, saved: bool = False) -> None:
        """Write the cache of the YAML whose hash is ``yaml_sha256``: what loading that YAML gives.

        ``saved``: this baseline was just written to it (``save``), so the cache holds what the
        YAML does (``to_dict``: polls learned enough, rounded, every section in the file's
        order); otherwise this baseline was loaded from it and is cached as it is.
        """
        cache = _cache_path(target)
        partial = cache.with_name(f"{cache.name}.partial")
        try:
            # Opened first: a read-only directory fails before the work.
            out = partial.open("wb")
        except OSError:
            return
        try:
            # Every distinct key, and every range (equal integer ranges once, as a load shares them).
            key_index: dict[Any, int] = {}
            range_index: dict[Any, int] = {}
            ranges: list[Any] = []
            lines: list[bytes] = []
            if saved:
                document = {"learned": self._learned_section(), "assets": self._assets_section()}
                members = [c for _, c in sorted(self.conversations.items(), key=_conversation_order)]
            else:
                document = {
                    "learned": dict(self.learned),
                    "assets": {ip: {"macs": list(macs)} for ip, macs in self.asset_macs.items()},
                }
                members = list(self.conversations.values())
            with _sharing():
                for member in members:
                    conversation = Conversation.from_dict(member.to_dict()) if saved else member
                    key_numbers = array(_INDEX)
                    range_numbers = array(_INDEX)
                    for key, bounds in conversation.values.items():
                        number = key_index.get(key)
                        if number is None:
                            number = key_index[key] = len(key_index)
                        key_numbers.append(number)
                        shared = type(bounds[0]) is int and type(bounds[1]) is int
                        slot = range_index.get(bounds) if shared else None
                        if slot is None:
                            if not _exact_in_json(bounds):
                                raise ValueError("a learned value past 64 bits")
                            slot = len(ranges)
                            ranges.append(bounds)
                            if shared:
                                range_index[bounds] = slot
                        range_numbers.append(slot)
                    record = conversation.to_record(_indexes(key_numbers), _indexes(range_numbers))
                    if not _exact_in_json(record):
                        raise ValueError("a number past 64 bits")
                    lines.append(_cache_line(record))
            tables = _cache_line([list(key_index), ranges])
            # The body's digest: damage that leaves valid JSON (a flipped digit) is caught too.
            body = hashlib.blake2b(tables, digest_size=16)
            for line in lines:
                body.update(line)
            header = {
                "cache": CACHE_FORMAT,
                "yaml_sha256": yaml_sha256,
                "format": FORMAT,
                "byteorder": sys.byteorder,
                **document,
                "conversations": len(lines),
                "body": body.hexdigest(),
            }
            first = _cache_line(header)
            if orjson.loads(first) != header:
                raise ValueError("a header JSON cannot hold as it is (keys that are not text ...)")
            with out:
                out.write(first)
                out.write(tables)
                out.writelines(lines)
            partial.replace(cache)
            with contextlib.suppress(OSError):
                target.with_name(f".{target.name}{_OLD_CACHE_SUFFIX}").unlink(missing_ok=True)
        except (OSError, ValueError, TypeError, OverflowError, RecursionError):
            # No cache (a read-only directory, a value JSON cannot hold): load parses the YAML.
            with contextlib.suppress(OSError):
                cache.unlink(missing_ok=True)
        finally:
            out.close()
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)

    def _learned_section(self) -> dict[str, Any]:
        """The ``learned`` section as the YAML holds it."""
        return {key: self.learned[key] for key in sorted(self.learned)}

    def _assets_section(self) -> dict[str, Any]:
        """The ``assets`` section as the YAML holds it."""
        return {ip: {"macs": sorted(macs)} for ip, macs in sorted(self.asset_macs.items(), key=_ip_key)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Baseline:
        """Inverse of ``to_dict``; a wrong format marker is a configuration error."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not an ics-monitor baseline (expected format: {FORMAT})")
        with _sharing():
            conversations = [
                Conversation.from_dict(entry) for entry in (data.get("conversations") or {}).values()
            ]
        return cls._from_parts(data, conversations)

    @classmethod
    def _from_parts(cls, data: dict[str, Any], conversations: list[Conversation]) -> Baseline:
        assets = {str(ip): _macs(ip, entry) for ip, entry in (data.get("assets") or {}).items()}
        return cls(conversations, assets, data.get("learned") or {})

    @classmethod
    def load(cls, path: str | Path, *, keep_cache: bool = True) -> Baseline:
        """Read a baseline YAML file: its cache when the YAML is unchanged, else the YAML.

        ``keep_cache`` False: do not write the cache when the YAML was read (another process
        loading the same file at the same time writes it).
        """
        target = Path(path)
        with _sharing():
            # Built without a collection, then frozen: stays freed by reference counting when
            # dropped (a reloaded baseline), having no cycles.
            with collector_paused(freeze=True):
                # Hashed as a stream: the YAML text is read whole only when the cache cannot serve.
                with target.open("rb") as stream:
                    digest = hashlib.file_digest(stream, "sha256").hexdigest()
                cached = _load_cache(target, digest)
                if cached is not None:
                    # Not ``*cached``: compiled (mypyc), a star call over the narrowed optional
                    # tuple passed the parts wrongly.  A header of the wrong shape: the YAML decides.
                    with contextlib.suppress(AttributeError, TypeError, ValueError):
                        baseline = cls._from_parts(cached[0], cached[1])
                        baseline.digest = digest  # the text the cache was made from
                        return baseline
                text = target.read_bytes()
            baseline = cls._from_yaml(path, text)
        # Of the text parsed, in case the file changed since it was hashed.
        baseline.digest = hashlib.sha256(text).hexdigest()
        # The next load reads the cache (a hand-edited file, or a cache of an older format).  Best effort.
        if keep_cache:
            with contextlib.suppress(OSError):
                baseline._save_cache(target, baseline.digest)
        return baseline

    @classmethod
    def _from_yaml(cls, path: str | Path, text: bytes) -> Baseline:
        try:
            data, conversations = _read_document(text.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: not UTF-8 text: {error.reason}") from None
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as error:
            raise ValueError(f"{path}: {error}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an ics-monitor baseline (expected format: {FORMAT})")
        return cls._from_parts(data, conversations)

    def diff(self, other: Baseline, *, counts: bool = False) -> list[str]:
        """What changed from this baseline to ``other``: ``+ path: value``, ``- path``, ``~ path: a -> b``.

        Counters (``count``, ``requests``, ``flows``, ``samples``) and the learning window are left
        out unless ``counts`` is true: they change on every run and hide the changes that matter.
        The rate peaks stay: they set the flood and error-storm thresholds.
        """
        mine = _flatten(self.to_dict(), "", counts)
        theirs = _flatten(other.to_dict(), "", counts)
        lines: list[str] = []
        for path in sorted(mine.keys() | theirs.keys()):
            if path not in theirs:
                lines.append(f"- {path}: {mine[path]}")
            elif path not in mine:
                lines.append(f"+ {path}: {theirs[path]}")
            elif mine[path] != theirs[path]:
                lines.append(f"~ {path}: {mine[path]} -> {theirs[path]}")
        return lines


_COUNTERS: Final = frozenset({"count", "requests", "flows", "samples", "events"})


def _flatten(value: Any, path: str, counts: bool) -> dict[str, Any]:
    if path == "format" or (path == "learned" and not counts):
        return {}
    if isinstance(value, dict):
        if not value:
            return {path: {}}
        flat: dict[str, Any] = {}
        for key, item in value.items():
            if not counts and key in _COUNTERS:
                continue
            flat.update(_flatten(item, f"{path}.{key}" if path else str(key), counts))
        return flat
    return {path: value}


def _ip_key(item: tuple[str, Any]) -> tuple[int, bytes | str]:
    try:
        return (0, ipaddress.ip_address(item[0]).packed)
    except ValueError:
        return (1, item[0])


def _conversation_order(item: tuple[ConversationKey, Conversation]) -> tuple[Any, ...]:
    client, server, transport, port, protocol = item[0]
    return (_ip_key((client, None)), _ip_key((server, None)), protocol, transport, port)
