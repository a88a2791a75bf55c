"""The pipeline's analysis wiring: what reaches the inventory, the detection engine and the learner.

The engine and learner here are recorders with the agreed interface (issue 6 interfaces), so the
test checks the wiring alone; the real detectors are exercised by the CLI tests and DET's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ics_monitor.alerts.record import Alert, make_alert_id
from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.events.flow import FlowRecord
from ics_monitor.inventory.assets import ASSET_LIMIT, NEW_ASSET, AssetChange, Inventory, InventoryConfig
from ics_monitor.pipeline import Analysis, Pipeline
from tests.conftest import PCAPS
from tests.unit.detect.records import modbus
from tests.unit.inventory.helpers import Collect, registry

POLLING = PCAPS / "modbus" / "pymodbus_polling.pcap"


class RecordingEngine:
    """Records every call; raises one alert per new asset it is told about."""

    def __init__(self, baseline: Any = None) -> None:
        self.baseline = baseline
        self.events: list[Any] = []
        self.flows: list[FlowRecord] = []
        self.changes: list[AssetChange] = []
        self.ticks: list[float] = []
        self.finished = 0

    def observe(self, event: Any) -> list[Alert]:
        self.events.append(event)
        return []

    def observe_flow(self, record: FlowRecord) -> list[Alert]:
        self.flows.append(record)
        return []

    def observe_changes(self, changes: list[AssetChange]) -> list[Alert]:
        self.changes.extend(changes)
        return [new_asset_alert(change) for change in changes if change.kind == NEW_ASSET]

    def advance(self, ts: float) -> list[Alert]:
        self.ticks.append(ts)
        return []

    def finish(self) -> list[Alert]:
        self.finished += 1
        return []


class RecordingLearner:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.flows: list[FlowRecord] = []

    def observe(self, event: Any) -> None:
        self.events.append(event)

    def observe_flow(self, record: FlowRecord) -> None:
        self.flows.append(record)

    def learn_late_flow(self, record: FlowRecord, baseline: Any) -> bool:
        self.flows.append(record)
        return False

    def baseline(self) -> dict[str, int]:
        return {"events": len(self.events)}


def new_asset_alert(change: AssetChange) -> Alert:
    return Alert(
        alert_id=make_alert_id("ICS-5001", change.asset_id, change.ts),
        rule_id="ICS-5001",
        rule_name="new_asset",
        title="New asset",
        severity=2,
        severity_name="medium",
        category="baseline",
        protocol=None,
        tactic=(),
        technique=(),
        explanation="",
        evidence={"ip": change.ip},
        key=change.asset_id,
        src_ip=change.ip,
        ts=change.ts,
        last_ts=change.ts,
        frames=(change.frame,),
    )


def run(analysis: Analysis, *captures: Path, config: Config | None = None) -> tuple[Collect, Any]:
    events = Collect()
    pipeline = Pipeline(
        config or Config(dissect=DissectConfig(strict=True)),
        registry(),
        event_sinks=[events],
        flow_sinks=[events],
        analysis=analysis,
    )
    stats = pipeline.run(open_captures([str(path) for path in captures]))
    return events, stats


def test_every_record_reaches_inventory_engine_and_sinks() -> None:
    inventory = Inventory()
    engine = RecordingEngine()
    alerts, changes = Collect(), Collect()
    analysis = Analysis(inventory, engine=engine, alert_sinks=[alerts], change_sinks=[changes])
    records, stats = run(analysis, POLLING)
    protocol_and_anomalies = [r for r in records.records if r.event_type not in ("flow", "arp")]
    assert engine.events == protocol_and_anomalies and stats.events > 100
    assert engine.flows == [r for r in records.records if r.event_type == "flow"] and stats.flows == len(
        engine.flows
    )
    assert engine.changes == changes.records and changes.records
    # One alert per new asset (the stand-in's rule), delivered to the alert sink and counted.
    assert [a.src_ip for a in alerts.records] == [c.ip for c in changes.records if c.kind == NEW_ASSET]
    assert stats.alerts == len(alerts.records) == len(inventory) and stats.assets == len(inventory)
    # Time checks once per capture second or so, in order; the end flushed once; sinks closed once.
    assert engine.ticks == sorted(engine.ticks) and len(engine.ticks) >= 5
    assert all(b - a >= 1.0 for a, b in zip(engine.ticks, engine.ticks[1:], strict=False))
    assert engine.finished == 1 and alerts.closed == 1 and changes.closed == 1


def test_learning_window_then_enforcing() -> None:
    learner = RecordingLearner()
    before = RecordingEngine()
    built: list[RecordingEngine] = []
    learned: list[Any] = []

    def enforce(baseline: Any) -> RecordingEngine:
        engine = RecordingEngine(baseline)
        built.append(engine)
        return engine

    analysis = Analysis(
        Inventory(),
        engine=before,
        learner=learner,
        learn_for=2.0,
        enforce=enforce,
        on_baseline=learned.append,
    )
    _, stats = run(analysis, POLLING)
    assert stats.first_ts is not None
    switch = stats.first_ts + 2.0
    assert len(built) == 1 and learned == [built[0].baseline] == [{"events": len(learner.events)}]
    # The learner saw protocol events of the first 2 s only (the switch happens at the first frame
    # at or after first_ts + 2), and the enforcing engine everything after.
    assert learner.events and all(event.ts < switch for event in learner.events)
    assert built[0].events and all(event.ts >= switch for event in built[0].events)
    assert before.finished == 1 and built[0].finished == 1
    assert analysis.switched_at is not None and analysis.switched_at >= switch


def test_flows_that_began_while_learning_are_learned_when_their_records_come() -> None:
    """A flow's record comes when it ends: an NTP exchange that began in the learning window and
    ended after the switch is learned then (into the enforced and the saved baseline), not
    reported as a new conversation; one that began after the switch is new."""
    import dataclasses

    from ics_monitor.detect import DetectionEngine
    from ics_monitor.inventory.baseline import BaselineLearner
    from tests.unit.detect.helpers import RULES
    from tests.unit.detect.records import flow

    saved: list[Any] = []
    engines: list[DetectionEngine] = []

    def enforce(baseline: Any) -> DetectionEngine:
        engines.append(DetectionEngine(RULES, baseline))
        return engines[-1]

    sink = Collect()
    analysis = Analysis(
        Inventory(),
        learner=BaselineLearner(),
        learn_for=60.0,
        enforce=enforce,
        on_baseline=saved.append,
        alert_sinks=[sink],
    )
    poll = flow(src_ip="10.0.0.5", dst_ip="10.0.0.9", dst_port=502, app_protocol="modbus", ts=1000.0)
    ntp = dataclasses.replace(
        flow(src_ip="10.0.0.5", dst_ip="10.0.0.1", dst_port=123, transport="udp", service="ntp", ts=1010.0),
        ts_end=1200.0,
    )
    later = dataclasses.replace(ntp, src_ip="10.0.0.6", ts_start=1100.0, flow_id="late-ntp")
    analysis.advance(1000.0)
    analysis.flow(poll)
    analysis.advance(1070.0)  # the switch
    assert analysis.switched_at == 1070.0 and len(saved) == 1
    assert ("10.0.0.5", "10.0.0.1", "udp", 123, "ntp") not in saved[0].conversations
    analysis.flow(ntp)
    analysis.flow(later)
    analysis.finish()
    rules = [(a.rule_id, a.src_ip) for a in sink.records]
    assert ("ICS-5002", "10.0.0.5") not in rules and ("ICS-5002", "10.0.0.6") in rules
    # Saved again at the end, with the late conversation (and not the one that began after).
    assert len(saved) == 2 and ("10.0.0.5", "10.0.0.1", "udp", 123, "ntp") in saved[1].conversations
    assert ("10.0.0.6", "10.0.0.1", "udp", 123, "ntp") not in saved[1].conversations


def test_window_longer_than_the_capture_learns_everything() -> None:
    learner = RecordingLearner()
    learned: list[Any] = []
    analysis = Analysis(
        Inventory(), learner=learner, learn_for=3600.0, enforce=RecordingEngine, on_baseline=learned.append
    )
    _, stats = run(analysis, POLLING)
    assert learned == [{"events": stats.events}] and analysis.switched_at is None


def test_asset_cap_raises_one_anomaly() -> None:
    analysis = Analysis(Inventory(InventoryConfig(max_assets=1)), engine=RecordingEngine())
    records, stats = run(analysis, PCAPS / "dnp3" / "crafted_objects.pcap")
    limits = [r for r in records.records if r.event_type == "anomaly" and r.code == ASSET_LIMIT]
    assert len(limits) == 1 and stats.anomalies[ASSET_LIMIT] == 1 and stats.assets == 1


def test_without_analysis_nothing_changes() -> None:
    with_analysis, _ = run(Analysis(Inventory(), engine=RecordingEngine()), POLLING)
    events = Collect()
    Pipeline(
        Config(dissect=DissectConfig(strict=True)), registry(), event_sinks=[events], flow_sinks=[events]
    ).run(open_captures([str(POLLING)]))
    assert events.records == with_analysis.records


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_detector_is_reported_as_an_anomaly_and_an_alert(
    workers: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """A detector raising on every Modbus request costs it those records; the run goes on.

    Its first failure is one ``internal.detector_error`` anomaly among the run's events (as the
    asset cap's), which ICS-2006 turns into an alert; in one process and across workers alike.
    """
    from ics_monitor.detect.api import BaseDetector, Emitter
    from ics_monitor.detect.engine import DETECTOR_ERROR, DETECTORS, DetectionEngine
    from ics_monitor.detect.rules import RuleSet
    from ics_monitor.parallel import run_sharded

    class Fragile(BaseDetector):
        name = "fragile"
        rule_ids = ("ICS-1001",)
        event_types = frozenset({"modbus"})
        directions = frozenset({"request"})

        def on_event(self, event: Any, out: Emitter) -> None:
            raise RuntimeError(f"cannot handle function {event.function_code}")

    engine = DetectionEngine(RuleSet.load(), detectors=(Fragile, *DETECTORS))
    alerts, events = Collect(), Collect()
    analysis = Analysis(Inventory(), engine=engine, alert_sinks=[alerts])
    pipeline = Pipeline(Config(), registry(), event_sinks=[events], flow_sinks=[events], analysis=analysis)
    if workers == 1:
        stats = pipeline.run(open_captures([str(POLLING)]))
    else:
        stats = run_sharded(pipeline, [str(POLLING)], workers)
    requests = [r for r in events.records if r.event_type == "modbus" and r.direction == "request"]
    assert len(requests) > 10 and engine.failures == {"fragile": len(requests)}
    [report] = [r for r in events.records if r.event_type == "anomaly" and r.code == DETECTOR_ERROR]
    assert report.frame == requests[0].frame and report.flow_id == requests[0].flow_id
    assert "fragile: RuntimeError: cannot handle function" in report.detail
    assert stats.anomalies[DETECTOR_ERROR] == 1
    assert [a.rule_id for a in alerts.records if a.rule_id == "ICS-2006"] == ["ICS-2006"]
    # The CLI says it at the end of the run too (and keeps the counts with the run's figures).
    from ics_monitor.cli.app import _failures

    assert _failures(analysis) == {"detector fragile": len(requests)}
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ics-monitor: warning: detector fragile failed on {len(requests):,} records")


class _FailsOnReads(Inventory):
    """The real inventory, failing on every Modbus read request (FC 3)."""

    def observe(self, event: Any) -> list[AssetChange]:
        if event.event_type == "modbus" and event.function_code == 3 and event.direction == "request":
            raise ValueError("unexpected register block")
        return super().observe(event)


class _LearnerFailsOnFlows(RecordingLearner):
    def observe_flow(self, record: FlowRecord) -> None:
        raise TypeError("no flows here")


def test_a_failing_inventory_or_learner_skips_the_record_and_says_so_once() -> None:
    from ics_monitor.pipeline import ANALYSIS_ERROR

    learner = _LearnerFailsOnFlows()
    engine = RecordingEngine()
    analysis = Analysis(_FailsOnReads(), engine=engine, learner=learner)
    records, stats = run(analysis, POLLING, config=Config())
    reads = [r for r in records.records if r.event_type == "modbus" and r.function_code == 3]
    flows = [r for r in records.records if r.event_type == "flow"]
    assert len(reads) > 10 and flows
    reports = [r for r in records.records if r.event_type == "anomaly" and r.code == ANALYSIS_ERROR]
    assert [r.detail.split(":")[0] for r in reports] == ["inventory", "baseline learner"]
    assert reports[0].frame == reads[0].frame and "ValueError: unexpected register block" in reports[0].detail
    assert reports[1].frame == flows[0].first_frame and "TypeError: no flows here" in reports[1].detail
    requests = [r for r in reads if r.direction == "request"]
    assert analysis.failures == {"inventory": len(requests), "baseline learner": len(flows)}
    from ics_monitor.cli.app import _failures

    assert _failures(analysis) == {"inventory": len(requests), "baseline learner": len(flows)}
    assert stats.anomalies[ANALYSIS_ERROR] == 2
    # Everything else still went on: the engine and the learner saw every read, the inventory the rest.
    assert all(r in engine.events for r in reads) and all(r in learner.events for r in reads)
    [asset] = analysis.inventory.assets()  # the capture is on loopback: one host
    assert asset.ip == "127.0.0.1" and "modbus" in asset.protocols
    with pytest.raises(ValueError):
        run(Analysis(_FailsOnReads(), engine=RecordingEngine(), strict=True), POLLING)


def test_a_reload_whose_engine_fails_to_build_keeps_the_engine_in_force() -> None:
    engine = RecordingEngine(baseline={"kept": True})
    analysis = Analysis(Inventory(), engine=engine)

    def broken(baseline: Any) -> RecordingEngine:
        raise TypeError("int object expected; got str")

    with pytest.raises(TypeError):
        analysis.reconfigure(broken)
    assert analysis.engine is engine and engine.finished == 0  # untouched, still detecting
    analysis.reconfigure(RecordingEngine)
    assert analysis.engine is not engine and engine.finished == 1
    assert getattr(analysis.engine, "baseline", None) == {"kept": True}


class PassRecordingEngine(RecordingEngine):
    """Also records whether each event came marked as read-checked by a worker."""

    def __init__(self, baseline: Any = None) -> None:
        super().__init__(baseline)
        self.passed: list[bool] = []

    def observe(self, event: Any, passed: bool = False) -> list[Alert]:
        self.passed.append(passed)
        return super().observe(event)


def test_a_workers_read_check_counts_only_for_the_engine_of_its_baseline() -> None:
    """A response a shard worker passed reaches the engine as passed only while the engine in
    force is the one built with the baseline the workers loaded: not without one, not after a
    reload (new rules may mean new margins) or a learning window's switch."""
    from tests.unit.detect.records import modbus

    response = modbus(3, request=False, address=0, quantity=2, values=(1, 2))
    engine = PassRecordingEngine()
    analysis = Analysis(Inventory(), engine=engine)
    analysis.event(response, True)  # no engine of the workers' baseline
    analysis.checked_engine = engine
    analysis.event(response, True)
    analysis.event(response)
    analysis.reconfigure(PassRecordingEngine)
    analysis.event(response, True)
    reloaded = analysis.engine
    assert isinstance(reloaded, PassRecordingEngine) and reloaded is not engine
    assert engine.passed == [False, True, False] and reloaded.passed == [False]


