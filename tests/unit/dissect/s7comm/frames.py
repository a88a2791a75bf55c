"""Byte builders for S7 tests, written from the protocol layouts (no code shared with the dissector)."""

from __future__ import annotations

import itertools
import struct
from typing import Any

from ics_monitor.dissect import ParseContext, ParseResult
from ics_monitor.dissect.s7comm.dissector import S7commDissector
from ics_monitor.events.base import AnomalyEvent


def tpkt(cotp: bytes, version: int = 3, length: int | None = None) -> bytes:
    return struct.pack(">BBH", version, 0, 4 + len(cotp) if length is None else length) + cotp


def dt(payload: bytes, eot: bool = True, number: int = 0) -> bytes:
    """COTP data TPDU (LI 2, code 0xF0, EOT|number) in a TPKT."""
    return tpkt(bytes([2, 0xF0, (0x80 if eot else 0) | number]) + payload)


def connect(code: int, src_tsap: bytes, dst_tsap: bytes, dst_ref: int = 0, src_ref: int = 1) -> bytes:
    """COTP CR (0xE0) / CC (0xD0): references, class 0, TPDU size 1024 (0x0A), two TSAPs."""
    parameters = bytes([0xC0, 1, 0x0A])
    parameters += bytes([0xC1, len(src_tsap)]) + src_tsap
    parameters += bytes([0xC2, len(dst_tsap)]) + dst_tsap
    fixed = bytes([code]) + struct.pack(">HH", dst_ref, src_ref) + b"\x00"
    return tpkt(bytes([len(fixed) + len(parameters)]) + fixed + parameters)


def s7(rosctr: int, ref: int, parameter: bytes, data: bytes = b"", error: int | None = None) -> bytes:
    header = struct.pack(">BBHHHH", 0x32, rosctr, 0, ref, len(parameter), len(data))
    if rosctr in (2, 3):
        header += struct.pack(">H", error or 0)
    return header + parameter + data


def any_item(area: int, db: int, start: int, length: int, transport_size: int = 2, bit: int = 0) -> bytes:
    address = start * 8 + bit
    return (
        bytes([0x12, 10, 0x10, transport_size])
        + struct.pack(">HHB", length, db, area)
        + address.to_bytes(3, "big")
    )


def read_job(ref: int, items: list[bytes]) -> bytes:
    return s7(1, ref, bytes([0x04, len(items)]) + b"".join(items))


def read_answer(ref: int, values: list[bytes], transport_size: int = 0x04) -> bytes:
    data = b""
    for index, value in enumerate(values):
        length = len(value) * 8 if transport_size in (3, 4, 5) else len(value)
        data += bytes([0xFF, transport_size]) + struct.pack(">H", length) + value
        if len(value) % 2 and index < len(values) - 1:
            data += b"\x00"
    return s7(3, ref, bytes([0x04, len(values)]), data)


def userdata(
    ref: int,
    kind: int,
    group: int,
    subfunction: int,
    payload: bytes,
    sequence: int = 0,
    reference: int = 0,
    last: bool = True,
    return_code: int = 0xFF,
) -> bytes:
    if kind == 1:
        parameter = bytes([0x00, 0x01, 0x12, 0x04, 0x11, 0x40 | group, subfunction, sequence])
    else:
        parameter = bytes([0x00, 0x01, 0x12, 0x08, 0x12, (kind << 6) | group, subfunction, sequence])
        parameter += bytes([reference, 0 if last else 1, 0, 0])
    return s7(7, ref, parameter, bytes([return_code, 0x09]) + struct.pack(">H", len(payload)) + payload)


def module_entry(index: int, order: str, high: int, low: int) -> bytes:
    """SZL 0x0011 entry: index, 20-character order number, module type id, Ausbg, Ausbe."""
    return struct.pack(">H", index) + order.encode().ljust(20, b" ") + struct.pack(">HHH", 0x00C0, high, low)


def component_entry(index: int, value: str) -> bytes:
    """SZL 0x001C entry: index and a 32-byte NUL-padded text."""
    return struct.pack(">H", index) + value.encode().ljust(32, b"\x00")


def szl_answer(ref: int, szl_id: int, index: int, entry_length: int, entries: list[bytes]) -> bytes:
    payload = struct.pack(">HHHH", szl_id, index, entry_length, len(entries)) + b"".join(entries)
    return userdata(ref, 2, 4, 1, payload)


def file_name(block_type: str, number: int, filesystem: str = "P") -> bytes:
    name = f"_{block_type}{number:05d}{filesystem}".encode()
    return bytes([len(name)]) + name


def plus(version: int, body: bytes, trailer: bool = True, digest: bool = False) -> bytes:
    part = (bytes([32]) + bytes(32) if digest else b"") + body
    pdu = bytes([0x72, version]) + struct.pack(">H", len(part)) + part
    return pdu + (bytes([0x72, version, 0, 0]) if trailer else b"")


def plus_fragments(version: int, body: bytes, cuts: list[int], digest: bool = False) -> list[bytes]:
    """One S7comm-plus message split at ``cuts`` of its body: fragments without a trailer, then the
    last with it (each with its own integrity part when ``digest``)."""
    edges = [0, *cuts, len(body)]
    parts = [body[start:end] for start, end in itertools.pairwise(edges)]
    return [
        plus(version, part, trailer=index == len(parts) - 1, digest=digest)
        for index, part in enumerate(parts)
    ]


def plus_request(function: int, sequence: int, session: int) -> bytes:
    return bytes([0x31, 0, 0]) + struct.pack(">HHHI", function, 0, sequence, session) + b"\x36"


def plus_response(function: int, sequence: int) -> bytes:
    return bytes([0x32, 0, 0]) + struct.pack(">HHH", function, 0, sequence) + b"\x00"


CR = connect(0xE0, b"\x01\x00", b"\x01\x02")
CC = connect(0xD0, b"\x01\x00", b"\x01\x02", dst_ref=1)
DB1_READ = any_item(0x84, 1, 0, 4)


def context() -> ParseContext:
    ctx = ParseContext("flow1", "tcp", "10.0.0.1", 40000, "10.0.0.2", 102, strict=True)
    ctx.frame = 1
    ctx.ts = 1.5
    return ctx


class Harness:
    """Feeds bytes to one flow as the engine does (buffering what is left of a direction)."""

    def __init__(self, confirmed: bool = True) -> None:
        self.dissector = S7commDissector()
        self.ctx = context()
        self.state: Any = self.dissector.new_state(self.ctx)
        self.state.confirmed = confirmed
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
            events.extend(result.events)
            if result.reject:
                buffer = b""
                position = 0
                break
            if not result.consumed:
                assert result.needed > 0, "stalled"
                break
            position += result.consumed
        self.buffers[direction] = buffer[position:]
        return events

    def close(self) -> list[Any]:
        return list(self.dissector.close(self.state, self.ctx))

    @staticmethod
    def records(events: list[Any]) -> list[Any]:
        return [e for e in events if not isinstance(e, AnomalyEvent)]

    @staticmethod
    def codes(events: list[Any]) -> list[str]:
        return [e.code for e in events if isinstance(e, AnomalyEvent)]
