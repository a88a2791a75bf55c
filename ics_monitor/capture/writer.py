"""Writing frames to a capture file: classic pcap for one link type, pcapng for several.

Classic pcap (draft-ietf-opsawg-pcap-03) holds one link type per file, so frames of several (a
replay over an Ethernet and a Linux cooked capture) go to pcapng (draft-ietf-opsawg-pcapng-03)
with one interface description block per link type.  Frames are written as they come (memory
does not grow with their number): a file starts as pcap and is rewritten once as pcapng when a
second link type arrives.  Timestamps are written in microseconds, the precision the readers'
float seconds keep at epoch scale; ``wire_len`` is kept as the original length, so a frame the
snap length cut stays marked as cut.  Frames are written as read: this module never decodes them.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import BinaryIO, Final

from ics_monitor.core.errors import IcsMonitorError

Frame = tuple[float, int, bytes, int]  # (ts, link_type, data, wire_len), as capture.files

_PCAP_MAGIC_US: Final = 0xA1B2C3D4
# The largest frame most readers take (Wireshark's and libpcap's limit for Ethernet and most link
# types); a longer frame is written cut to it, its wire length kept.
SNAPLEN: Final = 262_144
_PCAP_HEADER: Final = struct.Struct("<IHHiIII")
_PCAP_RECORD: Final = struct.Struct("<IIII")
_SHB: Final = 0x0A0D0D0A
_IDB: Final = 1
_EPB: Final = 6
_BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D


class UnwritableFrameError(IcsMonitorError):
    """A frame whose time a capture file cannot hold (before 1970, or past what its fields count)."""


class CaptureWriter:
    """Frames appended to ``path`` (created or truncated); ``close`` returns "pcap" or "pcapng"."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._out: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._interfaces: dict[int, int] = {}
        self._pcapng = False
        self.frames = 0
        self.cut = 0  # frames longer than SNAPLEN, written cut

    def write(self, frame: Frame) -> None:
        """Append one frame (cut to ``SNAPLEN`` bytes if longer: counted in ``cut``)."""
        ts, link_type, data, wire_len = frame
        if len(data) > SNAPLEN:
            frame = (ts, link_type, data[:SNAPLEN], max(wire_len, len(data)))
            self.cut += 1
        if link_type not in self._interfaces:
            if not self._interfaces:
                self._out.write(_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, link_type))
            elif not self._pcapng:
                self._to_pcapng()
            if self._pcapng:
                self._out.write(_idb(link_type))
            self._interfaces[link_type] = len(self._interfaces)
        if self._pcapng:
            self._out.write(_epb(self._interfaces[link_type], frame))
        else:
            self._out.write(_record(frame))
        self.frames += 1

    def _to_pcapng(self) -> None:
        """Rewrite what was written as pcap (one link type) as pcapng, then go on in pcapng."""
        from ics_monitor.capture.files import open_capture

        self._out.close()
        staging = self.path.with_name(self.path.name + ".pcap-staging")
        os.replace(self.path, staging)
        self._out = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._out.write(_block(_SHB, struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)))
        [link_type] = self._interfaces
        self._out.write(_idb(link_type))
        self._pcapng = True
        written = open_capture(str(staging))
        try:
            for frame in written:
                self._out.write(_epb(0, frame))
        finally:
            written.close()
            staging.unlink()

    def close(self) -> str:
        """Finish the file (a file with no frame is an empty pcap); returns its format.  Idempotent."""
        if self._out.closed:
            return "pcapng" if self._pcapng else "pcap"
        if not self._interfaces and not self._pcapng:
            self._out.write(_PCAP_HEADER.pack(_PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, 1))
        self._out.close()
        return "pcapng" if self._pcapng else "pcap"


def write_capture(path: str | Path, frames: list[Frame]) -> str:
    """Write ``frames`` (in the order given) to ``path``; returns the format written."""
    writer = CaptureWriter(path)
    try:
        for frame in frames:
            writer.write(frame)
    finally:
        kind = writer.close()
    return kind


def _micros(ts: float, limit: int) -> int:
    """``ts`` in whole microseconds, rounded (999999.6 carries into the next second), below ``limit``."""
    micros = round(ts * 1_000_000) if math.isfinite(ts) else -1
    if not 0 <= micros < limit:
        raise UnwritableFrameError(f"a frame's time ({ts}) cannot be written to a capture file")
    return micros


def _record(frame: Frame) -> bytes:
    ts, _link_type, data, wire_len = frame
    seconds, micros = divmod(_micros(ts, (1 << 32) * 1_000_000), 1_000_000)
    return _PCAP_RECORD.pack(seconds, micros, len(data), max(wire_len, len(data))) + data


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _idb(link_type: int) -> bytes:
    # Interface description: link type, reserved, snap length; no if_tsresol: microseconds.
    return _block(_IDB, struct.pack("<HHI", link_type, 0, SNAPLEN))


def _epb(interface: int, frame: Frame) -> bytes:
    ts, _link_type, data, wire_len = frame
    micros = _micros(ts, 1 << 64)
    head = struct.pack(
        "<IIIII", interface, micros >> 32, micros & 0xFFFFFFFF, len(data), max(wire_len, len(data))
    )
    return _block(_EPB, head + data + b"\x00" * (-len(data) % 4))
