"""Records are frozen dict-backed dataclasses whose JSON is their fields, in field order.

The JSON sink hands records to orjson as they are; orjson reads a dataclass without ``__slots__``
straight from its instance ``__dict__``.  These tests pin what that relies on: no class adds
``__slots__``, every field is in the ``__dict__`` in dataclass field order (for dataclass-built
and fast-built records alike), and the records stay frozen.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from ics_monitor.events.base import AnomalyEvent, ArpEvent, Event, ProtocolEvent, field_template
from ics_monitor.events.dnp3 import Dnp3Event
from ics_monitor.events.flow import FlowRecord
from ics_monitor.events.modbus import (
    ModbusDetailEvent,
    ModbusDiagnosticsEvent,
    ModbusEvent,
    ModbusMeiEvent,
    ModbusUmasEvent,
)
from ics_monitor.events.s7comm import CotpEvent, S7commEvent, S7commPlusEvent

RECORD_CLASSES: tuple[type[Any], ...] = (
    AnomalyEvent,
    ArpEvent,
    FlowRecord,
    ModbusEvent,
    ModbusDiagnosticsEvent,
    ModbusMeiEvent,
    ModbusUmasEvent,
    ModbusDetailEvent,
    Dnp3Event,
    S7commEvent,
    S7commPlusEvent,
    CotpEvent,
)


def sample(cls: type[Any]) -> Any:
    """A record of ``cls`` built by its dataclass constructor, each field a distinct value."""
    values: dict[str, Any] = {}
    for position, field in enumerate(dataclasses.fields(cls)):
        if field.name == "event_type":
            continue  # keep the class default ("modbus", "anomaly" ...)
        values[field.name] = f"v{position}" if position % 2 else position
    values["vlan"] = (1, 2) if "vlan" in values else None
    values = {name: value for name, value in values.items() if value is not None}
    return cls(**values)


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda cls: cls.__name__)
def test_no_slots_anywhere_in_the_hierarchy(cls: type[Any]) -> None:
    # One slotted class in the MRO would keep its fields out of ``__dict__``: orjson's dict path
    # would then drop them, or fall back to the slow per-field path.
    for klass in cls.__mro__[:-1]:
        assert "__slots__" not in klass.__dict__, klass
    assert dataclasses.is_dataclass(cls)
    assert cls.__dataclass_params__.frozen  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda cls: cls.__name__)
def test_dict_holds_every_field_in_field_order(cls: type[Any]) -> None:
    record = sample(cls)
    names = [field.name for field in dataclasses.fields(cls)]
    assert list(vars(record)) == names


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda cls: cls.__name__)
def test_json_is_the_fields_in_field_order(cls: type[Any]) -> None:
    record = sample(cls)
    expected = {field.name: getattr(record, field.name) for field in dataclasses.fields(cls)}
    assert orjson.dumps(record) == orjson.dumps(expected)
    assert orjson.loads(orjson.dumps(record))["event_type"] == record.event_type


@pytest.mark.parametrize("cls", RECORD_CLASSES, ids=lambda cls: cls.__name__)
def test_records_stay_frozen(cls: type[Any]) -> None:
    record = sample(cls)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.event_type = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.__dict__ = {}


def test_base_classes_are_dict_backed_too() -> None:
    for cls in (Event, ProtocolEvent):
        assert "__slots__" not in cls.__dict__


def test_field_template_follows_the_field_order() -> None:
    template = field_template(Dnp3Event, event_type="dnp3")
    assert list(template) == [field.name for field in dataclasses.fields(Dnp3Event)]
    assert template["event_type"] == "dnp3"
    assert {value for name, value in template.items() if name != "event_type"} == {None}


def test_field_template_refuses_unknown_names() -> None:
    with pytest.raises(TypeError, match="not fields of ModbusEvent"):
        field_template(ModbusEvent, colour="red")


def test_templates_are_not_shared_with_records() -> None:
    # A builder must copy the template: two records never share one ``__dict__``.
    from ics_monitor.events.dnp3 import new_dnp3_event

    def build(ts: float) -> Dnp3Event:
        # Values of the declared types: compiled (make compiled), the builder checks them.
        return new_dnp3_event(
            ts, 1, "flow", "tcp", "10.0.0.1", 20000, "10.0.0.2", 40000, "response", 1, 2, {}, 1, 10,
            129, "RESPONSE", 0, True, True, False, False, 0, (), True, (),
        )  # fmt: skip

    first, second = build(0.0), build(1.0)
    assert vars(first) is not vars(second)
    assert first.ts == 0
    assert second.ts == 1


def test_fast_anomaly_builder_equals_the_dataclass() -> None:
    from ics_monitor.events.base import AnomalyEvent, new_anomaly_event

    built = new_anomaly_event(
        1.5, 7, "modbus.bad_length", "medium", "length 3", "modbus", "flow", "tcp",
        "10.0.0.1", 40000, "10.0.0.2", 502, "to_server",
    )  # fmt: skip
    plain = AnomalyEvent(
        ts=1.5, frame=7, code="modbus.bad_length", severity="medium", detail="length 3", protocol="modbus",
        flow_id="flow", transport="tcp", src_ip="10.0.0.1", src_port=40000, dst_ip="10.0.0.2", dst_port=502,
        direction="to_server",
    )  # fmt: skip
    assert built == plain and type(built) is AnomalyEvent
    assert orjson.dumps(built) == orjson.dumps(plain)
    assert vars(built) is not vars(
        new_anomaly_event(0.0, 1, "c", "low", "d", None, None, None, "", None, "", None, None)
    )
