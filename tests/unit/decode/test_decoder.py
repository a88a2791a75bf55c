"""The decoder on packets built with scapy, on hand-broken headers, and on random bytes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from ics_monitor.core import linktypes
from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.core.errors import CaptureError
from ics_monitor.core.packet import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, TCP_PSH
from ics_monitor.decode import Decoder

CLIENT, SERVER = "192.0.2.10", "192.0.2.20"
MAC = "00:80:f4:00:00:02"  # explicit: scapy would otherwise resolve (slowly) via ARP/routing


def decode(
    frame: bytes,
    link_type: int = linktypes.EN10MB,
    decoder: Decoder | None = None,
    wire_len: int | None = None,
):
    decoder = decoder or Decoder()
    pkt = decoder.decode(1, 1.0, link_type, frame, wire_len if wire_len is not None else len(frame))
    codes = [a.code for a in decoder.anomalies]
    decoder.anomalies.clear()
    return pkt, codes


def test_ethernet_ipv4_tcp_fields() -> None:
    frame = bytes(
        Ether(src="00:1b:1b:00:00:01", dst="00:80:f4:00:00:02")
        / IP(src=CLIENT, dst=SERVER, ttl=63)
        / TCP(sport=40000, dport=502, seq=1000, ack=2000, flags="PA", window=512)
        / Raw(b"hello")
    )
    pkt, codes = decode(frame)
    assert codes == []
    assert pkt.src_mac == bytes.fromhex("001b1b000001") and pkt.dst_mac == bytes.fromhex("0080f4000002")
    assert pkt.ip_version == 4 and pkt.ip_proto == IPPROTO_TCP and pkt.ttl == 63
    assert (pkt.sport, pkt.dport, pkt.seq, pkt.ack, pkt.window) == (40000, 502, 1000, 2000, 512)
    assert pkt.tcp_flags == TCP_PSH | TCP_ACK
    assert pkt.payload == b"hello"


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER) / UDP(sport=1, dport=2) / Raw(b"ab"))
    pkt, codes = decode(frame + b"\0" * 10)
    assert codes == [] and pkt.payload == b"ab"


def test_vlan_and_qinq_keep_ids() -> None:
    single = bytes(Ether(dst=MAC) / Dot1Q(vlan=10) / IP(src=CLIENT, dst=SERVER) / UDP() / Raw(b"x"))
    double = bytes(Ether(dst=MAC) / Dot1AD(vlan=100) / Dot1Q(vlan=200) / IP(src=CLIENT, dst=SERVER) / UDP())
    assert decode(single)[0].vlan == (10,)
    assert decode(double)[0].vlan == (100, 200)


def test_arp_binding() -> None:
    frame = bytes(
        Ether(dst=MAC)
        / ARP(op=2, hwsrc="00:1b:1b:00:00:01", psrc=CLIENT, hwdst="00:80:f4:00:00:02", pdst=SERVER)
    )
    pkt, codes = decode(frame)
    assert codes == [] and pkt.ip_version == 0
    assert pkt.arp.operation == 2
    assert pkt.arp.sender_mac == bytes.fromhex("001b1b000001")
    assert pkt.arp.sender_ip == bytes([192, 0, 2, 10])
    # Hardware type 6 (IEEE 802), which Linux also takes on Ethernet, is a binding too; 15 (Frame
    # Relay) is not an Ethernet one.
    ieee802 = bytes(
        Ether(dst=MAC)
        / ARP(hwtype=6, hwlen=6, plen=4, op=2, hwsrc="00:1b:1b:00:00:01", psrc=CLIENT, pdst=SERVER)
    )
    pkt, codes = decode(ieee802)
    assert codes == [] and pkt.arp is not None and pkt.arp.sender_ip == bytes([192, 0, 2, 10])
    pkt, codes = decode(
        bytes(Ether(dst=MAC) / ARP(hwtype=15, hwlen=6, plen=4, op=2, psrc=CLIENT, pdst=SERVER))
    )
    assert codes == [] and (pkt is None or pkt.arp is None)


def test_ipv6_extension_headers_reach_transport() -> None:
    frame = bytes(
        Ether(dst=MAC)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / TCP(sport=5, dport=7777)
        / Raw(b"data")
    )
    pkt, codes = decode(frame)
    assert codes == []
    assert pkt.ip_version == 6 and pkt.ip_proto == IPPROTO_TCP and pkt.payload == b"data"
    assert pkt.src_ip == bytes.fromhex("20010db8000000000000000000000001")


def test_icmp_and_icmpv6() -> None:
    pkt, _ = decode(bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, code=0)))
    assert pkt.ip_proto == IPPROTO_ICMP and pkt.icmp_type == 8
    pkt6, _ = decode(bytes(Ether(dst=MAC) / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest()))
    assert pkt6.icmp_type == 128


def test_cooked_null_loop_and_raw_link_types() -> None:
    ip_packet = bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=9, dport=53) / Raw(b"q"))
    sll = (
        bytes(
            CookedLinux(
                pkttype=0, lladdrtype=1, lladdrlen=6, src=b"\x00\x1b\x1b\x00\x00\x01\0\0", proto=0x0800
            )
        )
        + ip_packet
    )
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 0, 6, b"\x00\x1b\x1b\x00\x00\x01\0\0") + ip_packet
    null_le = struct.pack("<I", 2) + ip_packet
    loop_be = struct.pack(">I", 2) + ip_packet
    ipv6_null = struct.pack("<I", 30) + bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP() / Raw(b"z"))
    cases = [
        (sll, linktypes.LINUX_SLL),
        (sll2, linktypes.LINUX_SLL2),
        (null_le, linktypes.NULL),
        (loop_be, linktypes.LOOP),
        (ip_packet, linktypes.RAW),
        (ip_packet, linktypes.IPV4),
        (ipv6_null, linktypes.NULL),
    ]
    for frame, link_type in cases:
        pkt, codes = decode(frame, link_type)
        assert codes == [], link_type
        assert pkt is not None and pkt.ip_proto == IPPROTO_UDP, link_type
    assert decode(sll, linktypes.LINUX_SLL)[0].src_mac == bytes.fromhex("001b1b000001")


def test_ipv4_fragments_any_order_reassemble() -> None:
    datagram = IP(src=CLIENT, dst=SERVER, id=77) / UDP(sport=1000, dport=7777) / Raw(bytes(range(256)) * 12)
    pieces = [bytes(Ether(dst=MAC) / f) for f in fragment(datagram, fragsize=1000)]
    assert len(pieces) == 4
    decoder = Decoder()
    results = [decode(p, decoder=decoder) for p in (pieces[3], pieces[0], pieces[2], pieces[1])]
    assert [r[0] is None for r in results] == [True, True, True, False]
    pkt = results[-1][0]
    assert pkt.payload == bytes(range(256)) * 12
    assert pkt.fragments == 4 and pkt.wire_len == sum(len(p) for p in pieces)
    assert all(r[1] == [] for r in results)


def test_ipv6_fragments_reassemble() -> None:
    payload = b"k" * 3000
    base = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=5)
    udp = bytes(UDP(sport=1, dport=7777, len=8 + len(payload)) / Raw(payload))
    first = bytes(
        Ether(dst=MAC)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=5, offset=0, m=1, nh=17)
        / Raw(udp[:1504])
    )
    second = bytes(Ether(dst=MAC) / base.copy() / Raw(udp[1504:]))
    second_pkt = Ether(second)
    second_pkt[IPv6ExtHdrFragment].offset = 1504 // 8
    second_pkt[IPv6ExtHdrFragment].m = 0
    second_pkt[IPv6ExtHdrFragment].nh = 17
    decoder = Decoder()
    assert decode(first, decoder=decoder)[0] is None
    pkt, codes = decode(bytes(second_pkt), decoder=decoder)
    assert codes == [] and pkt.payload == payload and pkt.dport == 7777


def test_fragment_overlap_with_different_bytes_is_reported() -> None:
    def frag(offset: int, more: bool, data: bytes) -> bytes:
        return bytes(
            Ether(dst=MAC)
            / IP(src=CLIENT, dst=SERVER, id=9, proto=17, frag=offset // 8, flags="MF" if more else 0)
            / Raw(data)
        )

    udp_header = struct.pack("!HHHH", 1, 7777, 8 + 24, 0)
    decoder = Decoder()
    decode(frag(0, True, udp_header + b"A" * 16), decoder=decoder)
    pkt, codes = decode(frag(16, False, b"B" * 16), decoder=decoder)  # overlaps bytes 16..24
    assert "ip.fragment_overlap" in codes
    assert pkt.payload == b"A" * 16 + b"B" * 8  # first-arrived bytes win


def test_incomplete_fragments_reported_at_flush_and_timeout() -> None:
    decoder = Decoder(fragment_timeout=5.0)
    first = bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER, id=1, proto=17, flags="MF") / Raw(b"x" * 16))
    assert decoder.decode(1, 1.0, 1, first, len(first)) is None
    other = bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER, id=2, proto=17, flags="MF") / Raw(b"x" * 16))
    decoder.decode(2, 10.0, 1, other, len(other))  # 9 s later: id 1 timed out
    assert [a.code for a in decoder.anomalies] == ["ip.fragment_incomplete"]
    decoder.flush()
    assert [a.code for a in decoder.anomalies] == ["ip.fragment_incomplete"] * 2


def test_snaplen_cut_is_not_an_anomaly() -> None:
    frame = bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER) / TCP() / Raw(b"z" * 500))
    pkt, codes = decode(frame[:96], wire_len=len(frame))
    assert codes == [] and pkt.truncated and len(pkt.payload) == 96 - 54


def test_malformed_headers_become_anomalies() -> None:
    good_ip = IP(src=CLIENT, dst=SERVER)
    tcp_short = bytes(Ether(dst=MAC) / good_ip / TCP())[: 14 + 20 + 12]
    fix = bytearray(tcp_short)
    fix[16:18] = struct.pack("!H", 32)  # IP total length matches the 12-byte TCP stub
    bad_ihl = bytearray(bytes(Ether(dst=MAC) / good_ip / UDP()))
    bad_ihl[14] = 0x44
    bad_version = bytearray(bytes(Ether(dst=MAC) / good_ip / UDP()))
    bad_version[14] = 0x55
    tcp_offset = bytearray(bytes(Ether(dst=MAC) / good_ip / TCP()))
    tcp_offset[14 + 20 + 12] = 0x30
    udp_small = bytearray(bytes(Ether(dst=MAC) / good_ip / UDP()))
    udp_small[14 + 20 + 4 : 14 + 20 + 6] = struct.pack("!H", 4)
    udp_big = bytearray(bytes(Ether(dst=MAC) / good_ip / UDP() / Raw(b"abcd")))
    udp_big[14 + 20 + 4 : 14 + 20 + 6] = struct.pack("!H", 400)
    ip_long = bytearray(bytes(Ether(dst=MAC) / good_ip / UDP()))
    ip_long[16:18] = struct.pack("!H", 900)
    hop_long = bytearray(
        bytes(Ether(dst=MAC) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP())
    )
    hop_long[14 + 40 + 1] = 200  # hop-by-hop length far past the packet
    arp_bad = bytearray(bytes(Ether(dst=MAC) / ARP()))
    arp_bad[14 + 4] = 8  # hardware address length 8
    icmp_short = bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER, proto=1) / Raw(b"\x08\x00"))
    cases = {
        "link.truncated": b"\x00" * 10,
        "vlan.truncated": bytes(Ether(type=0x8100)) + b"\x00\x0a",
        "ipv4.bad_header_length": bytes(bad_ihl),
        "ipv4.bad_version": bytes(bad_version),
        "ipv4.truncated": bytes(ip_long),
        "tcp.truncated": bytes(fix),
        "tcp.bad_header_length": bytes(tcp_offset),
        "udp.bad_length": bytes(udp_small),
        "udp.length_mismatch": bytes(udp_big),
        "ipv6.ext_header_truncated": bytes(hop_long),
        "arp.bad_address_length": bytes(arp_bad),
        "icmp.truncated": icmp_short,
    }
    for code, frame in cases.items():
        assert code in CATALOGUE
        _pkt, codes = decode(frame)
        assert codes == [code], (code, codes)


def test_unknown_link_type_reported_once() -> None:
    decoder = Decoder()
    assert decoder.decode(1, 0.0, 147, b"abc", 3) is None
    assert decoder.decode(2, 0.0, 147, b"abc", 3) is None
    assert [a.code for a in decoder.anomalies] == ["link.unsupported"]


LINK_TYPES = [
    linktypes.EN10MB,
    linktypes.RAW,
    linktypes.LINUX_SLL,
    linktypes.LINUX_SLL2,
    linktypes.NULL,
    linktypes.LOOP,
    linktypes.IPV6,
]


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(LINK_TYPES), st.binary(max_size=200))
def test_random_bytes_never_raise(link_type: int, data: bytes) -> None:
    decoder = Decoder()
    decoder.decode(1, 0.0, link_type, data, len(data))
    for anomaly in decoder.anomalies:
        assert anomaly.code in CATALOGUE


MUTATION_BASES = [
    bytes(Ether(dst=MAC) / Dot1Q(vlan=3) / IP(src=CLIENT, dst=SERVER) / TCP(flags="S") / Raw(b"x" * 10)),
    bytes(
        Ether(dst=MAC) / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrHopByHop() / UDP() / Raw(b"y")
    ),
    bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER, flags="MF", id=3) / UDP() / Raw(b"f" * 30)),
    bytes(Ether(dst=MAC) / ARP(pdst=SERVER, hwdst=MAC)),
]


@settings(max_examples=600, deadline=None)
@given(st.integers(min_value=0, max_value=80), st.integers(min_value=0, max_value=255), st.data())
def test_mutated_real_headers_never_raise(position: int, value: int, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(MUTATION_BASES))
    mutated = bytearray(base)
    mutated[position % len(mutated)] = value
    cut = data.draw(st.integers(min_value=0, max_value=len(mutated)))
    decoder = Decoder()
    decoder.decode(1, 0.0, linktypes.EN10MB, bytes(mutated[:cut]), len(mutated))
    decoder.flush()
    assert all(a.code in CATALOGUE for a in decoder.anomalies)


def _fields(pkt: object) -> dict[str, object] | None:
    """Every attribute of a packet (its ARP part as a dict too), to compare two decodes."""
    if pkt is None:
        return None
    fields = {name: getattr(pkt, name) for name in _attributes(pkt)}
    arp = fields.get("arp")
    if arp is not None:
        fields["arp"] = {name: getattr(arp, name) for name in _attributes(arp)}
    return fields


def _attributes(obj: object) -> tuple[str, ...]:
    # A slotted class in pure Python; compiled by mypyc (make compiled), a native class that lists
    # its attributes in __mypyc_attrs__ instead.
    cls = type(obj)
    names: tuple[str, ...] = getattr(cls, "__slots__", None) or cls.__mypyc_attrs__  # type: ignore[attr-defined]
    assert len(names) > 4, cls
    return names


def _decoded(fast_path: bool, frame: bytes, wire_len: int) -> tuple[object, list[tuple[str, str]]]:
    decoder = Decoder(fast_path=fast_path)
    pkt = decoder.decode(1, 0.0, linktypes.EN10MB, frame, wire_len)
    return _fields(pkt), [(a.code, a.detail) for a in decoder.anomalies]


@settings(max_examples=1500, deadline=None)
@given(
    st.integers(min_value=0, max_value=80),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=80),
    st.data(),
)
def test_ethernet_ipv4_tcp_fast_path_equals_the_general_path(
    position: int, value: int, tail: int, data: st.DataObject
) -> None:
    """The one-unpack path gives exactly the packet (and anomalies) the header-by-header path gives.

    Mutations hit every byte of the three headers (IHL, total length, flags and fragment offset,
    protocol, data offset ...), the frame is cut or padded, so both the accepted shapes and every
    shape the fast path must hand over are compared.
    """
    base = data.draw(
        st.sampled_from(
            [
                bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=502, flags="PA")
                      / Raw(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x0a")),
                bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER) / TCP(sport=40000, dport=502, flags="S",
                      options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])),
                bytes(Ether(dst=MAC) / IP(src=CLIENT, dst=SERVER, flags="DF") / TCP(dport=102, flags="A")),
            ]
        )
    )  # fmt: skip
    frame = bytearray(base)
    frame[position % len(frame)] = value
    frame = frame[: max(0, len(frame) - tail)] if data.draw(st.booleans()) else frame + b"\x00" * tail
    wire_len = len(frame) + data.draw(st.sampled_from([0, 0, 20]))
    assert _decoded(True, bytes(frame), wire_len) == _decoded(False, bytes(frame), wire_len)


def test_fast_path_on_every_repository_capture() -> None:
    from ics_monitor.capture import open_captures
    from tests.conftest import PCAPS

    compared = 0
    for path in sorted(PCAPS.rglob("*.pcap*")):
        try:
            frames = list(open_captures([str(path)]))
        except CaptureError:  # the corrupt-capture fixtures: not this test's subject
            continue
        fast, general = Decoder(), Decoder(fast_path=False)
        for number, (ts, link_type, frame, wire_len) in enumerate(frames, 1):
            a, b = (
                fast.decode(number, ts, link_type, frame, wire_len),
                general.decode(number, ts, link_type, frame, wire_len),
            )
            assert _fields(a) == _fields(b), (path, number)
            compared += 1
        assert [x.code for x in fast.anomalies] == [x.code for x in general.anomalies], path
    assert compared > 5_000  # every frame of every capture in pcaps/


def _hsr_frame(vlan: int | None = None) -> bytes:
    """A Modbus request on an HSR ring (IEC 62439-3): tag 0x892F, path 0 + LSDU size, sequence 513."""
    inner = bytes(
        IP(src=CLIENT, dst=SERVER)
        / TCP(sport=40000, dport=502, flags="PA")
        / Raw(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x02")
    )
    macs = bytes.fromhex("0080f4000002") + bytes.fromhex("001b1b000001")
    tag = struct.pack("!HHHH", 0x892F, len(inner) + 6, 513, 0x0800)
    dot1q = struct.pack("!HH", 0x8100, 30) if vlan is not None else b""
    return macs + dot1q + tag + inner


def test_hsr_tagged_frames_carry_their_ip_packet() -> None:
    pkt, codes = decode(_hsr_frame())
    assert codes == []
    assert pkt is not None and (pkt.sport, pkt.dport, pkt.vlan) == (40000, 502, ())
    assert pkt.payload.endswith(b"\x01\x03\x00\x00\x00\x02")
    pkt, codes = decode(_hsr_frame(vlan=30))
    assert codes == [] and pkt is not None and pkt.vlan == (30,) and pkt.dport == 502


def test_a_cut_hsr_tag_is_reported() -> None:
    pkt, codes = decode(_hsr_frame()[:16])
    assert pkt is None and codes == ["hsr.truncated"]
