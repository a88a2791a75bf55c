"""TPKT and COTP headers: framing, connection set-up fields, S7 TSAPs.  Pure functions, no state.

ISO-on-TCP (RFC 1006) wraps each COTP TPDU (ISO 8073 / X.224, class 0) in a TPKT::

    TPKT              COTP (DT, class 0)          COTP (CR / CC)
    +----+----+----+  +----+----+--------+        +----+------+-------+-------+-------+------------+
    | 03 | 00 | len|  | LI | F0 | EOT|NR |  data  | LI | E0/D0| dst   | src   | class | parameters |
    +----+----+----+  +----+----+--------+        |    | |CDT | ref   | ref   |option | code len v |
      1    1    2       1    1     1               +----+------+-------+-------+-------+------------+

``len`` counts the whole TPKT (header included), ``LI`` the COTP header after itself.  A DT with
EOT clear is followed by more segments of the same TSDU.  S7 puts a two-byte TSAP in the calling
(0xC1) and called (0xC2) parameters: connection type, then rack << 5 | slot of the CPU addressed.
S7-1200/1500 (S7comm-plus) use text TSAPs such as ``SIMATIC-ROOT-HMI``.  Nothing here raises on
bad bytes: problems are returned as (anomaly code, detail) pairs.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from ics_monitor.dissect.s7comm.constants import (
    CONNECTION_TYPE_NAMES,
    COTP_BAD_PARAMETER,
    COTP_PARAMETER_NAMES,
    COTP_PDU_TYPE_NAMES,
    DISCONNECT_REASON_NAMES,
    REJECT_CAUSE_NAMES,
    TPDU_SIZES,
    UNKNOWN,
    CotpParameter,
    CotpPduType,
)

TPKT: Final = struct.Struct(">BBH")
REFERENCES: Final = struct.Struct(">HH")
Problems = list[tuple[str, str]]


def tsap(value: bytes) -> dict[str, Any]:
    """A TSAP parameter: hex always; for two-byte S7 TSAPs connection type, rack and slot; text TSAPs."""
    result: dict[str, Any] = {"hex": value.hex()}
    if len(value) == 2:
        kind = value[0]
        result["connection_type"] = kind
        result["connection_type_name"] = CONNECTION_TYPE_NAMES.get(kind, UNKNOWN)
        result["rack"] = value[1] >> 5
        result["slot"] = value[1] & 0x1F
    elif value and all(0x20 <= byte < 0x7F for byte in value):
        result["text"] = value.decode("ascii")
    return result


def parse_parameters(tpdu: bytes, start: int, end: int, problems: Problems) -> list[tuple[int, bytes]]:
    """The (code, value) parameters between ``start`` and ``end`` of a COTP header."""
    parameters: list[tuple[int, bytes]] = []
    offset = start
    while offset < end:
        if offset + 2 > end:
            problems.append((COTP_BAD_PARAMETER, f"parameter code 0x{tpdu[offset]:02x} without a length"))
            break
        code, length = tpdu[offset], tpdu[offset + 1]
        if offset + 2 + length > end:
            problems.append(
                (COTP_BAD_PARAMETER, f"parameter 0x{code:02x} of {length} bytes runs past the header")
            )
            break
        parameters.append((code, tpdu[offset + 2 : offset + 2 + length]))
        offset += 2 + length
    return parameters


def parse_connection(tpdu: bytes, problems: Problems) -> dict[str, Any]:
    """Fields of a non-data TPDU (CR, CC, DR, DC, ER and the class-4 ones) as a ``cotp`` record.

    ``tpdu`` starts at the length indicator and its header (LI + 1 bytes) is wholly present.  Keys
    not applicable to the TPDU type are absent; the dissector fills the rest with None.
    """
    header_end = tpdu[0] + 1
    code = tpdu[1] >> 4
    record: dict[str, Any] = {
        "pdu_type": code,
        "pdu_type_name": COTP_PDU_TYPE_NAMES.get(code, UNKNOWN),
    }
    if header_end < 4:
        return record
    record["dst_ref"] = (tpdu[2] << 8) | tpdu[3]
    if code == CotpPduType.ER:
        if header_end >= 5:
            cause = tpdu[4]
            record["reject_cause"] = cause
            record["reject_cause_name"] = REJECT_CAUSE_NAMES.get(cause, UNKNOWN)
        parameters = parse_parameters(tpdu, 5, header_end, problems)
        for parameter, value in parameters:
            if parameter == CotpParameter.CALLING_TSAP:  # in an ER: the rejected TPDU's header
                record["invalid_tpdu"] = value.hex()
        return record
    if code not in (CotpPduType.CR, CotpPduType.CC, CotpPduType.DR, CotpPduType.DC) or header_end < 6:
        return record
    record["src_ref"] = (tpdu[4] << 8) | tpdu[5]
    fixed_end = 6
    if code in (CotpPduType.CR, CotpPduType.CC):
        record["credit"] = tpdu[1] & 0x0F
        if header_end >= 7:
            record["protocol_class"] = tpdu[6] >> 4
            record["class_options"] = tpdu[6] & 0x0F
            fixed_end = 7
    elif code == CotpPduType.DR and header_end >= 7:
        reason = tpdu[6]
        record["reason"] = reason
        record["reason_name"] = DISCONNECT_REASON_NAMES.get(reason, UNKNOWN)
        fixed_end = 7
    other: list[dict[str, Any]] = []
    for parameter, value in parse_parameters(tpdu, fixed_end, header_end, problems):
        if parameter == CotpParameter.TPDU_SIZE and len(value) == 1:
            record["tpdu_size"] = TPDU_SIZES.get(value[0], value[0])
        elif parameter == CotpParameter.CALLING_TSAP:
            record["src_tsap"] = tsap(value)
        elif parameter == CotpParameter.CALLED_TSAP:
            record["dst_tsap"] = tsap(value)
        else:
            other.append(
                {
                    "code": parameter,
                    "name": COTP_PARAMETER_NAMES.get(parameter, UNKNOWN),
                    "value": value.hex(),
                }
            )
    if other:
        record["parameters"] = other
    return record


def kept_connection_header(tpdu: bytes) -> bytes | None:
    """The head of a CR/CC cut by the snap length, as a header of what was kept, when it shows S7.

    The parameters wholly kept, each of a known code, must include a non-empty TSAP: S7 (and
    MMS) address TSAPs; RDP's cookie does not parse as parameters.  The length indicator is set
    to the kept parameters' end, so ``parse_connection`` reads them.  None otherwise.
    """
    end = min(tpdu[0] + 1, len(tpdu)) if tpdu else 0
    offset = 7  # LI, code, destination and source references, class
    tsap = False
    while offset + 2 <= end:
        code, length = tpdu[offset], tpdu[offset + 1]
        if code not in _PARAMETER_CODES or offset + 2 + length > end:
            break
        if code in (CotpParameter.CALLING_TSAP, CotpParameter.CALLED_TSAP) and length:
            tsap = True
        offset += 2 + length
    if not tsap:
        return None
    return bytes((offset - 1,)) + tpdu[1:offset]


_PARAMETER_CODES: Final = frozenset(CotpParameter)


def has_s7_tsaps(tpdu: bytes) -> bool:
    """True when a CR/CC carries a non-empty calling and called TSAP and nothing malformed.

    RDP and other ISO-on-TCP users send a CR too; S7 (and MMS) address TSAPs, RDP a cookie.
    """
    problems: Problems = []
    fixed_end = 7
    parameters = parse_parameters(tpdu, fixed_end, tpdu[0] + 1, problems)
    codes = {code for code, value in parameters if value}
    return not problems and CotpParameter.CALLING_TSAP in codes and CotpParameter.CALLED_TSAP in codes
