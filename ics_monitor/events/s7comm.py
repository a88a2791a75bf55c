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
disconnect reason.  ``s7comm_plus`` carries metadata only: the header, and for a SetVariable
request the object and attribute it writes, with the value when that is a plain integer (how a CPU
is stopped and started), for a GetVarSubStreamed request the object and attribute it reads (a
program block's, in an upload).
Records share dicts with the dissector's caches: read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from mypy_extensions import mypyc_attr

from ics_monitor.events.base import ProtocolEvent, field_template, record_from


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
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


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
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
    # SetVariable requests: the object and attribute written and, when an integer, the value;
    # GetVarSubStreamed requests: the object and (first) attribute read.
    object_id: int | None = None
    object_name: str | None = None
    attribute_id: int | None = None
    attribute: str | None = None
    value: int | None = None


@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
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


# The fields ``new_s7comm_event`` takes, in dataclass field order (``event_type`` aside).
_S7COMM_FIELDS: Final[tuple[str, ...]] = (
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
_TEMPLATE: Final = field_template(S7commEvent, event_type="s7comm")


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
    fields; filling a copy of the field template and installing it as the instance ``__dict__``
    (see ``events.base``) skips that, and polling traffic makes one record per PDU.  The keys are in field order, so
    the JSON is the same.  Parameters are in the dataclass field order (``event_type`` aside) so
    the hot path passes them by position; a unit test keeps both in step.  The result is an
    ordinary frozen instance.
    """
    fields = _TEMPLATE.copy()
    # Most PDUs fill a few of the optional fields: those left None keep the template's None (a
    # pointer test instead of a dict store each).
    fields["ts"] = ts
    fields["frame"] = frame
    fields["flow_id"] = flow_id
    fields["transport"] = transport
    fields["src_ip"] = src_ip
    fields["src_port"] = src_port
    fields["dst_ip"] = dst_ip
    fields["dst_port"] = dst_port
    fields["direction"] = direction
    fields["rosctr"] = rosctr
    fields["rosctr_name"] = rosctr_name
    fields["pdu_ref"] = pdu_ref
    fields["parameter_length"] = parameter_length
    fields["data_length"] = data_length
    fields["function_code"] = function_code
    fields["function"] = function
    if error_class is not None:
        fields["error_class"] = error_class
    if error_code is not None:
        fields["error_code"] = error_code
    if error_name is not None:
        fields["error_name"] = error_name
    if item_count is not None:
        fields["item_count"] = item_count
    if items is not None:
        fields["items"] = items
    if data_items is not None:
        fields["data_items"] = data_items
    if return_codes is not None:
        fields["return_codes"] = return_codes
    if userdata is not None:
        fields["userdata"] = userdata
    if szl_id is not None:
        fields["szl_id"] = szl_id
    if szl_index is not None:
        fields["szl_index"] = szl_index
    if szl is not None:
        fields["szl"] = szl
    if setup is not None:
        fields["setup"] = setup
    if pi_service is not None:
        fields["pi_service"] = pi_service
    if pi_service_name is not None:
        fields["pi_service_name"] = pi_service_name
    if pi_arguments is not None:
        fields["pi_arguments"] = pi_arguments
    if function_status is not None:
        fields["function_status"] = function_status
    if block is not None:
        fields["block"] = block
    if block_list is not None:
        fields["block_list"] = block_list
    if clock is not None:
        fields["clock"] = clock
    if mode is not None:
        fields["mode"] = mode
    if data is not None:
        fields["data"] = data
    if request_frame is not None:
        fields["request_frame"] = request_frame
    fields["segments"] = segments
    return record_from(S7commEvent, fields)
