"""Per-flow Modbus state: the requests waiting for their response, capped and timed out.

Pairing (Messaging on TCP/IP Implementation Guide 3.1.3): a server copies the transaction id and the
unit id of the request into its response, so (unit id, transaction id) identifies a transaction
within one TCP connection (or UDP flow).  RTU and ASCII frames carry no transaction id: a serial
master has one request out per address, so the key is the unit id alone (``unit << 16``).
Requests wait in insertion order; expiry only looks at the oldest, so the check costs one
comparison per call while nothing is late.  No I/O.
"""

from __future__ import annotations

from typing import Final

from ics_monitor.dissect.modbus.constants import FRAMING_MBAP, MAX_PENDING, REQUEST_TIMEOUT
from ics_monitor.dissect.modbus.parser import Request
from ics_monitor.events.modbus import Head

_NEVER: Final = float("inf")


class ModbusState:
    """Everything the dissector remembers about one flow."""

    __slots__ = (
        "answered_units",
        "ascii_cr_end",
        "asked_units",
        "check_at",
        "confirmed",
        "framing",
        "heads",
        "last_answered",
        "last_asked",
        "lost_requests",
        "max_pending",
        "pending",
        "rtu_frames",
        "skipped",
        "standard_port",
        "swapped",
        "timeout",
        "unit_mismatches",
    )

    def __init__(
        self,
        heads: tuple[Head, Head],
        max_pending: int = MAX_PENDING,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        # Record heads per direction: (flow_id, transport, src_ip, src_port, dst_ip, dst_port, direction).
        self.heads = heads
        self.confirmed = False
        # The flow uses the registered port (502): the probe is trusted, first PDUs may be quirky.
        self.standard_port = False
        # 1 when requests travel server-to-client in flow terms (the connection came from port 502).
        self.swapped = 0
        # MBAP, or RTU / ASCII frames (constants), decided by the first bytes parsed; and how many
        # good RTU frames came (a flow that turns out MBAP is switched back early on).
        self.framing = FRAMING_MBAP
        self.rtu_frames = 0
        # Per direction: the last ASCII frame ended with a CR at the end of a segment, so the
        # delimiter after it (LF, or what FC 8/3 set) may open the next segment.
        self.ascii_cr_end = [False, False]
        # The last ADU was skipped for a bad protocol id (a second one in a row means lost sync).
        self.skipped = False
        # Requests were lost from the capture (a gap in their direction) since the last answer
        # that paired: an answer to nothing seen may answer one of them.
        self.lost_requests = False
        # (unit id << 16 | transaction id) -> request, oldest first.
        self.pending: dict[int, Request] = {}
        # Bit n set: a Modbus/TCP request to unit n was seen on this flow; the last unit asked
        # (most flows ask one unit: one comparison per request, see ``ask``).
        self.asked_units = 0
        self.last_asked = -1
        # Likewise the units that answered a request to themselves (paired by unit and
        # transaction id): not a device that ignores the unit id.
        self.answered_units = 0
        self.last_answered = -1
        # (unit asked << 8 | unit answering) pairs already reported as
        # ``modbus.response_unit_mismatch`` on this flow (None until the first).
        self.unit_mismatches: set[int] | None = None
        self.max_pending = max_pending
        self.timeout = timeout
        # Capture time at which the oldest pending request expires.
        self.check_at = _NEVER

    def add(self, key: int, request: Request) -> tuple[Request | None, Request | None]:
        """Remember a request; return (the pending request it replaces, the one evicted by the cap)."""
        pending = self.pending
        replaced = pending.pop(key, None)
        evicted = None
        if len(pending) >= self.max_pending:
            evicted = pending.pop(next(iter(pending)))
        if not pending:
            self.check_at = request[1] + self.timeout
        # Otherwise check_at is at most the oldest's deadline: removals only make it early, and an
        # early check just finds nothing late and moves it on.
        pending[key] = request
        return replaced, evicted

    def ask(self, unit: int) -> None:
        """A Modbus/TCP request to ``unit``: the flow has asked that unit (called on a new one)."""
        self.last_asked = unit
        self.asked_units |= 1 << unit

    def answered_as_asked(self, unit: int) -> None:
        """A response paired by its own unit id (called on a new one): ``unit`` echoes its id."""
        self.last_answered = unit
        self.answered_units |= 1 << unit

    def swap_roles(self) -> None:
        """Requests travel the other way (the side the port called client is the server)."""
        self.swapped = 1 - self.swapped
        first, second = self.heads
        self.heads = ((*first[:-1], second[-1]), (*second[:-1], first[-1]))

    def answer(self, key: int) -> Request | None:
        """The pending request a response with this key answers (removed), or None."""
        return self.pending.pop(key, None)

    def expire(self, now: float) -> list[tuple[int, Request]]:
        """Pending requests older than the timeout at capture time ``now`` (removed), oldest first."""
        pending = self.pending
        late: list[tuple[int, Request]] = []
        limit = now - self.timeout
        while pending:
            key = next(iter(pending))
            request = pending[key]
            if request[1] >= limit:
                self.check_at = request[1] + self.timeout
                return late
            del pending[key]
            late.append((key, request))
        self.check_at = _NEVER
        return late

    def drain(self) -> list[tuple[int, Request]]:
        """Every pending request (removed), oldest first: the flow ended."""
        late = list(self.pending.items())
        self.pending.clear()
        self.check_at = _NEVER
        return late
