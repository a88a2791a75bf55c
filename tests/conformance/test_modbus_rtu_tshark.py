"""Modbus RTU over TCP against tshark's ``mbrtu`` dissector, per frame, on the real-stack captures.

tshark decodes RTU framing only when told (``-d tcp.port==N,mbrtu``) and checks CRCs only with
``mbrtu.crc_verification``; we find it by content, on port 502 and on a port without a hint.
Per frame we compare the (unit, function code, exception code) of every frame and, where tshark
shows them, addresses, register and coil values and the request frame of responses; every CRC
tshark checks is good, and the flow carries no anomaly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conformance.test_modbus_tshark import _tshark, run_ours
from tests.conftest import PCAPS, need_tool

CAPTURES = [
    (PCAPS / "modbus" / "pymodbus_rtu_over_tcp.pcap", 502),
    (PCAPS / "modbus" / "pymodbus_rtu_over_tcp4001.pcap", 4001),
]
ALWAYS = {"mbrtu.unit_id", "modbus.func_code", "modbus.exception_code"}
FIELDS = [
    "frame.number",
    "mbrtu.unit_id",
    "modbus.func_code",
    "modbus.exception_code",
    "modbus.reference_num",
    "modbus.regval_uint16",
    "modbus.bitval",
    "modbus.request_frame",
    "mbrtu.crc16.status",
]


def theirs(capture: Path, port: int) -> dict[int, dict[str, list[str]]]:
    options = ["-d", f"tcp.port=={port},mbrtu", "-o", "mbrtu.crc_verification:TRUE", "-Y", "mbrtu"]
    return {
        int(values[0]): {
            field: value.split("|") if value else []
            for field, value in zip(FIELDS[1:], values[1:], strict=True)
        }
        for values in _tshark(capture, FIELDS, options)
    }


def ours(records: list[dict[str, Any]]) -> dict[int, dict[str, list[str]]]:
    frames: dict[int, dict[str, list[str]]] = {}
    for record in records:
        if record["event_type"] != "modbus":
            continue
        assert record["framing"] == "rtu" and record["transaction_id"] is None
        response = record["direction"] == "response"
        code = record["function_code"]
        exception = record["exception_code"]
        values = record["values"] or ()
        on_wire = code in (5, 6, 15, 16) or not response  # tshark shows addresses of requests and writes
        frames[record["frame"]] = {
            "mbrtu.unit_id": [str(record["unit_id"])],
            "modbus.func_code": [str(code)],
            "modbus.exception_code": [str(exception)] if exception is not None else [],
            "modbus.reference_num": [str(record["address"])]
            if on_wire and record["address"] is not None and code in (1, 2, 3, 4, 5, 6, 15, 16)
            else [],
            "modbus.regval_uint16": [str(v) for v in values]
            if (code in (3, 4) and response) or (code == 16 and not response)
            else [],
            "modbus.bitval": [str(v) for v in values] if code in (1, 2) and response else [],
            "modbus.request_frame": [str(record["request_frame"])]
            if response and record["request_frame"] is not None and exception is None
            else [],
        }
    return frames


@pytest.mark.tshark
@pytest.mark.parametrize(("capture", "port"), CAPTURES, ids=[path.name for path, _ in CAPTURES])
def test_rtu_over_tcp_agrees_with_tshark(capture: Path, port: int) -> None:
    need_tool("tshark")
    records = run_ours(capture)
    their = theirs(capture, port)
    assert len(their) == 34  # 17 transactions, every frame decoded by tshark
    assert {status for frame in their.values() for status in frame.pop("mbrtu.crc16.status")} == {"1"}  # good
    mine = ours(records)
    compared = {field for frame in their.values() for field, values in frame.items() if values}
    assert {
        "modbus.regval_uint16",
        "modbus.bitval",
        "modbus.request_frame",
        "modbus.exception_code",
    } <= compared
    disagreements = [
        f"frame {frame}: {field} tshark {values} ours {mine.get(frame, {}).get(field)}"
        for frame, fields in their.items()
        for field, values in fields.items()
        # Unit, function and exception always; the others where tshark shows them (its mbrtu
        # shows no address for FC 5/6 and no request frame for FC 5/6/8/43 answers).
        if (values or field in ALWAYS) and values != mine.get(frame, {}).get(field, [])
    ]
    assert disagreements == []
    assert set(mine) == set(their)
    assert [r["code"] for r in records if r["event_type"] == "anomaly"] == []
