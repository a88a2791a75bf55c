"""S7 server for the capture generators: python-snap7 2.1 (C libsnap7) or 3.3 (pure Python).

Runs under the interpreter of the venv that holds the wanted python-snap7 version (both
versions install the module ``snap7``, so each lives in its own venv; ``generate.py``
makes them).  Registers the areas of ``s7_data.area_contents()`` on either server.

With ``--identity`` (3.3 only: the C server's SZL answers are compiled into libsnap7) the
SZL 0x0011, 0x001C and 0x0424 answers are replaced by the records of ``s7_data`` (the
layout real S7-300 CPUs use, holding our identity values), so a test can assert them.
This is done by overriding the 3.3 server's private ``_get_szl_data``: its own records
for these ids lack the SZL header or differ from the real layout.  The records still go
out through the 3.3 server's own USERDATA response code.

Prints ``READY`` once listening; stops on SIGTERM/SIGINT.  Must not write any file.

usage: s7_server.py PORT [--identity]
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
import threading
import time

import snap7
from s7_data import area_contents, szl_001c, szl_0011, szl_0424
from snap7.server import Server
from snap7.type import SrvArea

VERSION = getattr(snap7, "__version__", "2")
PURE_PYTHON = not VERSION.startswith("2.")
CPU_RUN = 8  # the 3.3 server's CPUState.RUN


def make_server(identity: bool) -> tuple[Server, list[object]]:
    """Build the server with the areas registered (and the identity for the 3.3 server).

    Returns the server and the buffers the C server points into, which must stay alive.
    """
    server_class: type[Server] = Server
    if identity:
        if not PURE_PYTHON:
            sys.exit("--identity needs python-snap7 3.x: the C server's SZL answers are fixed")

        class IdentityServer(Server):  # type: ignore[misc]  # Server is Any where snap7 is absent
            """The 3.3 server with SZL answers in the layout real CPUs use."""

            def _get_szl_data(self, szl_id: int, szl_index: int) -> bytes | None:
                if szl_id == 0x0011 and szl_index == 0:
                    return szl_0011()
                if szl_id == 0x001C and szl_index == 0:
                    return szl_001c()
                if szl_id == 0x0424 and szl_index == 0:
                    return szl_0424(self.cpu_state == CPU_RUN)
                answer: bytes | None = super()._get_szl_data(szl_id, szl_index)
                return answer

        server_class = IdentityServer
    server = server_class(log=False)
    keep_alive: list[object] = []
    for area_name, number, contents in area_contents():
        kind = SrvArea[area_name]
        if PURE_PYTHON:
            server.register_area(kind, number, contents)
        else:
            buffer = (ctypes.c_uint8 * len(contents)).from_buffer(contents)
            keep_alive.append((contents, buffer))
            server.register_area(kind, number, buffer)
    return server, keep_alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--identity", action="store_true")
    args = parser.parse_args()
    server, _buffers = make_server(args.identity)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start(tcp_port=args.port)
    print(f"READY python-snap7 {VERSION} port {args.port}", flush=True)
    while not stop.is_set():
        time.sleep(0.1)
    server.stop()
    server.destroy()


if __name__ == "__main__":
    main()
