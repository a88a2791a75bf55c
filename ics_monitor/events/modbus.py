"""The Modbus record: one per application PDU (ADU), over TCP or UDP.

Keys per DESIGN.md section 3: ``transaction_id``, ``unit_id``, ``function_code`` (0-127, exception
bit removed), ``function``, ``exception_code``; where the PDU has them ``address``, ``quantity``,
``values``, ``sub_function`` (FC 8, and the UMAS code of FC 90), ``mei_type`` (FC 43), ``device_id``
(FC 43/14) and ``request_frame`` (responses paired with their request).  Beside them: the MBAP
``length``, the ``exception`` name, the PDU's ``byte_count``, and ``framing``: ``mbap``, or ``rtu``
/ ``ascii`` for serial-line frames carried over TCP/UDP (``dissect.modbus.rtu``,
``dissect.modbus.ascii_framing``), whose records have no ``transaction_id`` (null) and whose
``length`` counts the address and PDU as MBAP's does.

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
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ics_monitor.events.base import ProtocolEvent, field_template, record_from


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ModbusEvent(ProtocolEvent):
    """One Modbus ADU as seen on the wire (read/write functions and exceptions use this class)."""

    event_type: str = "modbus"
    transaction_id: int | None
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
    framing: str = "mbap"


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ModbusDiagnosticsEvent(ModbusEvent):
    """FC 8 diagnostics: the sub-function and its data field."""

    sub_function: int | None = None
    sub_function_name: str | None = None
    data: str | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ModbusMeiEvent(ModbusEvent):
    """FC 43 encapsulated interface transport: MEI type, device identification."""

    mei_type: int | None = None
    mei_type_name: str | None = None
    device_id: dict[str, Any] | None = None
    data: str | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ModbusUmasEvent(ModbusEvent):
    """FC 90 Schneider UMAS: session key, UMAS function (sub-function) and response status."""

    sub_function: int | None = None
    sub_function_name: str | None = None
    session_key: int | None = None
    status: int | None = None
    status_name: str | None = None
    data: str | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ModbusDetailEvent(ModbusEvent):
    """Functions with fields of their own, kept in ``extra``."""

    extra: dict[str, Any] | None = None


_TEMPLATE: Final = field_template(ModbusEvent, event_type="modbus", framing="mbap")

# Where a flow direction's records come from: (flow_id, transport, src_ip, src_port, dst_ip,
# dst_port, direction), the same for every record of that direction.
Head = tuple[str, str, str, int, str, int, str]


def new_modbus_event(
    cls: type[ModbusEvent],
    head: Head,
    ts: float,
    frame: int,
    transaction_id: int | None,
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
    """Build a ``cls`` record (``ModbusEvent`` or a subclass) equal to ``cls(...)``, several times faster.

    The generated frozen ``__init__`` goes through ``object.__setattr__`` per field; filling a copy
    of the field template and installing it as the instance ``__dict__`` (see ``events.base``)
    skips that, and the keys stay in field order so the JSON is the same.  A subclass's own fields
    are appended by the caller with ``set_own``, before the record is handed on; a unit test
    checks the result equals (and serialises like) the dataclass-built one.
    """
    fields = _TEMPLATE.copy()
    fields["ts"] = ts
    fields["frame"] = frame
    fields["flow_id"] = head[0]
    fields["transport"] = head[1]
    fields["src_ip"] = head[2]
    fields["src_port"] = head[3]
    fields["dst_ip"] = head[4]
    fields["dst_port"] = head[5]
    fields["direction"] = head[6]
    fields["transaction_id"] = transaction_id
    fields["unit_id"] = unit_id
    fields["length"] = length
    fields["function_code"] = function_code
    fields["function"] = function
    fields["exception_code"] = exception_code
    fields["exception"] = exception
    fields["address"] = address
    fields["quantity"] = quantity
    fields["byte_count"] = byte_count
    fields["values"] = values
    fields["request_frame"] = request_frame
    return record_from(cls, fields)


# The subclass-own fields, in declaration order (``set_own`` takes their values in that order).
OWN_FIELDS: dict[type[ModbusEvent], tuple[str, ...]] = {
    cls: tuple(name for name in cls.__dataclass_fields__ if name not in ModbusEvent.__dataclass_fields__)
    for cls in (ModbusDiagnosticsEvent, ModbusMeiEvent, ModbusUmasEvent, ModbusDetailEvent)
}


def set_own(event: ModbusEvent, values: tuple[Any, ...]) -> None:
    """Set the subclass-own fields of a record just built by ``new_modbus_event``, in ``OWN_FIELDS`` order."""
    # Appended after the common keys: the dataclass field order, hence the JSON key order.
    event.__dict__.update(zip(OWN_FIELDS[type(event)], values, strict=True))
