"""The collector's schedule (``core.collector``) and the premise it rests on: records make no cycles."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.core import collector
from ics_monitor.core.collector import YOUNG_THRESHOLD, collector_paused, tune_collector
from ics_monitor.detect import DetectionEngine, RuleSet
from ics_monitor.dissect import default_registry
from ics_monitor.inventory.assets import Inventory
from ics_monitor.inventory.baseline import BaselineLearner
from ics_monitor.pipeline import Analysis, Pipeline
from ics_monitor.sinks.memory import ListSink

PCAPS = Path(__file__).resolve().parents[3] / "pcaps"
# Every protocol, normal and attack traffic, malformed PDUs: what the analysis and its alerts see.
CAPTURES = (
    "demo/plant_normal.pcap",
    "demo/plant_attack.pcap",
    "modbus/pymodbus_all_functions.pcap",
    "modbus/crafted_anomalies.pcap",
    "s7comm/snap7_session.pcap",
    "s7comm/snap7_blocks.pcap",
    "s7comm/crafted_anomalies.pcap",
    "dnp3/opendnp3_session.pcap",
    "dnp3/crafted_anomalies.pcap",
)


def test_tune_collector_freezes_and_sets_the_threshold() -> None:
    before = gc.get_threshold()
    try:
        tune_collector()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_records_leave_no_cyclic_garbage() -> None:
    """Past warm-up, a run with inventory, learning and every detector frees all it drops by refcount.

    Every detector: the baseline-deviation ones too, against a baseline learned on the same
    traffic (Modbus, DNP3 and S7 values read and written).

    The rare collections ``YOUNG_THRESHOLD`` allows are safe only so: a record path that made a
    reference cycle per record would hold its garbage until a collection.
    """
    captures = [str(PCAPS / name) for name in CAPTURES]
    total = sum(1 for _ in open_captures(captures))
    found: list[int] = []

    def frames() -> Iterator[Any]:
        for number, frame in enumerate(open_captures(captures)):
            if number == total // 5:
                gc.collect()  # warm-up: caches, first alerts of each rule, lazily built tables
            yield frame
        found.append(gc.collect())  # before the pipeline's end: the run's state is still alive

    # Enforcing a baseline learned on the same traffic, so that every record meets the deviation
    # checks of a known conversation (values read and written, function codes, polls), while
    # learning another.
    learner = BaselineLearner()
    learning = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        default_registry(),
        dissect="full",
        analysis=Analysis(Inventory(), learner=learner),
    )
    learning.run(open_captures(captures))
    baseline = learner.baseline()
    learned = {
        (conversation.protocol, kind)
        for conversation in baseline.conversations.values()
        for kind, _ in conversation.values
    }
    assert learned >= {
        ("modbus", "read"),
        ("modbus", "written"),
        ("dnp3", "read"),
        ("s7comm", "read"),
        ("s7comm", "written"),
    }
    alerts = ListSink()
    analysis = Analysis(
        Inventory(),
        engine=DetectionEngine(RuleSet.load(), baseline, None, strict=True),
        learner=BaselineLearner(),
        alert_sinks=[alerts],
    )
    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)), default_registry(), dissect="full", analysis=analysis
    )
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        stats = pipeline.run(frames())
    finally:
        if enabled:
            gc.enable()
    assert stats.events > 1000  # the run had records to make cycles with
    assert alerts.records  # and alerts
    assert found == [0]


def test_collector_paused_restores_the_collector_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    try:
        with collector_paused():
            raise RuntimeError("a run's end failed")
    except RuntimeError:
        pass
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # off before: left off
    finally:
        gc.enable()
    # The command-line process ends with its command: the collector stays off after the run.
    with collector_paused(resume=False):
        pass
    try:
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("resume", [True, False])
def test_a_run_end_is_paused_until_the_store_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: bool
) -> None:
    """``_analyse`` (replay and live) pauses the collector from the end of ``run`` (the assets'
    dicts, the store's last writes, the summary) and leaves it as ``resume_after_run`` says."""
    from ics_monitor.cli import app

    summarised: list[bool] = []
    summary = vars(app)["print_replay_summary"]

    def spied(*args: Any, **kwargs: Any) -> None:
        summarised.append(gc.isenabled())
        summary(*args, **kwargs)

    monkeypatch.setattr(app, "print_replay_summary", spied)
    monkeypatch.setattr(collector, "resume_after_run", resume)
    capture = PCAPS / "demo" / "plant_attack.pcap"
    running: list[bool] = []

    def run(pipeline: Pipeline) -> Any:
        running.append(gc.isenabled())
        source = open_captures([str(capture)])
        return pipeline.run(source, lambda: source.position)

    assert gc.isenabled()
    try:
        stats = app._analyse(
            "replay",
            [str(capture)],
            run,
            state=tmp_path / "state",
            learn=False,
            window=None,
            baseline=None,
            rules=None,
            zones=None,
            events=False,
            limit=5,
        )
        after = gc.isenabled()
    finally:
        gc.enable()
    assert stats.frames > 100
    assert running == [True]  # the run itself collects as tuned
    assert summarised == [False]  # the end does not
    assert after is resume
