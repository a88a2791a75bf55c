"""Bounded IPv4/IPv6 fragment reassembly.

Datagrams wait at most ``timeout`` seconds of capture time and at most ``max_datagrams`` are held at
once (the oldest is dropped past that, with an anomaly).  Overlapping fragments keep the bytes that
arrived first; an overlap whose bytes differ is reported, since rewriting a datagram in flight with
conflicting fragments is a classic IDS-evasion trick (RFC 5722 forbids overlaps for IPv6 entirely).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Final

from ics_monitor.core.packet import IPPROTO_TCP, IPPROTO_UDP

MAX_DATAGRAM: Final = 65535

Report = Callable[[str, str], None]
DatagramKey = tuple[int, bytes, bytes, int, int]


class _Pending:
    __slots__ = ("first_ts", "frames", "parts", "total", "wire_bytes")

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        self.parts: list[tuple[int, bytes]] = []
        self.total = -1
        self.frames = 0
        self.wire_bytes = 0


class FragmentReassembler:
    """Collects fragments per (version, src, dst, protocol, id) and returns whole datagrams."""

    def __init__(self, timeout: float = 30.0, max_datagrams: int = 1024) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self._pending: OrderedDict[DatagramKey, _Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self,
        key: DatagramKey,
        ts: float,
        wire_len: int,
        offset: int,
        more: bool,
        payload: bytes,
        report: Report,
    ) -> tuple[bytes, int, int] | None:
        """Add one fragment; return (datagram payload, frames, wire bytes) once complete."""
        self.expire(ts, report)
        proto = key[3]
        if (
            offset == 0
            and more
            and ((proto == IPPROTO_TCP and len(payload) < 20) or (proto == IPPROTO_UDP and len(payload) < 8))
        ):
            report("ip.fragment_too_small", f"first fragment carries {len(payload)} bytes")
        if offset + len(payload) > MAX_DATAGRAM:
            report("ip.fragment_too_large", f"fragment at offset {offset} ends past {MAX_DATAGRAM}")
            self._pending.pop(key, None)
            return None
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self.max_datagrams:
                oldest = next(iter(self._pending))
                del self._pending[oldest]
                report("ip.fragment_table_full", f"{self.max_datagrams} datagrams pending; oldest dropped")
            pending = self._pending[key] = _Pending(ts)
        pending.frames += 1
        pending.wire_bytes += wire_len
        if not more:
            pending.total = offset + len(payload)
        end = offset + len(payload)
        for part_offset, part in pending.parts:
            part_end = part_offset + len(part)
            if part_offset < end and offset < part_end:
                low = max(offset, part_offset)
                high = min(end, part_end)
                if payload[low - offset : high - offset] != part[low - part_offset : high - part_offset]:
                    report("ip.fragment_overlap", f"bytes {low}-{high} differ between fragments")
                    break
        pending.parts.append((offset, payload))
        if pending.total < 0:
            return None
        # Complete when the parts cover 0..total without holes.
        covered = 0
        for part_offset, part in sorted(pending.parts, key=_part_offset):
            if part_offset > covered:
                return None
            covered = max(covered, part_offset + len(part))
        if covered < pending.total:
            return None
        # Write in reverse arrival order so the bytes that arrived first win every overlap.
        datagram = bytearray(pending.total)
        for part_offset, part in reversed(pending.parts):
            stop = min(part_offset + len(part), pending.total)
            if stop > part_offset:
                datagram[part_offset:stop] = part[: stop - part_offset]
        del self._pending[key]
        return bytes(datagram), pending.frames, pending.wire_bytes

    def expire(self, now: float, report: Report) -> None:
        """Drop datagrams older than the timeout, reporting each as incomplete."""
        pending = self._pending
        while pending:
            key = next(iter(pending))
            if now - pending[key].first_ts <= self.timeout:
                return
            entry = pending.pop(key)
            report("ip.fragment_incomplete", f"{entry.frames} fragments of id {key[4]} never completed")

    def flush(self, report: Report) -> None:
        """End of input: every datagram still pending is incomplete."""
        for key, entry in self._pending.items():
            report("ip.fragment_incomplete", f"{entry.frames} fragments of id {key[4]} never completed")
        self._pending.clear()


def _part_offset(part: tuple[int, bytes]) -> int:
    return part[0]
