"""One actor of the S7 lab (``lab.py``): an HMI, an engineering station or an attacker.

Runs in its host's namespace under the project's venv (python-snap7 2.1, the C libsnap7 client).
Raw-socket steps build TPKT/COTP/S7 from the specs (RFC 1006, ISO 8073 class 0, S7comm headers)
for what no client library sends: broken openings and sessions held open.

usage: lab_actor.py PLC_IP ROLE [ARG ...]
  hmi SECONDS                 OP connection (rack 0 slot 2), read DB1.DBB0x16 every 0.5 s
  eng                         PG and OP connections in turn: CPU state, order code, DB1 read
  eng-parallel N              N PG connections open together, a DB read on each, then closed
  sweep                       plcscan-style rack/slot sweep: a connection per (rack, slot) pair
  broken                      malformed openings on port 102, a connection each
  hold N SECONDS              N S7 sessions (CR, set-up) opened and held, then closed
"""

from __future__ import annotations

import socket
import struct
import sys
import time

import snap7
from snap7.type import Areas

PORT = 102


def log(*parts: object) -> None:
    print(*parts, flush=True)


def client(plc: str, rack: int, slot: int, connection_type: int) -> snap7.client.Client:
    c = snap7.client.Client()
    c.set_connection_type(connection_type)
    c.connect(plc, rack, slot, PORT)
    return c


def hmi(plc: str, seconds: float) -> None:
    c = client(plc, 0, 2, 2)  # OP
    end = time.monotonic() + seconds
    reads = 0
    while time.monotonic() < end:
        c.read_area(Areas.DB, 1, 0, 16)
        reads += 1
        time.sleep(0.5)
    c.disconnect()
    log("hmi reads", reads)


def eng(plc: str) -> None:
    for connection_type in (1, 2):  # PG, then OP
        c = client(plc, 0, 2, connection_type)
        log("eng type", connection_type, "state", c.get_cpu_state())
        log("eng order code", c.get_order_code().OrderCode)
        log("eng DB1", bytes(c.db_read(1, 0, 8)).hex())
        c.disconnect()
        time.sleep(0.5)


def eng_parallel(plc: str, count: int) -> None:
    clients = [client(plc, 0, 2, 1) for _ in range(count)]
    for c in clients:
        c.db_read(1, 0, 4)
    time.sleep(2.0)
    for c in clients:
        c.disconnect()
    log("eng parallel", count)


def sweep(plc: str) -> None:
    for rack, slot in ((0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (1, 0), (1, 1)):
        c = snap7.client.Client()
        try:
            c.connect(plc, rack, slot, PORT)
            log("sweep", rack, slot, "connected, state", c.get_cpu_state())
        except Exception as exc:  # a refused slot is an outcome here
            log("sweep", rack, slot, "refused", exc)
        finally:
            c.disconnect()
        time.sleep(0.2)


def tpkt(cotp: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBH", 3, 0, 4 + len(cotp) if length is None else length) + cotp


def connection_request(dst_tsap: int = 0x0102) -> bytes:
    parameters = bytes([0xC0, 1, 0x0A, 0xC1, 2, 0x01, 0x00, 0xC2, 2]) + struct.pack(">H", dst_tsap)
    fixed = bytes([0xE0, 0, 0, 0, 1, 0])
    return tpkt(bytes([len(fixed) + len(parameters)]) + fixed + parameters)


def setup_communication(pdu_size: int = 480) -> bytes:
    s7 = bytes([0x32, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0xF0, 0, 0, 1, 0, 1]) + struct.pack(">H", pdu_size)
    return tpkt(bytes([2, 0xF0, 0x80]) + s7)


def raw(plc: str, payload: bytes, what: str) -> None:
    s = socket.create_connection((plc, PORT), timeout=2.0)
    s.sendall(payload)
    try:
        answer = s.recv(4096)
        log(what, "answer", len(answer), "bytes")
    except OSError as exc:
        log(what, "no answer", exc)
    s.close()
    time.sleep(0.3)


def broken(plc: str) -> None:
    raw(plc, tpkt(b""), "empty TPKT")  # TPKT length 4: no TPDU at all
    raw(plc, tpkt(bytes([6, 0x99, 0, 0, 0, 0, 0])), "undefined TPDU code 0x9")
    # A connection request whose TPKT claims 65535 bytes; the connection closes after 26.
    cr = connection_request()
    raw(plc, struct.pack(">BBH", 3, 0, 0xFFFF) + cr[4:] + bytes(4), "TPKT length 65535")
    raw(plc, bytes.fromhex("deadbeef00000001") * 4, "no TPKT at all")


def hold(plc: str, count: int, seconds: float) -> None:
    sockets = []
    for _ in range(count):
        s = socket.create_connection((plc, PORT), timeout=2.0)
        s.sendall(connection_request())
        s.recv(1024)
        s.sendall(setup_communication())
        s.recv(1024)
        sockets.append(s)
    log("holding", len(sockets), "sessions")
    time.sleep(seconds)
    for s in sockets:
        s.close()


def main() -> None:
    plc, role, *args = sys.argv[1:]
    if role == "hmi":
        hmi(plc, float(args[0]))
    elif role == "eng":
        eng(plc)
    elif role == "eng-parallel":
        eng_parallel(plc, int(args[0]))
    elif role == "sweep":
        sweep(plc)
    elif role == "broken":
        broken(plc)
    elif role == "hold":
        hold(plc, int(args[0]), float(args[1]))
    else:
        raise SystemExit(f"unknown role {role}")


if __name__ == "__main__":
    main()
