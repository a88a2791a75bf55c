"""The DNP3 record: one per completed application fragment, and one per link-only frame.

Keys per DESIGN.md section 3 (``src``, ``dst``, ``function_code``, ``function``, ``sequence``, ``fir``,
``fin``, ``con``, ``uns``, ``iin``, ``crc_ok``, ``objects``) plus the link control of the frame that
completed the fragment (``link``: ``{control, function_code, function, dir, prm, fcb, fcv, dfc}``),
the number of link ``frames``, the fragment ``length``, the IIN bit names and the pairing fields
(``request_function_code``/``request_function``/``request_frame`` on responses, ``confirmed_frame``
on confirms).  Link-only frames (reset link, link status ...) carry null application fields.  ``objects`` is a tuple of plain dicts::

    {group, variation, group_name, variation_name, qualifier, prefix_code, range_code,
     start, stop, count, points: [{index, value, flags, time?, ...}]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ics_monitor.events.base import ProtocolEvent, field_template, record_from


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
class Dnp3Event(ProtocolEvent):
    """One DNP3 application fragment (or link-only frame) as seen on the wire."""

    event_type: str = "dnp3"
    src: int
    dst: int
    link: dict[str, Any]
    frames: int
    length: int | None
    function_code: int | None
    function: str | None
    sequence: int | None
    fir: bool | None
    fin: bool | None
    con: bool | None
    uns: bool | None
    iin: int | None
    iin_names: tuple[str, ...] | None
    crc_ok: bool
    objects: tuple[dict[str, Any], ...]
    request_function_code: int | None = None
    request_function: str | None = None
    request_frame: int | None = None
    confirmed_frame: int | None = None


_TEMPLATE: Final = field_template(Dnp3Event, event_type="dnp3")


def new_dnp3_event(
    ts: float,
    frame: int,
    flow_id: str,
    transport: str,
    src_ip: str,
    src_port: int,
    dst_ip: str,
    dst_port: int,
    direction: str,
    src: int,
    dst: int,
    link: dict[str, Any],
    frames: int,
    length: int | None,
    function_code: int | None,
    function: str | None,
    sequence: int | None,
    fir: bool | None,
    fin: bool | None,
    con: bool | None,
    uns: bool | None,
    iin: int | None,
    iin_names: tuple[str, ...] | None,
    crc_ok: bool,
    objects: tuple[dict[str, Any], ...],
    request_function_code: int | None = None,
    request_function: str | None = None,
    request_frame: int | None = None,
    confirmed_frame: int | None = None,
) -> Dnp3Event:
    """Build a ``Dnp3Event`` equal to ``Dnp3Event(...)``, several times faster.

    The generated frozen ``__init__`` goes through ``object.__setattr__`` per field; filling a copy
    of the field template and installing it as the instance ``__dict__`` (see ``events.base``)
    skips that, and record construction is a large share of DNP3 dissection (one record per
    fragment on polling traffic).  The keys are in field order, so the JSON is the same; the
    result is an ordinary frozen instance.  Parameters are in the dataclass field order (``event_type`` aside) so hot paths may
    pass them by position; a unit test keeps both in step.
    """
    fields = _TEMPLATE.copy()
    fields["ts"] = ts
    fields["frame"] = frame
    fields["flow_id"] = flow_id
    fields["transport"] = transport
    fields["src_ip"] = src_ip
    fields["src_port"] = src_port
    fields["dst_ip"] = dst_ip
    fields["dst_port"] = dst_port
    fields["direction"] = direction
    fields["src"] = src
    fields["dst"] = dst
    fields["link"] = link
    fields["frames"] = frames
    fields["length"] = length
    fields["function_code"] = function_code
    fields["function"] = function
    fields["sequence"] = sequence
    fields["fir"] = fir
    fields["fin"] = fin
    fields["con"] = con
    fields["uns"] = uns
    fields["iin"] = iin
    fields["iin_names"] = iin_names
    fields["crc_ok"] = crc_ok
    fields["objects"] = objects
    fields["request_function_code"] = request_function_code
    fields["request_function"] = request_function
    fields["request_frame"] = request_frame
    fields["confirmed_frame"] = confirmed_frame
    return record_from(Dnp3Event, fields)
