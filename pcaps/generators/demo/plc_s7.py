"""plc2: the python-snap7 3.3 (pure-Python) S7 server, made to look like an S7-300 CPU.

The server's own protocol code answers every request; this subclass changes four things:

* SZL 0x0011, 0x001C and 0x0424 are answered with records in the layout of a real CPU (the 3.3
  server's 0x0011/0x001C records are short or unframed, and it has no 0x0424, so the C snap7
  client's ``get_cpu_state`` fails).  0x0424 reports RUN or STOP as the CPU state changes.
* Program blocks (OB, FC, FB) can be downloaded, not only DBs: the Request download is checked
  like the server does for DBs, and the block is kept in memory.  The server's own state machine
  then asks for the block (Download block) and ends it (Download ended).
* PI ``_INSE`` (activate a downloaded block) is acknowledged without changing the CPU state; the
  3.3 server treats every PI service it does not know as a start.
* DB1 is the dosing process image; it advances one step per read of DB1 by any client while the
  CPU is in RUN, and freezes in STOP, as a real process image would.

DB1 layout (24 bytes): DBD0 REAL chlorine mg/l, DBD4 REAL dosing pump %, DBD8 REAL tank
level m, DBW12 INT pump state, DBW14 INT alarms, DBD16 DINT dosed litres, DBD20 DINT scans.

Prints ``READY`` once listening; stops on SIGTERM.  Must not write any file.

usage: plc_s7.py BIND_ADDRESS
"""

from __future__ import annotations

import logging
import math
import signal
import struct
import sys
import threading
from pathlib import Path
from typing import Any

from snap7.server import CPUState, S7Area, Server
from snap7.type import SrvArea

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant

PROGRAM_BLOCK_TYPES = {0x38: "OB", 0x43: "FC", 0x45: "FB"}  # ASCII '8', 'C', 'E' in the file name
PROGRAM_BLOCK_MAX = 65536

ORDER_NUMBER = "6ES7 315-2EH14-0AB0"
FIRMWARE = (3, 2, 17)  # V3.2.17
HARDWARE = 4
AS_NAME = "WWTP-DOSING"
MODULE_NAME = "CPU 315-2 PN/DP"
PLANT_ID = "PUMPSTATION-1 DOSING"
COPYRIGHT = "Original Siemens Equipment"
SERIAL = "S C-H4N712345678"
MODULE_TYPE_NAME = "CPU 315-2 PN/DP"
# SZL 0x0424 time stamp of the last mode change: fixed, so the capture does not depend on when it
# was made (BCD: 2026-03-02 06:00:00.000, weekday 2).
MODE_CHANGE_TIME = bytes.fromhex("2603020600000002")


def _text(value: str, size: int) -> bytes:
    return value.encode("ascii").ljust(size, b" ")[:size]


def szl_0011() -> bytes:
    """Module identification: index 1 (module), 6 (basic hardware), 7 (basic firmware).

    Record (28 bytes): index W, MLFB 20 chars, BGTyp W, Ausbg W, Ausbe W.  The firmware record
    goes last: the snap7 client takes the version from the last three bytes.
    """
    records = [
        struct.pack(">H", 0x0001) + _text(ORDER_NUMBER, 20) + struct.pack(">HHH", 0, HARDWARE, 0),
        struct.pack(">H", 0x0006) + _text(ORDER_NUMBER, 20) + struct.pack(">HHH", 0, HARDWARE, 0),
        struct.pack(">H", 0x0007)
        + _text("", 20)
        + struct.pack(">HBBBB", 0, ord("V"), FIRMWARE[0], FIRMWARE[1], FIRMWARE[2]),
    ]
    return struct.pack(">HH", 28, len(records)) + b"".join(records)


def szl_001c() -> bytes:
    """Component identification: records 1-5 and 7 (34 bytes: index W + 32 bytes).

    With these six records the snap7 client finds AS name, module name, copyright, serial and
    module type name at the offsets it reads (6, 40, 108, 142, 176).
    """
    fields = [
        (1, AS_NAME, 24),
        (2, MODULE_NAME, 24),
        (3, PLANT_ID, 32),
        (4, COPYRIGHT, 26),
        (5, SERIAL, 24),
        (7, MODULE_TYPE_NAME, 32),
    ]
    records = [
        struct.pack(">H", index) + value.encode("ascii").ljust(size, b"\x00").ljust(32, b"\x00")
        for index, value, size in fields
    ]
    return struct.pack(">HH", 34, len(records)) + b"".join(records)


def szl_0424(running: bool) -> bytes:
    """Mode transition record (20 bytes): ereig W, ae, bzu-id, res 4, anlinfo 4, time 8.

    bzu-id (requested mode in bits 0-3): 8 RUN, 4 STOP; the snap7 client reads it as the state.
    ereig: 0x4302 STARTUP -> RUN, 0x4304 STOP by a PG operation.
    """
    event, mode = (0x4302, 0x08) if running else (0x4304, 0x04)
    record = struct.pack(">HBB", event, 0xFF, mode) + bytes(4) + bytes((0, 0x03, 0, 0)) + MODE_CHANGE_TIME
    return struct.pack(">HH", 20, 1) + record


