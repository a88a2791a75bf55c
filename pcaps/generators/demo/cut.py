"""The demo plant's normal phase with the HMI's link to plc1 cut: a master that stops polling.

``demo/plant_hmi_cut.pcap`` is ``demo/plant_normal.pcap`` frame for frame (same bytes, same times),
except that every frame between the HMI (192.168.10.21) and plc1 (192.168.10.11) from 60 s after
the first frame on is left out: the HMI's Modbus polling of plc1 (every 1 s) stops there, as when
its cable is pulled, the HMI hangs, or a man in the middle drops its requests, while everything else
on the SPAN port (the HMI's DNP3 polling of rtu1, the engineering station's S7 reads of plc2) goes on
for 90 s more.  Learning on the plain normal phase and replaying this must report that stop
(ICS-5012) and nothing else.

usage: cut.py   (from anywhere; writes pcaps/demo/plant_hmi_cut.pcap and updates pcaps/MANIFEST)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import manifest

PCAPS = manifest.PCAPS
SOURCE = PCAPS / "demo" / "plant_normal.pcap"
TARGET = PCAPS / "demo" / "plant_hmi_cut.pcap"
HMI, PLC1 = bytes((192, 168, 10, 21)), bytes((192, 168, 10, 11))
CUT_AFTER = 60.0  # seconds after the first frame


def main() -> None:
    data = SOURCE.read_bytes()
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        raise SystemExit(f"{SOURCE}: expected a little-endian microsecond pcap")
    out = bytearray(data[:24])
    offset, first, kept, dropped = 24, None, 0, 0
    while offset + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + incl]
        ts = sec + usec / 1e6
        first = ts if first is None else first
        ipv4 = len(frame) >= 34 and frame[12:14] == b"\x08\x00"
        pair = ipv4 and {frame[26:30], frame[30:34]} == {HMI, PLC1}
        if pair and ts - first >= CUT_AFTER:
            dropped += 1
        else:
            out += data[offset : offset + 16 + incl]
            kept += 1
        offset += 16 + incl
    TARGET.write_bytes(bytes(out))
    manifest.update(
        "generators/demo/cut.py",
        {
            "demo/plant_hmi_cut.pcap": (
                f"demo/plant_normal.pcap without the frames between the HMI 192.168.10.21 and plc1 "
                f"192.168.10.11 from +{CUT_AFTER:g} s on ({dropped} of {kept + dropped} frames left out; "
                "the rest byte for byte): the HMI's Modbus polling of plc1 (every 1 s) stops while its "
                "DNP3 polling of rtu1 and the engineering station's S7 reads go on for 90 s"
            )
        },
    )
    print(f"{TARGET}: {kept} frames kept, {dropped} left out")


if __name__ == "__main__":
    main()
