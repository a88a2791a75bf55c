"""Modbus client scenarios for the capture generators: a real pymodbus 3.16 stack.

Each scenario is a fixed list of transactions sent in a fixed order; every
request waits for its response (or for the client to give up on it) before the
next one is sent, so the function/value content of a capture is the same on
every run.  Every step states the outcome it expects from the pymodbus server
in ``modbus_server.py``; the script prints one transcript line per step and exits
with status 1 if any outcome differs (e.g. after a pymodbus upgrade).

usage: modbus_client.py SCENARIO PORT
scenarios: all_functions, short, udp, polling, two_clients, rtu, ascii, write_all
"""

from __future__ import annotations

import argparse
import logging
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient, ModbusUdpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.file_message import FileRecord

HOST = "127.0.0.1"
OK = "ok"
NO_DECODE = "no-decode"  # the client could not decode the answer (pymodbus sends FC 0x80)

# Exception codes.
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4


class RawRequest(ModbusPDU):
    """A request with a hand-made PDU body, for requests the client API refuses to build.

    pymodbus frames it (MBAP header, transaction id) like any other request.
    """

    def __init__(self, function_code: int, body: bytes, dev_id: int = 1) -> None:
        super().__init__(dev_id=dev_id)
        self.function_code = function_code
        self.body = body

    def encode(self) -> bytes:
        return self.body


@dataclass
class Step:
    label: str
    call: Callable[[], Any]
    expect: object = OK  # OK, an exception code, or NO_DECODE


class Runner:
    """Run steps against one client and record mismatches."""

    def __init__(self, name: str, client: ModbusTcpClient | ModbusUdpClient) -> None:
        self.name = name
        self.client = client
        self.failures: list[str] = []

    def run(self, step: Step) -> Any:
        try:
            response = step.call()
        except ModbusIOException as exc:
            outcome: object = NO_DECODE
            detail = str(exc)
            response = None
        else:
            if response.isError():
                outcome = response.exception_code
                detail = f"fc=0x{response.function_code:02x} exception={response.exception_code}"
            else:
                outcome = OK
                detail = summarize(response)
        mark = "  " if outcome == step.expect else "!!"
        print(f"{mark} {self.name} {step.label:44s} {detail}", flush=True)
        if outcome != step.expect:
            self.failures.append(f"{self.name} {step.label}: expected {step.expect}, got {outcome}")
        return response


def summarize(response: ModbusPDU) -> str:
    """One-line summary of a good response."""
    text = f"fc={response.function_code} tid={response.transaction_id} unit={response.dev_id}"
    for attr in ("registers", "bits", "values", "information", "identifier", "records", "message"):
        value = getattr(response, attr, None)
        if value or (attr == "message" and value is not None):
            if attr == "bits":
                value = "".join("1" if bit else "0" for bit in value)
            return f"{text} {attr}={str(value)[:90]}"
    for attr in ("address", "count", "status"):
        if hasattr(response, attr):
            text += f" {attr}={getattr(response, attr)}"
    return text


def tcp_client(port: int, framer: FramerType = FramerType.SOCKET) -> ModbusTcpClient:
    # retries=0: a request is sent exactly once, so the capture never depends on timing.
    client = ModbusTcpClient(HOST, port=port, timeout=2, retries=0, framer=framer)
    if not client.connect():
        sys.exit(f"cannot connect to {HOST}:{port}")
    return client


# --------------------------------------------------------------------------- scenarios


