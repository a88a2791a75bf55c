"""DNP3 data link layer (IEEE 1815-2012 clause 9): frame header and CRC-checked user data.

::

    +------+------+--------+---------+-----------+-----------+----------+
    | 0x05 | 0x64 | LENGTH | CONTROL | DEST (LE) | SRC (LE)  | CRC (LE) |   header, 10 bytes
    +------+------+--------+---------+-----------+-----------+----------+
    | user data block, 16 bytes (the last one 1..16)        | CRC (LE) |   x ceil((LENGTH - 5) / 16)
    +--------------------------------------------------------+----------+

    CONTROL: DIR(7) PRM(6) FCB(5) FCV/DFC(4) FUNCTION(3..0)

LENGTH counts CONTROL, DEST, SRC and the user data, without CRCs: 5..255.  Pure functions over
bytes/memoryview; no state, no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

from ics_monitor.dissect.dnp3.crc import block_crc_ok, full_block_crc_ok

ADDRESSES: Final = struct.Struct("<HH")  # destination, source at offset 4 of the header

# Whole frame size (header, data, data CRCs) for every LENGTH value; 0 for impossible lengths.
FRAME_SIZE: tuple[int, ...] = tuple(
    0 if length < 5 else 10 + (length - 5) + 2 * ((length - 5 + 15) // 16) for length in range(256)
)

DIR: Final = 0x80
PRM: Final = 0x40
FCB: Final = 0x20
FCV: Final = 0x10  # DFC in secondary frames


def user_data(data: bytes | memoryview, offset: int, length: int) -> tuple[bytes, int]:
    """Return (user data, index of the first block with a bad CRC or -1) of the frame at ``offset``.

    ``data`` must hold the whole frame (``FRAME_SIZE[length]`` bytes from ``offset``) and
    ``length`` must be at least 6.  On a bad block the data is returned as far as it goes.
    """
    remaining = length - 5
    position = offset + 10
    if remaining <= 16:
        if not block_crc_ok(data, position, remaining):
            return b"", 0
        return bytes(data[position : position + remaining]), -1
    parts: list[bytes | memoryview] = []
    block = 0
    while remaining > 16:
        if not full_block_crc_ok(data, position):
            return b"".join(parts), block
        parts.append(data[position : position + 16])
        position += 18
        remaining -= 16
        block += 1
    if not block_crc_ok(data, position, remaining):
        return b"".join(parts), block
    parts.append(data[position : position + remaining])
    return b"".join(parts), -1


def user_data_unchecked(data: bytes | memoryview, offset: int, length: int) -> bytes:
    """User data of the frame at ``offset`` with the block CRCs stripped but not checked."""
    remaining = length - 5
    position = offset + 10
    parts: list[bytes | memoryview] = []
    while remaining > 0:
        block = 16 if remaining > 16 else remaining
        parts.append(data[position : position + block])
        position += block + 2
        remaining -= block
    return b"".join(parts)
