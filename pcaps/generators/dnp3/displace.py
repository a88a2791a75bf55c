"""A DNP3 master knocked off its outstation by another host connecting again and again: real stacks.

An opendnp3 outstation (yadnp3; link address 10, 127.0.0.13:20000) serves one master connection
and drops the old one when a new one comes (``ServerAcceptMode.CloseExisting``, as many
outstations and gateways do).  The master (yadnp3; link address 1, from 127.0.0.21) polls class
1/2/3 every second and reconnects when dropped (retry 0.5 s).  Captures:

* ``opendnp3_displaced.pcap`` (30 s): from +10 s another host (127.0.0.66) connects every 2 s, 6
  times, and sends a READ of class 0 with the master's link address (an ISF-style script, one
  connection per command), then closes: each time the master's session is dropped.
* ``opendnp3_reconnect.pcap`` (30 s): the same master, which the outstation drops once at +10 s
  when an engineering tool (127.0.0.31) connects, reads class 0 and leaves: one displacement,
  routine.

Run as root from the repo root (tcpdump on lo): ``.venv/bin/python pcaps/generators/dnp3/displace.py``;
writes the two captures and records them in MANIFEST.  ``--stacks NAME`` runs only the stacks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
sys.path.insert(0, str(HERE))
PORT = 20000
OUTSTATION_IP, MASTER_IP = "127.0.0.13", "127.0.0.21"
SECONDS = 30.0
SCENARIOS = {"opendnp3_displaced": ("127.0.0.66", 6, 2.0), "opendnp3_reconnect": ("127.0.0.31", 1, 2.0)}


def intruder(source: str) -> None:
    """Connect from ``source``, send READ class 0 as master 1 (link frames with CRCs), read, close."""
    from malformed import request  # the spec-built link and transport framing of the crafted captures

    with socket.create_connection((OUTSTATION_IP, PORT), timeout=2.0, source_address=(source, 0)) as s:
        s.sendall(request(bytes([0xC0, 0x01, 0x3C, 0x01, 0x06])))  # FIR FIN seq 0, READ, g60v1 all
        with contextlib.suppress(OSError):
            s.recv(4096)
        time.sleep(0.2)


def stacks(name: str) -> None:
    import opendnp3 as o
    from opendnp3_stubs import Application, Commands, Handler, Listener, MasterApplication

    server_manager = o.DNP3Manager(1)
    server = server_manager.AddTCPServer(
        "rtu",
        o.levels.NORMAL,
        o.ServerAcceptMode.CloseExisting,
        o.IPEndpoint(OUTSTATION_IP, PORT),
        Listener(),
    )
    config = o.OutstationStackConfig(o.DatabaseConfig(4))
    config.outstation.eventBufferConfig = o.EventBufferConfig.AllTypes(50)
    config.outstation.params.allowUnsolicited = False
    config.link.LocalAddr = 10
    config.link.RemoteAddr = 1
    outstation = server.AddOutstation("rtu10", Commands(), Application(), config)
    outstation.Enable()

    client_manager = o.DNP3Manager(1)
    client = client_manager.AddTCPClient(
        "master",
        o.levels.NORMAL,
        o.ChannelRetry(o.TimeDuration.Milliseconds(500), o.TimeDuration.Milliseconds(500)),
        [o.IPEndpoint(OUTSTATION_IP, PORT)],
        MASTER_IP,
        Listener(),
    )
    handler = Handler()
    master_config = o.MasterStackConfig()
    master_config.master.responseTimeout = o.TimeDuration.Seconds(2)
    master_config.master.disableUnsolOnStartup = True
    master_config.link.LocalAddr = 1
    master_config.link.RemoteAddr = 10
    master = client.AddMaster("master", handler, MasterApplication(), master_config)
    master.AddClassScan(o.ClassField(False, True, True, True), o.TimeDuration.Seconds(1), handler)
    master.Enable()

    source, times, every = SCENARIOS[name]
    start = time.time()
    step = 0
    attacks = [start + 10.0 + every * n for n in range(times)]
    while time.time() < start + SECONDS:
        time.sleep(0.1)
        if attacks and time.time() >= attacks[0]:
            attacks.pop(0)
            try:
                intruder(source)
            except OSError as exc:
                print("intruder", exc, flush=True)
        step += 1
        if step % 10 == 0:
            builder = o.UpdateBuilder()
            builder.Update(o.Analog(10.0 + step % 7), 0)
            outstation.Apply(builder.Build())
    client_manager.Shutdown()
    server_manager.Shutdown()


def capture(name: str) -> Path:
    path = PCAPS / "dnp3" / f"{name}.pcap"
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path), f"tcp port {PORT}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        subprocess.run([sys.executable, __file__, "--stacks", name], check=True, timeout=120)
        time.sleep(1.0)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    return path


CONTENT = {
    "opendnp3_displaced": (
        "DNP3/TCP 20000, 30 s: a yadnp3 (opendnp3) outstation 127.0.0.13 (link 10) that serves one "
        "master connection (CloseExisting), polled class 1/2/3 every second by a yadnp3 master "
        "127.0.0.21 (link 1) that reconnects after 0.5 s; from +10 s 127.0.0.66 connects every 2 s, "
        "6 times, sends READ g60v1 as master 1 and closes: the master's session is dropped each time"
    ),
    "opendnp3_reconnect": (
        "DNP3/TCP 20000, 30 s: the same outstation and master; at +10 s an engineering tool "
        "127.0.0.31 connects once, reads class 0 and leaves: the master's session is dropped once "
        "and it reconnects"
    ),
}


if __name__ == "__main__":
    if "--stacks" in sys.argv:
        # The binding's worker threads outlive an exception: leave without waiting for them.
        try:
            stacks(sys.argv[sys.argv.index("--stacks") + 1])
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        sys.stdout.flush()
        os._exit(0)
    else:
        sys.path.insert(0, str(PCAPS / "generators"))
        from manifest import update

        for scenario in SCENARIOS:
            capture(scenario)
        update("generators/dnp3/displace.py", {f"dnp3/{n}.pcap": text for n, text in CONTENT.items()})
