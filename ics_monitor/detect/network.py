"""Layer 2: ARP spoofing, ARP poisoning and ARP sweeps on the control network (ICS-7001..7003).

ARP is where an adversary-in-the-middle on a flat OT segment starts: a station that makes the HMI
believe it owns the PLC's address (and the PLC that it owns the HMI's) relays, reads and rewrites
their Modbus, DNP3 or S7 traffic while both ends see nothing wrong.  The detector keeps, per IP,
the MACs that claimed it (the sender fields of ARP requests and replies) and when each last did:

* ICS-7001, one address, two live claimants: a MAC claims an IP whose current claimant claimed it
  within ``conflict_seconds``.  A replaced device goes quiet before its successor speaks; under
  spoofing the victim keeps re-asserting its binding and the attacker keeps re-poisoning, so the
  claim flips back and forth.  One alert per IP and throttle window, the count its flips.
* ICS-7002, replies nobody asked for: unicast ARP replies from one MAC for one IP that answer no
  request seen from their target within ``answer_seconds``, ``min_replies`` of them within
  ``window`` seconds.  That is what ettercap, arpspoof and bettercap send to keep caches poisoned
  (they never wait to be asked); gratuitous announcements (broadcast, or sender IP = target IP) are
  left out, since hosts send a few when a link comes up.
* ICS-7004, a connection relayed: the flow layer reports a flow whose packets one way come from a
  second source MAC partway through (``flow.source_mac_changed``); between two addresses of one
  subnet (/24, /64), where no router forwards, that is a station in the middle.  The alert adds
  what ARP said of the two addresses.
* ICS-7003, an ARP sweep: one MAC asks for ``min_targets`` addresses within ``window`` seconds that
  no station has claimed.  Answered addresses do not count, so a master resolving its many
  outstations is not a sweep; host discovery across a subnet mostly asks for empty addresses.

ARP probes (sender 0.0.0.0, RFC 5227 duplicate address detection) claim nothing.  State is a few
entries per IP and per MAC, in dicts capped at ``MAX_KEYS`` that forget their oldest entries.
"""

from __future__ import annotations

from typing import Any

from ics_monitor.detect.api import BaseDetector, BoundedDict, Context, Emitter
from ics_monitor.inventory.assets import is_host_ip, subnet_of
from ics_monitor.inventory.oui import is_unicast_mac, vendor_of

MAX_KEYS = 50_000
# MACs remembered per contested IP, and addresses listed in an alert.
MAX_CLAIMANTS = 8
MAX_LISTED = 32
REQUEST, REPLY = 1, 2
RELAYED = "flow.source_mac_changed"


class _Claims:
    """Who claimed one IP: the current claimant and the last claim time of each recent MAC."""

    __slots__ = ("current", "last")

    def __init__(self, mac: str, ts: float) -> None:
        self.current = mac
        self.last: dict[str, float] = {mac: ts}


def _vendor(mac: str | None) -> str:
    return vendor_of(mac) or "unknown vendor"


