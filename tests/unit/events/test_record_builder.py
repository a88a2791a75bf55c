"""``ics_monitor._records.record``: the C build and the Python module give the same records.

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
from ics_monitor._records import record
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
