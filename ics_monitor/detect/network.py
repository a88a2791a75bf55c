"""Layer 2: ARP spoofing, ARP poisoning, ARP sweeps and relayed connections (ICS-7001..7004).

ARP is where an adversary-in-the-middle on a flat OT segment starts: a station that makes the HMI
believe it owns the PLC's address (and the PLC that it owns the HMI's) relays, reads and rewrites
their Modbus, DNP3 or S7 traffic while both ends see nothing wrong.  The detector keeps, per VLAN
and IP, the MACs that claimed it (the sender fields of ARP requests and replies) and when each last
did:

* ICS-7001, one address, two live claimants: a MAC claims an IP whose current claimant claimed it
  within ``conflict_seconds``.  A replaced device goes quiet before its successor speaks; under
  spoofing the victim keeps re-asserting its binding and the attacker keeps re-poisoning, so the
  claim flips back and forth.  One alert per IP and throttle window, the count its flips.  Whatever
  form the forged claim takes (reply, request, gratuitous) it is a claim.
* ICS-7002, replies nobody asked for: ARP replies from one MAC for one IP that answer no request
  seen from their target within ``answer_seconds``, ``min_replies`` of them within ``window``
  seconds.  That is what ettercap, arpspoof and bettercap send to keep caches poisoned (they never
  wait to be asked).  Gratuitous replies (sender IP = target IP) are left out, since hosts send a
  few when a link comes up, and so are answers to RFC 5227 probes (target IP 0.0.0.0).
* ICS-7003, an ARP sweep: one MAC asks for ``min_targets`` addresses within ``window`` seconds that
  were still unclaimed ``answer_seconds`` after it asked.  Answered addresses do not count, so a
  master resolving its many outstations is not a sweep; host discovery across a subnet mostly asks
  for empty addresses.  Requests from 0.0.0.0 (probes) count too.
* ICS-7004, a connection relayed: the flow layer reports a flow whose packets one way come from a
  second source MAC partway through (``flow.source_mac_changed``).  Between two addresses of one
  subnet (/24, /64) no router should forward, so it is a station in the middle, unless ARP shows
  the second MAC owning addresses of its own (on any VLAN) and none of the two ends': then it is
  a router (an untagged SPAN of several VLANs sees routed packets on both legs, smaller subnets
  than /24 route inside one).  ARP speaks only for IPv4, so IPv6 pairs get no such exemption.
  The alert adds what ARP said of the two addresses.

With a baseline in force, what it saw is not reported: an address claimed by two MACs that both
came with it while learning (a redundant pair, a host with two interfaces on the segment), or a
connection relayed by a MAC one of its ends had then.  A spoofer present while the baseline was
learned is trusted the same way, as for every learned rule.

ARP probes (sender 0.0.0.0) claim nothing; only requests (1) and replies (2) claim.  A station's
own address, the alert source, is the sender address of its first ARP request.  State is a few
entries per IP and per MAC.  The claim table forgets addresses nobody claimed within
``conflict_seconds`` when it fills, and refuses new ones while it is full of live claims (a flood
of invented addresses cannot push out the real hosts' claims); whether an address was answered is
kept apart, newest first, so a full claim table does not make answered requests look like a
sweep.  The other tables are capped (``MAX_KEYS``; sweeps: ``MAX_SWEEPERS`` MACs with
``MAX_PENDING`` requests waiting and ``MAX_UNANSWERED`` unanswered addresses each) and forget
their oldest entries.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ics_monitor.core.addresses import ip_sort_key
from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter
from ics_monitor.inventory.assets import is_host_ip, subnet_of
from ics_monitor.inventory.oui import is_unicast_mac, vendor_of

MAX_KEYS = 50_000
# MACs remembered per contested IP, addresses per claimant, and addresses listed in an alert.
MAX_CLAIMANTS: Final = 8
MAX_LISTED: Final = 32
# Requests per MAC waiting for their answer, unanswered addresses kept per MAC (at least twice the
# threshold), and MACs whose requests are tracked.
MAX_PENDING: Final = 256
MAX_UNANSWERED: Final = 64
MAX_SWEEPERS: Final = 10_000
# Capture seconds between two purges of the full claim table.
PURGE_SECONDS: Final = 10.0
REQUEST, REPLY = 1, 2
RELAYED: Final = "flow.source_mac_changed"
# An ARP message repeated within this many seconds is a mirror copy (the flow table's default
# ``mirror_copy_window`` for IP packets), at most MAX_ARP_COPIES in a row.
MIRROR_COPY_SECONDS: Final = 0.005
MAX_ARP_COPIES: Final = 3
_END: Final = float("inf")
_RELAY_MAC: Final = re.compile(r"source MAC ([0-9a-f:]{17}) ")


class _Claims:
    """Who claimed one IP: the current claimant and the last claim time of each recent MAC."""

    __slots__ = ("announced", "current", "last")

    def __init__(self, mac: str, ts: float) -> None:
        self.current = mac
        self.last: dict[str, float] = {mac: ts}
        # The MAC that last took the address over by a gratuitous announcement (``_claim``).
        self.announced: str | None = None


def _vendor(mac: str | None) -> str:
    # Without the inventory's parentheses ("(locally administered)"): the explanations put the
    # vendor in parentheses of their own.
    return (vendor_of(mac) or "unknown vendor").strip("()")


def _claimed(event: Any) -> dict[str, Any]:
    """Evidence every ARP claim alert starts with: the address, its VLAN, the claimant and vendor."""
    return {
        "ip": event.sender_ip,
        "vlan": list(event.vlan),
        "mac": event.sender_mac,
        "vendor": _vendor(event.sender_mac),
    }


class ArpWatch(BaseDetector):
    """ICS-7001 conflicting claims, ICS-7002 unsolicited replies, ICS-7003 sweeps, ICS-7004 relays."""

    name = "arp_watch"
    rule_ids = ("ICS-7001", "ICS-7002", "ICS-7003", "ICS-7004")
    event_types = frozenset({"arp", "anomaly"})
    wants_time = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        param = context.rules.param
        self.conflict_seconds = float(param("ICS-7001", "conflict_seconds"))
        self.reply_window = float(param("ICS-7002", "window"))
        self.min_replies = int(param("ICS-7002", "min_replies"))
        self.answer_seconds = float(param("ICS-7002", "answer_seconds"))
        self.sweep_window = float(param("ICS-7003", "window"))
        self.min_targets = int(param("ICS-7003", "min_targets"))
        self.sweep_answer = float(param("ICS-7003", "answer_seconds"))
        self.claims: dict[tuple[Any, str], _Claims] = {}  # (vlan, ip) -> claims
        self.next_purge = float("-inf")
        self.vlan_of: BoundedDict = BoundedDict(MAX_KEYS)  # ip -> vlan of its last claim
        self.claimed_by: BoundedDict = BoundedDict(MAX_KEYS)  # mac -> addresses it claimed (any VLAN)
        # (vlan, ip) -> time of its last claim, whether or not the claim table had room for it:
        # what the sweep check asks ("was it answered?"); forgets the oldest.
        self.answered: BoundedDict = BoundedDict(MAX_KEYS)
        self.unanswered_cap = max(MAX_UNANSWERED, 2 * self.min_targets)
        self.asked: BoundedDict = BoundedDict(MAX_KEYS)  # (vlan, asker ip, asked ip) -> ts
        # (vlan, mac, ip) -> [window start, replies, targets, fired]
        self.unsolicited: BoundedDict = BoundedDict(MAX_KEYS)
        self.sweeps: BoundedDict = BoundedDict(MAX_SWEEPERS)  # (vlan, mac) -> _Sweep
        self.waiting: dict[tuple[Any, str], _Sweep] = {}  # the sweeps with requests to judge
        self.own_ip: BoundedDict = BoundedDict(MAX_KEYS)  # (vlan, mac) -> sender IP of its first request
        # With a baseline: the MACs each address was seen with while learning (a site's own normal).
        self.learned_macs: dict[str, list[str]] = context.baseline.asset_macs if context.baseline else {}
        # The last ARP message and how many copies of it followed (``_mirror_copy``).
        self.last_arp: tuple[Any, ...] | None = None
        self.last_arp_ts = float("-inf")
        self.arp_copies = 0

    def on_event(self, event: Any, out: Emitter) -> None:
        """Check one ARP request or reply, then record what it claims; or a relayed flow."""
        if event.event_type == "anomaly":
            if event.code == RELAYED:
                self._relayed(event, out)
            return
        mac, ip, operation = event.sender_mac, event.sender_ip, event.operation
        if not is_unicast_mac(mac) or operation not in (REQUEST, REPLY):
            return
        if self._mirror_copy(event):
            return
        vlan = event.vlan
        claims = is_host_ip(ip)
        if operation == REQUEST:
            if event.target_ip != ip:
                if claims:
                    self.asked[(vlan, ip, event.target_ip)] = event.ts
                    if (vlan, mac) not in self.own_ip:
                        owner = self.claims.get((vlan, ip))
                        if owner is None or owner.current == mac:  # not a forged request
                            self.own_ip[(vlan, mac)] = ip
                self._sweep(event, out)
        elif claims:
            self._reply(event, out)
        if claims:
            self._claim(event, out)

    def _mirror_copy(self, event: Any) -> bool:
        """Whether ``event`` repeats the last ARP message within ``MIRROR_COPY_SECONDS``.

        A SPAN that mirrors both ports of a path, or a VM host capturing a guest's vNIC and its
        bridge, delivers every frame twice microseconds apart (the flow table drops such copies of
        IP packets the same way): a copied reply is no second unsolicited reply.  At most
        ``MAX_ARP_COPIES`` in a row are dropped, so a tool flooding one forged reply still counts.
        """
        key = (
            event.operation,
            event.sender_mac,
            event.sender_ip,
            event.target_mac,
            event.target_ip,
            event.vlan,
        )
        if (
            key == self.last_arp
            and event.ts - self.last_arp_ts <= MIRROR_COPY_SECONDS
            and self.arp_copies < MAX_ARP_COPIES
        ):
            self.arp_copies += 1
            return True
        self.last_arp = key
        self.last_arp_ts = event.ts
        self.arp_copies = 0
        return False

    # -- ICS-7001 ------------------------------------------------------------------------------------

    def _claim(self, event: Any, out: Emitter) -> None:
        ip, mac, ts, vlan = event.sender_ip, event.sender_mac, event.ts, event.vlan
        key = (vlan, ip)
        self.answered[key] = ts
        entry = self.claims.get(key)
        if entry is None:
            if self._full(ts):
                return
            self.claims[key] = _Claims(mac, ts)
            self.vlan_of[ip] = vlan
            self._claimed_by(mac, ip)
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
        self._claimed_by(mac, ip)
        if ts - previous_ts > self.conflict_seconds:
            return  # the previous owner had gone quiet: a replaced device or a re-assigned address
        if event.target_ip == ip:
            # A gratuitous announcement: how a redundant router (VRRP or HSRP with real MACs) or a
            # replaced device takes an address over.  Not a conflict by itself: the displaced MAC
            # claiming the address again, as a spoofed owner does when asked, is, and then the
            # announcer is the suspect.
            entry.announced = mac
            return
        if self._learned(ip, mac, previous):
            return  # both claimed it while the baseline was learned: a redundant pair, one host's two NICs
        recent = sorted(m for m, seen in last.items() if ts - seen <= self.conflict_seconds)
        # Which claimant the baseline does not know for the address: the suspect.  Without a
        # baseline (or knowing neither), the newer claim.  A poisoning seen before its victim's
        # own answer (monitoring started mid-attack) makes the genuine owner the newer claim.
        known = self.learned_macs.get(ip) or ()
        endpoints = self._claimant(event)
        suspect = mac
        learned = ""
        if (known and mac in known and previous not in known) or (not known and entry.announced == previous):
            # The claimant the baseline never learned; without one, the MAC that announced itself
            # over the one now claiming its address back.
            suspect = previous
            own = self.own_ip.get((vlan, previous))
            endpoints = {"src_ip": own if own != ip else None, "src_mac": previous}
        if known:
            learned = f"; the baseline learned {ip} at {', '.join(sorted(known))}: {suspect} is the impostor"
        elif suspect == previous:
            learned = f"; {previous} had announced itself for {ip} over {mac}, which claims it back"
        out.fire(
            "ICS-7001",
            ip if not vlan else f"{ip}@{'.'.join(map(str, vlan))}",
            ts=ts,
            frames=(event.frame,),
            endpoints=endpoints,
            protocol="arp",
            fields={"learned": learned},
            evidence={
                **_claimed(event),
                "suspect_mac": suspect,
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

    def _learned(self, ip: str, *macs: str) -> bool:
        """Whether the baseline saw ``ip`` with every one of ``macs``."""
        known = self.learned_macs.get(ip) or ()
        return bool(known) and all(mac in known for mac in macs)

    def _full(self, ts: float) -> bool:
        """Whether the claim table has no room for another address (purging stale ones first)."""
        claims = self.claims
        if len(claims) < MAX_KEYS:
            return False
        if ts >= self.next_purge:
            self.next_purge = ts + PURGE_SECONDS
            horizon = ts - self.conflict_seconds
            for key in [k for k, entry in claims.items() if max(entry.last.values()) < horizon]:
                del claims[key]
        return len(claims) >= MAX_KEYS

    def _claimed_by(self, mac: str, ip: str) -> None:
        addresses = self.claimed_by.get(mac)
        if addresses is None:
            self.claimed_by[mac] = {ip}
        elif len(addresses) < MAX_CLAIMANTS:
            addresses.add(ip)

    def _claimant(self, event: Any) -> dict[str, Any]:
        """An ARP alert's endpoints: the claimant and the host it told.

        The claimant's address is its own (from its own requests), and only when that is not the
        address it claims.
        """
        own = self.own_ip.get((event.vlan, event.sender_mac))
        return {
            "src_ip": own if own != event.sender_ip else None,
            "dst_ip": event.target_ip if is_host_ip(event.target_ip) else None,
            "src_mac": event.sender_mac,
            "dst_mac": event.target_mac if is_unicast_mac(event.target_mac) else None,
        }

    # -- ICS-7002 ------------------------------------------------------------------------------------

    def _reply(self, event: Any, out: Emitter) -> None:
        ip, target_ip, ts, vlan = event.sender_ip, event.target_ip, event.ts, event.vlan
        if target_ip == ip or not is_host_ip(target_ip):
            return  # a gratuitous announcement, or the answer to an address probe (from 0.0.0.0)
        asked = self.asked.get((vlan, target_ip, ip))
        if asked is not None and 0 <= ts - asked <= self.answer_seconds:
            return
        mac = event.sender_mac
        key = (vlan, mac, ip)
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
        out.fire(
            "ICS-7002",
            f"{mac}>{ip}",
            ts=ts,
            frames=(event.frame,),
            endpoints=self._claimant(event),
            protocol="arp",
            evidence={
                **_claimed(event),
                "replies": state[1],
                "targets": sorted(state[2], key=ip_sort_key),
                "window_start": state[0],
                "window": self.reply_window,
            },
        )

    # -- ICS-7003 ------------------------------------------------------------------------------------

    def _sweep(self, event: Any, out: Emitter) -> None:
        target, ts, vlan, mac = event.target_ip, event.ts, event.vlan, event.sender_mac
        if not is_host_ip(target):
            return
        key = (vlan, mac)
        state: _Sweep | None = self.sweeps.get(key)
        if state is None:
            state = self.sweeps[key] = _Sweep()
        state.sender_ip = event.sender_ip
        state.frame = event.frame
        pending = state.pending
        if (vlan, target) not in self.answered and target not in pending and len(pending) < MAX_PENDING:
            pending[target] = ts
            if key in self.waiting or len(self.waiting) < MAX_SWEEPERS:
                self.waiting[key] = state
        self._judge(key, state, ts, out)

    def advance(self, ts: float, out: Emitter) -> None:
        """Requests whose answer time is up are judged even when their sender fell silent."""
        for key, state in list(self.waiting.items()):
            self._judge(key, state, ts, out)

    def finish(self, out: Emitter) -> None:
        """At the end of input every request still waiting has had its chance to be answered."""
        for key, state in list(self.waiting.items()):
            self._judge(key, state, _END, out)

    def _judge(self, key: tuple[Any, str], state: _Sweep, ts: float, out: Emitter) -> None:
        """Move requests older than the answer time to the unanswered ones; fire at the threshold."""
        vlan = key[0]
        answered = self.answered
        pending = state.pending
        unanswered = state.unanswered
        horizon = ts - self.sweep_answer
        while pending:
            asked_for, asked_at = next(iter(pending.items()))
            if asked_at > horizon:
                break
            del pending[asked_for]
            if (vlan, asked_for) not in answered and (
                asked_for in unanswered or len(unanswered) < self.unanswered_cap
            ):
                unanswered.pop(asked_for, None)  # re-asked: it moves to the end, in time order
                unanswered[asked_for] = asked_at
        if not pending:
            self.waiting.pop(key, None)
        if not unanswered:
            return
        last = next(reversed(unanswered.values()))
        # The window ends now (a tick) or at the last request (a request; the end of input).
        window_start = (ts if ts != _END and ts > last else last) - self.sweep_window
        while unanswered and next(iter(unanswered.values())) < window_start:
            del unanswered[next(iter(unanswered))]
        if state.fired is not None and last - state.fired > self.sweep_window:
            state.fired = None
        if state.fired is not None or len(unanswered) < self.min_targets:
            return
        state.fired = last
        mac = key[1]
        out.fire(
            "ICS-7003",
            mac,
            ts=last,
            frames=(state.frame,),
            endpoints={
                "src_ip": state.sender_ip if is_host_ip(state.sender_ip) else None,
                "dst_ip": None,
                "src_mac": mac,
                "dst_mac": None,
            },
            protocol="arp",
            evidence={
                "mac": mac,
                "vlan": list(vlan),
                "vendor": _vendor(mac),
                "distinct_targets": len(unanswered),
                "targets": sorted(unanswered, key=ip_sort_key)[:MAX_LISTED],
                "window_start": next(iter(unanswered.values())),
                "window": self.sweep_window,
            },
        )

    # -- ICS-7004 ------------------------------------------------------------------------------------

    def _relayed(self, event: Any, out: Emitter) -> None:
        src, dst = event.src_ip, event.dst_ip
        if not (is_host_ip(src) and is_host_ip(dst)) or subnet_of(src) != subnet_of(dst):
            return  # routed traffic: a router's MAC may change (failover) or be seen on two legs
        found = _RELAY_MAC.search(event.detail or "")
        relay = found.group(1) if found else None
        claims: dict[str, list[str]] = {}
        for ip in (src, dst):
            vlan = self.vlan_of.get(ip)
            entry = self.claims.get((vlan, ip)) if vlan is not None else None
            if entry is not None:
                claims[ip] = sorted(entry.last)
        posed = relay is not None and any(relay in macs for macs in claims.values())
        if not posed and ":" not in src and relay is not None and self.claimed_by.get(relay):
            # IPv4 (what ARP speaks for): the relay owns addresses of its own, on any VLAN, and
            # claimed neither end: a router.
            return
        if relay is not None and (self._learned(src, relay) or self._learned(dst, relay)):
            return  # an end's own MAC while the baseline was learned: a redundant pair's takeover
        contested = {ip: macs for ip, macs in claims.items() if len(macs) > 1}
        note = "".join(f" ARP: {ip} claimed by {', '.join(macs)}." for ip, macs in sorted(contested.items()))
        first, second = sorted((src, dst), key=ip_sort_key)
        out.fire(
            "ICS-7004",
            f"{first}<>{second}",
            ts=event.ts,
            frames=(event.frame,),
            source=event,
            protocol=event.transport,
            evidence={
                "detail": event.detail,
                "relay_mac": relay,
                "relay_vendor": _vendor(relay),
                "relay_claimed_an_end": posed,
                "arp_claims": claims,
                "contested": sorted(contested, key=ip_sort_key),
            },
            fields={
                "claims": note,
                "via": event.transport if event.dst_port is None else f"{event.transport}/{event.dst_port}",
            },
        )


class _Sweep:
    """One MAC's requests: those not yet old enough to judge, and the unanswered ones (by address)."""

    __slots__ = ("fired", "frame", "pending", "sender_ip", "unanswered")

    def __init__(self) -> None:
        self.pending: dict[str, float] = {}  # address -> time first asked, in that order
        self.unanswered: dict[str, float] = {}
        self.fired: float | None = None  # time of the last unanswered request when it fired
        self.sender_ip = ""
        self.frame = 0