def all_functions_steps(c: ModbusTcpClient) -> list[Step]:
    """Every function code pymodbus implements as client and server, plus exceptions."""
    u = 1
    # FileRecord's record_length is in bytes (2 per register).  The pymodbus server
    # halves the register count again when it decodes the request and rejects an odd
    # result, so every sub-request must ask for an even number of registers.
    file_records = [
        FileRecord(file_number=4, record_number=1, record_length=4),
        FileRecord(file_number=3, record_number=9, record_length=8),
    ]
    write_records = [
        FileRecord(file_number=4, record_number=7, record_data=b"\x06\xaf\x04\xbe\x10\x0d"),
    ]
    return [
        # --- bit and register reads, several addresses and quantities
        Step("FC1 read coils 0 x8", lambda: c.read_coils(0, count=8, device_id=u)),
        Step("FC1 read coils 5 x20", lambda: c.read_coils(5, count=20, device_id=u)),
        Step("FC1 read coils 0 x128 (all)", lambda: c.read_coils(0, count=128, device_id=u)),
        Step("FC2 read discrete 0 x16", lambda: c.read_discrete_inputs(0, count=16, device_id=u)),
        Step("FC2 read discrete 40 x3", lambda: c.read_discrete_inputs(40, count=3, device_id=u)),
        Step("FC3 read holding 0 x10", lambda: c.read_holding_registers(0, count=10, device_id=u)),
        Step("FC3 read holding 50 x125 (max)", lambda: c.read_holding_registers(50, count=125, device_id=u)),
        Step(
            "FC3 read holding 198 x4 (read-only part)",
            lambda: c.read_holding_registers(198, count=4, device_id=u),
        ),
        Step("FC4 read input 0 x10", lambda: c.read_input_registers(0, count=10, device_id=u)),
        Step("FC4 read input 95 x5", lambda: c.read_input_registers(95, count=5, device_id=u)),
        # --- writes, each read back
        Step("FC5 write coil 3 on", lambda: c.write_coil(3, True, device_id=u)),
        Step("FC5 write coil 0 off", lambda: c.write_coil(0, False, device_id=u)),
        Step("FC1 read back coils 0 x8", lambda: c.read_coils(0, count=8, device_id=u)),
        Step(
            "FC15 write coils 10 x10",
            lambda: c.write_coils(
                10, [True, False, True, True, False, False, True, True, True, False], device_id=u
            ),
        ),
        Step("FC1 read back coils 10 x10", lambda: c.read_coils(10, count=10, device_id=u)),
        Step("FC6 write holding 2 = 0xBEEF", lambda: c.write_register(2, 0xBEEF, device_id=u)),
        Step("FC3 read back holding 0 x4", lambda: c.read_holding_registers(0, count=4, device_id=u)),
        Step(
            "FC16 write holding 20 = 11,22,33,44",
            lambda: c.write_registers(20, [11, 22, 33, 44], device_id=u),
        ),
        Step("FC3 read back holding 20 x4", lambda: c.read_holding_registers(20, count=4, device_id=u)),
        Step(
            "FC22 mask write holding 4 and=0x00F2 or=0x0025",
            lambda: c.mask_write_register(address=4, and_mask=0x00F2, or_mask=0x0025, device_id=u),
        ),
        Step("FC3 read back holding 4 x1", lambda: c.read_holding_registers(4, count=1, device_id=u)),
        Step(
            "FC23 read 0 x6 / write 30 = 7,8,9",
            lambda: c.readwrite_registers(
                read_address=0, read_count=6, write_address=30, values=[7, 8, 9], device_id=u
            ),
        ),
        Step("FC3 read back holding 30 x3", lambda: c.read_holding_registers(30, count=3, device_id=u)),
        # --- serial-line diagnostics and status functions
        Step("FC7 read exception status", lambda: c.read_exception_status(device_id=u)),
        Step("FC8/0 return query data", lambda: c.diag_query_data(b"\xa5\x37\x12\x34", device_id=u)),
        Step(
            "FC8/1 restart comm option (keep log)", lambda: c.diag_restart_communication(False, device_id=u)
        ),
        Step(
            "FC8/1 restart comm option (clear log)", lambda: c.diag_restart_communication(True, device_id=u)
        ),
        Step("FC8/2 return diagnostic register", lambda: c.diag_read_diagnostic_register(device_id=u)),
        Step(
            "FC8/3 change ascii delimiter ';'",
            lambda: c.diag_change_ascii_input_delimeter(delimiter=0x3B00, device_id=u),
        ),
        Step(
            "FC8/3 change ascii delimiter LF",
            lambda: c.diag_change_ascii_input_delimeter(delimiter=0x0A00, device_id=u),
        ),
        # pymodbus answers FC8/4 (a real device must not) and keeps answering afterwards.
        Step(
            "FC8/4 force listen only",
            lambda: c.diag_force_listen_only(device_id=u, no_response_expected=False),
        ),
        Step(
            "FC8/1 restart comm option (leave listen only)",
            lambda: c.diag_restart_communication(False, device_id=u),
        ),
        Step("FC8/10 clear counters", lambda: c.diag_clear_counters(device_id=u)),
        Step("FC8/11 bus message count", lambda: c.diag_read_bus_message_count(device_id=u)),
        Step("FC8/12 bus comm error count", lambda: c.diag_read_bus_comm_error_count(device_id=u)),
        Step("FC8/13 bus exception error count", lambda: c.diag_read_bus_exception_error_count(device_id=u)),
        Step("FC8/14 server message count", lambda: c.diag_read_device_message_count(device_id=u)),
        Step("FC8/15 server no response count", lambda: c.diag_read_device_no_response_count(device_id=u)),
        Step("FC8/16 server NAK count", lambda: c.diag_read_device_nak_count(device_id=u)),
        Step("FC8/17 server busy count", lambda: c.diag_read_device_busy_count(device_id=u)),
        Step("FC8/18 bus char overrun count", lambda: c.diag_read_bus_char_overrun_count(device_id=u)),
        Step("FC8/19 IOP overrun count", lambda: c.diag_read_iop_overrun_count(device_id=u)),
        Step("FC8/20 clear overrun counter", lambda: c.diag_clear_overrun_counter(device_id=u)),
        Step(
            "FC8/21 get Modbus Plus statistics", lambda: c.diag_getclear_modbus_response(data=3, device_id=u)
        ),
        Step(
            "FC8/21 clear Modbus Plus statistics",
            lambda: c.diag_getclear_modbus_response(data=4, device_id=u),
        ),
        Step("FC11 get comm event counter", lambda: c.diag_get_comm_event_counter(device_id=u)),
        Step("FC12 get comm event log", lambda: c.diag_get_comm_event_log(device_id=u)),
        Step("FC17 report server id", lambda: c.report_device_id(device_id=u)),
        # --- file records and FIFO (the pymodbus server answers with fixed dummy data)
        Step("FC20 read file record (2 sub-requests)", lambda: c.read_file_record(file_records, device_id=u)),
        Step("FC21 write file record", lambda: c.write_file_record(write_records, device_id=u)),
        Step("FC24 read FIFO queue 0x04DE", lambda: c.read_fifo_queue(address=0x04DE, device_id=u)),
        # --- device identification
        Step(
            "FC43/14 read device id basic",
            lambda: c.read_device_information(read_code=1, object_id=0, device_id=u),
        ),
        Step(
            "FC43/14 read device id regular",
            lambda: c.read_device_information(read_code=2, object_id=0, device_id=u),
        ),
        Step(
            "FC43/14 read device id extended",
            lambda: c.read_device_information(read_code=3, object_id=0, device_id=u),
        ),
        Step(
            "FC43/14 read device id object 0x05",
            lambda: c.read_device_information(read_code=4, object_id=5, device_id=u),
        ),
        Step(
            "FC43/14 read device id object 0x80",
            lambda: c.read_device_information(read_code=4, object_id=0x80, device_id=u),
        ),
        # --- other unit ids
        Step("unit 17 FC3 read holding 0 x3", lambda: c.read_holding_registers(0, count=3, device_id=17)),
        Step("unit 17 FC6 write holding 1 = 1717", lambda: c.write_register(1, 1717, device_id=17)),
        Step(
            "unit 17 FC3 read back holding 0 x3", lambda: c.read_holding_registers(0, count=3, device_id=17)
        ),
        Step("unit 17 FC1 read coils 0 x8", lambda: c.read_coils(0, count=8, device_id=17)),
        Step("unit 247 FC3 read holding 0 x3", lambda: c.read_holding_registers(0, count=3, device_id=247)),
        Step("unit 247 FC4 read input 0 x3", lambda: c.read_input_registers(0, count=3, device_id=247)),
        Step("unit 247 FC2 read discrete 0 x8", lambda: c.read_discrete_inputs(0, count=8, device_id=247)),
        Step(
            "unit 247 FC43/14 read device id basic",
            lambda: c.read_device_information(read_code=1, object_id=0, device_id=247),
        ),
        Step(
            "unit 1 FC3 read holding 0 x3 (unit 17 untouched)",
            lambda: c.read_holding_registers(0, count=3, device_id=1),
        ),
        # --- exception responses
        Step(
            "unit 99 (not served) FC3",
            lambda: c.read_holding_registers(0, count=3, device_id=99),
            DEVICE_FAILURE,
        ),
        Step(
            "FC1 read coils 1000 (no such address)",
            lambda: c.read_coils(1000, count=5, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC2 read discrete 120 x16 (past the end)",
            lambda: c.read_discrete_inputs(120, count=16, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC3 read holding 5000 x2 (no such address)",
            lambda: c.read_holding_registers(5000, count=2, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC3 read holding 205 x10 (past the end)",
            lambda: c.read_holding_registers(205, count=10, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC4 read input 99 x2 (past the end)",
            lambda: c.read_input_registers(99, count=2, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC5 write coil 9999 (no such address)",
            lambda: c.write_coil(9999, True, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC6 write holding 200 (read-only)",
            lambda: c.write_register(200, 1, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC16 write holding 205 x3 (read-only)",
            lambda: c.write_registers(205, [1, 2, 3], device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC22 mask write holding 300 (no such address)",
            lambda: c.mask_write_register(address=300, and_mask=0xFFFF, or_mask=0, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC23 write holding 201 (read-only)",
            lambda: c.readwrite_registers(
                read_address=0, read_count=2, write_address=201, values=[5], device_id=u
            ),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC16 quantity 0",
            lambda: c.execute(False, RawRequest(16, struct.pack(">HHB", 0, 0, 0), dev_id=u)),
            ILLEGAL_VALUE,
        ),
        Step(
            "FC16 quantity 2 but byte count 2",
            lambda: c.execute(False, RawRequest(16, struct.pack(">HHBH", 0, 2, 2, 7), dev_id=u)),
            ILLEGAL_VALUE,
        ),
        Step(
            "FC15 quantity 10 but byte count 1",
            lambda: c.execute(False, RawRequest(15, struct.pack(">HHBB", 0, 10, 1, 0xFF), dev_id=u)),
            ILLEGAL_VALUE,
        ),
        Step(
            "FC43/14 read device id read code 5",
            lambda: c.read_device_information(read_code=5, object_id=0, device_id=u),
            ILLEGAL_VALUE,
        ),
        Step(
            "FC43/14 read device id object 0x07 (reserved)",
            lambda: c.read_device_information(read_code=4, object_id=7, device_id=u),
            ILLEGAL_ADDRESS,
        ),
        Step(
            "FC43/13 CANopen general reference",
            lambda: c.execute(False, RawRequest(0x2B, b"\x0d\x00\x00\x00", dev_id=u)),
            ILLEGAL_FUNCTION,
        ),
        Step(
            "FC8/5 reserved diagnostic sub-function",
            lambda: c.execute(False, RawRequest(8, b"\x00\x05\x00\x00", dev_id=u)),
            DEVICE_FAILURE,
        ),
        # pymodbus answers a request it cannot decode with function code 0x80
        # (exception 1), which its own client cannot decode either.
        Step(
            "FC3 quantity 0",
            lambda: c.execute(False, RawRequest(3, struct.pack(">HH", 0, 0), dev_id=u)),
            NO_DECODE,
        ),
        Step(
            "FC3 quantity 126",
            lambda: c.execute(False, RawRequest(3, struct.pack(">HH", 0, 126), dev_id=u)),
            NO_DECODE,
        ),
        Step(
            "FC9 (unassigned public code)",
            lambda: c.execute(False, RawRequest(0x09, b"", dev_id=u)),
            NO_DECODE,
        ),
        Step(
            "FC65 (user-defined code)",
            lambda: c.execute(False, RawRequest(0x41, b"\x00\x01", dev_id=u)),
            NO_DECODE,
        ),
        Step(
            "FC3 read holding 0 x2 (still answering)",
            lambda: c.read_holding_registers(0, count=2, device_id=u),
        ),
    ]


def short_steps(c: ModbusTcpClient | ModbusUdpClient) -> list[Step]:
    """Everyday reads, writes with read-back, device id and one exception."""
    return [
        Step("FC3 read holding 0 x10", lambda: c.read_holding_registers(0, count=10, device_id=1)),
        Step("FC4 read input 0 x4", lambda: c.read_input_registers(0, count=4, device_id=1)),
        Step("FC1 read coils 0 x16", lambda: c.read_coils(0, count=16, device_id=1)),
        Step("FC2 read discrete 0 x8", lambda: c.read_discrete_inputs(0, count=8, device_id=1)),
        Step("FC6 write holding 5 = 4242", lambda: c.write_register(5, 4242, device_id=1)),
        Step("FC16 write holding 10 = 1,2,3", lambda: c.write_registers(10, [1, 2, 3], device_id=1)),
        Step("FC3 read back holding 0 x13", lambda: c.read_holding_registers(0, count=13, device_id=1)),
        Step("FC5 write coil 1 on", lambda: c.write_coil(1, True, device_id=1)),
        Step(
            "FC15 write coils 4 = 1,1,0,1", lambda: c.write_coils(4, [True, True, False, True], device_id=1)
        ),
        Step("FC1 read back coils 0 x8", lambda: c.read_coils(0, count=8, device_id=1)),
        Step("unit 17 FC3 read holding 0 x2", lambda: c.read_holding_registers(0, count=2, device_id=17)),
        Step(
            "FC43/14 read device id basic",
            lambda: c.read_device_information(read_code=1, object_id=0, device_id=1),
        ),
        Step(
            "FC43/14 read device id regular",
            lambda: c.read_device_information(read_code=2, object_id=0, device_id=1),
        ),
        Step(
            "FC3 read holding 5000 x1 (no such address)",
            lambda: c.read_holding_registers(5000, count=1, device_id=1),
            ILLEGAL_ADDRESS,
        ),
    ]


def run_steps(name: str, client: ModbusTcpClient | ModbusUdpClient, steps: list[Step]) -> list[str]:
    runner = Runner(name, client)
    for step in steps:
        runner.run(step)
    return runner.failures


def scenario_all_functions(port: int) -> list[str]:
    client = tcp_client(port)
    try:
        return run_steps("A", client, all_functions_steps(client))
    finally:
        client.close()


def scenario_short(port: int) -> list[str]:
    client = tcp_client(port)
    try:
        return run_steps("A", client, short_steps(client))
    finally:
        client.close()


def scenario_rtu(port: int) -> list[str]:
    """The short scenario in RTU framing over TCP, then FC 8 return query data and restart communications.

    Query data of the usual 2 bytes: pymodbus' RTU framer sizes an FC 8 frame as 8 bytes, so a
    server given 5 data bytes never answers (the README's pitfalls).
    """
    client = tcp_client(port, FramerType.RTU)
    steps = [
        *short_steps(client),
        Step(
            "FC8/0 return query data",
            lambda: client.diag_query_data(b"\xa5\x37", device_id=1),
        ),
        Step("FC8/1 restart comm option", lambda: client.diag_restart_communication(False, device_id=1)),
        Step(
            "FC3 read holding 0 x2 (after the restart)",
            lambda: client.read_holding_registers(0, count=2, device_id=1),
        ),
    ]
    try:
        return run_steps("R", client, steps)
    finally:
        client.close()


def scenario_ascii(port: int) -> list[str]:
    """The short scenario in ASCII framing (colon, hex digits, LRC, CR LF) over TCP."""
    client = tcp_client(port, FramerType.ASCII)
    try:
        return run_steps("S", client, short_steps(client))
    finally:
        client.close()


def scenario_udp(port: int) -> list[str]:
    client = ModbusUdpClient(HOST, port=port, timeout=2, retries=0)
    if not client.connect():
        sys.exit(f"cannot open UDP socket for {HOST}:{port}")
    try:
        return run_steps("U", client, short_steps(client))
    finally:
        client.close()


POLL_PERIOD = 0.100  # seconds between poll cycles
POLL_CYCLES = 60  # about 6 s
WRITE_CYCLE = 30  # the operator write happens half way, between two poll cycles


def scenario_polling(port: int) -> list[str]:
    """HMI-like polling: FC3 holding 0..9 and FC1 coils 0..7 every 100 ms, one FC6 write."""
    client = tcp_client(port)
    runner = Runner("P", client)
    poll_hr = Step("poll FC3 holding 0 x10", lambda: client.read_holding_registers(0, count=10, device_id=1))
    poll_co = Step("poll FC1 coils 0 x8", lambda: client.read_coils(0, count=8, device_id=1))
    write = Step("operator FC6 write holding 5 = 1500", lambda: client.write_register(5, 1500, device_id=1))
    start = time.monotonic()
    try:
        for cycle in range(POLL_CYCLES):
            sleep_until(start + cycle * POLL_PERIOD)
            runner.run(poll_hr)
            runner.run(poll_co)
            if cycle == WRITE_CYCLE - 1:
                sleep_until(start + (cycle + 0.5) * POLL_PERIOD)
                runner.run(write)
    finally:
        client.close()
    return runner.failures


WRITE_ALL_PERIOD = 0.040  # a write every 40 ms (25 a second): under a request-flood threshold


def scenario_write_all(port: int) -> list[str]:
    """Smod's "write all" at a slow pace: a few polls, then FC6 0xFFFF to holding 0..199 one by one,
    then FC15 all 128 coils ON in 8 blocks of 16; polling goes on between the blocks."""
    client = tcp_client(port)
    runner = Runner("W", client)
    poll = Step("poll FC3 holding 0 x10", lambda: client.read_holding_registers(0, count=10, device_id=1))
    try:
        for _ in range(5):
            runner.run(poll)
            time.sleep(POLL_PERIOD)
        start = time.monotonic()
        for address in range(200):
            sleep_until(start + address * WRITE_ALL_PERIOD)
            runner.run(
                Step(
                    f"FC6 holding {address} = 0xffff",
                    lambda address=address: client.write_register(address, 0xFFFF, device_id=1),
                )
            )
        for block in range(8):
            runner.run(
                Step(
                    f"FC15 coils {16 * block}..{16 * block + 15} ON",
                    lambda block=block: client.write_coils(16 * block, [True] * 16, device_id=1),
                )
            )
            runner.run(poll)
    finally:
        client.close()
    return runner.failures


def sleep_until(deadline: float) -> None:
    if (delay := deadline - time.monotonic()) > 0:
        time.sleep(delay)


def scenario_two_clients(port: int) -> list[str]:
    """Two connections, both with transaction ids from 1, requests interleaved A, B, A, B..."""
    a = tcp_client(port)
    b = tcp_client(port)
    run_a, run_b = Runner("A", a), Runner("B", b)
    rounds = [
        (
            Step("FC3 read holding 0 x4", lambda: a.read_holding_registers(0, count=4, device_id=1)),
            Step("FC4 read input 0 x4", lambda: b.read_input_registers(0, count=4, device_id=1)),
        ),
        (
            Step("FC1 read coils 0 x8", lambda: a.read_coils(0, count=8, device_id=1)),
            Step("unit 17 FC3 read holding 0 x2", lambda: b.read_holding_registers(0, count=2, device_id=17)),
        ),
        (
            Step("FC6 write holding 10 = 111", lambda: a.write_register(10, 111, device_id=1)),
            Step(
                "FC3 read holding 10 x1 (sees A's write)",
                lambda: b.read_holding_registers(10, count=1, device_id=1),
            ),
        ),
        (
            Step(
                "FC3 read holding 5000 x1 (no such address)",
                lambda: a.read_holding_registers(5000, count=1, device_id=1),
                ILLEGAL_ADDRESS,
            ),
            Step("FC16 write holding 10 = 222,223", lambda: b.write_registers(10, [222, 223], device_id=1)),
        ),
        (
            Step(
                "FC3 read holding 10 x2 (sees B's write)",
                lambda: a.read_holding_registers(10, count=2, device_id=1),
            ),
            Step("FC2 read discrete 0 x8", lambda: b.read_discrete_inputs(0, count=8, device_id=1)),
        ),
        (
            Step(
                "FC43/14 read device id basic",
                lambda: a.read_device_information(read_code=1, object_id=0, device_id=1),
            ),
            Step("FC5 write coil 2 on", lambda: b.write_coil(2, True, device_id=1)),
        ),
    ]
    try:
        for step_a, step_b in rounds:
            run_a.run(step_a)
            run_b.run(step_b)
    finally:
        a.close()
        b.close()
    return run_a.failures + run_b.failures


SCENARIOS: dict[str, Callable[[int], list[str]]] = {
    "all_functions": scenario_all_functions,
    "short": scenario_short,
    "udp": scenario_udp,
    "polling": scenario_polling,
    "two_clients": scenario_two_clients,
    "rtu": scenario_rtu,
    "ascii": scenario_ascii,
    "write_all": scenario_write_all,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("port", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, format="client %(levelname)s %(message)s")
    failures = SCENARIOS[args.scenario](args.port)
    if failures:
        print("\n".join(["unexpected outcomes:", *failures]), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
