"""Tunnels the decoder opens (ERSPAN, GRE, VXLAN, Geneve, IP in IP): the inner packet takes the outer
one's place, and what is not a tunnel after all stays as it was.

Frames are built with scapy's layers (an encoder other than the decoder under test); the captures
in ``pcaps/network`` wrap real-stack sessions of this repository, and a session read through its
tunnel must give exactly the records the plain capture gives.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from ics_monitor.core import linktypes
from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.decode import Decoder
from ics_monitor.shard import BROADCAST, frame_shard, packet_shard
from tests.conformance.test_modbus_tshark import run_ours
from tests.conftest import PCAPS

OUTER = Ether(src="02:5e:00:00:00:01", dst="02:5e:00:00:00:fe") / IP(src="172.16.0.2", dst="172.16.0.100")
INNER = (
    Ether(src="00:1b:1b:00:00:01", dst="00:80:f4:00:00:02")
    / IP(src="192.0.2.10", dst="192.0.2.20")
    / TCP(sport=40000, dport=502, flags="PA", seq=7)
    / Raw(b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x02")
)


def decode(frame: Any, link_type: int = linktypes.EN10MB) -> tuple[Any, list[str]]:
    decoder = Decoder()
    data = bytes(frame)
    pkt = decoder.decode(1, 1.0, link_type, data, len(data))
    return pkt, [anomaly.code for anomaly in decoder.anomalies]


def assert_inner(pkt: Any, *, macs: bool = True) -> None:
    assert pkt is not None
    assert (pkt.ip_version, pkt.ip_proto, pkt.sport, pkt.dport, pkt.seq) == (4, 6, 40000, 502, 7)
    assert pkt.src_ip == bytes([192, 0, 2, 10]) and pkt.dst_ip == bytes([192, 0, 2, 20])
    assert pkt.payload == b"\x00\x01\x00\x00\x00\x06\x01\x03\x00\x00\x00\x02"
    if macs:
        assert pkt.src_mac == bytes.fromhex("001b1b000001") and pkt.dst_mac == bytes.fromhex("0080f4000002")
    else:
        assert pkt.src_mac is None and pkt.dst_mac is None


SWITCH, SENSOR = bytes([172, 16, 0, 2]), bytes([172, 16, 0, 100])


@pytest.mark.parametrize(
    ("frame", "layer", "vlan"),
    [
        (OUTER / GRE(proto=0x88BE) / INNER, ("erspan1", -1), ()),
        (
            OUTER
            / GRE(proto=0x88BE, seqnum_present=1, sequence_number=9)
            / ERSPAN_II(session_id=1023, vlan=300)
            / INNER,
            ("erspan2", 1023),
            (300,),
        ),
        (
            OUTER / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=5, vlan=12) / INNER,
            ("erspan3", 5),
            (12,),
        ),
        (
            OUTER
            / GRE(proto=0x22EB, seqnum_present=1)
            / ERSPAN_III(session_id=6, o=1)
            / ERSPAN_PlatformSpecific(platf_id=3, info1=1, info2=2)
            / INNER,
            ("erspan3", 6),
            (),
        ),
        (
            OUTER
            / GRE(proto=0x6558, chksum_present=1, key_present=1, key=0xDEADBEEF, seqnum_present=1)
            / INNER,
            ("gre", 0xDEADBEEF),
            (),
        ),
        (OUTER / UDP(sport=50000, dport=4789) / VXLAN(vni=0xABCDEF) / INNER, ("vxlan", 0xABCDEF), ()),
        (OUTER / UDP(sport=50000, dport=8472) / VXLAN(vni=3) / INNER, ("vxlan", 3), ()),
        (
            OUTER
            / UDP(sport=50000, dport=6081)
            / GENEVE(vni=77, proto=0x6558, optionlen=1)
            / Raw(b"\x01\x02\x03\x00")
            / INNER,
            ("geneve", 77),
            (),
        ),
    ],
    ids=[
        "erspan1",
        "erspan2",
        "erspan3",
        "erspan3-platform",
        "gretap-all-flags",
        "vxlan",
        "vxlan-8472",
        "geneve",
    ],
)
def test_ethernet_tunnels_give_the_inner_frame(
    frame: Any, layer: tuple[str, int], vlan: tuple[int, ...]
) -> None:
    pkt, codes = decode(frame)
    assert codes == []
    assert_inner(pkt)
    assert pkt.vlan == vlan
    assert pkt.tunnel == ((*layer, 4, SWITCH, SENSOR),)
    assert pkt.wire_len == len(bytes(frame))  # the flow counts what crossed the wire


def test_an_inner_vlan_tag_wins_over_the_erspan_header() -> None:
    inner = Ether(bytes(INNER)[:12] + b"\x81\x00" + bytes(Dot1Q(vlan=20, type=0x0800)) + bytes(INNER)[14:])
    frame = OUTER / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=1, vlan=300) / inner
    pkt, _codes = decode(frame)
    assert_inner(pkt)
    assert pkt.vlan == (20,)


@pytest.mark.parametrize(
    ("frame", "layer"),
    [
        (OUTER / GRE(proto=0x0800) / INNER[IP], ("gre", -1)),
        (OUTER / INNER[IP], ("ip-in-ip", -1)),
        (
            OUTER / GRE(proto=0x22EB, seqnum_present=1) / ERSPAN_III(session_id=4, ft=2) / INNER[IP],
            ("erspan3", 4),
        ),
        (
            OUTER / UDP(dport=6081) / GENEVE(vni=1, proto=0x0800) / INNER[IP],
            ("geneve", 1),
        ),
    ],
    ids=["gre-ipv4", "ipip", "erspan3-ip-frame-type", "geneve-ipv4"],
)
def test_ip_tunnels_give_the_inner_packet_without_macs(frame: Any, layer: tuple[str, int]) -> None:
    pkt, codes = decode(frame)
    assert codes == []
    assert_inner(pkt, macs=False)
    assert pkt.vlan == ()
    assert pkt.tunnel == ((*layer, 4, SWITCH, SENSOR),)


def test_nested_tunnels_are_recorded_outermost_first() -> None:
    vxlan = IP(src="172.16.1.1", dst="172.16.1.2") / UDP(dport=4789) / VXLAN(vni=9) / INNER
    frame = Ether() / IPv6(src="2001:db8::2", dst="2001:db8::100") / GRE(proto=0x0800) / vxlan
    pkt, codes = decode(frame)
    assert codes == []
    assert_inner(pkt)
    assert [(kind, ident, version) for kind, ident, version, _s, _d in pkt.tunnel] == [
        ("gre", -1, 6),
        ("vxlan", 9, 4),
    ]
    assert pkt.tunnel[1][3:] == (bytes([172, 16, 1, 1]), bytes([172, 16, 1, 2]))


def test_arp_inside_a_mirror_session_is_the_mirrored_arp() -> None:
    arp = Ether(src="00:1b:1b:00:00:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc="00:1b:1b:00:00:01", psrc="192.0.2.10", pdst="192.0.2.20"
    )
    pkt, codes = decode(OUTER / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=2) / arp)
    assert codes == []
    assert pkt is not None and pkt.arp is not None
    assert pkt.arp.sender_ip == bytes([192, 0, 2, 10]) and pkt.src_mac == bytes.fromhex("001b1b000001")
    assert pkt.tunnel[0][0] == "erspan2"


@pytest.mark.parametrize(
    "frame",
    [
        OUTER / UDP(sport=50000, dport=4789) / Raw(b"\x00" * 8 + bytes(INNER)),  # no I flag
        OUTER
        / UDP(sport=50000, dport=4789)
        / Raw(b"\x08" + b"\x00" * 7 + b"\x00" * 12 + b"\x12\x34"),  # EtherType
        OUTER / UDP(sport=4789, dport=40000) / VXLAN(vni=1) / INNER,  # the port is the source's
        OUTER / UDP(dport=6081) / Raw(b"\x40\x00\x65\x58" + b"\x00" * 4) / INNER,  # Geneve version 1
        OUTER / UDP(dport=6081) / Raw(b"\x00\x01\x65\x58" + b"\x00" * 4) / INNER,  # reserved bits set
        OUTER
        / GRE(version=1, proto=0x880B, key_present=1, key=1)
        / Raw(b"\xff\x03\x00\x21")
        / INNER[IP],  # PPTP
        OUTER / GRE(routing_present=1, proto=0x0800) / Raw(b"\x00" * 4) / INNER[IP],  # RFC 1701 routing
        OUTER / GRE(proto=0x8847) / Raw(b"\x00\x01\x01\x40") / INNER[IP],  # MPLS in GRE: not opened
        Ether()
        / IP(src="172.16.0.2", dst="172.16.0.100", proto=4)
        / INNER[IP].payload,  # IPIP, not IPv4 inside
    ],
    ids=[
        "vxlan-no-i-flag",
        "vxlan-odd-ethertype",
        "vxlan-source-port",
        "geneve-v1",
        "geneve-reserved",
        "pptp",
        "gre-routing",
        "gre-mpls",
        "ipip-not-ip",
    ],
)
def test_what_is_not_opened_stays_the_outer_packet(frame: Any) -> None:
    pkt, codes = decode(frame)
    assert codes == []
    assert pkt is not None
    assert pkt.tunnel == ()
    assert (pkt.src_ip, pkt.dst_ip) == (SWITCH, SENSOR)
    assert pkt.payload  # kept whole for the flow's payload count


@pytest.mark.parametrize(
    ("payload", "proto", "code"),
    [
        (b"\x10\x00\x88\xbe\x00\x00\x00\x01\x10\x0a", 47, "erspan.truncated"),
        (b"\x10\x00\x22\xeb\x00\x00\x00\x01" + bytes(8), 47, "erspan.truncated"),
        (b"\x10\x00\x22\xeb\x00\x00\x00\x01" + b"\x10" + bytes(11) + bytes(INNER), 47, "erspan.bad_version"),
        (b"\x10\x00\x88\xbe\x00\x00\x00\x01" + b"\x20" + bytes(7) + bytes(INNER), 47, "erspan.bad_version"),
        (b"\x20\x00\x65\x58", 47, "gre.truncated"),
        (b"\x90\x00\x65\x58", 47, "gre.truncated"),
        (b"\x80", 47, "gre.truncated"),
    ],
    ids=[
        "erspan2-short",
        "erspan3-short",
        "erspan3-version",
        "erspan2-version",
        "gre-no-key",
        "gre-no-seq",
        "gre-1-byte",
    ],
)
def test_broken_tunnel_headers_are_reported_and_the_outer_packet_kept(
    payload: bytes, proto: int, code: str
) -> None:
    pkt, codes = decode(Ether() / IP(src="172.16.0.2", dst="172.16.0.100", proto=proto) / Raw(payload))
    assert codes == [code]
    assert pkt is not None and pkt.tunnel == () and pkt.ip_proto == proto


def test_erspan3_platform_subheader_cut_short_is_reported() -> None:
    header = bytes(ERSPAN_III(session_id=1, o=1))
    pkt, codes = decode(OUTER / GRE(proto=0x22EB, seqnum_present=1) / Raw(header + b"\x00\x00\x00"))
    assert codes == ["erspan.truncated"] and pkt is not None and pkt.tunnel == ()


def test_geneve_options_past_the_datagram_are_reported() -> None:
    pkt, codes = decode(OUTER / UDP(dport=6081) / Raw(b"\x05\x00\x65\x58\x00\x00\x01\x00" + bytes(8)))
    assert codes == ["geneve.truncated"] and pkt is not None and pkt.tunnel == ()


def test_tunnels_nested_deeper_than_the_cap_are_reported_and_dropped() -> None:
    frame: Any = INNER[IP]
    for _ in range(5):
        frame = IP(src="172.16.3.1", dst="172.16.3.2") / frame
    pkt, codes = decode(Ether() / frame)
    assert pkt is None and codes == ["tunnel.too_deep"]
    frame = INNER[IP]
    for _ in range(4):
        frame = IP(src="172.16.3.1", dst="172.16.3.2") / frame
    pkt, codes = decode(Ether() / frame)
    assert codes == [] and pkt is not None and len(pkt.tunnel) == 4
    assert_inner(pkt, macs=False)


def test_a_broken_inner_frame_is_reported_as_the_inner_layer() -> None:
    broken = bytes(INNER)[:14] + b"\x45\x00\x00"  # an IPv4 header of 3 bytes
    pkt, codes = decode(OUTER / UDP(dport=4789) / VXLAN(vni=1) / Raw(broken))
    assert pkt is None and codes == ["ipv4.truncated"]


def test_inner_fragments_are_reassembled_by_their_inner_addresses() -> None:
    decoder = Decoder()
    datagram = IP(src="192.0.2.10", dst="192.0.2.20", id=77) / UDP(sport=40000, dport=20000) / Raw(b"x" * 64)
    first, second = bytes(datagram)[:20], bytes(datagram)[20:]
    head = IP(bytes(first)[:6] + b"\x20\x00" + bytes(first)[8:])  # more fragments
    head.len = 20 + 40
    del head.chksum
    frag1 = IP(bytes(head)[:20]) / Raw(second[:40])
    tail = IP(src="192.0.2.10", dst="192.0.2.20", id=77, frag=5, proto=17) / Raw(second[40:])
    results = []
    for index, inner in enumerate((frag1, tail)):
        data = bytes(OUTER / GRE(proto=0x0800) / inner)
        results.append(decoder.decode(index + 1, 1.0 + index, linktypes.EN10MB, data, len(data)))
    assert results[0] is None
    pkt = results[1]
    assert pkt is not None and (pkt.sport, pkt.dport, pkt.fragments) == (40000, 20000, 2)
    assert pkt.payload == b"x" * 64 and pkt.tunnel[0][0] == "gre"
    assert decoder.anomalies == []


def test_frame_shard_leaves_tunnels_to_the_decoder() -> None:
    """Each direction of a VXLAN flow has its own outer addresses and source port: sharding by
    the outer header would split the inner flow over two workers."""
    forward = OUTER / UDP(sport=49321, dport=4789) / VXLAN(vni=1) / INNER
    for frame in (
        forward,
        Ether() / IPv6() / UDP(dport=4789) / VXLAN(vni=1) / INNER,
        OUTER / UDP(dport=6081) / GENEVE(proto=0x6558) / INNER,
        OUTER / GRE(proto=0x6558) / INNER,
        OUTER / INNER[IP],
        Ether() / IP(ihl=6, options=[b"\x01\x01\x01\x01"]) / GRE(proto=0x6558) / INNER,
        Ether() / IP(ihl=6, options=[b"\x01\x01\x01\x01"]) / UDP(dport=4789) / VXLAN() / INNER,
    ):
        assert frame_shard(linktypes.EN10MB, bytes(frame), 4) == BROADCAST, frame.summary()
    plain = OUTER / UDP(sport=49321, dport=4790) / Raw(b"x")
    assert frame_shard(linktypes.EN10MB, bytes(plain), 4) >= 0
    reply = INNER.copy()
    reply[Ether].src, reply[Ether].dst = INNER[Ether].dst, INNER[Ether].src
    reply[IP].src, reply[IP].dst = INNER[IP].dst, INNER[IP].src
    reply[TCP].sport, reply[TCP].dport = 502, 40000
    backward = (
        Ether() / IP(src="172.16.1.2", dst="172.16.1.1") / UDP(sport=53777, dport=4789) / VXLAN(vni=1) / reply
    )
    there, _ = decode(forward)
    back, _ = decode(backward)
    assert packet_shard(there, 4) == packet_shard(back, 4)


_TUNNEL_HEADERS = [
    bytes(OUTER / GRE(proto=0x88BE, seqnum_present=1) / ERSPAN_II(session_id=1)),
    bytes(
        OUTER
        / GRE(proto=0x22EB, seqnum_present=1)
        / ERSPAN_III(session_id=1, o=1)
        / ERSPAN_PlatformSpecific()
    ),
    bytes(OUTER / GRE(proto=0x6558, chksum_present=1, key_present=1, key=1)),
    bytes(OUTER / GRE(proto=0x0800)),
    bytes(OUTER / UDP(dport=4789) / VXLAN(vni=1)),
    bytes(OUTER / UDP(dport=6081) / GENEVE(proto=0x6558)),
    bytes(Ether() / IP(src="172.16.0.2", dst="172.16.0.100", proto=4)),
]


def _fix_lengths(frame: bytes) -> bytes:
    """Outer IPv4 total length (and UDP length) to the frame's end, so the inner bytes are reached."""
    packet = bytearray(frame)
    packet[16:18] = (len(frame) - 14).to_bytes(2, "big")
    if packet[23] == 17:
        packet[38:40] = (len(frame) - 34).to_bytes(2, "big")
    return bytes(packet)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_TUNNEL_HEADERS),
    st.binary(max_size=120),
    st.integers(min_value=0, max_value=200),
    st.data(),
)
def test_random_bytes_inside_tunnels_never_raise(
    header: bytes, inner: bytes, flip: int, data: st.DataObject
) -> None:
    """Any inner bytes, any byte of the tunnel header changed, any cut: a packet or None, catalogued anomalies."""
    frame = bytearray(_fix_lengths(header + inner))
    if flip < len(frame):
        frame[flip] = data.draw(st.integers(min_value=0, max_value=255))
    cut = data.draw(st.integers(min_value=0, max_value=len(frame)))
    decoder = Decoder()
    pkt = decoder.decode(1, 0.0, linktypes.EN10MB, bytes(frame[:cut]), len(frame))
    assert all(anomaly.code in CATALOGUE for anomaly in decoder.anomalies)
    if pkt is not None:
        assert len(pkt.tunnel) <= 4


