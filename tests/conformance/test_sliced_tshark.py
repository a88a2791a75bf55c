"""A capture with a short snap length, per frame against tshark: the PDU heads both tools read.

The demo's attack phase (Modbus, S7comm and DNP3 from the real stacks, with the attacker's
commands) cut to 80 and to 96 bytes a frame, as ``tcpdump -s`` records it.  tshark dissects what
each frame kept; so do we, and mark those records ``truncated``.  Per frame, the Modbus transactions
and function codes and the S7comm PDU types, references and functions must be the same.  For DNP3,
tshark reads the link header of every frame but the application header only of a frame it could
check whole; every function code tshark shows must be ours in that frame, and each of our records
must sit in a frame where tshark found a DNP3 frame from the same station.
"""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.test_modbus_tshark import run_ours
from tests.conftest import PCAPS, need_tool
from tests.support.sliced import sliced

FIELDS = [
    "frame.number",
    "mbtcp.trans_id",
    "modbus.func_code",
    "s7comm.header.rosctr",
    "s7comm.header.pduref",
    "s7comm.param.func",
    "dnp3.src",
    "dnp3.dst",
    "dnp3.al.func",
]


def tshark(capture: Path) -> dict[int, dict[str, list[str]]]:
    command = ["tshark", "-r", str(capture), "-n", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for field in FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300).stdout
    frames: dict[int, dict[str, list[str]]] = {}
    for line in output.splitlines():
        number, *values = line.split("\t")
        frames[int(number)] = {
            name: value.split("|") if value else [] for name, value in zip(FIELDS[1:], values, strict=True)
        }
    return frames


def ours_by_frame(records: list[dict[str, Any]]) -> dict[int, dict[str, list[Any]]]:
    frames: dict[int, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        frames[record["frame"]][record["event_type"]].append(record)
    return frames


@pytest.mark.parametrize("snaplen", [80, 96])
def test_sliced_capture_agrees_with_tshark_frame_by_frame(tmp_path: Path, snaplen: int) -> None:
    need_tool("tshark")
    capture = sliced(PCAPS / "demo" / "plant_attack.pcap", tmp_path / f"attack_s{snaplen}.pcap", snaplen)
    theirs = tshark(capture)
    records = run_ours(capture)
    ours = ours_by_frame(records)
    cut = sum(1 for r in records if r.get("truncated"))
    modbus = s7 = dnp3 = 0
    for frame in sorted(set(theirs) | set(ours)):
        their = theirs.get(frame, defaultdict(list))
        mine = ours.get(frame, defaultdict(list))
        # Modbus: the same transactions and function codes (tshark keeps the exception bit).
        expected = sorted(
            zip(
                map(int, their["mbtcp.trans_id"]),
                (int(c) & 0x7F for c in their["modbus.func_code"]),
                strict=True,
            )
        )
        got = sorted((r["transaction_id"], r["function_code"]) for r in mine["modbus"])
        assert got == expected, f"frame {frame}: Modbus ours {got}, tshark {expected}"
        modbus += len(got)
        # S7comm: PDU type, reference and (job and ack-data) function.
        expected_s7 = sorted(
            zip(map(int, their["s7comm.header.rosctr"]), map(int, their["s7comm.header.pduref"]), strict=True)
        )
        got_s7 = sorted((r["rosctr"], r["pdu_ref"]) for r in mine["s7comm"])
        assert got_s7 == expected_s7, f"frame {frame}: S7comm ours {got_s7}, tshark {expected_s7}"
        functions = sorted(int(f, 16) if f.startswith("0x") else int(f) for f in their["s7comm.param.func"])
        mine_functions = sorted(r["function_code"] for r in mine["s7comm"] if r["rosctr"] in (1, 3))
        assert mine_functions == functions, (
            f"frame {frame}: S7 functions ours {mine_functions}, tshark {functions}"
        )
        s7 += len(got_s7)
        # DNP3: every application function tshark read is ours; every record of ours is a frame
        # tshark found from the same station.
        for function in map(int, their["dnp3.al.func"]):
            assert function in [r["function_code"] for r in mine["dnp3"]], (
                f"frame {frame}: DNP3 function {function}"
            )
        stations = set(zip(map(int, their["dnp3.src"]), map(int, their["dnp3.dst"]), strict=True))
        for record in mine["dnp3"]:
            assert (record["src"], record["dst"]) in stations, (
                f"frame {frame}: DNP3 {record['src']}->{record['dst']}"
            )
        dnp3 += len(mine["dnp3"])
    print(
        f"\nsnap length {snaplen}: {modbus} Modbus, {s7} S7comm, {dnp3} DNP3 records agree; {cut} truncated"
    )
    assert modbus == 372 and dnp3 == 89  # every one of the whole capture (see test_truncated)
    # 80 bytes cut the COTP connection requests themselves: neither tool reads the S7 flows.
    assert s7 == (0 if snaplen == 80 else 210)
    assert cut > 50
