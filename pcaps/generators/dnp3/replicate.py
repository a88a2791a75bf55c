"""Benchmark input: replicate a DNP3 capture N times into one large pcap (not kept in the repo).

Each copy moves the client port (so every copy is a new TCP flow, not a retransmission of the first)
and the timestamps (so time runs forward).  Works on classic pcap with Ethernet, NULL/loopback or raw
IPv4 link types.  Checksums are left as they are: neither ics-monitor nor tshark verifies them.

Usage: ``python pcaps/generators/dnp3/replicate.py SOURCE.pcap OUT.pcap PACKETS``
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path


def main() -> None:
    source, target, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = Path(source).read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    link_type = struct.unpack_from(endian + "I", data, 20)[0]
    ip_offset = {1: 14, 0: 4, 101: 0, 228: 0}[link_type]
    records = []
    position = 24
    while position + 16 <= len(data):
        seconds, fraction, caplen, wirelen = struct.unpack_from(endian + "IIII", data, position)
        records.append((seconds, fraction, data[position + 16 : position + 16 + caplen], wirelen))
        position += 16 + caplen
    span = records[-1][0] - records[0][0] + 1
    with open(target, "wb") as out:
        out.write(data[:24])
        written = 0
        copy = 0
        while written < wanted:
            for seconds, fraction, frame, wirelen in records:
                frame = bytearray(frame)
                ip = ip_offset
                if len(frame) > ip + 24 and frame[ip] >> 4 == 4 and frame[ip + 9] in (6, 17):
                    tcp = ip + (frame[ip] & 0x0F) * 4
                    sport, dport = struct.unpack_from("!HH", frame, tcp)
                    if dport == 20000:
                        sport = (sport + copy * 7) % 64512 + 1024
                    elif sport == 20000:
                        dport = (dport + copy * 7) % 64512 + 1024
                    struct.pack_into("!HH", frame, tcp, sport, dport)
                out.write(struct.pack(endian + "IIII", seconds + copy * span, fraction, len(frame), wirelen))
                out.write(frame)
                written += 1
                if written >= wanted:
                    break
            copy += 1


if __name__ == "__main__":
    main()
