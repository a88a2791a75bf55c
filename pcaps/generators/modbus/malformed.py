"""Crafted Modbus captures (scapy): what no stack here sends, broken input, and segmentation.

* crafted_anomalies.pcap: TCP 502 sessions, one broken thing per segment, each followed by good
  traffic that must still be read: protocol id 1 (skipped by its length), MBAP length 0 and 300
  (resynchronisation at the next segment), a PDU longer and one shorter than its function defines,
  byte count against quantity, quantities 0 and 126, an address range past 65535, coil value
  0x1234, file reference type 7, function codes 48 (undefined) and 9 (reserved), exception code
  9, diagnostics sub-function 5, MEI type 15, read device id code 5, a response without request,
  a request never answered (the next packet comes 12 s later), a transaction id reused while
  pending, a response with another function code than its request, and (second session) 257
  requests without answers (the pending cap is 256).
* crafted_segments.pcap: TCP 502, ADUs split inside the MBAP header, inside the PDU and byte by
  byte, three ADUs in one segment, and one and a half ADUs per segment.
* crafted_vendor.pcap: TCP 502: Schneider UMAS (function 90: INIT_COMM, READ_PLC_INFO,
  TAKE_PLC_RESERVATION, STOP_PLC, START_PLC, a program block written to the PLC and one read
  back, an error status), user-defined
  functions 65 and 100, MEI 13 (CANopen), exception codes 1-8, 10 and 11, report server id with a
  one-byte id, read device id with more-follows and a private object by individual access.
* crafted_udp.pcap: Modbus over UDP: a pair on port 502, two ADUs in one datagram, a datagram
  shorter than its MBAP length, trailing bytes after an ADU, and a pair on port 1502 (found by
  content).
* crafted_not_modbus.pcap: non-Modbus bytes on TCP and UDP 502 (HTTP, TLS, SSH, random bytes, a
  zero protocol id with a length of 1024, a zero protocol id before function code 0): no Modbus
  record may come out of it.

Bytes are written out here, independently of the dissector.  Timestamps are fixed and the random
bytes seeded, so the files are byte-for-byte reproducible.
Usage: ``.venv/bin/python pcaps/generators/modbus/malformed.py`` from the repo root.
"""

from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "modbus"
sys.path.insert(0, str(PCAPS / "generators"))

from manifest import update  # noqa: E402

BASE_TIME = 1_700_000_000.0
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"
MACS = ("02:00:00:00:00:01", "02:00:00:00:00:02")


