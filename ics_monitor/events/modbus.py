"""The Modbus record: one per application PDU (ADU), over TCP or UDP.

Keys per DESIGN.md section 3: ``transaction_id``, ``unit_id``, ``function_code`` (0-127, exception
bit removed), ``function``, ``exception_code``; where the PDU has them ``address``, ``quantity``,
``values``, ``sub_function`` (FC 8, and the UMAS code of FC 90), ``mei_type`` (FC 43), ``device_id``
(FC 43/14) and ``request_frame`` (responses paired with their request).  Beside them: the MBAP
``length``, the ``exception`` name, the PDU's ``byte_count``.

Responses to reads carry the request's ``address`` and ``quantity`` so ``values[i]`` belongs to
``address + i``.  Coils and discrete inputs are 0/1 ints.

The families that hold more than the common fields are subclasses with the same ``event_type``
(``modbus``), so the common case stays small (records are built per PDU):

* ``ModbusDiagnosticsEvent`` (FC 8): ``sub_function``, ``sub_function_name``, ``data`` (hex);
* ``ModbusMeiEvent`` (FC 43): ``mei_type``, ``mei_type_name``, ``device_id`` (read device id:
  ``{read_code, read_code_name, conformity_level, conformity_level_name, more_follows,
  next_object_id, number_of_objects, objects: [{id, name, value}]}`` in responses, ``{read_code,
  read_code_name, object_id, object_name}`` in requests), ``data`` (hex, other MEI types);
* ``ModbusUmasEvent`` (FC 90): ``sub_function``/``sub_function_name`` (the UMAS code, the request's
  in responses), ``session_key``, ``status``/``status_name`` (responses: 0xFE OK, 0xFD ERROR), ``data``;
* ``ModbusDetailEvent`` (FC 7, 11, 12, 17, 20-24, user-defined, reserved and unknown codes):
  ``extra``, a dict of the function's own fields (and/or masks, write range, file records, server
  id, event counters, FIFO count, or the raw ``data``).

This module only defines and builds records: no parsing, no I/O, no names of codes (those are in
``dissect.modbus.constants``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ics_monitor.events.base import ProtocolEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusEvent(ProtocolEvent):
    """One Modbus ADU as seen on the wire (read/write functions and exceptions use this class)."""

    event_type: str = "modbus"
    transaction_id: int
    unit_id: int
    length: int
    function_code: int
    function: str
    exception_code: int | None = None
    exception: str | None = None
    address: int | None = None
    quantity: int | None = None
    byte_count: int | None = None
    values: tuple[int, ...] | None = None
    request_frame: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusDiagnosticsEvent(ModbusEvent):
    """FC 8 diagnostics: the sub-function and its data field."""

    sub_function: int | None = None
    sub_function_name: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusMeiEvent(ModbusEvent):
    """FC 43 encapsulated interface transport: MEI type, device identification."""

    mei_type: int | None = None
    mei_type_name: str | None = None
    device_id: dict[str, Any] | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusUmasEvent(ModbusEvent):
    """FC 90 Schneider UMAS: session key, UMAS function (sub-function) and response status."""

    sub_function: int | None = None
    sub_function_name: str | None = None
    session_key: int | None = None
    status: int | None = None
    status_name: str | None = None
    data: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusDetailEvent(ModbusEvent):
    """Functions with fields of their own, kept in ``extra``."""

    extra: dict[str, Any] | None = None


def _setter(cls: type, name: str) -> Any:
    """The slot setter of field ``name`` (from the class in the MRO that defines the slot)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name].__set__
    raise AttributeError(name)


_new = object.__new__
(
    _event_type,
    _ts,
    _frame,
    _flow_id,
    _transport,
    _src_ip,
    _src_port,
    _dst_ip,
    _dst_port,
    _direction,
    _transaction_id,
    _unit_id,
    _length,
    _function_code,
    _function,
    _exception_code,
    _exception,
    _address,
    _quantity,
    _byte_count,
    _values,
    _request_frame,
) = (
    _setter(ModbusEvent, name)
    for name in (
        "event_type",
        "ts",
        "frame",
        "flow_id",
        "transport",
        "src_ip",
        "src_port",
        "dst_ip",
        "dst_port",
        "direction",
        "transaction_id",
        "unit_id",
        "length",
        "function_code",
        "function",
        "exception_code",
        "exception",
        "address",
        "quantity",
        "byte_count",
        "values",
        "request_frame",
    )
)

# Where a flow direction's records come from: (flow_id, transport, src_ip, src_port, dst_ip,
# dst_port, direction), the same for every record of that direction.
Head = tuple[str, str, str, int, str, int, str]


def new_modbus_event(
    cls: type[ModbusEvent],
    head: Head,
    ts: float,
    frame: int,
    transaction_id: int,
    unit_id: int,
    length: int,
    function_code: int,
    function: str,
    exception_code: int | None,
    exception: str | None,
    address: int | None,
    quantity: int | None,
    byte_count: int | None,
    values: tuple[int, ...] | None,
    request_frame: int | None,
) -> Any:
    """Build a ``cls`` record (``ModbusEvent`` or a subclass) equal to ``cls(...)``, about twice as fast.

    The generated frozen ``__init__`` goes through ``object.__setattr__`` per field; calling the
    slot setters directly skips that (record construction is most of the per-PDU cost on polling
    traffic).  A subclass's own fields are set by the caller with ``set_own``, before the record
    is handed on; a unit test checks the result equals the dataclass-built one.
    """
    event = _new(cls)
    _event_type(event, "modbus")
    _ts(event, ts)
    _frame(event, frame)
    _flow_id(event, head[0])
    _transport(event, head[1])
    _src_ip(event, head[2])
    _src_port(event, head[3])
    _dst_ip(event, head[4])
    _dst_port(event, head[5])
    _direction(event, head[6])
    _transaction_id(event, transaction_id)
    _unit_id(event, unit_id)
    _length(event, length)
    _function_code(event, function_code)
    _function(event, function)
    _exception_code(event, exception_code)
    _exception(event, exception)
    _address(event, address)
    _quantity(event, quantity)
    _byte_count(event, byte_count)
    _values(event, values)
    _request_frame(event, request_frame)
    return event


def _own_setters(cls: type[ModbusEvent]) -> tuple[Any, ...]:
    own = [name for name in cls.__dataclass_fields__ if name not in ModbusEvent.__dataclass_fields__]
    return tuple(_setter(cls, name) for name in own)


# The subclass-own fields, in declaration order (``set_own`` takes their values in that order).
OWN_FIELDS: dict[type[ModbusEvent], tuple[str, ...]] = {
    cls: tuple(name for name in cls.__dataclass_fields__ if name not in ModbusEvent.__dataclass_fields__)
    for cls in (ModbusDiagnosticsEvent, ModbusMeiEvent, ModbusUmasEvent, ModbusDetailEvent)
}
_OWN_SETTERS: dict[type[ModbusEvent], tuple[Any, ...]] = {cls: _own_setters(cls) for cls in OWN_FIELDS}


def set_own(event: ModbusEvent, values: tuple[Any, ...]) -> None:
    """Set the subclass-own fields of a record just built by ``new_modbus_event``, in ``OWN_FIELDS`` order."""
    for setter, value in zip(_OWN_SETTERS[type(event)], values, strict=True):
        setter(event, value)
