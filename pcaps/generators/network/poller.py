"""An HMI that polls a Modbus/TCP PLC: FC3 holding registers 0-11 of unit 1, once a second.

One connection for the whole run, as SCADA pollers keep; each request waits for its answer.  Prints
one line per poll and the count of failures at the end (a few may be lost while the attacker's
relay takes over, and the run goes on).  Must not write any file.

usage: poller.py PLC_ADDRESS SECONDS
"""

from __future__ import annotations

import logging
import sys
import time

from pymodbus.client import ModbusTcpClient


def main() -> None:
    host, seconds = sys.argv[1], float(sys.argv[2])
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    client = ModbusTcpClient(host, port=502, timeout=2, retries=0)
    start = time.monotonic()
    failures = 0
    tick = 0
    while time.monotonic() - start < seconds:
        if not client.connected:
            client.connect()
        try:
            response = client.read_holding_registers(0, count=12, device_id=1)
            print(f"poll {tick}: {'error' if response.isError() else response.registers[:4]}", flush=True)
        except Exception as exc:  # a lost answer: counted, the poll cycle goes on
            failures += 1
            print(f"poll {tick}: {type(exc).__name__}", flush=True)
        tick += 1
        time.sleep(max(0.0, start + tick - time.monotonic()))
    client.close()
    print(f"done: {tick} polls, {failures} failures", flush=True)


if __name__ == "__main__":
    main()
