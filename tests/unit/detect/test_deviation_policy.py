"""Baseline deviations, identity changes, zone policy and the engine's plumbing."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.detect import DetectionEngine, Zones, ZonesError
from ics_monitor.detect.deviation import BaselineDeviation
from ics_monitor.detect.rules import RuleSet
from ics_monitor.inventory.baseline import Baseline, BaselineLearner
from tests.unit.detect.helpers import RULES, rule_ids, run
from tests.unit.detect.records import CLIENT, SERVER, change, dnp3, flow, modbus, s7, userdata


def _baseline() -> Baseline:
    learner = BaselineLearner()
    for i in range(20):
        ts = 1000.0 + i
        learner.observe(modbus(3, ts=ts, frame=3 * i + 1, address=0, quantity=10))
        learner.observe(
            modbus(3, request=False, ts=ts + 0.1, frame=3 * i + 2, address=0, quantity=10, values=(50,) * 10)
        )
        learner.observe(modbus(6, ts=ts + 0.5, frame=3 * i + 3, address=20, quantity=1, values=(100 + i,)))
    learner.observe(dnp3(5, objects=({"group": 12, "points": [{"index": 3}]},)))
    learner.observe_flow(flow(dst_port=445, app_protocol="smb"))
    return learner.baseline()


BASELINE = _baseline()


def _unthrottled(rules: RuleSet, *rule_ids: str) -> RuleSet:
    """``rules`` with these rules unthrottled: every firing comes out as an alert of its own."""
    return RuleSet(dataclasses.replace(r, throttle=0) if r.rule_id in rule_ids else r for r in rules)


def _ids(records: list[Any], **kwargs: Any) -> list[str]:
    return rule_ids(run(records, baseline=BASELINE, **kwargs))


def test_known_behaviour_is_quiet() -> None:
    records: list[Any] = []
    for i in range(30):
        ts = 2000.0 + i
        records.append(modbus(3, ts=ts, frame=3 * i + 1, address=0, quantity=10))
        records.append(
            modbus(3, request=False, ts=ts + 0.1, frame=3 * i + 2, address=0, quantity=10, values=(52,) * 10)
        )
        records.append(modbus(6, ts=ts + 0.5, frame=3 * i + 3, address=20, quantity=1, values=(110,)))
    records.append(dnp3(5, objects=({"group": 12, "points": [{"index": 3}]},)))
    records.append(flow(dst_port=445, app_protocol="smb"))
    assert _ids(records) == []


def test_new_asset_and_new_conversation() -> None:
    alerts = run([modbus(3, client="10.0.0.66", address=0, quantity=1)], baseline=BASELINE)
    assert rule_ids(alerts) == ["ICS-5001", "ICS-5002"]
    new_conversation = next(a for a in alerts if a.rule_id == "ICS-5002")
    assert new_conversation.evidence["client"] == "10.0.0.66" and new_conversation.evidence["port"] == 502
    # Once per conversation and asset, however many flows.
    again = [modbus(3, client="10.0.0.66", flow_id=f"f{i}", frame=i) for i in range(5)]
    assert _ids(again) == ["ICS-5001", "ICS-5002"]


def test_new_conversation_names_client_to_server_when_the_server_speaks_first() -> None:
    # A DNP3 outstation's unsolicited null response opens the talk: the alert still reads
    # master -> outstation, as the conversation is (evidence and the src/dst columns agree).
    alerts = run([dnp3(130, request=False, client="10.0.0.66")], baseline=BASELINE)
    (new_conversation,) = [a for a in alerts if a.rule_id == "ICS-5002"]
    assert new_conversation.evidence["client"] == "10.0.0.66"
    assert (new_conversation.src_ip, new_conversation.dst_ip) == ("10.0.0.66", SERVER)
    assert new_conversation.dst_port == 20000


def test_new_protocol_or_port_between_known_hosts() -> None:
    alerts = run([flow(dst_port=3389, app_protocol="rdp")], baseline=BASELINE)
    assert rule_ids(alerts) == ["ICS-5003"]
    assert "modbus tcp/502" in alerts[0].evidence["learned"]
    assert alerts[0].src_mac == "00:11:22:33:44:55" and alerts[0].community_id == "1:x"
    # Failed attempts and other probes are the scan detectors' business (the learner skips them
    # alike): refused, a SYN scan's reset, a datagram or two with nothing back.
    assert _ids([flow(dst_port=3389, state="rejected", payload=0)]) == []
    knock = flow(dst_port=102, state="reset", payload=0, packets_to_server=2, packets_to_client=1)
    assert _ids([knock]) == []
    # Unless the server accepted it (SYN-ACK): the client found the service, worth saying once.
    accepted = dataclasses.replace(knock, tcp_flags_to_client=("SYN", "ACK"))
    assert _ids([accepted]) == ["ICS-5003"]
    udp: dict[str, Any] = {"transport": "udp", "state": None, "reply": 0}
    assert _ids([flow(dst_port=161, packets_to_server=2, packets_to_client=0, **udp)]) == []
    # Answered, or more datagrams than a probe's: a conversation, and a new one.
    assert _ids([flow(dst_port=161, packets_to_server=1, packets_to_client=1, **udp)]) == ["ICS-5003"]
    assert _ids([flow(dst_port=514, packets_to_server=4, packets_to_client=0, **udp)]) == ["ICS-5003"]


def test_new_function_code() -> None:
    assert _ids([modbus(8, sub_function=0)]) == ["ICS-5004"]
    assert _ids([modbus(3, address=0, quantity=10), modbus(6, address=20, values=(105,))]) == []


def test_new_s7_function_once_per_conversation_and_userdata_by_group_and_subfunction() -> None:
    learner = BaselineLearner()
    learner.observe(s7(1, function_code=0x04))  # READ_VAR
    learner.observe(s7(7, userdata=userdata(4, 1), szl_id=0x11))  # SZL read
    baseline = learner.baseline()

    def keys(records: list[Any]) -> list[str]:
        alerts = run(records, baseline=baseline, rules=_unthrottled(RULES, "ICS-5004"))
        return [a.evidence["function_key"] for a in alerts if a.rule_id == "ICS-5004"]

    known = [s7(1, function_code=0x04, frame=1), s7(7, userdata=userdata(4, 1), frame=2)]
    assert keys(known) == []
    # A new function: once per conversation, whatever the flow; checked per flow, each time.
    writes = [s7(1, function_code=0x05, frame=i, flow_id=f"f{i % 2}") for i in range(1, 5)]
    assert keys([*known, *writes]) == ["5"]
    # USERDATA: by group and subfunction (a known group with another subfunction is new).
    assert keys(
        [*known, s7(7, userdata=userdata(4, 2), frame=3), s7(7, userdata=userdata(4, 2), frame=4)]
    ) == ["userdata 4/2"]
    assert keys([s7(7, userdata=userdata(4, 1), frame=3), s7(7, userdata=userdata(7, 1), frame=4)]) == [
        "userdata 7/1"
    ]


def test_write_to_new_address_or_point() -> None:
    assert _ids([modbus(6, address=21, values=(105,))]) == ["ICS-5005"]
    assert _ids([modbus(6, address=20, unit_id=2, values=(105,))]) == ["ICS-5005"]
    assert _ids([dnp3(5, objects=({"group": 12, "points": [{"index": 4}]},))]) == ["ICS-5005"]
    assert _ids([dnp3(5, objects=({"group": 12, "points": [{"index": 3}]},))]) == []


def test_a_dnp3_control_at_another_outstation_of_the_ip(tmp_path: Path) -> None:
    """Found by a red-team review: one IP (a gateway, a terminal server) carries outstations 10
    and 11; the master operated point 3 only at 10 while learning.  Operating it at 11 is a write
    never made: ICS-5005 names the outstation.  The learned section survives YAML and the cache."""
    crob = ({"group": 12, "points": [{"index": 3}]},)
    assert _ids([dnp3(5, objects=crob, dst=10)]) == []
    [alert] = run([dnp3(5, objects=crob, dst=11)], baseline=BASELINE)
    assert alert.rule_id == "ICS-5005"
    assert "function 5 g12 at outstation 11 (only at 10 while learning) 3" in alert.explanation
    conversation = next(c for c in BASELINE.conversations.values() if c.protocol == "dnp3")
    data = conversation.to_dict()
    # The points per outstation say where each write went; the older section is written too (an
    # earlier version reading the file judges writes by it).
    assert data["dnp3_outstation_objects"] == {"10": {"5": {"g12": [[3, 3]]}}}
    assert data["dnp3_written_outstations"] == {"5": {"g12": [[10, 10]]}}
    path = tmp_path / "baseline.yaml"
    BASELINE.save(path)
    for _ in range(2):  # from the YAML, then from the cache it wrote
        loaded = Baseline.load(path)
        [again] = [c for c in loaded.conversations.values() if c.protocol == "dnp3"]
        assert {k: v.ranges for k, v in again.dnp3_outstations.items()} == {(5, 12): [[10, 10]]}
        assert {k: v.ranges for k, v in again.dnp3_outstation_points.items()} == {(5, 12, 10): [[3, 3]]}
        assert rule_ids(run([dnp3(5, objects=crob, dst=11)], baseline=loaded)) == ["ICS-5005"]
    # A file of the version before (written outstations, no points per outstation) judges the same.
    older_data = {k: v for k, v in data.items() if k != "dnp3_outstation_objects"}
    older = Baseline([type(conversation).from_dict(older_data)])
    assert rule_ids(run([dnp3(5, objects=crob, dst=11)], baseline=older)) == ["ICS-5005"]
    assert type(conversation).from_dict(older_data).to_dict()["dnp3_written_outstations"] == {
        "5": {"g12": [[10, 10]]}
    }
    # One learned before outstations were: not judged by them (the point check still is).
    del older_data["dnp3_written_outstations"]
    oldest = Baseline([type(conversation).from_dict(older_data)])
    assert rule_ids(run([dnp3(5, objects=crob, dst=11)], baseline=oldest)) == []


def _two_outstations() -> Baseline:
    """One IP fronting outstations 10 and 11 (a gateway): the master reads and operates each."""
    learner = BaselineLearner()
    for i in range(5):
        ts = 1000.0 + 10 * i
        learner.observe(
            dnp3(1, ts=ts, frame=4 * i + 1, dst=10, objects=({"group": 30, "start": 0, "stop": 9},))
        )
        learner.observe(
            dnp3(1, ts=ts + 1, frame=4 * i + 2, dst=11, objects=({"group": 30, "start": 0, "stop": 4},))
        )
        learner.observe(
            dnp3(5, ts=ts + 2, frame=4 * i + 3, dst=10, objects=({"group": 12, "points": [{"index": 3}]},))
        )
        learner.observe(
            dnp3(5, ts=ts + 3, frame=4 * i + 4, dst=11, objects=({"group": 12, "points": [{"index": 7}]},))
        )
    return learner.baseline()


def test_dnp3_points_are_judged_per_outstation_of_the_ip(tmp_path: Path) -> None:
    """Point 3 of outstation 10 and point 3 of outstation 11 are different breakers: the master
    that operated only 10's point 3 and 11's point 7 while learning, now operating 11's point 3,
    makes a write never made (the IP's pooled ranges hold point 3).  Reads likewise: points 5-9
    were read only at 10, and outstation 12 never at all."""
    baseline = _two_outstations()
    [conversation] = baseline.conversations.values()
    assert conversation.to_dict()["dnp3_outstation_objects"] == {
        "10": {"1": {"g30": [[0, 9]]}, "5": {"g12": [[3, 3]]}},
        "11": {"1": {"g30": [[0, 4]]}, "5": {"g12": [[7, 7]]}},
    }

    def alerts(*records: Any, on: Baseline = baseline) -> list[Any]:
        return run(list(records), baseline=on)

    def control(dst: int, index: int) -> Any:
        return dnp3(5, ts=2000.0, dst=dst, objects=({"group": 12, "points": [{"index": index}]},))

    def read(dst: int, start: int, stop: int) -> Any:
        return dnp3(1, ts=2000.0, dst=dst, objects=({"group": 30, "start": start, "stop": stop},))

    # What was learned, where it was learned: quiet.
    assert alerts(control(10, 3), control(11, 7), read(10, 0, 9), read(11, 0, 4)) == []
    [alert] = alerts(control(11, 3))
    assert alert.rule_id == "ICS-5005"
    assert alert.evidence["targets"] == ["function 5 g12 at outstation 11 3"]
    [alert] = alerts(read(11, 0, 9))
    assert alert.rule_id == "ICS-5011"
    assert alert.evidence["targets"] == ["function 1 g30 at outstation 11 5-9"]
    [alert] = alerts(read(12, 0, 4))
    assert alert.rule_id == "ICS-5011"
    assert "function 1 g30 at outstation 12 (only at 10-11 while learning)" in alert.explanation
    # Points the IP never had at all: the pooled scope, one alert (not one per scope).
    [alert] = alerts(control(11, 9))
    assert alert.evidence["targets"] == ["function 5 g12 9"]
    # Kept through the YAML file and its cache.
    path = tmp_path / "baseline.yaml"
    baseline.save(path)
    for _ in range(2):
        loaded = Baseline.load(path)
        assert rule_ids(alerts(control(11, 3), read(11, 0, 9), on=loaded)) == ["ICS-5005", "ICS-5011"]
        assert rule_ids(alerts(control(10, 3), read(10, 0, 9), on=loaded)) == []
    # A file without the section (learned by an earlier version): reads judged pooled only.
    data = conversation.to_dict()
    del data["dnp3_outstation_objects"]
    older = Baseline([type(conversation).from_dict(data)])
    assert rule_ids(alerts(read(11, 0, 9), read(12, 0, 4), on=older)) == []
    # Nor where the section lacks an outstation the master addressed (an older file given some by
    # hand): a read at an outstation missing from it may have been learned, so none is judged new.
    data["dnp3_outstation_objects"] = {"10": {"1": {"g30": [[0, 9]]}}}
    edited = Baseline([type(conversation).from_dict(data)])
    assert data["link_addresses"] == [[10, 11]]
    assert rule_ids(alerts(read(11, 0, 4), read(12, 0, 4), on=edited)) == []
    assert rule_ids(alerts(read(10, 0, 12), on=edited)) == ["ICS-5011"]  # 10's own points still are


def test_written_value_out_of_range_with_margin() -> None:
    # Learned 100..119: margin max(0.1 * 19, 0.05 * 119) = 5.95.
    assert _ids([modbus(6, address=20, values=(124,))]) == []
    [alert] = run([modbus(6, address=20, values=(126,))], baseline=BASELINE)
    assert alert.rule_id == "ICS-5006"
    found = {
        "point": "hr:1:20",
        "value": 126,
        "learned_min": 100,
        "learned_max": 119,
        "margin": 5.95,
        "side": "above",
        "learned_from": "written",
    }
    assert alert.evidence == {**found, "points": [found], "distinct_points": 1}
    assert (
        f"{CLIENT} wrote values outside their learned ranges to {SERVER}: "
        "hr:1:20 = 126 (written there while learning: 100 to 119, margin 5.95)." in alert.explanation
    )


def test_point_limits_are_computed_per_point_on_demand() -> None:
    from ics_monitor.detect.deviation import PointLimits

    values = {("written", "hr:1:20"): (100.0, 119.0), ("read", "co:1:0"): (0.0, 0.0)}
    written = PointLimits(values, "written", 0.1, 0.05)
    assert written and not PointLimits(values, "other", 0.1, 0.05)
    assert written.compute("hr:1:20") == pytest.approx((94.05, 124.95, 100.0, 119.0))
    assert written.get("hr:1:20") == written.compute("hr:1:20")
    assert written.get("hr:1:21") is None and written.get("co:1:0") is None  # unlearned; other kind
    coil = PointLimits(values, "read", 0.1, 0.05).get("co:1:0")
    assert coil == (0.0, 0.0, 0.0, 0.0)  # learned at 0: no margin at all
    values[("written", "hr:1:21")] = (1.0, 1.0)
    assert written.compute("hr:1:21") is not None  # compute reads the values every time


@pytest.mark.parametrize(
    "learned",
    [
        (0, 0),
        (0, 1),
        (-5, 3),
        (-7, -2),
        (14017, 14017),
        (100.0, 119.0),
        (-0.5, 0.25),
        (True, True),
        (2**53 + 1, 2**60 + 3),  # wider than a double holds exactly: the width is taken exactly
        (-(2**62), 2**62),
    ],
)
def test_point_limits_margin_is_mixed_arithmetic(learned: tuple[Any, Any]) -> None:
    """The compiled margin (C doubles, no builtins) equals the plain Python formula, bit for bit."""
    from ics_monitor.detect.deviation import PointLimits

    low, high = learned
    ratio, magnitude = 0.1, 0.05
    margin = max((high - low) * ratio, max(abs(low), abs(high)) * magnitude)
    expected = (low - margin, high + margin, low, high)
    got = PointLimits({("read", "hr:1:0"): learned}, "read", ratio, magnitude).compute("hr:1:0")
    assert got == expected
    assert got is not None and [type(v) for v in got] == [type(v) for v in expected]


def test_point_limits_bounds_in_one_pass_equal_point_by_point() -> None:
    """``bounds`` (the read path's per-shape step) gives what ``_bounds`` builds from ``compute``,
    bit for bit, with unlearned points unbounded and the other kind's points ignored."""
    from ics_monitor.detect.deviation import PointLimits, _bounds

    learned = [(0, 0), (-5, 3), (100.0, 119.0), (True, True), (2**53 + 1, 2**60 + 3), (-0.5, 0.25)]
    values: dict[tuple[str, str], Any] = {("read", f"hr:1:{10 + n}"): pair for n, pair in enumerate(learned)}
    values[("written", "hr:1:20")] = (1, 2)  # another kind: not a read limit
    limits = PointLimits(values, "read", 0.1, 0.05)
    for address, count in ((10, 6), (8, 12), (12, 1), (15, 5)):
        got = limits.bounds("hr:1:", address, count)
        assert got == _bounds(limits, None, "hr:1:", address, count)
        assert got is not None and [type(v) for v in got[0]] == [float] * count
    lows, highs = limits.bounds("hr:1:", 8, 3) or ((), ())
    assert lows[:2] == (-math.inf, -math.inf) and highs[:2] == (math.inf, math.inf)
    assert limits.bounds("hr:1:", 17, 4) is None  # none learned (hr:1:20 is a written one)


def test_read_value_out_of_range() -> None:
    response = modbus(3, request=False, address=0, quantity=10, values=(50,) * 9 + (80,))
    [alert] = run([response], baseline=BASELINE)
    assert alert.rule_id == "ICS-5007" and alert.evidence["point"] == "hr:1:9"
    assert _ids([modbus(3, request=False, address=0, quantity=10, values=(54,) * 10)]) == []


def test_a_read_shape_is_judged_alike_when_first_seen_and_when_repeated() -> None:
    """A shape read once is checked value by value, its bounds kept from its second read on: the
    findings are the same either way (margins included), and unlearned registers are not judged."""
    rules = _unthrottled(RULES, "ICS-5007")
    # Learned 50 at hr:1:0..9 (margin: a tenth of the value, 5): 55 is in, 56 out; hr:1:10 unlearned.
    reads = [
        (55,) * 9 + (56,) + (9999,),  # first sight: 55 within the margin, hr:1:9 out, hr:1:10 unlearned
        (55,) * 10 + (0,),  # second: bounds built, within the margin
        (50,) * 9 + (56,) + (9999,),  # third: out again
        (44,) + (50,) * 10,  # hr:1:0 below
    ]
    records = [
        modbus(3, request=False, frame=10 + n, address=0, quantity=11, values=values)
        for n, values in enumerate(reads)
    ]
    fired = [a for a in run(records, baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5007"]
    assert [(a.frames, a.evidence["point"], a.evidence["value"]) for a in fired] == [
        ((10,), "hr:1:9", 56),
        ((12,), "hr:1:9", 56),
        ((13,), "hr:1:0", 44),
    ]
    engine = DetectionEngine(rules, BASELINE)
    [deviation] = [d for d in engine.detectors if isinstance(d, BaselineDeviation)]
    engine.observe(records[0])
    assert len(deviation.read_once) == 1 and len(deviation.read_bounds) == 0
    engine.observe(records[1])
    assert len(deviation.read_bounds) == 1 and len(deviation.read_once) == 0


def _read_responses() -> list[Any]:
    """Modbus and DNP3 responses of the BASELINE's conversations, in and out of range, and others."""
    records: list[Any] = []
    for n, values in enumerate([(50,) * 10, (54,) * 10, (50,) * 9 + (80,), (50,) * 4, (1,) * 4]):
        records.append(
            modbus(3, request=False, frame=10 + n, address=n % 2, quantity=len(values), values=values)
        )
    records.append(
        modbus(3, request=False, frame=20, address=0, quantity=2, values=(50, 50), client="10.0.0.66")
    )
    records.append(s7(4, request=False, frame=21))  # an S7 response of a conversation never learned
    records.append(modbus(4, request=False, frame=22, address=0, quantity=2, values=(7, 7)))  # never learned
    return records


def test_worker_check_passes_exactly_the_responses_the_analysis_finds_in_range() -> None:
    """``WorkerCheck`` (run in the shard workers) passes a response only when the analysis would
    find nothing to report about its read values: the skip it allows cannot hide an alert."""
    from ics_monitor.detect.deviation import WorkerCheck

    rules = _unthrottled(RULES, "ICS-5007")
    check = WorkerCheck(rules, BASELINE)
    verdicts = []
    for record in _read_responses():
        fired = [a for a in run([record], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5007"]
        verdicts.append(check.passes(record))
        if verdicts[-1]:
            assert fired == [], record
        elif record.event_type == "modbus" and record.src_ip == SERVER and record.dst_ip == CLIENT:
            assert fired, record  # a response of a known conversation fails only on an alert
    # In range (the learned shape, shifted by one with an unlearned register, a part of it) and a
    # table never read while learning (nothing to check) pass; the out-of-range ones, the S7
    # response and an unknown client's response (not this check's: the analysis judges it) do not.
    assert verdicts == [True, True, False, True, False, False, False, True]
    off = RuleSet(dataclasses.replace(r, enabled=False) if r.rule_id == "ICS-5007" else r for r in RULES)
    assert WorkerCheck(off, BASELINE).passes(_read_responses()[0]) is False


def test_lazy_worker_check_loads_by_the_first_record_it_could_pass() -> None:
    from ics_monitor.detect.deviation import LazyWorkerCheck, WorkerCheck

    loads: list[int] = []

    def load() -> WorkerCheck:
        loads.append(1)
        return WorkerCheck(RULES, BASELINE)

    lazy = LazyWorkerCheck(load)
    # A record of no direction is none it checks: nothing loaded for it.
    undirected = dataclasses.replace(s7(3, function_code=0x04, request=False), direction=None)
    assert lazy.passes(undirected) is False and loads == []
    in_range = modbus(3, request=False, address=0, quantity=10, values=(50,) * 10)
    out_of_range = modbus(3, request=False, address=0, quantity=10, values=(50,) * 9 + (80,))
    assert [lazy.passes(in_range), lazy.passes(out_of_range), lazy.passes(in_range)] == [True, False, True]
    assert lazy.passes(modbus(3, address=0, quantity=10)) is True  # a learned request
    assert loads == [1]
    # A request is a record it checks too: it loads the check.
    by_request = LazyWorkerCheck(load)
    assert by_request.passes(modbus(3, address=0, quantity=10)) is True and loads == [1, 1]
    # A check that cannot be had (files changed): False, and not tried again.
    failed: list[int] = []
    unusable = LazyWorkerCheck(lambda: failed.append(1))  # type: ignore[arg-type,func-returns-value]
    assert [unusable.passes(in_range), unusable.passes(in_range)] == [False, False] and failed == [1]


def test_a_passed_response_is_not_checked_again_on_its_own_conversation_only() -> None:
    """The engine skips the read check of a response a worker passed, when the flow's
    conversation is the one the response's endpoints name; otherwise it checks as before."""
    out_of_range = modbus(3, request=False, frame=5, address=0, quantity=10, values=(50,) * 9 + (80,))
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    assert [a.rule_id for a in engine.observe(out_of_range, True)] == []
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    assert [a.rule_id for a in engine.observe(out_of_range)] == ["ICS-5007"]
    # A flow that began as CLIENT -> SERVER:502, answered from another port: the pass was for
    # another conversation than the flow's, so the analysis checks the values itself.
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    assert engine.observe(modbus(3, frame=4, address=0, quantity=10, flow_id="f-other")) == []
    answered = dataclasses.replace(out_of_range, flow_id="f-other", src_port=5020)
    assert [a.rule_id for a in engine.observe(answered, True)] == ["ICS-5007"]


def _requests() -> list[Any]:
    """Requests of the BASELINE's conversations and others: learned, and each kind of finding."""
    crob = ({"group": 12, "points": [{"index": 3, "code": 0x41}]},)
    return [
        modbus(3, frame=30, address=0, quantity=10),  # the learned poll
        modbus(3, frame=31, address=2, quantity=4),  # a part of it
        modbus(6, frame=32, address=20, values=(110,)),  # the learned write, in range
        modbus(6, frame=33, address=20, values=(500,)),  # out of range (ICS-5006)
        modbus(6, frame=34, address=21, values=(110,)),  # never written there (ICS-5005)
        modbus(3, frame=35, address=0, quantity=20),  # never read there (ICS-5011)
        modbus(4, frame=36, address=0, quantity=2),  # a new function (ICS-5004)
        modbus(3, frame=37, address=0, quantity=10, client="10.0.0.66"),  # an unknown client
        dnp3(5, frame=38, objects=crob),  # the learned control
        dnp3(5, frame=39, objects=crob, dst=11),  # at another outstation (ICS-5005)
        dnp3(5, frame=40, objects=({"group": 12, "points": [{"index": 3, "code": 0x81}]},)),  # none learned
        modbus(3, request=False, frame=41, address=0, quantity=10, values=(50,) * 10),  # a response
    ]


def test_worker_check_passes_exactly_the_requests_the_analysis_finds_nothing_in() -> None:
    """``WorkerCheck`` passes a request only when the checks the analysis then skips (function,
    write and read targets, written values, CROB operations) would report nothing about it."""
    from ics_monitor.detect.deviation import WorkerCheck

    skipped = ("ICS-5004", "ICS-5005", "ICS-5006", "ICS-5011", "ICS-5013")
    rules = _unthrottled(RULES, *skipped)
    check = WorkerCheck(rules, BASELINE)
    verdicts = []
    for record in _requests():
        fired = [a.rule_id for a in run([record], baseline=BASELINE, rules=rules) if a.rule_id in skipped]
        verdicts.append(check.passes(record))
        if verdicts[-1]:
            assert fired == [], record
        elif record.direction == "request" and record.src_ip == CLIENT:
            assert fired, record  # a known conversation's request fails only on a finding
    assert verdicts == [True, True, True, False, False, False, False, False, True, False, True, True]
    # Its findings are counted, never alerted on: the worker's emitter stays empty.
    assert check._out.out == []
    # CROB operations and pulse times (ICS-5013, ICS-5006), where the point's operations were learned.
    crobs = _crob_baseline()
    check = WorkerCheck(rules, crobs)
    controls = [
        dnp3(4, frame=50, objects=(_crob(3, 0x41),)),  # the learned pulse
        dnp3(4, frame=51, objects=(_crob(3, 0x81),)),  # TRIP: a new operation
        dnp3(4, frame=52, objects=(_crob(3, 0x41, on_time=60_000),)),  # a pulse far longer
    ]
    for record in controls:
        fired = [a.rule_id for a in run([record], baseline=crobs, rules=rules) if a.rule_id in skipped]
        assert check.passes(record) is (fired == []), (record, fired)
    assert [check.passes(record) for record in controls] == [True, False, False]
    # With every rule it checks turned off it checks nothing.
    off = RuleSet(
        dataclasses.replace(r, enabled=False) if r.rule_id in (*skipped, "ICS-5007") else r for r in RULES
    )
    assert WorkerCheck(off, BASELINE).passes(_requests()[0]) is False


def test_a_passed_request_skips_only_the_checks_the_worker_made() -> None:
    """A request a worker passed is not judged again for its function and targets (the engine
    trusts the pass: a new function slipped in proves it), on its own conversation only; the
    checks that depend on what came before (writers, polling) still run."""
    new_function = modbus(4, frame=5, address=0, quantity=2)
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    assert [a.rule_id for a in engine.observe(new_function, True)] == []
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    assert [a.rule_id for a in engine.observe(new_function)] == ["ICS-5004", "ICS-5011"]
    # A flow that began the other way round (the server's answer first): not the pass's
    # conversation, so the analysis judges the request itself.
    engine = DetectionEngine(RULES, BASELINE, strict=True)
    engine.observe(modbus(3, request=False, frame=4, address=0, quantity=1, values=(50,), flow_id="f-other"))
    other = dataclasses.replace(new_function, flow_id="f-other", dst_port=5020)
    assert "ICS-5004" in [a.rule_id for a in engine.observe(other, True)]
    # A write passed by a worker from a client that never wrote (ICS-5010 is the analysis's own).
    learner = BaselineLearner()
    for i in range(3):
        learner.observe(modbus(3, ts=1000.0 + i, frame=i + 1, address=0, quantity=10))
        learner.observe(
            modbus(6, ts=1000.0 + i, frame=i + 1, address=20, values=(1,), client="10.0.0.7", flow_id="f-hmi")
        )
    readers = learner.baseline()
    engine = DetectionEngine(RULES, readers, strict=True)
    write = modbus(6, ts=2000.0, frame=9, address=20, values=(1,))
    assert "ICS-5010" in [a.rule_id for a in engine.observe(write, True)]


def test_repeated_reads_are_each_checked_against_their_own_points() -> None:
    """The same poll again and again (the cached per-read limits): an in-range answer stays quiet,
    a value below or above at any offset fires for that point, a read that also covers unlearned
    registers is judged on the learned ones, and another address is another set of limits."""

    def read(values: tuple[int, ...], frame: int, address: int = 0) -> Any:
        return modbus(3, request=False, frame=frame, address=address, quantity=len(values), values=values)

    records = [read((50,) * 10, 10), read((50,) * 3 + (20,) + (50,) * 6, 11), read((50,) * 10, 12)]
    records += [
        read((50,) * 9 + (80,), 13),
        read((50,) * 10 + (999,) * 4, 14),
        read((50,) * 4, 15, address=6),
    ]
    records.append(read((90,) * 4, 16, address=6))
    # In range again, the same values as frame 10 (remembered as in range), then frame 11's
    # out-of-range values once more: only values found in range are remembered.
    records += [read((50,) * 10, 17), read((50,) * 3 + (20,) + (50,) * 6, 18)]
    # Unthrottled: every value found out of range is an alert of its own.
    alerts = run(records, baseline=BASELINE, rules=_unthrottled(RULES, "ICS-5007"))
    fired = {(frame, a.evidence["point"]) for a in alerts if a.rule_id == "ICS-5007" for frame in a.frames}
    assert fired == {
        (11, "hr:1:3"),
        (13, "hr:1:9"),
        *[(16, f"hr:1:{address}") for address in range(6, 10)],
        (18, "hr:1:3"),
    }


def test_dnp3_read_values_out_of_range_per_point() -> None:
    """Analog and binary points read by a master: learned per group and index, each checked."""

    def response(frame: int, analog: tuple[Any, ...], binary: bool) -> Any:
        analogs = [{"index": i, "value": v} for i, v in enumerate(analog)]
        return dnp3(
            129,
            request=False,
            frame=frame,
            flow_id="f-dnp3-read",
            objects=(
                {"group": 30, "variation": 1, "points": [*analogs, {"index": 9}]},
                {"group": 1, "variation": 2, "points": [{"index": 0, "value": binary}]},
            ),
        )

    learner = BaselineLearner()
    for i in range(10):
        learner.observe(dnp3(1, ts=1000.0 + i, frame=2 * i + 1, flow_id="f-dnp3-read"))
        learner.observe(response(2 * i + 2, (100 + i, -5.5, "text"), False))
    baseline = learner.baseline()
    quiet = [dnp3(1, frame=100, flow_id="f-dnp3-read"), response(101, (104, -5.5, "other"), False)]
    assert [a for a in run(quiet, baseline=baseline) if a.rule_id == "ICS-5007"] == []
    loud = [dnp3(1, frame=100, flow_id="f-dnp3-read"), response(101, (400, -5.5, "x"), True)]
    [alert] = {a.alert_id: a for a in run(loud, baseline=baseline) if a.rule_id == "ICS-5007"}.values()
    assert sorted(p["point"] for p in alert.evidence["points"]) == ["g1:10:0", "g30:10:0"]
    assert alert.evidence["distinct_points"] == 2


def test_dnp3_values_are_learned_and_judged_per_outstation() -> None:
    """One master, one IP (a gateway in front of a multi-drop line), two outstations: point 0 of
    g30 is a voltage near 13,800 at outstation 10 and a current near 200 at outstation 11.  Each
    keeps its own range: 13,800 from outstation 11 is out of range, from outstation 10 it is not
    (one range per point for the whole IP would have passed both)."""

    def response(frame: int, outstation: int, value: float) -> Any:
        objects = ({"group": 30, "variation": 1, "points": [{"index": 0, "value": value}]},)
        return dnp3(129, request=False, frame=frame, ts=500.0 + frame, src=outstation, objects=objects)

    learner = BaselineLearner()
    for i in range(10):
        for outstation, level in ((10, 13_790 + i), (11, 195 + i)):
            frame = 4 * i + (0 if outstation == 10 else 2)
            learner.observe(dnp3(1, ts=500.0 + frame, frame=frame + 1, dst=outstation))
            learner.observe(response(frame + 2, outstation, level))
    baseline = learner.baseline()
    [conversation] = baseline.conversations.values()
    assert conversation.values == {("read", "g30:10:0"): (13_790, 13_799), ("read", "g30:11:0"): (195, 204)}
    rules = _unthrottled(RULES, "ICS-5007")
    quiet = [
        dnp3(1, frame=100, dst=10),
        response(101, 10, 13_800),
        dnp3(1, frame=102, dst=11),
        response(103, 11, 199),
    ]
    assert [a for a in run(quiet, baseline=baseline, rules=rules) if a.rule_id == "ICS-5007"] == []
    swapped = [dnp3(1, frame=100, dst=11), response(101, 11, 13_800)]
    [alert] = [a for a in run(swapped, baseline=baseline, rules=rules) if a.rule_id == "ICS-5007"]
    assert alert.evidence["point"] == "g30:11:0" and alert.evidence["learned_max"] == 204


def test_dnp3_values_learned_without_outstation_are_any_outstations() -> None:
    """A baseline from before points were kept per outstation holds ``g30:0`` and ``g12:3:on_time``:
    loaded, they read ``g30:*:0`` and ``g12:*:3:on_time`` and judge every outstation's point, where
    the outstation's own point was not learned (an analyst may write ``*`` so too)."""
    learner = BaselineLearner()
    learner.observe(dnp3(1, ts=500.0, frame=1))
    learner.observe(dnp3(129, request=False, ts=500.1, frame=2, objects=({"group": 1, "points": []},)))
    data = learner.baseline().to_dict()
    [entry] = data["conversations"].values()
    entry["values"] = {
        "read": {"g30:0": [100, 110], "g30:11:1": [0, 5], "g30:*:1": [100, 110]},
        "written": {"g12:3:on_time": [1000, 1000]},
    }
    baseline = Baseline.from_dict(data)
    [conversation] = baseline.conversations.values()
    assert set(conversation.values) == {
        ("read", "g30:*:0"),
        ("read", "g30:11:1"),
        ("read", "g30:*:1"),
        ("written", "g12:*:3:on_time"),
    }
    rules = _unthrottled(RULES, "ICS-5007", "ICS-5006")

    def response(frame: int, outstation: int, values: tuple[float, float]) -> Any:
        points = [{"index": index, "value": value} for index, value in enumerate(values)]
        objects = ({"group": 30, "variation": 1, "prefix_code": 0, "start": 0, "points": points},)
        return dnp3(129, request=False, frame=frame, src=outstation, objects=objects)

    def fired(records: list[Any]) -> list[tuple[int, str]]:
        alerts = run(records, baseline=baseline, rules=rules)
        return sorted(
            (a.frames[0], a.evidence["point"]) for a in alerts if a.rule_id in ("ICS-5006", "ICS-5007")
        )

    # Outstation 10: both points by the any-outstation ranges; 11: point 1 by its own.
    assert fired([response(11, 10, (105, 105)), response(12, 11, (105, 3))]) == []
    assert fired([response(11, 10, (400, 105)), response(12, 11, (105, 105))]) == [
        (11, "g30:10:0"),
        (12, "g30:11:1"),
    ]
    pulse = {"index": 3, "code": 0x41, "count": 1, "on_time": 60_000, "off_time": 0}
    operate = dnp3(
        5, frame=20, dst=12, objects=({"group": 12, "variation": 1, "qualifier": 0x28, "points": [pulse]},)
    )
    assert fired([operate]) == [(20, "g12:12:3:on_time")]


def test_dnp3_events_are_their_points_and_counters_have_no_range() -> None:
    """An analog event (g32) or frozen value (g31) reads the same point as the static g30, so they
    share one learned range; counters (g20-g23) only grow and get none; an analog output written
    (g41) that was never written while learning is judged by the range its status (g40) was read
    with."""

    def response(frame: int, objects: tuple[dict[str, Any], ...]) -> Any:
        return dnp3(129, request=False, frame=frame, ts=900.0 + frame, flow_id="f-dnp3-ev", objects=objects)

    def analog(group: int, value: float) -> dict[str, Any]:
        return {"group": group, "variation": 1, "points": [{"index": 1, "value": value}]}

    learner = BaselineLearner()
    for i in range(10):  # statics 50-53 in integrity polls, events 50-65, counters 100-109
        learner.observe(dnp3(1, ts=900.0 + 3 * i, frame=3 * i + 1, flow_id="f-dnp3-ev"))
        static = analog(30, 50 + i % 4)
        learner.observe(response(3 * i + 2, (static, analog(20, 100 + i), analog(40, 10 + i))))
        learner.observe(response(3 * i + 3, (analog(32, 50 + i * 15 // 9), analog(22, 100 + i))))
    baseline = learner.baseline()
    [conversation] = baseline.conversations.values()
    assert conversation.values == {("read", "g30:10:1"): (50, 65), ("read", "g40:10:1"): (10, 19)}
    rules = _unthrottled(RULES, "ICS-5007", "ICS-5006")
    poll = dnp3(1, frame=100, flow_id="f-dnp3-ev")
    quiet = [
        poll,
        response(101, (analog(30, 59), analog(20, 5000), analog(22, 7))),
        response(102, (analog(33, 64),)),
    ]
    assert [a for a in run(quiet, baseline=baseline, rules=rules) if a.rule_id == "ICS-5007"] == []
    loud = [poll, response(101, (analog(32, 400),)), response(102, (analog(31, -90),))]
    fired = [(a.frames[0], a.evidence["point"]) for a in run(loud, baseline=baseline, rules=rules)]
    assert [item for item in fired if item[0] > 100] == [(101, "g30:10:1"), (102, "g30:10:1")]
    operate = dnp3(
        5,
        frame=110,
        flow_id="f-dnp3-ev",
        objects=({"group": 41, "variation": 2, "qualifier": 0x28, "points": [{"index": 1, "value": 30000}]},),
    )
    [alert] = [a for a in run([operate], baseline=baseline, rules=rules) if a.rule_id == "ICS-5006"]
    assert alert.evidence["point"] == "g41:10:1" and alert.evidence["learned_from"] == "read"
    assert (alert.evidence["learned_min"], alert.evidence["learned_max"]) == (10, 19)


def test_s7_read_values_learned_and_checked_per_element_and_type(tmp_path: Path) -> None:
    """S7 READ_VAR answers: values learned per element (area, address, bit, type), out-of-range ones
    reported.  A single value written where nothing was written while learning is judged by what
    was read at its address as its type, as for Modbus.
    """

    def item(area: int, name: str, address: int, size: int, size_name: str, length: int, **more: Any) -> Any:
        return {
            "area": area,
            "area_name": name,
            "db": more.get("db", 0),
            "address": address,
            "bit": more.get("bit", 0),
            "length": length,
            "transport_size": size,
            "transport_size_name": size_name,
        }

    # Two INTs from DB3.DBW8, one flag bit M0.1, and a block of 20 bytes of DB4 (its bytes are
    # parts of variables of other types: not learned).
    ints = item(0x84, "DATA_BLOCK", 8, 5, "INT", 2, db=3)
    bit = item(0x83, "FLAGS", 0, 1, "BIT", 1, bit=1)
    block = item(0x84, "DATA_BLOCK", 0, 2, "BYTE", 20, db=4)
    items = (ints, bit, block)

    def answer(frame: int, words: list[Any], flag: list[Any], ts: float = 1000.0) -> Any:
        data_items = tuple({"return_code": 0xFF, "values": v} for v in (words, flag, list(range(20))))
        return s7(
            3, function_code=0x04, request=False, frame=frame, ts=ts, items=items, data_items=data_items
        )

    learner = BaselineLearner()
    for i in range(10):
        learner.observe(s7(1, function_code=0x04, ts=1000.0 + i, frame=2 * i + 1, items=items))
        learner.observe(answer(2 * i + 2, [200 + i, -10 - i], [i % 2], ts=1000.2 + i))
    baseline = learner.baseline()
    [conversation] = baseline.conversations.values()
    assert {point: bounds for (kind, point), bounds in conversation.values.items() if kind == "read"} == {
        "DB3:8:INT": (200, 209),
        "DB3:10:INT": (-19, -10),
        "FLAGS:0.1:BIT": (0, 1),
    }
    # The YAML an analyst reviews shows them, and reads back the same.
    (tmp_path / "baseline.yaml").write_text(baseline.to_yaml())
    assert "DB3:8:INT: [200, 209]" in baseline.to_yaml()
    reloaded = Baseline.load(tmp_path / "baseline.yaml", keep_cache=False)
    assert reloaded.conversations[conversation.key].values == conversation.values

    rules = _unthrottled(RULES, "ICS-5007", "ICS-5006")

    def fired(records: list[Any], rule_id: str) -> list[tuple[str, Any]]:
        alerts = run(records, baseline=baseline, rules=rules)
        return sorted((a.evidence["point"], a.evidence["value"]) for a in alerts if a.rule_id == rule_id)

    request = s7(1, function_code=0x04, frame=100, items=items)
    assert fired([request, answer(101, [205, -12], [1])], "ICS-5007") == []
    assert fired([request, answer(101, [205, 900], [7])], "ICS-5007") == [
        ("DB3:10:INT", 900),
        ("FLAGS:0.1:BIT", 7),
    ]
    # A failed item (no values) and an answer with fewer data items than items are not misread.
    short = {"return_code": 0x0A}
    partial = s7(3, function_code=0x04, request=False, frame=102, items=items, data_items=(short,))
    assert fired([partial], "ICS-5007") == []
    # A shard worker's check (``WorkerCheck``) passes the answers in range and the request, and
    # only those: the analysis then skips its own read check of them.
    from ics_monitor.detect.deviation import WorkerCheck

    check = WorkerCheck(rules, baseline)
    verdicts = [
        check.passes(r)
        for r in (request, answer(101, [205, -12], [1]), answer(101, [205, 900], [7]), partial)
    ]
    assert verdicts == [True, True, False, True]

    # Writes: an INT to DB3.DBW8 by the read range of DB3:8:INT; a REAL there, or a byte into the
    # block, have no range of their type to be judged by.
    def write(target: Any, value: Any) -> Any:
        return s7(1, function_code=0x05, frame=103, items=(target,), data_items=({"values": [value]},))

    assert fired([write(item(0x84, "DATA_BLOCK", 8, 5, "INT", 1, db=3), 950)], "ICS-5006") == [
        ("DB3:8:INT", 950)
    ]
    assert fired([write(item(0x84, "DATA_BLOCK", 8, 8, "REAL", 1, db=3), 950.5)], "ICS-5006") == []
    # Two INTs in one item: each judged by its own element's read range.
    two = s7(
        1,
        function_code=0x05,
        frame=104,
        items=(item(0x84, "DATA_BLOCK", 8, 5, "INT", 2, db=3),),
        data_items=({"values": [30_000, -15]},),
    )
    assert fired([two], "ICS-5006") == [("DB3:8:INT", 30_000)]
    assert fired([write(item(0x84, "DATA_BLOCK", 0, 2, "BYTE", 1, db=4), 250)], "ICS-5006") == []

    # Items without a plain address (NCK variables here) and counters are not learned: one NCK
    # variable read at 3-4 says nothing of another read at 2400, and counters count.
    spindle = ({"syntax_id": 0x82, "syntax": "NCK", "specification": "0a1b"},)
    counter = (item(0x1C, "COUNTER", 0, 28, "COUNTER", 1),)
    other = BaselineLearner()
    for i in range(10):
        for its, value in ((spindle, 3 + i % 2), (counter, 17 + i % 2)):
            other.observe(s7(1, function_code=0x04, frame=4 * i + 1, items=its))
            data = ({"return_code": 0xFF, "values": [value]},)
            other.observe(
                s7(3, function_code=0x04, request=False, frame=4 * i + 2, items=its, data_items=data)
            )
    assert not any(kind == "read" for kind, _ in next(iter(other.baseline().conversations.values())).values)


def test_s7_bytes_written_where_one_variable_was_read_are_judged_as_that_variable() -> None:
    """A snap7-style client writes REAL 35.0 as its four bytes where the HMI reads a REAL 40.0."""
    import struct

    threshold, counter = _flag_item(8, 8, "REAL", 1), _flag_item(20, 5, "INT", 1)
    learner = BaselineLearner()
    for i in range(10):
        _s7_read(learner, (threshold, counter), [[40.0], [500 + i]], 1000.0 + i)
    baseline = learner.baseline()

    def fired(target: Any, raw: bytes) -> list[tuple[str, Any]]:
        return _s7_written_alerts(baseline, target, list(raw))

    assert fired(_flag_item(8, 2, "BYTE", 4), struct.pack(">f", 35.0)) == [("FLAGS:8:REAL", 35.0)]
    assert fired(_flag_item(8, 2, "BYTE", 4), struct.pack(">f", 40.0)) == []
    assert fired(_flag_item(20, 2, "BYTE", 2), struct.pack(">h", 30_000)) == [("FLAGS:20:INT", 30_000)]
    assert fired(_flag_item(20, 2, "BYTE", 2), struct.pack(">h", 505)) == []
    # Three bytes, or bytes where nothing of that width was read: not judged.
    assert fired(_flag_item(8, 2, "BYTE", 3), b"\x42\x0c\x00") == []
    assert fired(_flag_item(30, 2, "BYTE", 4), struct.pack(">f", 35.0)) == []


def test_s7_values_of_another_type_are_judged_as_the_variable_learned_there() -> None:
    """Found by a red-team review: a REAL setpoint written as one DWORD, one DINT, two WORDs or two
    INTs of the same bytes (a DB that is not optimized takes any of them) was judged by nothing."""
    import struct

    threshold = _flag_item(8, 8, "REAL", 1)
    learner = BaselineLearner()
    for i in range(10):
        _s7_read(learner, (threshold,), [[40.0 + i]], 1000.0 + i)
    baseline = learner.baseline()
    raw = struct.pack(">f", 5000.0)
    (dword,) = struct.unpack(">I", raw)
    (dint,) = struct.unpack(">i", raw)
    words = list(struct.unpack(">HH", raw))
    ints = list(struct.unpack(">hh", raw))
    for item, values in (
        (_flag_item(8, 6, "DWORD", 1), [dword]),
        (_flag_item(8, 7, "DINT", 1), [dint]),
        (_flag_item(8, 4, "WORD", 2), words),
        (_flag_item(8, 5, "INT", 2), ints),
    ):
        assert _s7_written_alerts(baseline, item, values) == [("FLAGS:8:REAL", 5000.0)]
    # In range the same way: quiet.
    (fine,) = struct.unpack(">I", struct.pack(">f", 45.0))
    assert _s7_written_alerts(baseline, _flag_item(8, 6, "DWORD", 1), [fine]) == []
    # Another width than the variable learned there (one WORD over a REAL), or nothing learned at
    # that address: not judged.
    assert _s7_written_alerts(baseline, _flag_item(8, 4, "WORD", 1), [0xFFFF]) == []
    assert _s7_written_alerts(baseline, _flag_item(40, 6, "DWORD", 1), [dword]) == []


def _flag_item(address: int, size: int, name: str, length: int, bit: int = 0) -> Any:
    return {
        "area": 0x83,
        "area_name": "FLAGS",
        "db": 0,
        "address": address,
        "bit": bit,
        "length": length,
        "transport_size": size,
        "transport_size_name": name,
    }


def _s7_learn(learner: BaselineLearner, item: Any, values: list[Any], ts: float, write: bool) -> None:
    """One write of ``values`` to ``item``, or one read of them (request and answer)."""
    if write:
        data = ({"values": values},)
        learner.observe(s7(1, function_code=0x05, ts=ts, frame=int(ts * 10), items=(item,), data_items=data))
        return
    _s7_read(learner, (item,), [values], ts)


def _s7_read(learner: BaselineLearner, items: tuple[Any, ...], values: list[list[Any]], ts: float) -> None:
    """One READ_VAR of ``items`` (request and answer), item ``n`` answered with ``values[n]``."""
    frame = int(ts * 10)
    learner.observe(s7(1, function_code=0x04, ts=ts, frame=frame, items=items))
    data = tuple({"values": item_values} for item_values in values)
    learner.observe(
        s7(3, function_code=0x04, request=False, ts=ts + 0.05, frame=frame + 1, items=items, data_items=data)
    )


def _s7_written_alerts(baseline: Any, target: Any, values: list[Any]) -> list[tuple[str, Any]]:
    write = s7(1, function_code=0x05, frame=100, items=(target,), data_items=({"values": values},))
    alerts = run([write], baseline=baseline, rules=_unthrottled(RULES, "ICS-5006"))
    return [(a.evidence["point"], a.evidence["value"]) for a in alerts if a.rule_id == "ICS-5006"]


def test_s7_written_values_are_judged_per_element_and_type() -> None:
    """An HMI writes a REAL threshold and two INTs: each element has its own typed written range."""
    import struct

    threshold, pair = _flag_item(8, 8, "REAL", 1), _flag_item(20, 5, "INT", 2)
    learner = BaselineLearner()
    for i in range(10):
        data = ({"values": [40.0]}, {"values": [100 + i, 7]})
        learner.observe(
            s7(1, function_code=0x05, ts=1000.0 + i, frame=i + 1, items=(threshold, pair), data_items=data)
        )
    baseline = learner.baseline()
    conversation = next(iter(baseline.conversations.values()))
    assert ("written", "FLAGS:8:REAL") in conversation.values and (
        "written",
        "FLAGS:22:INT",
    ) in conversation.values

    assert _s7_written_alerts(baseline, threshold, [40.0]) == []
    assert _s7_written_alerts(baseline, threshold, [80.0]) == [("FLAGS:8:REAL", 80.0)]
    # The second INT learned at 7: 300 there fires on it, not on the first (learned 100-109).
    assert _s7_written_alerts(baseline, pair, [105, 300]) == [("FLAGS:22:INT", 300)]
    # The REAL written as its four bytes, snap7-style: decoded by the written variable's type.
    raw = _flag_item(8, 2, "BYTE", 4)
    assert _s7_written_alerts(baseline, raw, list(struct.pack(">f", 35.0))) == [("FLAGS:8:REAL", 35.0)]
    assert _s7_written_alerts(baseline, raw, list(struct.pack(">f", 40.0))) == []
    # A DINT written over the REAL: its bytes set the REAL (absolute addresses are bytes), here to
    # 1.4e-39, out of the REAL's range.
    [(point, value)] = _s7_written_alerts(baseline, _flag_item(8, 7, "DINT", 1), [10**6])
    assert point == "FLAGS:8:REAL" and value == struct.unpack(">f", struct.pack(">i", 10**6))[0]


def test_s7_written_range_comes_before_the_read_one() -> None:
    """Read 40-45, always written 40: 44.0 written is within what was read, not what was written."""
    import struct

    threshold = _flag_item(8, 8, "REAL", 1)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, threshold, [40.0 + i % 6], 1000.0 + i, False)
        _s7_learn(learner, threshold, [40.0], 1000.2 + i, True)
    baseline = learner.baseline()
    assert _s7_written_alerts(baseline, threshold, [44.0]) == [("FLAGS:8:REAL", 44.0)]
    raw = _flag_item(8, 2, "BYTE", 4)
    assert _s7_written_alerts(baseline, raw, list(struct.pack(">f", 44.0))) == [("FLAGS:8:REAL", 44.0)]


def test_s7_byte_written_over_flag_bits_is_judged_bit_by_bit() -> None:
    """QUT's stop and reset attacks write a whole flag byte where the HMI sets and reads single bits."""
    learner = BaselineLearner()
    bits = [_flag_item(102, 1, "BIT", 1, bit) for bit in range(8)]
    for i in range(10):
        # Bit 1 always 0, bit 5 always 1, the others 0 or 1; the HMI writes bit 2 as 0.
        values = (0, 0, i % 2, i % 2, 0, 1, i % 2, 0)
        _s7_read(learner, tuple(bits), [[value] for value in values], 1000.0 + i)
        _s7_learn(learner, bits[2], [0], 1000.5 + i, write=True)
    baseline = learner.baseline()
    byte = _flag_item(102, 2, "BYTE", 1)
    # 42 = bits 1, 3 and 5: bit 1 was only ever read as 0.
    assert _s7_written_alerts(baseline, byte, [42]) == [("FLAGS:102.1:BIT", 1)]
    write = s7(1, function_code=0x05, frame=100, items=(byte,), data_items=({"values": [42]},))
    [alert] = run([write], baseline=baseline)
    assert alert.evidence["learned_from"] == "read"
    assert alert.evidence["written_as"] == "1 BYTE 2a at FLAGS:102"
    assert "FLAGS:102.1:BIT = 1 (read there while learning: 0 to 0, margin 0" in alert.explanation
    assert "sent as 1 BYTE 2a at FLAGS:102)" in alert.explanation
    # 36 = bits 2 and 5: bit 2 was read as 1 but only ever written 0, and written comes first.
    assert _s7_written_alerts(baseline, byte, [36]) == [("FLAGS:102.2:BIT", 1)]
    assert _s7_written_alerts(baseline, byte, [32]) == []  # bit 5 set, as read
    # A byte elsewhere: no bit of it learned, nothing to judge by.
    assert _s7_written_alerts(baseline, _flag_item(104, 2, "BYTE", 1), [255]) == []


def test_s7_block_of_bytes_written_is_learned_byte_by_byte() -> None:
    """A block of bytes says nothing of its variables' types: each byte has its own range (a
    range pooled over the block hid a high byte set where it was always 0); chars, text, are one
    range over the block."""
    block = _flag_item(200, 2, "BYTE", 3)
    learner = BaselineLearner()
    for i in range(10):
        data = ({"values": [0, 20 + i, 30]},)
        learner.observe(
            s7(1, function_code=0x05, ts=1000.0 + i, frame=i + 1, items=(block,), data_items=data)
        )
    baseline = learner.baseline()
    assert _s7_written_alerts(baseline, block, [0, 25, 30]) == []
    assert _s7_written_alerts(baseline, block, [29, 25, 30]) == [("FLAGS:200:BYTE", 29)]
    text = _flag_item(300, 3, "CHAR", 3)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, text, [ord(c) for c in f"A{i}z"], 1000.0 + i, True)
    baseline = learner.baseline()
    assert _s7_written_alerts(baseline, text, [ord(c) for c in "z5A"]) == []
    assert _s7_written_alerts(baseline, text, [0, 200, 65]) == [
        ("FLAGS:300:BLOCK", 0),
        ("FLAGS:300:BLOCK", 200),
    ]
    # A long block (a recipe written whole): one range, not a point per byte.
    recipe = _flag_item(400, 2, "BYTE", 20)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, recipe, [i] * 20, 1000.0 + i, True)
    [conversation] = learner.baseline().conversations.values()
    assert [point for kind, point in conversation.values if kind == "written"] == ["FLAGS:400:BLOCK"]


def test_s7_two_bytes_written_are_one_int() -> None:
    """snap7's clients write an INT as its two bytes: learned and judged as the signed 16-bit
    number they make, so 30000 where 100-200 was written fires, though each of its bytes (117, 48)
    lies within the bytes written (0 to 200)."""
    word = _flag_item(0, 2, "BYTE", 2)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, word, list((100 + 10 * i).to_bytes(2, "big")), 1000.0 + i, True)
    baseline = learner.baseline()
    assert _s7_written_alerts(baseline, word, list((150).to_bytes(2, "big"))) == []
    for value in (30000, -32000, 0):
        assert _s7_written_alerts(baseline, word, list(value.to_bytes(2, "big", signed=True))) == [
            ("FLAGS:0:INT", value)
        ]


def test_s7_bytes_written_as_bytes_while_learning_keep_their_range() -> None:
    """Where the client itself wrote the bytes while learning, that range judges them, not a REAL read there."""
    import struct

    raw, real = _flag_item(8, 2, "BYTE", 4), _flag_item(8, 8, "REAL", 1)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, raw, list(struct.pack(">f", 40.0)), 1000.0 + i, True)
        _s7_learn(learner, real, [40.0 + i % 6], 1000.1 + i, False)
    baseline = learner.baseline()
    # 100.0 is 42 c8 00 00: the byte 0xc8 is outside the byte written there (0x20); as the REAL
    # read there, 100.0 is outside 40-45 too, and that is what the four bytes are judged as.
    assert _s7_written_alerts(baseline, raw, list(struct.pack(">f", 100.0))) == [("FLAGS:8:REAL", 100.0)]
    # Without a REAL learned there, byte by byte: the byte 0xc8 where 0x20 was written.
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, raw, list(struct.pack(">f", 40.0)), 1000.0 + i, True)
    assert _s7_written_alerts(learner.baseline(), raw, list(struct.pack(">f", 100.0))) == [
        ("FLAGS:9:BYTE", 200)
    ]


def _s7_write_evidence(baseline: Any, target: Any, values: list[Any]) -> list[tuple[Any, ...]]:
    write = s7(1, function_code=0x05, frame=100, items=(target,), data_items=({"values": values},))
    alerts = run([write], baseline=baseline, rules=_unthrottled(RULES, "ICS-5006"))
    return [
        (a.evidence["point"], a.evidence["value"], a.evidence["learned_min"], a.evidence["learned_from"])
        for a in alerts
        if a.rule_id == "ICS-5006"
    ]


def test_s7_learned_from_names_the_range_that_judged_the_write() -> None:
    """REAL and DINT both written at FLAGS:8 (which the bytes mean is unknown), a REAL read there."""
    import struct

    real, dint, raw = _flag_item(8, 8, "REAL", 1), _flag_item(8, 7, "DINT", 1), _flag_item(8, 2, "BYTE", 4)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, real, [1000.0], 1000.0 + i, True)
        _s7_learn(learner, dint, [5], 1000.2 + i, True)
        _s7_learn(learner, real, [40.0 + i % 6], 1000.4 + i, False)
    baseline = learner.baseline()
    # Two types written there: the one read says the bytes are a REAL, which is then judged by
    # the REAL's written range (1000.0), as a REAL written typed is.
    assert _s7_write_evidence(baseline, raw, list(struct.pack(">f", 100.0))) == [
        ("FLAGS:8:REAL", 100.0, 1000.0, "written")
    ]
    assert _s7_write_evidence(baseline, raw, list(struct.pack(">f", 1000.0))) == []
    assert _s7_write_evidence(baseline, real, [900.0]) == [("FLAGS:8:REAL", 900.0, 1000.0, "written")]
    # Only read: the read range judges, and says so.
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, real, [40.0 + i % 6], 1000.4 + i, False)
    assert _s7_write_evidence(learner.baseline(), raw, list(struct.pack(">f", 100.0))) == [
        ("FLAGS:8:REAL", 100.0, 40.0, "read")
    ]


def test_s7_typed_write_is_not_judged_by_a_block_of_bytes_written_there() -> None:
    """The HMI writes FLAGS:8 as four bytes and reads it as a REAL: a REAL write is judged as a REAL."""
    import struct

    raw, real = _flag_item(8, 2, "BYTE", 4), _flag_item(8, 8, "REAL", 1)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, raw, list(struct.pack(">f", 40.0)), 1000.0 + i, True)  # bytes 66, 32, 0, 0
        _s7_learn(learner, real, [90.0 + 2 * i], 1000.4 + i, False)  # read 90-108
    baseline = learner.baseline()
    # Judged by the REAL read there: 35.0 is out (though within the bytes' 0-66), 100.0 is in
    # (though above them).
    assert _s7_write_evidence(baseline, real, [35.0]) == [("FLAGS:8:REAL", 35.0, 90.0, "read")]
    assert _s7_write_evidence(baseline, real, [100.0]) == []
    # The same four bytes again: judged as the REAL read there (66, 200, 0, 0 is 100.0, in).
    assert _s7_write_evidence(baseline, raw, [66, 200, 0, 0]) == []
    assert _s7_write_evidence(baseline, raw, list(struct.pack(">f", 35.0))) == [
        ("FLAGS:8:REAL", 35.0, 90.0, "read")
    ]


def test_s7_bytes_over_bytes_or_bits_set_one_at_a_time_are_judged_each() -> None:
    """The HMI writes FLAGS:8 and FLAGS:9 a byte at a time, and the flag bit 102.2 alone."""
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, _flag_item(8, 2, "BYTE", 1), [i % 5], 1000.0 + i, True)
        _s7_learn(learner, _flag_item(9, 2, "BYTE", 1), [i % 5], 1000.2 + i, True)
        _s7_learn(learner, _flag_item(102, 1, "BIT", 1, bit=2), [0], 1000.4 + i, True)
    baseline = learner.baseline()
    assert _s7_write_evidence(baseline, _flag_item(8, 2, "BYTE", 1), [250]) == [
        ("FLAGS:8:BYTE", 250, 0, "written")
    ]
    # Both bytes in one item (no INT or WORD learned there): each byte as its point.
    assert _s7_write_evidence(baseline, _flag_item(8, 2, "BYTE", 2), [3, 250]) == [
        ("FLAGS:9:BYTE", 250, 0, "written")
    ]
    assert (
        _s7_write_evidence(baseline, _flag_item(8, 2, "BYTE", 3), [1, 2, 250]) == []
    )  # byte 10: never learned
    # Two bytes over the flag byte: its learned bit, and nothing of the byte after it.
    assert _s7_write_evidence(baseline, _flag_item(102, 2, "BYTE", 2), [255, 255]) == [
        ("FLAGS:102.2:BIT", 1, 0, "written")
    ]
    assert _s7_write_evidence(baseline, _flag_item(102, 2, "BYTE", 2), [251, 255]) == []


