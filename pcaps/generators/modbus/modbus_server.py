"""Modbus server for the capture generators: a real pymodbus 3.16 stack.

Serves unit ids 1, 17 and 247 over TCP or UDP on 127.0.0.1.  Every unit has its
own data (values derived from the unit id, so captures show which unit answered):

  coils          0..127  on where address % 3 == 0
  discrete in.   0..127  on where (address + unit) is odd
  holding regs   0..199  unit * 256 + address (read/write)
                 200..209 0xA000 + address - 200 (read-only: writes give exception 2)
  input regs     0..99   40000 + unit * 100 + address

Any other address is invalid (exception 2).  The device identity (FC43/14 and
FC17) is fixed, with one private object 0x80.

Prints ``READY`` on stdout once the socket is bound; stops cleanly on SIGTERM/SIGINT.

usage: modbus_server.py {tcp,udp} PORT
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from pymodbus import FramerType
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.server import ModbusTcpServer, ModbusUdpServer
from pymodbus.simulator import DataType, SimData, SimDevice

HOST = "127.0.0.1"
UNIT_IDS = (1, 17, 247)

IDENTITY = ModbusDeviceIdentification(
    info_name={
        "VendorName": "ics-monitor test vendor",
        "ProductCode": "ICSM-PLC-1",
        "MajorMinorRevision": "3.16.1",
        "VendorUrl": "http://plc.example.invalid",
        "ProductName": "ics-monitor pymodbus server",
        "ModelName": "loopback-plc",
        "UserApplicationName": "pcaps/generators/modbus",
    },
    info={0x80: "private-object-0x80", 0x81: "serial=0042"},
)


def make_device(unit: int) -> SimDevice:
    """Build the data model of one unit (separate blocks, one bit per coil address).

    Bit blocks are a multiple of 16 long: pymodbus pads a bit block to whole
    registers, and padded addresses would silently be readable.
    """
    coils = [SimData(0, values=[addr % 3 == 0 for addr in range(128)], datatype=DataType.BITS)]
    discrete = [SimData(0, values=[(addr + unit) % 2 == 1 for addr in range(128)], datatype=DataType.BITS)]
    holding = [
        SimData(0, values=[unit * 256 + addr for addr in range(200)], datatype=DataType.REGISTERS),
        SimData(
            200,
            values=[0xA000 + addr for addr in range(10)],
            datatype=DataType.REGISTERS,
            readonly=True,
        ),
    ]
    inputs = [
        SimData(0, values=[40000 + unit * 100 + addr for addr in range(100)], datatype=DataType.REGISTERS)
    ]
    return SimDevice(unit, simdata=(coils, discrete, holding, inputs))


async def serve(transport: str, port: int, framer: str) -> None:
    """Run the server until SIGTERM/SIGINT."""
    devices = [make_device(unit) for unit in UNIT_IDS]
    server_class = ModbusTcpServer if transport == "tcp" else ModbusUdpServer
    # framer "rtu" / "ascii": serial-line frames (address, PDU, CRC; or colon, hex, LRC, CR LF)
    # over the socket, as a serial device server or gateway in transparent mode carries them.
    server = server_class(devices, identity=IDENTITY, address=(HOST, port), framer=FramerType(framer))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.shutdown()))
    await server.serve_forever(background=True)
    print(f"READY {transport} {HOST}:{port}", flush=True)
    await server.serving
    print("STOPPED", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("transport", choices=("tcp", "udp"))
    parser.add_argument("port", type=int)
    parser.add_argument("framer", nargs="?", default="socket", choices=("socket", "rtu", "ascii"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="server %(levelname)s %(message)s")
    asyncio.run(serve(args.transport, args.port, args.framer))


if __name__ == "__main__":
    main()
