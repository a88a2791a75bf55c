"""Modbus RTU frames carried over TCP or UDP ("RTU over TCP"): where a frame ends, and its CRC.

Serial device servers and protocol gateways (and SCADA masters talking to them) often put the
serial line's frames on the network unchanged instead of converting them to MBAP (MODBUS over
Serial Line V1.02, 2.5.1)::

    +---------+---------------+---------------------+---------------------+
    | ADDRESS | FUNCTION CODE | DATA                | CRC-16 (low, high)  |
    | 1       | 1             | 0..252              | 2                   |
    +---------+---------------+---------------------+---------------------+
                '------------- PDU -----------------'

The frame has no length field: on the serial line silence ends it; on a TCP stream its end follows
from the function code and the direction (``frame_length``: fixed sizes, byte counts, the
objects of a read-device-identification answer), and where neither tells (FC 8/0 echoes,
FC 43/13, vendor codes) from the first offset where the two bytes are the CRC of what precedes
them (``crc_end``).  The CRC (polynomial 0xA001 reflected, initial 0xFFFF, low byte first) is
what makes framing and detection trustworthy: a wrong guess fails it 65,535 times in 65,536.

Pure functions over a buffer; no records, no state, no I/O.
"""

from __future__ import annotations

from typing import Final

from ics_monitor.dissect.modbus.constants import PLAUSIBLE_FIRST_CODES

# Address, function code and CRC: the smallest frame; address + 253-byte PDU + CRC: the largest.
MIN_FRAME: Final = 4
MAX_FRAME: Final = 256
# Serial addresses 248-255 are reserved (0 is broadcast, 1-247 devices).
MAX_ADDRESS: Final = 247
# Functions a broadcast (address 0) may carry: writes (and FC 8 sub-function 4, force listen only).
BROADCAST_FUNCTIONS: Final = frozenset({5, 6, 8, 15, 16, 21, 22, 23})
# Frames in one segment the probe checks before answering.
_PROBE_FRAMES: Final = 8


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE: Final[list[int]] = _crc_table()

# Total frame sizes (address to CRC) of the functions whose size is fixed, by function code.
_REQUEST_FIXED: Final[dict[int, int]] = {
    1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 4, 8: 8, 11: 4, 12: 4, 17: 4, 22: 10, 24: 6,
}  # fmt: skip
_RESPONSE_FIXED: Final[dict[int, int]] = {5: 8, 6: 8, 7: 5, 8: 8, 11: 8, 15: 8, 16: 8, 22: 10}
# Functions whose frame holds a one-byte byte count at this offset: size = offset + 1 + count + 2.
_REQUEST_COUNTED: Final[dict[int, int]] = {15: 6, 16: 6, 20: 2, 21: 2, 23: 10}
_RESPONSE_COUNTED: Final[dict[int, int]] = {1: 2, 2: 2, 3: 2, 4: 2, 12: 2, 17: 2, 20: 2, 21: 2, 23: 2}
_FIFO: Final = 24  # response: a two-byte byte count at offset 2
_MEI: Final = 43
_DIAGNOSTICS: Final = 8  # FC 8/0 echoes data of any size: its 8 bytes are only the usual case
_READ_DEVICE_ID: Final = 14
# Sizes ``frame_length`` returns besides a frame size.
UNKNOWN: Final = 0  # the function does not tell: find the end by the CRC
NEED_MORE: Final = -1  # the bytes that tell are not there yet


def crc16(data: bytes | memoryview, start: int, end: int) -> int:
    """CRC-16/MODBUS of ``data[start:end]``."""
    crc = 0xFFFF
    table = _TABLE
    for index in range(start, end):
        crc = (crc >> 8) ^ table[(crc ^ data[index]) & 0xFF]
    return crc


def crc_ok(data: bytes | memoryview, start: int, end: int) -> bool:
    """Whether the frame ``data[start:end]`` ends with the CRC of the bytes before it."""
    return end - start >= MIN_FRAME and crc16(data, start, end - 2) == data[end - 2] | (data[end - 1] << 8)


def crc_end(data: bytes | memoryview, start: int, limit: int) -> int:
    """The first end (at most ``limit``) of a CRC-valid frame starting at ``start``; 0 if none.

    One pass: the running CRC after each byte is compared with the two bytes that follow it.
    """
    limit = min(limit, start + MAX_FRAME)
    crc = 0xFFFF
    table = _TABLE
    index = start
    stop = limit - 2
    while index < stop:
        crc = (crc >> 8) ^ table[(crc ^ data[index]) & 0xFF]
        index += 1
        if index - start >= 2 and crc == data[index] | (data[index + 1] << 8):
            return index + 2
    return 0


