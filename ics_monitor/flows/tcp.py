"""Per-direction TCP stream reassembly: turns segments into in-order bytes.

Handles out-of-order segments (buffered up to a cap), retransmissions and overlaps (bytes that differ
from those already delivered are reported: the receiver and the monitor may see different streams,
which is how IDS evasion works), keep-alive probes (one garbage byte just behind the stream: not
data, never a mismatch), sequence wrap-around, mid-stream pickup and gaps (bytes missing from the
capture: acknowledged by the peer but never seen, or out-of-order data past the buffer cap).

The stream only returns what happened; the flow table turns that into callbacks and anomalies.
Each chunk it hands on carries a capture time and frame: those of the packet that completed it.
A segment held behind a hole that a later packet fills is completed by that packet (as tshark
shows a reassembled PDU at the frame that completed it); one held behind a hole that is given up
(the peer acknowledged the missing bytes, the buffer cap, the end of the flow) keeps its own, so
a record parsed from it names the frame that carried it, not the peer's answer that revealed the
loss.
"""

from __future__ import annotations

from typing import Final

# Bytes of already-delivered data kept to compare retransmissions against.  Retransmits almost
# always resend the last segment or two; a longer tail costs memory on every flow.
TAIL: Final = 2048
MOD: Final = 1 << 32
HALF: Final = 1 << 31

# Bits of what ``TcpStream.add`` noticed.
MISMATCH: Final = 1  # retransmitted bytes differ from the bytes delivered first
BUFFER_FULL: Final = 2  # out-of-order data beyond the cap: the hole was given up


def seq_diff(a: int, b: int) -> int:
    """Return ``a - b`` in sequence space (RFC 1982 serial arithmetic), in [-2**31, 2**31)."""
    diff = (a - b) & 0xFFFFFFFF
    return diff - MOD if diff >= HALF else diff


_NO_SEGMENTS: dict[int, bytes] = {}  # never written to: see TcpStream.add
_NO_MARKS: dict[int, tuple[float, int]] = {}  # the same, for the segments' (ts, frame)
# The (ts, frame) of a chunk without bytes (a gap), or of a held segment whose mark is unknown.
NO_MARK: Final = (0.0, 0)
# A chunk: (bytes missing before it, its bytes, capture time, frame of the segment they came in).
Chunk = tuple[int, bytes, float, int]


