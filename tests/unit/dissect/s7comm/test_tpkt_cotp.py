"""COTP connection management TPDUs and S7 TSAPs."""

from __future__ import annotations

from ics_monitor.dissect.s7comm.tpkt_cotp import has_s7_tsaps, parse_connection, tsap
from tests.unit.dissect.s7comm.frames import CR

DISCONNECT_REQUEST = bytes(
    [
        0x06,  # length indicator
        0x80,  # DR
        0x00, 0x01,  # destination reference
        0x00, 0x02,  # source reference
        0x80,  # reason: normal disconnect
    ]
)  # fmt: skip
ERROR_TPDU = bytes(
    [
        0x08,  # length indicator
        0x70,  # ER
        0x00, 0x01,  # destination reference
        0x02,  # reject cause: invalid TPDU type
        0xC1, 0x02, 0x30, 0x80,  # parameter: the header of the rejected TPDU
    ]
)  # fmt: skip


def test_tsap_forms() -> None:
    assert tsap(b"\x02\x23") == {
        "hex": "0223",
        "connection_type": 2,
        "connection_type_name": "OP",
        "rack": 1,
        "slot": 3,
    }
    assert tsap(b"SIMATIC-ROOT-ES") == {"hex": b"SIMATIC-ROOT-ES".hex(), "text": "SIMATIC-ROOT-ES"}
    assert tsap(b"\x00\x01\x02") == {"hex": "000102"}


def test_connection_request_fields() -> None:
    problems: list[tuple[str, str]] = []
    fields = parse_connection(CR[4:], problems)
    assert problems == []
    assert (fields["pdu_type_name"], fields["dst_ref"], fields["src_ref"], fields["protocol_class"]) == (
        "CR",
        0,
        1,
        0,
    )
    assert (fields["tpdu_size"], fields["src_tsap"]["hex"], fields["dst_tsap"]["slot"]) == (1024, "0100", 2)
    assert has_s7_tsaps(CR[4:])


def test_disconnect_and_error() -> None:
    fields = parse_connection(DISCONNECT_REQUEST, [])
    assert (fields["pdu_type_name"], fields["reason"], fields["reason_name"]) == ("DR", 0x80, "NORMAL")
    fields = parse_connection(ERROR_TPDU, [])
    assert (fields["pdu_type_name"], fields["reject_cause_name"], fields["invalid_tpdu"]) == (
        "ER",
        "INVALID_TPDU_TYPE",
        "3080",
    )


def test_parameter_past_the_header() -> None:
    problems: list[tuple[str, str]] = []
    parse_connection(bytes([8, 0xE0, 0, 0, 0, 2, 0, 0xC1, 9]), problems)
    assert [code for code, _ in problems] == ["cotp.bad_parameter"]
    assert not has_s7_tsaps(bytes([8, 0xE0, 0, 0, 0, 2, 0, 0xC1, 9]))
