"""The RDP connection of the demo: a TCP 3389 listener on plc1 and the office PC's client (stdlib only).

Only the opening of an RDP connection is exchanged, which is what identifies RDP on the wire
([MS-RDPBCGR] 2.2.1.1 and 2.2.1.2):

    client -> server  TPKT | X.224 Connection Request | "Cookie: mstshash=operator\\r\\n" | RDP_NEG_REQ
    TPKT:        03 00 LL LL                      version 3, total length
    X.224 CR:    LI E0 00 00 00 00 00             length indicator, CR CDT, dst-ref, src-ref, class 0
    RDP_NEG_REQ: 01 00 08 00 03 00 00 00          type 1, flags, length 8, PROTOCOL_SSL | PROTOCOL_HYBRID

    server -> client  TPKT | X.224 Connection Confirm | RDP_NEG_RSP
    X.224 CC:    LI D0 00 00 12 34 00             CC CDT, dst-ref, src-ref 0x1234, class 0
    RDP_NEG_RSP: 02 00 08 00 01 00 00 00          type 2, flags, length 8, selected PROTOCOL_SSL

Then the client closes (the TLS handshake that would follow is left out: its random values
would make the capture differ on every run).  The server answers any number of connections and
prints one line per connection; the client exits 1 if the answer is not a confirm.
Must not write any file.

usage: rdp.py server BIND_ADDRESS | rdp.py client EPOCH
"""

from __future__ import annotations

import signal
import socket
import struct
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant
from plant import at, sleep_until

PROTOCOL_SSL, PROTOCOL_HYBRID = 0x01, 0x02
COOKIE = b"Cookie: mstshash=operator\r\n"


def tpkt(payload: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 4 + len(payload)) + payload


def x224(code: int, source_reference: int, user_data: bytes) -> bytes:
    header = struct.pack(">BHHB", code, 0, source_reference, 0)
    return bytes((len(header) + len(user_data),)) + header + user_data


def connection_request() -> bytes:
    negotiation = struct.pack("<BBHI", 1, 0, 8, PROTOCOL_SSL | PROTOCOL_HYBRID)
    return tpkt(x224(0xE0, 0, COOKIE + negotiation))


def connection_confirm() -> bytes:
    negotiation = struct.pack("<BBHI", 2, 0, 8, PROTOCOL_SSL)
    return tpkt(x224(0xD0, 0x1234, negotiation))


def read_tpkt(connection: socket.socket) -> bytes:
    header = connection.recv(4, socket.MSG_WAITALL)
    if len(header) < 4 or header[0] != 3:
        return b""
    length = struct.unpack(">H", header[2:4])[0]
    return header + connection.recv(length - 4, socket.MSG_WAITALL)


def serve(bind: str) -> None:
    listener = socket.create_server((bind, plant.RDP_PORT))
    stop = threading.Event()

    def shut(*_: object) -> None:
        stop.set()
        listener.close()

    signal.signal(signal.SIGTERM, shut)
    signal.signal(signal.SIGINT, shut)
    print(f"READY rdp {bind}:{plant.RDP_PORT}", flush=True)
    while not stop.is_set():
        try:
            connection, peer = listener.accept()
        except OSError:
            break
        with connection:
            connection.settimeout(10)
            request = read_tpkt(connection)
            if len(request) > 5 and request[5] == 0xE0:
                connection.sendall(connection_confirm())
                print(f"connection request from {peer[0]}: confirmed", flush=True)
                while connection.recv(4096):
                    pass
            else:
                print(f"not an X.224 connection request from {peer[0]}", flush=True)
    print("STOPPED", flush=True)


def client(epoch: float) -> None:
    moment = next(
        at(epoch, plant.NORMAL_TICKS + tick, "attack")
        for tick, tool, _, _ in plant.ATTACK_STEPS
        if tool == "rdp"
    )
    sleep_until(moment)
    with socket.create_connection((plant.PLC1.ip, plant.RDP_PORT), timeout=5) as connection:
        connection.sendall(connection_request())
        answer = read_tpkt(connection)
        sleep_until(moment + 0.5)
    if len(answer) < 19 or answer[5] != 0xD0 or answer[11] != 2:
        print(f"!! unexpected answer {answer.hex()}", flush=True)
        sys.exit(1)
    print(f"confirmed, selected protocol {answer[15]}", flush=True)


def main() -> None:
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    else:
        client(float(sys.argv[2]))


if __name__ == "__main__":
    main()
