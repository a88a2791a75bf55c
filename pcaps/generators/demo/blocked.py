"""The demo plant's normal phase with plc1's answers to the HMI's writes left out: commands blocked.

``demo/plant_writes_blocked.pcap`` is ``demo/plant_normal.pcap`` frame for frame (same bytes, same
times), except the frames in which plc1 (192.168.10.11, port 502) answers a Modbus write (FC 6) of
the HMI (192.168.10.21): as a man in the middle that drops the operator's commands, or their
answers, sees them from the HMI's side of the link, while every poll (FC 1, FC 3) is answered.
Replaying it must report the writes left unanswered (ICS-4009).

usage: blocked.py   (from anywhere; writes pcaps/demo/plant_writes_blocked.pcap and updates pcaps/MANIFEST)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import manifest

PCAPS = manifest.PCAPS
SOURCE = PCAPS / "demo" / "plant_normal.pcap"
TARGET = PCAPS / "demo" / "plant_writes_blocked.pcap"
HMI, PLC1 = bytes((192, 168, 10, 21)), bytes((192, 168, 10, 11))
WRITE_SINGLE_REGISTER = 6


def _write_answer(frame: bytes) -> bool:
    """Whether ``frame`` (Ethernet, IPv4, TCP) carries plc1's Modbus answer to an FC 6 write."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return False
    if frame[26:30] != PLC1 or frame[30:34] != HMI:
        return False
    tcp = 14 + (frame[14] & 0x0F) * 4
    if len(frame) < tcp + 20 or struct.unpack_from(">H", frame, tcp)[0] != 502:
        return False
    payload = tcp + (frame[tcp + 12] >> 4) * 4
    # MBAP header (7 bytes), then the function code.
    return len(frame) > payload + 7 and frame[payload + 7] == WRITE_SINGLE_REGISTER


def main() -> None:
    data = SOURCE.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{SOURCE}: expected a little-endian microsecond pcap")
    out = bytearray(data[:24])
    offset, kept, dropped = 24, 0, 0
    while offset + 16 <= len(data):
        incl = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + incl]
        if _write_answer(frame):
            dropped += 1
        else:
            out += data[offset : offset + 16 + incl]
            kept += 1
        offset += 16 + incl
    TARGET.write_bytes(bytes(out))
    manifest.update(
        "generators/demo/blocked.py",
        {
            "demo/plant_writes_blocked.pcap": (
                f"demo/plant_normal.pcap without plc1's answers to the HMI's Modbus writes (FC 6; "
                f"{dropped} of {kept + dropped} frames left out, the rest byte for byte): the writes go "
                "unanswered while every poll is answered, as behind a man in the middle dropping commands"
            )
        },
    )
    print(f"{TARGET}: {kept} frames kept, {dropped} left out")


if __name__ == "__main__":
    main()