class ArpWatch(BaseDetector):
    """ICS-7001 conflicting claims, ICS-7002 unsolicited replies, ICS-7003 sweeps (module docstring)."""

    name = "arp_watch"
    rule_ids = ("ICS-7001", "ICS-7002", "ICS-7003", "ICS-7004")
    event_types = frozenset({"arp", "anomaly"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        param = context.rules.param
        self.conflict_seconds = float(param("ICS-7001", "conflict_seconds"))
        self.reply_window = float(param("ICS-7002", "window"))
        self.min_replies = int(param("ICS-7002", "min_replies"))
        self.answer_seconds = float(param("ICS-7002", "answer_seconds"))
        self.sweep_window = float(param("ICS-7003", "window"))
        self.min_targets = int(param("ICS-7003", "min_targets"))
        self.claims: BoundedDict = BoundedDict(MAX_KEYS)  # ip -> _Claims
        self.asked: BoundedDict = BoundedDict(MAX_KEYS)  # (asker ip, asked ip) -> ts
        self.unsolicited: BoundedDict = BoundedDict(MAX_KEYS)  # (mac, ip) -> [start, count, targets, fired]
        self.sweeps: BoundedDict = BoundedDict(MAX_KEYS)  # mac -> [start, targets, fired]
        # mac -> the first address it claimed unopposed: the station's own, shown as the alert source
        self.own_ip: BoundedDict = BoundedDict(MAX_KEYS)

    def on_event(self, event: Any, out: Emitter) -> None:
        """Check one ARP request or reply, then record what it claims; or a relayed flow."""
        if event.event_type == "anomaly":
            if event.code == RELAYED:
                self._relayed(event, out)
            return
        mac, ip = event.sender_mac, event.sender_ip
        if not is_unicast_mac(mac):
            return
        operation = event.operation
        claims = is_host_ip(ip)
        if operation == REQUEST:
            if claims and event.target_ip != ip:
                self.asked[(ip, event.target_ip)] = event.ts
                self._sweep(event, out)
        elif operation == REPLY and claims:
            self._reply(event, out)
        if claims:
            self._claim(event, out)

    # -- ICS-7001 ------------------------------------------------------------------------------------

    def _claim(self, event: Any, out: Emitter) -> None:
        ip, mac, ts = event.sender_ip, event.sender_mac, event.ts
        entry: _Claims | None = self.claims.get(ip)
        if entry is None:
            self.claims[ip] = _Claims(mac, ts)
            if mac not in self.own_ip:
                self.own_ip[mac] = ip
            return
        last = entry.last
        previous = entry.current
        if mac == previous:
            last[mac] = ts
            return
        previous_ts = last.get(previous, ts)
        entry.current = mac
        if mac not in last and len(last) >= MAX_CLAIMANTS:
            del last[min(last, key=last.__getitem__)]
        last[mac] = ts
        if ts - previous_ts > self.conflict_seconds:
            return  # the previous owner had gone quiet: a replaced device or a re-assigned address
        recent = sorted(m for m, seen in last.items() if ts - seen <= self.conflict_seconds)
        out.fire(
            "ICS-7001",
            ip,
            ts=ts,
            frames=(event.frame,),
            endpoints={
                "src_ip": self._source(mac, ip),
                "dst_ip": event.target_ip if is_host_ip(event.target_ip) else None,
                "src_mac": mac,
                "dst_mac": event.target_mac if is_unicast_mac(event.target_mac) else None,
            },
            protocol="arp",
            evidence={
                "ip": ip,
                "mac": mac,
                "vendor": _vendor(mac),
                "previous_mac": previous,
                "previous_vendor": _vendor(previous),
                "previous_claim_ts": previous_ts,
                "seconds_since_previous": round(ts - previous_ts, 3),
                "macs": recent,
                "operation_name": event.operation_name,
                "target_ip": event.target_ip,
                "target_mac": event.target_mac,
            },
        )

    def _source(self, mac: str, claimed: str) -> str | None:
        """The claimant's own address, when it has one other than the one it claims."""
        own = self.own_ip.get(mac)
        return own if own != claimed else None

    # -- ICS-7002 ------------------------------------------------------------------------------------

    def _reply(self, event: Any, out: Emitter) -> None:
        ip, target_ip, ts = event.sender_ip, event.target_ip, event.ts
        if target_ip == ip or not is_unicast_mac(event.target_mac):
            return  # a gratuitous announcement
        asked = self.asked.get((target_ip, ip))
        if asked is not None and 0 <= ts - asked <= self.answer_seconds:
            return
        key = (event.sender_mac, ip)
        state = self.unsolicited.get(key)
        if state is None or ts - state[0] > self.reply_window:
            state = [ts, 0, set(), False]
            self.unsolicited[key] = state
        state[1] += 1
        if len(state[2]) < MAX_LISTED:
            state[2].add(target_ip)
        if state[3] or state[1] < self.min_replies:
            return
        state[3] = True
        mac = event.sender_mac
        out.fire(
            "ICS-7002",
            f"{mac}>{ip}",
            ts=ts,
            frames=(event.frame,),
            endpoints={
                "src_ip": self._source(mac, ip),
                "dst_ip": target_ip if is_host_ip(target_ip) else None,
                "src_mac": mac,
                "dst_mac": event.target_mac,
            },
            protocol="arp",
            evidence={
                "ip": ip,
                "mac": mac,
                "vendor": _vendor(mac),
                "replies": state[1],
                "targets": sorted(state[2]),
                "window_start": state[0],
                "window": self.reply_window,
            },
        )

    # -- ICS-7003 ------------------------------------------------------------------------------------

    def _sweep(self, event: Any, out: Emitter) -> None:
        target, ts = event.target_ip, event.ts
        if target in self.claims or not is_host_ip(target):
            return
        mac = event.sender_mac
        state = self.sweeps.get(mac)
        if state is None or ts - state[0] > self.sweep_window:
            state = [ts, set(), False]
            self.sweeps[mac] = state
        targets: set[str] = state[1]
        if state[2] or target in targets:
            return
        if len(targets) < 4 * self.min_targets:
            targets.add(target)
        if len(targets) < self.min_targets:
            return
        # Addresses claimed since they were asked for were answered: not part of a sweep.
        targets.difference_update([t for t in targets if t in self.claims])
        if len(targets) < self.min_targets:
            return
        state[2] = True
        out.fire(
            "ICS-7003",
            mac,
            ts=ts,
            frames=(event.frame,),
            endpoints={"src_ip": event.sender_ip, "dst_ip": None, "src_mac": mac, "dst_mac": None},
            protocol="arp",
            evidence={
                "mac": mac,
                "vendor": _vendor(mac),
                "distinct_targets": len(targets),
                "targets": sorted(targets, key=_ip_key)[:MAX_LISTED],
                "window_start": state[0],
                "window": self.sweep_window,
            },
        )

    # -- ICS-7004 ------------------------------------------------------------------------------------

    def _relayed(self, event: Any, out: Emitter) -> None:
        src, dst = event.src_ip, event.dst_ip
        if not (is_host_ip(src) and is_host_ip(dst)) or subnet_of(src) != subnet_of(dst):
            return  # routed traffic: a router's MAC may change (failover) or be seen on two legs
        claims = {}
        for ip in (src, dst):
            entry: _Claims | None = self.claims.get(ip)
            if entry is not None:
                claims[ip] = sorted(entry.last)
        contested = {ip: macs for ip, macs in claims.items() if len(macs) > 1}
        note = "".join(f" ARP: {ip} claimed by {', '.join(macs)}." for ip, macs in sorted(contested.items()))
        first, second = sorted((src, dst), key=_ip_key)
        out.fire(
            "ICS-7004",
            f"{first}<>{second}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            protocol=event.transport,
            evidence={
                "detail": event.detail,
                "arp_claims": claims,
                "contested": sorted(contested),
            },
            fields={"claims": note, "transport": event.transport},
        )


def _ip_key(ip: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in ip.split("."))
    except ValueError:
        return (1 << 16,)
