"""Crafted DNP3 captures (scapy): every anomaly the dissector knows, and objects no stack here sends.

* crafted_anomalies.pcap: one TCP session (master 1 -> outstation 10, port 20000, with handshake);
  a good READ/RESPONSE pair first, then one broken thing per segment, each followed by a good frame
  where resynchronisation matters: bad header CRC, bad data block CRC, link length 3, garbage
  between frames, an undefined link function, transport segments without FIR / out of sequence /
  abandoned, a fragment over the size cap, too many reassembly buffers, a 1-byte fragment, an
  undefined function code, object data past the end, qualifier 0x0A, a range 5-2, group 99, a count
  of 2^20, 4096 packed points (over the per-object cap, in a 3-frame fragment), 300 object headers,
  65 masters.
* crafted_objects.pcap: a READ g0v254 answered with device attributes (manufacturer, model,
  software and hardware version, serial number), a CTO g51v1 with relative-time events g2v3, a
  g120v1 secure-authentication challenge, an octet string g110v5, a g0v255 attribute list.
* crafted_assign_class.pcap: two ASSIGN_CLASS requests (function 22), each answered: binary inputs
  to class 2 (g60v3, g1v0 all: commissioning), then binary inputs 0-7 to class 0 (g60v1, g1v0
  range 0-7: their events no longer reported) and analog inputs to class 3 (g60v4, g30v0 all).

The CRC here is written out bit by bit on purpose: it must not share code with the dissector it
tests.  Timestamps are fixed, so the files are byte-for-byte reproducible.
Usage: ``.venv/bin/python pcaps/generators/dnp3/malformed.py`` from the repo root.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from scapy.all import IP, TCP, Ether, Raw, wrpcap

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "dnp3"
sys.path.insert(0, str(PCAPS / "generators"))

from manifest import update  # noqa: E402

MASTER, OUTSTATION = 1, 10
BASE_TIME = 1_700_000_000.0


def crc(data: bytes) -> bytes:
    value = 0
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA6BC if value & 1 else value >> 1
    return struct.pack("<H", ~value & 0xFFFF)


def link(control: int, dst: int, src: int, user: bytes = b"", length: int | None = None) -> bytes:
    """A link frame with correct CRCs (``length`` overrides the LEN field)."""
    header = b"\x05\x64" + bytes([5 + len(user) if length is None else length, control])
    header += struct.pack("<HH", dst, src)
    frame = header + crc(header)
    for start in range(0, len(user), 16):
        block = user[start : start + 16]
        frame += block + crc(block)
    return frame


def frames(app: bytes, dst: int, src: int, primary_dir: bool, sequence: int = 0) -> bytes:
    """An application fragment as unconfirmed user data frames (249 bytes per transport segment)."""
    control = (0x80 if primary_dir else 0) | 0x40 | 0x04
    chunks = [app[i : i + 249] for i in range(0, len(app), 249)] or [b""]
    out = b""
    for number, chunk in enumerate(chunks):
        transport = ((number + sequence) & 0x3F) | (0x40 if number == 0 else 0)
        transport |= 0x80 if number == len(chunks) - 1 else 0
        out += link(control, dst, src, bytes([transport]) + chunk)
    return out


def request(app: bytes, sequence: int = 0, src: int = MASTER) -> bytes:
    return frames(app, OUTSTATION, src, True, sequence)


def response(app: bytes, sequence: int = 0) -> bytes:
    return frames(app, MASTER, OUTSTATION, False, sequence)


def corrupt(frame: bytes, offset: int) -> bytes:
    return frame[:offset] + bytes([frame[offset] ^ 0xFF]) + frame[offset + 1 :]


class Session:
    """A TCP conversation client 10.0.0.1:40000 <-> server 10.0.0.2:20000 with a handshake."""

    def __init__(self) -> None:
        self.packets: list[object] = []
        self.seq = [1000, 5000]
        self.time = BASE_TIME
        self._add(0, "S", b"")
        self.seq[0] += 1
        self._add(1, "SA", b"")
        self.seq[1] += 1
        self._add(0, "A", b"")

    def _add(self, direction: int, flags: str, payload: bytes) -> None:
        client, server = ("10.0.0.1", 40000), ("10.0.0.2", 20000)
        (src, sport), (dst, dport) = (client, server) if direction == 0 else (server, client)
        mac = ("02:00:00:00:00:01", "02:00:00:00:00:02")
        packet = (
            Ether(src=mac[direction], dst=mac[1 - direction])
            / IP(src=src, dst=dst)
            / TCP(
                sport=sport,
                dport=dport,
                flags=flags,
                seq=self.seq[direction],
                ack=self.seq[1 - direction] if "A" in flags else 0,
                window=65535,
            )
        )
        if payload:
            packet = packet / Raw(payload)
        packet.time = self.time
        self.time += 0.01
        self.packets.append(packet)

    def send(self, direction: int, payload: bytes) -> None:
        for start in range(0, len(payload), 1400):
            chunk = payload[start : start + 1400]
            self._add(direction, "PA", chunk)
            self.seq[direction] += len(chunk)

    def close(self) -> None:
        self._add(0, "FA", b"")
        self.seq[0] += 1
        self._add(1, "FA", b"")
        self.seq[1] += 1
        self._add(0, "A", b"")


READ_CLASS0 = bytes([0xC0, 0x01, 60, 1, 0x06])
NULL_RESPONSE = bytes([0xC0, 0x81, 0x00, 0x00])


def anomalies() -> Session:
    s = Session()
    s.send(0, request(READ_CLASS0))
    s.send(1, response(NULL_RESPONSE))
    good = request(bytes([0xC1, 0x01, 60, 2, 0x06]))
    # Bad header CRC, then a good frame in the same segment: the good one must still be read.
    s.send(0, corrupt(good, 8) + good)
    # Bad data block CRC in a one-frame fragment (a WRITE of IIN bit 7).
    write = request(bytes([0xC2, 0x02, 80, 1, 0x00, 7, 7, 0x00]), 2)
    s.send(0, corrupt(write, len(write) - 1))
    # Link length 3 (below the minimum of 5) with a correct header CRC, then a good frame.
    s.send(0, link(0xC4, OUTSTATION, MASTER, length=3) + request(bytes([0xC3, 0x01, 60, 3, 0x06]), 3))
    # Garbage between frames.
    s.send(0, b"\x00\x11\x22\x33\x44" + request(bytes([0xC4, 0x01, 60, 4, 0x06]), 4))
    # Primary link function 7 is not defined.
    s.send(0, link(0xC7, OUTSTATION, MASTER))
    # Transport: a segment without FIR, out of sequence, and a fragment abandoned by a new FIR.
    s.send(0, link(0xC4, OUTSTATION, MASTER, bytes([0x85, 0xC5, 0x01, 60, 1, 0x06])))
    s.send(0, link(0xC4, OUTSTATION, MASTER, bytes([0x45, 0xC5, 0x01])))
    s.send(0, link(0xC4, OUTSTATION, MASTER, bytes([0x87, 60, 1, 0x06])))
    s.send(0, link(0xC4, OUTSTATION, MASTER, bytes([0x48, 0xC6, 0x01])))
    s.send(0, request(bytes([0xC6, 0x01, 60, 1, 0x06]), 9))
    # A fragment over the reassembly cap: 65 segments of 249 bytes.
    big = bytes([0xC7, 0x02]) + bytes(65 * 249)
    s.send(0, request(big, 10))
    # 65 reassembly buffers at once (one per source address), each a first segment only.
    s.send(0, b"".join(link(0xC4, OUTSTATION, 100 + n, bytes([0x40, 0xC8, 0x01])) for n in range(65)))
    # A one-byte application fragment and an undefined function code.
    s.send(0, request(bytes([0xC8]), 11))
    s.send(0, request(bytes([0xC9, 0x50]), 12))
    # Objects: data past the end, qualifier 0x0A, range 5-2, group 99, a count of 2^20.
    s.send(1, response(bytes([0xCA, 0x81, 0, 0, 30, 1, 0x00, 0, 9, 0x01, 0x10, 0, 0, 0]), 10))
    s.send(0, request(bytes([0xCB, 0x02, 30, 1, 0x0A, 0, 0]), 13))
    s.send(0, request(bytes([0xCC, 0x02, 1, 2, 0x00, 5, 2, 0x81]), 14))
    s.send(0, request(bytes([0xCD, 0x02, 99, 1, 0x00, 0, 0, 1, 2, 3]), 15))
    s.send(0, request(bytes([0xCE, 0x02, 30, 1, 0x09]) + struct.pack("<I", 1 << 20), 0))
    # 4096 packed binary inputs (over the 2048 recorded per object) in a 3-frame fragment.
    s.send(1, response(bytes([0xCF, 0x81, 0, 0, 1, 1, 0x01]) + struct.pack("<HH", 0, 4095) + bytes(512), 15))
    # 300 object headers in one READ.
    s.send(0, request(bytes([0xC1, 0x01]) + bytes([60, 1, 0x06]) * 300, 1))
    # 65 masters with a request pending each.
    s.send(0, b"".join(request(bytes([0xC2, 0x01, 60, 1, 0x06]), 2, src=200 + n) for n in range(65)))
    s.close()
    return s


def attribute(variation: int, data_type: int, value: bytes) -> bytes:
    return bytes([0, variation, 0x00, 0, 0, data_type, len(value)]) + value


def objects() -> Session:
    s = Session()
    s.send(0, request(bytes([0xC0, 0x01, 0, 254, 0x06])))
    attributes = (
        attribute(252, 1, b"ACME Grid Systems")
        + attribute(250, 1, b"RTU-5000")
        + attribute(242, 1, b"4.2.1")
        + attribute(243, 1, b"rev C")
        + attribute(248, 1, b"SN123456")
        + attribute(240, 2, struct.pack("<H", 2048))
    )
    s.send(1, response(bytes([0xC0, 0x81, 0x00, 0x00]) + attributes))
    # The attribute list (g0v255): pairs of (variation, properties).
    s.send(0, request(bytes([0xC1, 0x01, 0, 255, 0x06]), 1))
    s.send(1, response(bytes([0xC1, 0x81, 0, 0, 0, 255, 0x00, 0, 0, 254, 6, 252, 0, 250, 0, 242, 0]), 1))
    # Events with a common time of occurrence: g51v1 then g2v3 relative times (0 and 250 ms).
    cto = struct.pack("<IH", 1_700_000_000_000 & 0xFFFFFFFF, 1_700_000_000_000 >> 32)
    events = bytes([51, 1, 0x07, 1]) + cto + bytes([2, 3, 0x17, 2, 0, 0x81, 0, 0, 1, 0x01, 250, 0])
    s.send(0, request(bytes([0xC2, 0x01, 60, 2, 0x06]), 2))
    s.send(1, response(bytes([0xE2, 0x81, 0x02, 0x00]) + events, 2))
    s.send(0, request(bytes([0xC2, 0x00]), 2))
    # Secure authentication: the outstation challenges a critical request (g120v1, 0x5B).
    s.send(0, request(bytes([0xC3, 0x05, 12, 1, 0x28, 1, 0, 0, 0, 3, 1, 100, 0, 0, 0, 100, 0, 0, 0, 0]), 3))
    challenge = struct.pack("<IHBB", 7, 1, 4, 1) + bytes(range(16))
    s.send(
        1,
        response(
            bytes([0xC3, 0x83, 0, 0, 120, 1, 0x5B, 1]) + struct.pack("<H", len(challenge)) + challenge, 3
        ),
    )
    # An octet string of 5 bytes (g110v5).
    s.send(0, request(bytes([0xC4, 0x01, 110, 0, 0x06]), 4))
    s.send(1, response(bytes([0xC4, 0x81, 0, 0, 110, 5, 0x00, 0, 0]) + b"hello", 4))
    s.close()
    return s


def assign_class() -> Session:
    s = Session()
    # Binary inputs (all) to class 2.
    s.send(0, request(bytes([0xC0, 22, 60, 3, 0x06, 1, 0, 0x06])))
    s.send(1, response(NULL_RESPONSE))
    # Binary inputs 0-7 to class 0 (one-byte start-stop range), analog inputs (all) to class 3.
    s.send(0, request(bytes([0xC1, 22, 60, 1, 0x06, 1, 0, 0x00, 0, 7, 60, 4, 0x06, 30, 0, 0x06]), 1))
    s.send(1, response(bytes([0xC1, 0x81, 0x00, 0x00]), 1))
    s.close()
    return s


def main() -> None:
    OUT.mkdir(exist_ok=True)
    wrpcap(str(OUT / "crafted_anomalies.pcap"), anomalies().packets)
    wrpcap(str(OUT / "crafted_objects.pcap"), objects().packets)
    wrpcap(str(OUT / "crafted_assign_class.pcap"), assign_class().packets)
    update(
        "generators/dnp3/malformed.py",
        {
            "dnp3/crafted_anomalies.pcap": (
                "scapy-crafted DNP3/TCP 20000 session, one broken thing per segment: bad header CRC, "
                "bad data CRC, link length 3, garbage, link function 7, transport without FIR, out of "
                "sequence, abandoned fragment, fragment over the cap, 65 reassembly buffers, 1-byte "
                "fragment, function 0x50, object overrun, qualifier 0x0A, range 5-2, group 99, count "
                "2^20, 4096 packed points, 300 headers, 65 masters"
            ),
            "dnp3/crafted_objects.pcap": (
                "scapy-crafted DNP3/TCP 20000: device attributes g0 (manufacturer, model, versions, "
                "serial), g0v255 list, CTO g51v1 with g2v3 events and a confirm, g120v1 challenge "
                "(FC 131) to a direct operate, octet string g110v5"
            ),
            "dnp3/crafted_assign_class.pcap": (
                "scapy-crafted DNP3/TCP 20000: ASSIGN_CLASS binary inputs to class 2 (g60v3 g1v0 all), "
                "then binary inputs 0-7 to class 0 (g60v1 g1v0 0-7) and analog inputs to class 3 "
                "(g60v4 g30v0 all), each answered"
            ),
        },
    )


if __name__ == "__main__":
    main()
