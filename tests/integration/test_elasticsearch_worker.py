"""The Elasticsearch sink's worker process and raw bulk lines (no cluster needed).

The sink maps, spools and sends in a worker process; these tests check what must not change by
that: the same document ids as in-process mapping, startup errors raised in the monitor, a lost
worker counted rather than blocking or crashing, and spools written by older versions still sent.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from ics_monitor.alerts.attack import tactic_refs, technique_refs
from ics_monitor.alerts.record import Alert, make_alert_id
from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks import elasticsearch
from ics_monitor.sinks.ecs import KINDS, EcsMapper, Observer
from ics_monitor.sinks.elasticsearch import (
    ElasticsearchSettings,
    ElasticsearchSink,
    _bulk_pair,
    _settings_wire,
    _spool_line,
    _wire_form,
)
from ics_monitor.sinks.memory import ListSink
from ics_monitor.sinks.spool import SpoolError
from tests.conftest import PCAPS
from tests.support.elasticsearch import free_port

CAPTURE = PCAPS / "modbus" / "pymodbus_all_functions.pcap"


def records_of_every_kind() -> list[Any]:
    collect = ListSink()
    Pipeline(Config(), default_registry(), event_sinks=[collect], flow_sinks=[collect]).run(
        open_captures([str(CAPTURE)])
    )
    first = next(r for r in collect.records if r.event_type == "modbus")
    alert = Alert(
        alert_id=make_alert_id("ICS-9001", "k", first.ts),
        rule_id="ICS-9001",
        rule_name="test_write",
        title="write",
        severity=2,
        severity_name="medium",
        category="command",
        protocol="modbus",
        tactic=tactic_refs(["TA0106"]),
        technique=technique_refs(["T0855"]),
        explanation="a write",
        evidence={"functions": {16, 6}, "frame": first.frame},  # a set: sorted on the way
        key="k",
        flow_id=first.flow_id,
        src_ip=first.src_ip,
        src_port=first.src_port,
        dst_ip=first.dst_ip,
        dst_port=first.dst_port,
        ts=first.ts,
        last_ts=first.ts,
        frames=(first.frame,),
    )
    as_dict = orjson.loads(orjson.dumps(collect.records[0]))
    return [*collect.records, alert, as_dict]


def unreachable(**overrides: Any) -> ElasticsearchSettings:
    values: dict[str, Any] = {
        "urls": (f"http://127.0.0.1:{free_port()}",),
        "kinds": frozenset(KINDS),
        "close_timeout": 0.5,
        "backoff_initial": 0.05,
        "backoff_max": 0.1,
        "request_timeout": 2.0,
    }
    values.update(overrides)
    return ElasticsearchSettings(**values)


def test_the_worker_maps_to_the_same_documents_as_in_process() -> None:
    records = records_of_every_kind()
    kinds = {EcsMapper(Observer("s", "h"), "p", KINDS).kind_of(r) for r in records}
    assert kinds == {"flow", "anomaly", "event", "alert"}, kinds
    for record in records:
        # Fresh mappers: ids within a frame depend on what came before in the same mapper.
        here = EcsMapper(Observer("s", "h"), "p", KINDS).document(record)
        there = EcsMapper(Observer("s", "h"), "p", KINDS).document(orjson.loads(_wire_form(record)))
        assert here is not None and there is not None
        assert (here.kind, here.index, here.id, here.op_type, here.version) == (
            there.kind,
            there.index,
            there.id,
            there.op_type,
            there.version,
        )
        assert here.source == there.source


def test_spool_lines_are_the_bulk_body_and_old_lines_still_read() -> None:
    mapper = EcsMapper(Observer("s", "h"), "p", KINDS)
    for record in records_of_every_kind():
        document = mapper.document(record)
        assert document is not None
        meta, source = line = _bulk_pair(_spool_line(document)) or (b"", b"")
        assert orjson.loads(source) == document.source
        header = orjson.loads(meta)[document.op_type]
        assert header["_index"] == document.index and header["_id"] == document.id
        assert header.get("version") == document.version
        # A spool written before raw bulk lines holds the helper's action dict: same request.
        assert _bulk_pair(orjson.dumps(document.action())) == line
    assert _bulk_pair(b'{"_index": "x", "_sour') is None


def test_a_spool_in_use_is_refused_in_the_monitor(tmp_path: Path) -> None:
    first = ElasticsearchSink(unreachable(), tmp_path)
    try:
        with pytest.raises(SpoolError, match="in use"):
            ElasticsearchSink(unreachable(), tmp_path)
    finally:
        first.close()
    ElasticsearchSink(unreachable(), tmp_path).close()  # released at close


def test_records_wait_in_the_spool_while_the_cluster_is_down(tmp_path: Path) -> None:
    records = records_of_every_kind()
    sink = ElasticsearchSink(unreachable(), tmp_path)
    started = time.perf_counter()
    for record in records:
        sink.emit(record)
    assert time.perf_counter() - started < 1.0, "emit never waits for the worker"
    sink.close()
    status = sink.status()
    assert status["delivered"] == {} and status["failed_attempts"] > 0
    assert status["skipped"] == 0
    assert status["spool_pending"] == sum(status["received"].values()) == len(records)
    assert sink.stats.last_error is not None and "Connection" in sink.stats.last_error
    # The next run finds them (and a sink selecting fewer kinds skips in the monitor).
    again = ElasticsearchSink(unreachable(kinds=frozenset({"flow"})), tmp_path)
    # Only a sink selecting protocol events asks the pipeline for them (see Pipeline.protocol_sinks).
    assert sink.protocol_events and not again.protocol_events
    for record in records:
        again.emit(record)
    again.close()
    flows = sum(1 for r in records if getattr(r, "event_type", None) == "flow")
    assert again.status()["spool_pending"] == len(records) + flows
    assert again.status()["skipped"] == len(records) - flows


def test_a_lost_worker_is_counted_not_fatal(tmp_path: Path) -> None:
    records = records_of_every_kind()
    sink = ElasticsearchSink(unreachable(), tmp_path)
    sink._process.send_signal(signal.SIGKILL)
    sink._process.wait()
    deadline = time.monotonic() + 10
    while sink.stats.last_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    for record in records:
        sink.emit(record)
    sink.close()
    assert "ended unexpectedly" in (sink.stats.last_error or "")
    assert sum(sink.status()["backlog_dropped"].values()) == len(records)
    assert [a.code for a in sink.anomalies] == ["sink.spool_dropped"]


def test_a_worker_whose_monitor_is_gone_exits_quietly_and_keeps_its_spool(tmp_path: Path) -> None:
    """A monitor killed outright: its worker finds nobody reading its reports.  It ends without a
    traceback on the terminal they shared, and what it took waits in the spool for the next run."""
    records = records_of_every_kind()
    worker = subprocess.Popen(
        [sys.executable, "-c", "from ics_monitor.sinks.elasticsearch import worker_main; worker_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert worker.stdin is not None and worker.stdout is not None and worker.stderr is not None
    header = {"settings": _settings_wire(unreachable()), "state_dir": str(tmp_path), "seed": 1}
    worker.stdin.write(orjson.dumps(header, option=orjson.OPT_APPEND_NEWLINE))
    worker.stdin.flush()
    assert orjson.loads(worker.stdout.readline()) == {"ready": True}
    worker.stdin.write(b"".join(_wire_form(record) for record in records))
    worker.stdin.flush()
    worker.stdout.close()  # the monitor is gone: nobody reads the reports
    worker.stdin.close()
    assert worker.wait(30) == 0
    errors = worker.stderr.read().decode()
    worker.stderr.close()
    assert "Traceback" not in errors and "Error" not in errors, errors
    again = ElasticsearchSink(unreachable(), tmp_path)
    again.close()
    assert again.status()["spool_pending"] == len(records)


def test_a_burst_beyond_the_buffer_cap_waits_for_the_worker_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = records_of_every_kind() * 20
    # A cap of a few records' size: the burst below passes it over and over.
    monkeypatch.setattr(elasticsearch, "_BACKLOG_MAX_BYTES", 16 * 1024)
    sink = ElasticsearchSink(unreachable(), tmp_path)
    for record in records:
        sink.emit(record)
    sink.close()
    status = sink.status()
    assert status["backlog_dropped"] == {} and status["spool_dropped"] == {}
    assert sum(status["received"].values()) == status["spool_pending"] == len(records)
