"""Foundation captures: the file formats, link types and L2-L4 edge cases of the capture reader,
decoder and flow table, each file small and built to show one thing.

Packets are built with scapy (so lengths and checksums are right); the capture files themselves are
written here with ``struct`` (classic pcap in both byte orders and both resolutions, pcapng with
several interfaces, SPB, legacy OPB, several sections), so every header field is under our control.
Application payload is the test-only ``lenmsg`` protocol (``tests/support/lenmsg.py``): magic
0xABCD, 2-byte big-endian body length, body; TCP and UDP port 7777.

Deterministic: fixed addresses, fixed timestamps (base 2023-11-14 22:13:20 UTC), fixed ISNs and IP
ids, gzip with mtime 0; running it twice writes the same bytes.  What each file shows is in its
MANIFEST line and in the comments (frame numbers) beside the code that makes it.  It writes nothing
but pcaps/foundation/ and its own MANIFEST lines.
Usage: ``.venv/bin/python pcaps/generators/foundation/make_foundation.py`` from the repo root.
"""

from __future__ import annotations

import gzip
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lz4.frame
import zstandard
from scapy.all import (
    DNS,
    DNSQR,
    DNSRR,
    ICMP,
    IP,
    TCP,
    UDP,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrSegmentRouting,
    Raw,
)

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "foundation"
GENERATOR = "generators/foundation/make_foundation.py"
sys.path.insert(0, str(PCAPS / "generators"))

from manifest import update  # noqa: E402

BASE_NS = 1_700_000_000 * 10**9
LENMSG_PORT = 7777

# Link types (tcpdump.org numbers).
EN10MB, RAW, LOOP, LINUX_SLL, LINUX_SLL2, NULL, USER0 = 1, 101, 108, 113, 276, 0, 147

ETH_IPV4, ETH_ARP, ETH_IPV6, ETH_VLAN, ETH_QINQ = 0x0800, 0x0806, 0x86DD, 0x8100, 0x88A8


def lenmsg(body: bytes) -> bytes:
    """One lenmsg PDU."""
    return struct.pack("!HH", 0xABCD, len(body)) + body


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


@dataclass(frozen=True)
class Host:
    ip: str
    mac: bytes


@dataclass
class Frame:
    ts_ns: int
    data: bytes
    wire_len: int = 0  # 0: same as len(data)


@dataclass
class Capture:
    """Frames in capture order, on a clock that only moves forward."""

    now_ns: int = BASE_NS
    frames: list[Frame] = field(default_factory=list)

    def add(self, data: bytes, step_us: int = 137, wire_len: int = 0) -> int:
        """Append a frame ``step_us`` after the previous one; return its 1-based frame number."""
        self.now_ns += step_us * 1000
        self.frames.append(Frame(self.now_ns, data, wire_len))
        return len(self.frames)


# -- link-layer headers -------------------------------------------------------------------------


def ethernet(src: bytes, dst: bytes, ether_type: int, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II header; ``vlans`` are (TPID, VLAN id) outermost first."""
    types = [tpid for tpid, _ in vlans[1:]] + [ether_type]
    # Each tag is its TPID then a TCI (priority 0, VLAN id) followed by the next TPID or EtherType.
    header = dst + src
    if vlans:
        header += struct.pack("!H", vlans[0][0])
        for (_tpid, vlan_id), next_type in zip(vlans, types, strict=True):
            header += struct.pack("!HH", vlan_id & 0x0FFF, next_type)
    else:
        header += struct.pack("!H", ether_type)
    return header


def sll(src: bytes, packet_type: int, protocol: int) -> bytes:
    """Linux cooked v1: packet type, ARPHRD_ETHER, address length 6, address (8), protocol."""
    return struct.pack("!HHH8sH", packet_type, 1, 6, src + b"\0\0", protocol)


def sll2(src: bytes, packet_type: int, protocol: int, ifindex: int = 2) -> bytes:
    """Linux cooked v2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, length 6, address."""
    return struct.pack("!HHIHBB8s", protocol, 0, ifindex, 1, packet_type, 6, src + b"\0\0")


def ether_type_of(l3: bytes) -> int:
    return ETH_IPV6 if l3[0] >> 4 == 6 else ETH_IPV4


Link = Callable[[bytes, Host, Host], bytes]  # (L3 bytes, sender, receiver) -> frame bytes


def eth_link(vlans: tuple[tuple[int, int], ...] = ()) -> Link:
    def wrap(l3: bytes, src: Host, dst: Host) -> bytes:
        return ethernet(src.mac, dst.mac, ether_type_of(l3), vlans) + l3

    return wrap


def sll_link(local: Host) -> Link:
    """Captured on ``local``'s host: its own packets are outgoing (4), others unicast to us (0)."""

    def wrap(l3: bytes, src: Host, dst: Host) -> bytes:
        return sll(src.mac, 4 if src == local else 0, ether_type_of(l3)) + l3

    return wrap


def sll2_link(local: Host) -> Link:
    def wrap(l3: bytes, src: Host, dst: Host) -> bytes:
        return sll2(src.mac, 4 if src == local else 0, ether_type_of(l3)) + l3

    return wrap


def raw_link(l3: bytes, src: Host, dst: Host) -> bytes:
    return l3


def null_link(l3: bytes, src: Host, dst: Host) -> bytes:
    """BSD loopback, host (little-endian) order: AF_INET 2, AF_INET6 30 (macOS)."""
    return struct.pack("<I", 30 if l3[0] >> 4 == 6 else 2) + l3


def loop_link(l3: bytes, src: Host, dst: Host) -> bytes:
    """OpenBSD loopback, network order: AF_INET 2, AF_INET6 24."""
    return struct.pack("!I", 24 if l3[0] >> 4 == 6 else 2) + l3


# -- conversations ------------------------------------------------------------------------------


class IpIds:
    """IPv4 identification per sender, counting up like a real stack."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, host: Host) -> int:
        value = self.next.get(host.ip, 0x1000 + 0x100 * len(self.next))
        self.next[host.ip] = (value + 1) & 0xFFFF
        return value


IP_IDS = IpIds()


def ip_layer(src: Host, dst: Host, ext: tuple = ()) -> object:
    if ":" in src.ip:
        layer = IPv6(src=src.ip, dst=dst.ip, hlim=64)
        for header in ext:
            layer = layer / header
        return layer
    return IP(src=src.ip, dst=dst.ip, id=IP_IDS.take(src), ttl=64, flags="DF")


class Tcp:
    """One TCP connection; ``direction`` 0 is client to server, 1 server to client."""

    def __init__(
        self,
        cap: Capture,
        client: Host,
        server: Host,
        client_port: int,
        server_port: int = LENMSG_PORT,
        *,
        isn: tuple[int, int] = (0x1000_0000, 0x5000_0000),
        link: Link | None = None,
        ext: tuple[tuple, tuple] = ((), ()),
    ) -> None:
        self.cap = cap
        self.hosts = (client, server)
        self.ports = (client_port, server_port)
        self.next_seq = [isn[0], isn[1]]
        self.link = link or eth_link()
        self.ext = ext

    def segment(
        self, direction: int, flags: str, payload: bytes = b"", seq: int | None = None, ack: bool = True
    ) -> bytes:
        src, dst = self.hosts[direction], self.hosts[1 - direction]
        sport, dport = self.ports[direction], self.ports[1 - direction]
        options = [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)] if "S" in flags else []
        tcp = TCP(
            sport=sport,
            dport=dport,
            seq=(self.next_seq[direction] if seq is None else seq) & 0xFFFFFFFF,
            ack=self.next_seq[1 - direction] & 0xFFFFFFFF if ack else 0,
            flags=flags,
            window=64240 if "S" in flags else 502,
            options=options,
        )
        packet = ip_layer(src, dst, self.ext[direction]) / tcp
        if payload:
            packet = packet / Raw(payload)
        return self.link(bytes(packet), src, dst)

    def emit(
        self,
        direction: int,
        flags: str,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        advance: bool = True,
        step_us: int = 137,
        ack: bool = True,
    ) -> int:
        """Send one segment; return its frame number.  ``advance`` False: don't move ``next_seq``."""
        frame = self.cap.add(self.segment(direction, flags, payload, seq, ack), step_us)
        if advance:
            start = self.next_seq[direction] if seq is None else seq
            grow = len(payload) + (1 if "S" in flags or "F" in flags else 0)
            self.next_seq[direction] = (start + grow) & 0xFFFFFFFF
        return frame

    def handshake(self) -> tuple[int, int, int]:
        return (
            self.emit(0, "S", ack=False, step_us=1000),
            self.emit(1, "SA", step_us=211),
            self.emit(0, "A", step_us=97),
        )

    def send(self, direction: int, payload: bytes, step_us: int = 523) -> int:
        return self.emit(direction, "PA", payload, step_us=step_us)

    def ack(self, direction: int, step_us: int = 211) -> int:
        return self.emit(direction, "A", step_us=step_us)

    def close(self) -> tuple[int, int, int]:
        return (
            self.emit(0, "FA", step_us=1500),
            self.emit(1, "FA", step_us=233),
            self.emit(0, "A", step_us=89),
        )

    def exchange(self, request: bytes, response: bytes) -> tuple[int, int]:
        """Request, response (which also acknowledges), then the client's bare ACK."""
        first = self.send(0, request)
        second = self.send(1, response, step_us=2100)
        self.ack(0)
        return first, second


def udp(src: Host, dst: Host, sport: int, dport: int, payload: bytes, ext: tuple = ()) -> bytes:
    return bytes(ip_layer(src, dst, ext) / UDP(sport=sport, dport=dport) / Raw(payload))


# -- capture file writers -----------------------------------------------------------------------


def pcap_bytes(
    frames: list[Frame], link_type: int, *, order: str = "<", nano: bool = False, snaplen: int = 262144
) -> bytes:
    """Classic pcap: file header then one 16-byte record header per frame."""
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type)]
    for frame in frames:
        seconds, fraction = divmod(frame.ts_ns, 10**9)
        if not nano:
            fraction //= 1000
        out.append(
            struct.pack(order + "IIII", seconds, fraction, len(frame.data), frame.wire_len or len(frame.data))
        )
        out.append(frame.data)
    return b"".join(out)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def ng_options(order: str, options: list[tuple[int, bytes]]) -> bytes:
    """An options list, closed by opt_endofopt."""
    if not options:
        return b""
    out = b"".join(struct.pack(order + "HH", code, len(value)) + _pad(value) for code, value in options)
    return out + struct.pack(order + "HH", 0, 0)


