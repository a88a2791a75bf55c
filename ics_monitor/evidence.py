"""An alert's packets carved out of captures, for Wireshark: the frames it cites, its flow, or its hosts.

An alert names its evidence (frame numbers in the run that raised it, flow endpoints, first and
last time); analysts then want the packets themselves.  Three scopes:

* ``frames``: exactly the frames the alert cites (up to the alert's cap), found by number in the
  captures of the run whose record of the alert was kept, merged by time as that run merged
  them.  Each is checked against the alert (its time: within a detector's window of the alert's
  times; its addresses, both when the alert names a connection),
  so other captures are refused, not silently mis-carved.
* ``flow``: every packet of the alert's connection (its two addresses and ports, either
  direction, TCP or UDP) from ``pad`` seconds before its first time to ``pad`` after its last,
  from the captures of every run that covers that window.  An alert without ports (a scan, an
  ARP claim, ICMP) falls back to ``hosts``.
* ``hosts``: every packet between the alert's two addresses (any port, and their ARP), or to and
  from its one address, in the same window.  An ARP alert (a changed claim, poisoning, a sweep)
  takes every frame to or from the claimant's MAC instead: the spoofed replies carry another
  host's address, and what was intercepted goes through that MAC.

A window starts at the alert's first time, or at the start of the window its detector counted
over (``evidence.window_start``: a sweep, a storm) when earlier.

Frames are written as read (``capture.writer``), outer headers and all: a VXLAN- or GRE-carried
flow is matched on its inner addresses and written whole.  Only what the flow key needs is
decoded.  IP fragments that complete no datagram themselves are taken when their header holds the
two addresses (so Wireshark can reassemble what the last fragment completes).  VLAN tags are not
part of the match: the same addresses and ports on two VLANs are both taken.  Nothing here
analyses traffic or touches the store.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ics_monitor.capture.files import Frame, open_captures
from ics_monitor.capture.writer import CaptureWriter
from ics_monitor.core.errors import IcsMonitorError
from ics_monitor.decode.decoder import Decoder

SCOPES: Final = ("frames", "flow", "hosts")
_ETHERNET: Final = 1
# Link types whose header holds the sender's address only (Linux cooked SLL and SLL2).
_SENDER_ONLY_LINKS: Final = frozenset((113, 276))
# More frames than this in one carve is a capture, not evidence: stop and say so.
MAX_FRAMES: Final = 1_000_000
# Times are stored as floats: a cited frame's time may differ from the alert's by rounding.
_SLACK: Final = 0.001
# Cited frames may precede an alert's first time by a detector's window (minutes at most).
_WINDOW_BEFORE: Final = 3600.0
# ... or follow its last time by a detector's wait (an ARP sweep is judged seconds after its requests).
_WINDOW_AFTER: Final = 60.0


class EvidenceError(IcsMonitorError):
    """The alert or the captures do not allow the carve asked for (one line, for the user)."""


@dataclass(frozen=True)
class Selection:
    """What to carve: a scope, the alert's frames, addresses (packed), ports and time window."""

    scope: str
    frames: frozenset[int] = frozenset()
    hosts: tuple[bytes, ...] = ()
    ports: tuple[int, int] | None = None
    start: float = float("-inf")
    end: float = float("inf")
    names: tuple[str, ...] = field(default=(), compare=False)
    # frames: addresses every cited frame must carry (both of a connection; the one an alert
    # keyed on its source alone follows to other devices); else any of ``hosts``.
    required: tuple[bytes, ...] = ()
    # hosts: frames to or from these MACs (an ARP alert's claimant) rather than ``hosts``.
    macs: tuple[bytes, ...] = ()

    def describe(self) -> str:
        """The selection in one phrase, for the command's report."""
        if self.scope == "frames":
            return f"frames {', '.join(str(n) for n in sorted(self.frames))}"
        if self.scope == "flow" and self.ports is not None and len(self.names) == 2:
            return f"flow {self.names[0]}:{self.ports[0]} <-> {self.names[1]}:{self.ports[1]}"
        if self.macs:
            return f"traffic to or from MAC {self.names[0]}"
        return "traffic " + (" <-> ".join(self.names) if len(self.names) == 2 else f"of {self.names[0]}")


