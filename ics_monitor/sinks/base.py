"""The sink protocol the pipeline writes to."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """Receives records (events, anomalies or flow records) and stores or sends them."""

    def emit(self, record: Any) -> None:
        """Take one record."""

    def close(self) -> None:
        """Flush and release; called once, also after an input error."""