def ng_block(order: str, block_type: int, body: bytes) -> bytes:
    body = _pad(body)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def ng_shb(order: str, application: str) -> bytes:
    body = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)  # section length unknown (-1)
    return ng_block(order, 0x0A0D0D0A, body + ng_options(order, [(4, application.encode())]))


@dataclass(frozen=True)
class Interface:
    link_type: int
    name: str
    tsresol: int = 6  # pcapng if_tsresol byte: 6 = microseconds, 9 = ns, 0x94 = 2^-20 s
    snaplen: int = 262144
    tsoffset: int = 0  # if_tsoffset: seconds added to every timestamp of the interface

    def units(self, ts_ns: int) -> int:
        ts_ns -= self.tsoffset * 10**9
        if self.tsresol & 0x80:
            return ts_ns * 2 ** (self.tsresol & 0x7F) // 10**9
        return ts_ns * 10**self.tsresol // 10**9


def ng_idb(order: str, interface: Interface) -> bytes:
    options = [(2, interface.name.encode())]  # if_name
    if interface.tsresol != 6:
        options.append((9, bytes((interface.tsresol,))))
    if interface.tsoffset:
        options.append((14, struct.pack(order + "q", interface.tsoffset)))
    body = struct.pack(order + "HHI", interface.link_type, 0, interface.snaplen)
    return ng_block(order, 1, body + ng_options(order, options))


def ng_epb(order: str, iface: int, interface: Interface, frame: Frame, comment: str = "") -> bytes:
    ticks = interface.units(frame.ts_ns)
    body = struct.pack(
        order + "IIIII",
        iface,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(frame.data),
        frame.wire_len or len(frame.data),
    )
    options = [(1, comment.encode())] if comment else []  # opt_comment
    return ng_block(order, 6, body + _pad(frame.data) + ng_options(order, options))


def ng_spb(order: str, frame: Frame) -> bytes:
    """Simple packet block: original length and data only (interface 0, no timestamp)."""
    return ng_block(order, 3, struct.pack(order + "I", frame.wire_len or len(frame.data)) + frame.data)


def ng_opb(order: str, iface: int, interface: Interface, frame: Frame, drops: int) -> bytes:
    """Obsolete packet block (type 2): 16-bit interface id and drops count."""
    ticks = interface.units(frame.ts_ns)
    body = struct.pack(
        order + "HHIIII",
        iface,
        drops,
        ticks >> 32,
        ticks & 0xFFFFFFFF,
        len(frame.data),
        frame.wire_len or len(frame.data),
    )
    return ng_block(order, 2, body + frame.data)


def ng_nrb(order: str, names: list[tuple[str, str]]) -> bytes:
    """Name resolution block: IPv4 records (type 1), closed by nrb_record_end."""
    body = b""
    for address, name in names:
        value = bytes(int(part) for part in address.split(".")) + name.encode() + b"\0"
        body += struct.pack(order + "HH", 1, len(value)) + _pad(value)
    return ng_block(order, 4, body + struct.pack(order + "HH", 0, 0))


def ng_isb(order: str, iface: int, interface: Interface, ts_ns: int, received: int) -> bytes:
    """Interface statistics block with isb_ifrecv."""
    ticks = interface.units(ts_ns)
    body = struct.pack(order + "III", iface, ticks >> 32, ticks & 0xFFFFFFFF)
    return ng_block(order, 5, body + ng_options(order, [(4, struct.pack(order + "Q", received))]))


def write(name: str, content: bytes) -> str:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(content)
    return f"foundation/{name}"


# -- hosts --------------------------------------------------------------------------------------

GATEWAY = Host("10.0.0.1", mac("02:00:0a:00:00:01"))
HMI = Host("10.0.0.10", mac("02:00:0a:00:00:0a"))
PLC = Host("10.0.0.20", mac("02:00:0a:00:00:14"))
WORKSTATION = Host("10.0.0.30", mac("02:00:0a:00:00:1e"))
WEB = Host("192.0.2.80", GATEWAY.mac)  # beyond the gateway: frames carry the gateway's MAC
CLIENT6 = Host("2001:db8::10", mac("02:00:0a:00:00:0a"))
SERVER6 = Host("2001:db8::20", mac("02:00:0a:00:00:14"))
BROADCAST = b"\xff" * 6


# -- the captures ---------------------------------------------------------------------------------


def mixed_session(cap: Capture) -> None:
    """IT and OT traffic of a small plant LAN (eth_le_us / eth_be_ns); frame numbers in comments."""
    # 1-2: ARP who-has 10.0.0.20 tell 10.0.0.10, reply (padded to the 60-byte minimum like a NIC).
    arp_request = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + HMI.mac + b"\x0a\x00\x00\x0a"
    arp_request += b"\0" * 6 + b"\x0a\x00\x00\x14"
    cap.add(ethernet(HMI.mac, BROADCAST, ETH_ARP) + arp_request, 1000)
    arp_reply = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + PLC.mac + b"\x0a\x00\x00\x14"
    arp_reply += HMI.mac + b"\x0a\x00\x00\x0a"
    cap.add(ethernet(PLC.mac, HMI.mac, ETH_ARP) + arp_reply + b"\0" * 18, 310)
    # 3-4: ping HMI -> PLC.
    eth = eth_link()
    echo = ICMP(type=8, id=0x0101, seq=1) / Raw(bytes(range(0x20, 0x40)))
    cap.add(eth(bytes(ip_layer(HMI, PLC) / echo), HMI, PLC), 2000)
    reply = ICMP(type=0, id=0x0101, seq=1) / Raw(bytes(range(0x20, 0x40)))
    cap.add(eth(bytes(ip_layer(PLC, HMI) / reply), PLC, HMI), 412)
    # 5-6: DNS A query for the historian, answered by the gateway.
    query = DNS(id=0x4A21, rd=1, qd=DNSQR(qname="historian.plant.example"))
    cap.add(eth(udp(WORKSTATION, GATEWAY, 53124, 53, bytes(query)), WORKSTATION, GATEWAY), 3000)
    answer = DNS(
        id=0x4A21,
        qr=1,
        rd=1,
        ra=1,
        qd=DNSQR(qname="historian.plant.example"),
        an=DNSRR(rrname="historian.plant.example", ttl=300, rdata=WEB.ip),
    )
    cap.add(eth(udp(GATEWAY, WORKSTATION, 53, 53124, bytes(answer)), GATEWAY, WORKSTATION), 1800)
    # 7-15: HTTP GET to the historian (handshake, request, response, client ACK, close).
    http = Tcp(cap, WORKSTATION, WEB, 49200, 80, isn=(0x2A00_0000, 0x7100_0000))
    http.handshake()
    http.exchange(
        b"GET /status HTTP/1.1\r\nHost: historian.plant.example\r\nUser-Agent: curl/8.4.0\r\n"
        b"Accept: */*\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhistorian ok",
    )
    http.close()
    # 16-26: lenmsg HMI -> PLC:7777 (handshake, two request/response pairs, close).
    ot = Tcp(cap, HMI, PLC, 50000, isn=(0x0100_0000, 0x0900_0000))
    ot.handshake()
    ot.send(0, lenmsg(b"read temperature"))
    ot.send(1, lenmsg(b"temperature=21.5"), step_us=1900)
    ot.send(0, lenmsg(b"read pressure"))
    ot.send(1, lenmsg(b"pressure=1.013"), step_us=1700)
    ot.ack(0)
    ot.close()
    # 27-33: Modbus/TCP read holding registers 0-3 of unit 1 (MBAP + PDU written out by hand).
    modbus = Tcp(cap, HMI, PLC, 50001, 502, isn=(0x0200_0000, 0x0A00_0000))
    modbus.handshake()
    modbus.exchange(
        struct.pack("!HHHBBHH", 1, 0, 6, 1, 3, 0, 4),
        struct.pack("!HHHBBB4H", 1, 0, 11, 1, 3, 8, 215, 1013, 0, 1),
    )
    modbus.emit(0, "RA", step_us=900)  # the HMI aborts instead of closing: a reset flow


