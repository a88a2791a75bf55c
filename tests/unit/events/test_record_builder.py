"""``ics_monitor._records``: the C build and the Python module give the same records and batches.

Every record a run makes is built by it (``events.base.record_from``).  The importable module is
the C extension in a compiled build (``make compiled``) and the Python file otherwise; the Python
file is loaded here by path as well, so both are checked wherever the build exists.
"""

from __future__ import annotations

import abc
import dataclasses
import gc
import importlib.util
import pickle
from types import ModuleType

import orjson
import pytest

import ics_monitor._records
from ics_monitor._records import rebuilt, record
from ics_monitor.events import AnomalyEvent
from ics_monitor.events.base import field_template


def _python_module() -> ModuleType:
    path = ics_monitor._records.__file__.rsplit("/", 1)[0] + "/_records.py"
    spec = importlib.util.spec_from_file_location("_records_python", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDERS = [pytest.param(record, id="importable"), pytest.param(_python_module().record, id="python")]
REBUILDERS = [pytest.param(rebuilt, id="importable"), pytest.param(_python_module().rebuilt, id="python")]

FIELDS = {
    "ts": 12.5,
    "frame": 3,
    "code": "modbus.truncated_pdu",
    "severity": "medium",
    "detail": "2 bytes",
    "protocol": "modbus",
    "src_ip": "10.0.0.2",
    "dst_ip": "10.0.0.1",
}


@pytest.mark.parametrize("build", BUILDERS)
def test_a_built_record_is_the_dataclass_record(build: object) -> None:
    fields = {**field_template(AnomalyEvent, event_type="anomaly"), **FIELDS}
    built = build(AnomalyEvent, fields)  # type: ignore[operator]
    expected = AnomalyEvent(**FIELDS)
    assert type(built) is AnomalyEvent and built == expected
    assert built.__dict__ is fields  # installed, not copied
    assert orjson.dumps(built) == orjson.dumps(expected)
    assert pickle.loads(pickle.dumps(built)) == expected
    assert gc.is_tracked(built)
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.ts = 1.0  # type: ignore[misc]


class _Abstract(abc.ABC):
    @abc.abstractmethod
    def check(self) -> None: ...


@pytest.mark.parametrize("build", BUILDERS)
def test_a_builder_refuses_what_is_not_a_class_and_a_dict(build: object) -> None:
    with pytest.raises(TypeError):
        build(AnomalyEvent, [("ts", 1.0)])  # type: ignore[operator]
    with pytest.raises(TypeError):
        build("AnomalyEvent", {})  # type: ignore[operator]


@pytest.mark.parametrize("cls", [type, ValueError, _Abstract], ids=["type", "exception", "abstract"])
@pytest.mark.parametrize("build", BUILDERS)
def test_a_builder_refuses_classes_object_new_refuses(build: object, cls: type) -> None:
    # Classes with a __new__ of their own, and abstract ones: built from a dict, they would be
    # half made (object.__new__ says so; the C build must too, not crash the interpreter).
    with pytest.raises(TypeError):
        build(cls, {})  # type: ignore[operator]


def _anomaly_class() -> tuple[type, tuple[str, ...], dict[str, object]]:
    names = tuple(field.name for field in dataclasses.fields(AnomalyEvent))
    return (AnomalyEvent, names, dict.fromkeys(names))


@pytest.mark.parametrize("rebuild", REBUILDERS)
def test_a_batch_is_rebuilt_in_field_order_from_values_or_a_whole_dict(rebuild: object) -> None:
    expected = AnomalyEvent(**FIELDS)
    values = tuple(expected.__dict__.values())
    whole = {**expected.__dict__, "truncated": True}  # a key beyond the fields goes as the dict
    items = [(80, 0, 0, 0, values), (81, 1, 7, -1, ("a tick", 1.5)), (82, 0, 0, 0, whole)]
    batch = rebuild([_anomaly_class()], items)  # type: ignore[operator]
    assert [item[:3] for item in batch] == [(80, 0, 0), (81, 1, 7), (82, 0, 0)]
    first, tick, cut = (item[3] for item in batch)
    assert type(first) is AnomalyEvent and first == expected
    assert list(first.__dict__) == list(expected.__dict__)  # the JSON key order
    assert orjson.dumps(first) == orjson.dumps(expected)
    assert tick == ("a tick", 1.5)
    assert cut.__dict__ is whole and cut.truncated is True


@pytest.mark.parametrize(
    "items",
    [
        [(80, 0, 0, 0)],  # not five parts
        [[80, 0, 0, 0, ()]],  # not a tuple
        [(80, 0, 0, 0, (1.0, 2))],  # fewer values than fields
        [(80, 0, 0, 3, ())],  # no such class
        [(80, 0, 0, 0, "values")],  # neither values nor a dict
    ],
    ids=["short", "list", "values", "class", "payload"],
)
@pytest.mark.parametrize("rebuild", REBUILDERS)
def test_a_damaged_batch_is_refused_not_half_built(rebuild: object, items: list[object]) -> None:
    with pytest.raises((TypeError, ValueError, IndexError)):
        rebuild([_anomaly_class()], items)  # type: ignore[operator]
