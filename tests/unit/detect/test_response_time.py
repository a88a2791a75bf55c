"""ICS-5014: answers much slower than learned, per conversation and response key."""

from __future__ import annotations

import dataclasses
from typing import Any

from ics_monitor.detect.rules import RuleSet
from ics_monitor.inventory.baseline import Baseline, BaselineLearner
from tests.unit.detect.helpers import RULES, run
from tests.unit.detect.records import CLIENT, SERVER, dnp3, modbus, s7, s7plus, userdata

RULE = "ICS-5014"


def _polls(
    start: float,
    count: int,
    delay: float | list[float],
    *,
    frame: int = 1,
    function: int = 3,
    unit: int = 1,
    exception: int | None = None,
    flow_id: str = "f-modbus",
) -> list[Any]:
    """``count`` poll cycles one second apart, request i answered ``delay`` (or ``delay[i]``) s later."""
    records: list[Any] = []
    for i in range(count):
        ts = start + i
        waited = delay if isinstance(delay, float) else delay[i]
        request = frame + 2 * i
        records.append(
            modbus(function, ts=ts, frame=request, unit_id=unit, address=0, quantity=4, flow_id=flow_id)
        )
        records.append(
            modbus(
                function | (0x80 if exception is not None else 0),
                request=False,
                ts=ts + waited,
                frame=request + 1,
                unit_id=unit,
                address=0,
                quantity=4,
                values=None if exception is not None else (1, 2, 3, 4),
                exception_code=exception,
                request_frame=request,
                flow_id=flow_id,
            )
        )
    return records


def _learn(records: list[Any]) -> Baseline:
    learner = BaselineLearner()
    for record in records:
        learner.observe(record)
    return learner.baseline()


# 96 answers of 1 to 4 ms while learning.
BASELINE = _learn(_polls(1000.0, 96, [0.001 + 0.001 * (i % 4) for i in range(96)]))
UNTHROTTLED = RuleSet(dataclasses.replace(r, throttle=0) if r.rule_id == RULE else r for r in RULES)


def _fired(records: list[Any], rules: RuleSet = UNTHROTTLED) -> list[Any]:
    return [alert for alert in run(records, baseline=BASELINE, rules=rules) if alert.rule_id == RULE]


def test_learned_band_is_in_the_baseline() -> None:
    conversation = next(iter(BASELINE.conversations.values()))
    stats = conversation.responses["unit 1 function 3"]
    assert stats.count == 96
    assert stats.window is not None and 0.001 <= stats.window[0] <= stats.window[1] <= 0.004
    assert "response_time" in conversation.to_dict()


def test_answers_held_back_fire_once_per_episode_naming_what_slowed() -> None:
    records = _polls(2000.0, 4, 0.002, frame=1000) + _polls(2004.0, 10, 0.3, frame=2000)
    alerts = _fired(records)
    assert len(alerts) == 1
    alert = alerts[0]
    # Raised at the fifth slow answer of the last eight: most of them are slow then.
    assert alert.frames == (2008, 2009)  # the fifth slow cycle: its request and answer
    assert alert.src_ip == "10.0.0.5" and alert.dst_ip == "10.0.0.9"  # the client's side
    assert alert.evidence["response_key"] == "unit 1 function 3"
    assert alert.evidence["recent_median_seconds"] == 0.3
    assert alert.evidence["learned_samples"] == 96
    assert "answers 10.0.0.5's unit 1 function 3 in 300.0 ms or more" in alert.explanation


def test_a_second_episode_after_recovery_fires_again() -> None:
    records = (
        _polls(2000.0, 8, 0.3, frame=1000)
        + _polls(2008.0, 8, 0.002, frame=2000)
        + _polls(2016.0, 8, 0.3, frame=3000)
    )
    assert len(_fired(records)) == 2


def test_a_few_slow_answers_are_not_a_trend() -> None:
    # Four of every eight slow: the lower median stays fast.
    records: list[Any] = []
    for i in range(16):
        records += _polls(2000.0 + i, 1, 0.5 if i % 2 else 0.002, frame=1000 + 2 * i)
    assert _fired(records) == []


def test_slower_but_within_min_seconds_is_quiet() -> None:
    # 50 ms: twelve times the learned top, but not min_seconds (0.1 s) above it.
    assert _fired(_polls(2000.0, 16, 0.05, frame=1000)) == []