def test_s7_counters_and_timers_are_not_value_learned() -> None:
    """They count: a range learned from their values says nothing of the next one."""
    counter = {
        "area": 0x1C,
        "area_name": "COUNTER",
        "db": 0,
        "address": 0,
        "bit": 0,
        "length": 1,
        "transport_size": 0x1C,
        "transport_size_name": "COUNTER",
    }
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, counter, [5 + i % 2], 1000.0 + i, True)
        _s7_learn(learner, counter, [5 + i % 2], 1000.5 + i, False)
    baseline = learner.baseline()
    conversation = next(iter(baseline.conversations.values()))
    assert conversation.values == {}
    assert _s7_write_evidence(baseline, counter, [500]) == []


def test_s7_partly_written_item_judged_written_then_read() -> None:
    """Two INTs: the first written while learning, the second only read."""
    one, pair = _flag_item(20, 5, "INT", 1), _flag_item(20, 5, "INT", 2)
    learner = BaselineLearner()
    for i in range(10):
        _s7_learn(learner, one, [100 + i], 1000.0 + i, True)
        _s7_learn(learner, _flag_item(22, 5, "INT", 1), [7], 1000.4 + i, False)
    baseline = learner.baseline()
    assert _s7_write_evidence(baseline, pair, [500, 900]) == [
        ("FLAGS:20:INT", 500, 100, "written"),
        ("FLAGS:22:INT", 900, 7, "read"),
    ]
    assert _s7_write_evidence(baseline, pair, [105, 7]) == []