def make_mixed() -> dict[str, str]:
    cap = Capture()
    mixed_session(cap)
    le_us = pcap_bytes(cap.frames, EN10MB)
    # The same traffic shifted by a non-whole number of microseconds (321 ns + 1717 ns per frame):
    # the big-endian file needs its nanosecond resolution.
    shifted = [Frame(f.ts_ns + 321 + 1717 * n, f.data, f.wire_len) for n, f in enumerate(cap.frames)]
    be_ns = pcap_bytes(shifted, EN10MB, order=">", nano=True)
    mixed = (
        "ARP request/reply, ICMP echo, DNS A query/answer (UDP 53), HTTP GET (TCP 80, handshake to "
        "close), lenmsg on TCP 7777 (two request/response pairs, close), Modbus/TCP FC3 ended by RST; "
        f"{len(cap.frames)} frames"
    )
    return {
        write("eth_le_us.pcap", le_us): f"classic pcap, little-endian, microseconds, EN10MB: {mixed}",
        write("eth_be_ns.pcap", be_ns): (
            "classic pcap, big-endian, nanoseconds, EN10MB: eth_le_us.pcap's frames with "
            f"321 + 1717*index ns added to each timestamp; {mixed}"
        ),
        write("eth_le_us.pcap.gz", gzip.compress(le_us, 9, mtime=0)): (
            "eth_le_us.pcap gzip-compressed (mtime 0)"
        ),
        # Two zstd frames, as zstd and Arkime write long captures: the cut falls inside a record.
        write("eth_le_us.pcap.zst", zstd_frames(le_us, 1000)): (
            "eth_le_us.pcap zstd-compressed in two frames (bytes 0-999 and the rest)"
        ),
        write("eth_le_us.pcap.lz4", lz4.frame.compress(le_us, compression_level=9)): (
            "eth_le_us.pcap LZ4-frame-compressed"
        ),
    }


def zstd_frames(data: bytes, cut: int) -> bytes:
    """``data`` as two zstd frames, split at ``cut``."""
    compressor = zstandard.ZstdCompressor(level=19, write_checksum=True)
    return compressor.compress(data[:cut]) + compressor.compress(data[cut:])


def lenmsg_session(cap: Capture, tcp: Tcp, tag: str) -> None:
    """Handshake, two request/response pairs, close: 12 frames, 4 lenmsg records."""
    tcp.handshake()
    tcp.exchange(lenmsg(f"{tag} request 1".encode()), lenmsg(f"{tag} response 1".encode()))
    tcp.exchange(lenmsg(f"{tag} request 2".encode()), lenmsg(f"{tag} response 2".encode()))
    tcp.close()


def make_link_types() -> dict[str, str]:
    entries: dict[str, str] = {}
    session = (
        "lenmsg TCP session (handshake, 2 request/response pairs, close; 12 frames) then one lenmsg "
        "UDP request/response"
    )
    for name, link_type, link in (
        ("linux_sll.pcap", LINUX_SLL, sll_link(HMI)),
        ("linux_sll2.pcap", LINUX_SLL2, sll2_link(HMI)),
    ):
        cap = Capture()
        lenmsg_session(cap, Tcp(cap, HMI, PLC, 41000, link=link), name.split(".")[0])
        cap.add(link(udp(HMI, PLC, 41001, LENMSG_PORT, lenmsg(b"udp ping")), HMI, PLC), 5000)
        cap.add(link(udp(PLC, HMI, LENMSG_PORT, 41001, lenmsg(b"udp pong")), PLC, HMI), 800)
        label = "LINUX_SLL (cooked v1)" if link_type == LINUX_SLL else "LINUX_SLL2 (cooked v2)"
        entries[write(name, pcap_bytes(cap.frames, link_type))] = (
            f"classic pcap LE us, {label} captured on 10.0.0.10: {session}"
        )
    for name, client, server, port in (
        ("raw_ipv4.pcap", HMI, PLC, 42000),
        ("raw_ipv6.pcap", CLIENT6, SERVER6, 42100),
    ):
        cap = Capture()
        lenmsg_session(cap, Tcp(cap, client, server, port, link=raw_link), name.split(".")[0])
        cap.add(udp(client, server, port + 1, LENMSG_PORT, lenmsg(b"udp ping")), 5000)
        cap.add(udp(server, client, LENMSG_PORT, port + 1, lenmsg(b"udp pong")), 800)
        entries[write(name, pcap_bytes(cap.frames, RAW))] = (
            f"classic pcap LE us, RAW (101) {'IPv6' if '6' in name else 'IPv4'}: {session}"
        )
    # NULL (host order) and LOOP (network order): an IPv4 session, an IPv6 UDP pair, and one frame
    # whose address family is 7 (neither IPv4 nor IPv6: link.unknown_family).
    for name, link_type, link, family in (
        ("null.pcap", NULL, null_link, struct.pack("<I", 7)),
        ("loop.pcap", LOOP, loop_link, struct.pack("!I", 7)),
    ):
        cap = Capture()
        lenmsg_session(cap, Tcp(cap, HMI, PLC, 43000, link=link), name.split(".")[0])
        cap.add(link(udp(CLIENT6, SERVER6, 43001, LENMSG_PORT, lenmsg(b"v6 ping")), CLIENT6, SERVER6), 5000)
        cap.add(link(udp(SERVER6, CLIENT6, LENMSG_PORT, 43001, lenmsg(b"v6 pong")), SERVER6, CLIENT6), 800)
        cap.add(family + b"\x00" * 20, 1000)
        label = (
            "NULL (BSD loopback, little-endian family: AF_INET 2, AF_INET6 30)"
            if link_type == NULL
            else "LOOP (OpenBSD loopback, network-order family: AF_INET 2, AF_INET6 24)"
        )
        entries[write(name, pcap_bytes(cap.frames, link_type))] = (
            f"classic pcap LE us, {label}: IPv4 lenmsg TCP session (12 frames), IPv6 lenmsg UDP "
            "request/response, one frame with address family 7"
        )
    return entries


