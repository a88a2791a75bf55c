"""Link, network and transport header decoding: one small function per header.

Each function reads one header at ``off`` in ``data``, fills the ``Packet`` and returns the offset of
what follows (or -1 when the packet ends here).  Malformed or truncated headers are reported through
the ``report(code, detail)`` callback and never raise.  Structs are precompiled; nothing here allocates
beyond the slices the packet keeps.  This module must not keep state across packets: IP fragment
reassembly lives in ``fragments.py``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

from ics_monitor.core.packet import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    ArpInfo,
    Packet,
)

Report = Callable[[str, str], None]

ETH_IPV4: Final = 0x0800
ETH_ARP: Final = 0x0806
ETH_VLAN: Final = 0x8100
ETH_QINQ: Final = 0x88A8
ETH_QINQ_OLD: Final = 0x9100
ETH_IPV6: Final = 0x86DD
ETH_MPLS: Final = 0x8847
ETH_MPLS_MC: Final = 0x8848
# IEC 62439-3 HSR (High-availability Seamless Redundancy) tag, on substation and plant rings: after
# the MACs (and a VLAN tag), path and size (2 bytes), sequence number (2), then the frame's EtherType.
ETH_HSR: Final = 0x892F

VLAN_TPIDS: Final = frozenset((ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD))
# Real networks stack at most two or three tags; more is a parser-evasion attempt or garbage.
MAX_VLAN_TAGS: Final = 4
MAX_MPLS_LABELS: Final = 8
# Longest chain of IPv6 extension headers we follow (RFC 8200 expects a handful).
MAX_IPV6_EXT_HEADERS: Final = 8

_ETH: Final = struct.Struct("!6s6sH")
_TAG: Final = struct.Struct("!HH")
_U16: Final = struct.Struct("!H")
_U32: Final = struct.Struct("!I")
_IPV4: Final = struct.Struct("!BBHHHBBH4s4s")
_IPV6: Final = struct.Struct("!IHBB16s16s")
_TCP: Final = struct.Struct("!HHIIBBH")
_UDP: Final = struct.Struct("!HHH")
_ARP: Final = struct.Struct("!HHBBH")
_SLL: Final = struct.Struct("!HHH8sH")
_SLL2: Final = struct.Struct("!HHIHBB8s")

IPV6_HOP_BY_HOP: Final = 0
IPV6_ROUTING: Final = 43
IPV6_FRAGMENT: Final = 44
IPV6_ESP: Final = 50
IPV6_AH: Final = 51
IPV6_NO_NEXT: Final = 59
IPV6_DEST_OPTS: Final = 60
IPV6_MOBILITY: Final = 135
IPV6_HIP: Final = 139
IPV6_SHIM6: Final = 140
_IPV6_GENERIC_EXT: Final = frozenset(
    (IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTS, IPV6_MOBILITY, IPV6_HIP, IPV6_SHIM6)
)

# Encapsulations the decoder opens (``tunnel``).  IP protocols: IPv4 in IP (4), IPv6 in IP (41),
# GRE (47).  GRE carries IP, Ethernet (transparent bridging, 0x6558), MPLS, or mirrored frames:
# ERSPAN type I/II (0x88BE) and III (0x22EB), what switches send for a remote SPAN session.  UDP
# (by destination port): VXLAN (4789, and 8472, the Linux kernel's default) and Geneve (6081), what
# virtual switches and cloud traffic mirroring (AWS, Azure vTAP) send.
IPPROTO_IPIP: Final = 4
IPPROTO_IPV6_IN_IP: Final = 41
IPPROTO_GRE: Final = 47
TUNNEL_PROTOCOLS: Final = frozenset((IPPROTO_IPIP, IPPROTO_IPV6_IN_IP, IPPROTO_GRE))
VXLAN_PORTS: Final = frozenset((4789, 8472))
GENEVE_PORT: Final = 6081
TUNNEL_PORTS: Final = frozenset((*VXLAN_PORTS, GENEVE_PORT))
GRE_TRANSPARENT_ETHERNET: Final = 0x6558
GRE_ERSPAN_I_II: Final = 0x88BE
GRE_ERSPAN_III: Final = 0x22EB
# Nested encapsulations followed (VXLAN in GRE in IP-in-IP is already unusual).
MAX_TUNNEL_DEPTH: Final = 4
# What a tunnel holds: an Ethernet frame, or an IP packet (its version nibble says which).
INNER_ETHERNET: Final = 1
INNER_IP: Final = 2
# EtherTypes a decapsulated Ethernet frame may start with: a UDP 4789 datagram whose "inner frame"
# shows none of these is some other protocol on that port, left as it is.
_INNER_ETHER_TYPES: Final = frozenset(
    (ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN, ETH_QINQ, ETH_QINQ_OLD, ETH_MPLS, ETH_MPLS_MC)
)
_GRE: Final = struct.Struct("!HH")
_GRE_CHECKSUM: Final = 0x8000
_GRE_ROUTING: Final = 0x4000
_GRE_KEY: Final = 0x2000
_GRE_SEQUENCE: Final = 0x1000
_GRE_VERSION: Final = 0x0007
# One opened encapsulation: (kind, id or -1, inner offset in ``pkt.payload``, INNER_*, VLAN id the
# tunnel header gives for an untagged inner frame or 0).
Tunnel = tuple[str, int, int, int, int]

# Fragment description handed to the reassembler: (offset_bytes, more_fragments, ident, payload).
FragmentInfo = tuple[int, bool, int, bytes]


def ethernet(pkt: Packet, data: bytes, off: int, report: Report) -> tuple[int, int]:
    """Ethernet II (and 802.3 length frames, which carry no IP): return (next offset, EtherType)."""
    if len(data) - off < 14:
        report("link.truncated", f"Ethernet frame of {len(data) - off} bytes")
        return -1, 0
    dst, src, ether_type = _ETH.unpack_from(data, off)
    pkt.dst_mac = dst
    pkt.src_mac = src
    if ether_type == ETH_IPV4:
        return off + 14, ETH_IPV4  # the common case, without a call for tags and labels
    return ether_type_chain(pkt, data, off + 14, ether_type, report)


def ether_type_chain(pkt: Packet, data: bytes, off: int, ether_type: int, report: Report) -> tuple[int, int]:
    """Walk VLAN tags, an HSR tag and MPLS labels after an EtherType; return (offset, final EtherType)."""
    if ether_type in VLAN_TPIDS:
        tags: list[int] = []
        while ether_type in VLAN_TPIDS:
            if len(data) - off < 4:
                report("vlan.truncated", f"VLAN tag with {len(data) - off} bytes left")
                pkt.vlan = tuple(tags)
                return -1, 0
            if len(tags) == MAX_VLAN_TAGS:
                report("vlan.too_many_tags", f"more than {MAX_VLAN_TAGS} VLAN tags")
                pkt.vlan = tuple(tags)
                return -1, 0
            tci, ether_type = _TAG.unpack_from(data, off)
            tags.append(tci & 0x0FFF)
            off += 4
        pkt.vlan = tuple(tags)
    if ether_type == ETH_HSR:
        if len(data) - off < 6:
            report("hsr.truncated", f"HSR tag with {len(data) - off} bytes left")
            return -1, 0
        (ether_type,) = _U16.unpack_from(data, off + 4)
        off += 6
    if ether_type in (ETH_MPLS, ETH_MPLS_MC):
        for _ in range(MAX_MPLS_LABELS):
            if len(data) - off < 4:
                report("mpls.truncated", "MPLS label stack cut short")
                return -1, 0
            (entry,) = _U32.unpack_from(data, off)
            off += 4
            if entry & 0x100:  # bottom of stack
                break
        else:
            return -1, 0
        if off >= len(data):
            return -1, 0
        version = data[off] >> 4
        return off, ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
    return off, ether_type


def linux_sll(pkt: Packet, data: bytes, off: int, report: Report) -> tuple[int, int]:
    """Linux cooked capture v1 (16 bytes): return (next offset, protocol as EtherType)."""
    if len(data) - off < 16:
        report("link.truncated", f"LINUX_SLL header with {len(data) - off} bytes")
        return -1, 0
    _ptype, _hatype, halen, addr, protocol = _SLL.unpack_from(data, off)
    if halen == 6:
        pkt.src_mac = addr[:6]
    return ether_type_chain(pkt, data, off + 16, protocol, report)


def linux_sll2(pkt: Packet, data: bytes, off: int, report: Report) -> tuple[int, int]:
    """Linux cooked capture v2 (20 bytes): return (next offset, protocol as EtherType)."""
    if len(data) - off < 20:
        report("link.truncated", f"LINUX_SLL2 header with {len(data) - off} bytes")
        return -1, 0
    protocol, _reserved, _ifindex, _hatype, _ptype, halen, addr = _SLL2.unpack_from(data, off)
    if halen == 6:
        pkt.src_mac = addr[:6]
    return ether_type_chain(pkt, data, off + 20, protocol, report)


# BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 differs by OS.
_NULL_FAMILIES: Final = {2: ETH_IPV4, 24: ETH_IPV6, 28: ETH_IPV6, 30: ETH_IPV6, 10: ETH_IPV6}


def null_loop(pkt: Packet, data: bytes, off: int, report: Report, network_order: bool) -> tuple[int, int]:
    """DLT_NULL (host byte order family) and DLT_LOOP (network order): 4-byte address family."""
    if len(data) - off < 4:
        report("link.truncated", f"loopback header with {len(data) - off} bytes")
        return -1, 0
    raw = data[off : off + 4]
    if network_order:
        family = int.from_bytes(raw, "big")
    else:
        # The writer's byte order is unknown: a family fits in the low bytes either way.
        family = int.from_bytes(raw, "little")
        if family > 0xFFFF:
            family = int.from_bytes(raw, "big")
    ether_type = _NULL_FAMILIES.get(family, 0)
    if not ether_type:
        report("link.unknown_family", f"address family {family}")
        return -1, 0
    return off + 4, ether_type


def raw_ip(data: bytes, off: int) -> tuple[int, int]:
    """Raw IP link types: the version nibble says which IP."""
    if off >= len(data):
        return -1, 0
    version = data[off] >> 4
    if version == 4:
        return off, ETH_IPV4
    if version == 6:
        return off, ETH_IPV6
    return -1, 0


def arp(pkt: Packet, data: bytes, off: int, report: Report) -> None:
    """ARP for IPv4 over Ethernet (RFC 826)."""
    if len(data) - off < 8:
        report("arp.truncated", f"ARP with {len(data) - off} bytes")
        return
    hw_type, proto_type, hw_len, proto_len, operation = _ARP.unpack_from(data, off)
    # Hardware type 1 (Ethernet) or 6 (IEEE 802): Linux takes either on an Ethernet link, so a
    # forged binding may come in both.
    if proto_type != ETH_IPV4 or hw_type not in (1, 6):
        return  # ARP for other networks: nothing for the IPv4 inventory
    if hw_len != 6 or proto_len != 4:
        report("arp.bad_address_length", f"hardware length {hw_len}, protocol length {proto_len}")
        return
    if len(data) - off < 28:
        report("arp.truncated", f"ARP with {len(data) - off} bytes")
        return
    body = off + 8
    pkt.arp = ArpInfo(
        operation,
        data[body : body + 6],
        data[body + 6 : body + 10],
        data[body + 10 : body + 16],
        data[body + 16 : body + 20],
    )


def ipv4(pkt: Packet, data: bytes, off: int, report: Report) -> tuple[int, int, FragmentInfo | None]:
    """IPv4 (RFC 791): return (payload offset, payload end, fragment info or None)."""
    available = len(data) - off
    if available < 20:
        report("ipv4.truncated", f"IPv4 header with {available} bytes")
        return -1, 0, None
    ver_ihl, _tos, total, ident, flags_frag, ttl, proto, _csum, src, dst = _IPV4.unpack_from(data, off)
    if ver_ihl >> 4 != 4:
        report("ipv4.bad_version", f"version {ver_ihl >> 4}")
        return -1, 0, None
    header_len = (ver_ihl & 0x0F) * 4
    if header_len < 20:
        report("ipv4.bad_header_length", f"header length {header_len}")
        return -1, 0, None
    pkt.ip_version = 4
    pkt.src_ip = src
    pkt.dst_ip = dst
    pkt.ip_proto = proto
    pkt.ip_id = ident
    pkt.ttl = ttl
    if available < header_len:
        report("ipv4.truncated", f"header length {header_len}, {available} bytes captured")
        return -1, 0, None
    if total < header_len:
        # TSO captures show total length 0 on the sending host; treat as "up to the frame end".
        if total == 0:
            total = available
        else:
            report("ipv4.bad_total_length", f"total length {total} below header length {header_len}")
            return -1, 0, None
    end = off + total
    if total > available:
        if pkt.cap_len < pkt.wire_len:
            pkt.truncated = True  # the capture's snap length cut it: not the sender's fault
            pkt.cut = total - available
        else:
            report("ipv4.truncated", f"total length {total}, {available} bytes in frame")
        end = len(data)
    frag_offset = (flags_frag & 0x1FFF) * 8
    more = bool(flags_frag & 0x2000)
    if frag_offset or more:
        return off + header_len, end, (frag_offset, more, ident, data[off + header_len : end])
    return off + header_len, end, None


def ipv6(pkt: Packet, data: bytes, off: int, report: Report) -> tuple[int, int, FragmentInfo | None]:
    """IPv6 (RFC 8200) and its extension headers: return (payload offset, end, fragment info or None).

    ``pkt.ip_proto`` ends as the upper-layer protocol (the last Next Header).
    """
    available = len(data) - off
    if available < 40:
        report("ipv6.truncated", f"IPv6 header with {available} bytes")
        return -1, 0, None
    vtf, payload_len, next_header, hop_limit, src, dst = _IPV6.unpack_from(data, off)
    if vtf >> 28 != 6:
        report("ipv6.bad_version", f"version {vtf >> 28}")
        return -1, 0, None
    pkt.ip_version = 6
    pkt.src_ip = src
    pkt.dst_ip = dst
    pkt.ttl = hop_limit
    end = off + 40 + payload_len
    if end > len(data):
        if pkt.cap_len < pkt.wire_len:
            pkt.truncated = True
            pkt.cut = end - len(data)
        else:
            report("ipv6.truncated", f"payload length {payload_len}, {available - 40} bytes in frame")
        end = len(data)
    pos = off + 40
    fragment: FragmentInfo | None = None
    for _ in range(MAX_IPV6_EXT_HEADERS):
        if next_header in _IPV6_GENERIC_EXT or next_header == IPV6_AH:
            if end - pos < 8:
                report("ipv6.ext_header_truncated", f"extension header {next_header} cut short")
                pkt.ip_proto = next_header
                return -1, 0, None
            length = (data[pos + 1] + 2) * 4 if next_header == IPV6_AH else (data[pos + 1] + 1) * 8
            if pos + length > end:
                report(
                    "ipv6.ext_header_truncated", f"extension header {next_header} of {length} bytes overruns"
                )
                pkt.ip_proto = next_header
                return -1, 0, None
            next_header = data[pos]
            pos += length
        elif next_header == IPV6_FRAGMENT:
            if end - pos < 8:
                report("ipv6.ext_header_truncated", "fragment header cut short")
                return -1, 0, None
            offset_flags = _U16.unpack_from(data, pos + 2)[0]
            (ident,) = _U32.unpack_from(data, pos + 4)
            next_header = data[pos]
            pos += 8
            frag_offset = offset_flags & 0xFFF8
            more = bool(offset_flags & 1)
            if frag_offset or more:
                fragment = (frag_offset, more, ident, data[pos:end])
            break
        else:
            break
    else:
        report("ipv6.too_many_ext_headers", f"more than {MAX_IPV6_EXT_HEADERS} extension headers")
        pkt.ip_proto = next_header
        return -1, 0, None
    pkt.ip_proto = next_header
    return pos, end, fragment


def transport(pkt: Packet, data: bytes, off: int, end: int, report: Report) -> bool:
    """TCP, UDP, ICMP and ICMPv6 headers; sets ports/flags and the payload.

    Returns False when the transport header is unusable (reported; the decoder counts instead
    what the snap length cut, ``Decoder.cut_headers``).
    Other IP protocols keep their whole payload and return True.
    """
    proto = pkt.ip_proto
    available = end - off
    if proto == IPPROTO_TCP:
        if available < 20:
            report("tcp.truncated", f"TCP header with {available} bytes")  # counted when cut
            return False
        sport, dport, seq, ack, data_offset, flags, window = _TCP.unpack_from(data, off)
        pkt.sport = sport
        pkt.dport = dport
        pkt.seq = seq
        pkt.ack = ack
        pkt.tcp_flags = flags
        pkt.window = window
        header_len = (data_offset >> 4) * 4
        if header_len < 20:
            report("tcp.bad_header_length", f"data offset {header_len // 4} words")
            return False
        if header_len > available:
            if not pkt.truncated:
                report("tcp.truncated", f"header length {header_len}, {available} bytes")
                return False
            # The snap length cut the options: ports, sequence and flags are there, the payload
            # (all past the cut) is not.
            pkt.cut += available - header_len
            return True
        if header_len < available:
            pkt.payload = data[off + header_len : end]
    elif proto == IPPROTO_UDP:
        if available < 8:
            report("udp.truncated", f"UDP header with {available} bytes")  # counted when cut
            return False
        sport, dport, length = _UDP.unpack_from(data, off)
        pkt.sport = sport
        pkt.dport = dport
        if length < 8:
            if length == 0 and pkt.ip_version == 6:
                length = available  # RFC 2675 jumbogram convention
            else:
                report("udp.bad_length", f"length field {length}")
                return False
        if length > available:
            if not pkt.truncated:
                report("udp.length_mismatch", f"length field {length}, {available} bytes")
            length = available
        pkt.payload = data[off + 8 : off + length]
    elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        if available < 4:
            report("icmp.truncated" if proto == IPPROTO_ICMP else "icmpv6.truncated", f"{available} bytes")
            return False
        pkt.icmp_type = data[off]
        pkt.icmp_code = data[off + 1]
        pkt.payload = data[off + 4 : end]
    else:
        pkt.payload = data[off:end]
    return True


def tunnel(pkt: Packet, report: Report) -> Tunnel | None:
    """The encapsulation ``pkt.payload`` holds, if it is one the decoder opens; else None.

    None leaves the packet as it is (a GRE, IP-in-IP or UDP flow of its own): PPTP's GRE, GRE
    with RFC 1701 source routes, a UDP datagram on a tunnel port that is not that tunnel, and
    headers cut short (reported).
    """
    data = pkt.payload
    proto = pkt.ip_proto
    if proto == IPPROTO_GRE:
        return _gre(data, report)
    if proto in (IPPROTO_IPIP, IPPROTO_IPV6_IN_IP):
        # The inner version must match the protocol number; anything else is not opened.
        if data and data[0] >> 4 == (4 if proto == IPPROTO_IPIP else 6):
            return ("ip-in-ip", -1, 0, INNER_IP, 0)
        return None
    if proto == IPPROTO_UDP:
        if pkt.dport in VXLAN_PORTS:
            return _vxlan(data)
        if pkt.dport == GENEVE_PORT:
            return _geneve(data, report)
    return None


def _gre(data: bytes, report: Report) -> Tunnel | None:
    """GRE (RFC 2784, key and sequence number of RFC 2890) and the ERSPAN headers it may carry."""
    size = len(data)
    if size < 4:
        report("gre.truncated", f"GRE header with {size} bytes")
        return None
    flags, protocol = _GRE.unpack_from(data, 0)
    if flags & (_GRE_VERSION | _GRE_ROUTING):
        return None  # version 1 (PPTP, PPP inside) or RFC 1701 routing: not opened
    off = 4
    if flags & _GRE_CHECKSUM:
        off += 4
    key = -1
    if flags & _GRE_KEY:
        if size < off + 4:
            report("gre.truncated", f"GRE key cut short ({size} bytes)")
            return None
        (key,) = _U32.unpack_from(data, off)
        off += 4
    sequenced = bool(flags & _GRE_SEQUENCE)
    if sequenced:
        off += 4
    if size < off:
        report("gre.truncated", f"GRE header of {off} bytes, {size} present")
        return None
    if protocol == GRE_TRANSPARENT_ETHERNET:
        return ("gre", key, off, INNER_ETHERNET, 0)
    if protocol in (ETH_IPV4, ETH_IPV6):
        return ("gre", key, off, INNER_IP, 0)
    if protocol == GRE_ERSPAN_I_II:
        if not sequenced:
            return ("erspan1", -1, off, INNER_ETHERNET, 0)  # type I: the frame follows GRE
        return _erspan(data, off, 8, report)
    if protocol == GRE_ERSPAN_III:
        return _erspan(data, off, 12, report)
    return None  # MPLS, PPP, NSH ... not opened


def _erspan(data: bytes, off: int, length: int, report: Report) -> Tunnel | None:
    """ERSPAN type II (8-byte header) or III (12 bytes, and 8 more of platform data with the O bit).

    Both start with version (1: type II, 2: type III), the mirrored frame's VLAN, and the session id
    (10 bits).  Type III says in its frame type field (FT) whether an Ethernet frame (0) or an IP
    packet (2) follows.
    """
    size = len(data)
    if size < off + length:
        report("erspan.truncated", f"ERSPAN header of {length} bytes, {size - off} present")
        return None
    (word,) = _U32.unpack_from(data, off)
    version = word >> 28
    vlan = (word >> 16) & 0x0FFF
    session = word & 0x03FF
    inner = INNER_ETHERNET
    if length == 12:
        if version != 2:
            report("erspan.bad_version", f"version {version} in an ERSPAN type III header")
            return None
        (last,) = _U32.unpack_from(data, off + 8)
        frame_type = (last >> 10) & 0x1F
        if frame_type == 2:
            inner = INNER_IP
        elif frame_type != 0:
            return None  # another frame type: not opened
        if last & 1:  # O: an 8-byte platform-specific subheader follows
            length += 8
            if size < off + length:
                report("erspan.truncated", f"ERSPAN III platform subheader cut short ({size - off} bytes)")
                return None
    elif version != 1:
        report("erspan.bad_version", f"version {version} in an ERSPAN type II header")
        return None
    return (f"erspan{version + 1}", session, off + length, inner, vlan)


def _vxlan(data: bytes) -> Tunnel | None:
    """VXLAN (RFC 7348): 8 bytes (flags with I set, 24-bit VNI), then an Ethernet frame.

    Opened only when the flags and the inner EtherType fit: another protocol may use the port.
    """
    if len(data) < 22 or not data[0] & 0x08:
        return None
    ether_type = data[20] << 8 | data[21]
    if ether_type not in _INNER_ETHER_TYPES:
        return None
    return ("vxlan", int.from_bytes(data[4:7], "big"), 8, INNER_ETHERNET, 0)


def _geneve(data: bytes, report: Report) -> Tunnel | None:
    """Geneve (RFC 8926): 8 bytes plus options, then what its protocol type says."""
    size = len(data)
    if size < 8 or data[0] >> 6 != 0 or data[1] & 0x3F:
        return None  # too short to tell, another version, or reserved bits set: not Geneve
    off = 8 + (data[0] & 0x3F) * 4
    if size < off:
        report("geneve.truncated", f"Geneve options of {off - 8} bytes, {size - 8} present")
        return None
    protocol = data[2] << 8 | data[3]
    vni = int.from_bytes(data[4:7], "big")
    if protocol == GRE_TRANSPARENT_ETHERNET:
        return ("geneve", vni, off, INNER_ETHERNET, 0)
    if protocol in (ETH_IPV4, ETH_IPV6):
        return ("geneve", vni, off, INNER_IP, 0)
    return None
