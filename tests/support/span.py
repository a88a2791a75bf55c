"""Captures as an imperfect SPAN port records them: frames out of order, frames dropped.

A switch that mirrors a port's receive and transmit sides through separate queues can deliver an
answer a fraction of a millisecond before its question; a busy SPAN port drops frames.  These
rewrite a classic pcap file the same way, so tests can replay the project's own captures as such
a sensor would have recorded them.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",
    b"\xa1\xb2\x3c\x4d": ">",
}


def _frames(raw: bytes) -> tuple[str, list[tuple[int, int, int, bytes]]]:
    order = _MAGICS[raw[:4]]
    frames = []
    position = 24
    while position + 16 <= len(raw):
        sec, frac, incl, orig = struct.unpack_from(order + "IIII", raw, position)
        frames.append((sec, frac, orig, raw[position + 16 : position + 16 + incl]))
        position += 16 + incl
    return order, frames


def _write(target: Path, header: bytes, order: str, frames: list[tuple[int, int, int, bytes]]) -> Path:
    out = [header]
    for sec, frac, orig, data in frames:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig))
        out.append(data)
    target.write_bytes(b"".join(out))
    return target


def reordered(source: Path, target: Path, every: int = 7) -> Path:
    """``source`` with one adjacent pair of frames swapped every ``every`` frames.

    The timestamps stay where they were (a sensor stamps frames as they reach it): the later
    frame takes the earlier one's time.
    """
    raw = source.read_bytes()
    order, frames = _frames(raw)
    for first in range(0, len(frames) - 1, every):
        a, b = frames[first], frames[first + 1]
        frames[first] = (a[0], a[1], b[2], b[3])
        frames[first + 1] = (b[0], b[1], a[2], a[3])
    return _write(target, raw[:24], order, frames)


def lossy(source: Path, target: Path, share: float, seed: int = 7) -> Path:
    """``source`` without a random ``share`` of its frames (the same ones for the same ``seed``)."""
    raw = source.read_bytes()
    order, frames = _frames(raw)
    rng = random.Random(seed)
    return _write(target, raw[:24], order, [frame for frame in frames if rng.random() >= share])