class TcpStream:
    """One direction of a TCP connection."""

    __slots__ = (
        "acked",
        "buffered",
        "cuts",
        "gaps",
        "marks",
        "mismatch",
        "next_seq",
        "retransmissions",
        "segments",
        "sliced",
        "tail",
    )

    def __init__(self) -> None:
        self.next_seq = -1  # -1: no sequence number known yet
        # Shared empty dict until something is held out of order: most streams never need one.
        self.segments: dict[int, bytes] = _NO_SEGMENTS
        self.marks: dict[int, tuple[float, int]] = _NO_MARKS  # seq -> (ts, frame) of a held segment
        self.buffered = 0
        self.tail = b""
        self.retransmissions = 0
        self.gaps = 0  # bytes skipped
        # Segments the capture's snap length cut, and the payload bytes it did not keep.
        self.cuts = 0
        self.sliced = 0
        self.mismatch = 0  # overlaps whose bytes differed
        self.acked = -1  # the receiver's latest ACK number for this stream (-1: none seen)

    def syn(self, seq: int) -> None:
        """A SYN fixes the initial sequence number (data starts at ISN + 1)."""
        if self.next_seq < 0:
            self.next_seq = (seq + 1) & 0xFFFFFFFF

    def add(
        self, seq: int, payload: bytes, cap: int, out: list[Chunk], ts: float = 0.0, frame: int = 0
    ) -> int:
        """Add a data segment (captured at ``ts`` in ``frame``); append chunks to ``out`` in stream order.

        A chunk is ``(gap_before, bytes, ts, frame)``: ``gap_before`` > 0 means that many bytes are
        missing before it; ``ts`` and ``frame`` those of the packet that completed it (see the
        module docstring).
        Returns the ``MISMATCH``/``BUFFER_FULL`` bits for what was noticed.
        """
        if self.next_seq < 0:
            self.next_seq = seq  # mid-stream pickup: the first data we see starts the stream
        rel = seq_diff(seq, self.next_seq)
        if rel == 0:
            self._deliver(payload, out, ts, frame)
            if self.segments:
                mismatches = self.mismatch
                self.drain(out, ts, frame)  # this segment filled the hole: it completes them
                if self.mismatch != mismatches:
                    return MISMATCH
            return 0
        if rel < 0:
            size = len(payload)
            if rel == -1 and size == 1 and self.acked >= 0 and seq_diff(self.acked, self.next_seq) >= 0:
                # A keep-alive probe (RFC 1122 4.2.3.6): one garbage octet at SND.NXT - 1, the
                # last byte the receiver has acknowledged, so keeps.  Not data, not a
                # retransmission: its byte differs from the original whenever the sender's garbage
                # does.  Before the receiver's ACK covers the stream the byte is compared as any
                # overlap: a byte the monitor took but the host did not (a bad checksum, a short
                # TTL) followed by the real one is still a mismatch.
                return 0
            status = MISMATCH if self._differs(rel, payload) else 0
            if size <= -rel:
                self.retransmissions += 1
                return status
            self._deliver(payload[-rel:], out, ts, frame)
            if self.segments:
                mismatches = self.mismatch
                self.drain(out, ts, frame)
                if self.mismatch != mismatches:
                    status = MISMATCH
            return status
        # A segment from the future: wait for the hole to fill, within the cap.
        if self.buffered + len(payload) > cap:
            # Give up on the holes: deliver what is held, then continue from this segment.
            mismatches = self.mismatch
            self.flush(out)
            if seq_diff(seq, self.next_seq) > 0:
                self.skip_to(seq, out)
            status = self.add(seq, payload, cap, out, ts, frame) | BUFFER_FULL
            return status | MISMATCH if self.mismatch != mismatches else status
        held = self.segments.get(seq)
        status = 0
        if held is not None:
            # A second copy of a segment held out of order: the receiver keeps one of them (which,
            # depends on its stack), the monitor the first (or the longer).  Different bytes are
            # reported.
            common = min(len(held), len(payload))
            if held[:common] != payload[:common]:
                self.mismatch += 1
                status = MISMATCH
        if held is None or len(held) < len(payload):
            if held is not None:
                self.buffered -= len(held)
            if self.segments is _NO_SEGMENTS:
                self.segments = {}
                self.marks = {}
            self.segments[seq] = payload
            self.marks[seq] = (ts, frame)
            self.buffered += len(payload)
        return status

    def skip_to(self, seq: int, out: list[Chunk]) -> int:
        """Give up on missing bytes up to ``seq``; return how many were skipped."""
        gap = seq_diff(seq, self.next_seq)
        if gap <= 0:
            return 0
        self.gaps += gap
        self.next_seq = seq
        self.tail = b""  # the tail ends where the stream did: nothing to compare past the gap
        out.append((gap, b"", 0.0, 0))
        return gap

    def slice(self, end: int, cut: int, out: list[Chunk], ts: float = 0.0, frame: int = 0) -> None:
        """A segment ending at ``end`` lost its last ``cut`` bytes to the capture's snap length.

        When the stream reached the captured part's end (the segment continued it), the missing
        bytes are stepped over at once, as ``(-cut, b"")`` (negative: cut, not lost), and what was
        held behind them follows; so the next segment continues the stream instead of waiting
        behind a hole.  A segment held out of order (or one already delivered, sent again) is not
        counted: its hole is found as any gap (or was stepped over already).
        """
        if self.next_seq != end:
            return
        self.cuts += 1
        self.next_seq = (end + cut) & 0xFFFFFFFF
        self.sliced += cut
        self.tail = b""  # bytes after the cut are not those the tail ends with
        out.append((-cut, b"", 0.0, 0))
        if self.segments:
            self.drain(out, ts, frame)  # the cut segment's packet completes what waited behind it

    def first_buffered(self) -> int:
        """Sequence number of the earliest buffered segment (call only when some are buffered)."""
        base = self.next_seq
        return min(self.segments, key=lambda s: seq_diff(s, base))

    def flush(self, out: list[Chunk]) -> None:
        """End of the flow: deliver whatever is buffered, with gaps before the holes."""
        while self.segments:
            self.skip_to(self.first_buffered(), out)
            self.drain(out)

    def _deliver_held(self, seq: int, data: bytes, out: list[Chunk], ts: float, frame: int) -> None:
        """A held segment (or its part past the stream's end) continues the stream: hand it on.

        With ``frame`` 0 the segment keeps its own time and frame (its hole was given up).
        """
        mark = self.marks.pop(seq, NO_MARK)
        if frame:
            self._deliver(data, out, ts, frame)
        else:
            self._deliver(data, out, mark[0], mark[1])

    def _differs(self, rel: int, data: bytes) -> bool:
        """``data``, ``-rel`` bytes of it behind the stream's end, differs from what was delivered.

        Compared as far as the tail reaches; a difference is counted in ``mismatch``.
        """
        overlap = min(-rel, len(data))
        tail = self.tail
        start = len(tail) + rel
        if start >= 0 and tail[start : start + overlap] != data[:overlap]:
            self.mismatch += 1
            return True
        return False

    def _deliver(self, data: bytes, out: list[Chunk], ts: float, frame: int) -> None:
        out.append((0, data, ts, frame))
        self.advance(data)

    def advance(self, data: bytes) -> None:
        """``data`` continues the stream and is handed on: move past it, keep the tail."""
        self.next_seq = (self.next_seq + len(data)) & 0xFFFFFFFF
        if len(data) >= TAIL:
            self.tail = data[-TAIL:]
        else:
            tail = self.tail + data
            self.tail = tail[-TAIL:] if len(tail) > TAIL else tail

    def drain(self, out: list[Chunk], ts: float = 0.0, frame: int = 0, until: int = -1) -> None:
        """Deliver buffered segments that now continue the stream.

        ``ts``/``frame``: the packet that filled the hole they waited behind; none (0) when the
        hole was given up, and each segment keeps its own.  ``until``: stop once the stream
        reaches this sequence number (-1: no limit).
        """
        segments = self.segments
        progress = True
        while segments and progress:
            if until >= 0 and seq_diff(self.next_seq, until) >= 0:
                break
            progress = False
            seq = self.next_seq
            exact = segments.pop(seq, None)
            if exact is not None:
                self.buffered -= len(exact)
                self._deliver_held(seq, exact, out, ts, frame)
                progress = True
                continue
            for seq in list(segments):
                rel = seq_diff(seq, self.next_seq)
                if rel <= 0:
                    data = segments.pop(seq)
                    self.buffered -= len(data)
                    # Held bytes the stream already has (from an overlapping segment): compared.
                    self._differs(rel, data)
                    if len(data) > -rel:
                        self._deliver_held(seq, data[-rel:], out, ts, frame)
                        progress = True
                        break
                    self.marks.pop(seq, None)  # wholly behind the stream: dropped