def test_error_answers_and_unlearned_keys_are_not_timed() -> None:
    # Gateway "target failed to respond" (exception 11) comes after the gateway's own timeout.
    assert _fired(_polls(2000.0, 16, 0.9, frame=1000, exception=11)) == []
    # Another unit (or function) has no learned answer time.
    assert _fired(_polls(2000.0, 16, 0.9, frame=1000, unit=2)) == []
    assert _fired(_polls(2000.0, 16, 0.9, frame=1000, function=4)) == []


def _answer(request: int, ts: float, frame: int, **kwargs: Any) -> Any:
    return modbus(
        3,
        request=False,
        ts=ts,
        frame=frame,
        address=0,
        quantity=4,
        values=(1, 2, 3, 4),
        request_frame=request,
        **kwargs,
    )


def test_queued_requests_are_timed_from_the_answer_before_them() -> None:
    # A burst of 8 pipelined requests, the device taking 30 ms over each: the last answer comes
    # 240 ms after its request, but the device spent 30 ms on it.
    records: list[Any] = []
    for cycle in range(4):
        ts = 2000.0 + cycle
        frames = [1000 + 20 * cycle + i for i in range(8)]
        records += [modbus(3, ts=ts, frame=f, address=0, quantity=4) for f in frames]
        records += [_answer(f, ts + 0.03 * (i + 1), f + 8) for i, f in enumerate(frames)]
    assert _fired(records) == []
    # Another master's request to the same gateway, sent just before, is answered first.
    records = []
    for i in range(16):
        ts = 2000.0 + i
        other: dict[str, Any] = {"flow_id": "f-other", "client": "10.0.0.6"}
        records += [
            modbus(3, ts=ts, frame=1000 + 4 * i, address=0, quantity=4, **other),
            modbus(3, ts=ts + 0.001, frame=1001 + 4 * i, address=0, quantity=4),
            _answer(1000 + 4 * i, ts + 0.4, 1002 + 4 * i, **other),
            _answer(1001 + 4 * i, ts + 0.403, 1003 + 4 * i),
        ]
    assert _fired(records) == []


def test_answers_to_others_in_between_leave_a_held_answer_slow() -> None:
    # A man in the middle holds the HMI's answers 0.3 s; the engineering station, asking after
    # the HMI, is answered at once: its answers say nothing about the HMI's request.
    records: list[Any] = []
    for i in range(8):
        ts = 2000.0 + i
        other: dict[str, Any] = {"flow_id": "f-eng", "client": "10.0.0.7"}
        records += [
            modbus(3, ts=ts, frame=1000 + 4 * i, address=0, quantity=4),
            modbus(3, ts=ts + 0.01, frame=1001 + 4 * i, address=0, quantity=4, **other),
            _answer(1001 + 4 * i, ts + 0.012, 1002 + 4 * i, **other),
            _answer(1000 + 4 * i, ts + 0.3, 1003 + 4 * i),
        ]
    assert len(_fired(records)) == 1


def test_a_delay_past_the_poll_cycle_or_dropped_answers_still_show() -> None:
    # Held 1.2 s while the master polls every second: each answer comes 1.0 s after the one
    # before it, which is what the device's time reads as; still far past the learned band.
    assert len(_fired(_polls(2000.0, 12, 1.2, frame=1000))) == 1
    # One answer in two dropped: the rest are timed all the same.
    records = [
        record
        for record in _polls(2000.0, 24, 0.3, frame=1000)
        if not (record.direction == "response" and record.frame % 4 == 1)
    ]
    assert len(_fired(records)) == 1


def test_too_few_learned_answers_are_neither_saved_nor_judged() -> None:
    few = _learn(_polls(1000.0, 80, 0.002))  # 80 answers: under 11 blocks of 8
    conversation = few.conversation(("10.0.0.5", "10.0.0.9", "tcp", 502, "modbus"))
    assert conversation is not None and conversation.responses["unit 1 function 3"].count == 80
    assert "response_time" not in conversation.to_dict()
    slow = _polls(2000.0, 16, 0.9, frame=1000)
    assert [a for a in run(slow, baseline=few, rules=UNTHROTTLED) if a.rule_id == RULE] == []


