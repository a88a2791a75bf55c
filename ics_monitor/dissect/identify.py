"""Content identification of common IT protocols, for flow records and the inventory.

These are not dissectors: a recognised first payload labels the flow (``app_protocol``) and the flow
needs nothing more, so no PDU records are made and reassembly stops.  They are tried after the ICS
dissectors, and each probe demands a distinctive opening (a TLS record header, an HTTP method, an SSH
banner ...) so an OT flow is never taken for IT.  Which port a protocol runs on does not matter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ics_monitor.dissect.api import Dissector, ParseContext, ParseResult, Probe

_HTTP_OPENINGS = (
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"HTTP/1.",
)


def _tls(data: bytes) -> bool:
    # Record header: content type handshake (22), version 3.x (SSL 3.0 .. TLS 1.3), sane length.
    return (
        len(data) >= 5
        and data[0] == 0x16
        and data[1] == 3
        and data[2] <= 4
        and (data[3] << 8 | data[4]) <= 18432
    )


def _http(data: bytes) -> bool:
    return data.startswith(_HTTP_OPENINGS)


def _ssh(data: bytes) -> bool:
    return data.startswith(b"SSH-")


def _smb(data: bytes) -> bool:
    # NetBIOS session message (type 0) then the SMB1 or SMB2/3 magic; or, on port 139, the NetBIOS
    # session request (type 0x81, two encoded 34-byte names) that opens an SMB session.
    if len(data) >= 8 and data[0] == 0 and data[4:8] in (b"\xffSMB", b"\xfeSMB", b"\xfdSMB"):
        return True
    return len(data) >= 72 and data[0] == 0x81 and data[4] == 0x20 and data[38] == 0x20


def _rdp(data: bytes) -> bool:
    # TPKT + COTP connection request carrying an RDP cookie or negotiation request; S7's COTP CR has
    # TSAP parameters instead, and the S7 dissector is tried first anyway.
    if len(data) < 11 or data[0] != 3 or data[1] != 0 or data[5] & 0xF0 != 0xE0:
        return False
    return b"Cookie: mstshash=" in data or (len(data) >= 19 and data[-8] == 1 and data[-6:-4] == b"\x08\x00")


def _telnet(data: bytes) -> bool:
    # Option negotiation opens a Telnet session: IAC followed by WILL/WONT/DO/DONT.
    return len(data) >= 3 and data[0] == 0xFF and 0xFB <= data[1] <= 0xFE


def _vnc(data: bytes) -> bool:
    return data.startswith(b"RFB 0")


def _mqtt(data: bytes) -> bool:
    # CONNECT packet: fixed header 0x10, remaining length, then the protocol name.
    return len(data) >= 10 and data[0] == 0x10 and (data[4:8] == b"MQTT" or data[4:10] == b"MQIsdp")


class Identifier(Dissector):
    """Recognises one protocol by its opening bytes; marks the flow and asks for nothing more."""

    identify_only = True

    def __init__(self, name: str, test: Callable[[bytes], bool], minimum: int) -> None:
        self.name = name
        self.transports = frozenset({"tcp"})
        self._test = test
        self._minimum = minimum

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle by the constructor's arguments (registries go to worker processes).

        The base class may be compiled (mypyc): its pickling then keeps only its own attributes,
        not those this interpreted subclass holds in ``__dict__``.
        """
        return (Identifier, (self.name, self._test, self._minimum))

    def probe(self, data: memoryview, direction: int) -> Probe:
        """YES when the opening bytes are this protocol's."""
        if len(data) < self._minimum:
            return Probe.MORE
        return Probe.YES if self._test(bytes(data[:64])) else Probe.NO

    def parse(self, state: object, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        """Never reached in practice (identification ends the flow's dissection); consume all."""
        return ParseResult(consumed=len(data))


def identifiers() -> list[Dissector]:
    """The IT identifiers, in the order they are tried."""
    return [
        Identifier("tls", _tls, 5),
        Identifier("http", _http, 8),
        Identifier("ssh", _ssh, 4),
        Identifier("smb", _smb, 8),
        Identifier("rdp", _rdp, 11),
        Identifier("telnet", _telnet, 3),
        Identifier("vnc", _vnc, 5),
        Identifier("mqtt", _mqtt, 10),
    ]
