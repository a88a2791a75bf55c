"""Modbus/TCP clients of the demo, with pymodbus 3.16: the HMI and the attacker.

``hmi``: one connection to plc1 from before tick 0 to the end.  Every tick it reads holding
registers 0-11 (FC3) and then coils 0-7 (FC1); every 30 ticks (from tick 15) the operator's
next pump speed setpoint (1400..1480 rpm) is written to holding register 10 (FC6).

``attack``: one connection to plc1 in the attack phase: an FC3 read of holding register 0 to each
unit id 0-30 (a unit-id scan: only unit 1 answers with data, the others get exception 4),
FC43/14 read device identification (basic, then regular), and an FC6 write of 9999 rpm to the
setpoint register, far outside what the operator ever writes.

Every request waits for its answer (``retries=0``, so a slow answer never makes a duplicate);
the script prints one line per request and exits 1 if an outcome differs from the expected one.
Must not write any file.

usage: modbus_client.py {hmi,attack} EPOCH
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymodbus.client import ModbusTcpClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant
from plant import at, sleep_until, ticks

FAILURES: list[str] = []
OK = "ok"
DEVICE_FAILURE = 4  # pymodbus' answer to a unit id it does not serve


def request(name: str, call: Callable[[], Any], expect: object = OK) -> Any:
    try:
        response = call()
    except Exception as exc:  # counted and reported; the schedule goes on
        outcome: object = f"error {type(exc).__name__}"
        detail = str(exc)
        response = None
    else:
        outcome = response.exception_code if response.isError() else OK
        detail = str(getattr(response, "registers", None) or getattr(response, "bits", None) or "")[:80]
    mark = "  " if outcome == expect else "!!"
    print(f"{mark} {name}: {outcome} {detail}", flush=True)
    if outcome != expect:
        FAILURES.append(name)
    return response


def connect(source: tuple[str, int] | None = None) -> ModbusTcpClient:
    client = ModbusTcpClient(
        plant.PLC1.ip, port=plant.MODBUS_PORT, timeout=2, retries=0, source_address=source
    )
    if not client.connect():
        raise SystemExit(f"cannot connect to {plant.PLC1.ip}:{plant.MODBUS_PORT}")
    return client


def hmi(epoch: float) -> None:
    sleep_until(epoch - plant.LEAD_IN + 1.0)
    client = connect((plant.HMI.ip, plant.HMI_MODBUS_SOURCE_PORT))
    unit = plant.MODBUS_UNIT
    total = plant.NORMAL_TICKS + plant.ATTACK_TICKS
    schedule: list[tuple[float, str, Callable[[], Any]]] = []
    for tick in ticks(total):
        schedule.append(
            (
                at(epoch, tick, "modbus_poll"),
                f"t{tick} FC3",
                lambda: client.read_holding_registers(
                    plant.POLL_ADDRESS, count=plant.POLL_COUNT, device_id=unit
                ),
            )
        )
        schedule.append(
            (
                at(epoch, tick, "modbus_poll") + 0.001,
                f"t{tick} FC1",
                lambda: client.read_coils(plant.COIL_ADDRESS, count=plant.COIL_COUNT, device_id=unit),
            )
        )
    for number, tick in enumerate(ticks(total, plant.SETPOINT_EVERY, plant.SETPOINT_FIRST)):
        value = plant.SETPOINTS[number % len(plant.SETPOINTS)]
        schedule.append(
            (
                at(epoch, tick, "modbus_setpoint"),
                f"t{tick} FC6 setpoint {value}",
                lambda value=value: client.write_register(plant.SETPOINT_REGISTER, value, device_id=unit),
            )
        )
    for moment, name, call in sorted(schedule, key=lambda item: item[0]):
        sleep_until(moment)
        request(name, call)
    client.close()


def attacker(epoch: float) -> None:
    base = plant.NORMAL_TICKS
    times = {
        name: at(epoch, base + tick, "attack")
        for tick, tool, name, _ in plant.ATTACK_STEPS
        if tool == "modbus"
    }
    sleep_until(times["unit_scan"] - 0.2)
    client = connect()
    for number, unit in enumerate(plant.ATTACK_UNIT_SCAN):
        sleep_until(times["unit_scan"] + number * plant.ATTACK_SCAN_GAP)
        request(
            f"scan unit {unit}",
            lambda unit=unit: client.read_holding_registers(0, count=1, device_id=unit),
            OK if unit == plant.MODBUS_UNIT else DEVICE_FAILURE,
        )
    sleep_until(times["device_id"])
    for code in (1, 2):
        request(
            f"FC43/14 read code {code}",
            lambda code=code: client.read_device_information(
                read_code=code, object_id=0, device_id=plant.MODBUS_UNIT
            ),
        )
    sleep_until(times["write"])
    request(
        f"FC6 holding {plant.SETPOINT_REGISTER} = {plant.ATTACK_SETPOINT}",
        lambda: client.write_register(
            plant.SETPOINT_REGISTER, plant.ATTACK_SETPOINT, device_id=plant.MODBUS_UNIT
        ),
    )
    client.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    role, epoch = sys.argv[1], float(sys.argv[2])
    {"hmi": hmi, "attack": attacker}[role](epoch)
    if FAILURES:
        print(f"!! {len(FAILURES)} unexpected outcome(s)", flush=True)
        sys.exit(1)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
