"""The fast Modbus record constructor builds exactly what the dataclass constructors build."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import orjson
import pytest

from ics_monitor.events.modbus import (
    OWN_FIELDS,
    ModbusDetailEvent,
    ModbusDiagnosticsEvent,
    ModbusEvent,
    ModbusMeiEvent,
    ModbusUmasEvent,
    new_modbus_event,
    set_own,
)

HEAD = ("flow1", "tcp", "10.0.0.2", 502, "10.0.0.1", 40000, "response")
COMMON: dict[str, Any] = {
    "ts": 1.25,
    "frame": 7,
    "transaction_id": 3,
    "unit_id": 1,
    "length": 9,
    "function_code": 3,
    "function": "READ_HOLDING_REGISTERS",
    "exception_code": None,
    "exception": None,
    "address": 100,
    "quantity": 3,
    "byte_count": 6,
    "values": (1, 2, 3),
    "request_frame": 6,
}
OWN: dict[type[ModbusEvent], dict[str, Any]] = {
    ModbusDiagnosticsEvent: {"sub_function": 0, "sub_function_name": "RETURN_QUERY_DATA", "data": "a537"},
    ModbusMeiEvent: {
        "mei_type": 14,
        "mei_type_name": "READ_DEVICE_IDENTIFICATION",
        "device_id": {"objects": []},
        "data": None,
    },
    ModbusUmasEvent: {
        "sub_function": 0x41,
        "sub_function_name": "STOP_PLC",
        "session_key": 0x2A,
        "status": 0xFE,
        "status_name": "OK",
        "data": "",
    },
    ModbusDetailEvent: {"extra": {"and_mask": 0xF2, "or_mask": 0x25}},
}


def slow(cls: type[ModbusEvent], own: dict[str, Any]) -> ModbusEvent:
    names = ("flow_id", "transport", "src_ip", "src_port", "dst_ip", "dst_port", "direction")
    return cls(**dict(zip(names, HEAD, strict=True)), **COMMON, **own)


def test_parameters_follow_the_common_fields() -> None:
    # ``framing`` keeps its default ("mbap"); the RTU path sets it on the record it built.
    names = [f.name for f in dataclasses.fields(ModbusEvent) if f.name not in ("event_type", "framing")]
    parameters = list(inspect.signature(new_modbus_event).parameters)
    assert parameters[:2] == ["cls", "head"]
    assert parameters[2:] == [
        name
        for name in names
        if name not in ("flow_id", "transport", "src_ip", "src_port", "dst_ip", "dst_port", "direction")
    ]


def test_plain_record() -> None:
    fast = new_modbus_event(ModbusEvent, HEAD, *COMMON.values())
    assert type(fast) is ModbusEvent
    assert fast == slow(ModbusEvent, {})
    assert orjson.loads(orjson.dumps(fast)) == orjson.loads(orjson.dumps(slow(ModbusEvent, {})))
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.unit_id = 2  # type: ignore[misc]


@pytest.mark.parametrize("cls", list(OWN))
def test_family_records(cls: type[ModbusEvent]) -> None:
    assert OWN_FIELDS[cls] == tuple(OWN[cls])
    fast = new_modbus_event(cls, HEAD, *COMMON.values())
    set_own(fast, tuple(OWN[cls].values()))
    expected = slow(cls, OWN[cls])
    assert fast == expected
    assert orjson.dumps(fast) == orjson.dumps(expected)
    assert orjson.loads(orjson.dumps(fast))["event_type"] == "modbus"


def test_set_own_needs_every_field() -> None:
    fast = new_modbus_event(ModbusDetailEvent, HEAD, *COMMON.values())
    with pytest.raises(ValueError, match="zip"):
        set_own(fast, ())
