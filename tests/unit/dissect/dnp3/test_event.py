"""The fast record constructor builds exactly what the dataclass constructor builds."""

from __future__ import annotations

import dataclasses
import inspect

import orjson
import pytest

from ics_monitor.events.dnp3 import Dnp3Event, new_dnp3_event

FIELDS = {
    "ts": 1.25,
    "frame": 7,
    "flow_id": "abc",
    "transport": "tcp",
    "src_ip": "10.0.0.1",
    "src_port": 40000,
    "dst_ip": "10.0.0.2",
    "dst_port": 20000,
    "direction": "response",
    "src": 10,
    "dst": 1,
    "link": {"control": 0x44, "function": "UNCONFIRMED_USER_DATA"},
    "frames": 2,
    "length": 30,
    "function_code": 129,
    "function": "RESPONSE",
    "sequence": 3,
    "fir": True,
    "fin": False,
    "con": True,
    "uns": False,
    "iin": 0x9000,
    "iin_names": ("NEED_TIME", "DEVICE_RESTART"),
    "crc_ok": True,
    "objects": ({"group": 1, "variation": 2, "points": []},),
    "request_function_code": 1,
    "request_function": "READ",
    "request_frame": 5,
    "confirmed_frame": None,
}


def test_same_fields_in_field_order() -> None:
    names = [field.name for field in dataclasses.fields(Dnp3Event) if field.name != "event_type"]
    assert list(inspect.signature(new_dnp3_event).parameters) == names
    assert list(FIELDS) == names


def test_positional_call() -> None:
    assert new_dnp3_event(*FIELDS.values()) == Dnp3Event(**FIELDS)


def test_equal_record() -> None:
    fast = new_dnp3_event(**FIELDS)
    slow = Dnp3Event(**FIELDS)
    assert type(fast) is Dnp3Event
    assert fast == slow
    assert orjson.dumps(fast) == orjson.dumps(slow)


def test_still_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        new_dnp3_event(**FIELDS).sequence = 4  # type: ignore[misc]


def test_pairing_defaults() -> None:
    fields = {k: v for k, v in FIELDS.items() if not k.startswith(("request_", "confirmed_"))}
    assert new_dnp3_event(**fields) == Dnp3Event(**fields)