def test_dnp3_answers_are_timed_per_outstation() -> None:
    def cycle(ts: float, frame: int, delay: float, outstation: int) -> list[Any]:
        return [
            dnp3(1, ts=ts, frame=frame, dst=outstation, objects=({"group": 60, "variation": 2},)),
            dnp3(
                129,
                request=False,
                ts=ts + delay,
                frame=frame + 1,
                src=outstation,
                dst=1,
                objects=(),
                request_frame=frame,
            ),
            # The master confirms an unsolicited response: a request nobody answers, which
            # leaves the next poll sent alone all the same.
            dnp3(0, ts=ts + delay + 0.1, frame=frame + 2, dst=outstation),
        ]

    learned: list[Any] = []
    for i in range(100):
        learned += cycle(1000.0 + i, 1 + 3 * i, 0.01, 10)
    baseline = _learn(learned)
    conversation = next(iter(baseline.conversations.values()))
    assert set(conversation.responses) == {"outstation 10 function 1"}
    assert conversation.responses["outstation 10 function 1"].count == 100
    slow: list[Any] = []
    for i in range(8):
        slow += cycle(2000.0 + i, 1000 + 3 * i, 0.6, 10)
    alerts = [a for a in run(slow, baseline=baseline, rules=UNTHROTTLED) if a.rule_id == RULE]
    assert [a.evidence["response_key"] for a in alerts] == ["outstation 10 function 1"]


def test_s7_jobs_and_userdata_are_timed_by_function_and_subfunction() -> None:
    def cycle(ts: float, frame: int, delay: float) -> list[Any]:
        return [
            s7(1, function_code=4, ts=ts, frame=frame),
            s7(3, function_code=4, request=False, ts=ts + delay, frame=frame + 1, request_frame=frame),
            s7(7, userdata=userdata(4, 1), ts=ts + 0.5, frame=frame + 2),
            s7(
                7,
                userdata=userdata(4, 1, 2),
                request=False,
                ts=ts + 0.501,
                frame=frame + 3,
                request_frame=frame + 2,
            ),
        ]

    learned: list[Any] = []
    for i in range(100):
        learned += cycle(1000.0 + i, 1 + 4 * i, 0.002)
    baseline = _learn(learned)
    conversation = next(iter(baseline.conversations.values()))
    assert set(conversation.responses) == {"function 4", "userdata 4/1"}
    slow: list[Any] = []
    for i in range(8):
        slow += cycle(2000.0 + i, 1000 + 4 * i, 0.5)
    alerts = [a for a in run(slow, baseline=baseline, rules=UNTHROTTLED) if a.rule_id == RULE]
    assert [a.evidence["response_key"] for a in alerts] == ["function 4"]


def test_s7comm_plus_answers_are_timed_by_function() -> None:
    """An HMI's GetMultiVariables polls of an S7-1500, over S7comm-plus: slow answers fire."""

    def cycle(ts: float, frame: int, delay: float) -> list[Any]:
        return [
            s7plus(function_code=0x054C, ts=ts, frame=frame, sequence=frame),
            s7plus(
                opcode=0x32,
                function_code=0x054C,
                request=False,
                ts=ts + delay,
                frame=frame + 1,
                sequence=frame,
                request_frame=frame,
            ),
            # A notification (a subscription's data) is no request: never timed.
            s7plus(opcode=0x33, request=False, ts=ts + 0.3, frame=frame + 2),
        ]

    learned: list[Any] = []
    for i in range(100):
        learned += cycle(1000.0 + i, 1 + 3 * i, 0.003 + 0.001 * (i % 3))
    baseline = _learn(learned)
    conversation = next(iter(baseline.conversations.values()))
    assert conversation.protocol == "s7comm"
    assert set(conversation.responses) == {"function plus 1356"}
    assert conversation.responses["function plus 1356"].count == 100
    # As fast as learned: nothing.
    steady: list[Any] = []
    for i in range(40):
        steady += cycle(2000.0 + i, 1000 + 3 * i, 0.004)
    assert not [a for a in run(steady, baseline=baseline, rules=UNTHROTTLED) if a.rule_id == RULE]
    # Held back 0.4 s each, as by a man in the middle: one alert naming the function.
    slow: list[Any] = []
    for i in range(8):
        slow += cycle(3000.0 + i, 2000 + 3 * i, 0.4)
    alerts = [a for a in run(slow, baseline=baseline, rules=UNTHROTTLED) if a.rule_id == RULE]
    assert [a.evidence["response_key"] for a in alerts] == ["function plus 1356"]
    assert (alerts[0].src_ip, alerts[0].dst_ip, alerts[0].dst_port) == (CLIENT, SERVER, 102)
    # A request sent in fragments (a new screen's many tags) is answered once its last fragment
    # is in: the sender's pace between them (a Nagle or delayed-ACK stall) is no answer time.
    fragmented = [
        dataclasses.replace(record, fragment="first") if record.direction == "request" else record
        for record in slow
    ]
    assert not [a for a in run(fragmented, baseline=baseline, rules=UNTHROTTLED) if a.rule_id == RULE]
    assert (
        not _learn([dataclasses.replace(r, fragment="first") for r in learned])
        .conversations[conversation.key]
        .responses
    )
