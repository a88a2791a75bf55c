"""Writing frames to a capture file: classic pcap for one link type, pcapng for several.

Classic pcap (draft-ietf-opsawg-pcap-03) holds one link type per file, so frames of several (a
replay over an Ethernet and a Linux cooked capture) go to pcapng (draft-ietf-opsawg-pcapng-03)
with one interface description block per link type.  Timestamps are written in microseconds,
the precision the readers' float seconds keep at epoch scale; ``wire_len`` is kept as the original
length, so a frame the snap length cut stays marked as cut.  Frames are written as read: this
module never decodes them.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Final

Frame = tuple[float, int, bytes, int]  # (ts, link_type, data, wire_len), as capture.files

_PCAP_MAGIC_US: Final = 0xA1B2C3D4
_SNAPLEN: Final = 262_144
_PCAP_HEADER: Final = struct.Struct("<IHHiIII")
_PCAP_RECORD: Final = struct.Struct("<IIII")
_SHB: Final = 0x0A0D0D0A
_IDB: Final = 1
_EPB: Final = 6
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D


def _split(ts: float) -> tuple[int, int]:
    """Seconds and microseconds of ``ts``, the microseconds rounded (999999.6 carries)."""
    micros = round(ts * 1_000_000)
    return micros // 1_000_000, micros % 1_000_000


def write_capture(path: str | Path, frames: list[Frame]) -> str:
    """Write ``frames`` (in the order given) to ``path``; returns the format written: "pcap" or "pcapng"."""
    link_types = sorted({frame[1] for frame in frames})
    with open(path, "wb") as out:
        if len(link_types) <= 1:
            _pcap(out, frames, link_types[0] if link_types else 1)
            return "pcap"
        _pcapng(out, frames, link_types)
        return "pcapng"


def _pcap(out: BinaryIO, frames: list[Frame], link_type: int) -> None:
    out.write(_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, _SNAPLEN, link_type))
    for ts, _link, data, wire_len in frames:
        seconds, micros = _split(ts)
        out.write(_PCAP_RECORD.pack(seconds, micros, len(data), max(wire_len, len(data))))
        out.write(data)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _pcapng(out: BinaryIO, frames: list[Frame], link_types: list[int]) -> None:
    # Section header: byte-order magic, version 1.0, section length unknown (-1), no options.
    out.write(_block(_SHB, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)))
    interface = {}
    for number, link_type in enumerate(link_types):
        # Interface description: link type, reserved, snap length; if_tsresol absent = microseconds.
        out.write(_block(_IDB, struct.pack("<HHI", link_type, 0, _SNAPLEN)))
        interface[link_type] = number
    for ts, link_type, data, wire_len in frames:
        micros = round(ts * 1_000_000)
        padding = b"\x00" * (-len(data) % 4)
        body = struct.pack(
            "<IIIII",
            interface[link_type],
            micros >> 32,
            micros & 0xFFFFFFFF,
            len(data),
            max(wire_len, len(data)),
        )
        out.write(_block(_EPB, body + data + padding))