def test_s7_baseline_learned_before_typed_writes_still_judges_them(tmp_path: Path) -> None:
    """Baselines of format 1 learned before 2026-12-05 pool every S7 write at its bare address."""
    path = tmp_path / "old.yaml"
    path.write_text(
        "format: ics-monitor-baseline/1\n"
        "conversations:\n"
        "  x:\n"
        f"    client: {CLIENT}\n"
        f"    server: {SERVER}\n"
        "    transport: tcp\n"
        "    port: 102\n"
        "    protocol: s7comm\n"
        "    functions: {'5': {name: WRITE_VAR}}\n"
        "    s7_areas: {write: {FLAGS: [[8, 11]]}}\n"
        "    values: {written: {'FLAGS:8': [40.0, 40.0]}}\n"
    )
    baseline = Baseline.load(path)
    assert _s7_write_evidence(baseline, _flag_item(8, 8, "REAL", 1), [80.0]) == [
        ("FLAGS:8", 80.0, 40.0, "written")
    ]
    assert _s7_write_evidence(baseline, _flag_item(8, 8, "REAL", 1), [40.0]) == []


def test_dnp3_repeated_objects_are_checked_again_after_an_out_of_range_one() -> None:
    """Every response is checked on its own: a repeat of an out-of-range object fires again."""

    def response(frame: int, value: int, binary: bool) -> Any:
        return dnp3(
            129,
            request=False,
            frame=frame,
            ts=1000.0 + frame,
            flow_id="f-dnp3-read",
            objects=(
                {"group": 30, "variation": 1, "start": 0, "points": [{"index": 0, "value": value}]},
                {"group": 1, "variation": 2, "start": 0, "points": [{"index": 0, "value": binary}]},
            ),
        )

    learner = BaselineLearner()
    for i in range(10):
        learner.observe(dnp3(1, ts=900.0 + i, frame=2 * i + 1, flow_id="f-dnp3-read"))
        learner.observe(response(2 * i + 2, 100 + i, False))
    baseline = learner.baseline()
    rules = _unthrottled(RULES, "ICS-5007")
    # In range twice, out of range twice (both fire), in range, then a binary point out of range.
    values = [(104, False), (104, False), (400, False), (400, False), (104, True), (104, True)]
    records: list[Any] = [dnp3(1, frame=50, flow_id="f-dnp3-read")]
    records += [response(100 + n, value, binary) for n, (value, binary) in enumerate(values)]
    alerts = run(records, baseline=baseline, rules=rules)
    fired = [(a.frames[0], a.evidence["point"]) for a in alerts if a.rule_id == "ICS-5007"]
    fired = [item for item in fired if item[0] >= 100]
    assert fired == [(102, "g30:10:0"), (103, "g30:10:0"), (104, "g1:10:0"), (105, "g1:10:0")]
    # The same records checked one by one by fresh engines (no memory of earlier responses) agree.
    one_by_one = [
        (a.frames[0], a.evidence["point"])
        for record in records[1:]
        for a in run([records[0], record], baseline=baseline, rules=rules)
        if a.rule_id == "ICS-5007"
    ]
    assert one_by_one == fired


