"""Per-flow DNP3 state: transport reassembly and request/response pairing, all capped.

Pairing (IEEE 1815 4.2.2.4): a solicited response carries its request's sequence number; the
fragments after the first of a multi-fragment response count up from there, so the request is
remembered per association (master address, outstation address) until the FIN fragment.  A CONFIRM
carries the sequence of the (unsolicited) response it confirms.  No I/O.
"""

from __future__ import annotations

from typing import Final

from ics_monitor.dissect.dnp3.constants import MAX_ASSOCIATIONS
from ics_monitor.dissect.dnp3.transport import Reassembler

Association = tuple[int, int]  # (master address, outstation address)
Request = tuple[int, int]  # (function code, frame)
Endpoints = tuple[str, int, str, int]
# Sequence numbers are 4 bits: at most 16 requests can be told apart per association.
SEQUENCES: Final = 16


class Dnp3State:
    """Everything the dissector remembers about one flow."""

    __slots__ = ("confirmable", "confirmed", "endpoints", "pending", "reassembler", "responding")

    def __init__(self, to_server: Endpoints = ("", 0, "", 0), to_client: Endpoints = ("", 0, "", 0)) -> None:
        # (src_ip, src_port, dst_ip, dst_port) per direction, formatted once per flow.
        self.endpoints = (to_server, to_client)
        self.confirmed = False
        self.reassembler = Reassembler()
        self.pending: dict[Association, dict[int, Request]] = {}
        self.responding: dict[Association, Request | None] = {}
        # Responses asking for a confirm: (outstation, master) -> (sequence, uns) -> frame.
        self.confirmable: dict[Association, dict[tuple[int, bool], int]] = {}

    def reset(self) -> None:
        """Forget everything (detection re-parses the buffered bytes from the start)."""
        self.reassembler = Reassembler()
        self.pending.clear()
        self.responding.clear()
        self.confirmable.clear()

    def request(self, master: int, outstation: int, sequence: int, function_code: int, frame: int) -> bool:
        """Remember a request; False when the association table was full (its oldest entry went)."""
        key = (master, outstation)
        table = self.pending.get(key)
        full = False
        if table is None:
            if len(self.pending) >= MAX_ASSOCIATIONS:
                del self.pending[next(iter(self.pending))]
                full = True
            table = self.pending[key] = {}
        table[sequence] = (function_code, frame)
        return not full

    def response(self, master: int, outstation: int, sequence: int, fir: bool, fin: bool) -> Request | None:
        """The request a solicited response fragment answers (None when it was not seen)."""
        key = (master, outstation)
        if fir:
            table = self.pending.get(key)
            request = table.pop(sequence, None) if table else None
            if not fin:
                self.responding[key] = request
            elif self.responding:
                self.responding.pop(key, None)
            return request
        request = self.responding.get(key)
        if fin:
            self.responding.pop(key, None)
        return request

    def expect_confirm(self, outstation: int, master: int, sequence: int, uns: bool, frame: int) -> None:
        """A response asked for an application confirm."""
        key = (outstation, master)
        table = self.confirmable.get(key)
        if table is None:
            if len(self.confirmable) >= MAX_ASSOCIATIONS:
                return
            table = self.confirmable[key] = {}
        table[(sequence, uns)] = frame
        if len(table) > SEQUENCES * 2:
            del table[next(iter(table))]

    def confirm(self, master: int, outstation: int, sequence: int, uns: bool) -> int | None:
        """Frame of the response this CONFIRM acknowledges, if seen."""
        table = self.confirmable.get((outstation, master))
        return table.pop((sequence, uns), None) if table else None