def make_pcapng() -> dict[str, str]:
    entries: dict[str, str] = {}
    # multi_if.pcapng (little-endian): four interfaces of different link types and resolutions.
    order = "<"
    interfaces = [
        Interface(EN10MB, "eth0"),  # microseconds (default)
        Interface(LINUX_SLL, "any", tsresol=9),  # nanoseconds
        Interface(RAW, "tun0", tsresol=0x94),  # 2^-20 s (binary resolution)
        Interface(USER0, "usr0", tsresol=3),  # milliseconds, a link type we do not decode
    ]
    blocks = [ng_shb(order, "ics-monitor make_foundation.py"), *(ng_idb(order, i) for i in interfaces)]
    blocks.append(ng_nrb(order, [("10.0.0.10", "hmi.plant.example"), ("10.0.0.20", "plc.plant.example")]))
    packets: list[tuple[int, Frame, str]] = []  # (interface index or -1 SPB / -2 OPB, frame, comment)

    def on(iface: int, comment: str = "") -> Callable[[Capture], None]:
        def take(cap: Capture) -> None:
            for frame in cap.frames:
                packets.append((iface, frame, comment))
            cap.frames.clear()

        return take

    # eth0: lenmsg TCP session HMI -> PLC, microsecond stamps.
    cap = Capture(now_ns=BASE_NS)
    lenmsg_session(cap, Tcp(cap, HMI, PLC, 44000), "eth0")
    on(0)(cap)
    # any (cooked, ns): a lenmsg UDP pair at odd nanoseconds; the reply in a legacy OPB.
    cap = Capture(now_ns=BASE_NS + 3_000_000_007)
    sll = sll_link(WORKSTATION)
    cap.add(sll(udp(WORKSTATION, PLC, 44001, LENMSG_PORT, lenmsg(b"cooked ping")), WORKSTATION, PLC), 0)
    on(1, "lenmsg over LINUX_SLL, nanosecond stamp")(cap)
    cap.now_ns += 2_000_003
    cap.add(sll(udp(PLC, WORKSTATION, LENMSG_PORT, 44001, lenmsg(b"cooked pong")), PLC, WORKSTATION), 0)
    on(-2)(cap)
    # tun0 (raw IPv6, 2^-20 s): stamps on multiples of 1/64 s, exact in binary units.
    cap = Capture(now_ns=BASE_NS + 4 * 10**9)
    tun = Tcp(cap, CLIENT6, SERVER6, 44002, link=raw_link)
    tun.handshake()
    tun.exchange(lenmsg(b"tun request"), lenmsg(b"tun response"))
    for number, frame in enumerate(cap.frames):
        frame.ts_ns = BASE_NS + 4 * 10**9 + number * 15_625_000
    on(2)(cap)
    # usr0: two frames of a link type we do not decode (one link.unsupported anomaly).
    packets.append((3, Frame(BASE_NS + 5 * 10**9, b"user0 frame 1"), ""))
    packets.append((3, Frame(BASE_NS + 5 * 10**9 + 1_000_000, b"user0 frame 2"), ""))
    # SPB (interface 0, no timestamp): an ARP reply.
    arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + PLC.mac + b"\x0a\x00\x00\x14"
    arp += HMI.mac + b"\x0a\x00\x00\x0a"
    packets.append((-1, Frame(BASE_NS + 6 * 10**9, ethernet(PLC.mac, HMI.mac, ETH_ARP) + arp), ""))
    # Interleave by time; the SPB goes last (it has no time of its own).
    packets.sort(key=lambda p: (p[0] == -1, p[1].ts_ns))
    for iface, frame, comment in packets:
        if iface == -1:
            blocks.append(ng_spb(order, frame))
        elif iface == -2:
            blocks.append(ng_opb(order, 1, interfaces[1], frame, drops=0))
        else:
            blocks.append(ng_epb(order, iface, interfaces[iface], frame, comment))
    end_ns = BASE_NS + 7 * 10**9
    blocks.extend(ng_isb(order, i, interfaces[i], end_ns, 0) for i in range(len(interfaces)))
    entries[write("multi_if.pcapng", b"".join(blocks))] = (
        "pcapng little-endian, one section, 4 interfaces: EN10MB us (lenmsg TCP session, 12 EPBs), "
        "LINUX_SLL ns (lenmsg UDP request in an EPB with a comment, reply in a legacy OPB), RAW 2^-20 s "
        "(IPv6 lenmsg TCP handshake + one request/response, 6 EPBs), USER0 ms (2 EPBs); an NRB, an "
        "SPB (ARP reply, interface 0, no timestamp) and 4 ISBs; packets interleaved by time"
    )

    # be.pcapng: a big-endian section (EN10MB us + LINUX_SLL2 ns, an OPB, an SPB), then a second,
    # little-endian section whose single RAW interface restarts the interface numbering.
    order = ">"
    first = [Interface(EN10MB, "eth0"), Interface(LINUX_SLL2, "any", tsresol=9, tsoffset=1_700_000_000)]
    blocks = [ng_shb(order, "ics-monitor make_foundation.py"), *(ng_idb(order, i) for i in first)]
    cap = Capture(now_ns=BASE_NS + 10 * 10**9)
    lenmsg_session(cap, Tcp(cap, WORKSTATION, PLC, 45000), "be")
    for frame in cap.frames:
        blocks.append(ng_epb(order, 0, first[0], frame))
    sll2 = sll2_link(HMI)
    ping = Frame(
        BASE_NS + 11 * 10**9 + 5, sll2(udp(HMI, PLC, 45001, LENMSG_PORT, lenmsg(b"sll2 ping")), HMI, PLC)
    )
    pong = Frame(
        BASE_NS + 11 * 10**9 + 999_999,
        sll2(udp(PLC, HMI, LENMSG_PORT, 45001, lenmsg(b"sll2 pong")), PLC, HMI),
    )
    blocks.append(ng_epb(order, 1, first[1], ping))
    blocks.append(ng_opb(order, 1, first[1], pong, drops=3))
    blocks.append(ng_spb(order, Frame(0, ethernet(PLC.mac, HMI.mac, ETH_ARP) + arp)))
    order = "<"
    second = Interface(RAW, "tun1", tsresol=9)
    blocks += [ng_shb(order, "ics-monitor make_foundation.py, section 2"), ng_idb(order, second)]
    cap = Capture(now_ns=BASE_NS + 12 * 10**9)
    cap.add(udp(HMI, PLC, 45002, LENMSG_PORT, lenmsg(b"section two")), 0)
    cap.add(udp(PLC, HMI, LENMSG_PORT, 45002, lenmsg(b"section two reply")), 333)
    for frame in cap.frames:
        blocks.append(ng_epb(order, 0, second, frame))
    entries[write("be.pcapng", b"".join(blocks))] = (
        "pcapng, section 1 big-endian: EN10MB us (lenmsg TCP session, 12 EPBs) and LINUX_SLL2 ns with "
        "if_tsoffset 1700000000 s "
        "(lenmsg UDP request in an EPB, reply in an OPB with 3 drops), an SPB (ARP reply); section 2 "
        "little-endian with one RAW ns interface (index 0 again): lenmsg UDP request/response"
    )
    return entries


def make_damaged() -> dict[str, str]:
    entries: dict[str, str] = {}
    # truncated_record.pcap: a lenmsg session whose last record is cut 20 bytes into its data.
    cap = Capture()
    tcp = Tcp(cap, HMI, PLC, 46000)
    tcp.handshake()
    tcp.exchange(lenmsg(b"before the damage"), lenmsg(b"still read"))
    tcp.send(0, lenmsg(b"this record is cut short by the end of the file"))
    content = pcap_bytes(cap.frames, EN10MB)
    cut = len(cap.frames[-1].data) - 20
    entries[write("truncated_record.pcap", content[:-cut])] = (
        "classic pcap LE us EN10MB: lenmsg TCP handshake and one request/response + ACK (6 whole "
        f"records), then a 7th record whose header promises {len(cap.frames[-1].data)} bytes and only "
        "20 follow (file ends)"
    )
    # corrupt_block.pcapng: good blocks, then an EPB whose trailing length disagrees, then more EPBs.
    order = "<"
    eth0 = Interface(EN10MB, "eth0")
    cap = Capture()
    tcp = Tcp(cap, HMI, PLC, 46100)
    tcp.handshake()
    tcp.exchange(lenmsg(b"before the damage"), lenmsg(b"still read"))
    tcp.send(0, lenmsg(b"in the corrupt block"))
    tcp.send(1, lenmsg(b"after the damage"))
    blocks = [ng_shb(order, "ics-monitor make_foundation.py"), ng_idb(order, eth0)]
    blocks += [ng_epb(order, 0, eth0, frame) for frame in cap.frames]
    bad = bytearray(blocks[-2])
    bad[-4:] = struct.pack(order + "I", len(bad) + 4)  # trailing total length off by 4
    blocks[-2] = bytes(bad)
    offset = sum(len(block) for block in blocks[:-2])
    entries[write("corrupt_block.pcapng", b"".join(blocks))] = (
        "pcapng LE, one EN10MB interface: lenmsg TCP handshake and one request/response + ACK (6 "
        f"good EPBs), then an EPB at byte offset {offset} whose trailing block length ({len(bad) + 4}) "
        f"differs from its leading one ({len(bad)}), then one more good EPB"
    )
    entries[write("not_a_capture.pcap", b"This is a text file with a .pcap name, not a capture.\n" * 3)] = (
        "three lines of text named .pcap (no capture magic number)"
    )
    return entries