# -- the repository's tunnel captures ------------------------------------------------------------

# (inner network number, plain capture) as pcaps/generators/network/tunnels.py wraps them.
SESSIONS = [
    (1, "modbus/pymodbus_all_functions.pcap"),
    (2, "s7comm/snap7_control.pcap"),
    (3, "dnp3/opendnp3_session.pcap"),
    (4, "modbus/pymodbus_polling.pcap"),
    (5, "s7comm/snap7_session.pcap"),
    (6, "modbus/pymodbus_port5020.pcap"),
    (7, "modbus/pymodbus_udp.pcap"),
    (8, "s7comm/snap7_blocks.pcap"),
    (9, "modbus/pymodbus_two_clients.pcap"),
]
# What differs between a session and its plain capture: where and when it sits in the file, and
# the addresses (hence the flow ids) the generator moved it to.
_PLACE = {"ts", "frame", "flow_id", "src_ip", "dst_ip", "detail"}


def _content(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in _PLACE and not k.endswith("_frame")}


@pytest.fixture(scope="module")
def tunnelled() -> list[dict[str, Any]]:
    return run_ours(PCAPS / "network" / "tunnels.pcap")


@pytest.mark.parametrize(("number", "plain"), SESSIONS, ids=[name for _n, name in SESSIONS])
def test_a_session_through_its_tunnel_gives_the_plain_capture_records(
    tunnelled: list[dict[str, Any]], number: int, plain: str
) -> None:
    prefix = f"10.{number}.0."
    mine = [
        _content(r)
        for r in tunnelled
        if r["event_type"] != "flow"
        and (str(r.get("src_ip")).startswith(prefix) or str(r.get("dst_ip")).startswith(prefix))
    ]
    expected = [_content(r) for r in run_ours(PCAPS / plain) if r["event_type"] != "flow"]
    assert len(expected) > 10
    assert mine == expected


