"""Records the hot paths build as a dict installed in ``__dict__`` equal those the dataclass builds.

``FlowTable._record`` and the S7 dissector's COTP events (``events.base.record_from``) write their
fields as a dict literal: the keys must be every field, in dataclass field order (the
JSON key order), with the class's fixed ``event_type``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.dissect import default_registry
from ics_monitor.events.flow import FlowRecord
from ics_monitor.events.s7comm import CotpEvent
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.memory import ListSink

PCAPS = Path(__file__).resolve().parents[3] / "pcaps"


def _records(*captures: Path) -> tuple[list[Any], list[Any]]:
    events, flows = ListSink(), ListSink()
    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        default_registry(),
        event_sinks=[events],
        flow_sinks=[flows],
    )
    pipeline.run(open_captures([str(path) for path in captures]))
    return events.records, flows.records


def _same_as_built_by_the_class(record: Any, cls: type[Any]) -> None:
    names = [field.name for field in dataclasses.fields(cls)]
    assert list(vars(record)) == names
    rebuilt = cls(**vars(record))
    assert record == rebuilt
    assert orjson.dumps(record) == orjson.dumps(rebuilt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.frame = 0


def test_flow_records_are_those_of_the_class() -> None:
    # Flows of every kind: TCP closed and reset, UDP, ICMP (types), tunnelled (the tunnel field).
    _, flows = _records(
        PCAPS / "foundation" / "flow_states.pcap",
        PCAPS / "network" / "tunnels.pcap",
        PCAPS / "network" / "scan_recon.pcap",
    )
    assert {record.transport for record in flows} >= {"tcp", "udp"}
    assert any(record.tunnel for record in flows)
    assert any(record.icmp_types_to_server for record in flows)
    for record in flows:
        assert type(record) is FlowRecord
        assert record.event_type == "flow"
        _same_as_built_by_the_class(record, FlowRecord)


def test_cotp_events_are_those_of_the_class() -> None:
    events, _ = _records(PCAPS / "s7comm" / "snap7_session.pcap", PCAPS / "s7comm" / "crafted_anomalies.pcap")
    cotp = [event for event in events if event.event_type == "cotp"]
    # Connection request and confirm (TSAPs, rack and slot) at least.
    assert {event.pdu_type_name for event in cotp} >= {"CR", "CC"}
    assert any(event.rack is not None for event in cotp)
    for event in cotp:
        assert type(event) is CotpEvent
        _same_as_built_by_the_class(event, CotpEvent)