def frame_length(data: bytes | memoryview, start: int, size: int, is_request: bool) -> int:
    """Size of the frame at ``data[start]`` from its function code: a size, ``UNKNOWN`` or ``NEED_MORE``.

    ``size`` is where the bytes at hand end.  Exception responses are 5 bytes; FC 43/14 answers
    are walked object by object; FC 8 is taken as the usual 8 bytes (a sub-function 0 echo of
    other length is found by the caller's CRC search).
    """
    if size - start < 2:
        return NEED_MORE
    function_code = data[start + 1]
    if not is_request and function_code & 0x80:
        return 5
    fixed = (_REQUEST_FIXED if is_request else _RESPONSE_FIXED).get(function_code)
    if fixed is not None:
        return fixed
    offset = (_REQUEST_COUNTED if is_request else _RESPONSE_COUNTED).get(function_code)
    if offset is not None:
        if size - start <= offset:
            return NEED_MORE
        return offset + 1 + data[start + offset] + 2
    if function_code == _MEI:
        if is_request:
            if size - start < 3:
                return NEED_MORE
            return 7 if data[start + 2] == _READ_DEVICE_ID else UNKNOWN
        return _device_id_length(data, start, size)
    if function_code == _FIFO and not is_request:
        if size - start < 4:
            return NEED_MORE
        return 4 + ((data[start + 2] << 8) | data[start + 3]) + 2
    return UNKNOWN


def _device_id_length(data: bytes | memoryview, start: int, size: int) -> int:
    """FC 43 answer: address, 43, MEI type, read code, conformity, more, next id, count, objects, CRC."""
    if size - start < 3:
        return NEED_MORE
    if data[start + 2] != _READ_DEVICE_ID:
        return UNKNOWN
    if size - start < 8:
        return NEED_MORE
    count = data[start + 7]
    position = start + 8
    for _ in range(count):
        if position + 2 > size:
            return NEED_MORE
        position += 2 + data[position + 1]  # object id, length, value
        if position - start > MAX_FRAME:
            return UNKNOWN  # not an answer that fits a frame: let the CRC decide
    return position - start + 2


def plausible_head(data: bytes | memoryview, start: int) -> bool:
    """Address 1-247 and a function code Modbus defines (or its exception response).

    Address 0 (broadcast) only with a write, the only requests a broadcast may carry (Serial Line 2.1).
    """
    address = data[start]
    if address == 0:
        return data[start + 1] in BROADCAST_FUNCTIONS
    return address <= MAX_ADDRESS and data[start + 1] in PLAUSIBLE_FIRST_CODES


def frame_end(
    data: bytes | memoryview, start: int, size: int, is_request: bool, probing: bool = False
) -> int:
    """End of a CRC-valid frame at ``start``: by ``frame_length`` first, else by the CRC search.

    Negative when more bytes could complete it (``-needed``), 0 when nothing at hand is a good frame.
    ``probing``: a frame whose size only its CRC tells must be complete in the bytes at hand (a
    flow is not held back for a vendor function code that any text may start with).
    """
    expected = frame_length(data, start, size, is_request)
    if expected == NEED_MORE:
        return -1
    if expected >= MIN_FRAME:
        end = start + expected
        if expected > MAX_FRAME:
            return 0
        if end > size:
            return size - end  # negative: the bytes still missing
        if crc_ok(data, start, end):
            return end
        if data[start + 1] != _DIAGNOSTICS:
            return 0  # the size is the function's: a bad CRC is a bad frame, not another size
        expected = UNKNOWN  # an FC 8 echo of another size: only its CRC tells where it ends
    end = crc_end(data, start, size)
    if end:
        return end
    if size - start < MAX_FRAME and expected == UNKNOWN and not probing:
        return -1  # a frame whose size only its CRC tells may still be arriving
    return 0


def probe_frames(data: bytes | memoryview, is_request: bool, whole_first: bool = False) -> int:
    """How ``data`` reads as RTU frames from its start: 1 yes, -1 perhaps with more bytes, 0 no.

    Yes: every byte is in CRC-valid frames (up to eight are checked); a request never has the
    exception bit, and a frame whose size only its CRC tells must end the bytes at hand (a CRC
    match at any offset of a long segment is too easy a test).  ``whole_first`` (the probe of a
    flow): the first frame's size must be its function's, as found by the CRC search it would
    be a 1-in-65,536 chance for any text that starts with a vendor code's letter; and "perhaps"
    only once that first whole frame's CRC held, never for its head alone.
    """
    size = len(data)
    position = 0
    for _ in range(_PROBE_FRAMES):
        if size - position < 2:
            return -1 if position or not whole_first else 0
        if not plausible_head(data, position) or (is_request and data[position + 1] & 0x80):
            return 0
        end = frame_end(data, position, size, is_request, True)
        if end < 0:
            return -1 if position or not whole_first else 0
        if end == 0:
            return 0
        if (end != size or (whole_first and not position)) and end - position != frame_length(
            data, position, size, is_request
        ):
            return 0  # found by the CRC search: yet more bytes follow, or it opens the flow
        if end == size:
            return 1
        position = end
    return 1