def test_workers_checks_count_only_for_an_enforcing_analysis(tmp_path: Path) -> None:
    """Workers' checks count for an enforcing analysis that loaded what they loaded: the same
    baseline and rules files, with the contents they had when the workers started (digest)."""
    from ics_monitor import parallel
    from ics_monitor.inventory.baseline import BaselineLearner
    from ics_monitor.pipeline import DETECT, ENFORCE, LEARN, build_analysis, worker_checks_of
    from tests.unit.detect.records import modbus

    baseline = tmp_path / "baseline.yaml"
    learner = BaselineLearner()
    learner.observe(modbus(3, frame=1, address=0, quantity=2))
    learner.observe(modbus(3, request=False, frame=2, address=0, quantity=2, values=(5, 6)))
    learner.baseline().save(baseline)
    checks = worker_checks_of(baseline, None)
    assert checks[:2] == (str(baseline), None) and len(checks[2]) == 64
    enforcing = build_analysis(
        Config(), Inventory(), mode=ENFORCE, baseline_path=baseline, rules_dir=None, worker_checks=checks
    )
    assert enforcing.checks == checks and enforcing.engine is not None
    assert enforcing.checked_engine is enforcing.engine
    for mode in (DETECT, LEARN):
        other = build_analysis(Config(), Inventory(), mode=mode, baseline_path=baseline, worker_checks=checks)
        assert other.checks == checks and other.checked_engine is None  # kept as started, not counted
    unasked = build_analysis(Config(), Inventory(), mode=ENFORCE, baseline_path=baseline)
    assert unasked.checks is None and unasked.checked_engine is None
    # The workers' own check: loaded by the first record it could pass, for those contents only.
    in_range = modbus(3, request=False, frame=4, address=0, quantity=2, values=(5, 6))
    check = parallel._worker_check(checks)
    assert check is not None and check(modbus(3, frame=3, address=0, quantity=2)) is True
    assert check(modbus(3, frame=5, address=0, quantity=3)) is False  # a read never made
    assert check(in_range) is True
    assert parallel._load_worker_check((checks[0], None, "0" * 64)) is None
    # The baseline rewritten after the workers started (a concurrent --learn): neither side counts it.
    baseline.write_text(baseline.read_text() + "\n")
    assert parallel._load_worker_check(checks) is None
    late = parallel._worker_check(checks)
    assert late is not None and late(in_range) is False
    rewritten = build_analysis(
        Config(), Inventory(), mode=ENFORCE, baseline_path=baseline, rules_dir=None, worker_checks=checks
    )
    assert rewritten.checks == checks and rewritten.checked_engine is None


