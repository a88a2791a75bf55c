"""The sink protocol the pipeline writes to."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """Receives records (events, anomalies or flow records) and stores or sends them.

    A sink given as an event sink that keeps no protocol events (an Elasticsearch or CEF output
    configured for alerts, flows and anomalies, the default) says so with a ``protocol_events``
    attribute that is False: the pipeline then hands it only anomalies, not every PDU's record
    (see ``wants_protocol_events``).
    """

    def emit(self, record: Any) -> None:
        """Take one record."""

    def close(self) -> None:
        """Flush and release; called once, also after an input error."""


def wants_protocol_events(sink: object) -> bool:
    """Whether ``sink`` takes protocol events (and ARP observations), not only anomalies.

    True unless the sink has a ``protocol_events`` attribute that is False.
    """
    return bool(getattr(sink, "protocol_events", True))
