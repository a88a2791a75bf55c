"""ECS documents: every field a converter writes is in the table with the type the template maps.

Records come from real captures run through the pipeline (protocol events, anomalies, flows, ARP),
from the inventory (assets, asset changes) and from the alert record, so a new key in any of them
that the table does not know (or a value of the wrong type) fails here, not in a cluster.
"""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.alerts.attack import tactic_refs, technique_refs
from ics_monitor.alerts.record import Alert, amended, make_alert_id, updated
from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.events import AnomalyEvent, ArpEvent
from ics_monitor.inventory.assets import Inventory
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.ecs import (
    ALERT,
    ANOMALY,
    ASSET,
    EVENT,
    FIELD_BY_NAME,
    FIELDS,
    FLOW,
    KINDS,
    OBJECT,
    TYPES,
    EcsMapper,
    Observer,
    ecs_mac,
    fields_for,
    index_templates,
    iso_time,
    markdown_table,
)
from ics_monitor.sinks.memory import ListSink
from tests.conftest import PCAPS, REPO, SHARED_PCAPS

OBSERVER = Observer("sensor-1", "host-1")
CAPTURES = [
    PCAPS / "modbus/pymodbus_all_functions.pcap",
    PCAPS / "modbus/crafted_anomalies.pcap",
    PCAPS / "dnp3/crafted_objects.pcap",
    PCAPS / "dnp3/crafted_anomalies.pcap",
    PCAPS / "foundation/flow_states.pcap",
]
S7_CAPTURES = [
    SHARED_PCAPS / "stacks/s7comm_snap7c.pcap",
    SHARED_PCAPS / "stacks/s7comm_download_snap7c_client_py_server.pcap",
]


def replay(paths: list[Path], *, arp: bool = False) -> list[Any]:
    sink = ListSink()
    source = open_captures(str(path) for path in paths if path.is_file())
    Pipeline(Config(), default_registry(), event_sinks=[sink], flow_sinks=[sink], emit_arp=arp).run(source)
    return sink.records


def make_alert(rule_id: str = "ICS-1001", ts: float = 1_700_000_000.25, **overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": make_alert_id(rule_id, "10.0.0.1>10.0.0.2", ts),
        "rule_id": rule_id,
        "rule_name": "modbus_write",
        "title": "Modbus write | from a new client",
        "severity": 3,
        "severity_name": "high",
        "category": "command",
        "protocol": "modbus",
        "tactic": tactic_refs(["TA0106"]),
        "technique": technique_refs(["T0855", "T0836"]),
        "explanation": "A client wrote registers.\nCheck the HMI = operator?",
        "evidence": {"function_code": 16, "addresses": {1, 2}, "frames": (3, 4)},
        "key": "10.0.0.1>10.0.0.2",
        "flow_id": "0123456789abcdef",
        "src_ip": "10.0.0.1",
        "src_port": 40000,
        "dst_ip": "10.0.0.2",
        "dst_port": 502,
        "src_mac": "00:1a:2b:3c:4d:5e",
        "dst_mac": None,
        "community_id": "1:abc=",
        "ts": ts,
        "last_ts": ts + 2,
        "count": 1,
        "frames": (3,),
    }
    fields.update(overrides)
    return Alert(**fields)


@pytest.fixture(scope="module")
def records() -> list[Any]:
    return replay(CAPTURES)


