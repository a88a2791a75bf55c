"""The decoded-packet record handed from ``decode`` to ``flows``.

One mutable, slotted object per frame: the decoder fills it header by header, the flow table reads it.
Addresses stay packed bytes here (formatting them costs more than the rest of the decode); the flow
table formats them once per flow.  Nothing in this module does I/O.
"""

from __future__ import annotations

from typing import Final

# IANA protocol numbers used across layers.
IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_ICMPV6: Final = 58

# IANA protocol keywords in lower case (as ECS ``network.transport`` wants them) for the IP protocols
# a flow table meets besides these four: routing, multicast, redundancy, VPN and tunnels (a GRE
# flow is one the decoder did not open: PPTP, broken headers).  Others stay numbers.
TRANSPORT_NAMES: Final = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMP: "icmp",
    IPPROTO_ICMPV6: "ipv6-icmp",
    2: "igmp",
    4: "ipv4",
    41: "ipv6",
    47: "gre",
    50: "esp",
    51: "ah",
    89: "ospf",
    103: "pim",
    112: "vrrp",
    132: "sctp",
}

# TCP flag bits (RFC 9293 plus ECN bits of RFC 3168).
TCP_FIN: Final = 0x01
TCP_SYN: Final = 0x02
TCP_RST: Final = 0x04
TCP_PSH: Final = 0x08
TCP_ACK: Final = 0x10
TCP_URG: Final = 0x20
TCP_ECE: Final = 0x40
TCP_CWR: Final = 0x80

TCP_FLAG_NAMES: Final[tuple[tuple[int, str], ...]] = (
    (TCP_FIN, "FIN"),
    (TCP_SYN, "SYN"),
    (TCP_RST, "RST"),
    (TCP_PSH, "PSH"),
    (TCP_ACK, "ACK"),
    (TCP_URG, "URG"),
    (TCP_ECE, "ECE"),
    (TCP_CWR, "CWR"),
)


def tcp_flag_names(flags: int) -> list[str]:
    """Return the names of the TCP flag bits set in ``flags``, in bit order."""
    return [name for bit, name in TCP_FLAG_NAMES if flags & bit]


class ArpInfo:
    """An ARP message: who claims which IPv4 address (for the inventory's MAC-IP map)."""

    __slots__ = ("operation", "sender_ip", "sender_mac", "target_ip", "target_mac")

    def __init__(
        self, operation: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes
    ) -> None:
        self.operation = operation
        self.sender_mac = sender_mac
        self.sender_ip = sender_ip
        self.target_mac = target_mac
        self.target_ip = target_ip


class Packet:
    """One decoded frame.  ``ip_version`` 0 means the frame carried no IP packet we could decode."""

    __slots__ = (
        "ack",
        "arp",
        "cap_len",
        "cut",
        "dport",
        "dst_ip",
        "dst_mac",
        "fragments",
        "frame",
        "icmp_code",
        "icmp_type",
        "ip_id",
        "ip_proto",
        "ip_version",
        "link_type",
        "payload",
        "seq",
        "sport",
        "src_ip",
        "src_mac",
        "tcp_flags",
        "truncated",
        "ts",
        "ttl",
        "tunnel",
        "vlan",
        "window",
        "wire_len",
    )

    def __init__(self, frame: int, ts: float, link_type: int, wire_len: int, cap_len: int) -> None:
        self.frame = frame
        self.ts = ts
        self.link_type = link_type
        self.wire_len = wire_len
        self.cap_len = cap_len
        self.src_mac: bytes | None = None
        self.dst_mac: bytes | None = None
        self.vlan: tuple[int, ...] = ()
        self.arp: ArpInfo | None = None
        self.ip_version = 0
        self.src_ip = b""
        self.dst_ip = b""
        self.ip_proto = 0
        # IPv4 identification (0 for IPv6).
        self.ip_id = 0
        self.ttl = 0
        self.sport = 0
        self.dport = 0
        self.tcp_flags = 0
        self.seq = 0
        self.ack = 0
        self.window = 0
        self.icmp_type = -1
        self.icmp_code = -1
        self.payload: bytes = b""
        # True when the capture's snap length cut the packet: payload is incomplete, not malformed.
        self.truncated = False
        # Bytes of the IP datagram past the end of the frame when ``truncated``: the part of the
        # transport payload the capture did not keep (0 for a whole packet).
        self.cut = 0
        # Number of link frames this packet was reassembled from (IP fragments), 1 otherwise.
        self.fragments = 1
        # The encapsulations the decoder opened to reach this packet, outermost first (see
        # ``decode.headers.tunnel``): (kind, id or -1, outer IP version, outer source, outer
        # destination) each.  Every other field describes the innermost packet.
        self.tunnel: tuple[tuple[str, int, int, bytes, bytes], ...] = ()

    def inner(self, kind: str, ident: int) -> Packet:
        """A packet for what the tunnel just opened holds, recording the encapsulation.

        It keeps the frame's number, time, lengths, truncation and fragment count (the wire's
        facts); everything else starts empty, for the inner headers to fill: an inner Ethernet
        frame brings its MACs and VLAN tags, an inner IP packet has none.
        """
        packet = Packet(self.frame, self.ts, self.link_type, self.wire_len, self.cap_len)
        packet.truncated = self.truncated
        packet.fragments = self.fragments
        packet.tunnel = (*self.tunnel, (kind, ident, self.ip_version, self.src_ip, self.dst_ip))
        return packet
