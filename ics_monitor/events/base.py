"""Common event records: the protocol-event base, anomalies and ARP observations.

Every record is a frozen, keyword-only dataclass *without* ``__slots__``: its fields live in a
plain instance ``__dict__``.  That is for speed on the per-PDU path: orjson serialises a
dict-backed dataclass straight from that dict (about three times faster than reading slots one
field at a time), and the hot builders (``new_modbus_event``, ``new_dnp3_event``,
``new_s7comm_event``) copy a ``field_template`` of the class, store each value into the copy and
install it as a new instance's ``__dict__`` (``record_from``: ``ics_monitor._records``, one C
call in a compiled build) instead of setting each field through the frozen ``__setattr__`` path.
The dict's key order is the JSON key order; the template holds every field in dataclass field
order, so it is that of a dataclass-built record (unit tests check record equality and identical
JSON).

No class here may add ``__slots__`` (fields in slots are not in ``__dict__``; orjson would then
drop to its slow path, and the inventory and detectors, which read fields as ``__dict__`` items,
would miss them), and nothing may write to a record's ``__dict__`` after it is handed on.
No behaviour beyond construction lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final, TypeVar

from mypy_extensions import mypyc_attr

from ics_monitor._records import record as _record


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every record carries: what it is, when (capture time) and in which frame."""

    event_type: str
    ts: float
    frame: int


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ProtocolEvent(Event):
    """One application PDU.  ``direction`` is ``request`` or ``response`` (protocol sense).

    A record of a PDU whose end is missing (cut by the capture's snap length, or its bytes lost)
    also has the key ``truncated`` (true) in its dict, set by ``dissect.api.mark_truncated``: it
    holds what was kept, the values up to the cut.  Not a field: every other record goes without
    it (one key fewer to copy, ship between processes and write for each whole PDU).
    """

    flow_id: str
    transport: str
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    direction: str


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class AnomalyEvent(Event):
    """Something wrong or suspicious in traffic, with a stable ``code`` from ``core.anomalies``.

    Endpoints are those of the packet or flow concerned (empty when the frame was too broken to tell).
    ``direction`` is ``to_server`` or ``to_client`` when a flow is known.
    """

    event_type: str = "anomaly"
    code: str
    severity: str
    detail: str
    protocol: str | None = None
    flow_id: str | None = None
    transport: str | None = None
    src_ip: str = ""
    src_port: int | None = None
    dst_ip: str = ""
    dst_port: int | None = None
    direction: str | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class ArpEvent(Event):
    """An ARP request or reply: a device stating its MAC-IP binding (input for the inventory)."""

    event_type: str = "arp"
    operation: int
    operation_name: str
    sender_mac: str
    sender_ip: str
    target_mac: str
    target_ip: str
    vlan: tuple[int, ...] = ()


def field_template(cls: type[Any], **fixed: Any) -> dict[str, Any]:
    """Every field name of dataclass ``cls`` in field order, valued None, or ``fixed[name]``.

    Copying this dict and overwriting its values is cheaper than building a dict literal of the
    same size (the copy reuses the key table; an overwrite does not reorder keys), and it keeps
    the field order, which is the JSON key order, by construction.
    """
    template: dict[str, Any] = dict.fromkeys(field.name for field in fields(cls))
    unknown = fixed.keys() - template.keys()
    if unknown:
        raise TypeError(f"not fields of {cls.__name__}: {sorted(unknown)}")
    template.update(fixed)
    return template


Record = TypeVar("Record")


def record_from(cls: type[Record], fields: dict[str, Any]) -> Record:
    """A record of dataclass ``cls`` whose ``__dict__`` is ``fields``: every field, in field order.

    Every hot builder ends here (events, alerts, records rebuilt from a worker's pipe), and so do
    records with no template to copy (flow records, COTP events): the generated frozen
    ``__init__`` is interpreted even in a compiled build and sets each field through
    ``object.__setattr__``.  The caller owns the keys and their order (the JSON key order);
    ``tests/unit/events/test_built_records.py`` compares with the class's own.
    """
    return _record(cls, fields)


_ANOMALY_TEMPLATE: Final = field_template(AnomalyEvent, event_type="anomaly")


def new_anomaly_event(
    ts: float,
    frame: int,
    code: str,
    severity: str,
    detail: str,
    protocol: str | None,
    flow_id: str | None,
    transport: str | None,
    src_ip: str,
    src_port: int | None,
    dst_ip: str,
    dst_port: int | None,
    direction: str | None,
) -> AnomalyEvent:
    """An ``AnomalyEvent`` equal to ``AnomalyEvent(...)`` with these fields, several times faster.

    Built as the protocol builders build theirs (a copy of the field template installed as
    ``__dict__``): malformed or hostile traffic can make one per PDU.
    """
    fields = _ANOMALY_TEMPLATE.copy()
    fields["ts"] = ts
    fields["frame"] = frame
    fields["code"] = code
    fields["severity"] = severity
    fields["detail"] = detail
    fields["protocol"] = protocol
    fields["flow_id"] = flow_id
    fields["transport"] = transport
    fields["src_ip"] = src_ip
    fields["src_port"] = src_port
    fields["dst_ip"] = dst_ip
    fields["dst_port"] = dst_port
    fields["direction"] = direction
    return _record(AnomalyEvent, fields)


def failure_anomaly(code: str, severity: str, detail: str, record: Any, ts: float = 0.0) -> AnomalyEvent:
    """An anomaly saying that our own code failed on ``record`` (an event, a flow record, or None).

    It takes the record's time, frame, flow and endpoints where the record has them (a flow
    record: its end and first frame), else ``ts`` and frame 0.
    """
    frame = getattr(record, "frame", None)
    if frame is None:
        frame = getattr(record, "first_frame", None)
    when = getattr(record, "ts", None)
    if when is None:
        when = getattr(record, "ts_end", None)
    return new_anomaly_event(
        when if isinstance(when, float) else ts,
        frame if isinstance(frame, int) else 0,
        code,
        severity,
        detail,
        getattr(record, "protocol", None),
        getattr(record, "flow_id", None),
        getattr(record, "transport", None),
        getattr(record, "src_ip", None) or "",
        getattr(record, "src_port", None),
        getattr(record, "dst_ip", None) or "",
        getattr(record, "dst_port", None),
        None,
    )
