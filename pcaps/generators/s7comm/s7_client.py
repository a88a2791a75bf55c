"""S7 client scenarios for the capture generators: python-snap7 2.1's C client (libsnap7).

Runs under the interpreter of the python-snap7 2.1 venv (``generate.py`` makes it).  Each
scenario is a fixed list of steps sent in a fixed order, each waiting for its answer, so
the function/value content of a capture is the same on every run (clock values and the
time stamp in the C server's SZL 0x0424 record excepted).  Every step states the outcome
it expects from the server in ``s7_server.py`` (``ok`` or a piece of libsnap7's error
text); the script prints one transcript line per step and exits with status 1 if any
outcome differs (e.g. after a python-snap7 upgrade).  Must not write any file.

usage: s7_client.py SCENARIO PORT
scenarios: session, control, blocks, transfer, port1102
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import snap7
from s7_data import downloadable, handmade_block
from snap7.type import Area, Block, Parameter, S7DataItem, WordLen

HOST = "127.0.0.1"
OK = "ok"
# Error texts of libsnap7 1.4 (python-snap7 2.1 raises RuntimeError with them).
NOT_AVAILABLE = "Item not available"  # SZL / block list / block info: error class 0xD4, 0x81 ...
ADDRESS_OUT_OF_RANGE = "Address out of range"  # read/write var return code 0x05
ITEM_MISSING = "Item not available"  # read/write var return code 0x0A (missing DB)
NOT_AUTHORIZED = "not authorized for current protection level"  # 0xD241 on upload/download (C server)
DOWNLOAD_FAILED = "Download sequence failed"  # request download refused (C 0xD241, 3.3 0x8104)

# Bytes per element of each S7 word length, as libsnap7 lays out an item's buffer.
WORD_LENGTH_BYTES = {
    WordLen.Bit: 1,
    WordLen.Byte: 1,
    WordLen.Char: 1,
    WordLen.Word: 2,
    WordLen.Int: 2,
    WordLen.DWord: 4,
    WordLen.DInt: 4,
    WordLen.Real: 4,
    WordLen.Counter: 2,
    WordLen.Timer: 2,
}


@dataclass
class Step:
    label: str
    call: Callable[[], Any]
    expect: str = OK  # OK, or a piece of the error text libsnap7 reports


@dataclass
class Var:
    """One item of a multi-variable read or write (area, word length, DB, start, amount)."""

    area: Area
    word_length: WordLen
    db: int
    start: int  # byte offset, or bit offset (byte * 8 + bit) for WordLen.Bit, or T/C number
    amount: int
    data: bytes = b""  # for writes


def hex_of(data: bytes | bytearray, limit: int = 48) -> str:
    data = bytes(data)
    text = data[:limit].hex()
    return text + (f"..({len(data)} bytes)" if len(data) > limit else "")


class Runner:
    """Runs steps against one connection and keeps the transcript."""

    def __init__(self) -> None:
        self.client = snap7.client.Client()
        self.failures = 0
        self.count = 0

    def connect(self, port: int, rack: int, slot: int, connection_type: int = 1, pdu_size: int = 480) -> None:
        """Open the ISO-on-TCP connection (COTP CR/CC) and set up the S7 communication."""
        self.client.set_connection_type(connection_type)  # 1 PG, 2 OP, 3 S7 basic: remote TSAP high byte
        self.client.set_param(Parameter.PDURequest, pdu_size)
        self.client.connect(HOST, rack, slot, port)
        remote_tsap = (connection_type << 8) | (rack << 5) | slot
        print(
            f"   C connect rack {rack} slot {slot} type {connection_type} (remote TSAP 0x{remote_tsap:04x}) "
            f"pdu {self.client.get_pdu_length()}",
            flush=True,
        )

    def disconnect(self) -> None:
        self.client.disconnect()
        print("   C disconnect", flush=True)

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            self.count += 1
            try:
                summary = describe(step.call())
                outcome = OK
            except RuntimeError as error:
                message = (
                    error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
                )
                summary = message
                outcome = message
            matched = (outcome == OK) if step.expect == OK else (step.expect in outcome)
            if not matched:
                self.failures += 1
            marker = "   S" if matched else "!! S"
            print(
                f"{marker} {self.count:3d} {step.label:44s} expect {step.expect!r:40s} -> {summary}",
                flush=True,
            )

    # --- multi-variable access -------------------------------------------------------------

    def _items(self, variables: list[Var]) -> tuple[Any, list[Any]]:
        buffers = []
        items = (S7DataItem * len(variables))()
        for item, variable in zip(items, variables, strict=True):
            size = WORD_LENGTH_BYTES[variable.word_length] * variable.amount
            buffer = (ctypes.c_uint8 * size)(*variable.data.ljust(size, b"\x00")[:size])
            buffers.append(buffer)
            item.Area = variable.area
            item.WordLen = variable.word_length
            item.DBNumber = variable.db
            item.Start = variable.start
            item.Amount = variable.amount
            item.pData = ctypes.cast(buffer, ctypes.POINTER(ctypes.c_uint8))
        return items, buffers

    def read_vars(self, variables: list[Var]) -> str:
        items, buffers = self._items(variables)
        self.client.read_multi_vars(items)
        parts = []
        for item, buffer in zip(items, buffers, strict=True):
            parts.append(f"{bytes(buffer).hex()}" if item.Result == 0 else f"err 0x{item.Result:x}")
        return "[" + ", ".join(parts) + "]"

    def write_vars(self, variables: list[Var]) -> str:
        items, _buffers = self._items(variables)
        result = self.client.write_multi_vars(list(items))
        return f"result {result}"

    def list_of_type(self, block_type: Block) -> str:
        numbers = self.client.list_blocks_of_type(block_type, 64)
        return "numbers " + str([number for number in numbers if number])

    def szl(self, szl_id: int, index: int) -> str:
        answer = self.client.read_szl(szl_id, index)
        size = answer.Header.LengthDR * answer.Header.NDR
        data = bytes(value & 0xFF for value in answer.Data[:size])
        return f"LENTHDR {answer.Header.LengthDR} N_DR {answer.Header.NDR} data {hex_of(data, 40)}"


def describe(result: Any) -> str:
    """One line of transcript for an API result."""
    if isinstance(result, str):
        return result
    if isinstance(result, bytes | bytearray):
        return hex_of(result)
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bytearray):
        block, size = result
        return f"{size} bytes {hex_of(block[:size], 40)}"
    name = type(result).__name__
    if name == "TS7BlockInfo":
        return (
            f"type 0x{result.BlkType:x} number {result.BlkNumber} lang {result.BlkLang} "
            f"mc7 {result.MC7Size} load {result.LoadSize} author {result.Author!r}"
        )
    if name in {"BlocksList", "datetime"}:
        return str(result)
    return repr(result)


# --- scenarios ---------------------------------------------------------------------------------


def scenario_session(runner: Runner, port: int) -> None:
    """Read/write var on every area, multi-item requests with a bit access, large transfers, SZL."""
    client = runner.client
    runner.connect(port, rack=0, slot=2)
    runner.run(
        [
            Step("read DB1.DBB0 x16", lambda: client.db_read(1, 0, 16)),
            Step(
                "write DB1.DBB20 x4 deadbeef", lambda: client.db_write(1, 20, bytearray.fromhex("deadbeef"))
            ),
            Step("read DB1.DBB20 x4 (read-back)", lambda: client.db_read(1, 20, 4)),
            Step("read MB0 x8", lambda: client.mb_read(0, 8)),
            Step("write MB16 x2 5aa5", lambda: client.mb_write(16, 2, bytearray.fromhex("5aa5"))),
            Step("read MB16 x2 (read-back)", lambda: client.mb_read(16, 2)),
            Step("read EB0 x4 (inputs)", lambda: client.eb_read(0, 4)),
            Step("write AB0 x2 ff00 (outputs)", lambda: client.ab_write(0, bytearray.fromhex("ff00"))),
            Step("read AB0 x2 (read-back)", lambda: client.ab_read(0, 2)),
            Step("read T0 x2 (timers)", lambda: client.tm_read(0, 2)),
            Step("write T1 x1 0x0150", lambda: client.tm_write(1, 1, bytearray.fromhex("0150"))),
            Step("read C0 x2 (counters)", lambda: client.ct_read(0, 2)),
            Step("write C1 x1 0x0042", lambda: client.ct_write(1, 1, bytearray.fromhex("0042"))),
            Step(
                "read 10 items (BIT INT REAL WORD ... DB99)",
                lambda: runner.read_vars(
                    [
                        Var(Area.DB, WordLen.Bit, 1, 6 * 8 + 2, 1),  # DB1.DBX6.2
                        Var(Area.DB, WordLen.Int, 1, 0, 1),  # DB1.DBW0 INT 1234
                        Var(Area.DB, WordLen.Real, 1, 2, 1),  # DB1.DBD2 REAL 3.5
                        Var(Area.DB, WordLen.Word, 1, 8, 1),  # DB1.DBW8 WORD 0xBEEF
                        Var(Area.MK, WordLen.Word, 0, 4, 2),  # MW4, MW6
                        Var(Area.PE, WordLen.Byte, 0, 0, 2),  # EB0, EB1
                        Var(Area.PA, WordLen.Byte, 0, 0, 1),  # AB0
                        Var(Area.TM, WordLen.Timer, 0, 1, 1),  # T1
                        Var(Area.CT, WordLen.Counter, 0, 1, 1),  # C1
                        Var(Area.DB, WordLen.Byte, 99, 0, 1),  # DB99 does not exist
                    ]
                ),
            ),
            Step(
                "write 5 items (BIT BYTE DWORD BYTE INT)",
                lambda: runner.write_vars(
                    [
                        Var(Area.DB, WordLen.Bit, 1, 6 * 8 + 1, 1, b"\x01"),  # DB1.DBX6.1 := 1
                        Var(Area.MK, WordLen.Byte, 0, 20, 1, b"\x42"),  # MB20 := 0x42
                        Var(Area.DB, WordLen.DWord, 10, 0, 1, bytes.fromhex("01020304")),  # DB10.DBD0
                        Var(Area.PA, WordLen.Byte, 0, 4, 1, b"\x81"),  # AB4 := 0x81
                        Var(Area.DB, WordLen.Int, 1, 30, 1, struct.pack(">h", -2)),  # DB1.DBW30 := -2
                    ]
                ),
            ),
            Step(
                "read 4 items (read-back of the writes)",
                lambda: runner.read_vars(
                    [
                        Var(Area.DB, WordLen.Bit, 1, 6 * 8 + 1, 1),
                        Var(Area.DB, WordLen.Byte, 1, 6, 1),
                        Var(Area.MK, WordLen.Byte, 0, 20, 1),
                        Var(Area.DB, WordLen.DWord, 10, 0, 1),
                    ]
                ),
            ),
            Step("read DB10.DBB0 x1000 (3 PDUs)", lambda: client.db_read(10, 0, 1000)),
            Step(
                "write DB10.DBB100 x600 (2 PDUs)",
                lambda: client.db_write(10, 100, bytearray(index % 251 for index in range(600))),
            ),
            Step("read DB10.DBB100 x16 (read-back)", lambda: client.db_read(10, 100, 16)),
            Step("read DB99.DBB0 x4 (no such DB)", lambda: client.db_read(99, 0, 4), ITEM_MISSING),
            Step(
                "read DB2.DBB60 x20 (past the end)", lambda: client.db_read(2, 60, 20), ADDRESS_OUT_OF_RANGE
            ),
            Step(
                "write DB99.DBB0 x2 (no such DB)", lambda: client.db_write(99, 0, bytearray(2)), ITEM_MISSING
            ),
            Step("SZL 0x0000 index 0 (list of SZL ids)", lambda: runner.szl(0x0000, 0)),
            Step("SZL 0x0011 index 0 (module id)", lambda: runner.szl(0x0011, 0)),
            Step("SZL 0x0011 index 1", lambda: runner.szl(0x0011, 1)),
            Step("SZL 0x001C index 0 (component id)", lambda: runner.szl(0x001C, 0)),
            Step("SZL 0x001C index 1", lambda: runner.szl(0x001C, 1)),
            Step("SZL 0x0424 index 0 (mode)", lambda: runner.szl(0x0424, 0)),
            Step("SZL 0x0131 index 1 (comm. capabilities)", lambda: runner.szl(0x0131, 1)),
            Step("SZL 0x0232 index 4 (protection)", lambda: runner.szl(0x0232, 4)),
            Step("SZL 0x0131 index 0 (not served)", lambda: runner.szl(0x0131, 0), NOT_AVAILABLE),
            Step("SZL 0x0F99 index 0 (unknown id)", lambda: runner.szl(0x0F99, 0), NOT_AVAILABLE),
            Step("CPU state (SZL 0x0424)", client.get_cpu_state),
        ]
    )
    runner.disconnect()


def scenario_control(runner: Runner, port: int) -> None:
    """Stop, hot and cold start, clock, password, PI services."""
    client = runner.client
    runner.connect(port, rack=0, slot=2)
    runner.run(
        [
            Step("CPU state", client.get_cpu_state),
            Step("PLC stop (0x29)", client.plc_stop),
            Step("CPU state after stop", client.get_cpu_state),
            Step("hot start (PI P_PROGRAM)", client.plc_hot_start),
            Step("CPU state after hot start", client.get_cpu_state),
            Step("PLC stop (0x29)", client.plc_stop),
            Step("cold start (PI P_PROGRAM 'C ')", client.plc_cold_start),
            Step("CPU state after cold start", client.get_cpu_state),
            Step("read clock", lambda: "read" if client.get_plc_datetime() else "none"),
            Step(
                "set clock 2024-05-17 12:34:56",
                lambda: client.set_plc_datetime(datetime.datetime(2024, 5, 17, 12, 34, 56)),
            ),
            Step("read clock", lambda: "read" if client.get_plc_datetime() else "none"),
            Step("set session password", lambda: client.set_session_password("ICSMpw1")),
            Step("clear session password", client.clear_session_password),
            Step("compress (PI _GARB)", lambda: client.compress(1000)),
            Step("copy RAM to ROM (PI _MODU)", lambda: client.copy_ram_to_rom(2)),
            Step("delete DB2 (PI _DELE)", lambda: client.delete(Block.DB, 2)),
        ]
    )
    runner.disconnect()


def scenario_blocks(runner: Runner, port: int) -> None:
    """Block directory against the C server: list, list of type, block info; refused transfers."""
    client = runner.client
    runner.connect(port, rack=0, slot=2)
    runner.run(
        [
            Step("list blocks", client.list_blocks),
            Step("list blocks of type DB", lambda: runner.list_of_type(Block.DB)),
            Step("list blocks of type OB", lambda: runner.list_of_type(Block.OB), NOT_AVAILABLE),
            Step("list blocks of type FC", lambda: runner.list_of_type(Block.FC), NOT_AVAILABLE),
            Step("list blocks of type FB", lambda: runner.list_of_type(Block.FB), NOT_AVAILABLE),
            Step("block info DB1", lambda: client.get_block_info(Block.DB, 1)),
            Step("block info DB10", lambda: client.get_block_info(Block.DB, 10)),
            Step("block info DB99 (no such DB)", lambda: client.get_block_info(Block.DB, 99), NOT_AVAILABLE),
            Step("block info OB1", lambda: client.get_block_info(Block.OB, 1), NOT_AVAILABLE),
            Step("block info SFC46", lambda: client.get_block_info(Block.SFC, 46), NOT_AVAILABLE),
            Step("upload DB1 (refused)", lambda: client.full_upload(Block.DB, 1), NOT_AUTHORIZED),
            Step("download DB20 (refused)", lambda: client.download(handmade_block(20), 20), NOT_AUTHORIZED),
        ]
    )
    runner.disconnect()


def scenario_transfer(runner: Runner, port: int) -> None:
    """Identity SZLs, upload and download of blocks against the 3.3 server."""
    client = runner.client
    runner.connect(port, rack=0, slot=2)
    uploaded: dict[str, bytes] = {}

    def full_upload_db3() -> tuple[bytearray, int]:
        block, size = client.full_upload(Block.DB, 3)
        uploaded["DB3"] = bytes(block[:size])
        return block, size

    def download_db10() -> str:
        block = downloadable(uploaded["DB3"])
        client.download(block, 10)
        return f"{len(block)} bytes"

    def download_db2() -> str:
        client.download(downloadable(uploaded["DB3"]), 2)
        return "accepted"

    runner.run(
        [
            Step("SZL 0x0011 index 0 (module id)", lambda: runner.szl(0x0011, 0)),
            Step("SZL 0x001C index 0 (component id)", lambda: runner.szl(0x001C, 0)),
            Step("CPU state (SZL 0x0424)", client.get_cpu_state),
            Step("list blocks", client.list_blocks),
            Step("list blocks of type DB", lambda: runner.list_of_type(Block.DB)),
            Step("block info DB3", lambda: client.get_block_info(Block.DB, 3)),
            Step("upload DB1 (1 upload PDU)", lambda: hex_of(client.upload(1)[:256], 24)),
            Step("full upload DB3 (2 upload PDUs)", full_upload_db3),
            Step("upload DB99 (no such DB)", lambda: client.full_upload(Block.DB, 99), NOT_AVAILABLE),
            Step("download DB3 copy as DB10 (2 PDUs, _INSE)", download_db10),
            Step("read DB10.DBB0 x48 (downloaded block)", lambda: client.db_read(10, 0, 48)),
            Step("download DB3 copy as DB2 (too big)", download_db2, DOWNLOAD_FAILED),
        ]
    )
    runner.disconnect()


def scenario_port1102(runner: Runner, port: int) -> None:
    """Non-standard port: an OP connection with PDU 240, then an S7-basic connection."""
    client = runner.client
    runner.connect(port, rack=0, slot=1, connection_type=2, pdu_size=240)
    runner.run(
        [
            Step("read DB1.DBB0 x16", lambda: client.db_read(1, 0, 16)),
            Step("read DB10.DBB0 x600 (3 PDUs of 222)", lambda: client.db_read(10, 0, 600)),
            Step("write DB10.DBB0 x300 (2 PDUs)", lambda: client.db_write(10, 0, bytearray(range(150)) * 2)),
            Step(
                "read 3 items (BIT REAL TIMER)",
                lambda: runner.read_vars(
                    [
                        Var(Area.DB, WordLen.Bit, 1, 6 * 8 + 0, 1),
                        Var(Area.DB, WordLen.Real, 1, 2, 1),
                        Var(Area.TM, WordLen.Timer, 0, 0, 1),
                    ]
                ),
            ),
            Step("SZL 0x001C index 0 (cut at PDU 240)", lambda: runner.szl(0x001C, 0)),
            Step("CPU state (SZL 0x0424)", client.get_cpu_state),
        ]
    )
    runner.disconnect()
    second = Runner()
    second.count = runner.count
    second.connect(port, rack=0, slot=0, connection_type=3)
    second.run(
        [
            Step("read MB0 x4", lambda: second.client.mb_read(0, 4)),
            Step("SZL 0x0011 index 0", lambda: second.szl(0x0011, 0)),
        ]
    )
    second.disconnect()
    runner.failures += second.failures


SCENARIOS = {
    "session": scenario_session,
    "control": scenario_control,
    "blocks": scenario_blocks,
    "transfer": scenario_transfer,
    "port1102": scenario_port1102,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    print(f"python-snap7 {getattr(snap7, '__version__', '?')} scenario {args.scenario} port {args.port}")
    runner = Runner()
    SCENARIOS[args.scenario](runner, args.port)
    if runner.failures:
        print(f"!! {runner.failures} step(s) with an unexpected outcome", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
