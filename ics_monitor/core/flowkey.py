"""Flow keys, deterministic flow ids and Community ID.

A flow key is the canonical (lower endpoint first) 5-tuple plus the VLAN stack, so both directions of a
conversation share one key and the same addresses on two VLANs stay apart.  ``flow_id`` derives from
the key and the flow's first timestamp only, so the same capture always yields the same ids (golden
tests need no masking) and a reused 5-tuple still gets a new id.  No I/O here.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Final

from ics_monitor.core.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP

FlowKey = tuple[tuple[int, ...], int, bytes, int, bytes, int]

_PORTS: Final = struct.Struct("!HH")
_ID_TAIL: Final = struct.Struct("!BHHq")


def make_key(vlan: tuple[int, ...], proto: int, src: bytes, sport: int, dst: bytes, dport: int) -> FlowKey:
    """Return the canonical key: the endpoint that sorts lower comes first."""
    if src < dst or (src == dst and sport <= dport):
        return (vlan, proto, src, sport, dst, dport)
    return (vlan, proto, dst, dport, src, sport)


def flow_id(key: FlowKey, first_ts: float) -> str:
    """Return a 16-hex-digit id from the key and the first packet's time (microsecond resolution)."""
    vlan, proto, ip_a, port_a, ip_b, port_b = key
    digest = hashlib.blake2b(digest_size=8)
    digest.update(bytes(len(vlan)))
    for tag in vlan:
        digest.update(tag.to_bytes(2, "big"))
    digest.update(ip_a)
    digest.update(ip_b)
    digest.update(_ID_TAIL.pack(proto, port_a, port_b, round(first_ts * 1_000_000)))
    return digest.hexdigest()


# Community ID v1 maps ICMP type to a pseudo destination port so request and reply share an id.
_ICMP4_PAIRS: Final = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 9: 10, 10: 9}
_ICMP6_PAIRS: Final = {
    128: 129,
    129: 128,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    130: 131,
    131: 130,
    144: 145,
    145: 144,
}


def community_id(proto: int, src: bytes, sport: int, dst: bytes, dport: int, seed: int = 0) -> str:
    """Return the Community ID v1 flow hash (the ``network.community_id`` of ECS).

    For ICMP/ICMPv6 pass the type as ``sport`` and the code as ``dport``.
    """
    one_way = False
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        pairs = _ICMP4_PAIRS if proto == IPPROTO_ICMP else _ICMP6_PAIRS
        icmp_type = sport
        if icmp_type in pairs:
            dport = pairs[icmp_type]
        else:
            one_way = True
    ordered = one_way or src < dst or (src == dst and sport < dport)
    if not ordered:
        src, dst, sport, dport = dst, src, dport, sport
    material = seed.to_bytes(2, "big") + src + dst + bytes((proto, 0))
    if proto in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, 132):
        material += _PORTS.pack(sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(material, usedforsecurity=False).digest()).decode()