def test_dnp3_range_objects_judged_as_point_by_point() -> None:
    """Range-qualified objects take the per-shape path (limits once, values checked in C): it
    fires on exactly the points the point-by-point walk fires on, whatever the values are."""
    rng = random.Random(7)

    def response(frame: int, start: int, values: list[Any], ranged: bool) -> Any:
        points = [
            {"index": start + i} if value is _MISSING else {"index": start + i, "value": value}
            for i, value in enumerate(values)
        ]
        obj: dict[str, Any] = {"group": 30, "variation": 1, "start": start, "points": points}
        if ranged:
            obj["prefix_code"] = 0
        return dnp3(
            129, request=False, frame=frame, ts=2000.0 + frame, flow_id="f-dnp3-range", objects=(obj,)
        )

    learner = BaselineLearner()
    for i in range(10):  # points 0-5 learned (6-7 never read), values 100-109 and 0/1
        learner.observe(dnp3(1, ts=900.0 + i, frame=2 * i + 1, flow_id="f-dnp3-range"))
        learner.observe(response(2 * i + 2, 0, [100 + i, 100 + i, 100 + i, i % 2, -5.0, 7.5], True))
    baseline = learner.baseline()
    rules = _unthrottled(RULES, "ICS-5007")
    choices: list[Any] = [
        104,
        104,
        104,
        400,
        -50,
        True,
        False,
        1,
        2,
        7.5,
        float("nan"),
        "text",
        None,
        _MISSING,
    ]
    records: list[Any] = []
    frame = 100
    for _ in range(300):
        start = rng.choice((0, 0, 0, 2))
        count = rng.randint(1, 8 - start)
        values = [rng.choice(choices) for _ in range(count)]
        repeat = rng.random() < 0.3 and records  # a response equal to an earlier one
        records.append((start, list(records[-1][1]) if repeat else values))
    for ranged in (True, False):
        stream: list[Any] = [dnp3(1, frame=50, flow_id="f-dnp3-range")]
        stream += [response(frame + n, start, values, ranged) for n, (start, values) in enumerate(records)]
        alerts = run(stream, baseline=baseline, rules=rules)
        fired = sorted((a.frames[0], a.evidence["point"]) for a in alerts if a.rule_id == "ICS-5007")
        if ranged:
            fast = fired
    assert fast == fired
    assert len(fired) > 50 and {point for _, point in fired} >= {"g30:10:0", "g30:10:3", "g30:10:4"}


_MISSING = object()


def test_per_request_state_goes_by_conversation_not_by_flow() -> None:
    """Many connections of one known conversation share its checked codes and poll lookups."""
    engine = DetectionEngine(RULES.configured("ICS-4003", enabled=False), BASELINE)
    [deviation] = [d for d in engine.detectors if isinstance(d, BaselineDeviation)]
    for n in range(200):  # a new TCP connection per poll, as some HMIs do
        engine.observe(modbus(3, ts=2000.0 + n, frame=n + 1, address=0, quantity=10, flow_id=f"f{n}"))
    assert len(deviation.flows) == 200
    assert len(deviation.checked_functions) == 1 and len(deviation.poll_fields) == 1
    [cycle] = deviation.poll_fields.values()
    assert list(cycle) == [(3, 1, 0, 10)]
    # The polls of all those connections made one series of intervals: on the cycle, no alert.
    [slot] = deviation.polls.values()
    assert slot[4][1] == [1.0] * 8


def _reference_drifts(intervals: list[float], learned: float, tolerance: float, ratio: float) -> list[int]:
    """Where the recent median (8 intervals) first drifts, recomputed in full at every request."""
    out: list[int] = []
    drifted_before = False
    for n in range(8, len(intervals) + 1):
        ordered = sorted(intervals[n - 8 : n])
        median = (ordered[3] + ordered[4]) / 2
        r = max(median, 1e-6) / max(learned, 1e-6)
        drifted = (r > ratio or r < 1 / ratio) and abs(median - learned) > tolerance
        if drifted and not drifted_before:
            out.append(n)
        drifted_before = drifted
    return out


