"""Outputs: the only place records become JSON (and, later, ECS, syslog/CEF, SQLite rows)."""

from ics_monitor.sinks.base import Sink
from ics_monitor.sinks.jsonl import JsonLinesSink, record_to_dict

__all__ = ["JsonLinesSink", "Sink", "record_to_dict"]
