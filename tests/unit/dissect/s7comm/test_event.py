"""The fast record constructor builds the same frozen record as the dataclass."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import orjson

from ics_monitor.events.s7comm import _S7COMM_FIELDS, S7commEvent, new_s7comm_event


def test_field_order_matches_the_dataclass() -> None:
    names = [field.name for field in dataclasses.fields(S7commEvent) if field.name != "event_type"]
    assert names == list(_S7COMM_FIELDS)
    assert list(inspect.signature(new_s7comm_event).parameters) == names


def test_fast_constructor_equals_dataclass() -> None:
    values: dict[str, Any] = {name: index for index, name in enumerate(_S7COMM_FIELDS)}
    values["items"] = ({"area": 0x84},)
    # The common fields keep their declared types (the compiled builder checks them).
    values.update(
        ts=0.5, flow_id="f", transport="tcp", src_ip="10.0.0.1", dst_ip="10.0.0.2", direction="request"
    )
    fast = new_s7comm_event(*values.values())
    slow = S7commEvent(**values)
    assert fast == slow
    assert orjson.dumps(fast) == orjson.dumps(slow)
    assert list(vars(fast)) == [field.name for field in dataclasses.fields(S7commEvent)]
    assert fast.event_type == "s7comm"
    try:
        fast.rosctr = 9  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("the record must stay frozen")
