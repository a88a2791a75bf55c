"""Alert record, ATT&CK data, throttling and the JSON Schema."""

from __future__ import annotations

import json
import re
from dataclasses import fields, replace
from typing import Any

import jsonschema
import orjson
import pytest

from ics_monitor.alerts import SCHEMA_PATH, Alert, Throttle, alert_to_dict, make_alert_id
from ics_monitor.alerts.attack import TACTICS, TECHNIQUES, V19_RENUMBERED, tactic_refs, technique_refs
from ics_monitor.alerts.record import MAX_FRAMES, SEVERITY_NAMES, alert_json, new_alert, updated

SCHEMA = json.loads(SCHEMA_PATH.read_text())


def fields_of(cls: type) -> list[str]:
    return [field.name for field in fields(cls)]


def _alert(ts: float = 100.0, key: str = "a>b", frames: tuple[int, ...] = (1,), **changes: object) -> Alert:
    alert = Alert(
        alert_id=make_alert_id("ICS-1001", key, ts),
        rule_id="ICS-1001",
        rule_name="s7_plc_stop",
        title="S7 PLC stop command",
        severity=4,
        severity_name="critical",
        category="operating_mode_change",
        protocol="s7comm",
        tactic=tactic_refs(["TA0104"]),
        technique=technique_refs(["T0858", "T0855"]),
        explanation="a stopped the PLC b. Why it matters: x. What to check: y.",
        evidence={"function_code": 41, "items": (1, 2)},
        key=key,
        src_ip="10.0.0.1",
        dst_ip="10.0.0.2",
        src_port=40000,
        dst_port=102,
        ts=ts,
        last_ts=ts,
        frames=frames,
    )
    return replace(alert, **changes) if changes else alert


def test_alert_id_is_deterministic_and_distinct() -> None:
    assert make_alert_id("ICS-1001", "a>b", 1.5) == make_alert_id("ICS-1001", "a>b", 1.5)
    ids = {make_alert_id("ICS-1001", "a>b", 1.5), make_alert_id("ICS-1002", "a>b", 1.5)}
    ids |= {make_alert_id("ICS-1001", "a>c", 1.5), make_alert_id("ICS-1001", "a>b", 1.6)}
    assert len(ids) == 4
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_alert_to_dict_converts_each_alert_object_once() -> None:
    """Sinks in a row get one conversion of an alert; another alert object is converted afresh."""
    alert = _alert()
    first = alert_to_dict(alert)
    assert alert_to_dict(alert) is first
    update = updated(alert, last_ts=200.0, count=5, frames=(1, 2))
    data = alert_to_dict(update)
    assert data is not first and (data["count"], data["last_ts"], data["frames"]) == (5, 200.0, [1, 2])
    assert first["count"] == 1
    equal = replace(alert)  # an equal alert, another object
    assert alert_to_dict(equal) == first and alert_to_dict(equal) is not first


def test_alert_to_dict_is_every_field_in_order_as_json_types() -> None:
    """The JSON form of an alert built any way: its fields in class order, tuples and sets as lists."""
    alert = _alert(evidence={"function_code": 41, "items": (1, 2), "units": {3, 1}, 7: {"nested": (4,)}})
    built = new_alert(**{name: getattr(alert, name) for name in fields_of(Alert) if name != "event_type"})
    update = updated(alert, last_ts=200.0, count=2, frames=(1, 2))
    for record in (alert, built, update):
        data = alert_to_dict(record)
        assert list(data) == fields_of(Alert)
        assert {
            name: data[name] for name in data if name not in ("tactic", "technique", "evidence", "frames")
        } == {
            name: getattr(record, name)
            for name in data
            if name not in ("tactic", "technique", "evidence", "frames")
        }
        assert data["tactic"] == [dict(item) for item in record.tactic] and type(data["tactic"]) is list
        assert data["technique"] == [dict(item) for item in record.technique]
        assert data["evidence"] == {
            "function_code": 41,
            "items": [1, 2],
            "units": [1, 3],
            "7": {"nested": [4]},
        }
        assert data["frames"] == list(record.frames) and type(data["frames"]) is list
        assert data["tactic"][0] is not record.tactic[0]  # copies: a sink may not change the alert
        jsonschema.validate(data, SCHEMA)