def test_polling_drift_matches_the_full_median_on_random_cycles() -> None:
    """The in-band shortcut (no sort while every recent interval is on the cycle) changes nothing."""
    engine_rules = _unthrottled(RULES.configured("ICS-4003", enabled=False), "ICS-5008")
    [learned] = [
        poll
        for conversation in BASELINE.conversations.values()
        for signature, poll in conversation.polling.items()
        if signature == "3:1:0:10"
    ]
    assert learned.median == 1.0
    tolerance = max(
        float(RULES.param("ICS-5008", "spread_factor")) * (learned.spread or 0.0),
        float(RULES.param("ICS-5008", "min_seconds")),
    )
    ratio = float(RULES.param("ICS-5008", "max_ratio"))
    generator = random.Random(7)
    checked = 0
    for _ in range(60):
        # Runs of on-cycle intervals, slow or fast stretches and lone outliers.
        intervals: list[float] = []
        while len(intervals) < 60:
            kind = generator.random()
            length = generator.randint(1, 12)
            if kind < 0.5:
                intervals += [generator.uniform(0.9, 1.1) for _ in range(length)]
            elif kind < 0.75:
                intervals += [generator.uniform(2.0, 6.0) for _ in range(length)]
            else:
                intervals += [generator.uniform(0.0, 0.3) for _ in range(length)]
        times = [2000.0]
        for interval in intervals:
            times.append(times[-1] + interval)
        requests = [modbus(3, ts=ts, frame=n + 1, address=0, quantity=10) for n, ts in enumerate(times)]
        alerts = [a for a in run(requests, baseline=BASELINE, rules=engine_rules) if a.rule_id == "ICS-5008"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        expected = _reference_drifts(gaps, 1.0, tolerance, ratio)
        # The request closing interval n is frame n + 1.
        assert [a.frames[0] - 1 for a in alerts] == expected
        checked += len(expected)
    assert checked > 20  # the cycles did drift, many times


def test_polling_drift() -> None:
    steady = [modbus(3, ts=2000.0 + i, frame=i, address=0, quantity=10) for i in range(20)]
    quiet = RULES.configured("ICS-4003", enabled=False)  # request-only fixtures look like silence
    assert _ids(steady, rules=quiet) == []
    slow = [modbus(3, ts=2000.0 + 4 * i, frame=i, address=0, quantity=10) for i in range(20)]
    alerts = run(slow, baseline=BASELINE, rules=quiet)
    [alert] = [a for a in alerts if a.rule_id == "ICS-5008"]
    assert alert.evidence["recent_median"] == 4.0 and alert.evidence["learned_median"] == 1.0


def _learned_poll(intervals: list[float]) -> Baseline:
    learner = BaselineLearner()
    ts = 1000.0
    learner.observe(modbus(3, ts=ts, frame=1, address=0, quantity=10))
    for n, interval in enumerate(intervals, 2):
        ts += interval
        learner.observe(modbus(3, ts=ts, frame=n, address=0, quantity=10))
    return learner.baseline()


def _drift_alerts(baseline: Baseline, intervals: list[float]) -> list[Any]:
    ts, records = 90_000.0, [modbus(3, ts=90_000.0, frame=1, address=0, quantity=10)]
    for n, interval in enumerate(intervals, 2):
        ts += interval
        records.append(modbus(3, ts=ts, frame=n, address=0, quantity=10))
    quiet = _unthrottled(RULES.configured("ICS-4003", enabled=False), "ICS-5008")
    return [a for a in run(records, baseline=baseline, rules=quiet) if a.rule_id == "ICS-5008"]


def test_a_poll_too_short_to_learn_is_not_enforced() -> None:
    """A request seen fewer than MIN_POLL_SAMPLES times learned no rhythm: the saved baseline
    leaves it out, and the baseline enforced in memory right after learning must not judge it
    either (``--learn-for`` enforced a drift the file did not show)."""
    from ics_monitor.inventory.baseline import MIN_POLL_SAMPLES

    few = _learned_poll([30.0] * (MIN_POLL_SAMPLES - 2))
    assert _drift_alerts(few, [10.0] * 20) == []
    [alert] = _drift_alerts(_learned_poll([30.0] * MIN_POLL_SAMPLES), [10.0] * 20)
    assert alert.evidence["learned_median"] == 30.0


def test_polling_of_two_rhythms_learned_is_not_a_drift() -> None:
    """A poll sent twice 18 s apart every 800 s alternates 18 s and 782 s intervals: the median of
    all intervals is one of the two (here 18 s, by count parity), while any 8 in a row have a
    median of 400 s.  Learned as the band of that 8-interval median, the same traffic enforced
    is quiet, and a real change of rhythm still fires."""
    baseline = _learned_poll([18.0, 782.0] * 11 + [18.0])  # 12 intervals of 18 s, 11 of 782 s
    [(key, poll)] = [(c.key, p) for c in baseline.conversations.values() for p in c.polling.values()]
    assert poll.median == pytest.approx(18.0) and poll.window == pytest.approx((400.0, 400.0))
    reloaded = Baseline.from_dict(baseline.to_dict()).conversations[key].polling["3:1:0:10"]
    assert reloaded.window == pytest.approx((400.0, 400.0))
    same = [18.0, 782.0] * 19 + [18.0]
    assert _drift_alerts(baseline, same) == []
    # Without the window (a baseline from before it was learned) the same traffic drifts: 400 s
    # against the 18 s median.
    poll.window = None
    [old] = _drift_alerts(baseline, same)
    assert old.evidence["recent_median"] == pytest.approx(400.0)
    poll.window = (400.0, 400.0)
    # The master now polls every 5 s: a drift, explained with the learned window.
    [alert] = _drift_alerts(baseline, [5.0] * 11)
    assert alert.evidence["recent_median"] == 5.0 and alert.evidence["learned_window"] == [400.0, 400.0]
    assert "learned 18.0 s, 8-interval medians 400.0 to 400.0 s" in alert.explanation


def test_polling_band_of_a_jittery_cycle_and_a_one_off_outage() -> None:
    """A cycle that wanders between 1 and 3 s learns a band of window medians (low < high): inside
    it is quiet, 3x past its top drifts.  A 1 s poll with one outage while learning (five 30 s
    gaps among 120 intervals) keeps its 1 s band: a one-off does not teach a rhythm."""
    generator = random.Random(3)
    jitter = _learned_poll([generator.uniform(1.0, 3.0) for _ in range(120)])
    [poll] = [p for c in jitter.conversations.values() for p in c.polling.values()]
    assert poll.window is not None and 1.0 < poll.window[0] < 2.0 < poll.window[1] < 3.0
    assert _drift_alerts(jitter, [poll.window[1]] * 12) == []
    [alert] = _drift_alerts(jitter, [3 * poll.window[1] + 1] * 12)
    assert alert.evidence["learned_window"] == [round(edge, 6) for edge in poll.window]
    outage = _learned_poll([1.0] * 60 + [30.0] * 5 + [1.0] * 55)
    [poll] = [p for c in outage.conversations.values() for p in c.polling.values()]
    assert poll.window == (1.0, 1.0)
    assert len(_drift_alerts(outage, [5.0] * 12)) == 1


def test_polling_window_of_a_steady_cycle_is_its_median() -> None:
    windows = {sig: p.window for c in BASELINE.conversations.values() for sig, p in c.polling.items()}
    assert windows["3:1:0:10"] == pytest.approx((1.0, 1.0))


def test_baseline_detectors_need_a_baseline() -> None:
    assert rule_ids(run([modbus(8, sub_function=0, client="10.0.0.66")])) == []


def test_identity_change_needs_no_baseline() -> None:
    [alert] = run([change("identity_change", field="firmware", before="V3.2.6", after="V3.2.7")])
    assert alert.rule_id == "ICS-5009" and alert.src_ip == SERVER and alert.frames == (3,)
    assert "firmware = V3.2.7 (was V3.2.6)" in alert.explanation
    assert run([change("role_change")]) == []


def test_new_asset_from_inventory_changes() -> None:
    [alert] = run([change("new_asset", ip="10.0.0.99")], baseline=BASELINE)
    assert (
        alert.rule_id == "ICS-5001" and alert.src_ip == "10.0.0.99" and alert.evidence["seen_as"] == "asset"
    )
    assert _ids([change("new_asset", ip=CLIENT)]) == []


# -- zones -------------------------------------------------------------------------------------------------

ZONES = Zones.from_dict(
    {
        "zones": [
            {"name": "enterprise", "level": 4, "subnets": ["10.10.0.0/16"]},
            {"name": "dmz", "level": 3.5, "subnets": ["10.20.0.0/24"]},
            {"name": "scada", "level": 2, "subnets": ["10.0.0.0/24"]},
            {"name": "field", "level": 1, "subnets": ["10.0.1.0/24"]},
        ],
        "conduits": [
            {"from": "scada", "to": "field", "protocols": ["modbus"]},
            {"from": "dmz", "to": "scada", "protocols": ["rdp"]},
            {"from": "enterprise", "to": "dmz"},
        ],
    }
)


def _zone_ids(records: list[Any]) -> list[str]:
    return rule_ids(run(records, zones=ZONES))


def test_zone_lookup_most_specific_subnet() -> None:
    zones = Zones.from_dict(
        {
            "zones": [
                {"name": "wide", "level": 3, "subnets": ["10.0.0.0/8"]},
                {"name": "narrow", "level": 1, "subnets": ["10.0.1.0/24"]},
            ]
        }
    )
    assert zones.zone_of("10.0.1.5").name == "narrow"  # type: ignore[union-attr]
    assert zones.zone_of("10.9.0.1").name == "wide"  # type: ignore[union-attr]
    assert zones.zone_of("192.168.0.1") is None and zones.zone_of("not-an-ip") is None
    with pytest.raises(ZonesError, match="unknown zone"):
        Zones.from_dict({"zones": [], "conduits": [{"from": "a", "to": "b"}]})


@pytest.mark.parametrize(
    ("conduit", "message"),
    [
        ({"protocols": "rdp"}, "protocols must be a list (e.g. [rdp])"),
        ({"ports": "3389"}, "ports must be a list"),
        ({"ports": [-1]}, "a port must be a number 0..65535"),
        ({"ports": [True]}, "a port must be a number"),
    ],
)
def test_zone_lists_are_lists_not_their_characters(conduit: dict[str, Any], message: str) -> None:
    # protocols: rdp once allowed {r, d, p}: RDP itself then raised a false ICS-6001.
    zones = [{"name": "a", "level": 3, "subnets": ["10.0.0.0/8"]}, {"name": "b", "level": 1}]
    with pytest.raises(ZonesError, match=re.escape(message)):
        Zones.from_dict({"zones": zones, "conduits": [{"from": "a", "to": "b", **conduit}]})
    with pytest.raises(ZonesError, match="level must be a number"):
        Zones.from_dict({"zones": [{"name": "a", "level": float("nan")}]})
    quoted = Zones.from_dict({"zones": zones, "conduits": [{"from": "a", "to": "b", "ports": ["3389"]}]})
    assert quoted.conduits[("a", "b")][0].ports == frozenset({3389})


def test_allowed_conduits_and_same_zone_are_quiet() -> None:
    assert _zone_ids([modbus(3, client="10.0.0.5", server="10.0.1.5")]) == []
    assert _zone_ids([flow(src_ip="10.20.0.5", dst_ip="10.0.0.9", dst_port=3389, app_protocol="rdp")]) == []
    assert _zone_ids([flow(src_ip="10.10.0.5", dst_ip="10.20.0.9", dst_port=443, app_protocol="tls")]) == []
    assert _zone_ids([modbus(3, client="10.0.0.5", server="10.0.0.9")]) == []
    assert _zone_ids([flow(src_ip="192.168.9.9", dst_ip="10.0.0.9", dst_port=80)]) == []


def test_crossing_without_conduit() -> None:
    [alert] = run([s7(1, function_code=4, client="10.0.0.5", server="10.0.1.5")], zones=ZONES)
    assert alert.rule_id == "ICS-6001"
    assert alert.evidence["client_zone"] == "scada" and alert.evidence["server_zone"] == "field"


def test_it_protocol_into_ot_and_level_skip() -> None:
    rdp = flow(src_ip="10.10.0.5", dst_ip="10.0.1.9", dst_port=3389, app_protocol="rdp")
    assert _zone_ids([rdp]) == ["ICS-6002", "ICS-6003"]
    smb = flow(src_ip="10.0.0.5", dst_ip="10.0.1.9", dst_port=445, app_protocol="smb")
    assert _zone_ids([smb]) == ["ICS-6001", "ICS-6002"]
    # An explicitly allowed IT protocol into OT is fine.
    assert _zone_ids([flow(src_ip="10.20.0.5", dst_ip="10.0.0.9", dst_port=3389, app_protocol="rdp")]) == []


def test_policy_needs_zones() -> None:
    assert (
        rule_ids(run([flow(src_ip="10.10.0.5", dst_ip="10.0.1.9", dst_port=3389, app_protocol="rdp")])) == []
    )


# -- engine ------------------------------------------------------------------------------------------------


def test_engine_builds_only_useful_detectors() -> None:
    plain = DetectionEngine(RULES)
    assert "baseline_deviation" not in plain.names and "zone_policy" not in plain.names
    full = DetectionEngine(RULES, BASELINE, ZONES)
    assert {"baseline_deviation", "zone_policy", "identity_change"} <= set(full.names)
    only_s7 = RULES
    for rule in RULES:
        if not rule.rule_id.startswith("ICS-10"):
            only_s7 = only_s7.configured(rule.rule_id, enabled=False)
    assert DetectionEngine(only_s7).names == ["s7_commands"]


def test_engine_closes_throttle_windows_as_time_passes() -> None:
    engine = DetectionEngine(RULES)
    assert len(engine.observe(modbus(8, sub_function=4, ts=1000.0))) == 1
    assert engine.observe(modbus(8, sub_function=4, ts=1001.0, frame=2)) == []
    # The rule's window is 300 s: an advance past it emits the update with the count.
    [update] = engine.advance(1400.0)
    assert update.count == 2 and update.frames == (1, 2)
    assert engine.finish() == []
    assert engine.observe_changes([]) == []


def test_new_client_writes_are_judged_against_the_server_profile() -> None:
    # Learned: holding 20 written with 100..119, holding 0..9 read with 50.
    stranger = "10.0.0.66"
    # In range, to a register the HMI writes: a write all the same from a host that never wrote.
    in_range = run([modbus(6, client=stranger, address=20, values=(110,))], baseline=BASELINE)
    assert rule_ids(in_range) == ["ICS-5001", "ICS-5002", "ICS-5010"]
    out_of_range = run([modbus(6, client=stranger, address=20, values=(9999,))], baseline=BASELINE)
    [value] = [a for a in out_of_range if a.rule_id == "ICS-5006"]
    assert value.src_ip == stranger and value.evidence["learned_max"] == 119
    # Never written but read: a write far from the values it is read with, to a new address.
    unwritten = run([modbus(6, client=stranger, address=3, values=(9999,))], baseline=BASELINE)
    assert rule_ids(unwritten) == ["ICS-5001", "ICS-5002", "ICS-5005", "ICS-5006", "ICS-5010"]
    assert [a.evidence["learned_max"] for a in unwritten if a.rule_id == "ICS-5006"] == [50]
    # Another port of the same server (a second Modbus listener): the same registers, judged alike.
    other_port = dataclasses.replace(modbus(6, client=stranger, address=20, values=(9999,)), dst_port=5020)
    [value] = [a for a in run([other_port], baseline=BASELINE) if a.rule_id == "ICS-5006"]
    assert value.dst_port == 5020 and value.evidence["learned_max"] == 119
    # A server nobody talked to has no profile: the new conversation, and a write nobody sent there.
    assert rule_ids(
        run([modbus(6, client=stranger, server="10.0.0.77", address=3, values=(1,))], baseline=BASELINE)
    ) == ["ICS-5001", "ICS-5001", "ICS-5002", "ICS-5010"]


def test_new_write_targets_of_one_table_are_one_alert_that_grows() -> None:
    """A file written block by block into holding registers never written (a covert channel): one
    ICS-5005 per unit and table naming every block, not an alert per block; another table is
    another alert."""
    stranger = "10.0.0.66"
    blocks = [
        modbus(16, client=stranger, address=1000 + 123 * i, quantity=123, values=(7,) * 123, frame=i + 1)
        for i in range(5)
    ]
    coil = modbus(5, client=stranger, address=9, values=(1,), frame=9)
    alerts = {a.alert_id: a for a in run([*blocks, coil], baseline=BASELINE) if a.rule_id == "ICS-5005"}
    registers, coils = sorted(alerts.values(), key=lambda a: -a.evidence["distinct_targets"])
    assert registers.evidence["distinct_targets"] == 5 and registers.count == 1
    # The blocks are one run of addresses, named once, with the writes that made it.
    assert registers.evidence["targets"] == ["unit 1 holding_registers 1000-1614"]
    assert "wrote to unit 1 holding_registers 1000-1614 (5 writes) of " in registers.explanation
    assert coils.evidence["target"] == "unit 1 coils 9" and coils.evidence["distinct_targets"] == 1
    # Runs merge whatever order the writes come in; the functions that wrote are all named.
    writes = [
        modbus(15, client=stranger, address=0, quantity=16, values=(1,) * 16, frame=20),
        modbus(5, client=stranger, address=3, values=(1,), frame=21),
        modbus(5, client=stranger, address=40, values=(1,), frame=22),
        modbus(15, client=stranger, address=17, quantity=4, values=(1,) * 4, frame=23),
    ]
    [*_, last] = [a for a in run(writes, baseline=BASELINE) if a.rule_id == "ICS-5005"]
    assert last.evidence["targets"] == ["unit 1 coils 0-15", "unit 1 coils 17-20", "unit 1 coils 40"]
    assert last.evidence["function"] == "FC15 (15), FC5 (5)"


def _float_registers(value: float, swapped: bool = False) -> tuple[int, int]:
    import struct

    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return (low, high) if swapped else (high, low)


def _float_baseline(values: list[tuple[int, int]]) -> Baseline:
    learner = BaselineLearner()
    for i, pair in enumerate(values):
        learner.observe(modbus(16, ts=1000.0 + i, frame=i + 1, address=100, quantity=2, values=pair))
    return learner.baseline()


def _float_alerts(baseline: Baseline, pair: tuple[int, int]) -> list[tuple[str, Any]]:
    write = modbus(16, ts=2000.0, frame=50, address=100, quantity=2, values=pair)
    return [
        (a.evidence["point"], a.evidence["value"])
        for a in run([write], baseline=baseline, rules=_unthrottled(RULES, "ICS-5006"))
        if a.rule_id == "ICS-5006"
    ]


def test_register_pairs_written_as_floats_are_judged_as_floats() -> None:
    """Found by a red-team review: a setpoint written as a 32-bit float in two registers (FC 16) was
    judged register by register.  Its high word barely moves for a 100-fold change (6208.0 after
    50-60 passed), and its low word is no process value (55.3 after round setpoints fired)."""
    learned = _float_baseline([_float_registers(50.0 + i) for i in range(11)])
    conversation = next(iter(learned.conversations.values()))
    assert conversation.values[("written", "hr:1:100:f32")] == (50.0, 60.0)
    assert ("written", "hr:1:100:f32sw") not in conversation.values  # 0x0000 first: not plausible
    assert _float_alerts(learned, _float_registers(55.3)) == []
    for attack in (6208.0, 0.5, 1e6):
        assert _float_alerts(learned, _float_registers(attack)) == [("hr:1:100:f32", attack)]
    [alert] = [
        a
        for a in run([modbus(16, address=100, quantity=2, values=_float_registers(6208.0))], baseline=learned)
        if a.rule_id == "ICS-5006"
    ]
    assert "read as a 32-bit float (high word first)" in alert.evidence["written_as"]
    # Not a plausible float (a NaN): its high word, judged as a register, tells.
    assert [point for point, _ in _float_alerts(learned, (0x7FC0, 0))] == ["hr:1:100"]
    # Word-swapped floats (low word first), as many devices order them.
    swapped = _float_baseline([_float_registers(50.0 + i, True) for i in range(11)])
    assert _float_alerts(swapped, _float_registers(55.3, True)) == []
    assert _float_alerts(swapped, _float_registers(6208.0, True)) == [("hr:1:100:f32sw", 6208.0)]
    # Two registers of their own (100 to 110 and 7): no float learned, each judged as before.
    integers = _float_baseline([(100 + i, 7) for i in range(11)])
    conversation = next(iter(integers.conversations.values()))
    assert not any(point.endswith(("f32", "f32sw")) for _, point in conversation.values)
    assert _float_alerts(integers, (105, 5000)) == [("hr:1:101", 5000)]
    # Found in review: two registers that read as a plausible float (17000, 17000: 58.06 either
    # way), their low word no float's (one value, not 0): still judged register by register.
    scaled = _float_baseline([(17000, 17000)] * 11)
    assert _float_alerts(scaled, (17000, 65535)) == [("hr:1:101", 65535)]
    assert _float_alerts(scaled, (65535, 17000)) == [("hr:1:100", 65535)]


def test_mask_writes_and_the_two_sides_of_a_range() -> None:
    """A mask write with an AND mask of 0 sets the register to its OR mask: judged as a write of
    it.  Another AND mask keeps some of the register's current bits, which the request does not
    carry: judged only when whatever it held the result is out of range.  A value above the range
    and one below are two points of the alert, not one with a count of 2."""
    stranger = "10.0.0.66"
    rules = _unthrottled(RULES, "ICS-5006")

    def mask(and_mask: int, or_mask: int, frame: int) -> Any:
        return modbus(
            22, client=stranger, address=20, frame=frame, extra={"and_mask": and_mask, "or_mask": or_mask}
        )

    fired = [a for a in run([mask(0, 0xFFFF, 1)], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"]
    assert [(a.evidence["point"], a.evidence["value"]) for a in fired] == [("hr:1:20", 0xFFFF)]
    assert [
        a for a in run([mask(0, 110, 1)], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"
    ] == []
    # Learned 100..119 (margin 5.95).  AND 0xFF00 OR 0x00FF: 255 to 65535 whatever it held.
    [forced] = [
        a for a in run([mask(0xFF00, 0xFF, 1)], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"
    ]
    assert (forced.evidence["value"], forced.evidence["side"]) == (255, "above")
    assert (
        forced.evidence["written_as"]
        == "mask write AND 0xff00 OR 0x00ff: 255 to 65535 whatever the register held"
    )
    assert "hr:1:20 = 255 (written there while learning: 100 to 119" in forced.explanation
    # Found by a red-team review: AND 0x8000 OR 5 can leave anything from 5 to 32773, but holding
    # any value of its learned range (under 32768) the register becomes 5.
    [held] = [a for a in run([mask(0x8000, 5, 1)], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"]
    assert (held.evidence["value"], held.evidence["side"]) == (5, "below")
    assert held.evidence["written_as"] == (
        "mask write AND 0x8000 OR 0x0005: 5 to 5 whatever it held within its learned 100 to 119"
    )
    # AND 0x0004 OR 96: 96 or 100 from the learned values, 96 within the margin: not judged.
    assert [
        a for a in run([mask(0x0004, 96, 1)], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"
    ] == []
    # AND 0x0003 OR 100: 100 to 103, within the range; AND 0xFFFF: anything, the register decides.
    for within in (mask(0x0003, 100, 1), mask(0xFFFF, 0, 1)):
        assert [a for a in run([within], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"] == []
    # A register never written, read as 50: forcing bit 8 on leaves 256 at least, whatever it held.
    bit = modbus(22, client=stranger, address=5, frame=3, extra={"and_mask": 0xFEFF, "or_mask": 0x0100})
    [read_range] = [a for a in run([bit], baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"]
    assert read_range.evidence["point"] == "hr:1:5" and read_range.evidence["learned_from"] == "read"
    assert read_range.evidence["value"] == 256
    both = [
        modbus(6, client=stranger, address=20, values=(9999,), frame=1),
        modbus(6, client=stranger, address=20, values=(0,), frame=2),
        modbus(6, client=stranger, address=20, values=(8888,), frame=3),
    ]
    alerts = {a.alert_id: a for a in run(both, baseline=BASELINE) if a.rule_id == "ICS-5006"}
    [alert] = alerts.values()
    assert [(p["value"], p["side"]) for p in alert.evidence["points"]] == [(9999, "above"), (0, "below")]
    assert alert.count == 2  # 8888 above again: one more of the first
    # Unthrottled (each firing its own alert): one per side, as before.
    fired = [a for a in run(both, baseline=BASELINE, rules=rules) if a.rule_id == "ICS-5006"]
    assert sorted((a.evidence["value"], a.evidence["side"]) for a in fired) == [
        (0, "below"),
        (8888, "above"),
        (9999, "above"),
    ]


def test_engine_hands_records_to_the_directions_a_detector_declares() -> None:
    """``directions`` narrows the records a detector is called with; None means all of them."""
    from ics_monitor.detect.api import BaseDetector, Emitter
    from ics_monitor.detect.engine import DETECTORS
    from tests.unit.detect.records import anomaly

    seen: dict[str, list[tuple[str, str | None]]] = {"requests": [], "all": []}

    class Requests(BaseDetector):
        name = "requests_only"
        rule_ids = ("ICS-1001",)
        event_types = frozenset({"modbus", "anomaly"})
        directions = frozenset({"request"})

        def on_event(self, event: Any, out: Emitter) -> None:
            seen["requests"].append((event.event_type, event.direction))

    class Everything(Requests):
        name = "everything"
        directions = None

        def on_event(self, event: Any, out: Emitter) -> None:
            seen["all"].append((event.event_type, event.direction))

    engine = DetectionEngine(RULES, detectors=(Requests, Everything))
    for record in (modbus(3), modbus(3, request=False), anomaly("modbus.bad_length")):
        engine.observe(record)
    assert seen["requests"] == [("modbus", "request")]
    assert [kind for kind, _ in seen["all"]] == ["modbus", "modbus", "anomaly"]
    assert [direction for _, direction in seen["all"][:2]] == ["request", "response"]
    # The shipped request-only and response-only detectors declare theirs (the command detectors
    # see both: an alert on a request takes the device's answer).
    directed = {cls.__name__ for cls in DETECTORS if cls.directions is not None}
    assert directed >= {"RequestFlood", "ErrorStorm"} and "ModbusCommands" not in directed


def test_written_values_checked_in_c_agree_with_value_by_value() -> None:
    """Modbus and S7 writes: the all-in-range check in C fires exactly what the per-value walk does."""
    from ics_monitor.detect import deviation

    # Four CHARs: one range over the block (text), checked in C.
    item = {"area": 0x84, "area_name": "DATA_BLOCK", "db": 1, "address": 20, "length": 4, "transport_size": 3}
    learner = BaselineLearner()
    for i in range(20):
        ts = 1000.0 + i
        # Registers 100-103 written with 100..119, 104-105 only read (0..10): their writes are
        # judged by the read range.
        learner.observe(modbus(16, ts=ts, frame=4 * i + 1, address=100, quantity=4, values=(100 + i,) * 4))
        learner.observe(modbus(3, ts=ts + 0.1, frame=4 * i + 2, address=104, quantity=2))
        learner.observe(
            modbus(
                3, request=False, ts=ts + 0.2, frame=4 * i + 3, address=104, quantity=2, values=(i % 11, 5)
            )
        )
        learner.observe(
            s7(
                1,
                function_code=0x05,
                ts=ts + 0.3,
                frame=4 * i + 4,
                items=(item,),
                data_items=({"values": [10 + i] * 4},),
            )
        )
    baseline = learner.baseline()
    assert baseline.conversations and any(
        ("written", "DB1:20:BLOCK") in c.values for c in baseline.conversations.values()
    )
    rules = _unthrottled(RULES, "ICS-5006")
    generator = random.Random(11)
    odd: list[Any] = [124, 126, 90, 30, True, False, float("nan"), "x", None, 1e300, -7]
    records: list[Any] = []
    for n in range(300):
        # Mostly a write within every limit (registers 100-103 learned 100..119 written, 104-105
        # read 0..10; DB1:20 written 10..29 as a block of bytes), else one odd value somewhere.
        values: list[Any] = [generator.choice((100, 110, 119))] * 4 + [generator.choice((0, 5, 10))] * 2
        s7_values: list[Any] = [generator.choice((10, 20, 29))] * generator.randint(1, 5)
        if generator.random() < 0.4:
            values[generator.randrange(6)] = generator.choice(odd)
            s7_values[generator.randrange(len(s7_values))] = generator.choice(odd)
        records.append(
            modbus(16, ts=2000.0 + n, frame=2 * n + 1, address=100, quantity=6, values=tuple(values))
        )
        records.append(
            s7(
                1,
                function_code=0x05,
                ts=2000.5 + n,
                frame=2 * n + 2,
                items=(item,),
                data_items=({"values": s7_values},),
            )
        )
    fired = [a for a in run(records, baseline=baseline, rules=rules) if a.rule_id == "ICS-5006"]
    fast = sorted((a.frames[0], a.evidence["point"], repr(a.evidence["value"])) for a in fired)

    # The value-by-value judgement, written out here: a number (a bool as 0/1) outside the limits
    # of its point, which are the written ones or else the read ones.  (Monkeypatching the C checks
    # away cannot work on the compiled build, which calls them directly.)
    [modbus_conversation] = [c for c in baseline.conversations.values() if c.protocol == "modbus"]
    [s7_conversation] = [c for c in baseline.conversations.values() if c.protocol == "s7comm"]

    def limits_of(conversation: Any) -> Any:
        written = deviation.PointLimits(
            conversation.values,
            "written",
            float(rules.param("ICS-5006", "margin_ratio")),
            float(rules.param("ICS-5006", "magnitude_ratio")),
        )
        read = deviation.PointLimits(
            conversation.values,
            "read",
            float(rules.param("ICS-5007", "margin_ratio")),
            float(rules.param("ICS-5007", "magnitude_ratio")),
        )
        return lambda point: written.get(point) or read.get(point)

    def out_of_range(limit: Any, value: Any) -> bool:
        if isinstance(value, bool):
            value = int(value)
        elif not isinstance(value, (int, float)):
            return False
        return limit is not None and not limit[0] <= value <= limit[1]

    modbus_limit, s7_limit = limits_of(modbus_conversation), limits_of(s7_conversation)
    expected: list[tuple[Any, ...]] = []
    checks = {True: 0, False: 0}
    for record in records:
        if record.event_type == "modbus":
            pairs = [(f"hr:1:{100 + offset}", value) for offset, value in enumerate(record.values)]
            judged = [(point, value) for point, value in pairs if out_of_range(modbus_limit(point), value)]
            lows = tuple(modbus_limit(point)[0] for point, _ in pairs)
            highs = tuple(modbus_limit(point)[1] for point, _ in pairs)
            within = deviation._within(list(record.values), lows, highs)
        else:
            limit = s7_limit("DB1:20:BLOCK")
            pairs = [("DB1:20:BLOCK", value) for value in record.data_items[0]["values"]]
            judged = [(point, value) for point, value in pairs if out_of_range(limit, value)]
            within = deviation._all_within(record.data_items[0]["values"], limit[0], limit[1])
        # The C check passes only what the walk passes (a bool in range may pass both), and
        # passes every write of plain numbers within their limits.
        plain = all(type(value) in (int, float) and not math.isnan(value) for _, value in pairs)
        assert not (within and judged), record
        assert within or not plain or judged, record
        checks[within] += 1
        expected += [
            (record.frame, point, repr(int(value) if isinstance(value, bool) else value))
            for point, value in judged
        ]
    assert checks[True] > 200 and checks[False] > 100  # both ways were taken
    assert fast == sorted(expected)
    assert {"hr:1:100", "hr:1:104", "DB1:20:BLOCK"} <= {point for _, point, _ in fast}


def test_s7_polling_drift_and_its_lookup_by_item_fields() -> None:
    """S7 read polls are found by (function, item fields); a slowed cycle fires, items apart."""
    items = (
        {"area": 0x84, "area_name": "DATA_BLOCK", "db": 1, "address": 0, "length": 10, "transport_size": 2},
        {"area": 0x83, "area_name": "FLAGS", "db": 0, "address": 4, "length": 2, "transport_size": 2},
    )
    other = ({**items[0], "address": 100},)
    learner = BaselineLearner()
    for i in range(20):
        learner.observe(s7(1, function_code=0x04, ts=1000.0 + i, frame=2 * i + 1, items=items))
        learner.observe(s7(1, function_code=0x04, ts=1000.5 + 5 * i, frame=2 * i + 2, items=other))
    baseline = learner.baseline()
    rules = RULES.configured("ICS-4003", enabled=False)
    engine = DetectionEngine(rules, baseline)
    [deviation] = [d for d in engine.detectors if isinstance(d, BaselineDeviation)]
    alerts: list[Any] = []
    for i in range(20):  # the first read slows to 4 s, the second keeps its 5 s cycle
        alerts += engine.observe(s7(1, function_code=0x04, ts=2000.0 + 4 * i, frame=2 * i + 1, items=items))
        alerts += engine.observe(s7(1, function_code=0x04, ts=2000.5 + 5 * i, frame=2 * i + 2, items=other))
    alerts += engine.finish()
    drifts = [a for a in alerts if a.rule_id == "ICS-5008"]
    assert [a.evidence["signature"] for a in drifts] == ["4:132.1.0.10,131.0.4.2"]
    assert drifts[0].evidence["recent_median"] == 4.0
    [lookups] = deviation.poll_fields.values()
    assert set(lookups) == {(4, (132, 1, 0, 10), (131, 0, 4, 2)), (4, (132, 1, 100, 10))}


def test_per_shape_caches_stay_bounded_under_an_address_sweep() -> None:
    """A known client reading and writing everywhere: the detector's caches stop at their caps."""
    from ics_monitor.detect import deviation as module

    engine = DetectionEngine(RULES.configured("ICS-4003", enabled=False), BASELINE)
    [deviation] = [d for d in engine.detectors if isinstance(d, BaselineDeviation)]
    for n in range(module.MAX_SHAPES + 2000):
        ts = 3000.0 + n / 100
        engine.observe(modbus(3, ts=ts, frame=3 * n + 1, address=n % 60000, quantity=10))
        response = modbus(
            3, request=False, ts=ts, frame=3 * n + 2, address=n % 60000, quantity=10, values=(50,) * 10
        )
        engine.observe(response)
        engine.observe(response)  # read again: its bounds are kept
        engine.observe(modbus(16, ts=ts, frame=3 * n + 3, address=n % 60000, quantity=2, values=(1, 2)))
    assert 0 < len(deviation.read_bounds) <= module.MAX_SHAPES
    assert len(deviation.read_once) <= module.MAX_SHAPES
    assert 0 < len(deviation.write_bounds) <= module.MAX_SHAPES
    [lookups] = deviation.poll_fields.values()
    assert len(lookups) == module.MAX_POLLS_PER_CONVERSATION


class _Broken:
    """Detector classes that raise, on a record or on the clock (containment tests)."""

    @staticmethod
    def classes() -> tuple[type[Any], ...]:
        from ics_monitor.detect.api import BaseDetector, Emitter

        class RaisesOnWrites(BaseDetector):
            name = "raises_on_writes"
            rule_ids = ("ICS-1001",)
            event_types = frozenset({"modbus"})

            def on_event(self, event: Any, out: Emitter) -> None:
                if event.function_code == 6:
                    raise KeyError("no such field")

        class RaisesOnTicks(BaseDetector):
            name = "raises_on_ticks"
            rule_ids = ("ICS-1001",)
            wants_time = True

            def advance(self, ts: float, out: Emitter) -> None:
                raise ValueError(f"tick at {ts}")

        return RaisesOnWrites, RaisesOnTicks


def test_a_failing_detector_loses_its_record_not_the_run() -> None:
    """A detector that raises is contained: reported once as an anomaly, counted, the others go on."""
    from ics_monitor.detect.engine import DETECTOR_ERROR, DETECTORS

    raises_on_writes, raises_on_ticks = _Broken.classes()
    engine = DetectionEngine(RULES, detectors=(raises_on_writes, raises_on_ticks, *DETECTORS))
    records = [modbus(6, ts=1000.0 + i, frame=i + 1, unit_id=0, address=i, values=(1,)) for i in range(3)]
    alerts = [alert for record in records for alert in engine.observe(record)] + engine.finish()
    # The shipped detectors still saw the writes to unit 0 (broadcast write).
    assert "ICS-1308" in rule_ids(alerts)
    assert engine.failures == {"raises_on_writes": 3, "raises_on_ticks": 2}
    reports = engine.anomalies
    assert [report.code for report in reports] == [DETECTOR_ERROR, DETECTOR_ERROR]
    first = reports[0]
    assert first.frame == 1 and first.ts == 1000.0 and first.severity == "high"
    assert first.src_ip == CLIENT and first.dst_ip == SERVER
    assert "raises_on_writes: KeyError" in first.detail and "modbus record" in first.detail
    assert "raises_on_ticks: ValueError: tick at 1001.0" in reports[1].detail


def test_a_failing_detector_raises_in_strict_mode() -> None:
    raises_on_writes, _ = _Broken.classes()
    engine = DetectionEngine(RULES, detectors=(raises_on_writes,), strict=True)
    engine.observe(modbus(3))
    with pytest.raises(KeyError):
        engine.observe(modbus(6, address=1, values=(1,)))


def test_a_write_from_a_host_that_never_wrote_to_the_device() -> None:
    """ICS-5010: the learned writers of a device (here CLIENT: Modbus writes, a DNP3 operate) are
    quiet; a new host operating the point the master operates, with the master's link address,
    is reported with the device's answer; a host that only read is named as one; once per
    client, server and protocol."""
    reader = "10.0.0.7"
    learner = BaselineLearner()
    learner.observe(modbus(6, ts=1000.0, address=20, values=(100,)))
    learner.observe(dnp3(5, ts=1001.0, objects=({"group": 12, "points": [{"index": 3}]},)))
    learner.observe(modbus(3, ts=1002.0, address=0, quantity=10, client=reader, flow_id="f-reader"))
    baseline = learner.baseline()
    operate = ({"group": 12, "points": [{"index": 3}]},)
    assert [
        a for a in run([dnp3(5, ts=2000.0, objects=operate)], baseline=baseline) if a.rule_id == "ICS-5010"
    ] == []
    rogue = "10.0.0.66"
    answered = [
        dnp3(5, ts=2000.0, frame=7, objects=operate, client=rogue, flow_id="f-rogue"),
        dataclasses.replace(
            dnp3(129, ts=2000.1, frame=8, request=False, objects=operate, client=rogue, flow_id="f-rogue"),
            request_frame=7,
        ),
        dnp3(5, ts=2001.0, frame=9, objects=operate, client=rogue, flow_id="f-rogue"),
    ]
    [alert] = [a for a in run(answered, baseline=baseline) if a.rule_id == "ICS-5010"][-1:]
    assert alert.src_ip == rogue and alert.dst_ip == SERVER and alert.count == 2
    assert alert.evidence["function"] == "F5 (5), g12 index 3"
    assert alert.evidence["writers_learned"] == [CLIENT] and alert.evidence["client_known"] is False
    assert alert.evidence["outcome"]["result"] == "accepted"
    assert "a host that never talked to it while learning" in alert.explanation
    write = modbus(
        16, ts=2002.0, address=20, quantity=2, values=(100, 101), client=reader, flow_id="f-reader"
    )
    [alert] = [a for a in run([write], baseline=baseline) if a.rule_id == "ICS-5010"]
    assert alert.evidence["client_known"] is True and alert.evidence["function"].endswith("address 20..21")
    assert "a host that only read from it while learning" in alert.explanation


def test_ipv6_neighbour_discovery_is_no_conversation() -> None:
    """A unicast neighbour solicitation and its advertisement (the ARP of IPv6) is no new
    conversation; an echo request between the same hosts is one."""
    discovery = flow(
        src_ip="fe80::1",
        dst_ip="fd83::66",
        dst_port=0,
        transport="ipv6-icmp",
        state=None,
        payload=24,
        icmp_types=((135,), (136,)),
    )
    assert [a for a in run([discovery], baseline=BASELINE) if a.rule_id == "ICS-5002"] == []
    echo = dataclasses.replace(discovery, icmp_types_to_server=(128,), icmp_types_to_client=(129,))
    assert [a.rule_id for a in run([echo], baseline=BASELINE) if a.rule_id == "ICS-5002"] == ["ICS-5002"]


def test_a_scan_s_open_ports_are_not_new_conversations_each() -> None:
    """A connect scan of 12 ports from a new host: the open ones answer SYN-ACK before the reset.
    One ICS-3006 for the scan; ICS-5002 only for the knocks before it was raised (5 targets)."""
    knocks = [
        dataclasses.replace(
            flow(
                src_ip="10.0.0.66",
                dst_port=port,
                state="reset",
                payload=0,
                ts=3000.0 + i,
                packets_to_server=3,
            ),
            tcp_flags_to_client=("SYN", "ACK"),
        )
        for i, port in enumerate((502, 102, 20000, 44818, 4840, 80, 443, 22, 23, 21, 8080, 1911))
    ]
    alerts = run(knocks, baseline=BASELINE)
    assert len({a.alert_id for a in alerts if a.rule_id == "ICS-3006"}) == 1
    assert len({a.alert_id for a in alerts if a.rule_id == "ICS-5002"}) == 4


def test_a_conversation_opened_by_a_response_says_so() -> None:
    """A DNP3 unsolicited response from a host the master never talked to (forged over UDP, say):
    the new conversation is named master -> outstation, as every conversation, and says that its
    first record was a response nothing asked for."""
    forged = dataclasses.replace(
        dnp3(130, request=False, ts=2000.0, frame=3, server="10.0.0.66", flow_id="f-forged"), src_port=38818
    )
    [alert] = [a for a in run([forged], baseline=BASELINE) if a.rule_id == "ICS-5002"]
    assert (alert.src_ip, alert.dst_ip, alert.dst_port) == (CLIENT, "10.0.0.66", 38818)
    assert (
        "(its first record: a response 10.0.0.66 sent from port 38818, with no request seen)"
        in alert.explanation
    )
    [polled] = [
        a
        for a in run([dnp3(1, server="10.0.0.66", flow_id="f-poll")], baseline=BASELINE)
        if a.rule_id == "ICS-5002"
    ]
    assert "no request seen" not in polled.explanation


def test_out_of_range_writes_to_many_points_are_capped_per_conversation() -> None:
    """A tool writing 9999 to 100 registers read with 50: one ICS-5006 names them (16 with their
    values, all 100 counted), updated as it doubles, as the new-target alert is, not per register.
    Unthrottled (every firing an alert), at most MAX_POINT_ALERTS points get one of their own."""
    from ics_monitor.detect.deviation import MAX_POINT_ALERTS, MAX_POINTS_LISTED

    learner = BaselineLearner()
    learner.observe(modbus(3, ts=1000.0, frame=1, address=0, quantity=100))
    learner.observe(modbus(3, request=False, ts=1000.1, frame=2, address=0, quantity=100, values=(50,) * 100))
    baseline = learner.baseline()
    writes = [
        modbus(6, ts=2000.0 + a / 100, frame=10 + a, address=a, values=(9999,), client="10.0.0.66")
        for a in range(100)
    ]
    alerts = run(writes, baseline=baseline)
    written = [a for a in alerts if a.rule_id == "ICS-5006"]
    assert len({a.alert_id for a in written}) == 1 and len(written) <= 10
    assert written[-1].evidence["distinct_points"] == 100
    assert [p["point"] for p in written[-1].evidence["points"]] == [
        f"hr:1:{a}" for a in range(MAX_POINTS_LISTED)
    ]
    assert f"; and {100 - MAX_POINTS_LISTED} more" in written[-1].explanation
    each = run(writes, baseline=baseline, rules=_unthrottled(RULES, "ICS-5006"))
    assert len({a.alert_id for a in each if a.rule_id == "ICS-5006"}) == MAX_POINT_ALERTS
    targets = [a for a in alerts if a.rule_id == "ICS-5005"]
    # Within a second: at 1, 2, 4 ... 64 new targets, then the end (or the next clock tick, at
    # most one update a second) says the whole 100.
    assert len(targets) <= 10 and targets[-1].evidence["distinct_targets"] == 100


def test_reads_of_addresses_never_read_are_one_alert_per_scope_that_grows() -> None:
    """ICS-5011: a known client reading what it never read while learning (Modbus per unit and
    table, DNP3 per READ group and points, S7 per area): one alert per scope, naming the runs."""
    assert _ids([modbus(3, address=0, quantity=10), modbus(3, address=2, quantity=5)]) == []
    beyond = [
        modbus(3, address=30, quantity=20, frame=1),  # HMI mapping more registers
        modbus(3, address=50, quantity=10, frame=2),
        modbus(3, address=5, quantity=10, frame=3),  # 10-14 never read
        modbus(4, address=0, quantity=8, frame=4),  # input registers: another table
        modbus(3, address=0, quantity=10, unit_id=2, frame=5),  # another unit
    ]
    alerts = {a.alert_id: a for a in run(beyond, baseline=BASELINE) if a.rule_id == "ICS-5011"}
    named = sorted(a.evidence["targets"][0] for a in alerts.values())
    assert named == [
        "unit 1 holding_registers 10-14",
        "unit 1 input_registers 0-7",
        "unit 2 holding_registers 0-9",
    ]
    holding = next(a for a in alerts.values() if a.evidence["distinct_targets"] == 3)
    # Runs merged (30-49, 50-59), the span nobody read between them left out.
    assert holding.evidence["targets"] == ["unit 1 holding_registers 10-14", "unit 1 holding_registers 30-59"]
    assert "(3 reads)" in holding.explanation and holding.severity == 1
    # A write is ICS-5005's, an answer no read; a new client is ICS-5002's.
    assert "ICS-5011" not in _ids([modbus(6, address=21, values=(105,))])
    assert _ids([modbus(3, request=False, address=40, quantity=2, values=(1, 2))]) == []
    assert "ICS-5011" not in _ids([modbus(3, client="10.0.0.66", address=40, quantity=2)])
    # Disabled in the rules: silent.
    rules = RuleSet(dataclasses.replace(r, enabled=False) if r.rule_id == "ICS-5011" else r for r in RULES)
    assert "ICS-5011" not in rule_ids(run(beyond, baseline=BASELINE, rules=rules))


def test_dnp3_and_s7_reads_never_read() -> None:
    learner = BaselineLearner()
    class_poll = ({"group": 60, "variation": 2}, {"group": 60, "variation": 3})
    static = ({"group": 30, "variation": 1, "start": 0, "stop": 9, "prefix_code": 0},)
    db1 = {"area": 0x84, "area_name": "DATA_BLOCK", "db": 1, "address": 0, "length": 24, "transport_size": 2}
    for i in range(5):
        learner.observe(dnp3(1, ts=1000.0 + i, frame=2 * i + 1, objects=class_poll))
        learner.observe(dnp3(1, ts=1000.5 + i, frame=2 * i + 2, objects=static))
        learner.observe(s7(1, function_code=0x04, ts=1000.0 + i, frame=20 + i, items=(db1,)))
    baseline = learner.baseline()

    def fired(*records: Any) -> list[str]:
        return [
            a.evidence["targets"][0] for a in run(list(records), baseline=baseline) if a.rule_id == "ICS-5011"
        ]

    assert (
        fired(dnp3(1, objects=class_poll), dnp3(1, objects=static), s7(1, function_code=0x04, items=(db1,)))
        == []
    )
    # Analog inputs 10-19 (never read), a new group, counters from another class poll.
    assert fired(
        dnp3(1, objects=({"group": 30, "variation": 1, "start": 5, "stop": 19, "prefix_code": 0},))
    ) == ["function 1 g30 10-19"]
    assert fired(dnp3(1, objects=({"group": 20, "variation": 1},))) == ["function 1 g20"]
    flags = {"area": 0x83, "area_name": "FLAGS", "db": 0, "address": 0, "length": 16, "transport_size": 2}
    db2 = {**db1, "db": 2, "length": 4}
    assert sorted(fired(s7(1, function_code=0x04, items=(flags, db2)))) == ["DB2 0-3", "FLAGS 0-15"]
    # A write of a new DB is ICS-5005's, not a read.
    assert fired(s7(1, function_code=0x05, items=(db2,), data_items=({"values": [0, 0, 0, 0]},))) == []


def test_foreign_protocols_on_an_ot_port_are_the_misuse_alert_not_new_conversations() -> None:
    """nmap -sV sends HTTP, TLS, RDP and SMB probes to each OT port: ICS-3007 names them all for the
    client and port; they are not a new conversation each (ICS-5002).  What the client then speaks
    in the port's own protocol is."""
    stranger = "10.0.0.66"
    probes = [
        flow(src_ip=stranger, dst_port=502, service="modbus", app_protocol=app, ts=2000.0 + i)
        for i, app in enumerate(("http", "tls", "rdp"))
    ]
    ids = _ids(probes)
    assert ids.count("ICS-3007") == 1 and "ICS-5002" not in ids
    # Without the misuse rule the probes are new conversations, as before.
    rules = RULES.configured("ICS-3007", enabled=False)
    assert rule_ids(run(probes, baseline=BASELINE, rules=rules)).count("ICS-5002") == 3
    modbus_after = modbus(3, client=stranger, address=0, quantity=10, ts=2010.0, frame=9)
    assert "ICS-5002" in _ids([*probes, modbus_after])


# -- ICS-5012: a master stops polling ------------------------------------------------------------------


def _polls(start: float, count: int, first_frame: int = 1) -> list[Any]:
    """The learned poll of BASELINE (FC 3, holding 0-9, every second) from ``start``."""
    return [
        modbus(3, ts=start + i, frame=first_frame + i, address=0, quantity=10, flow_id="f-poll")
        for i in range(count)
    ]


def _others(start: float, seconds: int, first_frame: int) -> list[Any]:
    """Another master's traffic, one request a second: the capture clock runs on."""
    return [
        modbus(
            3,
            ts=start + i,
            frame=first_frame + i,
            address=0,
            quantity=1,
            client="10.0.0.77",
            flow_id="f-other",
        )
        for i in range(seconds)
    ]


def _long_poll() -> Baseline:
    """The HMI polls FC 3 holding 0-9 every second for 150 s while learning, each poll answered."""
    learner = BaselineLearner()
    for i in range(150):
        learner.observe(modbus(3, ts=1000.0 + i, frame=2 * i + 1, address=0, quantity=10, flow_id="f-poll"))
        learner.observe(
            modbus(
                3,
                request=False,
                ts=1000.1 + i,
                frame=2 * i + 2,
                address=0,
                quantity=10,
                values=(50,) * 10,
                flow_id="f-poll",
            )
        )
    return learner.baseline()


LONG_POLL = _long_poll()


def _stops(records: list[Any], baseline: Baseline = LONG_POLL) -> list[Any]:
    quiet = RULES.configured("ICS-4003", enabled=False)  # request-only fixtures look like silence
    alerts = run(sorted(records, key=lambda r: r.ts), baseline=baseline, rules=quiet)
    return [a for a in alerts if a.rule_id == "ICS-5012"]


def test_a_master_that_stops_polling_is_reported_once_the_capture_goes_on() -> None:
    cycles = float(RULES.param("ICS-5012", "cycles"))
    minimum = float(RULES.param("ICS-5012", "min_seconds"))
    threshold = max(cycles * 1.0, minimum)  # BASELINE's poll: every 1 s
    records = _polls(2000.0, 10) + _others(2000.0, 60, 100)
    [alert] = _stops(records)
    assert (alert.src_ip, alert.dst_ip, alert.dst_port, alert.protocol) == (CLIENT, SERVER, 502, "modbus")
    assert alert.frames == (10,)  # the last poll
    assert alert.flow_id == "f-poll"
    assert alert.evidence["last_seen_ts"] == 2009.0
    assert alert.evidence["learned_cycle"] == 1.0
    assert alert.evidence["threshold_seconds"] == threshold
    assert alert.evidence["learned_silence"] == 0.9  # answered 0.1 s after each poll
    assert threshold < alert.evidence["silent_seconds"] <= threshold + 5  # looked over every 5 s
    assert alert.ts == pytest.approx(2009.0 + alert.evidence["silent_seconds"])
    assert f"Nothing passed between {CLIENT} and {SERVER} (modbus, tcp/502)" in alert.explanation


def test_a_master_that_polls_on_or_stops_briefly_or_at_the_end_is_not_reported() -> None:
    # Polls on while the other master talks.
    assert _stops(_polls(2000.0, 60) + _others(2000.0, 60, 100)) == []
    # A pause shorter than the threshold, then the poll resumes.
    assert _stops(_polls(2000.0, 10) + _polls(2025.0, 30, 50) + _others(2000.0, 60, 100)) == []
    # The capture ends soon after the last poll: nothing says the silence lasted.
    assert _stops(_polls(2000.0, 10) + _others(2000.0, 20, 100)) == []
    # A master never seen polling in this run (the capture began after it stopped, or it is off).
    assert _stops(_others(2000.0, 120, 100)) == []


def test_a_master_that_polls_other_registers_has_not_stopped() -> None:
    """An HMI that changes screens stops one poll and starts another: still polling the server."""
    other_screen = [
        modbus(3, ts=2010.0 + i, frame=50 + i, address=100, quantity=5, flow_id="f-poll") for i in range(50)
    ]
    assert _stops(_polls(2000.0, 10) + other_screen + _others(2000.0, 60, 100)) == []


def test_a_gap_between_capture_files_is_not_silence() -> None:
    """Two files an hour apart: the hour was not watched.  Silence counts again after it."""
    first = _polls(2000.0, 10) + _others(2000.0, 15, 100)
    assert _stops(first + _others(5600.0, 20, 200)) == []
    # The poll still absent long after the gap: a stop, measured without the hour.
    [alert] = _stops(first + _others(5600.0, 40, 200))
    assert alert.evidence["silent_seconds"] < 60


def test_a_device_that_pushes_data_keeps_the_conversation_alive() -> None:
    """No request, but the server sends (S7 cyclic data, DNP3 unsolicited): the view is there."""
    pushed = [
        modbus(
            3,
            request=False,
            ts=2010.0 + i,
            frame=50 + i,
            address=0,
            quantity=10,
            values=(50,) * 10,
            flow_id="f-poll",
        )
        for i in range(50)
    ]
    assert _stops(_polls(2000.0, 10) + pushed + _others(2000.0, 60, 100)) == []


def test_a_master_learned_reading_in_bursts_is_not_stopped_between_bursts() -> None:
    """Polled every second, but in bursts of 50 s every 150 s while learning: 80 s of silence is its way."""
    records = [
        modbus(3, ts=1000.0 + 150 * burst + i, frame=50 * burst + i + 1, address=0, quantity=10)
        for burst in range(10)
        for i in range(50)
    ]
    # Another master talks all along: the gaps between bursts are watched time.
    records += [
        modbus(
            3,
            ts=1000.5 + second,
            frame=10_000 + second,
            address=0,
            quantity=1,
            client="10.0.0.77",
            flow_id="f-77",
        )
        for second in range(1500)
    ]
    learner = BaselineLearner()
    for record in sorted(records, key=lambda r: r.ts):
        learner.observe(record)
    bursty = learner.baseline()
    conversation = bursty.conversations[(CLIENT, SERVER, "tcp", 502, "modbus")]
    assert conversation.silence == 101.0
    assert _stops(_polls(2000.0, 10) + _others(2000.0, 80, 100), baseline=bursty) == []
    # Silent for more than twice the longest learned silence: stopped.
    [alert] = _stops(_polls(2000.0, 10) + _others(2000.0, 220, 100), baseline=bursty)
    assert alert.evidence["threshold_seconds"] == 202.0


def test_a_baseline_without_learned_silences_does_not_watch_for_stops() -> None:
    """A baseline learned before ``longest_silence`` existed: no silence to compare with, no alert."""
    data = LONG_POLL.to_dict()
    for conversation in data["conversations"].values():
        assert conversation.pop("longest_silence", None) in (None, 0.9)
    older = Baseline.from_dict(data)
    assert _stops(_polls(2000.0, 10) + _others(2000.0, 60, 100), baseline=older) == []
    # The same file with the field learned.
    assert (
        len(
            _stops(
                _polls(2000.0, 10) + _others(2000.0, 60, 100),
                baseline=Baseline.from_dict(LONG_POLL.to_dict()),
            )
        )
        == 1
    )


def test_values_read_out_of_range_are_one_alert_per_device_that_names_every_point() -> None:
    """A process excursion: one response takes two registers out of their bands, later ones a
    third, then the same again.  One ICS-5007 names the three with the first value seen at each
    (an update as the list grows), counts one occurrence per response, not per value, and cites
    each response's frame once."""

    def read(frame: int, values: tuple[int, ...]) -> Any:
        return modbus(3, request=False, ts=2000.0 + frame, frame=frame, address=0, quantity=10, values=values)

    learned = (50,) * 10
    records = [
        read(10, learned),
        read(11, (90, 95) + learned[2:]),  # hr:1:0 and hr:1:1 above
        read(12, (90, 95) + learned[2:]),  # the same again
        read(13, (90, 95, 5) + learned[3:]),  # and hr:1:2 below
        read(14, (91, 96, 5) + learned[3:]),
    ]
    alerts = [a for a in run(records, baseline=BASELINE) if a.rule_id == "ICS-5007"]
    assert len({a.alert_id for a in alerts}) == 1
    final = alerts[-1]
    assert [(p["point"], p["value"], p["side"]) for p in final.evidence["points"]] == [
        ("hr:1:0", 90, "above"),
        ("hr:1:1", 95, "above"),
        ("hr:1:2", 5, "below"),
    ]
    assert final.evidence["distinct_points"] == 3
    assert final.evidence["point"] == "hr:1:0"  # led by the first
    assert final.count == 4 and final.frames == (11, 12, 13, 14)
    assert final.explanation.startswith(
        f"{SERVER} reported values outside their learned ranges to {CLIENT}: hr:1:0 = 90 (learned: 50 to 50"
    )
    assert "; hr:1:2 = 5 (learned: 50 to 50" in final.explanation
    # Said as the list grew: each copy names at least what the one before did.
    named = [a.evidence["distinct_points"] for a in alerts]
    assert named == sorted(named) and named[:3] == [1, 2, 3]


def test_two_new_clients_writing_out_of_range_are_two_alerts() -> None:
    """New clients are judged by the server's profile (client ``*``): each still gets its own alert."""
    writes = [
        modbus(6, client=client, address=20, values=(9999,), frame=frame, flow_id=f"f-{client}")
        for frame, client in enumerate(("10.0.0.66", "10.0.0.67"), 1)
    ]
    alerts = {a.alert_id: a for a in run(writes, baseline=BASELINE) if a.rule_id == "ICS-5006"}
    assert sorted((a.src_ip, a.key) for a in alerts.values()) == [
        ("10.0.0.66", f"10.0.0.66>{SERVER}:modbus:tcp/502"),
        ("10.0.0.67", f"10.0.0.67>{SERVER}:modbus:tcp/502"),
    ]


def _crob(index: int, code: int, on_time: int = 1000, count: int = 1) -> dict[str, Any]:
    return {
        "group": 12,
        "variation": 1,
        "points": [
            {"index": index, "value": code, "code": code, "count": count, "on_time": on_time, "off_time": 0}
        ],
    }


def _crob_baseline() -> Baseline:
    """A master that pulses point 3 closed (0x41, 1 s) and latches point 4 on, SELECT then OPERATE."""
    learner = BaselineLearner()
    frame = 1
    for i in range(5):
        for function in (3, 4):
            for index, code in ((3, 0x41), (4, 0x03)):
                learner.observe(dnp3(function, ts=1000.0 + i, frame=frame, objects=(_crob(index, code),)))
                frame += 1
    return learner.baseline()


def test_crob_operations_are_learned_per_point_and_kept_in_the_file() -> None:
    baseline = _crob_baseline()
    [conversation] = baseline.conversations.values()
    # Per outstation (10, the records' default) and index.
    assert conversation.crob == {"10:3": {0x41}, "10:4": {0x03}}
    [entry] = baseline.to_dict()["conversations"].values()
    assert entry["dnp3_crob_operations"] == {"10:3": ["0x41 PULSE_ON CLOSE"], "10:4": ["0x03 LATCH_ON NUL"]}
    again = Baseline.from_dict(baseline.to_dict())
    assert again.conversations[conversation.key].crob == {"10:3": {0x41}, "10:4": {0x03}}
    data = baseline.to_dict()
    [entry] = data["conversations"].values()
    entry["dnp3_crob_operations"]["10:3"].append("trip")
    with pytest.raises(ValueError, match="dnp3_crob_operations entries must be control codes"):
        Baseline.from_dict(data)
    entry["dnp3_crob_operations"]["10:3"] = "65"  # a hand edit that forgot the list
    with pytest.raises(ValueError, match="dnp3_crob_operations 10:3 must be a list of control codes"):
        Baseline.from_dict(data)
    entry["dnp3_crob_operations"] = {"point 3": ["0x41"]}
    with pytest.raises(ValueError, match="dnp3_crob_operations keys must be outstation:index"):
        Baseline.from_dict(data)
    # A file from before points were kept per outstation: ``3`` is index 3 of any outstation.
    entry["dnp3_crob_operations"] = {"3": ["0x41"], "*:5": ["0x03"], "12:4": ["0x81"]}
    assert Baseline.from_dict(data).conversations[conversation.key].crob == {
        "*:3": {0x41},
        "*:5": {0x03},
        "12:4": {0x81},
    }


def test_a_new_control_operation_on_a_known_point_is_reported() -> None:
    """TRIP (0x81) to a point only ever pulsed closed: ICS-5013; the learned operation, a point
    never operated (ICS-5005's) and an unknown client judged by the server's profile."""
    baseline = _crob_baseline()
    trip = dnp3(5, ts=2000.0, frame=100, objects=(_crob(3, 0x81),))
    [alert] = [a for a in run([trip], baseline=baseline) if a.rule_id == "ICS-5013"]
    assert alert.evidence["point"] == "g12:10:3" and alert.evidence["operation"] == "0x81 PULSE_ON TRIP"
    assert alert.evidence["learned"] == ["0x41 PULSE_ON CLOSE"]
    assert "sent 0x81 PULSE_ON TRIP to control point g12:10:3" in alert.explanation
    same = dnp3(5, ts=2000.0, frame=100, objects=(_crob(3, 0x41),))
    assert [a for a in run([same], baseline=baseline) if a.rule_id in ("ICS-5013", "ICS-5006")] == []
    other = dnp3(5, ts=2000.0, frame=100, objects=(_crob(9, 0x81),))
    assert [a.rule_id for a in run([other], baseline=baseline) if a.rule_id in ("ICS-5013", "ICS-5005")] == [
        "ICS-5005"
    ]
    rogue = dnp3(5, ts=2000.0, frame=100, client="10.0.0.66", objects=(_crob(3, 0x81),))
    [judged] = [a for a in run([rogue], baseline=baseline) if a.rule_id == "ICS-5013"]
    assert judged.src_ip == "10.0.0.66" and judged.key.startswith("10.0.0.66>")


def test_control_operations_are_judged_per_outstation() -> None:
    """One IP fronting outstations 10 and 11: point 3 is pulsed closed at 10 and tripped at 11
    while learning.  TRIP to 11's point 3 is what was learned there; TRIP to 10's is new (one set of
    operations per index for the IP would have passed it).  A point learned without its outstation
    (an older baseline's, ``*:3``) judges every outstation whose own point 3 was not learned."""
    learner = BaselineLearner()
    for i in range(5):
        for outstation, code in ((10, 0x41), (11, 0x81)):
            learner.observe(
                dnp3(5, ts=1000.0 + i, frame=2 * i + outstation, dst=outstation, objects=(_crob(3, code),))
            )
    baseline = learner.baseline()
    [conversation] = baseline.conversations.values()
    assert conversation.crob == {"10:3": {0x41}, "11:3": {0x81}}

    def operations(outstation: int, code: int, judged_by: Baseline) -> list[str]:
        operate = dnp3(5, ts=2000.0, frame=100, dst=outstation, objects=(_crob(3, code),))
        return [a.evidence["point"] for a in run([operate], baseline=judged_by) if a.rule_id == "ICS-5013"]

    assert operations(11, 0x81, baseline) == []
    assert operations(10, 0x81, baseline) == ["g12:10:3"]
    data = baseline.to_dict()
    [entry] = data["conversations"].values()
    entry["dnp3_crob_operations"] = {"3": ["0x41"], "11:3": ["0x81"]}
    older = Baseline.from_dict(data)
    assert operations(12, 0x81, older) == ["g12:12:3"]
    assert operations(12, 0x41, older) == operations(11, 0x81, older) == []


def test_a_point_operated_or_written_only_at_another_outstation_is_judged_as_the_ips() -> None:
    """Learned: CLOSE pulses to outstation 10's point 3 and 11's point 4, and the analog output 1
    written 100-110 at outstation 10 (2 at 11).  A 60 s TRIP to 11's point 3 and 30000 written to
    11's output 1 are judged by the points as outstation 10 had them (ICS-5013, ICS-5006), and
    each is a write target never written at 11 (ICS-5005, by the points learned per outstation)."""
    learner = BaselineLearner()
    frame = 1
    for i in range(5):
        for outstation, index in ((10, 3), (11, 4)):
            learner.observe(
                dnp3(5, ts=1000.0 + i, frame=frame, dst=outstation, objects=(_crob(index, 0x41),))
            )
            frame += 1
        for outstation, index in ((10, 1), (11, 2)):
            analog = {"group": 41, "variation": 2, "points": [{"index": index, "value": 100 + 2 * i}]}
            learner.observe(dnp3(5, ts=1000.0 + i, frame=frame, dst=outstation, objects=(analog,)))
            frame += 1
    baseline = learner.baseline()
    rules = _unthrottled(RULES, "ICS-5013", "ICS-5006")
    trip = dnp3(5, ts=2000.0, frame=100, dst=11, objects=(_crob(3, 0x81, on_time=60_000),))
    alerts = run([trip], baseline=baseline, rules=rules)
    fired = sorted((a.rule_id, a.evidence["point"]) for a in alerts if "point" in a.evidence)
    assert ("ICS-5013", "g12:11:3") in fired and ("ICS-5006", "g12:11:3:on_time") in fired
    [new] = [a.evidence["targets"] for a in alerts if a.rule_id == "ICS-5005"]
    assert new == ["function 5 g12 at outstation 11 3"]
    analog = {"group": 41, "variation": 2, "points": [{"index": 1, "value": 30_000}]}
    write = dnp3(5, ts=2000.0, frame=101, dst=11, objects=(analog,))
    alerts = run([write], baseline=baseline, rules=rules)
    [alert] = [a for a in alerts if a.rule_id == "ICS-5006"]
    assert alert.evidence["point"] == "g41:11:1" and alert.evidence["learned_max"] == 108
    [new] = [a.evidence["targets"] for a in alerts if a.rule_id == "ICS-5005"]
    assert new == ["function 5 g41 at outstation 11 1"]
    within = dnp3(
        5, ts=2000.0, frame=102, dst=11, objects=({**analog, "points": [{"index": 1, "value": 105}]},)
    )
    assert [a for a in run([within], baseline=baseline, rules=rules) if a.rule_id == "ICS-5006"] == []


def test_a_crob_pulse_far_longer_than_learned_is_a_value_out_of_range() -> None:
    baseline = _crob_baseline()
    long_pulse = dnp3(5, ts=2000.0, frame=100, objects=(_crob(3, 0x41, on_time=60_000),))
    [alert] = [a for a in run([long_pulse], baseline=baseline) if a.rule_id == "ICS-5006"]
    assert alert.evidence["point"] == "g12:10:3:on_time" and alert.evidence["value"] == 60_000


def test_a_client_seen_polling_only_briefly_while_learning_is_not_watched_for_stops() -> None:
    """Twenty quick reads in a fifth of a second while learning (a tool, a one-off session) are a
    rhythm but not a master that keeps polling: its silence since is what it always does."""
    learner = BaselineLearner()
    for i in range(20):
        learner.observe(modbus(3, ts=1000.0 + i / 100, frame=i + 1, address=0, quantity=10))
    brief = learner.baseline()
    [conversation] = brief.conversations.values()
    assert conversation.polling and conversation.silence < 0.1
    assert _stops(_polls(2000.0, 10) + _others(2000.0, 120, 100), baseline=brief) == []


def test_a_worker_passes_no_response_with_a_value_out_of_range_past_the_per_point_cap() -> None:
    """A worker's read check fires each value on its own (unthrottled) and caps alerts at
    MAX_POINT_ALERTS points; a value out of range at a point past the cap made no alert there,
    yet the response must not pass: the analysis counts it in its grouped alert."""
    from ics_monitor.detect.deviation import MAX_POINT_ALERTS, WorkerCheck

    learner = BaselineLearner()
    learner.observe(modbus(3, ts=1000.0, frame=1, address=0, quantity=100))
    learner.observe(modbus(3, request=False, ts=1000.1, frame=2, address=0, quantity=100, values=(50,) * 100))
    check = WorkerCheck(RULES, learner.baseline()).passes

    def read(frame: int, values: tuple[int, ...]) -> Any:
        return modbus(
            3, request=False, ts=2000.0 + frame, frame=frame, address=0, quantity=100, values=values
        )

    assert check(read(10, (50,) * 100))
    assert not check(read(11, (999,) * 100))  # every point: the first 64 get an alert each
    past_cap = MAX_POINT_ALERTS + 10
    assert not check(read(12, (50,) * past_cap + (999,) + (50,) * (99 - past_cap)))
    assert check(read(13, (50,) * 100))


def test_silence_learned_across_a_capture_gap_is_not_counted() -> None:
    """Two learning files an hour apart: the hour nobody watched is no silence of the HMI's, so a
    stop is still reported (with the last poll's real time) after a gap in the replayed capture."""
    learner = BaselineLearner()
    for part, start in enumerate((1000.0, 5000.0)):
        for i in range(150):
            ts = start + i
            frame = 1000 * part + 2 * i + 1
            learner.observe(modbus(3, ts=ts, frame=frame, address=0, quantity=10, flow_id="f-poll"))
            learner.observe(
                modbus(
                    3,
                    request=False,
                    ts=ts + 0.1,
                    frame=frame + 1,
                    address=0,
                    quantity=10,
                    values=(50,) * 10,
                    flow_id="f-poll",
                )
            )
    two_files = learner.baseline()
    assert two_files.conversations[(CLIENT, SERVER, "tcp", 502, "modbus")].silence == pytest.approx(0.9)
    first = _polls(2000.0, 10) + _others(2000.0, 15, 100)
    [alert] = _stops(first + _others(5600.0, 40, 200), baseline=two_files)
    assert alert.evidence["last_seen_ts"] == 2009.0  # the last poll, not moved by the gap
    assert alert.evidence["silent_seconds"] < 60


def test_out_of_range_alerts_of_two_ports_and_of_two_windows_stay_apart() -> None:
    """One client writing out of range to a server on two ports: two alerts.  Past the throttling
    window a new alert names its own points, led by the value that raised it."""
    window = RULES.get("ICS-5006").throttle
    writes = [
        modbus(6, client="10.0.0.66", address=20, values=(9999,), frame=1, ts=2000.0, flow_id="f-a"),
        dataclasses.replace(
            modbus(6, client="10.0.0.66", address=20, values=(7777,), frame=2, ts=2001.0, flow_id="f-b"),
            dst_port=503,
        ),
        modbus(
            6, client="10.0.0.66", address=20, values=(5555,), frame=3, ts=2002.0 + window + 1, flow_id="f-a"
        ),
    ]
    alerts = {a.alert_id: a for a in run(writes, baseline=BASELINE) if a.rule_id == "ICS-5006"}
    seen = sorted(
        (a.dst_port, a.frames[0], [p["value"] for p in a.evidence["points"]]) for a in alerts.values()
    )
    assert seen == [(502, 1, [9999]), (502, 3, [5555]), (503, 2, [7777])]