def make_vlan() -> dict[str, str]:
    """Same 5-tuple on VLAN 10 and VLAN 20 (interleaved, same ISNs), QinQ and untagged UDP."""
    cap = Capture()
    # 1: ARP request inside VLAN 10.
    arp = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 1) + HMI.mac + b"\x0a\x00\x00\x0a"
    arp += b"\0" * 6 + b"\x0a\x00\x00\x14"
    cap.add(ethernet(HMI.mac, BROADCAST, ETH_ARP, ((ETH_VLAN, 10),)) + arp, 1000)
    # 2-19: two TCP sessions, frame by frame alternating; bodies differ, lengths and seqs do not,
    # so a flow table that ignored VLANs would see conflicting retransmissions.
    sessions = [
        (Tcp(cap, HMI, PLC, 47000, link=eth_link(((ETH_VLAN, vlan),))), f"vlan {vlan}".encode())
        for vlan in (10, 20)
    ]
    steps: list[Callable[[Tcp, bytes], object]] = [
        lambda t, tag: t.emit(0, "S", ack=False, step_us=500),
        lambda t, tag: t.emit(1, "SA", step_us=150),
        lambda t, tag: t.emit(0, "A", step_us=80),
        lambda t, tag: t.send(0, lenmsg(tag + b" request")),
        lambda t, tag: t.send(1, lenmsg(tag + b" response"), step_us=900),
        lambda t, tag: t.ack(0),
        lambda t, tag: t.emit(0, "FA", step_us=700),
        lambda t, tag: t.emit(1, "FA", step_us=120),
        lambda t, tag: t.emit(0, "A", step_us=60),
    ]
    for step in steps:
        for tcp, tag in sessions:
            step(tcp, tag)
    # 20-21: QinQ (802.1ad outer 100, 802.1Q inner 200) UDP lenmsg pair.
    qinq = eth_link(((ETH_QINQ, 100), (ETH_VLAN, 200)))
    cap.add(qinq(udp(HMI, PLC, 47001, LENMSG_PORT, lenmsg(b"qinq request")), HMI, PLC), 3000)
    cap.add(qinq(udp(PLC, HMI, LENMSG_PORT, 47001, lenmsg(b"qinq response")), PLC, HMI), 400)
    # 22-23: the same UDP 5-tuple untagged.
    plain = eth_link()
    cap.add(plain(udp(HMI, PLC, 47001, LENMSG_PORT, lenmsg(b"untagged request")), HMI, PLC), 3000)
    cap.add(plain(udp(PLC, HMI, LENMSG_PORT, 47001, lenmsg(b"untagged response")), PLC, HMI), 400)
    return {
        write("vlan.pcap", pcap_bytes(cap.frames, EN10MB)): (
            "EN10MB: ARP in VLAN 10; lenmsg TCP sessions 10.0.0.10:47000 -> 10.0.0.20:7777 on VLAN 10 "
            "and VLAN 20 with the same ISNs, interleaved frame by frame (bodies differ); QinQ "
            "(802.1ad 100 / 802.1Q 200) lenmsg UDP pair and the same UDP 5-tuple untagged; 23 frames"
        )
    }


