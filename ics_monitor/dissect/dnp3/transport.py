"""DNP3 transport function (IEEE 1815-2012 clause 8): segments into application fragments.

::

    +-----+-----+----------------+----------------------------------+
    | FIN | FIR | SEQUENCE (0-63)| application data, 0..249 bytes   |
    +-----+-----+----------------+----------------------------------+
      bit7  bit6   bits 5..0

A fragment starts with a FIR segment and ends with a FIN segment; the sequence number counts up by
one (mod 64) between segments of one fragment.  Reassembly is per (direction, source, destination)
of one flow, as a receiving station keeps one buffer per association.  Rules (8.2.3): a FIR segment
discards any fragment in progress; a non-FIR segment without a fragment in progress, or out of
sequence, is discarded (with the fragment in progress).  No I/O; anomalies are returned as
``(code, detail)`` pairs for the dissector to raise.
"""

from __future__ import annotations

from typing import Final

from ics_monitor.dissect.dnp3.constants import (
    MAX_FRAGMENT_SIZE,
    MAX_REASSEMBLY_KEYS,
    TRANSPORT_FRAGMENT_DISCARDED,
    TRANSPORT_FRAGMENT_TOO_LARGE,
    TRANSPORT_NO_FIRST,
    TRANSPORT_SEQUENCE_ERROR,
    TRANSPORT_TABLE_FULL,
)

FIN = 0x80
FIR: Final = 0x40
SEQUENCE: Final = 0x3F

ReassemblyKey = tuple[int, int, int]  # direction, source, destination


class Fragment:
    """An application fragment being put together from transport segments."""

    __slots__ = ("frames", "next_sequence", "parts", "size")

    def __init__(self, payload: bytes, sequence: int) -> None:
        self.parts = [payload]
        self.size = len(payload)
        self.next_sequence = (sequence + 1) & SEQUENCE
        self.frames = 1


class Reassembler:
    """Transport reassembly of one flow: fragments in progress per (direction, source, destination)."""

    __slots__ = ("fragments",)

    def __init__(self) -> None:
        self.fragments: dict[ReassemblyKey, Fragment] = {}

    def add(
        self, key: ReassemblyKey, segment: bytes, anomalies: list[tuple[str, str]]
    ) -> tuple[bytes, int] | None:
        """Add one segment (transport header first); return (fragment, link frames) when complete."""
        header = segment[0]
        fragments = self.fragments
        if header & FIR:
            if fragments:
                previous = fragments.pop(key, None)
                if previous is not None:
                    anomalies.append(
                        (
                            TRANSPORT_FRAGMENT_DISCARDED,
                            f"new first segment while {previous.size} bytes of a fragment were pending",
                        )
                    )
            if header & FIN:
                return segment[1:], 1
            if len(fragments) >= MAX_REASSEMBLY_KEYS:
                # Evict the oldest: stale partial fragments must not lock out live ones.
                oldest = next(iter(fragments))
                del fragments[oldest]
                anomalies.append(
                    (
                        TRANSPORT_TABLE_FULL,
                        f"{MAX_REASSEMBLY_KEYS} fragments in progress; the oldest "
                        f"({oldest[1]}->{oldest[2]}) is dropped",
                    )
                )
            fragments[key] = Fragment(segment[1:], header & SEQUENCE)
            return None
        fragment = fragments.get(key) if fragments else None
        sequence = header & SEQUENCE
        if fragment is None:
            anomalies.append((TRANSPORT_NO_FIRST, f"segment sequence {sequence} without a first segment"))
            return None
        if sequence != fragment.next_sequence:
            del fragments[key]
            anomalies.append(
                (
                    TRANSPORT_SEQUENCE_ERROR,
                    f"segment sequence {sequence}, expected {fragment.next_sequence}; "
                    f"{fragment.size} bytes discarded",
                )
            )
            return None
        fragment.size += len(segment) - 1
        if fragment.size > MAX_FRAGMENT_SIZE:
            del fragments[key]
            anomalies.append(
                (TRANSPORT_FRAGMENT_TOO_LARGE, f"fragment over {MAX_FRAGMENT_SIZE} bytes; discarded")
            )
            return None
        fragment.parts.append(segment[1:])
        fragment.frames += 1
        fragment.next_sequence = (sequence + 1) & SEQUENCE
        if header & FIN:
            del fragments[key]
            return b"".join(fragment.parts), fragment.frames
        return None

    def drop_direction(self, direction: int) -> int:
        """Forget the fragments in progress of ``direction`` (bytes were lost); return how many."""
        keys = [key for key in self.fragments if key[0] == direction]
        for key in keys:
            del self.fragments[key]
        return len(keys)
