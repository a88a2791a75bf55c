"""Byte builders for DNP3 tests, with a bit-by-bit CRC independent of the dissector's tables."""

from __future__ import annotations

import struct
from typing import Any

from ics_monitor.dissect import ParseContext, ParseResult
from ics_monitor.dissect.dnp3.dissector import Dnp3Dissector
from ics_monitor.events.base import AnomalyEvent

MASTER = 1
OUTSTATION = 10


def crc(data: bytes) -> bytes:
    value = 0
    for byte in data:
        value ^= byte
        for _ in range(8):
            value = (value >> 1) ^ 0xA6BC if value & 1 else value >> 1
    return struct.pack("<H", ~value & 0xFFFF)


def link(control: int, dst: int, src: int, user: bytes = b"", length: int | None = None) -> bytes:
    """One link frame with correct CRCs (``length`` overrides the LEN field)."""
    header = b"\x05\x64" + bytes([5 + len(user) if length is None else length, control])
    header += struct.pack("<HH", dst, src)
    frame = header + crc(header)
    for start in range(0, len(user), 16):
        block = user[start : start + 16]
        frame += block + crc(block)
    return frame


def segments(
    app: bytes, dst: int, src: int, from_master: bool, sequence: int = 0, size: int = 249
) -> list[bytes]:
    """An application fragment as unconfirmed user data frames, ``size`` bytes per segment."""
    control = (0x80 if from_master else 0) | 0x44
    chunks = [app[i : i + size] for i in range(0, len(app), size)] or [b""]
    frames = []
    for number, chunk in enumerate(chunks):
        transport = ((number + sequence) & 0x3F) | (0x40 if number == 0 else 0)
        transport |= 0x80 if number == len(chunks) - 1 else 0
        frames.append(link(control, dst, src, bytes([transport]) + chunk))
    return frames


def request(app: bytes, sequence: int = 0, src: int = MASTER, dst: int = OUTSTATION) -> bytes:
    return b"".join(segments(app, dst, src, True, sequence))


def response(app: bytes, sequence: int = 0, src: int = OUTSTATION, dst: int = MASTER) -> bytes:
    return b"".join(segments(app, dst, src, False, sequence))


def context(transport: str = "tcp") -> ParseContext:
    ctx = ParseContext("flow1", transport, "10.0.0.1", 40000, "10.0.0.2", 20000, strict=True)
    ctx.frame = 1
    ctx.ts = 1.5
    return ctx


class Harness:
    """Feeds bytes to one flow as the engine does after confirmation (buffering what is left)."""

    def __init__(self, transport: str = "tcp") -> None:
        self.dissector = Dnp3Dissector()
        self.ctx = context(transport)
        self.state: Any = self.dissector.new_state(self.ctx)
        self.buffers = [b"", b""]
        self.results: list[ParseResult] = []

    def feed(self, data: bytes, direction: int = 0, frame: int | None = None) -> list[Any]:
        if frame is not None:
            self.ctx.frame = frame
        buffer = self.buffers[direction] + data
        events: list[Any] = []
        position = 0
        while position < len(buffer):
            result = self.dissector.parse(self.state, memoryview(buffer)[position:], direction, self.ctx)
            self.results.append(result)
            assert not result.reject, "rejected"
            events.extend(result.events)
            if not result.consumed:
                assert result.needed > 0, "stalled"
                break
            position += result.consumed
        self.buffers[direction] = buffer[position:]
        return events

    @staticmethod
    def records(events: list[Any]) -> list[Any]:
        return [e for e in events if not isinstance(e, AnomalyEvent)]

    @staticmethod
    def codes(events: list[Any]) -> list[str]:
        return [e.code for e in events if isinstance(e, AnomalyEvent)]
