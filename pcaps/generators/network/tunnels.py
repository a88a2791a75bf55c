"""Tunnelled and remotely mirrored traffic: real-stack sessions as ERSPAN, GRE, VXLAN, Geneve and IP in IP
deliver them.

A sensor is often not on the SPAN port itself: a switch sends its mirror session over the network
(Cisco/Arista ERSPAN in GRE), a virtual switch or a cloud (AWS VPC Traffic Mirroring, Azure vTAP)
sends VXLAN, an overlay carries Geneve.  This kernel has none of those tunnel drivers, so the
encapsulation is done here with scapy's own layers (an encoder independent of the decoder under
test) around frames the real stacks produced, taken from this repository's captures.

* ``network/tunnels.pcap``: one short session per encapsulation, each on its own inner addresses
  (``10.<n>.0.10`` client, ``10.<n>.0.20`` server), one after the other in time, then what must
  not be opened or must be reported.  The layout is in ``SESSIONS`` and ``main``.
* ``network/erspan_plant_attack.pcap``: the demo's attack phase (``demo/plant_attack.pcap``) as an
  ERSPAN type II session from an access switch to the sensor: learning on the plain normal phase
  and replaying this must raise what the plain attack phase raises.

usage: tunnels.py   (from anywhere; writes into pcaps/network/ and updates pcaps/MANIFEST)
"""

from __future__ import annotations

import sys
from pathlib import Path

from scapy.all import GRE, IP, UDP, Ether, IPv6, Raw, rdpcap, wrpcap  # type: ignore[import-untyped]
from scapy.contrib.erspan import (  # type: ignore[import-untyped]
    ERSPAN_II,
    ERSPAN_III,
    ERSPAN_PlatformSpecific,
)
from scapy.contrib.geneve import GENEVE  # type: ignore[import-untyped]
from scapy.layers.vxlan import VXLAN  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import manifest

PCAPS = manifest.PCAPS
OUT = PCAPS / "network"
SENSOR_MAC = "02:5e:00:00:00:fe"
SWITCH_MAC = "02:5e:00:00:00:01"
SWITCH_IP = "172.16.0.2"
SENSOR_IP = "172.16.0.100"
VTEP_A, VTEP_B = "172.16.1.1", "172.16.1.2"
# Start of the tunnels capture and the gap between its sessions (seconds).
START = 1_796_000_000.0
GAP = 30.0

# (n, source capture, server port, encapsulation, description).  n numbers the inner addresses.
SESSIONS = [
    (
        1,
        "modbus/pymodbus_all_functions.pcap",
        502,
        "erspan2",
        "ERSPAN type II session 100 (GRE with sequence numbers), original VLAN 10 given in the header for untagged frames",
    ),
    (
        2,
        "s7comm/snap7_control.pcap",
        102,
        "erspan3",
        "ERSPAN type III session 200 with the platform-specific subheader (O bit)",
    ),
    (
        3,
        "dnp3/opendnp3_session.pcap",
        20000,
        "gretap",
        "GRE transparent Ethernet bridging with key 7 and a checksum",
    ),
    (
        4,
        "modbus/pymodbus_polling.pcap",
        502,
        "vxlan",
        "VXLAN VNI 5001 between two VTEPs (UDP 4789, entropy source ports)",
    ),
    (5, "s7comm/snap7_session.pcap", 102, "geneve", "Geneve VNI 77 with one 8-byte option"),
    (
        6,
        "modbus/pymodbus_port5020.pcap",
        5020,
        "gre-ip",
        "GRE carrying IPv4 without an Ethernet header (a routed tunnel)",
    ),
    (7, "modbus/pymodbus_udp.pcap", 502, "ipip", "IPv4 in IPv4 (protocol 4)"),
    (8, "s7comm/snap7_blocks.pcap", 102, "vxlan-in-ipv6-gre", "VXLAN VNI 9 inside GRE over IPv6: two layers"),
    (
        9,
        "modbus/pymodbus_two_clients.pcap",
        502,
        "erspan1",
        "ERSPAN type I (GRE 0x88BE without a sequence number, no ERSPAN header)",
    ),
]


