"""Byte builders and a parse harness for Modbus tests (the MBAP framing written out independently)."""

from __future__ import annotations

import struct
from typing import Any

from ics_monitor.dissect import ParseContext, ParseResult
from ics_monitor.dissect.modbus.dissector import ModbusDissector
from ics_monitor.events.base import AnomalyEvent

CLIENT_PORT = 40000


def adu(
    transaction_id: int, unit_id: int, pdu: bytes, protocol_id: int = 0, length: int | None = None
) -> bytes:
    """One Modbus/TCP ADU; ``length`` overrides the MBAP length (unit id + PDU bytes)."""
    return (
        struct.pack(
            ">HHHB",
            transaction_id,  # transaction id
            protocol_id,  # protocol id (0 = Modbus)
            len(pdu) + 1 if length is None else length,  # length: unit id + PDU
            unit_id,  # unit id
        )
        + pdu
    )


def read_request(function_code: int, address: int, quantity: int) -> bytes:
    """FC 1-4 request PDU."""
    return struct.pack(
        ">BHH",
        function_code,  # function code
        address,  # starting address
        quantity,  # quantity of coils / inputs / registers
    )


def registers_response(function_code: int, values: list[int]) -> bytes:
    """FC 3/4/23 response PDU."""
    return (
        bytes(
            [
                function_code,  # function code
                2 * len(values),  # byte count
            ]
        )
        + struct.pack(f">{len(values)}H", *values)  # register values
    )


def context(transport: str = "tcp", server_port: int = 502) -> ParseContext:
    ctx = ParseContext("flow1", transport, "10.0.0.1", CLIENT_PORT, "10.0.0.2", server_port, strict=True)
    ctx.frame = 1
    ctx.ts = 100.0
    return ctx


class Harness:
    """Feeds bytes to one flow as the engine does (buffering what is left), checking the contract."""

    def __init__(self, transport: str = "tcp", server_port: int = 502, **options: Any) -> None:
        self.dissector = ModbusDissector(**options)
        self.ctx = context(transport, server_port)
        self.state: Any = self.dissector.new_state(self.ctx)
        self.buffers = [b"", b""]
        self.results: list[ParseResult] = []

    def feed(
        self, data: bytes, direction: int = 0, frame: int | None = None, ts: float | None = None
    ) -> list[Any]:
        """Give ``data`` in ``direction``; return the events of every parse call it caused."""
        if frame is not None:
            self.ctx.frame = frame
        if ts is not None:
            self.ctx.ts = ts
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
