"""Modbus ASCII frames carried over TCP or UDP: where a frame ends, its bytes, and its LRC.

MODBUS over Serial Line V1.02, 2.5.2: each byte of the frame is sent as two hexadecimal
characters, between a colon and CR LF::

    +-----+---------+---------------+-------------+-----+-------+
    | ':' | ADDRESS | FUNCTION CODE | DATA        | LRC | CR LF |
    | 1   | 2 hex   | 2 hex         | 0..2x252    | 2   | 2     |
    +-----+---------+---------------+-------------+-----+-------+

The LRC is the two's complement of the 8-bit sum of address, function code and data.  Frames
end at CR and a delimiter, LF unless FC 8 sub-function 3 (Change ASCII Input Delimiter, 6.8.1)
made it another byte; a lone LF, which some gateways send, ends one too.  Framing needs no table; what makes detection trustworthy is that every byte
between colon and CR LF is a hexadecimal digit, the count is even, the LRC holds and the address
and function code are plausible.  Pure functions over a buffer; no records, no state, no I/O.
"""

from __future__ import annotations

from typing import Final

from ics_monitor.dissect.modbus.rtu import NEED_MORE, UNKNOWN, frame_length, plausible_head

COLON: Final = 0x3A
_CR: Final = 0x0D
_LF: Final = 0x0A
# Address, function code, LRC: the fewest digits a frame has.
_MIN_DIGITS: Final = 6
# Colon, address, function code, 252 data bytes, LRC, CR and delimiter: the largest frame.
MAX_FRAME: Final = 1 + 2 * (1 + 253 + 1) + 2
# Frames one segment may hold for the probe to take it for a flow's start: a master has one
# request out at a time on a serial line.  An Intel HEX file (firmware, sent over FTP or a
# bootloader's socket) has the very same line format and checksum, and its first segment holds
# dozens of lines: at more than two it is no Modbus flow.
_PROBE_FRAMES: Final = 2
# Value of each byte as a hexadecimal digit (either case), -1 for any other byte.
_HEX: Final[list[int]] = [
    int(chr(byte), 16) if chr(byte) in "0123456789abcdefABCDEF" else -1 for byte in range(256)
]


def frame_end(data: bytes | memoryview, start: int, size: int) -> int:
    """End (after its line end) of the frame at ``start``; -1 when it may still be arriving, 0 when none is.

    The digits end at the first other byte: a CR, and the byte after it is the delimiter (LF, or
    what FC 8/3 set; not a colon, which starts the next frame of a sender that omits it), or a
    lone LF.  A CR that ends the bytes at hand ends the frame there: a sender that puts no
    delimiter after it would otherwise have its every frame held back until its next one (the
    delimiter, should one come first in the next segment, is skipped then: ``ends_at_cr``).  Only
    the shape is checked here (colon, line end within the size limit); ``decode`` checks the rest.
    """
    if data[start] != COLON:
        return 0
    limit = min(size, start + MAX_FRAME)
    table = _HEX
    for index in range(start + 1, limit):
        byte = data[index]
        if table[byte] >= 0:
            continue
        if index - start < _MIN_DIGITS + 1:
            return 0
        if byte == _LF:
            return index + 1
        if byte != _CR:
            return 0
        if index + 1 >= size or data[index + 1] == COLON:
            return index + 1
        return index + 2
    return -1 if limit - start < MAX_FRAME else 0


def ends_at_cr(data: bytes | memoryview, end: int) -> bool:
    """Whether a frame ``frame_end`` ended at ``end`` ended with a CR and no delimiter after it."""
    return data[end - 1] == _CR


def decode(data: bytes | memoryview, start: int, end: int) -> bytes | None:
    """The frame's bytes (address, PDU, LRC) when its hex digits are whole; else None.

    The digits run from the colon to the first other byte, which must be the CR or LF of the
    line end (``end`` as ``frame_end`` gives it).
    """
    table = _HEX
    stop = start + 1
    while stop < end and table[data[stop]] >= 0:
        stop += 1
    if stop >= end or data[stop] not in (_CR, _LF):
        return None
    digits = stop - start - 1
    if digits < _MIN_DIGITS or digits & 1:
        return None
    out = bytearray()
    for index in range(start + 1, stop, 2):
        out.append((table[data[index]] << 4) | table[data[index + 1]])
    return bytes(out)


def lrc_ok(frame: bytes) -> bool:
    """Whether the last byte of ``frame`` (address, PDU, LRC) is the LRC of the others."""
    return (-sum(frame[:-1])) & 0xFF == frame[-1]


def probe_frames(data: bytes | memoryview) -> int:
    """How ``data`` reads as ASCII frames from its start: 1 yes, -1 perhaps with more bytes, 0 no.

    Yes: every byte is in at most two frames whose digits decode, whose LRC holds and whose
    address and function code are plausible.  Perhaps: a frame still arriving whose address and
    function code (the first four digits) are plausible, after any whole good frames.
    """
    size = len(data)
    position = 0
    for _ in range(_PROBE_FRAMES):
        end = frame_end(data, position, size)
        if end < 0:
            return -1 if plausible_start(data, position, size) else 0
        if end == 0:
            return 0
        frame = decode(data, position, end)
        if frame is None or not lrc_ok(frame) or not plausible_head(frame, 0):
            return 0
        if end == size:
            return 1
        position = end
    return 0


def first_frame(data: bytes | memoryview) -> bytes | None:
    """The bytes (address, PDU, LRC) of the whole frame ``data`` starts with, or None."""
    end = frame_end(data, 0, len(data))
    return decode(data, 0, end) if end > 0 else None


def reads_as(frame: bytes, is_request: bool) -> bool:
    """Whether a decoded frame has the size its function gives a request (or a response).

    As an RTU frame it would be one byte longer (a two-byte CRC for the LRC).  True where the
    function does not tell (FC 8/0 echoes, vendor codes).
    """
    expected = frame_length(frame, 0, len(frame), is_request)
    return expected == UNKNOWN or (expected != NEED_MORE and expected == len(frame) + 1)


def plausible_start(data: bytes | memoryview, start: int, size: int) -> bool:
    """A colon and four hex digits that make a plausible address and function code."""
    if size - start < 5 or data[start] != COLON:
        return False
    digits = [_HEX[data[index]] for index in range(start + 1, start + 5)]
    if min(digits) < 0:
        return False
    return plausible_head(bytes(((digits[0] << 4) | digits[1], (digits[2] << 4) | digits[3])), 0)


def next_start(data: bytes | memoryview, start: int, size: int) -> int:
    """Offset of the next colon after ``start``, or ``size``."""
    for index in range(start + 1, size):
        if data[index] == COLON:
            return index
    return size
