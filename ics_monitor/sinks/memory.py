"""A sink that keeps what it gets, in order, in memory: for tests and for programs embedding the pipeline.

Unbounded by design, so only for bounded inputs; the monitor itself never uses it.
"""

from __future__ import annotations

from typing import Any


class ListSink:
    """Every record emitted, in order, in ``records``; ``closed`` counts the ``close`` calls."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.closed = 0

    def emit(self, record: Any) -> None:
        """Keep ``record``."""
        self.records.append(record)

    def close(self) -> None:
        """Count the call (a pipeline closes its sinks once each)."""
        self.closed += 1
