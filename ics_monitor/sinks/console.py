"""Sinks that aggregate records for a terminal view (flow table, summary); rendering is in ``cli``.

Memory is bounded: the flow table keeps the N largest flows, the summary caps its host pairs.
"""

from __future__ import annotations

import heapq
from collections import Counter
from typing import Any

from ics_monitor.events.flow import FlowRecord

MAX_PAIRS = 10_000


class FlowTableSink:
    """Keeps the ``limit`` largest flows (by bytes both ways) and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.total = 0
        self._heap: list[tuple[int, int, FlowRecord]] = []

    def emit(self, record: Any) -> None:
        """Take one flow record."""
        self.total += 1
        size = record.bytes_to_server + record.bytes_to_client
        item = (size, self.total, record)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif size > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def rows(self) -> list[FlowRecord]:
        """The kept flows, in time order."""
        return sorted((item[2] for item in self._heap), key=lambda r: (r.ts_start, r.flow_id))

    def close(self) -> None:
        """Nothing to flush."""


def _layer_text(layer: dict[str, Any]) -> str:
    ident = layer.get("id")
    kind = layer["type"] if ident is None else f"{layer['type']} {ident}"
    return f"{kind} {layer['src_ip']} > {layer['dst_ip']}"


class SummarySink:
    """Counts flows per protocol and host pair, and events per type/function/anomaly code."""

    def __init__(self) -> None:
        self.protocols: dict[str, list[int]] = {}
        self.pairs: Counter[tuple[str, str, str]] = Counter()
        self.events: Counter[tuple[str, str]] = Counter()
        self.anomalies: Counter[tuple[str, str]] = Counter()
        self.other_pairs = 0
        # Per encapsulation path (the tunnel layers as "type id src>dst" texts, outermost first):
        # [flows, packets, bytes].  Few: one per mirror session or VTEP pair.
        self.tunnels: dict[tuple[str, ...], list[int]] = {}
        # Flows the capture's snap length cut, their payload bytes not kept, and the protocol
        # records read from cut PDUs.
        self.sliced_flows = 0
        self.sliced_bytes = 0
        self.truncated = 0

    def emit(self, record: Any) -> None:
        """Take a flow record or an event."""
        if isinstance(record, FlowRecord):
            name = record.app_protocol or record.service or record.transport
            row = self.protocols.setdefault(name, [0, 0, 0])
            row[0] += 1
            row[1] += record.packets_to_server + record.packets_to_client
            row[2] += record.bytes_to_server + record.bytes_to_client
            pair = (record.src_ip, record.dst_ip, name)
            if pair in self.pairs or len(self.pairs) < MAX_PAIRS:
                self.pairs[pair] += record.bytes_to_server + record.bytes_to_client
            else:
                self.other_pairs += 1
            if record.sliced_bytes:
                self.sliced_flows += 1
                self.sliced_bytes += record.sliced_bytes
            if record.tunnel:
                path = tuple(_layer_text(layer) for layer in record.tunnel)
                if path in self.tunnels or len(self.tunnels) < MAX_PAIRS:
                    counts = self.tunnels.setdefault(path, [0, 0, 0])
                    counts[0] += 1
                    counts[1] += record.packets_to_server + record.packets_to_client
                    counts[2] += record.bytes_to_server + record.bytes_to_client
        elif record.event_type == "anomaly":
            self.anomalies[(record.code, record.severity)] += 1
        else:
            function = getattr(record, "function", None) or ""
            self.events[(record.event_type, str(function))] += 1
            if getattr(record, "truncated", False):
                self.truncated += 1

    def close(self) -> None:
        """Nothing to flush."""