def test_a_live_fanout_worker_reports_the_first_udp_tunnel_once() -> None:
    """The kernel's fanout hash looks at the outer header: a VXLAN or Geneve session is flagged."""
    decoder = Decoder()
    decoder.fanout_notice_due = True
    frames = [
        OUTER / GRE(proto=0x6558) / INNER,  # the kernel looks inside GRE: nothing to say
        OUTER / UDP(sport=49321, dport=4789) / VXLAN(vni=1) / INNER,
        OUTER / UDP(sport=50000, dport=6081) / GENEVE(proto=0x6558) / INNER,
    ]
    packets = [
        decoder.decode(n, 1.0, linktypes.EN10MB, bytes(f), len(bytes(f))) for n, f in enumerate(frames, 1)
    ]
    assert all(pkt is not None and pkt.dport == 502 for pkt in packets)
    (notice,) = decoder.anomalies
    assert (notice.code, notice.frame, notice.severity) == ("tunnel.fanout_blind", 2, "low")
    assert notice.detail.startswith("vxlan reached a live worker") and notice.dst_port == 4789
    replayed = Decoder()  # not a fanout member (replay, or live with one worker): silent
    replayed.decode(1, 1.0, linktypes.EN10MB, bytes(frames[1]), len(bytes(frames[1])))
    assert replayed.anomalies == []