class _ScriptedEngine(RecordingEngine):
    """Returns the alerts queued for the next event (``script``), or at the next tick (``at_tick``)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: list[list[Alert]] = []
        self.at_tick: list[Alert] = []

    def observe(self, event: Any, passed: bool = False) -> list[Alert]:
        self.events.append(event)
        return self.script.pop(0) if self.script else []

    def observe_changes(self, changes: list[AssetChange]) -> list[Alert]:
        self.changes.extend(changes)
        return []

    def advance(self, ts: float) -> list[Alert]:
        self.ticks.append(ts)
        out, self.at_tick = self.at_tick, []
        return out


def _alert(rule_id: str, count: int = 1, **evidence: Any) -> Alert:
    """An alert of ``rule_id`` (the same id for the same rule: records of one alert)."""
    return Alert(
        alert_id=make_alert_id(rule_id, "10.0.0.2>10.0.0.1", 100.0),
        rule_id=rule_id,
        rule_name="scripted",
        title="Scripted",
        severity=3,
        severity_name="high",
        category="command",
        protocol="modbus",
        tactic=(),
        technique=(),
        explanation="",
        evidence=evidence,
        key="10.0.0.2>10.0.0.1",
        ts=100.0,
        last_ts=100.0,
        count=count,
        frames=(1,),
    )


def test_alerts_go_out_at_the_tick_each_as_its_last_record() -> None:
    engine = _ScriptedEngine()
    alerts = Collect()
    analysis = Analysis(Inventory(), engine=engine, alert_sinks=[alerts])
    stop = _alert("ICS-1001")
    answered = _alert("ICS-1001", outcome={"result": "accepted"})
    other = _alert("ICS-1002")
    later = _alert("ICS-1001", count=2, outcome={"result": "accepted"})
    event = _modbus_request()
    engine.script = [[stop], [other], [answered]]
    for _ in range(3):
        analysis.event(event)
    assert alerts.records == [] and analysis.alert_records == 0  # held until the tick
    analysis.advance(101.0)
    # The answer replaced the first record in its place: one record per alert, in raising order.
    assert alerts.records == [answered, other]
    assert analysis.alert_records == 2 and analysis.alert_ids == {stop.alert_id, other.alert_id}
    # Raised at a tick: out at that tick.  Raised after the last tick: out at the end.
    engine.at_tick = [later]
    analysis.advance(102.0)
    assert alerts.records[-1] is later
    engine.script = [[other]]
    analysis.event(event)
    analysis.finish()
    assert alerts.records[-1] is other and analysis.alert_records == 4


def test_held_alerts_reach_the_sinks_when_the_run_is_cut_short() -> None:
    engine = _ScriptedEngine()
    alerts = Collect()
    analysis = Analysis(Inventory(), engine=engine, alert_sinks=[alerts])
    engine.script = [[_alert("ICS-1001")]]
    analysis.event(_modbus_request())
    analysis.close()  # no finish: an interrupted run closes its sinks all the same
    assert [alert.rule_id for alert in alerts.records] == ["ICS-1001"]


def test_a_storm_of_alerts_goes_out_in_batches_between_ticks() -> None:
    from ics_monitor.pipeline import _MAX_PENDING

    engine = _ScriptedEngine()
    alerts = Collect()
    analysis = Analysis(Inventory(), engine=engine, alert_sinks=[alerts])
    storm = [_alert(f"ICS-{number}") for number in range(_MAX_PENDING + 10)]
    engine.script = [[alert] for alert in storm]
    event = _modbus_request()
    for _ in storm:
        analysis.event(event)
    assert alerts.records == storm[:_MAX_PENDING]  # the cap drained them, with no tick
    analysis.finish()
    assert alerts.records == storm


def _modbus_request() -> Any:
    return modbus(3, ts=100.0, address=0, quantity=2)


class _FlakySink(Collect):
    """Takes alerts, but raises once, on the ``fail_at``-th one offered."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.offered = 0
        self.fail_at = fail_at

    def emit(self, record: Any) -> None:
        self.offered += 1
        if self.offered == self.fail_at:
            raise OSError("disk full")
        super().emit(record)


def test_a_sink_failing_in_a_drain_loses_no_held_alert() -> None:
    engine = _ScriptedEngine()
    steady, flaky = Collect(), _FlakySink(fail_at=2)
    analysis = Analysis(Inventory(), engine=engine, alert_sinks=[steady, flaky])
    raised = [_alert(f"ICS-{100 + number}") for number in range(5)]
    engine.script = [[alert] for alert in raised]
    event = _modbus_request()
    for _ in raised:
        analysis.event(event)
    with pytest.raises(OSError, match="disk full"):
        analysis.advance(101.0)
    assert flaky.records == raised[:1] and analysis.alert_records == 1
    analysis.close()  # the failed alert and those after it go out at the next drain
    assert flaky.records == raised and analysis.alert_records == 5
    assert steady.records == [raised[0], raised[1], *raised[1:]]  # the failed one offered again
