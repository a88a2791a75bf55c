"""The dissector contract: what a protocol parser receives and must return.

A dissector is a stateless object with per-flow state kept in an object it creates (``new_state``).
``parse`` gets the bytes buffered so far in one direction and answers with a ``ParseResult``:

* complete: ``consumed`` > 0 bytes made one or more PDUs (``events`` holds their records); a PDU
  that is well formed but yields no record of its own (a COTP connect, one link frame of a longer
  DNP3 fragment) sets ``valid`` so that it can confirm the flow;
* truncated: ``consumed`` == 0 and ``needed`` > 0 more bytes are required;
* not this protocol: ``NOT_THIS_PROTOCOL``.  Before the flow is confirmed this drops the candidate;
  after confirmation it means "lost sync": the engine discards the buffered bytes of that direction
  and looks for the next PDU boundary with ``probe``.

Zero consumed with zero needed is a bug and is reported as ``internal.parse_stalled``.  Broken PDUs
after confirmation are anomaly events (``ctx.anomaly``) and are skipped by their length field.
Directions are ints: 0 client to server, 1 server to client.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ics_monitor.core.anomalies import severity_name
from ics_monitor.events.base import AnomalyEvent, Event, new_anomaly_event

TO_SERVER: Final = 0
TO_CLIENT: Final = 1


class Probe(Enum):
    """Answer of ``Dissector.probe`` on the first bytes of a stream or datagram."""

    YES = "yes"
    NO = "no"
    MORE = "more"  # too few bytes to tell


class ParseResult:
    """Outcome of one ``parse`` call (see the module docstring)."""

    __slots__ = ("consumed", "events", "needed", "reject", "valid")

    def __init__(
        self,
        consumed: int = 0,
        needed: int = 0,
        events: Sequence[Event] = (),
        reject: bool = False,
        valid: bool = False,
    ) -> None:
        self.consumed = consumed
        self.needed = needed
        self.events = events
        self.reject = reject
        # True: the consumed bytes were a well-formed PDU of this protocol even without a record.
        self.valid = valid

    def __repr__(self) -> str:
        return (
            f"ParseResult(consumed={self.consumed}, needed={self.needed}, "
            f"events={len(self.events)}, reject={self.reject}, valid={self.valid})"
        )


NOT_THIS_PROTOCOL: Final = ParseResult(reject=True)


class ParseContext:
    """What a dissector may know about the flow and the current packet.

    Endpoint strings are formatted once per flow.  ``ts`` and ``frame`` are those of the packet
    that completed the bytes being parsed.
    """

    __slots__ = (
        "client_ip",
        "client_port",
        "cut",
        "flow_id",
        "frame",
        "protocol",
        "server_ip",
        "server_port",
        "strict",
        "transport",
        "ts",
    )

    def __init__(
        self,
        flow_id: str,
        transport: str,
        client_ip: str,
        client_port: int,
        server_ip: str,
        server_port: int,
        strict: bool = False,
    ) -> None:
        self.flow_id = flow_id
        self.transport = transport
        self.client_ip = client_ip
        self.client_port = client_port
        self.server_ip = server_ip
        self.server_port = server_port
        self.strict = strict
        self.ts = 0.0
        self.frame = 0
        self.protocol: str | None = None
        # Bytes the capture's snap length cut off the end of the datagram being parsed (UDP; 0
        # for a whole one): its last PDU ends early through no fault of the sender.
        self.cut = 0

    def endpoints(self, direction: int) -> tuple[str, int, str, int]:
        """Return (src_ip, src_port, dst_ip, dst_port) of bytes travelling in ``direction``."""
        if direction == TO_SERVER:
            return self.client_ip, self.client_port, self.server_ip, self.server_port
        return self.server_ip, self.server_port, self.client_ip, self.client_port

    def anomaly(self, code: str, direction: int, detail: str) -> AnomalyEvent:
        """Build an anomaly event about the current PDU (``code`` from ``core.anomalies``)."""
        src_ip, src_port, dst_ip, dst_port = self.endpoints(direction)
        return new_anomaly_event(
            self.ts,
            self.frame,
            code,
            severity_name(code),
            detail,
            self.protocol or code.split(".", 1)[0],
            self.flow_id,
            self.transport,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            "to_server" if direction == TO_SERVER else "to_client",
        )


# Compiled by mypyc this is a native class; tests and plug-ins subclass it from interpreted code.
def mark_truncated(events: list[Event], *cut_codes: str) -> list[Event]:
    """What ``Dissector.truncated`` returns of the ``events`` a cut PDU gave.

    Protocol records marked ``truncated``; the anomalies whose codes say only that the PDU is
    short (``cut_codes``) left out.
    """
    kept: list[Event] = []
    for event in events:
        if isinstance(event, AnomalyEvent):
            if event.code not in cut_codes:
                kept.append(event)
            continue
        # Not yet handed on: the record's own dict may still be written (see events.base).
        # Through the dict, on the record as an ``Event``: compiled (mypyc), setting it on the
        # record narrowed to ``ProtocolEvent`` had no effect.
        event.__dict__["truncated"] = True
        kept.append(event)
    return kept


@mypyc_attr(allow_interpreted_subclasses=True)
class Dissector:
    """Base class of protocol dissectors; subclasses override the class attributes and methods.

    ``tcp_ports``/``udp_ports`` are hints: flows to those server ports try this dissector first, all
    other flows of a listed transport still try it by ``probe``.  ``max_pdu`` caps the bytes buffered
    for one PDU.
    """

    name: str = ""
    transports: frozenset[str] = frozenset()
    tcp_ports: frozenset[int] = frozenset()
    udp_ports: frozenset[int] = frozenset()
    max_pdu: int = 65536
    # True for content identifiers: a YES probe labels the flow and ends its dissection.
    identify_only: bool = False

    def probe(self, data: memoryview, direction: int) -> Probe:
        """Cheap check of the first bytes of a stream direction or datagram."""
        raise NotImplementedError

    def new_state(self, ctx: ParseContext) -> Any:
        """Per-flow state object (pending requests, reassembly buffers ...)."""
        return None

    def parse(self, state: Any, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        """Parse PDUs from the start of ``data`` (see the module docstring)."""
        raise NotImplementedError

    def gap(self, state: Any, direction: int, ctx: ParseContext) -> None:
        """Bytes were lost in ``direction``: drop partial state that depended on them."""

    def truncated(
        self, state: Any, data: memoryview, direction: int, ctx: ParseContext, missing: int
    ) -> Sequence[Event]:
        """The PDU at the start of ``data`` will not be completed: ``missing`` bytes after it are gone.

        The capture's snap length cut its segment, or the capture lost bytes.  Records for what
        ``data`` holds, marked ``truncated`` (none when too little is there); no anomaly for the
        missing end, which is not the sender's fault.  By default nothing.
        """
        return ()

    def close(self, state: Any, ctx: ParseContext) -> Sequence[Event]:
        """The flow ended: report what is left (unanswered requests, unfinished transfers)."""
        return ()