def _inner(frame: Ether, n: int, server_port: int) -> Ether:
    """A loopback frame of a real-stack capture moved to its own addresses (client/server by port)."""
    frame = frame.copy()
    ip = frame[IP]
    transport = ip.payload
    to_server = getattr(transport, "dport", None) == server_port
    client, server = f"10.{n}.0.10", f"10.{n}.0.20"
    client_mac, server_mac = f"02:00:00:{n:02x}:00:10", f"02:00:00:{n:02x}:00:20"
    ip.src, ip.dst = (client, server) if to_server else (server, client)
    frame.src, frame.dst = (client_mac, server_mac) if to_server else (server_mac, client_mac)
    del ip.chksum
    if hasattr(transport, "chksum"):
        del transport.chksum
    return Ether(bytes(frame))


def _wrap(kind: str, inner: Ether, index: int) -> object:
    """``inner`` as ``kind`` delivers it to the sensor."""
    outer = Ether(src=SWITCH_MAC, dst=SENSOR_MAC) / IP(src=SWITCH_IP, dst=SENSOR_IP)
    if kind == "erspan1":
        return outer / GRE(proto=0x88BE) / inner
    if kind == "erspan2":
        return (
            outer
            / GRE(proto=0x88BE, seqnum_present=1, sequence_number=index)
            / ERSPAN_II(session_id=100, vlan=10, en=0, index=3)
            / inner
        )
    if kind == "erspan3":
        return (
            outer
            / GRE(proto=0x22EB, seqnum_present=1, sequence_number=index)
            / ERSPAN_III(session_id=200, timestamp=index * 1000, ft=0, hw=5, o=1)
            / ERSPAN_PlatformSpecific(platf_id=3, info1=0x1234, info2=0x5678)
            / inner
        )
    if kind == "gretap":
        return outer / GRE(proto=0x6558, key_present=1, key=7, chksum_present=1) / inner
    if kind == "vxlan":
        # RFC 7348: the source port hashes the inner flow; each direction between its VTEPs.
        forward = inner[IP].dst.endswith(".20")
        src, dst = (VTEP_A, VTEP_B) if forward else (VTEP_B, VTEP_A)
        return (
            Ether(src=SWITCH_MAC, dst=SENSOR_MAC)
            / IP(src=src, dst=dst)
            / UDP(sport=49321 if forward else 53777, dport=4789)
            / VXLAN(vni=5001)
            / inner
        )
    if kind == "geneve":
        option = bytes.fromhex("0103 0101 00000001")  # class 0x0103, type 1, length 1 word, value
        return (
            outer
            / UDP(sport=50000, dport=6081)
            / GENEVE(vni=77, proto=0x6558, optionlen=2)
            / Raw(option)
            / inner
        )
    if kind == "gre-ip":
        return outer / GRE(proto=0x0800) / inner[IP]
    if kind == "ipip":
        return outer / inner[IP]  # scapy sets the outer protocol to 4
    if kind == "vxlan-in-ipv6-gre":
        vxlan = IP(src=VTEP_A, dst=VTEP_B) / UDP(sport=51000, dport=4789) / VXLAN(vni=9) / inner
        return (
            Ether(src=SWITCH_MAC, dst=SENSOR_MAC)
            / IPv6(src="2001:db8::2", dst="2001:db8::100")
            / GRE(proto=0x0800)
            / vxlan
        )
    raise ValueError(kind)


