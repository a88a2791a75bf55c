"""Frozen records of what was seen: the contract between dissectors and everything downstream.

Field names are the JSON keys (sinks serialise attributes as they are); raw coded values sit beside
their names.  No behaviour beyond construction lives here.
"""

from ics_monitor.events.base import AnomalyEvent, ArpEvent, Event, ProtocolEvent
from ics_monitor.events.flow import FlowRecord

__all__ = ["AnomalyEvent", "ArpEvent", "Event", "FlowRecord", "ProtocolEvent"]
