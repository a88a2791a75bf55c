"""plc1: a pymodbus 3.16 Modbus/TCP server (unit 1) that behaves like a pump-station PLC.

Holding registers (unit 1; read with FC3, 10 and 11 written with FC6 by the HMI):

    0  wet-well level          0.1 %    normal 560..680 (slow sine)
    1  inflow                  0.1 l/s  normal 160..200
    2  outflow                 0.1 l/s  pump 1 speed / 8
    3  pump 1 speed (actual)   rpm      follows register 10 at 200 rpm per scan, 0..2950
    4  pump 2 speed (actual)   rpm      1480 while the level is above 66 %, else 0
    5  discharge pressure      0.01 bar 200 + speed 1 * 3 / 20 (1400 rpm: 410)
    6  motor 1 temperature     0.1 C    450 + (speed 1 - 1400) / 10
    7  alarm word              bits     0 overspeed (> 1800 rpm), 1 high pressure (> 5.5 bar)
    8  run hours               h        18342 + scans / 3600
    9  status word             bits     0 auto, 1 pump 1 running, 2 pump 2 running
   10  pump 1 speed setpoint   rpm      written by the HMI (1400..1480); the attacker writes 9999
   11  high-level alarm limit  0.1 %    900
Coils: 0 pump 1 run, 1 pump 2 run, 2 inlet valve open, 3 outlet valve open, 4 alarm horn,
5 auto mode, 6-7 spare.  Any other address is invalid (exception 2); any unit id but 1 gets
exception 4 (pymodbus' answer to an unknown unit).

The process advances one step per *HMI scan* (FC3 of registers 0-11), not per second: the
values in a capture then depend only on the order of the requests, which the time table fixes,
so they are the same on every run.  Prints ``READY`` once listening; stops on SIGTERM.
Must not write any file.

usage: plc_modbus.py BIND_ADDRESS
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import sys
from pathlib import Path

from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant

MAX_SPEED = 2950  # rpm, the drive's limit
RAMP = 200  # rpm per scan


class Process:
    """The pump station, one step per HMI scan."""

    def __init__(self) -> None:
        self.scans = 0
        self.speed = 1450
        self.setpoint = 1450
        self.registers = self.compute()

    def step(self, setpoint: int) -> list[int]:
        self.scans += 1
        self.setpoint = setpoint
        target = max(0, min(MAX_SPEED, setpoint))
        self.speed += max(-RAMP, min(RAMP, target - self.speed))
        self.registers = self.compute()
        return self.registers

    def compute(self) -> list[int]:
        n = self.scans
        level = 620 + round(60 * math.sin(2 * math.pi * n / 90))
        inflow = 180 + round(20 * math.sin(2 * math.pi * n / 45 + 1))
        pump2 = 1480 if level > 660 else 0
        pressure = 200 + self.speed * 3 // 20
        alarms = (1 if self.speed > 1800 else 0) | (2 if pressure > 550 else 0)
        status = 1 | (2 if self.speed else 0) | (4 if pump2 else 0)
        temperature = 450 + (self.speed - 1400) // 10 + round(3 * math.sin(2 * math.pi * n / 30))
        return [
            level,
            inflow,
            self.speed // 8,
            self.speed,
            pump2,
            pressure,
            temperature,
            alarms,
            18342 + n // 3600,
            status,
            self.setpoint,
            900,
        ]

    def coils(self) -> list[bool]:
        registers = self.registers
        return [registers[3] > 0, registers[4] > 0, True, True, registers[7] != 0, True, False, False]


PROCESS = Process()


async def action(
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    registers: list[int],
    values: list[int] | list[bool] | None,
) -> None:
    """pymodbus calls this before serving a request; it updates the block in place."""
    if function_code == 3 and address == plant.POLL_ADDRESS and count == plant.POLL_COUNT:
        first = address - start_address
        setpoint = registers[first + plant.SETPOINT_REGISTER]
        registers[first : first + plant.POLL_COUNT] = PROCESS.step(setpoint)
    elif function_code == 1:
        registers[0] = SimUtils.bitsToRegisters(PROCESS.coils() + [False] * 8)[0]


def make_device() -> SimDevice:
    coils = [SimData(0, values=PROCESS.coils() + [False] * 8, datatype=DataType.BITS)]
    discrete = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    holding = [SimData(0, values=PROCESS.registers, datatype=DataType.REGISTERS)]
    inputs = [SimData(0, values=[0] * 16, datatype=DataType.REGISTERS)]
    return SimDevice(plant.MODBUS_UNIT, simdata=(coils, discrete, holding, inputs), action=action)


async def serve(bind: str) -> None:
    identity = ModbusDeviceIdentification(info_name=plant.MODBUS_IDENTITY)
    server = ModbusTcpServer([make_device()], identity=identity, address=(bind, plant.MODBUS_PORT))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.shutdown()))
    await server.serve_forever(background=True)
    print(f"READY modbus {bind}:{plant.MODBUS_PORT}", flush=True)
    await server.serving
    print("STOPPED", flush=True)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="plc1 %(levelname)s %(message)s")
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "0.0.0.0"))


if __name__ == "__main__":
    main()
