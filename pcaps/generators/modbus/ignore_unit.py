"""pcaps/modbus/pymodbus_ignores_unit_id.pcap: a Modbus/TCP device that answers as unit 1 whatever
unit it is asked as, then falls silent.

A pymodbus 3.16 server on 127.0.0.1:502 serves unit 5 and rewrites the unit id of every answer to
1 (its ``trace_pdu`` hook): as a device that ignores the MBAP unit id and answers as itself, where
the specification says it echoes the request's.  The master is a lenient one written here (the
pymodbus client drops an answer under another unit id): one connection, FC3 holding 0-2 of unit 5
every 0.5 s, each answer awaited up to 0.4 s.  The first 20 polls are answered; from then on the
server sends nothing (its ``trace_packet`` hook) while 40 more polls go out, 20 s in all; then the
master closes.  Captured with tcpdump on lo; the script checks what tshark finds before writing
the capture and its MANIFEST line.

usage (as root: tcpdump, port 502): .venv/bin/python pcaps/generators/modbus/ignore_unit.py
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "modbus" / "pymodbus_ignores_unit_id.pcap"
HOST, PORT = "127.0.0.1", 502
ASKED, ANSWERS_AS = 5, 1
ANSWERED, SILENT = 20, 40
PERIOD, WAIT = 0.5, 0.4
CONTENT = (
    "pymodbus 3.16.1 server on TCP 502 serving unit 5 that answers as unit 1 (its trace_pdu hook "
    "rewrites the unit id: a device ignoring the MBAP unit id), polled by a lenient master (written "
    "in the generator) on one connection: FC3 holding 0-2 of unit 5 every 0.5 s, 20 polls answered, "
    "then 40 polls (20 s) the server leaves unanswered (trace_packet sends nothing), then close"
)


async def scenario() -> tuple[int, int]:
    """Run server and master; return (answers the master got, polls sent)."""
    answering = {"on": True}

    def as_one(sending: bool, pdu: object) -> object:
        if sending:
            pdu.dev_id = ANSWERS_AS  # type: ignore[attr-defined]
        return pdu

    def gate(sending: bool, data: bytes) -> bytes:
        return data if not sending or answering["on"] else b""

    registers = [SimData(0, values=[ASKED * 256 + n for n in range(20)], datatype=DataType.REGISTERS)]
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    server = ModbusTcpServer(
        [SimDevice(ASKED, simdata=(bits, bits, registers, registers))],
        address=(HOST, PORT),
        trace_pdu=as_one,
        trace_packet=gate,
    )
    await server.serve_forever(background=True)
    reader, writer = await asyncio.open_connection(HOST, PORT)
    answers = 0
    for poll in range(ANSWERED + SILENT):
        started = time.monotonic()
        answering["on"] = poll < ANSWERED
        writer.write(struct.pack(">HHHBBHH", poll + 1, 0, 6, ASKED, 3, 0, 3))
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readexactly(7), WAIT)
            body = await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[4:6])[0] - 1), WAIT)
        except TimeoutError:
            pass
        else:
            tid, _, _, unit = struct.unpack(">HHHB", head)
            expected = b"\x03\x06" + b"".join(struct.pack(">H", ASKED * 256 + n) for n in range(3))
            if (tid, unit, body) != (poll + 1, ANSWERS_AS, expected):
                raise SystemExit(f"unexpected answer to poll {poll + 1}: {head.hex()} {body.hex()}")
            answers += 1
        await asyncio.sleep(max(0.0, PERIOD - (time.monotonic() - started)))
    writer.close()
    await writer.wait_closed()
    await asyncio.sleep(0.3)
    await server.shutdown()
    return answers, ANSWERED + SILENT


def tshark_count(pcap: Path, display_filter: str) -> int:
    result = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", display_filter], capture_output=True, text=True, check=True
    )
    return len(result.stdout.splitlines())


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root (tcpdump on lo, port 502)")
    with tempfile.TemporaryDirectory() as work:
        pcap = Path(work) / OUT.name
        log = Path(work) / "tcpdump.log"
        with log.open("w") as err:
            tcpdump = subprocess.Popen(
                ["tcpdump", "-i", "lo", "-U", "-s", "0", "-Z", "root", "-w", str(pcap), f"tcp port {PORT}"],
                stderr=err,
            )
        try:
            for _ in range(100):
                if "listening on" in log.read_text():
                    break
                if tcpdump.poll() is not None:
                    raise SystemExit(f"tcpdump exited: {log.read_text()}")
                time.sleep(0.1)
            else:
                raise SystemExit("tcpdump not listening after 10 s")
            answers, polls = asyncio.run(scenario())
            time.sleep(0.5)  # tcpdump -U writes each packet; let it read the last ones
        finally:
            if tcpdump.poll() is None:
                tcpdump.send_signal(signal.SIGINT)
                try:
                    tcpdump.wait(10)
                except subprocess.TimeoutExpired:
                    tcpdump.kill()
                    tcpdump.wait()
        if answers != ANSWERED:
            raise SystemExit(f"the master got {answers} answers, expected {ANSWERED}")
        if "0 packets dropped by kernel" not in log.read_text():
            raise SystemExit(f"tcpdump dropped packets: {log.read_text()}")
        requests = tshark_count(
            pcap, f"mbtcp.unit_id == {ASKED} && modbus.func_code == 3 && tcp.dstport == {PORT}"
        )
        responses = tshark_count(pcap, f"mbtcp && tcp.srcport == {PORT}")
        under_one = tshark_count(pcap, f"mbtcp.unit_id == {ANSWERS_AS} && tcp.srcport == {PORT}")
        if (requests, responses, under_one) != (polls, ANSWERED, ANSWERED):
            raise SystemExit(
                f"tshark finds {requests} requests, {responses} responses ({under_one} as unit 1)"
            )
        OUT.write_bytes(pcap.read_bytes())
        OUT.chmod(0o644)
    sys.path.insert(0, str(PCAPS / "generators"))
    import manifest

    manifest.update("generators/modbus/ignore_unit.py", {"modbus/pymodbus_ignores_unit_id.pcap": CONTENT})
    print(f"{OUT}: {requests} requests, {responses} answers as unit {ANSWERS_AS}")


if __name__ == "__main__":
    main()