def leaves(document: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf; objects mapped as OBJECT count as one leaf."""
    for key, value in document.items():
        path = f"{prefix}{key}"
        field = FIELD_BY_NAME.get(path)
        if isinstance(value, dict) and (field is None or field.type != OBJECT):
            yield from leaves(value, path + ".")
        else:
            yield path, value


def check_value(path: str, type_: str, value: Any) -> None:
    values = value if isinstance(value, list) and type_ != OBJECT else [value]
    for item in values:
        if type_ in ("keyword", "text"):
            assert isinstance(item, str), (path, item)
        elif type_ == "long":
            assert isinstance(item, int) and not isinstance(item, bool), (path, item)
        elif type_ == "double":
            assert isinstance(item, int | float) and not isinstance(item, bool), (path, item)
        elif type_ == "boolean":
            assert isinstance(item, bool), (path, item)
        elif type_ == "ip":
            ipaddress.ip_address(item)
        elif type_ == "date":
            datetime.fromisoformat(item.replace("Z", "+00:00"))


def check_document(kind: str, source: dict[str, Any]) -> None:
    """Every indexed leaf is declared for the kind, with a value of its type.

    Leaves under a protocol body (``ics.<protocol>.*``) that the table does not name are allowed:
    they are stored in ``_source`` only (``dynamic: false``), never indexed, so they cannot conflict.
    """
    allowed = {field.name: field for field in fields_for(kind)}
    for path, value in leaves(source):
        field = allowed.get(path)
        if field is None:
            parts = path.split(".")
            assert kind == EVENT and parts[0] == "ics" and len(parts) > 2, f"{kind}: {path} not in the table"
            assert not any(name.startswith(path + ".") for name in allowed), path
            continue
        check_value(path, field.type, value)


def test_table_rows_are_unique_and_typed() -> None:
    names = [field.name for field in FIELDS]
    assert len(names) == len(set(names))
    for field in FIELDS:
        assert field.type in TYPES, field
        assert field.kinds and set(field.kinds) <= set(KINDS), field
        assert field.is_ecs == (not field.name.startswith("ics.")), field


def test_templates_nest_every_field_of_their_kind() -> None:
    templates = index_templates("t")
    assert set(templates) == {f"t-{kind}" for kind in KINDS}
    for kind in KINDS:
        body = templates[f"t-{kind}"]
        assert body["index_patterns"] == (["t-asset"] if kind == ASSET else [f"t-{kind}-*"])
        mappings = body["template"]["mappings"]
        assert mappings["dynamic"] is False
        for field in fields_for(kind):
            node: dict[str, Any] = mappings
            for part in field.name.split("."):
                node = node["properties"][part]
            expected = "object" if field.type == OBJECT else field.type
            assert node["type"] == expected, field.name
            if field.type == OBJECT:
                assert node["enabled"] is False


def test_every_real_record_converts_to_declared_fields(records: list[Any]) -> None:
    mapper = EcsMapper(OBSERVER, kinds=KINDS)
    kinds: dict[str, int] = {}
    datasets: set[str] = set()
    for record in records:
        document = mapper.document(record)
        assert document is not None
        kinds[document.kind] = kinds.get(document.kind, 0) + 1
        datasets.add(document.source["event"]["dataset"])
        check_document(document.kind, document.source)
    assert kinds[EVENT] > 50 and kinds[ANOMALY] > 5 and kinds[FLOW] > 5
    assert {"ics_monitor.modbus", "ics_monitor.dnp3", "ics_monitor.anomaly", "ics_monitor.flow"} <= datasets


def test_arp_document() -> None:
    arp = ArpEvent(
        ts=2.0,
        frame=3,
        operation=2,
        operation_name="reply",
        sender_mac="00:1a:2b:3c:4d:5e",
        sender_ip="10.0.0.9",
        target_mac="00:00:00:00:00:01",
        target_ip="10.0.0.1",
        vlan=(5,),
    )
    document = EcsMapper(OBSERVER, kinds=KINDS).document(arp)
    assert document is not None and document.kind == EVENT
    check_document(EVENT, document.source)
    assert document.source["ics"]["arp"]["sender_mac"] == "00-1A-2B-3C-4D-5E"
    assert document.source["related"]["ip"] == ["10.0.0.9", "10.0.0.1"]
    assert "network" not in document.source


def test_s7comm_records_convert_to_declared_fields() -> None:
    captures = [path for path in S7_CAPTURES if path.is_file()]
    if not captures:
        pytest.skip(f"public captures not present at {SHARED_PCAPS}")
    mapper = EcsMapper(OBSERVER, kinds=KINDS)
    seen = 0
    for record in replay(captures):
        document = mapper.document(record)
        assert document is not None
        check_document(document.kind, document.source)
        if document.source["event"]["dataset"] == "ics_monitor.s7comm":
            seen += 1
            assert isinstance(document.source["ics"]["s7comm"]["rosctr"], int)
    assert seen > 10


def test_flow_document_counts_and_endpoints(records: list[Any]) -> None:
    flow = next(r for r in records if r.event_type == "flow" and r.transport == "tcp" and r.src_mac)
    document = EcsMapper(OBSERVER).document(flow)
    assert document is not None and document.op_type == "create" and document.version is None
    source = document.source
    assert source["event"]["kind"] == "event"
    assert source["event"]["category"] == ["network"]
    assert source["source"]["ip"] == flow.src_ip and source["source"]["port"] == flow.src_port
    assert source["source"]["bytes"] == flow.bytes_to_server
    assert source["destination"]["packets"] == flow.packets_to_client
    assert source["network"]["bytes"] == flow.bytes_to_server + flow.bytes_to_client
    assert source["network"]["community_id"] == flow.community_id
    assert source["event"]["duration"] == round(flow.duration * 1e9)
    assert source["source"]["mac"] == flow.src_mac.replace(":", "-").upper()
    assert source["@timestamp"] == iso_time(flow.ts_start)
    assert source["ics"]["flow_id"] == flow.flow_id


def test_alert_document_carries_rule_threat_and_explanation() -> None:
    alert = make_alert()
    document = EcsMapper(OBSERVER).document(alert)
    assert document is not None
    assert (document.kind, document.id, document.op_type, document.version) == (
        ALERT,
        alert.alert_id,
        "index",
        (2 << 32) + round((alert.last_ts - alert.ts) * 1000),
    )
    source = document.source
    check_document(ALERT, source)
    assert source["event"]["kind"] == "alert"
    assert source["event"]["category"] == ["network", "intrusion_detection"]
    assert source["event"]["severity"] == 3
    assert source["rule"] == {
        "id": "ICS-1001",
        "name": "Modbus write | from a new client",
        "category": "command",
        "ruleset": "ics-monitor",
    }
    assert source["threat"]["framework"] == "MITRE ATT&CK"
    assert source["threat"]["technique"]["id"] == ["T0855", "T0836"]
    assert source["threat"]["technique"]["name"] == ["Unauthorized Command Message", "Modify Parameter"]
    assert source["threat"]["tactic"]["id"] == ["TA0106"]
    assert source["threat"]["technique"]["reference"][0] == "https://attack.mitre.org/techniques/T0855/"
    assert source["message"] == alert.explanation
    assert source["observer"]["name"] == "sensor-1"
    assert source["related"]["ip"] == ["10.0.0.1", "10.0.0.2"]
    assert source["source"]["mac"] == "00-1A-2B-3C-4D-5E"
    assert "mac" not in source["destination"]
    assert source["ics"]["alert"]["evidence"] == {"function_code": 16, "addresses": [1, 2], "frames": [3, 4]}
    # An update of the same alert: same id, higher version (replaces the stored one).
    later = EcsMapper(OBSERVER).document(updated(alert, last_ts=alert.ts + 9, count=5, frames=(3, 8)))
    assert later is not None and later.id == document.id and later.version == (10 << 32) + 9000
    # A widened copy (a sweep went on): same count, later last seen, higher version.
    wider = EcsMapper(OBSERVER).document(updated(alert, last_ts=alert.last_ts + 2.5, count=1, frames=(3,)))
    assert wider is not None and document.version + 2500 == wider.version
    assert "outcome" not in source["event"]
    # The device's answer to the command (``Emitter.outcome``): same count, a higher version, and
    # ECS event.outcome; refused reads failure.
    for result, expected in (("accepted", "success"), ("refused", "failure")):
        outcome = {"result": result, "response_frame": 9}
        answered = amended(alert, {**alert.evidence, "outcome": outcome}, "The device answered.")
        doc = EcsMapper(OBSERVER).document(answered)
        assert doc is not None and doc.id == document.id and doc.version == document.version + (1 << 32)
        check_document(ALERT, doc.source)
        assert doc.source["event"]["outcome"] == expected
        assert doc.source["ics"]["alert"]["evidence"]["outcome"] == outcome
        assert doc.source["message"].startswith(alert.explanation.partition(" Why it matters: ")[0])


def test_asset_documents_from_the_inventory(records: list[Any]) -> None:
    inventory = Inventory()
    changes = []
    for record in records:
        changes += (
            inventory.observe_flow(record) if record.event_type == "flow" else inventory.observe(record)
        )
    assets = inventory.assets()
    assert assets and changes
    mapper = EcsMapper(OBSERVER, kinds=KINDS)
    for asset in assets:
        document = mapper.document(asset)
        assert document is not None and document.kind == ASSET
        assert document.index == "ics-monitor-asset" and document.op_type == "index"
        assert document.id == asset.asset_id and document.version is not None
        check_document(ASSET, document.source)
        if asset.ip:
            assert document.source["host"]["ip"] == [asset.ip]
    for change in changes:
        document = mapper.document(change)
        assert document is not None and document.kind == EVENT
        assert document.source["event"]["dataset"] == "ics_monitor.asset_change"
        check_document(EVENT, document.source)


def test_ids_are_deterministic_and_unique(records: list[Any]) -> None:
    first = [d.id for d in map(EcsMapper(OBSERVER, kinds=KINDS).document, records) if d]
    second = [d.id for d in map(EcsMapper(OBSERVER, kinds=KINDS).document, records) if d]
    assert first == second
    assert len(set(first)) == len(first)
    other = [d.id for d in map(EcsMapper(Observer("sensor-2", "host-1"), kinds=KINDS).document, records) if d]
    assert not set(other) & set(first)


def test_equal_records_in_one_frame_stay_two_documents() -> None:
    anomaly = AnomalyEvent(
        ts=1.0, frame=7, code="tcp.truncated", severity="low", detail="x", src_ip="10.0.0.1"
    )
    mapper = EcsMapper(OBSERVER)
    ids = [mapper.document(anomaly).id, mapper.document(anomaly).id]  # type: ignore[union-attr]
    assert ids[0] != ids[1] and ids[1] == f"{ids[0]}-1"
    again = EcsMapper(OBSERVER)
    assert [again.document(anomaly).id, again.document(anomaly).id] == ids  # type: ignore[union-attr]


def test_empty_addresses_are_left_out() -> None:
    anomaly = AnomalyEvent(ts=1.0, frame=1, code="link.truncated", severity="low", detail="short frame")
    document = EcsMapper(OBSERVER).document(anomaly)
    assert document is not None
    assert "source" not in document.source and "related" not in document.source
    assert document.source["event"]["severity"] == 2
    assert document.source["ics"]["anomaly"]["code"] == "link.truncated"


def test_index_names_follow_capture_date_in_utc() -> None:
    mapper = EcsMapper(OBSERVER, prefix="p")
    assert mapper.index_name(FLOW, 1_700_000_000.0) == "p-flow-2023.11.14"
    assert mapper.index_name(FLOW, 1_700_006_400.0) == "p-flow-2023.11.15"  # 00:00:00 UTC
    assert mapper.index_name(ASSET, 1.0) == "p-asset"


def test_kind_selection() -> None:
    anomaly = AnomalyEvent(ts=1.0, frame=1, code="link.truncated", severity="low", detail="d")
    assert EcsMapper(OBSERVER, kinds={ALERT}).document(anomaly) is None
    with pytest.raises(ValueError, match="unknown document kinds"):
        EcsMapper(OBSERVER, kinds={"nonsense"})


def test_ecs_mac() -> None:
    assert ecs_mac("aa:bb:cc:00:11:22") == "AA-BB-CC-00-11-22"
    assert ecs_mac(None) is None and ecs_mac("") is None


def test_markdown_table_lists_every_field_once() -> None:
    table = markdown_table()
    for field in FIELDS:
        assert table.count(f"| `{field.name}` |") == 1
    output = subprocess.run(
        [sys.executable, "-m", "ics_monitor.sinks.ecs", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert output == table


def test_readme_field_table_is_the_generated_one() -> None:
    readme = (REPO / "README.md").read_text()
    start, end = "<!-- ecs-fields:start -->\n", "<!-- ecs-fields:end -->"
    assert start in readme and end in readme, "README lacks the generated ECS field table markers"
    section = readme.split(start, 1)[1].split(end, 1)[0]
    assert section.strip() == markdown_table().strip(), "run: python -m ics_monitor.sinks.ecs --markdown"


def test_a_record_and_its_json_line_have_the_same_id(records: list[Any]) -> None:
    from ics_monitor.sinks.jsonl import record_to_dict

    objects = [d.id for d in map(EcsMapper(OBSERVER, kinds=KINDS).document, records) if d]
    lines = [d.id for d in map(EcsMapper(OBSERVER, kinds=KINDS).document, map(record_to_dict, records)) if d]
    assert objects == lines
