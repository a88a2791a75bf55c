"""Application-protocol dissection: the dissector contract, the registry and the per-flow engine."""

from ics_monitor.dissect.api import (
    NOT_THIS_PROTOCOL,
    TO_CLIENT,
    TO_SERVER,
    Dissector,
    ParseContext,
    ParseResult,
    Probe,
)
from ics_monitor.dissect.engine import DissectEngine, FlowDissection
from ics_monitor.dissect.registry import Registry, default_registry

__all__ = [
    "NOT_THIS_PROTOCOL",
    "TO_CLIENT",
    "TO_SERVER",
    "DissectEngine",
    "Dissector",
    "FlowDissection",
    "ParseContext",
    "ParseResult",
    "Probe",
    "Registry",
    "default_registry",
]
