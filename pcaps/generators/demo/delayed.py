"""The demo plant's normal phase with plc1's answers to the HMI held back, halfway through: a delaying MITM.

``demo/plant_answers_delayed.pcap`` holds the frames of ``demo/plant_normal.pcap``, same bytes;
from the capture's middle on, the frames between the HMI (192.168.10.21) and plc1
(192.168.10.11, port 502) are seen as a man in the middle that holds every frame plc1 sends for
DELAY seconds makes them, from the HMI's side of the link: each of plc1's frames DELAY later, and
everything the HMI sends after an answer (its ACK, its next request of the same poll cycle) later
by the delay of the answers it waited for.  A poll cycle (a request after half a second of quiet)
starts on time: the HMI polls on a clock.  Frames are then ordered by their new times.  Every
other conversation is untouched.  Replaying it against the baseline learned from the normal phase
must report plc1 answering slower than learned (ICS-5014).

usage: delayed.py   (from anywhere; writes pcaps/demo/plant_answers_delayed.pcap, updates pcaps/MANIFEST)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import manifest

PCAPS = manifest.PCAPS
SOURCE = PCAPS / "demo" / "plant_normal.pcap"
TARGET = PCAPS / "demo" / "plant_answers_delayed.pcap"
HMI, PLC1 = bytes((192, 168, 10, 21)), bytes((192, 168, 10, 11))
MODBUS_PORT = 502
DELAY = 0.25
# Quiet before a request that starts a new poll cycle.
CYCLE_GAP = 0.5


def _side(frame: bytes) -> tuple[str, bool] | None:
    """("plc" | "hmi", carries payload) for a frame of the HMI-plc1 Modbus connection, else None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    src, dst = frame[26:30], frame[30:34]
    ip_end = 14 + struct.unpack_from(">H", frame, 16)[0]
    tcp = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < tcp + 20:
        return None
    sport, dport = struct.unpack_from(">HH", frame, tcp)
    payload = ip_end - (tcp + (frame[tcp + 12] >> 4) * 4) > 0
    if src == PLC1 and dst == HMI and sport == MODBUS_PORT:
        return "plc", payload
    if src == HMI and dst == PLC1 and dport == MODBUS_PORT:
        return "hmi", payload
    return None


def main() -> None:
    data = SOURCE.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{SOURCE}: expected a little-endian microsecond pcap")
    records: list[tuple[float, int, bytes]] = []
    offset = 24
    while offset + 16 <= len(data):
        seconds, micros, incl = struct.unpack_from("<III", data, offset)
        records.append((seconds + micros / 1e6, len(records), data[offset : offset + 16 + incl]))
        offset += 16 + incl
    middle = (records[0][0] + records[-1][0]) / 2
    shift = 0.0
    last: float | None = None
    moved = 0
    out: list[tuple[float, int, bytes]] = []
    for ts, index, record in records:
        side = _side(record[16:])
        if side is None or ts < middle:
            out.append((ts, index, record))
            continue
        who, payload = side
        if who == "hmi" and payload and (last is None or ts - last > CYCLE_GAP):
            shift = 0.0  # a new poll cycle: the HMI's clock, not the last answer, starts it
        last = ts
        new_ts = ts + shift + (DELAY if who == "plc" else 0.0)
        if who == "plc" and payload:
            shift += DELAY
        if new_ts != ts:
            moved += 1
        out.append((new_ts, index, record))
    out.sort()
    body = bytearray(data[:24])
    for ts, _index, record in out:
        micros_total = round(ts * 1e6)
        body += struct.pack("<II", micros_total // 1_000_000, micros_total % 1_000_000) + record[8:]
    TARGET.write_bytes(bytes(body))
    manifest.update(
        "generators/demo/delayed.py",
        {
            "demo/plant_answers_delayed.pcap": (
                f"demo/plant_normal.pcap with, from its middle on, every frame plc1 sends the HMI held "
                f"{DELAY:g} s as by a man in the middle, and the HMI's replies within a poll cycle as much "
                f"later ({moved} of {len(out)} frames moved, bytes unchanged): plc1 answers slower than learned"
            )
        },
    )
    print(f"{TARGET}: {len(out)} frames, {moved} moved")


if __name__ == "__main__":
    main()