def _edge_cases(at: float) -> list[object]:
    """What must stay a flow of its own, or be reported, after the sessions."""
    outer = Ether(src=SWITCH_MAC, dst=SENSOR_MAC) / IP(src=SWITCH_IP, dst=SENSOR_IP)
    sample = _inner(rdpcap(str(PCAPS / "modbus/pymodbus_polling.pcap"))[3], 10, 502)
    frames = [
        # UDP 4789 without the VXLAN I flag: another protocol on the port, a UDP flow.
        Ether(src=SWITCH_MAC, dst=SENSOR_MAC)
        / IP(src="172.16.2.1", dst="172.16.2.2")
        / UDP(sport=40000, dport=4789)
        / Raw(b"\x00" * 8 + bytes(sample)),
        # PPTP's enhanced GRE (version 1): not opened, a GRE flow.
        outer
        / GRE(version=1, proto=0x880B, key_present=1, key=0x00040001)
        / Raw(b"\xff\x03\x00\x21" + bytes(sample[IP])),
        # ERSPAN II header cut short: erspan.truncated.
        outer / GRE(proto=0x88BE, seqnum_present=1, sequence_number=1) / Raw(b"\x10\x0a"),
        # ERSPAN III with the version of type II: erspan.bad_version.
        outer
        / GRE(proto=0x22EB, seqnum_present=1, sequence_number=2)
        / ERSPAN_III(ver=1, session_id=300)
        / sample,
        # GRE with the key flag set and no room for the key: gre.truncated.
        Ether(src=SWITCH_MAC, dst=SENSOR_MAC)
        / IP(src=SWITCH_IP, dst=SENSOR_IP, proto=47)
        / Raw(b"\x20\x00\x65\x58"),
        # Five nested IP-in-IP layers (six IPv4 headers): tunnel.too_deep.
        outer
        / IP(src="172.16.3.1", dst="172.16.3.2")
        / IP(src="172.16.3.1", dst="172.16.3.2")
        / IP(src="172.16.3.1", dst="172.16.3.2")
        / IP(src="172.16.3.1", dst="172.16.3.2")
        / sample[IP],
    ]
    for offset, frame in enumerate(frames):
        frame.time = at + offset
    return frames


def tunnels() -> tuple[Path, str]:
    frames: list[object] = []
    at = START
    for n, source, port, kind, _text in SESSIONS:
        packets = rdpcap(str(PCAPS / source))
        first = float(packets[0].time)
        for index, packet in enumerate(packets):
            wrapped = _wrap(kind, _inner(packet, n, port), index + 1)
            wrapped.time = at + float(packet.time) - first
            frames.append(wrapped)
        at = float(frames[-1].time) + GAP
    frames.extend(_edge_cases(at))
    path = OUT / "tunnels.pcap"
    wrpcap(str(path), frames, linktype=1)
    sessions = "; ".join(
        f"{n}: {source} as {text} (inner 10.{n}.0.10 -> 10.{n}.0.20:{port})"
        for n, source, port, _k, text in SESSIONS
    )
    text = (
        "real-stack sessions of this repository's captures, each on its own inner addresses, encapsulated "
        f"with scapy's layers from switch {SWITCH_IP} (or VTEPs {VTEP_A}/{VTEP_B}) to sensor {SENSOR_IP}, "
        f"one after the other: {sessions}; then edge cases one frame each: UDP 4789 without the VXLAN I "
        "flag, PPTP enhanced GRE (version 1), an ERSPAN II header cut to 2 bytes, ERSPAN III with version "
        "1, GRE whose key is missing, five nested IPv4-in-IPv4 layers"
    )
    return path, text


def erspan_plant_attack() -> tuple[Path, str]:
    packets = rdpcap(str(PCAPS / "demo/plant_attack.pcap"))
    frames = []
    for index, packet in enumerate(packets):
        wrapped = (
            Ether(src=SWITCH_MAC, dst=SENSOR_MAC)
            / IP(src=SWITCH_IP, dst=SENSOR_IP, id=index & 0xFFFF)
            / GRE(proto=0x88BE, seqnum_present=1, sequence_number=index + 1)
            / ERSPAN_II(session_id=1, index=7)
            / packet
        )
        wrapped.time = packet.time
        frames.append(wrapped)
    path = OUT / "erspan_plant_attack.pcap"
    wrpcap(str(path), frames, linktype=1)
    text = (
        "demo/plant_attack.pcap frame by frame as ERSPAN type II session 1 (GRE with sequence numbers) from "
        f"access switch {SWITCH_IP} to sensor {SENSOR_IP}: a remote SPAN of the demo's attack phase"
    )
    return path, text


def main() -> None:
    entries = {}
    for path, text in (tunnels(), erspan_plant_attack()):
        print(f"{manifest.sha256_of(path)}\t{path.name}")
        entries[str(path.relative_to(PCAPS))] = text
    manifest.update("generators/network/tunnels.py", entries)


if __name__ == "__main__":
    main()
