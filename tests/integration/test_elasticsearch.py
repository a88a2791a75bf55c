"""The Elasticsearch sink against a real Elasticsearch (tests/support/elasticsearch.py starts one).

Alerts: the detection engine has no shipped rules yet, so ``WriteAlerts`` (below) stands in for it:
it makes real ``Alert`` records (the alert module's record, ids and throttle, so updates of one alert
happen as in production) for every write request in the captures.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from typer.testing import CliRunner

from ics_monitor.alerts.attack import tactic_refs, technique_refs
from ics_monitor.alerts.record import Alert, make_alert_id
from ics_monitor.alerts.throttle import Throttle
from ics_monitor.capture import open_captures
from ics_monitor.cli.es_commands import es_app
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks import JsonLinesSink
from ics_monitor.sinks.ecs import KINDS, EcsMapper, Observer
from ics_monitor.sinks.elasticsearch import (
    REJECTED,
    ElasticsearchSettings,
    ElasticsearchSink,
    make_client,
    setup_templates,
)
from ics_monitor.sinks.memory import ListSink
from tests.conftest import PCAPS
from tests.support.elasticsearch import ElasticsearchNode, elasticsearch_url, free_port, private_node
from tests.support.sliced import sliced

__all__ = ["elasticsearch_url", "private_node"]  # fixtures used by the tests below

pytestmark = [pytest.mark.elasticsearch, pytest.mark.xdist_group("elasticsearch")]

CAPTURES = sorted((PCAPS / "modbus").glob("*.pcap")) + sorted((PCAPS / "dnp3").glob("*.pcap"))
WRITES = {"modbus": {5, 6, 15, 16, 22, 23}, "dnp3": {2, 3, 4, 5, 6}}
KIND_OF_TYPE = {"flow": "flow", "anomaly": "anomaly", "alert": "alert"}


class WriteAlerts:
    """Stand-in detector: one alert per (client, server, function) write, throttled like DET's."""

    def __init__(self, targets: list[Any], window: float = 0.5) -> None:
        self.targets = targets
        self.window = window
        self.throttle = Throttle()
        self.alerts: list[Alert] = []

    def _out(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.alerts.append(alert)
            for target in self.targets:
                target.emit(alert)

    def emit(self, record: Any) -> None:
        functions = WRITES.get(record.event_type)
        if not functions or record.direction != "request" or record.function_code not in functions:
            return
        key = f"{record.src_ip}>{record.dst_ip}:{record.function_code}"
        alert = Alert(
            alert_id=make_alert_id("ICS-9001", key, record.ts),
            rule_id="ICS-9001",
            rule_name="test_write",
            title=f"{record.event_type} write request",
            severity=2,
            severity_name="medium",
            category="command",
            protocol=record.event_type,
            tactic=tactic_refs(["TA0106"]),
            technique=technique_refs(["T0855"]),
            explanation=f"{record.src_ip} sent {record.function} to {record.dst_ip}",
            evidence={"function_code": record.function_code, "frame": record.frame},
            key=key,
            flow_id=record.flow_id,
            src_ip=record.src_ip,
            src_port=record.src_port,
            dst_ip=record.dst_ip,
            dst_port=record.dst_port,
            ts=record.ts,
            last_ts=record.ts,
            frames=(record.frame,),
        )
        self._out(self.throttle.offer(alert, self.window))

    def close(self) -> None:
        self._out(self.throttle.flush())


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def settings_for(url: str, prefix: str, **overrides: Any) -> ElasticsearchSettings:
    values: dict[str, Any] = {
        "urls": (url,),
        "index_prefix": prefix,
        "kinds": frozenset(KINDS),
        "backoff_initial": 0.1,
        "backoff_max": 2.0,
        "close_timeout": 120.0,
        "request_timeout": 10.0,
        "observer_name": "test-sensor",
    }
    values.update(overrides)
    return ElasticsearchSettings(**values)


def frames(paths: list[Path]) -> Iterator[tuple[float, int, bytes, int]]:
    yield from open_captures(str(path) for path in paths)


class CloseOnce:
    """A sink given to the pipeline as event and flow sink is closed twice; the JSON file once."""

    def __init__(self, sink: JsonLinesSink) -> None:
        self.sink = sink
        self.closed = False

    def emit(self, record: Any) -> None:
        self.sink.emit(record)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sink.close()


def replay(sink: ElasticsearchSink, jsonl_path: Path, source: Any, *, alerts: bool = True) -> WriteAlerts:
    jsonl = CloseOnce(JsonLinesSink(str(jsonl_path)))
    detector = WriteAlerts([jsonl, sink])
    event_sinks: list[Any] = [detector, jsonl, sink] if alerts else [jsonl, sink]
    Pipeline(Config(), default_registry(), event_sinks=event_sinks, flow_sinks=[jsonl, sink]).run(source)
    return detector


def expected_counts(jsonl_path: Path) -> tuple[Counter[str], dict[str, int]]:
    """Documents per kind the JSON lines imply; alerts by id with their final count."""
    counts: Counter[str] = Counter()
    alert_counts: dict[str, int] = {}
    for line in jsonl_path.read_text().splitlines():
        record = json.loads(line)
        event_type = record["event_type"]
        if event_type == "alert":
            alert_counts[record["alert_id"]] = max(alert_counts.get(record["alert_id"], 0), record["count"])
        else:
            counts[KIND_OF_TYPE.get(event_type, "event")] += 1
    counts["alert"] = len(alert_counts)
    return counts, alert_counts


def es_counts(client: Elasticsearch, prefix: str) -> Counter[str]:
    client.indices.refresh(index=f"{prefix}-*")
    counts: Counter[str] = Counter()
    for kind in KINDS:
        counts[kind] = client.count(index=f"{prefix}-{kind}*", allow_no_indices=True)["count"]
    return +counts


def field_types(client: Elasticsearch, index: str, fields: list[str]) -> dict[str, str]:
    """Each field's mapped type in the indices of ``index``, as the cluster reports it."""
    mapping = client.indices.get_field_mapping(index=index, fields=fields)
    return {
        name: next(iter(field["mapping"].values()))["type"]
        for body in mapping.body.values()
        for name, field in body["mappings"].items()
    }


def stored_alert_counts(client: Elasticsearch, prefix: str) -> dict[str, int]:
    hits = client.search(index=f"{prefix}-alert-*", size=10_000, source=["ics.alert"])["hits"]["hits"]
    return {hit["_id"]: hit["_source"]["ics"]["alert"]["count"] for hit in hits}


@pytest.mark.parametrize("worker_process", [True, False], ids=["worker-process", "in-process"])
def test_replay_documents_match_the_json_lines(
    elasticsearch_url: str, tmp_path: Path, worker_process: bool
) -> None:
    prefix = new_prefix()
    settings = settings_for(elasticsearch_url, prefix, worker_process=worker_process)
    client = make_client(settings)
    assert len(setup_templates(client, settings)) == len(KINDS)
    sink = ElasticsearchSink(settings, tmp_path / "state")
    detector = replay(sink, tmp_path / "records.jsonl", frames(CAPTURES))
    status = sink.status()
    assert status["rejected"] == {} and status["spool_pending"] == 0, status

    expected, alert_counts = expected_counts(tmp_path / "records.jsonl")
    assert expected["event"] > 1000 and expected["alert"] > 20 and expected["anomaly"] > 10
    assert any(count > 1 for count in alert_counts.values()), "the throttle made updates"
    assert es_counts(client, prefix) == +expected
    assert stored_alert_counts(client, prefix) == alert_counts, "every alert once, in its final state"

    # Field types as mapped: ask the cluster, then query with the typed semantics.
    types = field_types(
        client,
        f"{prefix}-flow-*",
        ["source.ip", "network.bytes", "@timestamp", "network.transport", "event.duration"],
    )
    assert types == {
        "source.ip": "ip",
        "network.bytes": "long",
        "@timestamp": "date",
        "network.transport": "keyword",
        "event.duration": "long",
    }
    in_loopback = client.count(index=f"{prefix}-flow-*", query={"term": {"source.ip": "127.0.0.0/8"}})[
        "count"
    ]
    loopback_flows = sum(
        1
        for line in (tmp_path / "records.jsonl").read_text().splitlines()
        if (r := json.loads(line))["event_type"] == "flow" and r["src_ip"].startswith("127.")
    )
    assert in_loopback == loopback_flows > 0
    big = client.count(index=f"{prefix}-flow-*", query={"range": {"network.bytes": {"gt": 1000}}})["count"]
    assert 0 < big < expected["flow"]

    # An analyst's search by ATT&CK technique finds the alerts, with rule and explanation.
    found = client.search(
        index=f"{prefix}-alert-*", query={"term": {"threat.technique.id": "T0855"}}, size=10_000
    )["hits"]["hits"]
    assert {hit["_id"] for hit in found} == set(alert_counts)
    first = found[0]["_source"]
    assert first["event"]["kind"] == "alert" and first["rule"]["id"] == "ICS-9001"
    assert first["message"].endswith(first["destination"]["ip"])
    assert first["observer"]["name"] == "test-sensor"
    assert detector.alerts


def test_flows_from_tunnels_are_searchable_by_their_encapsulation(
    elasticsearch_url: str, tmp_path: Path
) -> None:
    """ERSPAN, GRE, VXLAN ... flows land with ``ics.flow.tunnel`` typed as mapped: an analyst finds
    the traffic a mirror session delivered by its switch's address or its session id."""
    prefix = new_prefix()
    settings = settings_for(elasticsearch_url, prefix)
    client = make_client(settings)
    setup_templates(client, settings)
    sink = ElasticsearchSink(settings, tmp_path / "state")
    replay(sink, tmp_path / "records.jsonl", frames([PCAPS / "network" / "tunnels.pcap"]), alerts=False)
    status = sink.status()
    assert status["rejected"] == {} and status["spool_pending"] == 0, status
    flows = [
        r
        for line in (tmp_path / "records.jsonl").read_text().splitlines()
        if (r := json.loads(line))["event_type"] == "flow"
    ]
    tunnelled = [r for r in flows if r["tunnel"]]
    assert len(tunnelled) == 10
    client.indices.refresh(index=f"{prefix}-*")
    index = f"{prefix}-flow-*"
    # An ip field: a CIDR term query on the outer addresses of every layer.
    by_switch = client.count(index=index, query={"term": {"ics.flow.tunnel.src_ip": "172.16.0.0/16"}})[
        "count"
    ]
    assert by_switch == len(tunnelled)
    session = client.search(index=index, query={"term": {"ics.flow.tunnel.id": 100}})["hits"]["hits"]
    assert [hit["_source"]["source"]["ip"] for hit in session] == ["10.1.0.10"]
    assert session[0]["_source"]["ics"]["flow"]["tunnel"][0]["type"] == "erspan2"
    nested = client.count(index=index, query={"term": {"ics.flow.tunnel.type": "vxlan"}})["count"]
    assert nested == sum(1 for r in flows if any(layer["type"] == "vxlan" for layer in r["tunnel"])) == 2
    assert field_types(client, index, ["ics.flow.tunnel.*"]) == {
        "ics.flow.tunnel.type": "keyword",
        "ics.flow.tunnel.id": "long",
        "ics.flow.tunnel.src_ip": "ip",
        "ics.flow.tunnel.dst_ip": "ip",
    }


def test_records_of_a_sliced_capture_are_searchable_as_cut(elasticsearch_url: str, tmp_path: Path) -> None:
    """A capture with a 96-byte snap length: the records of cut PDUs are found by
    ``ics.truncated``, the flows by ``ics.flow.sliced_bytes``, typed as mapped."""
    prefix = new_prefix()
    settings = settings_for(elasticsearch_url, prefix)
    client = make_client(settings)
    setup_templates(client, settings)
    sink = ElasticsearchSink(settings, tmp_path / "state")
    capture = sliced(PCAPS / "demo" / "plant_attack.pcap", tmp_path / "attack_s96.pcap", 96)
    replay(sink, tmp_path / "records.jsonl", frames([capture]), alerts=False)
    status = sink.status()
    assert status["rejected"] == {} and status["spool_pending"] == 0, status
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    cut = [r for r in records if r.get("truncated")]
    assert len(cut) > 300
    client.indices.refresh(index=f"{prefix}-*")
    found = client.count(index=f"{prefix}-event-*", query={"term": {"ics.truncated": True}})["count"]
    assert found == len(cut)
    s7 = client.count(
        index=f"{prefix}-event-*",
        query={
            "bool": {"filter": [{"term": {"ics.truncated": True}}, {"term": {"network.protocol": "s7comm"}}]}
        },
    )["count"]
    assert s7 == sum(1 for r in cut if r["event_type"] == "s7comm") > 100
    sliced_flows = [r for r in records if r["event_type"] == "flow" and r["sliced_bytes"]]
    flows = client.count(index=f"{prefix}-flow-*", query={"range": {"ics.flow.sliced_bytes": {"gt": 0}}})[
        "count"
    ]
    assert flows == len(sliced_flows) == 8
    assert field_types(client, f"{prefix}-*", ["ics.truncated", "ics.flow.sliced_bytes"]) == {
        "ics.truncated": "boolean",
        "ics.flow.sliced_bytes": "long",
    }


def test_a_widened_sweep_alert_replaces_its_first_copy(elasticsearch_url: str, tmp_path: Path) -> None:
    """A unit-id sweep: its alert goes out at the threshold (16 units), then wider, same count."""
    from tests.unit.detect.helpers import RULES, run
    from tests.unit.detect.records import modbus

    prefix = new_prefix()
    settings = settings_for(elasticsearch_url, prefix)
    client = make_client(settings)
    setup_templates(client, settings)
    sink = ElasticsearchSink(settings, tmp_path / "state")
    sweep = [modbus(3, unit_id=u, ts=1000.0 + u / 10, frame=u + 1) for u in range(100)]
    alerts = run(sweep, rules=RULES.configured("ICS-4003", enabled=False))
    assert len(alerts) > 2 and {a.alert_id for a in alerts} == {alerts[0].alert_id}
    assert {a.count for a in alerts} == {1} and alerts[0].evidence["distinct_unit_ids"] == 16
    for alert in alerts:
        sink.emit(alert)
    sink.close()
    assert sink.status()["rejected"] == {}
    client.indices.refresh(index=f"{prefix}-alert-*")
    [hit] = client.search(index=f"{prefix}-alert-*", size=10)["hits"]["hits"]
    assert hit["_id"] == alerts[0].alert_id
    assert hit["_source"]["ics"]["alert"]["evidence"]["distinct_unit_ids"] == 100
    assert hit["_source"]["message"] == alerts[-1].explanation


def test_outage_mid_replay_loses_and_duplicates_nothing(
    private_node: ElasticsearchNode, tmp_path: Path
) -> None:
    prefix = new_prefix()
    settings = settings_for(private_node.url, prefix, batch_size=50)
    client = make_client(settings)
    setup_templates(client, settings)
    sink = ElasticsearchSink(settings, tmp_path / "state")
    all_frames = list(frames(CAPTURES))
    stop_at, start_at = len(all_frames) // 3, 2 * len(all_frames) // 3
    seen: dict[str, Any] = {}

    def outage() -> Iterator[tuple[float, int, bytes, int]]:
        for number, frame in enumerate(all_frames):
            if number == stop_at:
                wait_for(lambda: sum(sink.stats.delivered.values()) > 0, "documents before the outage")
                private_node.stop()
                seen["delivered_before"] = sum(sink.stats.delivered.values())
            if number == start_at:
                wait_for(lambda: sink.stats.failed_attempts > 0, "a failed attempt during the outage")
                seen["pending_in_outage"] = sink.status()["spool_pending"]
                private_node.start()
            yield frame

    replay(sink, tmp_path / "records.jsonl", outage())
    status = sink.status()
    assert status["failed_attempts"] > 0 and seen["pending_in_outage"] > 0, (status, seen)
    assert status["spool_pending"] == 0 and status["rejected"] == {}, status
    expected, alert_counts = expected_counts(tmp_path / "records.jsonl")
    assert seen["delivered_before"] < sum(expected.values())
    assert es_counts(client, prefix) == +expected
    assert stored_alert_counts(client, prefix) == alert_counts


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_monitor_restart_with_a_full_spool_drains_it(elasticsearch_url: str, tmp_path: Path) -> None:
    prefix = new_prefix()
    state = tmp_path / "state"
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: the cluster is "down"
    down = settings_for(nowhere, prefix, close_timeout=1.0, spool_max_bytes=256 * 1024, batch_size=100)
    first = ElasticsearchSink(down, state)
    replay(first, tmp_path / "records.jsonl", frames(CAPTURES), alerts=False)
    status = first.status()
    received = sum(status["received"].values())
    dropped = sum(status["spool_dropped"].values())
    assert status["delivered"] == {} and dropped > 0, "the spool filled up and dropped the oldest"
    assert status["spool_pending"] + dropped == received
    assert list((state / "elasticsearch" / "spool").glob("*.spool")), "spooled on disk for the next run"

    # The ids the kept documents must have: the newest ``spool_pending`` of the emitted sequence.
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    mapper = EcsMapper(Observer("test-sensor", "x"), prefix, KINDS)
    # JSON lines were written in the order the sink got the records, i.e. the spool's order; a
    # record and its JSON line give the same document id.
    emitted_ids = [doc.id for doc in map(mapper.document, records) if doc]
    kept_ids = set(emitted_ids[-status["spool_pending"] :])

    # The monitor comes back with the cluster reachable: `es drain` empties the spool.
    client = make_client(settings_for(elasticsearch_url, prefix))
    setup_templates(client, settings_for(elasticsearch_url, prefix))
    result = CliRunner().invoke(
        es_app, ["drain", "--state", str(state), "--es-url", elasticsearch_url, "--timeout", "120", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["spool_pending"] == 0
    assert sum(report["delivered"].values()) == status["spool_pending"]
    client.indices.refresh(index=f"{prefix}-*")
    hits = client.search(index=f"{prefix}-*", size=10_000, source=False)["hits"]["hits"]
    assert {hit["_id"] for hit in hits} == kept_ids


def test_mapping_conflict_goes_to_the_dead_letter_file(elasticsearch_url: str, tmp_path: Path) -> None:
    prefix = new_prefix()
    settings = settings_for(elasticsearch_url, prefix)
    client = make_client(settings)
    setup_templates(client, settings)
    capture = [PCAPS / "modbus/pymodbus_all_functions.pcap"]
    jsonl_records = []
    sink_probe = EcsMapper(Observer("test-sensor", "x"), prefix, KINDS)
    flow_indices = set()
    for frame_record in _flows(capture):
        jsonl_records.append(frame_record)
        flow_indices.add(sink_probe.index_name("flow", frame_record.ts_start))
    # Someone created the day's flow index by hand with a conflicting type for source.bytes.
    for index in flow_indices:
        client.indices.create(
            index=index, mappings={"properties": {"source": {"properties": {"bytes": {"type": "ip"}}}}}
        )
    sink = ElasticsearchSink(settings, tmp_path / "state")
    replay(sink, tmp_path / "records.jsonl", frames(capture), alerts=False)
    status = sink.status()
    flows = len(jsonl_records)
    assert status["rejected"] == {"flow": flows} and status["spool_pending"] == 0, status
    dead = [
        json.loads(line)
        for line in (tmp_path / "state/elasticsearch/dead-letter.jsonl").read_text().splitlines()
    ]
    assert len(dead) == flows
    for entry in dead:
        assert entry["kind"] == "flow" and entry["status"] == 400
        assert "parsing_exception" in entry["reason"] and "source.bytes" in entry["reason"]
        assert entry["document"]["source"]["bytes"] >= 0 and entry["index"] in flow_indices
    assert [a.code for a in sink.anomalies] == [REJECTED] * flows
    client.indices.refresh(index=f"{prefix}-*")
    raised = client.count(index=f"{prefix}-anomaly-*", query={"term": {"ics.anomaly.code": REJECTED}})[
        "count"
    ]
    assert raised == flows
    expected, _ = expected_counts(tmp_path / "records.jsonl")
    assert client.count(index=f"{prefix}-event-*")["count"] == expected["event"]


def _flows(paths: list[Path]) -> list[Any]:
    collect = ListSink()
    Pipeline(Config(), default_registry(), dissect="detect", flow_sinks=[collect]).run(frames(paths))
    return collect.records


def test_es_setup_and_check_commands(elasticsearch_url: str) -> None:
    prefix = new_prefix()
    runner = CliRunner()
    base = ["--es-url", elasticsearch_url, "--es-index-prefix", prefix]
    before = runner.invoke(es_app, ["check", *base, "--json"])
    assert before.exit_code == 1, before.output
    assert set(json.loads(before.stdout)["templates"].values()) == {"missing"}
    setup = runner.invoke(es_app, ["setup", *base])
    assert setup.exit_code == 0, setup.output
    assert f"{prefix}-alert: current" in setup.stdout
    after = runner.invoke(es_app, ["check", *base, "--json"])
    assert after.exit_code == 0, after.output
    report = json.loads(after.stdout)
    assert set(report["templates"].values()) == {"current"}
    assert report["version"].startswith(("8.", "9.")) and report["status"] in ("yellow", "green")


def test_unreachable_cluster_is_one_line_and_secrets_stay_hidden() -> None:
    port = free_port()
    url = f"http://elastic:s3cr3t-pw@127.0.0.1:{port}"
    result = CliRunner().invoke(es_app, ["check", "--es-url", url])
    assert result.exit_code == 2, result.output
    assert "s3cr3t" not in result.output
    assert "cannot use Elasticsearch at http://elastic:***@127.0.0.1" in result.output
    assert len(result.output.strip().splitlines()) == 1
    keyed = CliRunner().invoke(
        es_app, ["check", "--es-url", f"http://127.0.0.1:{port}", "--es-api-key", "k3y-s3cr3t"]
    )
    assert keyed.exit_code == 2 and "k3y" not in keyed.output


def test_an_overflowing_inbox_spools_records_in_the_order_they_came(tmp_path: Path) -> None:
    """In-process delivery with the cluster down and a tiny inbox: every record that finds it full
    spills into the spool, behind what the inbox held.  The spool must hold the documents in the
    order the records came, with the ids a mapper gives them in that order (identical records of
    one frame are numbered in turn): spilled ahead of queued ones, they were numbered anew and
    some overwrote others in Elasticsearch."""
    from ics_monitor.sinks.spool import Spool

    collected = ListSink()
    Pipeline(Config(), default_registry(), event_sinks=[collected], flow_sinks=[collected]).run(
        frames(CAPTURES)
    )
    records = collected.records
    settings = settings_for(
        f"http://127.0.0.1:{free_port()}",
        new_prefix(),
        kinds=frozenset(KINDS) | {"event"},
        worker_process=False,
        queue_size=2,
        close_timeout=0.2,
        backoff_initial=0.01,
        backoff_max=0.02,
        fsync=False,
    )
    sink = ElasticsearchSink(settings, tmp_path)
    for record in records:
        sink.emit(record)
    sink.close()
    assert sink.status()["queue_overflow"] > 100, "the inbox overflowed again and again"
    mapper = EcsMapper(Observer("test-sensor", "x"), settings.index_prefix, settings.kinds)
    expected = [doc.id for doc in map(mapper.document, records) if doc]
    spool = Spool(tmp_path / "elasticsearch" / "spool", fsync=False)
    batch = spool.read(len(expected) + 1, max_bytes=1 << 30)
    spooled = [next(iter(json.loads(line.split(b"\t", 1)[0]).values()))["_id"] for line in batch.lines]
    spool.close()
    assert spooled == expected
    assert len(set(spooled)) == len(spooled), "no two documents share an id"
