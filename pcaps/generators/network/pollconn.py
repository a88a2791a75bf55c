"""A SCADA driver that opens a new Modbus/TCP connection for every poll: FC3 holding 0-11, 4 a second.

Common in practice (drivers that do not keep sessions): a few connections a second to one PLC,
which a connection-flood rule must leave alone.  Prints one line per poll.  Must not write any file.

usage: pollconn.py PLC_ADDRESS SECONDS
"""

from __future__ import annotations

import logging
import sys
import time

from pymodbus.client import ModbusTcpClient

RATE = 4.0


def main() -> None:
    host, seconds = sys.argv[1], float(sys.argv[2])
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < seconds:
        client = ModbusTcpClient(host, port=502, timeout=2, retries=0)
        try:
            client.connect()
            response = client.read_holding_registers(0, count=12, device_id=1)
            print(f"poll {tick}: {'error' if response.isError() else response.registers[:4]}", flush=True)
        except Exception as exc:  # a lost answer: the cycle goes on
            print(f"poll {tick}: {type(exc).__name__}", flush=True)
        finally:
            client.close()
        tick += 1
        time.sleep(max(0.0, start + tick / RATE - time.monotonic()))
    print(f"done: {tick} polls", flush=True)


if __name__ == "__main__":
    main()
