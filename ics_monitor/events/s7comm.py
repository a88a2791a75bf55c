"""The S7 family of records: ``s7comm``, ``s7comm_plus`` and ``cotp``.

One ``s7comm`` record per S7 PDU, one ``s7comm_plus`` per S7comm-plus PDU, one ``cotp`` per COTP
connect, disconnect or error TPDU.

``s7comm`` keys per DESIGN.md section 3 (``rosctr``, ``pdu_ref``, ``function_code``, ``function``,
``error_class``, ``error_code``, ``items``, ``return_codes``, ``userdata``, ``szl_id``, ``szl_index``,
``pi_service``, ``block``) plus the names beside the raw values, the header lengths, decoded data
items (``data_items``: return code, transport size, data hex and numbers), the set-up negotiation,
the SZL contents (``szl``: header and named entries; identity lists give ``szl.identity`` with order
number, versions, serial number, names ...), PI arguments, block lists and block transfers (``block``
with ``length`` and ``sha256`` of the whole transferred block on the record that ends a transfer),
clock values, CPU mode pushes, the pairing field ``request_frame`` and ``segments`` (COTP data
TPDUs the PDU came in).  Passwords are never part of a record.

``cotp`` carries what the asset inventory needs from a connection set-up: TSAPs (hex, and for S7
connection type, rack and slot; text TSAPs of S7-1200/1500), TPDU size, references, class and the
disconnect reason.  ``s7comm_plus`` carries the header metadata only (values are not decoded).
Records share dicts with the dissector's caches: read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ics_monitor.events.base import ProtocolEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class S7commEvent(ProtocolEvent):
    """One S7comm PDU (after COTP reassembly)."""

    event_type: str = "s7comm"
    rosctr: int
    rosctr_name: str
    pdu_ref: int
    parameter_length: int
    data_length: int
    function_code: int | None
    function: str | None
    error_class: int | None = None
    error_code: int | None = None
    error_name: str | None = None
    item_count: int | None = None
    items: tuple[dict[str, Any], ...] | None = None
    data_items: tuple[dict[str, Any], ...] | None = None
    return_codes: tuple[int, ...] | None = None
    userdata: dict[str, Any] | None = None
    szl_id: int | None = None
    szl_index: int | None = None
    szl: dict[str, Any] | None = None
    setup: dict[str, int] | None = None
    pi_service: str | None = None
    pi_service_name: str | None = None
    pi_arguments: tuple[Any, ...] | None = None
    function_status: int | None = None
    block: dict[str, Any] | None = None
    block_list: tuple[dict[str, Any], ...] | None = None
    clock: str | None = None
    mode: dict[str, Any] | None = None
    data: str | None = None
    request_frame: int | None = None
    segments: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class S7commPlusEvent(ProtocolEvent):
    """One S7comm-plus PDU (a message or one fragment of it), or the first TLS record of a direction."""

    event_type: str = "s7comm_plus"
    version: int | None
    version_name: str | None
    data_length: int | None
    opcode: int | None
    opcode_name: str | None
    function_code: int | None
    function: str | None
    session_id: int | None
    sequence: int | None
    integrity: bool | None
    fragment: str | None = None
    tls: bool = False
    tls_content_type: int | None = None
    tls_content_type_name: str | None = None
    tls_version: int | None = None
    request_frame: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CotpEvent(ProtocolEvent):
    """A COTP connection request/confirm, disconnect request/confirm, error or class-4 TPDU."""

    event_type: str = "cotp"
    pdu_type: int
    pdu_type_name: str
    dst_ref: int | None = None
    src_ref: int | None = None
    credit: int | None = None
    protocol_class: int | None = None
    class_options: int | None = None
    tpdu_size: int | None = None
    src_tsap: dict[str, Any] | None = None
    dst_tsap: dict[str, Any] | None = None
    connection_type: int | None = None
    connection_type_name: str | None = None
    rack: int | None = None
    slot: int | None = None
    reason: int | None = None
    reason_name: str | None = None
    reject_cause: int | None = None
    reject_cause_name: str | None = None
    invalid_tpdu: str | None = None
    parameters: tuple[dict[str, Any], ...] | None = None


def _setter(klass: type, name: str) -> Any:
    """The slot setter of field ``name`` (from the class in the MRO that defines the slot)."""
    for owner in klass.__mro__:
        if name in owner.__dict__:
            return owner.__dict__[name].__set__
    raise AttributeError(name)


_S7COMM_FIELDS = (
    "ts",
    "frame",
    "flow_id",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "direction",
    "rosctr",
    "rosctr_name",
    "pdu_ref",
    "parameter_length",
    "data_length",
    "function_code",
    "function",
    "error_class",
    "error_code",
    "error_name",
    "item_count",
    "items",
    "data_items",
    "return_codes",
    "userdata",
    "szl_id",
    "szl_index",
    "szl",
    "setup",
    "pi_service",
    "pi_service_name",
    "pi_arguments",
    "function_status",
    "block",
    "block_list",
    "clock",
    "mode",
    "data",
    "request_frame",
    "segments",
)
(
    _set_ts,
    _set_frame,
    _set_flow_id,
    _set_transport,
    _set_src_ip,
    _set_src_port,
    _set_dst_ip,
    _set_dst_port,
    _set_direction,
    _set_rosctr,
    _set_rosctr_name,
    _set_pdu_ref,
    _set_parameter_length,
    _set_data_length,
    _set_function_code,
    _set_function,
    _set_error_class,
    _set_error_code,
    _set_error_name,
    _set_item_count,
    _set_items,
    _set_data_items,
    _set_return_codes,
    _set_userdata,
    _set_szl_id,
    _set_szl_index,
    _set_szl,
    _set_setup,
    _set_pi_service,
    _set_pi_service_name,
    _set_pi_arguments,
    _set_function_status,
    _set_block,
    _set_block_list,
    _set_clock,
    _set_mode,
    _set_data,
    _set_request_frame,
    _set_segments,
) = (_setter(S7commEvent, name) for name in _S7COMM_FIELDS)
_set_event_type = _setter(S7commEvent, "event_type")
_new = object.__new__


def new_s7comm_event(
    ts: Any,
    frame: Any,
    flow_id: Any,
    transport: Any,
    src_ip: Any,
    src_port: Any,
    dst_ip: Any,
    dst_port: Any,
    direction: Any,
    rosctr: Any,
    rosctr_name: Any,
    pdu_ref: Any,
    parameter_length: Any,
    data_length: Any,
    function_code: Any,
    function: Any,
    error_class: Any,
    error_code: Any,
    error_name: Any,
    item_count: Any,
    items: Any,
    data_items: Any,
    return_codes: Any,
    userdata: Any,
    szl_id: Any,
    szl_index: Any,
    szl: Any,
    setup: Any,
    pi_service: Any,
    pi_service_name: Any,
    pi_arguments: Any,
    function_status: Any,
    block: Any,
    block_list: Any,
    clock: Any,
    mode: Any,
    data: Any,
    request_frame: Any,
    segments: Any,
) -> S7commEvent:
    """Build an ``S7commEvent`` equal to ``S7commEvent(...)``, several times faster.

    The generated frozen ``__init__`` goes through ``object.__setattr__`` for each of its 40
    fields; calling the slot setters directly skips that, and polling traffic makes one record per
    PDU.  Parameters are in the dataclass field order (``event_type`` aside) so the hot path passes
    them by position; a unit test keeps both in step.  The result is an ordinary frozen instance.
    """
    event = _new(S7commEvent)
    _set_event_type(event, "s7comm")
    _set_ts(event, ts)
    _set_frame(event, frame)
    _set_flow_id(event, flow_id)
    _set_transport(event, transport)
    _set_src_ip(event, src_ip)
    _set_src_port(event, src_port)
    _set_dst_ip(event, dst_ip)
    _set_dst_port(event, dst_port)
    _set_direction(event, direction)
    _set_rosctr(event, rosctr)
    _set_rosctr_name(event, rosctr_name)
    _set_pdu_ref(event, pdu_ref)
    _set_parameter_length(event, parameter_length)
    _set_data_length(event, data_length)
    _set_function_code(event, function_code)
    _set_function(event, function)
    _set_error_class(event, error_class)
    _set_error_code(event, error_code)
    _set_error_name(event, error_name)
    _set_item_count(event, item_count)
    _set_items(event, items)
    _set_data_items(event, data_items)
    _set_return_codes(event, return_codes)
    _set_userdata(event, userdata)
    _set_szl_id(event, szl_id)
    _set_szl_index(event, szl_index)
    _set_szl(event, szl)
    _set_setup(event, setup)
    _set_pi_service(event, pi_service)
    _set_pi_service_name(event, pi_service_name)
    _set_pi_arguments(event, pi_arguments)
    _set_function_status(event, function_status)
    _set_block(event, block)
    _set_block_list(event, block_list)
    _set_clock(event, clock)
    _set_mode(event, mode)
    _set_data(event, data)
    _set_request_frame(event, request_frame)
    _set_segments(event, segments)
    return event