def make_ipv6() -> dict[str, str]:
    """IPv6 extension headers on ICMPv6, TCP and a fragmented UDP datagram."""
    cap = Capture()
    eth = eth_link()
    # 1-2: echo request with a hop-by-hop header, plain reply.
    request = IPv6(src=CLIENT6.ip, dst=SERVER6.ip) / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest(id=7, seq=1)
    cap.add(eth(bytes(request), CLIENT6, SERVER6), 1000)
    cap.add(eth(bytes(IPv6(src=SERVER6.ip, dst=CLIENT6.ip) / ICMPv6EchoReply(id=7, seq=1)), SERVER6, CLIENT6))
    # 3-14: lenmsg TCP; client packets carry destination options, server packets hop-by-hop +
    # segment routing (segments left 0) + destination options.
    ext = (
        (IPv6ExtHdrDestOpt(),),
        (
            IPv6ExtHdrHopByHop(),
            IPv6ExtHdrSegmentRouting(addresses=[CLIENT6.ip], segleft=0),
            IPv6ExtHdrDestOpt(),
        ),
    )
    lenmsg_session(cap, Tcp(cap, CLIENT6, SERVER6, 48000, ext=ext), "ipv6")
    # 15-16: a lenmsg UDP datagram in two fragments (hop-by-hop before the fragment header), second
    # fragment first; 17: the reply, unfragmented.
    body = b"fragmented over IPv6: " + bytes(range(0x41, 0x41 + 26)) * 3
    whole = bytes(
        IPv6(src=CLIENT6.ip, dst=SERVER6.ip) / UDP(sport=48001, dport=LENMSG_PORT) / Raw(lenmsg(body))
    )
    upper = whole[40:]  # UDP header (checksum over the whole datagram) + payload

    def fragment(offset: int, chunk: bytes, more: bool) -> bytes:
        packet = (
            IPv6(src=CLIENT6.ip, dst=SERVER6.ip)
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrFragment(nh=17, offset=offset // 8, m=int(more), id=0x00C0FFEE)
            / Raw(chunk)
        )
        return eth(bytes(packet), CLIENT6, SERVER6)

    cap.add(fragment(64, upper[64:], False), 3000)
    cap.add(fragment(0, upper[:64], True), 50)
    cap.add(eth(udp(SERVER6, CLIENT6, LENMSG_PORT, 48001, lenmsg(b"fragment reply")), SERVER6, CLIENT6), 700)
    return {
        write("ipv6_ext.pcap", pcap_bytes(cap.frames, EN10MB)): (
            "EN10MB IPv6: ICMPv6 echo request with hop-by-hop header and reply; lenmsg TCP session "
            "2001:db8::10:48000 -> [2001:db8::20]:7777 (client packets with destination options, server "
            "packets with hop-by-hop + segment routing + destination options; 12 frames); a lenmsg UDP "
            f"datagram of {len(upper)} bytes in two fragments behind a hop-by-hop header, last fragment "
            "first; unfragmented reply; 17 frames"
        )
    }


def ipv4_fragments(
    src: Host, dst: Host, ident: int, parts: list[tuple[int, bytes, bool]], proto: int = 17
) -> list[bytes]:
    """IPv4 fragments of one datagram: (byte offset, bytes, more fragments) in sending order."""
    out = []
    for offset, chunk, more in parts:
        packet = IP(
            src=src.ip, dst=dst.ip, id=ident, ttl=64, proto=proto, flags="MF" if more else 0, frag=offset // 8
        ) / Raw(chunk)
        out.append(ethernet(src.mac, dst.mac, ETH_IPV4) + bytes(packet))
    return out


FRAG_CLIENT = Host("10.0.4.10", mac("02:00:0a:00:04:0a"))
FRAG_SERVER = Host("10.0.4.20", mac("02:00:0a:00:04:14"))


def udp_upper(src: Host, dst: Host, sport: int, body: bytes) -> bytes:
    """UDP header + lenmsg PDU of a whole datagram (checksum computed over the whole)."""
    return bytes(IP(src=src.ip, dst=dst.ip) / UDP(sport=sport, dport=LENMSG_PORT) / Raw(lenmsg(body)))[20:]


def thirds(upper: bytes) -> list[tuple[int, bytes, bool]]:
    """Three fragments of a 72-byte datagram: [0,24) [24,48) [48,72)."""
    return [(0, upper[:24], True), (24, upper[24:48], True), (48, upper[48:], False)]


def make_ipv4_fragments() -> dict[str, str]:
    cap = Capture()
    c, s = FRAG_CLIENT, FRAG_SERVER
    body = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX"  # 60 bytes: datagram 72
    # 1-4 (sport 48100): in order, with an exact duplicate of the middle fragment.
    a = thirds(udp_upper(c, s, 48100, b"in order:   " + body[12:]))
    for frame in ipv4_fragments(c, s, 0x0A01, [a[0], a[1], a[1], a[2]]):
        cap.add(frame, 300)
    # 5-7 (48101): out of order: last, first, middle.
    b = thirds(udp_upper(c, s, 48101, b"reversed:   " + body[12:]))
    for frame in ipv4_fragments(c, s, 0x0A02, [b[2], b[0], b[1]]):
        cap.add(frame, 300)
    # 8-10 (48102): the second fragment starts at 16 and rewrites bytes 16-23 (body[4:12]).
    upper = udp_upper(c, s, 48102, b"overlap:    " + body[12:])
    forged = upper[16:24].upper().replace(b" ", b"#")
    assert forged != upper[16:24]
    parts = [(0, upper[:24], True), (16, forged + upper[24:48], True), (48, upper[48:], False)]
    for frame in ipv4_fragments(c, s, 0x0A03, parts):
        cap.add(frame, 300)
    # 11-12 (48103): first and last fragment only; the middle never comes (expires after 30 s).
    d = thirds(udp_upper(c, s, 48103, b"incomplete: " + body[12:]))
    for frame in ipv4_fragments(c, s, 0x0A04, [d[0], d[2]]):
        cap.add(frame, 300)
    # 13-14 (48104): a TCP SYN whose first fragment holds 8 bytes (ports and sequence number only).
    syn = bytes(
        IP(src=c.ip, dst=s.ip)
        / TCP(
            sport=48104, dport=LENMSG_PORT, seq=0x4000_0000, flags="S", window=64240, options=[("MSS", 1460)]
        )
    )[20:]
    for frame in ipv4_fragments(c, s, 0x0A05, [(0, syn[:8], True), (8, syn[8:], False)], proto=6):
        cap.add(frame, 300)
    # 15: a fragment at offset 65528 carrying 16 bytes: the datagram would pass 65535.
    for frame in ipv4_fragments(c, s, 0x0A06, [(65528, b"X" * 16, False)]):
        cap.add(frame, 300)
    # 16-17, 31 s later (48105): a good two-fragment datagram; its arrival expires set 11-12.
    g = udp_upper(c, s, 48105, b"late:       " + body[12:])
    late = ipv4_fragments(c, s, 0x0A07, [(0, g[:40], True), (40, g[40:], False)])
    cap.add(late[0], 31_000_000)
    cap.add(late[1], 300)
    # 18 (48106): only the last fragment of a datagram: still pending at the end of the capture.
    h = thirds(udp_upper(c, s, 48106, b"dangling:   " + body[12:]))
    for frame in ipv4_fragments(c, s, 0x0A08, [h[2]]):
        cap.add(frame, 300)
    return {
        write("ipv4_frag.pcap", pcap_bytes(cap.frames, EN10MB)): (
            "EN10MB IPv4 fragments of lenmsg UDP datagrams 10.0.4.10 -> 10.0.4.20:7777 (72 bytes, "
            "fragments of 24): in order with a duplicate (sport 48100, frames 1-4), reversed (48101, "
            "5-7), overlapping with conflicting bytes 16-23 (48102, 8-10), missing middle (48103, "
            "11-12), tiny 8-byte first fragment of a TCP SYN (48104, 13-14), fragment past 65535 (15), "
            "a good pair 31 s later (48105, 16-17), a lone last fragment (48106, 18)"
        )
    }


TCP_CLIENT = Host("10.0.2.10", mac("02:00:0a:00:02:0a"))
TCP_SERVER = Host("10.0.2.20", mac("02:00:0a:00:02:14"))


def make_tcp_cases() -> dict[str, str]:
    entries: dict[str, str] = {}
    c, s = TCP_CLIENT, TCP_SERVER

    # tcp_split.pcap
    cap = Capture()
    t = Tcp(cap, c, s, 49001)
    t.handshake()  # 1-3
    request = lenmsg(b"split across four segments ok")
    t.send(0, request[:1])  # 4: one byte of the header
    t.send(0, request[1:4])  # 5: rest of the header
    t.send(0, request[4:14])  # 6: 10 body bytes
    t.ack(1)  # 7
    t.send(0, request[14:])  # 8: the rest: PDU complete
    response = lenmsg(b"response in two segments")
    t.send(1, response[:9], step_us=1200)  # 9
    t.send(1, response[9:], step_us=40)  # 10
    t.ack(0)  # 11
    t.close()  # 12-14
    entries[write("tcp_split.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49001 -> 10.0.2.20:7777: request PDU in four segments (1 byte, 3 bytes, "
        "10 bytes, rest; frames 4-6 and 8), response in two (frames 9-10); 14 frames"
    )

    # tcp_multi_pdu.pcap
    cap = Capture()
    t = Tcp(cap, c, s, 49002)
    t.handshake()  # 1-3
    t.send(0, lenmsg(b"first") + lenmsg(b"second") + lenmsg(b"third"))  # 4
    t.send(1, lenmsg(b"reply 1") + lenmsg(b"reply 2") + lenmsg(b"reply 3"), step_us=900)  # 5
    fifth = lenmsg(b"fifth, split")
    t.send(0, lenmsg(b"fourth") + fifth[:7])  # 6
    t.send(0, fifth[7:] + lenmsg(b"sixth"))  # 7
    t.ack(1)  # 8
    t.close()  # 9-11
    entries[write("tcp_multi_pdu.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49002 -> 10.0.2.20:7777: three PDUs in one segment each way (frames 4, "
        "5), then PDU 4 + half of PDU 5 (frame 6) and the other half + PDU 6 (frame 7); 11 frames"
    )

    # tcp_retransmission.pcap
    cap = Capture()
    t = Tcp(cap, c, s, 49003)
    t.handshake()  # 1-3
    first = lenmsg(b"request once")
    start = t.next_seq[0]
    t.send(0, first)  # 4
    t.emit(0, "PA", first, seq=start, advance=False, step_us=200_000)  # 5: RTO retransmission
    reply = lenmsg(b"reply once")
    reply_start = t.next_seq[1]
    t.send(1, reply)  # 6
    t.emit(1, "PA", reply, seq=reply_start, advance=False, step_us=200_000)  # 7: retransmitted
    t.ack(0)  # 8
    second = lenmsg(b"second request")
    start = t.next_seq[0]
    t.emit(0, "PA", first[-6:] + second, seq=(start - 6) & 0xFFFFFFFF, advance=False)  # 9
    t.next_seq[0] = (start + len(second)) & 0xFFFFFFFF
    t.ack(1)  # 10
    t.close()  # 11-13
    entries[write("tcp_retransmission.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49003 -> 10.0.2.20:7777: request (4) retransmitted unchanged (5), reply "
        "(6) retransmitted unchanged (7), then a segment that resends the request's last 6 bytes "
        "unchanged followed by a new PDU (9); 13 frames"
    )

    # tcp_overlap_conflict.pcap
    cap = Capture()
    t = Tcp(cap, c, s, 49004)
    t.handshake()  # 1-3
    original = lenmsg(b"write setpoint 40")
    start = t.next_seq[0]
    t.send(0, original)  # 4
    t.emit(0, "PA", lenmsg(b"write setpoint 99"), seq=start, advance=False, step_us=300)  # 5
    t.send(1, lenmsg(b"ok 40"), step_us=900)  # 6
    second = lenmsg(b"read setpoint")
    start = t.next_seq[0]
    t.emit(0, "PA", b"9999" + second, seq=(start - 4) & 0xFFFFFFFF, advance=False)  # 7
    t.next_seq[0] = (start + len(second)) & 0xFFFFFFFF
    t.send(1, lenmsg(b"setpoint 40"), step_us=900)  # 8
    t.ack(0)  # 9
    t.close()  # 10-12
    entries[write("tcp_overlap_conflict.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49004 -> 10.0.2.20:7777: 'write setpoint 40' (4) re-sent at the same "
        "sequence number as 'write setpoint 99' (5); after the reply (6) a segment whose first 4 bytes "
        "overlap the request's last 4 with different bytes ('9999'), then a new PDU (7); 12 frames"
    )

    # tcp_out_of_order.pcap
    cap = Capture()
    t = Tcp(cap, c, s, 49005)
    t.handshake()  # 1-3
    pdu1 = lenmsg(b"one, in two segments")
    base = t.next_seq[0]
    t.emit(0, "PA", pdu1[10:], seq=base + 10, advance=False)  # 4: second half first
    t.emit(0, "PA", pdu1[:10], seq=base, advance=False)  # 5: first half fills the hole
    pdu2, pdu3 = lenmsg(b"two"), lenmsg(b"three")
    base += len(pdu1)
    t.emit(0, "PA", pdu3, seq=base + len(pdu2), advance=False)  # 6: PDU 3 before PDU 2
    t.emit(0, "PA", pdu2, seq=base, advance=False)  # 7
    t.next_seq[0] = base + len(pdu2) + len(pdu3)
    t.ack(1)  # 8
    t.send(1, lenmsg(b"three answers"), step_us=900)  # 9
    t.ack(0)  # 10
    t.close()  # 11-13
    entries[write("tcp_out_of_order.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49005 -> 10.0.2.20:7777: PDU 1's second half (4) before its first "
        "half (5); PDU 3 (6) before PDU 2 (7); one reply (9); 13 frames"
    )

    # tcp_midstream.pcap: the capture starts inside the connection (no handshake).
    cap = Capture()
    t = Tcp(cap, c, s, 49006, isn=(0x3000_0000, 0x6000_0000))
    t.send(0, b"tail of an earlier request")  # 1: no PDU starts here
    r0, r1 = lenmsg(b"answer to the unseen request"), lenmsg(b"second answer, split")
    t.send(1, r0 + r1[:9], step_us=700)  # 2: a whole PDU, then the start of the next
    t.send(1, r1[9:], step_us=60)  # 3: the rest of it
    t.send(0, lenmsg(b"first whole request"), step_us=900)  # 4
    t.send(1, lenmsg(b"its answer"), step_us=900)  # 5
    t.ack(0)  # 6
    entries[write("tcp_midstream.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49006 <-> 10.0.2.20:7777 picked up mid-stream (no handshake): client "
        "segment without a PDU start (1), server segment with a whole PDU plus the first 9 bytes of "
        "the next (2), the rest (3), a request (4) and its answer (5); 6 frames"
    )

    # tcp_gap.pcap: one client segment is missing from the capture; the server acknowledges it.
    cap = Capture()
    t = Tcp(cap, c, s, 49007)
    t.handshake()  # 1-3
    t.send(0, lenmsg(b"before the gap"))  # 4
    t.ack(1)  # 5
    lost = lenmsg(b"partly lost request")
    base = t.next_seq[0]
    # (not captured: the segment with lost[:10])
    t.emit(0, "PA", lost[10:], seq=base + 10, advance=False, step_us=600)  # 6
    after = lenmsg(b"after the gap")
    t.emit(0, "PA", after, seq=base + len(lost), advance=False)  # 7
    t.next_seq[0] = base + len(lost) + len(after)
    t.ack(1)  # 8: acknowledges everything, the lost bytes included
    t.send(1, lenmsg(b"answer"), step_us=900)  # 9
    t.ack(0)  # 10
    t.close()  # 11-13
    entries[write("tcp_gap.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49007 -> 10.0.2.20:7777: a request (4); the next segment (first 10 bytes "
        "of a 23-byte PDU) was not captured; its remainder (6) and a whole PDU (7) arrive, then the "
        "server ACK covering all (8); one answer (9); 13 frames"
    )

    # tcp_seq_wrap.pcap: both directions' sequence numbers pass 2^32 during the session, and
    # segments are compared across the wrap (out of order, retransmitted).
    cap = Capture()
    t = Tcp(cap, c, s, 49008, isn=(0xFFFF_FFF0, 0xFFFF_FFE8))
    t.handshake()  # 1-3
    t.send(0, lenmsg(b"ten bytes."))  # 4: ends at 0xFFFFFFFE
    pdu = lenmsg(b"across the 2^32 wrap")
    base = t.next_seq[0]  # 0xFFFFFFFF
    t.emit(0, "PA", pdu[8:], seq=(base + 8) & 0xFFFFFFFF, advance=False)  # 5: tail, at 7
    t.emit(0, "PA", pdu[:8], seq=base, advance=False)  # 6: head, 0xFFFFFFFF -> 6
    t.emit(0, "PA", pdu[:8], seq=base, advance=False, step_us=200_000)  # 7: head retransmitted
    t.next_seq[0] = (base + len(pdu)) & 0xFFFFFFFF
    t.send(1, lenmsg(b"answer crossing zero too"), step_us=900)  # 8: 0xFFFFFFE9 -> 0x4
    pdu = lenmsg(b"out of order after the wrap")
    base = t.next_seq[0]
    t.emit(0, "PA", pdu[12:], seq=base + 12, advance=False)  # 9
    t.emit(0, "PA", pdu[:12], seq=base, advance=False)  # 10
    t.next_seq[0] = base + len(pdu)
    t.send(1, lenmsg(b"last answer"), step_us=900)  # 11
    t.ack(0)  # 12
    t.close()  # 13-15
    entries[write("tcp_seq_wrap.pcap", pcap_bytes(cap.frames, EN10MB))] = (
        "lenmsg TCP 10.0.2.10:49008 -> 10.0.2.20:7777 with ISNs 0xFFFFFFF0 / 0xFFFFFFE8: a client PDU "
        "whose tail (5, seq 7) arrives before its head (6, seq 0xFFFFFFFF, crossing 2^32), the head "
        "retransmitted unchanged (7), a server PDU crossing 2^32 (8), an out-of-order pair after the "
        "wrap (9-10); 15 frames"
    )
    return entries


def make_malformed() -> dict[str, str]:
    """One broken L2-L4 header per frame between a good lenmsg UDP request (1) and reply (last)."""
    cap = Capture()
    good_client = Host("10.0.3.1", mac("02:00:0a:00:03:01"))
    good_server = Host("10.0.3.2", mac("02:00:0a:00:03:02"))

    def host(n: int) -> Host:
        return Host(f"10.0.3.{n}", mac(f"02:00:0a:00:03:{n:02x}"))

    def eth(n: int, ether_type: int = ETH_IPV4) -> bytes:
        return ethernet(host(n).mac, good_server.mac, ether_type)

    def ipv4(n: int, proto: int, payload: bytes, **fields: int) -> bytes:
        return bytes(IP(src=host(n).ip, dst=good_server.ip, proto=proto, id=n, **fields) / Raw(payload))

    def ipv6(n: int, next_header: int, payload: bytes, **fields: int) -> bytes:
        return bytes(
            IPv6(src=f"2001:db8:3::{n:x}", dst="2001:db8:3::2", nh=next_header, **fields) / Raw(payload)
        )

    frames: list[tuple[bytes, int]] = []  # (frame bytes, wire length or 0)
    frames.append(
        (
            eth_link()(
                udp(good_client, good_server, 50100, LENMSG_PORT, lenmsg(b"before")), good_client, good_server
            ),
            0,
        )
    )
    frames.append((eth(11)[:10], 0))  # 2 link.truncated: 10-byte Ethernet frame
    frames.append((ethernet(host(12).mac, good_server.mac, ETH_VLAN) + b"\x00\x0c", 0))  # 3 vlan.truncated
    tags = ((ETH_VLAN, 1), (ETH_VLAN, 2), (ETH_VLAN, 3), (ETH_VLAN, 4), (ETH_VLAN, 5))
    frames.append((ethernet(host(13).mac, good_server.mac, ETH_IPV4, tags) + ipv4(13, 17, b""), 0))  # 4
    frames.append((eth(14, ETH_ARP) + struct.pack("!HHBBH", 1, ETH_IPV4, 8, 4, 1) + b"\0" * 24, 0))  # 5
    frames.append((eth(15, ETH_ARP) + struct.pack("!HHH", 1, ETH_IPV4, 0x0604), 0))  # 6 arp.truncated
    frames.append((eth(16) + ipv4(16, 17, b"")[:12], 0))  # 7 ipv4.truncated: 12-byte header
    bad_version = bytearray(ipv4(17, 17, b"\0" * 8))
    bad_version[0] = 0x55
    frames.append((eth(17) + bytes(bad_version), 0))  # 8 ipv4.bad_version
    bad_ihl = bytearray(ipv4(18, 17, b"\0" * 8))
    bad_ihl[0] = 0x44
    frames.append((eth(18) + bytes(bad_ihl), 0))  # 9 ipv4.bad_header_length
    frames.append((eth(19) + ipv4(19, 17, b"\0" * 8, len=10), 0))  # 10 ipv4.bad_total_length
    echo = bytes(ICMP(type=8, id=0x13, seq=1) / Raw(b"payload!"))
    frames.append((eth(20) + ipv4(20, 1, echo, len=120), 0))  # 11 ipv4.truncated (total 120, 36 present)
    tcp = bytearray(bytes(TCP(sport=50121, dport=9999, flags="A")))
    tcp[12] = 0x40  # data offset 4 words
    frames.append((eth(21) + ipv4(21, 6, bytes(tcp)), 0))  # 12 tcp.bad_header_length
    frames.append((eth(22) + ipv4(22, 6, bytes(TCP(sport=50122, dport=9999))[:12]), 0))  # 13 tcp.truncated
    long_tcp = bytearray(bytes(TCP(sport=50123, dport=9999, flags="A")))
    long_tcp[12] = 0xF0  # data offset 15 words, 20 bytes present
    frames.append((eth(23) + ipv4(23, 6, bytes(long_tcp)), 0))  # 14 tcp.truncated
    frames.append((eth(24) + ipv4(24, 17, struct.pack("!HHHH", 50124, 9999, 4, 0)), 0))  # 15 udp.bad_length
    frames.append((eth(25) + ipv4(25, 17, struct.pack("!HHHH", 50125, 9999, 100, 0) + b"x" * 12), 0))  # 16
    frames.append((eth(26) + ipv4(26, 17, struct.pack("!HH", 50126, 9999)), 0))  # 17 udp.truncated
    frames.append((eth(27) + ipv4(27, 1, b"\x08\x00"), 0))  # 18 icmp.truncated
    frames.append((eth(28, ETH_IPV6) + ipv6(28, 17, b"")[:20], 0))  # 19 ipv6.truncated
    v6_version = bytearray(ipv6(29, 17, struct.pack("!HHHH", 50129, 9999, 8, 0)))
    v6_version[0] = 0x45
    frames.append((eth(29, ETH_IPV6) + bytes(v6_version), 0))  # 20 ipv6.bad_version
    # 21: hop-by-hop header claiming (2+1)*8 = 24 bytes, 8 present.
    frames.append((eth(30, ETH_IPV6) + ipv6(30, 0, bytes((17, 2)) + b"\x01\x04\0\0\0\0"), 0))
    # 22: nine destination-options headers in a row.
    chain = (
        b"".join(bytes((60, 0)) + b"\x01\x04\0\0\0\0" for _ in range(8))
        + bytes((17, 0))
        + b"\x01\x04\0\0\0\0"
    )
    frames.append((eth(31, ETH_IPV6) + ipv6(31, 60, chain + struct.pack("!HHHH", 50131, 9999, 8, 0)), 0))
    frames.append((eth(32, ETH_IPV6) + ipv6(32, 58, b"\x80\x00"), 0))  # 23 icmpv6.truncated
    frames.append((eth(33, 0x8847) + b"\x00\x01", 0))  # 24 mpls.truncated
    # 25: cut by the snap length (64 of 200 bytes captured): not an anomaly.
    cut = eth(34) + ipv4(34, 6, bytes(TCP(sport=50134, dport=9999, flags="PA") / Raw(b"s" * 146)))
    frames.append((cut[:64], len(cut)))
    frames.append(
        (
            eth_link()(
                udp(good_server, good_client, LENMSG_PORT, 50100, lenmsg(b"after")), good_server, good_client
            ),
            0,
        )
    )
    for data, wire_len in frames:
        cap.add(data, 250, wire_len)
    return {
        write("malformed.pcap", pcap_bytes(cap.frames, EN10MB, snaplen=64)): (
            "EN10MB, snaplen 64: lenmsg UDP request 10.0.3.1:50100 -> 10.0.3.2:7777 (1) and reply (26); "
            "between them one broken header per frame from 10.0.3.N, N = frame + 9: Ethernet 10 bytes "
            "(2), VLAN tag cut (3), 5 VLAN tags (4), ARP hardware length 8 (5), ARP 6 bytes (6), IPv4 12 "
            "bytes (7), IPv4 version 5 (8), IHL 4 (9), total length 10 (10), total length 120 with 36 "
            "present (11, ICMP echo), TCP data offset 4 (12), TCP 12 bytes (13), TCP data offset 15 with "
            "20 bytes (14), UDP length 4 (15), UDP length 100 with 20 bytes (16), UDP 4 bytes (17), "
            "ICMP 2 bytes (18), IPv6 20 bytes (19), IPv6 version 4 (20), hop-by-hop overrun (21), 9 "
            "extension headers (22), ICMPv6 2 bytes (23), MPLS label cut (24), TCP cut by the snap "
            "length (25, 64 of 200 bytes: not malformed)"
        )
    }


def make_multi_file() -> dict[str, str]:
    """One session seen by two taps: client-side frames in a pcap, server-side in a BE pcapng."""
    cap = Capture()
    t = Tcp(cap, HMI, PLC, 51000)
    lenmsg_session(cap, t, "two taps")
    # A lenmsg UDP keep-alive seen only by the server-side tap, before the session starts.
    keepalive = Frame(BASE_NS + 500_000, udp(PLC, GATEWAY, 51001, LENMSG_PORT, lenmsg(b"keep-alive")))
    client_side = [f for f in cap.frames if f.data[6:12] == HMI.mac]
    server_side = [f for f in cap.frames if f.data[6:12] == PLC.mac]
    a = pcap_bytes(client_side, EN10MB)
    order = ">"
    sll_if = Interface(LINUX_SLL, "eth1", tsresol=9)
    blocks = [ng_shb(order, "ics-monitor make_foundation.py"), ng_idb(order, sll_if)]
    to_sll = sll_link(PLC)
    blocks.append(ng_epb(order, 0, sll_if, Frame(keepalive.ts_ns, to_sll(keepalive.data, PLC, GATEWAY))))
    for frame in server_side:
        blocks.append(
            ng_epb(order, 0, sll_if, Frame(frame.ts_ns, sll(PLC.mac, 4, ETH_IPV4) + frame.data[14:]))
        )
    return {
        write("multi_a.pcap", a): (
            "classic pcap LE us EN10MB: the client-to-server frames (8 of 12) of a lenmsg TCP session "
            "10.0.0.10:51000 -> 10.0.0.20:7777; read together with multi_b.pcapng"
        ),
        write("multi_b.pcapng", b"".join(blocks)): (
            "pcapng big-endian, LINUX_SLL ns: a lenmsg UDP datagram 10.0.0.20 -> 10.0.0.1 earlier than "
            "everything in multi_a.pcap, then the server-to-client frames (4) of multi_a.pcap's session"
        ),
    }


def make_flow_states() -> dict[str, str]:
    """Orientation, states and end reasons of the flow table."""
    cap = Capture()
    c, s = Host("10.0.5.10", mac("02:00:0a:00:05:0a")), Host("10.0.5.20", mac("02:00:0a:00:05:14"))
    # 1-2: rejected: SYN answered by RST/ACK.
    t = Tcp(cap, c, s, 52001, 8080)
    t.emit(0, "S", ack=False)
    t.emit(1, "RA")
    # 3-4: SYN and its retransmission, never answered.
    t = Tcp(cap, c, s, 52002, 8081)
    t.emit(0, "S", ack=False, advance=False)
    t.emit(0, "S", ack=False, step_us=1_000_000)
    # 5-9: half closed: handshake, data, the client's FIN only.
    t = Tcp(cap, c, s, 52003)
    t.handshake()
    t.send(0, lenmsg(b"half"))
    t.emit(0, "FA")
    # 10-18: closed, then 19-21: a new SYN on the same 5-tuple 5 s later (within the closed
    # timeout): a second flow.
    t = Tcp(cap, c, s, 52004)
    lenmsg_session_short(t)
    t2 = Tcp(cap, c, s, 52004, isn=(0x1100_0000, 0x5100_0000))
    t2.emit(0, "S", ack=False, step_us=5_000_000)
    t2.emit(1, "SA")
    t2.emit(0, "A")
    # 22-23: UDP answered from a well-known port, the server speaking first.
    eth = eth_link()
    cap.add(eth(udp(s, c, 502, 52005, b"\x00\x01\x00\x00\x00\x03\x01\x83\x02"), s, c))
    cap.add(eth(udp(c, s, 52005, 502, b"\x00\x02\x00\x00\x00\x06\x01\x03\x00\x00\x00\x01"), c, s))
    # 24: an echo reply with no request: its sender is the server.
    cap.add(eth(bytes(ip_layer(s, c) / ICMP(type=0, id=9, seq=1)), s, c))
    # 25: UDP between two high ports: the first talker is the client; 26: again after 150 s idle.
    cap.add(eth(udp(c, s, 52006, 52007, b"hello"), c, s))
    cap.add(eth(udp(c, s, 52006, 52007, b"hello again"), c, s), 150_000_000)
    return {
        write("flow_states.pcap", pcap_bytes(cap.frames, EN10MB)): (
            "EN10MB flows 10.0.5.10 <-> 10.0.5.20: SYN + RST/ACK (1-2), unanswered SYN retransmitted "
            "(3-4), handshake + data + client FIN only (5-9), a closed lenmsg session (10-18) whose "
            "5-tuple is reused 5 s later (19-21), UDP from port 502 first (22-23), an echo reply alone "
            "(24), UDP between high ports (25) and again after 150 s (26)"
        )
    }


def lenmsg_session_short(t: Tcp) -> None:
    """Handshake, one request/response pair, close: 9 frames."""
    t.handshake()
    t.exchange(lenmsg(b"short request"), lenmsg(b"short response"))
    t.close()


def main() -> None:
    entries: dict[str, str] = {}
    entries.update(make_mixed())
    entries.update(make_link_types())
    entries.update(make_pcapng())
    entries.update(make_damaged())
    entries.update(make_vlan())
    entries.update(make_ipv6())
    entries.update(make_ipv4_fragments())
    entries.update(make_tcp_cases())
    entries.update(make_malformed())
    entries.update(make_multi_file())
    entries.update(make_flow_states())
    update(GENERATOR, entries)
    for name in entries:
        print(name)


if __name__ == "__main__":
    main()