def test_new_alert_equals_the_dataclass_built_one() -> None:
    """The emitter's fast constructor: the same fields in the same order, frozen as the class makes it."""
    alert = _alert(src_mac="00:11:22:33:44:55", flow_id="f1", count=3, last_ts=150.0)
    built = new_alert(**{name: getattr(alert, name) for name in fields_of(Alert) if name != "event_type"})
    assert built == alert and type(built) is Alert
    assert list(vars(built)) == list(fields_of(Alert))  # the JSON key order
    assert orjson.dumps(built) == orjson.dumps(alert)
    with pytest.raises(AttributeError):
        built.count = 4  # type: ignore[misc]
    assert updated(built, last_ts=160.0, count=4, frames=(1,)).count == 4


def test_updated_equals_dataclasses_replace() -> None:
    """The throttle's copy of an alert: as ``replace`` makes it, frozen, a new object, frames capped."""
    alert = _alert(src_mac="00:11:22:33:44:55", flow_id="f1")
    frames = tuple(range(3 * MAX_FRAMES))
    copy = updated(alert, last_ts=180.0, count=7, frames=frames)
    expected = replace(alert, last_ts=180.0, count=7, frames=frames[:MAX_FRAMES])
    assert copy == expected and type(copy) is Alert and copy is not alert
    assert list(vars(copy)) == list(vars(expected)) and orjson.dumps(copy) == orjson.dumps(expected)
    assert (alert.count, alert.last_ts) == (1, 100.0)  # the original is untouched
    with pytest.raises(AttributeError):
        copy.count = 8  # type: ignore[misc]


def test_alert_json_is_the_dict_as_json_kept_for_the_next_sink() -> None:
    alert = _alert()
    text = alert_json(alert)
    assert orjson.loads(text) == alert_to_dict(alert) and alert_json(alert) is text
    assert list(orjson.loads(text)) == list(alert_to_dict(alert))
    other = _alert(ts=101.0)
    assert alert_json(other) is not text and orjson.loads(alert_json(other))["ts"] == 101.0


@pytest.mark.parametrize(
    "evidence",
    [
        {"function_code": 41, "items": (1, 2), "nested": {"frames": (3, 4)}, "name": None},  # as it is
        {"units": {3, 1}},  # a set: converted first
        {7: {"nested": (4,)}},  # a key that is not a string: converted first
        {"point": ("a", frozenset({"b"}))},
    ],
)
def test_alert_json_is_the_converted_dict_s_text_either_way(evidence: dict[Any, Any]) -> None:
    """``alert_json`` writes the record itself when orjson takes it, else its converted dict:
    the same text either way (keys in field order, tuples and sets as lists, keys as strings)."""
    for record in (
        _alert(evidence=evidence),
        updated(_alert(evidence=evidence), last_ts=150.0, count=3, frames=(1, 2)),
    ):
        text = alert_json(record)
        assert text == orjson.dumps(alert_to_dict(record))
        jsonschema.validate(orjson.loads(text), SCHEMA)


def test_alert_to_dict_is_json_and_matches_the_schema() -> None:
    record = alert_to_dict(_alert())
    assert record["tactic"] == [{"id": "TA0104", "name": "Execution"}]
    assert record["evidence"]["items"] == [1, 2]
    assert orjson.loads(orjson.dumps(record)) == record
    jsonschema.validate(record, SCHEMA)


def test_schema_rejects_broken_alerts() -> None:
    record = alert_to_dict(_alert())
    for field, value in (("severity", 5), ("rule_id", "X-1"), ("severity_name", "urgent"), ("count", 0)):
        broken = {**record, field: value}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**record, "unexpected": 1}, SCHEMA)


def test_severity_names() -> None:
    assert SEVERITY_NAMES == {1: "low", 2: "medium", 3: "high", 4: "critical"}


def test_attack_v19_crosswalk() -> None:
    refs = technique_refs(["T0855", "T0843", "T0857"])
    assert [(r["id"], r["id_v19"]) for r in refs] == [
        ("T0855", "T1692.001"),
        ("T0843", "T0843"),
        ("T0857", "T1693.001"),
    ]
    assert refs[0]["name"] == "Unauthorized Command Message"
    assert refs[0]["name_v19"] == "Unauthorized Message: Command Message"
    # Every renumbered id is a known pre-2026 technique, and v19 ids are new parents' subs.
    assert set(V19_RENUMBERED) <= set(TECHNIQUES)
    assert all(re.fullmatch(r"T169[1-5]\.00[12]", v19) for v19, _ in V19_RENUMBERED.values())
    assert len(TACTICS) == 12


def test_unknown_attack_ids_are_errors() -> None:
    with pytest.raises(ValueError, match="T9999"):
        technique_refs(["T9999"])
    with pytest.raises(ValueError, match="TA0999"):
        tactic_refs(["TA0999"])