def _packed(address: Any) -> bytes | None:
    if not isinstance(address, str) or not address:
        return None
    try:
        return ipaddress.ip_address(address).packed
    except ValueError:
        return None


def _opening(alert: dict[str, Any], first: float) -> float:
    """Where an alert's window opens: its first time, or where its detector began counting."""
    evidence = alert.get("evidence")
    started = evidence.get("window_start") if isinstance(evidence, dict) else None
    if isinstance(started, (int, float)) and not isinstance(started, bool) and started < first:
        return float(started)
    return first


def _mac(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        packed = bytes.fromhex(value.replace(":", "").replace("-", ""))
    except ValueError:
        return None
    return packed if len(packed) == 6 else None


_ADDRESS_RUN: Final = re.compile(r"[0-9A-Fa-f:.]+")


def _named_in(key: str, name: str) -> bool:
    """Whether the dedup ``key`` names address ``name`` whole (not a part of a longer address).

    Every run of address characters is read as an address, else as IPv4 addresses with ports
    (``10.0.0.1:502``); an IPv6 address followed by ``:port`` unbracketed is ambiguous and reads
    as one longer address (then the key names neither: both addresses are checked, as before).
    """
    try:
        wanted = ipaddress.ip_address(name)
    except ValueError:
        return False
    for run in _ADDRESS_RUN.findall(key):
        for text in (run.strip(":."), *run.split(":")):
            try:
                if ipaddress.ip_address(text.strip(".")) == wanted:
                    return True
            except ValueError:
                continue
    return False


def selection_for(alert: dict[str, Any], scope: str, pad: float) -> Selection:
    """The selection ``scope`` means for ``alert`` (a stored alert record)."""
    if scope not in SCOPES:
        raise EvidenceError(f"unknown scope {scope!r}: one of {', '.join(SCOPES)}")
    names = tuple(str(alert[key]) for key in ("src_ip", "dst_ip") if _packed(alert.get(key)) is not None)
    hosts = tuple(packed for packed in (_packed(name) for name in names) if packed is not None)
    first = float(alert.get("ts") or 0.0)
    last = float(alert.get("last_ts") or first)
    if scope == "frames":
        frames = frozenset(int(number) for number in alert.get("frames") or () if int(number) > 0)
        if not frames:
            raise EvidenceError(f"alert {alert.get('alert_id')} cites no frames: use --scope flow or hosts")
        # Where its frames lie: up to the alert's last time; from before the kept record's own
        # time (``recorded_ts``) by at most a detector's window (a storm or sweep cites the frames
        # that led up to it).
        recorded = float(alert.get("recorded_ts") or first)
        required: tuple[bytes, ...] = ()
        if isinstance(alert.get("src_port"), int) and alert.get("src_port") and len(hosts) == 2:
            # A connection's frames carry both its addresses, unless the alert is deduplicated
            # on one of them alone (a source enumerating devices): its later occurrences, whose
            # frames it cites, may be with other devices.
            key = str(alert.get("key") or "")
            keyed = tuple(packed for name, packed in zip(names, hosts, strict=True) if _named_in(key, name))
            required = keyed if len(keyed) == 1 else hosts
        return Selection(
            "frames",
            frames=frames,
            hosts=hosts,
            start=min(recorded, first) - _WINDOW_BEFORE,
            end=last + _WINDOW_AFTER,
            names=names,
            required=required,
        )
    start, end = _opening(alert, first) - pad, last + pad
    claimant = _mac(alert.get("src_mac"))
    if scope != "frames" and alert.get("protocol") == "arp" and claimant is not None:
        return Selection("hosts", macs=(claimant,), start=start, end=end, names=(str(alert["src_mac"]),))
    if not hosts:
        raise EvidenceError(f"alert {alert.get('alert_id')} names no IP address: use --scope frames")
    src_port, dst_port = alert.get("src_port"), alert.get("dst_port")
    # Port 0: ICMP and other transports, whose alerts carry no ports.
    if (
        scope == "flow"
        and len(hosts) == 2
        and isinstance(src_port, int)
        and isinstance(dst_port, int)
        and src_port
        and dst_port
    ):
        return Selection("flow", hosts=hosts, ports=(src_port, dst_port), start=start, end=end, names=names)
    return Selection("hosts", hosts=hosts, start=start, end=end, names=names)


@dataclass
class Carved:
    """What a carve wrote: frames, first and last time; frames read; files read up to damage."""

    frames: int = 0
    first_ts: float = 0.0
    last_ts: float = 0.0
    read: int = 0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _matches(selection: Selection, ends: tuple[bytes, bytes], ports: tuple[int, int] | None) -> bool:
    hosts = selection.hosts
    if selection.scope == "flow":
        wanted = selection.ports
        return (
            ports is not None
            and wanted is not None
            and (
                (ends, ports) == ((hosts[0], hosts[1]), wanted)
                or (ends, ports) == ((hosts[1], hosts[0]), (wanted[1], wanted[0]))
            )
        )
    if len(hosts) == 2:
        return set(ends) == set(hosts) if ends[0] != ends[1] else hosts[0] == hosts[1] == ends[0]
    return hosts[0] in ends


def _ends(
    decoder: Decoder, number: int, frame: Frame
) -> tuple[tuple[bytes, bytes], tuple[int, int] | None] | None:
    """A frame's two addresses (ARP: sender and target) and, for TCP/UDP, its ports; None if neither."""
    ts, link_type, data, wire_len = frame
    packet = decoder.decode(number, ts, link_type, data, wire_len)
    decoder.anomalies.clear()
    if packet is None:
        return None
    if packet.arp is not None:
        return (packet.arp.sender_ip, packet.arp.target_ip), None
    if not packet.ip_version:
        return None
    ports = (packet.sport, packet.dport) if packet.ip_proto in (6, 17) else None
    return (packet.src_ip, packet.dst_ip), ports


def _carries_mac(decoder: Decoder, number: int, frame: Frame, macs: tuple[bytes, ...]) -> bool:
    """Whether a frame is from or to one of ``macs`` (any EtherType).

    By its link header, a tunnelled frame's inner header, or an ARP message's hardware addresses.
    """
    ts, link_type, data, wire_len = frame
    if link_type == _ETHERNET and (data[6:12] in macs or data[0:6] in macs):
        return True
    packet = decoder.decode(number, ts, link_type, data, wire_len)
    decoder.anomalies.clear()
    if packet is None:
        return False
    if packet.src_mac in macs or packet.dst_mac in macs:
        return True
    arp = packet.arp
    return arp is not None and (arp.sender_mac in macs or arp.target_mac in macs)


def carve(paths: Iterable[str], selection: Selection, writer: CaptureWriter) -> Carved:
    """Write the frames of ``paths`` (merged by time, numbered from 1 as a replay numbers them) ``selection`` takes.

    Raises ``EvidenceError`` when a cited frame is not there or is not traffic of the alert's
    addresses (the captures are not those the alert's run read), and ``CaptureError`` for a file
    that cannot be opened; what ``writer`` got by then is for the caller to discard.  A damaged
    file is read up to the damage, as a replay reads it.
    """
    source = open_captures(list(paths))
    decoder = Decoder()
    result = Carved()
    wanted = selection.frames
    last_wanted = max(wanted) if wanted else 0
    hosts = selection.hosts
    pair = (hosts[0] + hosts[1], hosts[1] + hosts[0]) if len(hosts) == 2 and hosts[0] != hosts[1] else ()
    number = 0
    last_ts = float("nan")
    same_time: set[bytes] = set()
    sender_only = False
    try:
        for frame in source:
            number += 1
            if selection.scope == "frames":
                if number in wanted:
                    _check_cited(selection, decoder, number, frame)
                    _take(result, writer, frame)
                    if number >= last_wanted:
                        break
                continue
            ts = frame[0]
            if ts < selection.start or ts > selection.end:
                continue
            if selection.macs:
                matched = _carries_mac(decoder, number, frame, selection.macs)
                if frame[1] in _SENDER_ONLY_LINKS and not sender_only:
                    sender_only = True
                    result.notes.append(
                        "a Linux cooked capture names only the sender's MAC: frames sent to"
                        f" {selection.names[0]} other than ARP are not told apart and are left out"
                    )
            else:
                ends = _ends(decoder, number, frame)
                if ends is None:
                    # A fragment completes no datagram by itself: taken when its header holds
                    # both addresses (source then destination, either way round).
                    if pair and (pair[0] in frame[2] or pair[1] in frame[2]):
                        _take(result, writer, frame)
                    continue
                matched = _matches(selection, ends[0], ends[1])
            if matched:
                if ts == last_ts and frame[2] in same_time:
                    continue  # the same frame from another capture of the same traffic
                if ts != last_ts:
                    last_ts, same_time = ts, set()
                same_time.add(frame[2])
                _take(result, writer, frame)
    finally:
        for capture in source.files:
            capture.close()
    result.read = number
    result.errors = [str(error) for error in source.errors]
    if selection.scope == "frames" and result.frames < len(wanted):
        # Every cited frame up to the last one read was taken: the missing ones lie beyond it.
        missing = min(cited for cited in wanted if cited > number)
        raise EvidenceError(
            f"the captures hold {number:,} frames; frame {missing} the alert cites is not among them"
            " (give the captures its run read)"
        )
    return result


def _take(result: Carved, writer: CaptureWriter, frame: Frame) -> None:
    if result.frames >= MAX_FRAMES:
        raise EvidenceError(f"more than {MAX_FRAMES:,} frames match: use a smaller --pad or --scope frames")
    writer.write(frame)
    if not result.frames:
        result.first_ts = frame[0]
    result.last_ts = frame[0]
    result.frames += 1


def _check_cited(selection: Selection, decoder: Decoder, number: int, frame: Frame) -> None:
    refused = f"frame {number} of these captures is not"
    reason = " they are not the captures the alert's run read, or not all of them"
    if not selection.start <= frame[0] <= selection.end:
        raise EvidenceError(f"{refused} within the alert's time:{reason}")
    if not selection.hosts:
        return
    ends = _ends(decoder, number, frame)
    # A frame that decodes to no address (a fragment, a non-IP frame) cannot be checked further.
    if ends is None:
        return
    shared = set(ends[0]) & set(selection.hosts)
    if not shared or not shared.issuperset(selection.required):
        raise EvidenceError(f"{refused} traffic of {' and '.join(selection.names)}:{reason}")


def evidence_captures(alert: dict[str, Any], runs: list[dict[str, Any]], scope: str, pad: float) -> list[str]:
    """The captures to carve from when none are given, each once.

    For ``frames``, those of the run whose record (and so frame numbering) was kept
    (``record_run``; for a store from before it was recorded, the run that raised the alert last
    when it read the record's time); else those of every run covering the padded window.
    ``runs``: the store's runs; live ones read no file (a record kept from one is refused).
    """
    first = float(alert.get("ts") or 0.0)
    last = float(alert.get("last_ts") or first)
    record_run = alert.get("record_run")
    kept = next((run for run in runs if record_run is not None and run["run_id"] == record_run), None)
    if scope == "frames" and kept is not None and kept.get("command") == "live":
        raise EvidenceError(
            f"alert {alert.get('alert_id')} cites frames as live run {record_run} numbered them:"
            " give the captures that run wrote, or use --scope flow or hosts"
        )
    runs = [run for run in runs if run.get("command") != "live"]

    def covers(run: dict[str, Any], start: float, end: float) -> bool:
        low, high = run.get("first_ts"), run.get("last_ts")
        return low is not None and high is not None and low - _SLACK <= end and start <= high + _SLACK

    if scope == "frames" and kept is not None:
        chosen = [kept]
    elif scope == "frames":
        recorded = float(alert.get("recorded_ts") or first)
        candidates = [run for run in runs if covers(run, recorded, recorded)]
        chosen = [run for run in candidates if run["run_id"] == alert.get("run_id")] or candidates[-1:]
    else:
        chosen = [run for run in runs if covers(run, _opening(alert, first) - pad, last + pad)]
    if not chosen:
        chosen = [run for run in runs if run["run_id"] == alert.get("run_id")]
    paths: list[str] = []
    for run in chosen:
        for path in run["captures"]:
            if path not in paths:
                paths.append(path)
    return paths
