"""ECS documents of the live run's health records: ``event.kind: metric``, every field declared and typed."""

from __future__ import annotations

from typing import Any

from ics_monitor.sinks.ecs import (
    DEFAULT_KINDS,
    FIELD_BY_NAME,
    HEALTH,
    KINDS,
    EcsMapper,
    Observer,
    fields_for,
    index_templates,
)
from tests.unit.sinks.test_ecs import check_document

OBSERVER = Observer("sensor-1", "host-1")


def health_record(**changes: Any) -> dict[str, Any]:
    """A health record shaped as ics_monitor.health.LiveOperations.health() writes it."""
    record: dict[str, Any] = {
        "event_type": "health",
        "ts": 1_700_000_000.25,
        "final": False,
        "uptime_seconds": 61.5,
        "interfaces": [{"name": "span0", "kernel_packets": 1200, "kernel_drops": 3}],
        "kernel_packets": 1200,
        "kernel_drops": 3,
        "frames": 1197,
        "bytes": 140_000,
        "events": 800,
        "anomalies": 2,
        "flows_active": 4,
        "flows_ended": 10,
        "flow_evictions": 0,
        "alerts": 1,
        "alert_records": 2,
        "assets": 3,
        "learning": True,
        "reloads": 0,
        "reload_failures": 0,
        "rss_bytes": 60 << 20,
        "sinks": [{"sink": "AppendLog", "path": "/state/events.jsonl", "count": 812, "rotations": 0}],
    }
    record.update(changes)
    return record


def test_health_document_is_a_metric_with_declared_fields() -> None:
    assert HEALTH in KINDS and HEALTH in DEFAULT_KINDS
    document = EcsMapper(OBSERVER).document(health_record())
    assert document is not None
    assert (document.kind, document.index, document.op_type, document.version) == (
        HEALTH,
        "ics-monitor-health-2023.11.14",
        "create",
        None,
    )
    source = document.source
    assert source["event"]["kind"] == "metric"
    assert source["event"]["dataset"] == "ics_monitor.health"
    assert source["@timestamp"] == "2023-11-14T22:13:20.250000Z"
    assert source["observer"]["name"] == "sensor-1"
    health = source["ics"]["health"]
    assert health["kernel_drops"] == 3 and health["frames"] == 1197 and health["learning"] is True
    assert health["interfaces"] == [{"name": "span0", "kernel_packets": 1200, "kernel_drops": 3}]
    check_document(HEALTH, source)
    # Every ics.health field of the table is filled from the record of the same name.
    declared = {
        field.name.removeprefix("ics.health.")
        for field in fields_for(HEALTH)
        if field.name.startswith("ics.health.")
    }
    assert set(health) == declared


def test_absent_values_are_left_out_and_ids_are_deterministic() -> None:
    record = health_record(rss_bytes=None, final=True)
    first = EcsMapper(OBSERVER).document(record)
    again = EcsMapper(OBSERVER).document(dict(record))
    other = EcsMapper(OBSERVER).document(health_record(ts=1_700_000_060.25))
    assert first is not None and again is not None and other is not None
    assert "rss_bytes" not in first.source["ics"]["health"]
    assert first.source["ics"]["health"]["final"] is True
    assert first.id == again.id != other.id


def test_health_template_maps_counters_as_numbers() -> None:
    body = index_templates("t")["t-health"]
    assert body["index_patterns"] == ["t-health-*"]
    properties = body["template"]["mappings"]["properties"]["ics"]["properties"]["health"]["properties"]
    assert properties["kernel_drops"] == {"type": "long"}
    assert properties["uptime_seconds"] == {"type": "double"}
    assert properties["interfaces"] == {"type": "object", "enabled": False}
    assert FIELD_BY_NAME["ics.health.learning"].type == "boolean"
    # Append-only, so it may be a data stream.
    assert index_templates("t", data_streams=True)["t-health"]["data_stream"] == {}
