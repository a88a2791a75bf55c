"""The S7 dissector: TPKT -> COTP (reassembled) -> S7comm / S7comm-plus PDUs -> records.

TCP only; port 102 by hint, any port by probe (TPKT version 3, a sane length, a COTP TPDU code
and, for data, an S7 (0x32), S7comm-plus (0x72) or TLS first byte).  ``parse`` takes every
complete TPKT in the buffer at once.

Detection: a COTP connection request confirms the flow only when it carries S7-style calling and
called TSAPs (RDP's request carries a cookie instead and goes on to the RDP identifier); a data
TPDU confirms it when its payload decodes as S7comm or S7comm-plus.  Anything else before
confirmation is not this protocol.

After confirmation broken input never stops the flow: a TPKT with a bad version or length raises an
anomaly and parsing resumes at the next plausible TPKT header in the buffer (or, when none is in
it, at the next segment that ``probe`` accepts); a bad COTP header skips its TPKT; a broken S7 PDU
still gives its record with what could be decoded, beside the anomalies.

Pairing per flow: JOB with ACK/ACK_DATA and USERDATA request with response by PDU reference,
S7comm-plus request and response by sequence number.  Multi-part USERDATA answers are reassembled by
data unit reference, block uploads and downloads are hashed chunk by chunk (SHA-256 of the whole
block on the record that ends the transfer).  Passwords (security group, NC log-in PI services) are
never recorded, only that they were sent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, Final

from ics_monitor.dissect.api import (
    NOT_THIS_PROTOCOL,
    TO_SERVER,
    Dissector,
    ParseContext,
    ParseResult,
    Probe,
    mark_truncated,
)
from ics_monitor.dissect.s7comm.constants import (
    BLOCK_TRANSFER_FUNCTIONS,
    COTP_BAD_LENGTH,
    COTP_PDU_TYPE_NAMES,
    COTP_REASSEMBLY_OVERFLOW,
    COTP_UNKNOWN_PAYLOAD,
    COTP_UNKNOWN_PDU_TYPE,
    DEFAULT_PORT,
    ERROR_NAMES,
    FUNCTION_NAMES,
    MAX_COTP_PAYLOAD,
    MAX_PENDING,
    MAX_TRANSFERS,
    MAX_UNANSWERED_REPORTED,
    PLUS_HELD_REQUEST_CUT,
    RESYNC_WINDOW,
    ROSCTR_NAMES,
    S7_BLOCK_TRANSFER_INCOMPLETE,
    S7_BLOCK_TRANSFER_OVERFLOW,
    S7_ITEM_COUNT_MISMATCH,
    S7_LENGTH_MISMATCH,
    S7_ORPHAN_RESPONSE,
    S7_PENDING_FULL,
    S7_SZL_TRUNCATED,
    S7_TRUNCATED_HEADER,
    S7_TRUNCATED_ITEM,
    S7_TRUNCATED_PARAMETER,
    S7_UNANSWERED_REQUEST,
    S7_USERDATA_REASSEMBLY_OVERFLOW,
    TLS_CONTENT_TYPES,
    TPKT_BAD_LENGTH,
    TPKT_BAD_VERSION,
    TPKT_VERSION,
    UNKNOWN,
    CotpPduType,
    Function,
    PlusVersion,
    Rosctr,
)
from ics_monitor.dissect.s7comm.parser import (
    FN_DOWNLOAD_BLOCK,
    FN_DOWNLOAD_ENDED,
    FN_END_UPLOAD,
    FN_REQUEST_DOWNLOAD,
    FN_START_UPLOAD,
    FN_UPLOAD,
    PLUS_OP_REQUEST,
    PLUS_OP_RESPONSE,
    PLUS_OP_RESPONSE2,
    PLUS_REQUEST_SET_CAP,
    PLUS_REQUEST_SET_START,
    ROSCTR_JOB,
    ROSCTR_USERDATA,
    PlusPdu,
    S7Pdu,
    decode_plus_request_set,
    decode_userdata_payload,
    parse_pdu,
    parse_plus,
    pi_service_name,
    plus_request_set_complete,
)
from ics_monitor.dissect.s7comm.state import HeldPlus, S7State, Transfer
from ics_monitor.dissect.s7comm.tpkt_cotp import has_s7_tsaps, kept_connection_header, parse_connection
from ics_monitor.events.base import Event, record_from
from ics_monitor.events.s7comm import CotpEvent, S7commPlusEvent, new_s7comm_event

# S7comm-plus keep-alive versions (no message of their own), and the fragments and records held
# behind a first fragment at most (past either the held record goes out with what it has).
_PLUS_KEEP_ALIVES: Final[tuple[int, ...]] = (PlusVersion.KEEP_ALIVE, PlusVersion.EXTENDED_KEEP_ALIVE)
MAX_HELD_PLUS_FRAGMENTS: Final = 64  # a request set split a byte per fragment needs about 31
MAX_HELD_PLUS_RECORDS: Final = 1024  # fragments and keep-alives

# COTP TPDU codes a flow may start with (class 0 connection management and data).
_OPENING_TPDUS: Final = frozenset(
    {CotpPduType.CR, CotpPduType.CC, CotpPduType.DR, CotpPduType.DC, CotpPduType.ER}
)
_COTP_REQUESTS: Final = frozenset({CotpPduType.CR, CotpPduType.DR})
_KNOWN_TPDUS: Final = frozenset(COTP_PDU_TYPE_NAMES)
# Tables of the (interpreted) constants module read on every PDU, bound here: compiled code reads a
# Final of its own module as a static, an imported name through the module's dict.
_ROSCTR_NAMES: Final = ROSCTR_NAMES
_ERROR_NAMES: Final = ERROR_NAMES
_FUNCTION_NAMES: Final = FUNCTION_NAMES
_BLOCK_TRANSFER_FUNCTIONS: Final = BLOCK_TRANSFER_FUNCTIONS
# Kinds of pending request (the first part of a pending key).
_JOB: Final = 0
_USERDATA: Final = 1
_PLUS: Final = 2
_ANSWERS: Final = frozenset({int(Rosctr.ACK), int(Rosctr.ACK_DATA)})
# Decoded-PDU cache: entries, and the largest PDU kept (an S7-400 PDU is at most 960 bytes).
CACHE_ENTRIES: Final = 4096
CACHE_PDU_SIZE: Final = 1024
# JOBs whose pending entry holds the request items (they type the answer's values).
_ITEM_FUNCTIONS: Final = frozenset({Function.READ_VAR, Function.WRITE_VAR})
_TLS_FIRST_BYTES: Final = frozenset(TLS_CONTENT_TYPES)
_PAYLOAD_FIRST_BYTES: Final = frozenset({0x32, 0x72}) | _TLS_FIRST_BYTES
# COTP TPDU codes compared on every TPKT, as constants (see the S7 parser's ROSCTR_JOB ...).
_TPDU_DT: Final = int(CotpPduType.DT)
_TPDU_CR: Final = int(CotpPduType.CR)
_TPDU_CC: Final = int(CotpPduType.CC)


def _plausible_tpkt(data: memoryview, at: int) -> bool:
    """A TPKT header at ``at`` followed by a sane COTP header (for resynchronising)."""
    if data[at] != TPKT_VERSION or data[at + 1] != 0:
        return False
    length = (data[at + 2] << 8) | data[at + 3]
    if length < 7 or at + 6 > len(data):
        return length >= 7
    return 1 < data[at + 4] < length - 4 and data[at + 5] >> 4 in _KNOWN_TPDUS


# What a PDU cut by the capture shows of itself and is no fault of the sender (``truncated``).
_CUT_PROBLEMS: Final[tuple[str, ...]] = (
    S7_LENGTH_MISMATCH,
    S7_TRUNCATED_HEADER,
    S7_TRUNCATED_PARAMETER,
    S7_TRUNCATED_ITEM,
    S7_ITEM_COUNT_MISMATCH,
    S7_SZL_TRUNCATED,
)

# TPKT version, reserved, length; COTP length indicator, TPDU code, TPDU number and EOT; the S7
# protocol id (0x32) where a data TPDU carries S7comm.
_TPKT_COTP_S7: Final = struct.Struct(">BBHBBBB")
_TPKT: Final = struct.Struct(">BBH")


class S7commDissector(Dissector):
    """S7comm and S7comm-plus over ISO-on-TCP (RFC 1006 TPKT, ISO 8073 COTP class 0)."""

    name = "s7comm"
    transports = frozenset({"tcp"})
    tcp_ports = frozenset({DEFAULT_PORT})
    max_pdu = 4 + 65535  # the largest TPKT

    def __init__(self) -> None:
        # Decoded read/write PDUs by their bytes (PDU reference left out): read-only, bounded.
        self._pdus: dict[bytes, tuple[S7Pdu, tuple[tuple[str, str], ...]]] = {}

    def probe(self, data: memoryview, direction: int) -> Probe:
        """TPKT version 3, a length of at least 7, a known COTP TPDU; data starting like S7."""
        size = len(data)
        if size >= 1 and data[0] != TPKT_VERSION:
            return Probe.NO
        if size >= 2 and data[1] != 0:
            return Probe.NO
        if size < 6:
            return Probe.MORE
        length = (data[2] << 8) | data[3]
        indicator = data[4]
        code = data[5] >> 4
        if length < 7 or indicator < 2 or indicator + 5 > length or code not in _KNOWN_TPDUS:
            return Probe.NO
        if code != _TPDU_DT:
            return Probe.YES if code in _OPENING_TPDUS else Probe.NO
        start = 5 + indicator
        if length == start:
            return Probe.YES  # an empty data TPDU (the keep-alive of S7-1200/1500)
        if size <= start:
            return Probe.MORE
        return Probe.YES if data[start] in _PAYLOAD_FIRST_BYTES else Probe.NO

    def new_state(self, ctx: ParseContext) -> Any:
        """COTP buffers, pending requests and transfers of one flow."""
        heads = (
            (ctx.flow_id, ctx.transport, *ctx.endpoints(0)),
            (ctx.flow_id, ctx.transport, *ctx.endpoints(1)),
        )
        return S7State(heads)

    # -- framing ---------------------------------------------------------------------------------------

    def parse(self, state: S7State, data: memoryview, direction: int, ctx: ParseContext) -> ParseResult:
        """Every complete TPKT in ``data``; see the module docstring for broken input."""
        size = len(data)
        position = 0
        events: list[Event] = []
        if state.plus_lost:
            # A direction lost bytes while an S7comm-plus record was held: it goes out now.
            state.plus_lost = False
            for lost, held in enumerate(state.plus_held):
                if held is not None:
                    self._plus_release(state, held, lost, events)
        valid = False
        # The headers are read with one unpack each: ``data`` is a memoryview, whose items are
        # generic lookups even compiled (nine per PDU were 2% of an S7 replay).
        version: int
        reserved: int
        length: int
        indicator: int
        tpdu_code: int
        eot: int
        protocol_id: int
        while size - position >= 4:
            if size - position >= 8:
                version, reserved, length, indicator, tpdu_code, eot, protocol_id = _TPKT_COTP_S7.unpack_from(
                    data, position
                )
            else:  # too short for the fast path below anyway
                version, reserved, length = _TPKT.unpack_from(data, position)
                indicator = tpdu_code = eot = protocol_id = 0
            if version != TPKT_VERSION or reserved != 0 or length < 7:
                if not state.confirmed:
                    return NOT_THIS_PROTOCOL
                if version != TPKT_VERSION or reserved != 0:
                    code, detail = TPKT_BAD_VERSION, f"TPKT version {version}"
                else:
                    code, detail = TPKT_BAD_LENGTH, f"TPKT length {length}"
                found = self._resync(data, position + 1)
                if found is None:
                    events.append(ctx.anomaly(code, direction, f"{detail}; rest of the segment skipped"))
                    return ParseResult(reject=True, events=events)
                events.append(ctx.anomaly(code, direction, f"{detail}; {found - position} bytes skipped"))
                position = found
                continue
            if size - position < length:
                break
            if (
                tpdu_code == 0xF0  # COTP data, class 0: the hot path
                and indicator == 2
                and eot & 0x80
                and state.confirmed
                and state.segments[direction] is None
                and not state.discarding[direction]
                and length > 7
                and protocol_id == 0x32
            ):
                self._s7(state, data[position + 7 : position + length].tobytes(), 1, direction, ctx, events)
                position += length
                continue
            ok = self._tpdu(state, bytes(data[position + 4 : position + length]), direction, ctx, events)
            if not state.confirmed:
                if not ok:
                    return NOT_THIS_PROTOCOL
                state.confirmed = True
                valid = True
            position += length
        if position:
            return ParseResult(position, 0, events, valid=valid)
        if size < 4:
            return ParseResult(0, 4 - size, events)
        return ParseResult(0, ((data[2] << 8) | data[3]) - size, events)

    @staticmethod
    def _resync(data: memoryview, start: int) -> int | None:
        """Offset of the next plausible TPKT header within RESYNC_WINDOW bytes of ``start``."""
        end = min(len(data) - 3, start + RESYNC_WINDOW)
        for at in range(start, end):
            if data[at] == TPKT_VERSION and _plausible_tpkt(data, at):
                return at
        return None

    def _tpdu(
        self, state: S7State, tpdu: bytes, direction: int, ctx: ParseContext, events: list[Event]
    ) -> bool:
        """One COTP TPDU; True when it is well formed (it may then confirm the flow)."""
        size = len(tpdu)
        indicator = tpdu[0]
        if indicator < 1 or indicator + 1 > size:
            events.append(
                ctx.anomaly(COTP_BAD_LENGTH, direction, f"length indicator {indicator} in a {size}-byte TPDU")
            )
            return False
        code = tpdu[1] >> 4
        if code == _TPDU_DT:
            if indicator < 2:
                events.append(ctx.anomaly(COTP_BAD_LENGTH, direction, "data TPDU without its EOT byte"))
                return False
            payload = tpdu[indicator + 1 :]
            if not tpdu[2] & 0x80:  # EOT clear: more segments of this TSDU follow
                if not state.confirmed and payload and payload[0] not in _PAYLOAD_FIRST_BYTES:
                    return False
                if payload and not state.add_segment(direction, payload):
                    events.append(
                        ctx.anomaly(
                            COTP_REASSEMBLY_OVERFLOW,
                            direction,
                            f"COTP data without end of TSDU beyond {MAX_COTP_PAYLOAD} bytes; the TSDU is dropped",
                        )
                    )
                return True
            whole, segments = state.end_segments(direction, payload)
            return self._payload(state, whole, segments, direction, ctx, events)
        if code not in _KNOWN_TPDUS:
            events.append(ctx.anomaly(COTP_UNKNOWN_PDU_TYPE, direction, f"TPDU code 0x{code:x}"))
            return False
        if not state.confirmed:
            if code not in _OPENING_TPDUS:
                return False
            if code in (_TPDU_CR, _TPDU_CC) and not has_s7_tsaps(tpdu):
                # RDP and other ISO-on-TCP users send a CR and a CC too, with no TSAPs; a CC
                # decides alone when the CR was not seen whole (cut by the snap length, or
                # before the capture started).
                return False
        problems: list[tuple[str, str]] = []
        fields = parse_connection(tpdu, problems)
        for problem_code, detail in problems:
            events.append(ctx.anomaly(problem_code, direction, detail))
        if problems and not state.confirmed:
            return False
        events.append(self._cotp_event(state, fields, code, direction, ctx))
        return True

    def _cotp_event(
        self, state: S7State, fields: dict[str, Any], code: int, direction: int, ctx: ParseContext
    ) -> CotpEvent:
        flow_id, transport, src_ip, src_port, dst_ip, dst_port = state.heads[direction]
        called = fields.get("dst_tsap") or {}
        parameters = fields.get("parameters")
        # In CotpEvent's field order (see ``record_from``).
        return record_from(
            CotpEvent,
            {
                "event_type": "cotp",
                "ts": ctx.ts,
                "frame": ctx.frame,
                "flow_id": flow_id,
                "transport": transport,
                "src_ip": src_ip,
                "src_port": src_port,
                "dst_ip": dst_ip,
                "dst_port": dst_port,
                "direction": "request" if code in _COTP_REQUESTS else "response",
                "pdu_type": fields["pdu_type"],
                "pdu_type_name": fields["pdu_type_name"],
                "dst_ref": fields.get("dst_ref"),
                "src_ref": fields.get("src_ref"),
                "credit": fields.get("credit"),
                "protocol_class": fields.get("protocol_class"),
                "class_options": fields.get("class_options"),
                "tpdu_size": fields.get("tpdu_size"),
                "src_tsap": fields.get("src_tsap"),
                "dst_tsap": fields.get("dst_tsap"),
                # The called TSAP addresses the CPU: its connection type, rack and slot.
                "connection_type": called.get("connection_type"),
                "connection_type_name": called.get("connection_type_name"),
                "rack": called.get("rack"),
                "slot": called.get("slot"),
                "reason": fields.get("reason"),
                "reason_name": fields.get("reason_name"),
                "reject_cause": fields.get("reject_cause"),
                "reject_cause_name": fields.get("reject_cause_name"),
                "invalid_tpdu": fields.get("invalid_tpdu"),
                "parameters": tuple(parameters) if parameters else None,
            },
        )

    def _payload(
        self,
        state: S7State,
        payload: bytes,
        segments: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> bool:
        """A whole COTP TSDU: S7comm, S7comm-plus, TLS, nothing (keep-alive) or unknown."""
        if not payload:
            return True
        first = payload[0]
        if first == 0x32:
            return self._s7(state, payload, segments, direction, ctx, events)
        if first == 0x72:
            return self._plus(state, payload, direction, ctx, events)
        if first in _TLS_FIRST_BYTES and len(payload) >= 3 and payload[1] == 3:
            if not state.tls_reported[direction]:
                state.tls_reported[direction] = True
                events.append(self._tls_event(state, payload, direction, ctx))
            return True
        if not state.confirmed:
            return False
        if not state.unknown_payload_reported:
            state.unknown_payload_reported = True
            events.append(
                ctx.anomaly(
                    COTP_UNKNOWN_PAYLOAD,
                    direction,
                    f"COTP data starting 0x{first:02x} (not S7); further ones on this flow not reported",
                )
            )
        return True

    # -- S7comm ----------------------------------------------------------------------------------------

    def _s7(
        self,
        state: S7State,
        pdu: bytes,
        segments: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> bool:
        size = len(pdu)
        rosctr = pdu[1] if size > 1 else 0
        pdu_ref = (pdu[4] << 8) | pdu[5] if size >= 6 else 0
        request = None
        answered = rosctr in _ANSWERS
        if answered:
            request = state.answer((_JOB, 1 - direction, pdu_ref))
        requests = request[2] if request is not None and request[1] in _ITEM_FUNCTIONS else None
        # Polling repeats the same read/write PDUs all day: decode each distinct one once.  The key
        # leaves out the PDU reference and adds the request's transport sizes (they type values).
        # USERDATA answers (SZL reads, clock ...) repeat too; they are cached once decoded, below.
        key = None
        cached = None
        header_length = 12 if answered else 10
        if header_length < size <= CACHE_PDU_SIZE and (
            rosctr == ROSCTR_USERDATA or pdu[header_length] in _ITEM_FUNCTIONS
        ):
            key = pdu[:4] + pdu[6:]
            if requests is not None:
                key += bytes(item.get("transport_size", 0) for item in requests)
            cached = self._pdus.get(key)
        if cached is None:
            problem_list: list[tuple[str, str]] = []
            parsed = parse_pdu(pdu, problem_list, requests)
            problems = tuple(problem_list)
            if key is not None and rosctr != ROSCTR_USERDATA:
                self._remember(key, parsed, problems)
        else:
            parsed, problems = cached
        for code, detail in problems:
            events.append(ctx.anomaly(code, direction, detail))
        # A new name, not ``rosctr = parsed.rosctr``: compiled (mypyc) code checks the declared
        # int type of ``rosctr`` at every assignment, so None must not pass through it.
        parsed_rosctr = parsed.rosctr
        if parsed_rosctr is None:
            return False
        rosctr = parsed_rosctr
        request_frame = None
        items = parsed.items
        block = parsed.block
        function_code = parsed.function_code
        userdata = parsed.userdata
        if rosctr == ROSCTR_JOB:
            self._job(state, parsed, pdu_ref, direction, ctx, events)
            block = parsed.block
            role = "request"
        elif answered:
            role = "response"
            if request is None:
                if not state.lost_requests[1 - direction]:
                    events.append(
                        ctx.anomaly(
                            S7_ORPHAN_RESPONSE,
                            direction,
                            f"{_ROSCTR_NAMES[rosctr]} PDU reference {pdu_ref}: no request seen",
                        )
                    )
            else:
                request_frame = request[0]
                if function_code is None:
                    function_code = request[1]  # an ACK has no parameter: name what it answers
                if requests is not None and items is None:
                    items = requests
                if function_code in _BLOCK_TRANSFER_FUNCTIONS:
                    block = self._answer_transfer(state, parsed, request, direction, ctx, events)
        elif rosctr != ROSCTR_USERDATA:
            role = "request" if direction == TO_SERVER else "response"  # unknown PDU type: by direction
        else:
            request_frame, more = self._userdata(
                state, parsed, pdu_ref, direction, ctx, events, cached is not None
            )
            if more is not None and key is not None:
                self._remember(key, parsed, problems + more)
            block = parsed.block
            items = parsed.items  # cyclic-data subscriptions carry items in the USERDATA payload
            function_code = None
            if userdata is None:  # parameter cut short: by direction, as an unknown PDU type
                role = "request" if direction == TO_SERVER else "response"
            else:
                role = "request" if userdata["type"] == 1 else "response"
        error = None
        error_class = parsed.error_class
        if error_class is not None:
            error = _ERROR_NAMES.get((error_class << 8) | (parsed.error_code or 0), UNKNOWN)
        flow_id, transport, src_ip, src_port, dst_ip, dst_port = state.heads[direction]
        service = parsed.pi_service
        # Positional, in field order (the hot path): see new_s7comm_event.
        events.append(
            new_s7comm_event(
                ctx.ts,
                ctx.frame,
                flow_id,
                transport,
                src_ip,
                src_port,
                dst_ip,
                dst_port,
                role,
                rosctr,
                _ROSCTR_NAMES.get(rosctr, UNKNOWN),
                pdu_ref,
                parsed.parameter_length,
                parsed.data_length,
                function_code,
                _FUNCTION_NAMES.get(function_code, UNKNOWN) if function_code is not None else None,
                error_class,
                parsed.error_code,
                error,
                parsed.item_count,
                items,
                parsed.data_items,
                parsed.return_codes,
                userdata,
                parsed.szl_id,
                parsed.szl_index,
                parsed.szl,
                parsed.setup,
                service,
                pi_service_name(service) if service is not None else None,
                parsed.pi_arguments,
                parsed.function_status,
                block,
                parsed.block_list,
                parsed.clock,
                parsed.mode,
                parsed.data,
                request_frame,
                segments,
            )
        )
        return rosctr in _ROSCTR_NAMES  # an unknown PDU type does not confirm a flow

    def _job(
        self,
        state: S7State,
        parsed: S7Pdu,
        pdu_ref: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> None:
        """Remember a JOB for its answer; start or finish block transfers."""
        function = parsed.function_code
        detail: Any = parsed.items
        block = parsed.block
        if function is None or function not in _BLOCK_TRANSFER_FUNCTIONS:
            pass  # reads, writes, PI services ...: the request items are the detail
        elif function == FN_REQUEST_DOWNLOAD and block is not None:
            detail = ("request_download", block.get("file_name"), block)
        elif function == FN_DOWNLOAD_BLOCK and block is not None:
            detail = ("download", block.get("file_name"), block)
        elif function == FN_START_UPLOAD and block is not None:
            detail = ("start_upload", None, block)
        elif function == FN_UPLOAD:
            transfer = state.uploads.get(parsed.upload_id) if parsed.upload_id is not None else None
            if transfer is not None and transfer.block:
                parsed.block = transfer.block
            detail = ("upload", parsed.upload_id, parsed.block)
        elif function == FN_DOWNLOAD_ENDED and block is not None:
            transfer = state.downloads.pop(block.get("file_name", ""), None)
            if transfer is not None:
                parsed.block = {**transfer.summary(), **block}
        elif function == FN_END_UPLOAD and parsed.upload_id is not None:
            transfer = state.uploads.pop(parsed.upload_id, None)
            if transfer is not None:
                parsed.block = {**transfer.summary(), **(block or {}), "upload_id": parsed.upload_id}
        if not state.request((_JOB, direction, pdu_ref), (ctx.frame, function, detail)):
            events.append(
                ctx.anomaly(
                    S7_PENDING_FULL, direction, f"{MAX_PENDING} unanswered requests; the oldest dropped"
                )
            )

    def _open(
        self,
        state: S7State,
        table: dict[Any, Transfer],
        key: Any,
        block: dict[str, Any] | None,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> Transfer | None:
        transfer = state.transfer(table, key, block, ctx.frame)
        if transfer is None:
            events.append(
                ctx.anomaly(
                    S7_BLOCK_TRANSFER_OVERFLOW,
                    direction,
                    f"{MAX_TRANSFERS} block transfers in progress on one flow; {key} not followed",
                )
            )
        return transfer

    def _answer_transfer(
        self,
        state: S7State,
        parsed: S7Pdu,
        request: tuple[int, int | None, Any],
        direction: int,
        ctx: ParseContext,
        events: list[Event],
    ) -> dict[str, Any] | None:
        """Feed upload/download answers into their transfer; return the record's ``block``."""
        detail = request[2]
        if not isinstance(detail, tuple) or len(detail) != 3 or not isinstance(detail[0], str):
            return parsed.block
        kind, key = detail[0], detail[1]
        block: dict[str, Any] | None = detail[2]
        if kind == "request_download":
            # The PLC accepted the download: it will now pull the block with DOWNLOAD_BLOCK jobs.
            if not parsed.error_class:
                self._open(state, state.downloads, key, block, direction, ctx, events)
            return block
        if kind == "start_upload":
            if parsed.upload_id is None or parsed.error_class:
                return block
            announced = (parsed.block or {}).get("length")
            merged = {**(block or {}), "upload_id": parsed.upload_id}
            if announced is not None:
                merged["announced_length"] = announced
            self._open(state, state.uploads, parsed.upload_id, merged, direction, ctx, events)
            return merged
        if parsed.chunk is None:
            return block
        table: dict[Any, Transfer] = state.downloads if kind == "download" else state.uploads
        transfer = self._open(state, table, key, block, direction, ctx, events)
        if transfer is None:
            return block
        if not transfer.add(parsed.chunk):
            events.append(
                ctx.anomaly(
                    S7_BLOCK_TRANSFER_OVERFLOW,
                    direction,
                    f"block transfer {key} beyond {transfer.length} bytes: no longer hashed",
                )
            )
        result = dict(transfer.block) if transfer.block else {}
        result["chunk_length"] = len(parsed.chunk)
        return result

    def _remember(self, key: bytes, parsed: S7Pdu, problems: tuple[tuple[str, str], ...]) -> None:
        if len(self._pdus) >= CACHE_ENTRIES:
            self._pdus.clear()
        self._pdus[key] = (parsed, problems)

    def _userdata(
        self,
        state: S7State,
        parsed: S7Pdu,
        pdu_ref: int,
        direction: int,
        ctx: ParseContext,
        events: list[Event],
        decoded: bool,
    ) -> tuple[int | None, tuple[tuple[str, str], ...] | None]:
        """Pair a USERDATA PDU, reassemble multi-part answers, decode the group's payload.

        ``decoded``: ``parsed`` comes from the cache, its payload is decoded already.  Returns the
        request frame and, when the PDU was complete in itself and decoded now, the decoding's
        problems (the caller may then cache it).
        """
        userdata = parsed.userdata
        if userdata is None:
            return None, None
        kind = userdata["type"]
        request_frame = None
        if kind == 1:
            if not state.request((_USERDATA, direction, pdu_ref), (ctx.frame, None, None)):
                events.append(
                    ctx.anomaly(
                        S7_PENDING_FULL, direction, f"{MAX_PENDING} unanswered requests; the oldest dropped"
                    )
                )
        elif kind == 2:
            request = state.answer((_USERDATA, 1 - direction, pdu_ref))
            if request is None:
                if not state.lost_requests[1 - direction]:
                    events.append(
                        ctx.anomaly(
                            S7_ORPHAN_RESPONSE,
                            direction,
                            f"USERDATA response PDU reference {pdu_ref}: no request seen",
                        )
                    )
            else:
                request_frame = request[0]
        payload = parsed.ud_payload
        if payload is None:
            return request_frame, None
        if decoded:
            return request_frame, None
        group = userdata["group"]
        subfunction = userdata["subfunction"]
        reference = userdata.get("data_unit_reference") or 0
        key = (direction, group, subfunction, reference)
        if kind != 1 and userdata.get("last_data_unit") is False:
            userdata["parts"] = len(state.userdata_parts.get(key, ())) + 1
            if not state.add_userdata_part(key, payload):
                events.append(
                    ctx.anomaly(
                        S7_USERDATA_REASSEMBLY_OVERFLOW,
                        direction,
                        f"multi-part USERDATA {userdata['group_name']}/{userdata['subfunction_name']} over the cap",
                    )
                )
            return request_frame, None
        whole = key not in state.userdata_parts
        if not whole:
            payload, parts = state.end_userdata(key, payload)
            userdata["parts"] = parts
        whole = whole and not reference  # a lone part with a reference is not cached (rare)
        problems: list[tuple[str, str]] = []
        decode_userdata_payload(parsed, group, subfunction, kind, payload, problems)
        for code, detail in problems:
            events.append(ctx.anomaly(code, direction, detail))
        return request_frame, tuple(problems) if whole else None

    # -- S7comm-plus and TLS ----------------------------------------------------------------------------

    def _plus(
        self, state: S7State, payload: bytes, direction: int, ctx: ParseContext, events: list[Event]
    ) -> bool:
        problems: list[tuple[str, str]] = []
        parsed = parse_plus(payload, state.plus_open[direction], problems)
        for code, detail in problems:
            events.append(ctx.anomaly(code, direction, detail))
        if parsed is None:
            return False
        fragment = parsed.fragment
        if fragment in ("first", "inner"):
            state.plus_open[direction] = True
        elif parsed.trailer:
            state.plus_open[direction] = False
        held = state.plus_held[direction]
        if held is not None and parsed.version not in _PLUS_KEEP_ALIVES:
            # Keep-alives between fragments neither add to the held message nor end it.
            held = self._plus_continue(state, held, parsed, direction, events)
        request_frame = None
        opcode = parsed.opcode
        if parsed.sequence is not None and opcode is not None:
            if opcode == PLUS_OP_REQUEST:
                state.request((_PLUS, direction, parsed.sequence), (ctx.frame, parsed.function_code, None))
            elif opcode in (PLUS_OP_RESPONSE, PLUS_OP_RESPONSE2):
                request = state.answer((_PLUS, 1 - direction, parsed.sequence))
                if request is not None:
                    request_frame = request[0]
        if fragment == "first" and parsed.body is not None and not plus_request_set_complete(parsed):
            # A request whose function or request set goes on in the next fragments (a
            # SetVariable, a GetVarSubStreamed, or one cut before its function): its record waits
            # for them (see _plus_continue), so that a stop or an upload split over fragments is
            # seen as one sent whole.
            state.plus_held[direction] = HeldPlus(parsed, ctx.frame, ctx.ts, parsed.body)
            return True
        record = self._plus_record(state, parsed, direction, ctx.frame, ctx.ts, request_frame)
        if held is None:
            events.append(record)
            return True
        # A fragment (or keep-alive) of the held message: its record comes after the first's.
        queued = held.queued
        queued.append(record)
        if parsed.version not in _PLUS_KEEP_ALIVES:
            held.fragments += 1
        if held.fragments >= MAX_HELD_PLUS_FRAGMENTS or len(queued) >= MAX_HELD_PLUS_RECORDS:
            if not plus_request_set_complete(held.first):
                events.append(
                    ctx.anomaly(
                        PLUS_HELD_REQUEST_CUT,
                        direction,
                        f"request of frame {held.frame} still undecoded after {held.fragments} fragments and "
                        f"{len(queued) - held.fragments} keep-alives: its record goes out with what it has",
                    )
                )
            self._plus_release(state, held, direction, events)
        return True

    def _plus_continue(
        self, state: S7State, held: HeldPlus, parsed: PlusPdu, direction: int, events: list[Event]
    ) -> HeldPlus | None:
        """A fragment after a held first one: add its bytes; release the records once decoded.

        The held record goes out (with what its message gave) at the last fragment, once the
        message is described (``plus_request_set_complete``), once ``PLUS_REQUEST_SET_CAP`` bytes of
        its request set are in, after ``MAX_HELD_PLUS_FRAGMENTS`` fragments or
        ``MAX_HELD_PLUS_RECORDS`` records (an anomaly then says so), or when another message
        starts (after lost bytes, say); the records of the fragments between follow it.  ``close``
        releases what is still held at the flow's end.  Returns what stays held (None once out).
        """
        first = held.first
        gathered = held.gathered
        if parsed.fragment in ("inner", "last") and parsed.body is not None:
            gathered += parsed.body
            decode_plus_request_set(first, bytes(gathered))
            if (
                parsed.fragment == "inner"
                and not plus_request_set_complete(first)
                and len(gathered) < PLUS_REQUEST_SET_START + PLUS_REQUEST_SET_CAP
            ):
                return held
        self._plus_release(state, held, direction, events)
        return None

    def _plus_release(self, state: S7State, held: HeldPlus, direction: int, events: list[Event]) -> None:
        """The held record, then those queued behind it; a request's sequence learned late is paired."""
        state.plus_held[direction] = None
        first = held.first
        if held.unpaired and first.sequence is not None and first.opcode == PLUS_OP_REQUEST:
            state.request((_PLUS, direction, first.sequence), (held.frame, first.function_code, None))
        events.append(self._plus_record(state, first, direction, held.frame, held.ts, None))
        events.extend(held.queued)

    def _plus_record(
        self,
        state: S7State,
        parsed: PlusPdu,
        direction: int,
        frame: int,
        ts: float,
        request_frame: int | None,
    ) -> S7commPlusEvent:
        flow_id, transport, src_ip, src_port, dst_ip, dst_port = state.heads[direction]
        opcode = parsed.opcode
        if opcode is None:
            role = "request" if direction == TO_SERVER else "response"
        else:
            role = "request" if opcode == PLUS_OP_REQUEST else "response"
        return S7commPlusEvent(
            ts=ts,
            frame=frame,
            flow_id=flow_id,
            transport=transport,
            src_ip=src_ip,
            src_port=src_port,
            dst_ip=dst_ip,
            dst_port=dst_port,
            direction=role,
            version=parsed.version,
            version_name=parsed.version_name,
            data_length=parsed.data_length,
            opcode=opcode,
            opcode_name=parsed.opcode_name,
            function_code=parsed.function_code,
            function=parsed.function,
            session_id=parsed.session_id,
            sequence=parsed.sequence,
            integrity=parsed.integrity,
            fragment=parsed.fragment,
            request_frame=request_frame,
            object_id=parsed.object_id,
            object_name=parsed.object_name,
            attribute_id=parsed.attribute_id,
            attribute=parsed.attribute,
            value=parsed.value,
        )

    def _tls_event(
        self, state: S7State, payload: bytes, direction: int, ctx: ParseContext
    ) -> S7commPlusEvent:
        """The first TLS record of a direction: S7comm-plus secured with TLS (TIA Portal V17+)."""
        flow_id, transport, src_ip, src_port, dst_ip, dst_port = state.heads[direction]
        content_type = payload[0]
        return S7commPlusEvent(
            ts=ctx.ts,
            frame=ctx.frame,
            flow_id=flow_id,
            transport=transport,
            src_ip=src_ip,
            src_port=src_port,
            dst_ip=dst_ip,
            dst_port=dst_port,
            direction="request" if direction == TO_SERVER else "response",
            version=None,
            version_name=None,
            data_length=None,
            opcode=None,
            opcode_name=None,
            function_code=None,
            function=None,
            session_id=None,
            sequence=None,
            integrity=None,
            tls=True,
            tls_content_type=content_type,
            tls_content_type_name=TLS_CONTENT_TYPES.get(content_type, UNKNOWN),
            tls_version=(payload[1] << 8) | payload[2],
        )

    # -- flow end --------------------------------------------------------------------------------------

    def truncated(
        self, state: Any, data: memoryview, direction: int, ctx: ParseContext, missing: int
    ) -> Sequence[Event]:
        """The head of a TPKT whose end is gone: an S7comm PDU in one COTP data TPDU, as far as kept.

        Header, function and the parameters and items kept; the request is remembered, so its
        answer pairs.  Only what the kept bytes prove is reported (not the shortness).  A CR or CC
        gives its record when the parameters kept include a TSAP (``kept_connection_header``):
        long TSAP names put S7's connection requests past short snap lengths.  A TSDU spread over
        several TPDUs and S7comm-plus give nothing.
        """
        size = len(data)
        if (
            size >= 13  # TPKT and the fixed part of a CR/CC, and a parameter's code and length
            and data[0] == TPKT_VERSION
            and data[1] == 0
            and ((data[2] << 8) | data[3]) > size
            and data[5] >> 4 in (_TPDU_CR, _TPDU_CC)
        ):
            header = kept_connection_header(data[4:].tobytes())
            if header is None:
                return ()
            state.confirmed = True
            fields = parse_connection(header, [])
            return mark_truncated([self._cotp_event(state, fields, data[5] >> 4, direction, ctx)])
        if (
            size < 17  # TPKT, COTP data and the S7 header
            or data[0] != TPKT_VERSION
            or data[1] != 0
            or ((data[2] << 8) | data[3]) <= size
            or data[4] != 2
            or data[5] != 0xF0
            or not data[6] & 0x80
            or data[7] != 0x32
            or state.segments[direction] is not None
            or state.discarding[direction]
        ):
            return ()
        events: list[Event] = []
        if self._s7(state, data[7:].tobytes(), 1, direction, ctx, events):
            state.confirmed = True
        return mark_truncated(events, *_CUT_PROBLEMS)

    def gap(self, state: Any, direction: int, ctx: ParseContext) -> None:
        """Bytes lost: a TSDU or S7comm-plus message in progress in that direction cannot complete.

        Requests lost that way leave answers that pair with nothing: until an answer pairs again,
        those are the capture's loss (``tcp.reassembly_gap``), not answers nobody asked for.
        """
        state.lost_requests[direction] = True
        state.segments[direction] = None
        state.segment_counts[direction] = 0
        state.discarding[direction] = False
        state.plus_open[direction] = False
        if state.plus_held[direction] is not None:
            state.plus_lost = True  # released by the next parse, in either direction

    def close(self, state: Any, ctx: ParseContext) -> Sequence[Event]:
        """Held S7comm-plus records, unanswered requests and unfinished block transfers at the end."""
        events: list[Event] = []
        for direction, held in enumerate(state.plus_held):
            if held is not None:
                self._plus_release(state, held, direction, events)
        unanswered = [(key, value) for key, value in state.pending.items() if key[0] != _PLUS]
        for (kind, direction, reference), (frame, function, _) in unanswered[:MAX_UNANSWERED_REPORTED]:
            what = FUNCTION_NAMES.get(function, UNKNOWN) if kind == _JOB else "USERDATA"
            events.append(
                ctx.anomaly(
                    S7_UNANSWERED_REQUEST,
                    direction,
                    f"{what} request PDU reference {reference} (frame {frame}) never answered",
                )
            )
        if len(unanswered) > MAX_UNANSWERED_REPORTED:
            events.append(
                ctx.anomaly(
                    S7_UNANSWERED_REQUEST,
                    0,
                    f"and {len(unanswered) - MAX_UNANSWERED_REPORTED} more unanswered requests",
                )
            )
        for key, transfer in [*state.downloads.items(), *state.uploads.items()]:
            events.append(
                ctx.anomaly(
                    S7_BLOCK_TRANSFER_INCOMPLETE,
                    0,
                    f"block transfer {key} unfinished after {transfer.length} bytes in {transfer.chunks} chunks",
                )
            )
        return events