def adu(tid: int, unit: int, pdu: bytes, protocol: int = 0, length: int | None = None) -> bytes:
    """One MBAP ADU: ``length`` overrides the MBAP length (unit id + PDU)."""
    return struct.pack(">HHHB", tid, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


def read(fc: int, address: int, quantity: int) -> bytes:
    return struct.pack(">BHH", fc, address, quantity)


def registers(fc: int, values: list[int]) -> bytes:
    return bytes([fc, 2 * len(values)]) + struct.pack(f">{len(values)}H", *values)


class Clock:
    """Capture time shared by the sessions of one file (10 ms per packet unless told)."""

    def __init__(self) -> None:
        self.time = BASE_TIME

    def tick(self, seconds: float = 0.01) -> float:
        now = self.time
        self.time += seconds
        return now


class Session:
    """A TCP conversation CLIENT:client_port <-> SERVER:server_port with handshake and close."""

    def __init__(self, clock: Clock, packets: list[object], client_port: int, server_port: int = 502) -> None:
        self.clock = clock
        self.packets = packets
        self.ports = (client_port, server_port)
        self.seq = [1000, 5000]
        self._add(0, "S", b"")
        self.seq[0] += 1
        self._add(1, "SA", b"")
        self.seq[1] += 1
        self._add(0, "A", b"")

    def _add(self, direction: int, flags: str, payload: bytes) -> None:
        ends = ((CLIENT, self.ports[0]), (SERVER, self.ports[1]))
        (src, sport), (dst, dport) = ends if direction == 0 else ends[::-1]
        packet = (
            Ether(src=MACS[direction], dst=MACS[1 - direction])
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
        packet.time = self.clock.tick()
        self.packets.append(packet)

    def send(self, direction: int, payload: bytes) -> None:
        """One segment per call (the tests rely on where segments start)."""
        self._add(direction, "PA", payload)
        self.seq[direction] += len(payload)

    def close(self) -> None:
        self._add(0, "FA", b"")
        self.seq[0] += 1
        self._add(1, "FA", b"")
        self.seq[1] += 1
        self._add(0, "A", b"")


def datagram(clock: Clock, packets: list[object], payload: bytes, to_server: bool, port: int = 502) -> None:
    ends = ((CLIENT, 40100), (SERVER, port))
    (src, sport), (dst, dport) = ends if to_server else ends[::-1]
    packet = (
        Ether(src=MACS[not to_server], dst=MACS[to_server])
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / Raw(payload)
    )
    packet.time = clock.tick()
    packets.append(packet)


# -- crafted_anomalies.pcap ---------------------------------------------------------------------------


def anomalies() -> list[object]:
    clock = Clock()
    packets: list[object] = []
    s = Session(clock, packets, 40001)
    # A good pair confirms the flow.
    s.send(0, adu(1, 1, read(3, 0, 2)))
    s.send(1, adu(1, 1, registers(3, [10, 11])))
    # Protocol id 1, then a good request in the same segment: skipped by its length, the next read.
    s.send(0, adu(2, 1, read(3, 0, 1), protocol=1) + adu(3, 1, read(3, 4, 1)))
    s.send(1, adu(3, 1, registers(3, [14])))
    # MBAP length 0, then (next segment) a good request: resynchronised there.
    s.send(0, adu(4, 1, read(3, 0, 1), length=0))
    s.send(0, adu(5, 1, read(3, 5, 1)))
    s.send(1, adu(5, 1, registers(3, [15])))
    # MBAP length 300 (over 254 for a function other than 90).
    s.send(0, adu(6, 1, read(3, 0, 1) + bytes(294)))
    s.send(0, adu(7, 1, read(3, 7, 1)))
    s.send(1, adu(7, 1, registers(3, [17])))
    # A read request 2 bytes longer than FC 3 defines; a read request without its quantity.
    s.send(0, adu(8, 1, read(3, 8, 1) + b"\x00\x00"))
    s.send(1, adu(8, 1, registers(3, [18])))
    s.send(0, adu(9, 1, b"\x03\x00\x09"))
    s.send(1, adu(9, 1, registers(3, [19])))
    # Write multiple registers: quantity 2 but byte count 6 (and 6 bytes).
    s.send(0, adu(10, 1, struct.pack(">BHHB3H", 16, 0, 2, 6, 1, 2, 3)))
    s.send(1, adu(10, 1, b"\x90\x03"))
    # Quantities outside the specification: FC 1 quantity 0, FC 3 quantity 126.
    s.send(0, adu(11, 1, read(1, 0, 0)))
    s.send(1, adu(11, 1, b"\x81\x03"))
    s.send(0, adu(12, 1, read(3, 0, 126)))
    s.send(1, adu(12, 1, b"\x83\x03"))
    # Address 65530 + quantity 10 runs past the register space.
    s.send(0, adu(13, 1, read(3, 65530, 10)))
    s.send(1, adu(13, 1, b"\x83\x02"))
    # Write single coil with value 0x1234 (only 0xFF00 and 0x0000 are defined).
    s.send(0, adu(14, 1, struct.pack(">BHH", 5, 3, 0x1234)))
    s.send(1, adu(14, 1, b"\x85\x03"))
    # Read file record with reference type 7.
    s.send(0, adu(15, 1, bytes([20, 7]) + struct.pack(">BHHH", 7, 4, 1, 2)))
    s.send(1, adu(15, 1, b"\x94\x02"))
    # Function 48 (not defined anywhere), function 9 (reserved).
    s.send(0, adu(16, 1, b"\x30\x01\x02"))
    s.send(1, adu(16, 1, b"\xb0\x01"))
    s.send(0, adu(17, 1, b"\x09"))
    s.send(1, adu(17, 1, b"\x89\x01"))
    # Exception code 9 (not defined) to a good read.
    s.send(0, adu(18, 1, read(4, 0, 1)))
    s.send(1, adu(18, 1, b"\x84\x09"))
    # Diagnostics sub-function 5 (reserved).
    s.send(0, adu(19, 1, b"\x08\x00\x05\x00\x00"))
    s.send(1, adu(19, 1, b"\x88\x01"))
    # MEI type 15; read device id code 5.
    s.send(0, adu(20, 1, b"\x2b\x0f\x01\x00"))
    s.send(1, adu(20, 1, b"\xab\x01"))
    s.send(0, adu(21, 1, b"\x2b\x0e\x05\x00"))
    s.send(1, adu(21, 1, b"\xab\x03"))
    # A response nobody asked for.
    s.send(1, adu(999, 1, registers(3, [1])))
    # A request never answered: the next packet of the flow comes 12 s later (timeout 10 s).
    s.send(0, adu(22, 1, read(3, 22, 1)))
    clock.tick(12.0)
    s.send(0, adu(23, 1, read(3, 23, 1)))
    s.send(1, adu(23, 1, registers(3, [23])))
    # Transaction id 24 reused while pending; one answer.
    s.send(0, adu(24, 1, read(3, 24, 1)))
    s.send(0, adu(24, 1, read(3, 25, 1)))
    s.send(1, adu(24, 1, registers(3, [25])))
    # An FC 4 response to an FC 3 request.
    s.send(0, adu(26, 1, read(3, 26, 1)))
    s.send(1, adu(26, 1, registers(4, [26])))
    # After all that, a good pair still comes out whole.
    s.send(0, adu(27, 1, read(3, 27, 2)))
    s.send(1, adu(27, 1, registers(3, [27, 28])))
    s.close()
    # A second client: 257 requests without answers (12 bytes each, 100 per segment).
    flood = Session(clock, packets, 40002)
    requests = [adu(n, 1, read(3, n, 1)) for n in range(1, 258)]
    for start in range(0, len(requests), 100):
        flood.send(0, b"".join(requests[start : start + 100]))
    flood.close()
    return packets


# -- crafted_segments.pcap ----------------------------------------------------------------------------


def segments() -> list[object]:
    clock = Clock()
    packets: list[object] = []
    s = Session(clock, packets, 40003)
    # Split inside the MBAP header (3 + 9 bytes), and the response inside its values.
    request = adu(1, 1, read(3, 100, 4))
    s.send(0, request[:3])
    s.send(0, request[3:])
    response = adu(1, 1, registers(3, [1, 2, 3, 4]))
    s.send(1, response[:10])
    s.send(1, response[10:])
    # Byte by byte.
    request = adu(2, 1, read(1, 0, 10))
    for offset in range(len(request)):
        s.send(0, request[offset : offset + 1])
    s.send(1, adu(2, 1, bytes([1, 2, 0xFF, 0x03])))
    # Three requests in one segment (pipelined), three responses in one segment.
    s.send(0, adu(3, 1, read(4, 0, 1)) + adu(4, 2, read(4, 1, 1)) + adu(5, 3, read(4, 2, 1)))
    s.send(1, adu(3, 1, registers(4, [30])) + adu(4, 2, registers(4, [40])) + adu(5, 3, registers(4, [50])))
    # One and a half ADUs per segment: 6 + 1.5 + ... (write multiple registers, 3 values each).
    writes = b"".join(
        adu(6 + n, 1, struct.pack(">BHHB3H", 16, 10 * n, 3, 6, n, n + 1, n + 2)) for n in range(3)
    )
    half = len(writes) // 2
    s.send(0, writes[:half])
    s.send(0, writes[half:])
    s.send(1, b"".join(adu(6 + n, 1, struct.pack(">BHH", 16, 10 * n, 3)) for n in range(3)))
    s.close()
    return packets


# -- crafted_vendor.pcap ------------------------------------------------------------------------------


def umas(session_key: int, code: int, data: bytes = b"") -> bytes:
    return bytes([90, session_key, code]) + data


def umas_ok(session_key: int, data: bytes = b"") -> bytes:
    return bytes([90, session_key, 0xFE]) + data


def vendor() -> list[object]:
    clock = Clock()
    packets: list[object] = []
    s = Session(clock, packets, 40004)
    tid = 0

    def pair(request_pdu: bytes, response_pdu: bytes, unit: int = 1) -> None:
        nonlocal tid
        tid += 1
        s.send(0, adu(tid, unit, request_pdu))
        s.send(1, adu(tid, unit, response_pdu))

    # Schneider UMAS (unit 0, as Unity/EcoStruxure use): a session that stops the PLC, writes a
    # program block into it, reads one back and restarts it.  UMAS names directions from the PLC:
    # "upload" (0x30-0x32) carries the program in the requests, PC to PLC; "download" (0x33-0x35)
    # in the responses, PLC to PC (as iti/modicon_test.pcap shows a real Unity session do).
    pair(umas(0x00, 0x01, b"\x00"), umas_ok(0x00, b"\xfe\x03" + bytes(6)), unit=0)
    pair(umas(0x00, 0x04), umas_ok(0x00, bytes(8) + b"M580"), unit=0)
    pair(umas(0x00, 0x10, b"\x01\x02\x03\x04" + b"ENG-PC"), umas_ok(0x00, b"\x2a"), unit=0)
    pair(umas(0x2A, 0x41, b"\xff\x00"), umas_ok(0x2A), unit=0)
    pair(umas(0x2A, 0x30, b"\x01\x00"), umas_ok(0x2A, b"\x00\x04"), unit=0)
    pair(umas(0x2A, 0x31, b"\x01\x00\x01\x00" + bytes(range(64))), umas_ok(0x2A), unit=0)
    pair(umas(0x2A, 0x32, b"\x01\x00"), umas_ok(0x2A), unit=0)
    pair(umas(0x2A, 0x33, b"\x01\x00"), umas_ok(0x2A, b"\x00\x04"), unit=0)
    pair(umas(0x2A, 0x34, b"\x01\x00\x01\x00"), umas_ok(0x2A, b"\x00\x00\x40\x00" + bytes(range(64))), unit=0)
    pair(umas(0x2A, 0x35, b"\x01\x00"), umas_ok(0x2A), unit=0)
    pair(umas(0x2A, 0x40, b"\xff\x00"), bytes([90, 0x2A, 0xFD, 0x81]), unit=0)
    pair(umas(0x2A, 0x40, b"\xff\x00"), umas_ok(0x2A), unit=0)
    pair(umas(0x2A, 0x11), umas_ok(0x2A), unit=0)
    # User-defined function codes 65 and 100 (vendor-specific payloads).
    pair(b"\x41\x01\x02\x03", b"\x41\x00\x10")
    pair(b"\x64\xde\xad", b"\x64\xbe\xef")
    # MEI 13 (CANopen general reference): request and answer as opaque data.
    pair(b"\x2b\x0d\x00\x01\x60\x00\x00", b"\x2b\x0d\x00\x01\x60\x00\x00\x2a\x00")
    # Every defined exception code: 1-8, 10, 11 (9 is not defined; see crafted_anomalies).
    for code, function in zip(
        (1, 2, 3, 4, 5, 6, 7, 8, 10, 11), (1, 2, 3, 4, 5, 6, 15, 16, 3, 4), strict=True
    ):
        unit = 1 if code < 10 else 9  # gateway exceptions come from a target behind a gateway
        request_pdu = struct.pack(">BHH", function, 0, 0xFF00 if function == 5 else 1)
        if function in (15, 16):
            request_pdu = struct.pack(">BHHBH", function, 0, 1 if function == 16 else 9, 2, 0x0100)
        pair(request_pdu, bytes([function | 0x80, code]), unit=unit)
    # Report server id: one-byte server id 0x2A, run indicator ON, additional data "PLC-1".
    pair(b"\x11", b"\x11\x07\x2a\xff" + b"PLC-1")
    # Read device id, regular stream with more-follows (next object 0x04), then the rest.
    pair(
        b"\x2b\x0e\x02\x00",
        b"\x2b\x0e\x02\x82\xff\x04\x04" + b"\x00\x04ACME" + b"\x01\x05PX-10" + b"\x02\x051.2.3" + b"\x03\x00",
    )
    pair(
        b"\x2b\x0e\x02\x04",
        b"\x2b\x0e\x02\x82\x00\x00\x03" + b"\x04\x07PX-10 C" + b"\x05\x04M-10" + b"\x06\x04Line",
    )
    # Individual access to private object 0x85 (binary value).
    pair(b"\x2b\x0e\x04\x85", b"\x2b\x0e\x04\x83\x00\x00\x01" + b"\x85\x03\x01\x02\xfe")
    s.close()
    return packets


# -- crafted_udp.pcap ---------------------------------------------------------------------------------


def udp() -> list[object]:
    clock = Clock()
    packets: list[object] = []
    datagram(clock, packets, adu(1, 1, read(3, 0, 2)), True)
    datagram(clock, packets, adu(1, 1, registers(3, [100, 101])), False)
    # Two requests in one datagram, answered in one datagram.
    datagram(clock, packets, adu(2, 1, read(4, 0, 1)) + adu(3, 1, read(4, 1, 1)), True)
    datagram(clock, packets, adu(2, 1, registers(4, [200])) + adu(3, 1, registers(4, [201])), False)
    # MBAP length 6 but only 3 PDU bytes in the datagram (a lost tail).
    datagram(clock, packets, adu(4, 1, read(3, 4, 1))[:-2], True)
    datagram(clock, packets, adu(4, 1, b"\x83\x03"), False)
    # Three bytes after a good request.
    datagram(clock, packets, adu(5, 1, read(3, 5, 1)) + b"\x01\x02\x03", True)
    datagram(clock, packets, adu(5, 1, registers(3, [105])), False)
    # Modbus on UDP port 1502: found by content.
    datagram(clock, packets, adu(6, 1, read(3, 6, 1)), True, port=1502)
    datagram(clock, packets, adu(6, 1, registers(3, [106])), False, port=1502)
    return packets


# -- crafted_not_modbus.pcap --------------------------------------------------------------------------

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100a5010000a10303"
    + "00" * 32
    + "000020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035000a0100005800000014001200000f"
    + "6578616d706c652e6c6f63616c"
    + "00170000ff01000100000a00080006001d00170018000b00020100000d0012001004030804040105030805"
    + "0501080606010012000000330000"
)


def not_modbus() -> list[object]:
    clock = Clock()
    packets: list[object] = []
    rng = random.Random(502)
    payloads = [
        (b"GET /index.html HTTP/1.1\r\nHost: plc\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        (TLS_CLIENT_HELLO, b"\x15\x03\x03\x00\x02\x02\x28"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-dropbear\r\n"),
        (bytes(rng.randrange(256) for _ in range(200)), bytes(rng.randrange(256) for _ in range(120))),
        # Protocol id 0 and function code 3, but a length of 1024: not a Modbus ADU.
        (b"\x00\x01\x00\x00\x04\x00\x01\x03" + bytes(40), b"\x00\x01\x00\x00\x04\x00\x01\x83\x02"),
        # Protocol id 0, a right length, function code 0.
        (b"\x00\x01\x00\x00\x00\x06\x01\x00\x00\x00\x00\x01", b"\x00\x01\x00\x00\x00\x03\x01\x00\x00"),
    ]
    for number, (to_server, to_client) in enumerate(payloads):
        s = Session(clock, packets, 40010 + number)
        s.send(0, to_server)
        s.send(1, to_client)
        s.send(0, to_server)
        s.close()
    datagram(
        clock, packets, b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03plc\x00\x00\x01\x00\x01", True
    )
    datagram(clock, packets, bytes(rng.randrange(256) for _ in range(64)), True)
    return packets


CAPTURES = {
    "crafted_anomalies.pcap": (
        anomalies,
        "scapy-crafted Modbus/TCP 502, one broken thing per segment followed by good traffic: "
        "protocol id 1, MBAP length 0 and 300, PDU longer / shorter than its function, byte count "
        "against quantity, quantities 0 and 126, address range past 65535, coil value 0x1234, file "
        "reference type 7, functions 48 and 9, exception code 9, diagnostics sub-function 5, MEI "
        "type 15, read device id code 5, unmatched response, unanswered request (12 s gap), reused "
        "transaction id, FC 4 answer to FC 3; a second client with 257 unanswered requests",
    ),
    "crafted_segments.pcap": (
        segments,
        "scapy-crafted Modbus/TCP 502: ADUs split inside the MBAP header, inside the PDU and byte "
        "by byte, three ADUs per segment, one and a half ADUs per segment",
    ),
    "crafted_vendor.pcap": (
        vendor,
        "scapy-crafted Modbus/TCP 502: Schneider UMAS (FC 90: init, PLC info, reservation, stop, "
        "start, a program block written to the PLC (UMAS upload 0x30-0x32) and one read back "
        "(UMAS download 0x33-0x35), an error status), user-defined FC 65 and 100, MEI 13 CANopen, "
        "exception codes 1-8, 10, 11, report server id with a 1-byte id, read device id with "
        "more-follows and a private object by individual access",
    ),
    "crafted_udp.pcap": (
        udp,
        "scapy-crafted Modbus over UDP 502: a pair, two ADUs per datagram, a datagram shorter than "
        "its MBAP length, trailing bytes; and a pair on UDP 1502 (found by content)",
    ),
    "crafted_not_modbus.pcap": (
        not_modbus,
        "scapy-crafted non-Modbus traffic on TCP/UDP 502 (HTTP, TLS, SSH, random bytes, protocol id "
        "0 with length 1024, function code 0): must give no Modbus record",
    ),
}


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (build, _content) in CAPTURES.items():
        wrpcap(str(OUT / name), build())
    update(
        "generators/modbus/malformed.py",
        {f"modbus/{name}": content for name, (_build, content) in CAPTURES.items()},
    )


if __name__ == "__main__":
    main()