class DosingProcess:
    def __init__(self, image: bytearray) -> None:
        self.image = image
        self.scans = 0
        self.update()

    def update(self) -> None:
        n = self.scans
        chlorine = 0.80 + 0.05 * math.sin(2 * math.pi * n / 40)
        pump = 35.0 + 5.0 * math.sin(2 * math.pi * n / 40 + 2)
        level = 1.80 - 0.0005 * n
        struct.pack_into(">fffhhii", self.image, 0, chlorine, pump, level, 1, 0, 5000 + n // 4, n)

    def step(self) -> None:
        self.scans += 1
        self.update()


class PlantS7Server(Server):
    """The 3.3 server with the changes listed in the module docstring."""

    def __init__(self) -> None:
        super().__init__(log=False)
        self.program_blocks: dict[tuple[int, int], bytes] = {}
        self.db1 = bytearray(plant.S7_DB_BYTES)
        self.process = DosingProcess(self.db1)
        self.register_area(SrvArea.DB, plant.S7_DB, self.db1)
        self.register_area(SrvArea.DB, 2, bytearray(64))  # recipe DB, not read in the demo
        self.register_area(SrvArea.MK, 0, bytearray(64))
        self.register_area(SrvArea.PE, 0, bytearray(16))
        self.register_area(SrvArea.PA, 0, bytearray(16))
        self.lock = threading.Lock()

    def _get_szl_data(self, szl_id: int, szl_index: int) -> bytes | None:
        if szl_id == 0x0011:
            return szl_0011()
        if szl_id == 0x001C:
            return szl_001c()
        if szl_id == 0x0424:
            return szl_0424(self.cpu_state == CPUState.RUN)
        return super()._get_szl_data(szl_id, szl_index)

    def _read_from_memory_area(self, area: Any, db_number: int, start: int, count: int) -> Any:
        if area == S7Area.DB and db_number == plant.S7_DB and self.cpu_state == CPUState.RUN:
            with self.lock:
                self.process.step()
        return super()._read_from_memory_area(area, db_number, start, count)

    def _parse_request_parameters(self, param_data: bytes) -> dict[str, Any]:
        if param_data[:1] == b"\x28" and b"_INSE" in param_data:
            return {"function_code": 0x28, "pi_service": b"_INSE"}
        return super()._parse_request_parameters(param_data)

    def _handle_plc_control(self, request: dict[str, Any], client_address: tuple[str, int]) -> bytes:
        if request.get("parameters", {}).get("pi_service") == b"_INSE":
            state = self.cpu_state
            answer = super()._handle_plc_control(request, client_address)
            self.cpu_state = state  # activating a block is not a start
            return answer
        return super()._handle_plc_control(request, client_address)

    def _handle_request_download(self, request: dict[str, Any], client_address: tuple[str, int]) -> bytes:
        raw = request.get("raw_parameters", b"")
        if len(raw) != 32 or raw[11] not in PROGRAM_BLOCK_TYPES:
            return super()._handle_request_download(request, client_address)
        # The same checks the server makes for a DB download (parameter layout of a Request
        # download: function, status, 5 reserved, file name "_0" type number "P", lengths).
        try:
            number = int(raw[12:17].decode("ascii"))
            declared = int(raw[20:26].decode("ascii"))
            mc7 = int(raw[26:32].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return self._build_error_response(request, 0x8104)
        if (
            raw[:3] != b"\x1a\x00\x01"
            or raw[8:11] != b"\x09_0"
            or raw[17:20] != b"P\x0d1"
            or declared > PROGRAM_BLOCK_MAX
            or mc7 > declared
            or client_address in self._download_contexts
        ):
            return self._build_error_response(request, 0x8104)
        self._download_contexts[client_address] = {
            "block_type": raw[11],
            "block_num": number,
            "data": bytearray(),
            "max_size": declared,
            "phase": "start_ack",
            "sequence": request["sequence"],
        }
        return struct.pack(">BBHHHHBB", 0x32, 0x03, 0, request["sequence"], 1, 0, 0, 0) + b"\x1a"

    def _handle_download_response(self, pdu: bytes, client_address: tuple[str, int]) -> bytes | None:
        context = self._download_contexts.get(client_address)
        if (
            context is not None
            and context["block_type"] in PROGRAM_BLOCK_TYPES
            and context["phase"] == "awaiting_end"
        ):
            self._download_contexts.pop(client_address, None)
            # The client's answer to Download ended: ACK_DATA, same reference, no error, the
            # one-byte parameter 0x1C and no data (the checks the server makes for a DB).
            if (
                len(pdu) != 13
                or pdu[:2] != b"\x32\x03"
                or int.from_bytes(pdu[4:6], "big") != context["sequence"]
                or pdu[6:12] != b"\x00\x01\x00\x00\x00\x00"
                or pdu[12] != 0x1C
            ):
                return self._build_error_response({"sequence": int.from_bytes(pdu[4:6], "big")}, 0x8104)
            key = (context["block_type"], context["block_num"])
            self.program_blocks[key] = bytes(context["data"])
            print(
                f"downloaded {PROGRAM_BLOCK_TYPES[key[0]]}{key[1]} ({len(context['data'])} bytes)", flush=True
            )
            return None
        return super()._handle_download_response(pdu, client_address)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="plc2 %(levelname)s %(message)s")
    server = PlantS7Server()
    server.host = sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start(tcp_port=plant.S7_PORT)
    print(f"READY s7 {server.host}:{plant.S7_PORT}", flush=True)
    stop.wait()
    server.stop()
    print("STOPPED", flush=True)


if __name__ == "__main__":
    main()
