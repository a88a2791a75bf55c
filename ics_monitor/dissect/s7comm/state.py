"""Per-flow S7 state: COTP reassembly, request pairing, multi-part USERDATA, block transfers.

Every table here is capped (see constants): a full table drops its oldest entry and tells the
caller, which raises the anomaly.  Directions are ints (0 client to server, 1 server to client); a
request is remembered under the direction it travelled in and answered from the other one.  No I/O.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ics_monitor.dissect.s7comm.constants import (
    MAX_BLOCK_SIZE,
    MAX_COTP_PAYLOAD,
    MAX_PENDING,
    MAX_TRANSFERS,
    MAX_USERDATA_REASSEMBLIES,
    MAX_USERDATA_SIZE,
)

Endpoints = tuple[str, int, str, int]
# What a request leaves for its answer: (frame, function code or None, detail).
Pending = tuple[int, int | None, Any]
PendingKey = tuple[int, int, int]  # (kind: 0 JOB / 1 USERDATA / 2 S7comm-plus, request direction, ref)


class Transfer:
    """One block upload or download being reassembled: hashed as it goes, never buffered."""

    __slots__ = ("block", "chunks", "digest", "first_frame", "length", "overflow")

    def __init__(self, block: dict[str, Any] | None, first_frame: int) -> None:
        self.block = block
        self.digest = hashlib.sha256()
        self.length = 0
        self.chunks = 0
        self.first_frame = first_frame
        self.overflow = False

    def add(self, chunk: bytes) -> bool:
        """Hash a chunk; False when the block grew beyond the cap (then nothing more is hashed)."""
        if self.overflow:
            return True
        if self.length + len(chunk) > MAX_BLOCK_SIZE:
            self.overflow = True
            return False
        self.digest.update(chunk)
        self.length += len(chunk)
        self.chunks += 1
        return True

    def summary(self) -> dict[str, Any]:
        """The ``block`` fields of the record that ends the transfer."""
        result = dict(self.block) if self.block else {}
        result["length"] = self.length
        result["chunks"] = self.chunks
        result["sha256"] = None if self.overflow else self.digest.hexdigest()
        result["first_frame"] = self.first_frame
        return result


class HeldPlus:
    """A first S7comm-plus fragment whose record waits for the fragments after it.

    ``first``: its parsed PDU (``parser.PlusPdu``), completed as bytes come in; ``gathered``: its
    data part so far; ``queued``: the records of the fragments and keep-alives since, which go out
    after it; ``fragments``: how many of those were fragments; ``unpaired``: its sequence number was
    not known when it came, so the request is paired with its response on release.
    """

    __slots__ = ("first", "fragments", "frame", "gathered", "queued", "ts", "unpaired")

    def __init__(self, first: Any, frame: int, ts: float, body: bytes) -> None:
        self.first = first
        self.frame = frame
        self.ts = ts
        self.gathered = bytearray(body)
        self.queued: list[Any] = []
        self.fragments = 0
        self.unpaired = first.sequence is None


class S7State:
    """Everything the S7 dissector remembers about one flow."""

    __slots__ = (
        "confirmed",
        "discarding",
        "downloads",
        "heads",
        "lost_requests",
        "pending",
        "plus_held",
        "plus_lost",
        "plus_open",
        "segment_counts",
        "segments",
        "tls_reported",
        "unknown_payload_reported",
        "uploads",
        "userdata_parts",
    )

    def __init__(self, heads: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
        # Per direction: (flow_id, transport, src_ip, src_port, dst_ip, dst_port), formatted once.
        self.heads = heads
        self.confirmed = False
        # COTP TSDU being reassembled per direction (data TPDUs with EOT clear) and its segment count.
        self.segments: list[bytearray | None] = [None, None]
        self.segment_counts = [0, 0]
        # Per direction: a TSDU over the cap is being dropped up to its last data TPDU.
        self.discarding = [False, False]
        self.pending: dict[PendingKey, Pending] = {}
        # Per direction: requests that way were lost from the capture (a gap) since an answer last
        # paired with one: an answer to nothing seen may answer one of them.
        self.lost_requests = [False, False]
        # Multi-part USERDATA answers: (direction, group, subfunction, data unit reference) -> parts.
        self.userdata_parts: dict[tuple[int, int, int, int], list[bytes]] = {}
        # Block transfers: downloads by file name, uploads by upload id.
        self.downloads: dict[str, Transfer] = {}
        self.uploads: dict[int, Transfer] = {}
        # S7comm-plus: per direction, a fragmented message is open (its last fragment not seen).
        self.plus_open = [False, False]
        # S7comm-plus: per direction, a request whose function or request set goes on in later
        # fragments, held until it decodes.
        self.plus_held: list[HeldPlus | None] = [None, None]
        # A direction with a held record lost bytes: the next parse releases it.
        self.plus_lost = False
        self.tls_reported = [False, False]
        self.unknown_payload_reported = False

    def reset(self) -> None:
        """Forget everything (detection re-parses buffered bytes from the start)."""
        self.segments = [None, None]
        self.segment_counts = [0, 0]
        self.discarding = [False, False]
        self.pending.clear()
        self.lost_requests = [False, False]
        self.userdata_parts.clear()
        self.downloads.clear()
        self.uploads.clear()
        self.plus_open = [False, False]
        self.plus_held = [None, None]
        self.plus_lost = False
        self.tls_reported = [False, False]

    # -- COTP ----------------------------------------------------------------------------------------

    def add_segment(self, direction: int, payload: bytes) -> bool:
        """Append a DT payload with EOT clear; False when the TSDU grew past the cap.

        The TSDU is then dropped up to and including its last data TPDU (see ``end_segments``).
        """
        if self.discarding[direction]:
            return True
        buffer = self.segments[direction]
        if buffer is None:
            buffer = self.segments[direction] = bytearray()
        if len(buffer) + len(payload) > MAX_COTP_PAYLOAD:
            self.segments[direction] = None
            self.segment_counts[direction] = 0
            self.discarding[direction] = True
            return False
        buffer += payload
        self.segment_counts[direction] += 1
        return True

    def end_segments(self, direction: int, payload: bytes) -> tuple[bytes, int]:
        """The whole TSDU ending with ``payload`` (EOT set) and the number of its DT TPDUs.

        An empty TSDU when it was over the cap (dropped).
        """
        if self.discarding[direction]:
            self.discarding[direction] = False
            return b"", 0
        buffer = self.segments[direction]
        if buffer is None:
            return payload, 1
        count = self.segment_counts[direction] + 1
        self.segments[direction] = None
        self.segment_counts[direction] = 0
        if not buffer:
            return payload, count
        buffer += payload
        return bytes(buffer), count

    # -- pairing -------------------------------------------------------------------------------------

    def request(self, key: PendingKey, value: Pending) -> bool:
        """Remember a request; False when the table was full (its oldest entry was dropped)."""
        pending = self.pending
        full = False
        if key in pending:
            del pending[key]  # a reused reference: the newest request wins
        elif len(pending) >= MAX_PENDING:
            del pending[next(iter(pending))]
            full = True
        pending[key] = value
        return not full

    def answer(self, key: PendingKey) -> Pending | None:
        """The request an answer matches, removed from the table (``key[1]``: the requests' direction)."""
        request = self.pending.pop(key, None)
        if request is not None:
            self.lost_requests[key[1]] = False
        return request

    # -- multi-part USERDATA -------------------------------------------------------------------------

    def add_userdata_part(self, key: tuple[int, int, int, int], part: bytes) -> bool:
        """Keep one part of a multi-part answer; False when a cap was hit (the parts are dropped)."""
        parts = self.userdata_parts.get(key)
        if parts is None:
            if len(self.userdata_parts) >= MAX_USERDATA_REASSEMBLIES:
                del self.userdata_parts[next(iter(self.userdata_parts))]
                self.userdata_parts[key] = [part]
                return False
            self.userdata_parts[key] = [part]
            return True
        if sum(len(p) for p in parts) + len(part) > MAX_USERDATA_SIZE:
            del self.userdata_parts[key]
            return False
        parts.append(part)
        return True

    def end_userdata(self, key: tuple[int, int, int, int], part: bytes) -> tuple[bytes, int]:
        """The whole payload ending with ``part`` and the number of parts."""
        parts = self.userdata_parts.pop(key, None)
        if not parts:
            return part, 1
        return b"".join([*parts, part]), len(parts) + 1

    # -- block transfers -----------------------------------------------------------------------------

    def transfer(
        self, table: dict[Any, Transfer], key: Any, block: dict[str, Any] | None, frame: int
    ) -> Transfer | None:
        """The transfer under ``key``, created when new; None when the per-flow cap is reached."""
        transfer = table.get(key)
        if transfer is None:
            if len(self.downloads) + len(self.uploads) >= MAX_TRANSFERS:
                return None
            transfer = table[key] = Transfer(block, frame)
        elif block and not transfer.block:
            transfer.block = block
        return transfer