def test_throttle_first_immediately_then_counts() -> None:
    throttle = Throttle()
    first = _alert(100.0, frames=(1,))
    assert throttle.offer(first, 60) == [first]
    assert throttle.offer(_alert(110.0, frames=(2,)), 60) == []
    assert throttle.offer(_alert(120.0, frames=(3,)), 60) == []
    [update] = throttle.flush()
    assert update.alert_id == first.alert_id
    assert (update.count, update.ts, update.last_ts, update.frames) == (3, 100.0, 120.0, (1, 2, 3))
    assert throttle.flush() == []


def test_throttle_window_end_emits_update_and_a_new_alert() -> None:
    throttle = Throttle()
    throttle.offer(_alert(100.0), 60)
    throttle.offer(_alert(130.0), 60)
    late = _alert(200.0)
    out = throttle.offer(late, 60)
    assert [a.count for a in out] == [2, 1]
    assert out[1] is late
    # A single occurrence needs no update.
    assert throttle.flush() == []


def test_throttle_flush_by_time_and_keys_apart() -> None:
    throttle = Throttle()
    throttle.offer(_alert(100.0, key="a"), 10)
    throttle.offer(_alert(101.0, key="a"), 10)
    assert throttle.offer(_alert(102.0, key="b"), 10) != []
    throttle.offer(_alert(103.0, key="b"), 10)
    assert throttle.flush(105.0) == []
    [update_a] = throttle.flush(111.0)
    assert update_a.key == "a" and update_a.count == 2
    assert len(throttle) == 1


def test_throttle_zero_window_passes_everything_and_frames_are_capped() -> None:
    throttle = Throttle()
    assert len([a for t in range(5) for a in throttle.offer(_alert(100.0 + t), 0)]) == 5
    throttle.offer(_alert(100.0, frames=(1,)), 60)
    for frame in range(2, 30):
        throttle.offer(_alert(100.0 + frame, frames=(frame,)), 60)
    [update] = throttle.flush()
    assert update.count == 29 and len(update.frames) == MAX_FRAMES


def test_throttle_cap_closes_the_oldest_group() -> None:
    throttle = Throttle(max_groups=2)
    throttle.offer(_alert(100.0, key="a"), 60)
    throttle.offer(_alert(101.0, key="a"), 60)
    throttle.offer(_alert(102.0, key="b"), 60)
    out = throttle.offer(_alert(103.0, key="c"), 60)
    assert [(a.key, a.count) for a in out] == [("a", 2), ("c", 1)]
    assert len(throttle) == 2


def test_throttle_flush_by_time_matches_a_walk_over_every_group() -> None:
    """Windows of different lengths, groups closed by a late occurrence and evicted by the cap:
    flush(now) closes exactly the groups a walk over the table finds ended, in table order."""
    throttle = Throttle(max_groups=12)
    flushed = 0
    for step in range(2000):
        ts = 100.0 + step * 0.5
        throttle.offer(_alert(ts, key=f"k{step % 5}" if step % 4 else f"u{step}"), 5.0 if step % 3 else 20.0)
        if step % 10 == 9:
            table = list(throttle._groups.items())
            due = [(key, group.count) for (_, key), group in table if group.end < ts]
            got = throttle.flush(ts)
            assert [(a.key, a.count) for a in got] == [(key, count) for key, count in due if count > 1]
            assert len(throttle) == len(table) - len(due)
            flushed += len(got)
    assert flushed > 50
    assert len(throttle._ends) <= 2 * throttle.max_groups + 1024


def test_throttle_absorb_counts_as_offer_does() -> None:
    """``absorb`` (no alert built) and ``offer`` leave the same groups and emit the same updates."""
    offered, absorbed = Throttle(), Throttle()
    counts: list[int] = []
    for step in range(40):
        ts = 100.0 + step * 3
        frames = tuple(range(step * 3, step * 3 + 3))
        key = f"k{step % 3}"
        window = 20.0 if step % 2 else 7.0
        expect = offered.offer(_alert(ts, key=key, frames=frames[:10]), window)
        counts += [a.count for a in expect]
        if not absorbed.absorb("ICS-1001", key, ts, ts, iter(frames)):
            assert absorbed.offer(_alert(ts, key=key, frames=frames[:10]), window) == expect
        else:
            assert expect == []
    left = [(a.key, a.count, a.last_ts, a.frames) for a in offered.flush()]
    assert [(a.key, a.count, a.last_ts, a.frames) for a in absorbed.flush()] == left
    assert max(counts + [count for _, count, _, _ in left]) > 2
    assert not Throttle().absorb("ICS-1001", "k0", 100.0, 100.0, ())
