"""Crafted S7 captures (scapy): every anomaly the dissector knows, COTP segmentation, S7comm-plus.

No real stack sends these, which is the point: they are the broken, rare or proprietary cases.

* crafted_anomalies.pcap: one TCP session (10.0.0.1:40000 -> 10.0.0.2:102, with handshake), COTP
  CR/CC and set-up, then one broken thing per segment, each followed by a good PDU where
  resynchronisation matters: TPKT version 4 and length 3, a COTP length indicator past the TPKT, an
  undefined TPDU code, a CR parameter past its header, a cut S7 header, lengths beyond the PDU, ROSCTR
  5, function 0x77, an item count of 1 with 2 items, an item cut short, a short set-up parameter, an
  answer to no request, an SZL answer with fewer entries than counted, non-S7 COTP data, 17
  multi-part USERDATA answers (over the cap of 16), 17 block downloads at once (cap 16), a
  download never ended, 70 KB of COTP data without end of TSDU (cap 64 KiB), 257 unanswered jobs
  (cap 256), S7comm-plus PDUs cut, mis-sized and of version 9.
* crafted_segments.pcap: a 480-byte read answer in 3 COTP data TPDUs (EOT 0, 0, 1) spread over 2
  TCP segments, a TPKT split over two TCP segments, three TPKTs in one segment, the empty data TPDU
  S7-1200 sends as keep-alive, and a two-part SZL 0x0011 answer (data unit reference 7) whose
  first part ends inside an entry.
* crafted_plus.pcap: S7comm-plus-like frames on two connections: V1 CreateObject request and
  response (session id), V3 PDUs with an integrity digest, a message fragmented over three PDUs,
  keep-alives (versions 0xFF and 0xFE), GetMultiVariables paired by sequence number; then a
  connection (TSAPs SIMATIC-ROOT-ES) whose data are TLS records (TIA Portal V17+).
* crafted_not_s7.pcap: TPKT/COTP that is not S7: an RDP connection request on port 3389 (the RDP
  identifier must get it) and HTTP on port 102 (no S7 records).

Timestamps are fixed, so the files are byte-for-byte reproducible.
Usage: ``.venv/bin/python pcaps/generators/s7comm/malformed.py`` from the repo root.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from scapy.all import IP, TCP, Ether, Raw, wrpcap

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "s7comm"
sys.path.insert(0, str(PCAPS / "generators"))

from manifest import update  # noqa: E402

BASE_TIME = 1_700_000_000.0


# -- protocol builders (written from the specs, independent of the dissector) ------------------------


def tpkt(cotp: bytes, version: int = 3, length: int | None = None) -> bytes:
    return struct.pack(">BBH", version, 0, 4 + len(cotp) if length is None else length) + cotp


def dt(payload: bytes, eot: bool = True, number: int = 0) -> bytes:
    """A COTP class-0 data TPDU in a TPKT."""
    return tpkt(bytes([2, 0xF0, (0x80 if eot else 0) | number]) + payload)


def connect(code: int, src_tsap: bytes, dst_tsap: bytes, dst_ref: int = 0, src_ref: int = 1) -> bytes:
    """A COTP CR (0xE0) or CC (0xD0) with TPDU size 1024 and two TSAPs, in a TPKT."""
    parameters = (
        bytes([0xC0, 1, 0x0A, 0xC1, len(src_tsap)]) + src_tsap + bytes([0xC2, len(dst_tsap)]) + dst_tsap
    )
    fixed = bytes([code]) + struct.pack(">HH", dst_ref, src_ref) + b"\x00"
    return tpkt(bytes([len(fixed) + len(parameters)]) + fixed + parameters)


def s7(rosctr: int, ref: int, parameter: bytes, data: bytes = b"", error: int | None = None) -> bytes:
    """An S7comm PDU; ACK/ACK_DATA (2, 3) get the error class and code bytes."""
    header = struct.pack(">BBHHHH", 0x32, rosctr, 0, ref, len(parameter), len(data))
    if rosctr in (2, 3):
        header += struct.pack(">H", error or 0)
    return header + parameter + data


def any_item(area: int, db: int, start: int, length: int, transport_size: int = 2, bit: int = 0) -> bytes:
    """An S7ANY variable specification (12 bytes)."""
    address = start * 8 + bit
    return (
        bytes([0x12, 10, 0x10, transport_size])
        + struct.pack(">HHB", length, db, area)
        + address.to_bytes(3, "big")
    )


def read_job(ref: int, items: list[bytes]) -> bytes:
    return s7(1, ref, bytes([0x04, len(items)]) + b"".join(items))


def read_answer(ref: int, values: list[bytes]) -> bytes:
    data = b""
    for index, value in enumerate(values):
        data += bytes([0xFF, 0x04]) + struct.pack(">H", len(value) * 8) + value
        if len(value) % 2 and index < len(values) - 1:
            data += b"\x00"
    return s7(3, ref, bytes([0x04, len(values)]), data)


def userdata(
    ref: int,
    kind: int,
    group: int,
    subfunction: int,
    payload: bytes,
    sequence: int = 0,
    reference: int = 0,
    last: bool = True,
    return_code: int = 0xFF,
) -> bytes:
    """A USERDATA PDU; kind 1 request (short parameter), 2 response (long parameter)."""
    if kind == 1:
        parameter = bytes([0x00, 0x01, 0x12, 0x04, 0x11, 0x40 | group, subfunction, sequence])
    else:
        parameter = bytes([0x00, 0x01, 0x12, 0x08, 0x12, (kind << 6) | group, subfunction, sequence])
        parameter += bytes([reference, 0 if last else 1, 0, 0])
    data = bytes([return_code, 0x09]) + struct.pack(">H", len(payload)) + payload
    return s7(7, ref, parameter, data)


def szl_request(ref: int, szl_id: int, index: int) -> bytes:
    return userdata(ref, 1, 4, 1, struct.pack(">HH", szl_id, index))


def module_entry(index: int, order: str, version: tuple[int, int]) -> bytes:
    return struct.pack(">H", index) + order.encode().ljust(20, b" ") + struct.pack(">HHH", 0x00C0, *version)


def file_name(block_type: str, number: int, filesystem: str = "P") -> bytes:
    name = f"_{block_type}{number:05d}{filesystem}".encode()
    return bytes([len(name)]) + name


def request_download(ref: int, number: int) -> bytes:
    parameter = bytes([0x1A, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0A", number)
    parameter += bytes([13]) + b"1000100000084"
    return s7(1, ref, parameter)


def plus(
    version: int,
    body: bytes,
    trailer: bool = True,
    digest: bool = False,
) -> bytes:
    """An S7comm-plus PDU: header, (V3) integrity digest, body, trailer."""
    part = (bytes([32]) + bytes(range(32)) if digest else b"") + body
    pdu = bytes([0x72, version]) + struct.pack(">H", len(part)) + part
    if trailer:
        pdu += bytes([0x72, version, 0, 0])
    return pdu


def plus_request(function: int, sequence: int, session: int, rest: bytes = b"") -> bytes:
    return bytes([0x31, 0, 0]) + struct.pack(">HHHI", function, 0, sequence, session) + b"\x36" + rest


def plus_response(function: int, sequence: int, rest: bytes = b"") -> bytes:
    return bytes([0x32, 0, 0]) + struct.pack(">HHH", function, 0, sequence) + b"\x00" + rest


class Session:
    """A TCP conversation client 10.0.0.1:<port> <-> server 10.0.0.2:<server port> with a handshake."""

    def __init__(self, packets: list[object], client_port: int = 40000, server_port: int = 102) -> None:
        self.packets = packets
        self.client = ("10.0.0.1", client_port)
        self.server = ("10.0.0.2", server_port)
        self.seq = [1000, 5000]
        self._add(0, "S", b"")
        self.seq[0] += 1
        self._add(1, "SA", b"")
        self.seq[1] += 1
        self._add(0, "A", b"")

    def _add(self, direction: int, flags: str, payload: bytes) -> None:
        (src, sport), (dst, dport) = (
            (self.client, self.server) if direction == 0 else (self.server, self.client)
        )
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
        packet.time = BASE_TIME + 0.01 * len(self.packets)
        self.packets.append(packet)

    def send(self, direction: int, payload: bytes) -> None:
        """One TCP segment per 1400 bytes of ``payload``."""
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


def open_s7(session: Session) -> None:
    session.send(0, connect(0xE0, b"\x01\x00", b"\x01\x02"))
    session.send(1, connect(0xD0, b"\x01\x00", b"\x01\x02", dst_ref=1, src_ref=1))
    setup = bytes([0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0])
    session.send(0, dt(s7(1, 0, setup)))
    session.send(1, dt(s7(3, 0, setup)))


DB1_READ = any_item(0x84, 1, 0, 4)


def anomalies() -> list[object]:
    packets: list[object] = []
    s = Session(packets)
    open_s7(s)
    good = dt(read_job(1, [DB1_READ]))
    s.send(0, good)
    s.send(1, dt(read_answer(1, [b"\x01\x02\x03\x04"])))
    # TPKT version 4, then a good PDU in the same segment: resync to it.
    s.send(0, tpkt(b"\x02\xf0\x80\x32", version=4) + dt(read_job(2, [DB1_READ])))
    s.send(1, dt(read_answer(2, [b"\x01\x02\x03\x04"])))
    # TPKT length 3 (shorter than any TPDU), then a good PDU.
    s.send(0, b"\x03\x00\x00\x03" + dt(read_job(3, [DB1_READ])))
    s.send(1, dt(read_answer(3, [b"\x01\x02\x03\x04"])))
    # COTP length indicator beyond the TPKT; an undefined TPDU code (0x3); CR parameter too long.
    s.send(0, tpkt(bytes([9, 0xF0, 0x80])))
    s.send(0, tpkt(bytes([2, 0x30, 0x80])))
    s.send(0, tpkt(bytes([8, 0xE0, 0, 0, 0, 2, 0, 0xC1, 9])))
    # S7 header cut short; parameter and data lengths beyond the PDU; ROSCTR 5; function 0x77.
    s.send(0, dt(b"\x32\x01\x00\x00\x00"))
    s.send(0, dt(s7(1, 4, bytes([0x04, 1]) + DB1_READ)[:-4]))
    s.send(0, dt(s7(5, 5, b"\x04\x00")))
    s.send(0, dt(s7(1, 6, b"\x77\x00\x00", b"\xaa\xbb")))
    s.send(1, dt(s7(3, 6, b"\x77\x00")))
    # Item count 1 with two items; an item cut short; a set-up parameter of 4 bytes.
    s.send(0, dt(s7(1, 7, bytes([0x04, 1]) + DB1_READ + DB1_READ)))
    s.send(1, dt(read_answer(7, [b"\x01\x02\x03\x04"])))
    s.send(0, dt(s7(1, 8, bytes([0x04, 1]) + DB1_READ[:8])))
    s.send(1, dt(read_answer(8, [b"\x01\x02\x03\x04"])))
    s.send(0, dt(s7(1, 9, bytes([0xF0, 0, 0, 1]))))
    # An answer to no request (PDU reference 999).
    s.send(1, dt(read_answer(999, [b"\x05\x06\x07\x08"])))
    # SZL 0x0011 answer counting 4 entries of 28 bytes but holding one.
    s.send(0, dt(szl_request(10, 0x0011, 0)))
    entry = module_entry(1, "6ES7 315-2EH14-0AB0", (0x0004, 0x0001))
    s.send(1, dt(userdata(10, 2, 4, 1, struct.pack(">HHHH", 0x0011, 0, 28, 4) + entry)))
    # COTP data that is neither S7comm, S7comm-plus nor TLS.
    s.send(0, dt(b"\x0d\x0e\x0f\x10"))
    # 17 multi-part USERDATA answers left open (data unit references 1..17): cap 16.
    for reference in range(1, 18):
        s.send(0, dt(szl_request(100 + reference, 0x0011, 0)))
        first = struct.pack(">HHHH", 0x0011, 0, 28, 2) + entry
        s.send(1, dt(userdata(100 + reference, 2, 4, 1, first, reference=reference, last=False)))
    # 17 block downloads accepted at once (cap 16), never ended: over the cap, then incomplete.
    for number in range(1, 18):
        s.send(0, dt(request_download(200 + number, number)))
        s.send(1, dt(s7(3, 200 + number, bytes([0x1A]))))
    # The PLC pulls a chunk of DB1; the download is never ended.
    s.send(1, dt(s7(1, 300, bytes([0x1B, 0x00, 0x01, 0x00]) + bytes(4) + file_name("0A", 1))))
    s.send(0, dt(s7(3, 300, bytes([0x1B, 0x00]), struct.pack(">HH", 8, 0x00FB) + b"MC7BLOCK")))
    # 70 KB of COTP data without end of TSDU (cap 64 KiB) and its last TPDU, then a good PDU.
    s.send(0, b"".join(dt(b"\x32" + bytes(999), eot=False) for _ in range(70)) + dt(bytes(10)))
    s.send(0, dt(read_job(11, [DB1_READ])))
    s.send(1, dt(read_answer(11, [b"\x01\x02\x03\x04"])))
    # S7comm-plus: cut header, length beyond the PDU, version 9.
    s.send(0, dt(b"\x72\x02"))
    s.send(0, dt(b"\x72\x02\x01\x00\x31\x00"))
    s.send(0, dt(plus(9, plus_request(0x054C, 1, 0x3BE))))
    # 257 jobs never answered (cap 256): the oldest is dropped, the rest reported at the end.
    s.send(0, b"".join(dt(read_job(1000 + n, [DB1_READ])) for n in range(257)))
    s.close()
    return packets


def segments() -> list[object]:
    packets: list[object] = []
    s = Session(packets)
    open_s7(s)
    # A 480-byte read answer in three data TPDUs (EOT 0, 0, 1), sent in two TCP segments.
    s.send(0, dt(read_job(1, [any_item(0x84, 10, 0, 480)])))
    answer = read_answer(1, [bytes(range(256)) + bytes(range(224))])
    parts = [answer[:200], answer[200:400], answer[400:]]
    tpdus = [dt(parts[0], eot=False, number=0), dt(parts[1], eot=False, number=1), dt(parts[2], number=2)]
    s.send(1, tpdus[0] + tpdus[1][:10])
    s.send(1, tpdus[1][10:] + tpdus[2])
    # One TPKT split over two TCP segments (inside its TPKT header), then three TPKTs in one.
    job = dt(read_job(2, [any_item(0x83, 0, 16, 2)]))
    s.send(0, job[:3])
    s.send(0, job[3:])
    s.send(1, dt(read_answer(2, [b"\x12\x34"])))
    s.send(0, dt(read_job(3, [DB1_READ])) + dt(read_job(4, [DB1_READ])) + dt(read_job(5, [DB1_READ])))
    s.send(1, dt(read_answer(3, [b"\x01\x01\x01\x01"])) + dt(read_answer(4, [b"\x02\x02\x02\x02"])))
    s.send(1, dt(read_answer(5, [b"\x03\x03\x03\x03"])))
    # The empty data TPDU S7-1200/1500 send as keep-alive.
    s.send(0, tpkt(bytes([2, 0xF0, 0x00])))
    # A two-part SZL 0x0011 answer: data unit reference 7, the split inside the second entry.
    s.send(0, dt(szl_request(6, 0x0011, 0)))
    entries = module_entry(1, "6ES7 412-5HK06-0AB0", (0x0006, 0x0000))
    entries += module_entry(6, "6ES7 412-5HK06-0AB0", (0x0006, 0x0000))
    entries += module_entry(7, "", (0x5606, 0x0004))
    whole = struct.pack(">HHHH", 0x0011, 0, 28, 3) + entries
    s.send(1, dt(userdata(6, 2, 4, 1, whole[:50], reference=7, last=False)))
    # The client asks for the next part: long parameter with the reference, data "no object".
    follow_up = bytes([0x00, 0x01, 0x12, 0x08, 0x12, 0x44, 0x01, 0x01, 7, 0x00, 0x00, 0x00])
    s.send(0, dt(s7(7, 7, follow_up, b"\x0a\x00\x00\x00")))
    s.send(1, dt(userdata(7, 2, 4, 1, whole[50:], sequence=1, reference=7)))
    s.close()
    return packets


def plus_session() -> list[object]:
    packets: list[object] = []
    s = Session(packets, client_port=40001)
    s.send(0, connect(0xE0, b"\x01\x00", b"SIMATIC-ROOT-HMI"))
    s.send(1, connect(0xD0, b"\x01\x00", b"SIMATIC-ROOT-HMI", dst_ref=1))
    # V1 CreateObject: the request names the server session container, the answer the session.
    s.send(0, dt(plus(1, plus_request(0x04CA, 1, 0x120, b"\x00\x00\x01\x20"))))
    s.send(1, dt(plus(1, plus_response(0x04CA, 1, b"\x00\x87\x3e"))))
    # V3 with integrity: GetMultiVariables request and answer, paired by sequence 2.
    s.send(0, dt(plus(3, plus_request(0x054C, 2, 0x3BE, b"\x00\x01"), digest=True)))
    s.send(1, dt(plus(3, plus_response(0x054C, 2, b"\x00\x00"), digest=True)))
    # A SetMultiVariables request fragmented over three PDUs (no trailer on the first two).
    body = plus_request(0x0542, 3, 0x3BE, bytes(range(200)))
    s.send(0, dt(plus(3, body[:80], trailer=False, digest=True)))
    s.send(0, dt(plus(3, body[80:160], trailer=False, digest=True)))
    s.send(0, dt(plus(3, body[160:], digest=True)))
    s.send(1, dt(plus(3, plus_response(0x0542, 3), digest=True)))
    # Keep-alives: version 0xFF (4 bytes) and 0xFE (16 bytes of data, no trailer).
    s.send(0, dt(b"\x72\xff\x05\x00"))
    s.send(1, dt(b"\x72\xfe\x00\x10" + bytes(16)))
    # A notification from the PLC (opcode 0x33).
    s.send(1, dt(plus(3, bytes([0x33]) + bytes(12), digest=True)))
    s.close()
    # S7comm-plus over TLS (TIA Portal V17 and later): after the COTP connection, TLS records.
    t = Session(packets, client_port=40002)
    t.send(0, connect(0xE0, b"\x01\x00", b"SIMATIC-ROOT-ES"))
    t.send(1, connect(0xD0, b"\x01\x00", b"SIMATIC-ROOT-ES", dst_ref=1))
    t.send(0, dt(b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00"))  # ClientHello (cut)
    t.send(1, dt(b"\x16\x03\x03\x00\x05\x02\x00\x00\x01\x00"))  # ServerHello (cut)
    t.send(0, dt(b"\x17\x03\x03\x00\x04\xde\xad\xbe\xef"))
    t.send(1, dt(b"\x17\x03\x03\x00\x04\xca\xfe\xba\xbe"))
    t.close()
    return packets


def not_s7() -> list[object]:
    packets: list[object] = []
    rdp = Session(packets, client_port=40003, server_port=3389)
    cookie = b"Cookie: mstshash=admin\r\n" + bytes([1, 0, 8, 0, 3, 0, 0, 0])
    request = bytes([0xE0, 0, 0, 0, 0, 0]) + cookie
    rdp.send(0, tpkt(bytes([len(request)]) + request))
    rdp.close()
    web = Session(packets, client_port=40004, server_port=102)
    web.send(0, b"GET / HTTP/1.1\r\nHost: plc\r\n\r\n")
    web.send(1, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    web.close()
    return packets


def main() -> None:
    OUT.mkdir(exist_ok=True)
    wrpcap(str(OUT / "crafted_anomalies.pcap"), anomalies())
    wrpcap(str(OUT / "crafted_segments.pcap"), segments())
    wrpcap(str(OUT / "crafted_plus.pcap"), plus_session())
    wrpcap(str(OUT / "crafted_not_s7.pcap"), not_s7())
    update(
        "generators/s7comm/malformed.py",
        {
            "s7comm/crafted_anomalies.pcap": (
                "scapy-crafted S7comm/TCP 102 session, one broken thing per segment: TPKT version 4 and "
                "length 3, COTP length past the TPKT, TPDU code 3, CR parameter past its header, cut S7 "
                "header, lengths past the PDU, ROSCTR 5, function 0x77, item count 1 with 2 items, cut "
                "item, 4-byte set-up, answer to no request, SZL with fewer entries than counted, non-S7 "
                "COTP data, 17 open multi-part USERDATA answers, 17 downloads at once, a download never "
                "ended, 70 KB without end of TSDU, 257 unanswered jobs, S7comm-plus cut / mis-sized / "
                "version 9"
            ),
            "s7comm/crafted_segments.pcap": (
                "scapy-crafted S7comm/TCP 102: 480-byte read answer in 3 COTP data TPDUs (EOT 0, 0, 1) "
                "over 2 TCP segments, a TPKT split inside its header, 3 TPKTs in one segment, an empty "
                "keep-alive data TPDU, a two-part SZL 0x0011 answer (data unit reference 7)"
            ),
            "s7comm/crafted_plus.pcap": (
                "scapy-crafted S7comm-plus-like frames: V1 CreateObject with session id, V3 with "
                "integrity digest, a message in 3 fragments, keep-alives 0xFF and 0xFE, a notification; "
                "a second connection (SIMATIC-ROOT-ES) carrying TLS records"
            ),
            "s7comm/crafted_not_s7.pcap": (
                "scapy-crafted TPKT that is not S7: RDP connection request with cookie on TCP 3389, "
                "HTTP on TCP 102"
            ),
        },
    )


if __name__ == "__main__":
    main()
