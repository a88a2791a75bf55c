"""One DNP3 master station polling eight outstations over one TCP connection, from real stacks.

A terminal server or a DNP3 gateway puts a multi-drop line behind one TCP port: the master
station (link address 1) talks to outstations 10..17 over the same connection, each picked by its
link address.  Here one yadnp3 (opendnp3) TCP server channel hosts the eight outstations and one
TCP client channel the eight master sessions.  Each master runs its startup (integrity poll,
enable unsolicited off: polled only), then a class 1/2/3 poll every 2 s and an integrity poll
every 10 s; each outstation's analog and counter points change every second.

Run as root from the repo root (tcpdump on lo): ``.venv/bin/python pcaps/generators/dnp3/multidrop.py``;
writes ``pcaps/dnp3/opendnp3_multidrop.pcap`` and records it in MANIFEST.  ``--stacks`` runs only
the stacks (what the capture records), for ``RUN_S`` seconds (default 30).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
PORT = 20000
MASTER = 1
OUTSTATIONS = range(10, 18)
NAME = "dnp3/opendnp3_multidrop.pcap"


def stacks(seconds: float) -> None:
    import opendnp3 as o
    from opendnp3_stubs import Application, Commands, Handler, Listener, MasterApplication

    server_manager = o.DNP3Manager(1)
    server = server_manager.AddTCPServer(
        "line", o.levels.NORMAL, o.ServerAcceptMode.CloseExisting, o.IPEndpoint("127.0.0.1", PORT), Listener()
    )
    outstations = []
    for address in OUTSTATIONS:
        config = o.OutstationStackConfig(o.DatabaseConfig(4))
        config.outstation.eventBufferConfig = o.EventBufferConfig.AllTypes(50)
        config.outstation.params.allowUnsolicited = False
        config.link.LocalAddr = address
        config.link.RemoteAddr = MASTER
        outstation = server.AddOutstation(f"rtu{address}", Commands(), Application(), config)
        outstation.Enable()
        outstations.append((address, outstation))

    client_manager = o.DNP3Manager(1)
    client = client_manager.AddTCPClient(
        "master",
        o.levels.NORMAL,
        o.ChannelRetry.Default(),
        [o.IPEndpoint("127.0.0.1", PORT)],
        "0.0.0.0",
        Listener(),
    )
    handler = Handler()
    masters = []
    for address in OUTSTATIONS:
        config = o.MasterStackConfig()
        config.master.responseTimeout = o.TimeDuration.Seconds(2)
        config.master.disableUnsolOnStartup = True
        config.link.LocalAddr = MASTER
        config.link.RemoteAddr = address
        master = client.AddMaster(f"master{address}", handler, MasterApplication(), config)
        master.AddClassScan(o.ClassField(False, True, True, True), o.TimeDuration.Seconds(2), handler)
        master.AddClassScan(o.ClassField(True, True, True, True), o.TimeDuration.Seconds(10), handler)
        master.Enable()
        masters.append(master)

    deadline = time.time() + seconds
    step = 0
    while time.time() < deadline:
        time.sleep(1.0)
        step += 1
        for address, outstation in outstations:
            builder = o.UpdateBuilder()
            builder.Update(o.Analog(address * 10.0 + step % 7), 0)
            builder.Update(o.Counter(address * 1000 + step), 0)
            builder.Update(o.Binary(step % 4 == 0), 0)
            outstation.Apply(builder.Build())
    client_manager.Shutdown()
    server_manager.Shutdown()


def capture() -> None:
    sys.path.insert(0, str(PCAPS / "generators"))
    from manifest import update

    path = PCAPS / NAME
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path), f"tcp port {PORT}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    try:
        subprocess.run([sys.executable, __file__, "--stacks"], check=True, timeout=120)
        time.sleep(1.0)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    update(
        "generators/dnp3/multidrop.py",
        {
            NAME: (
                "DNP3/TCP 20000, one yadnp3 (opendnp3) master station (link address 1) polling eight "
                "outstations (10-17) hosted on one TCP server channel, over one connection (a "
                "terminal server's multi-drop line): startup integrity polls, class 1/2/3 polls every "
                "2 s and integrity polls every 10 s per outstation, unsolicited reporting disabled; "
                "points change every second"
            )
        },
    )


if __name__ == "__main__":
    if "--stacks" in sys.argv:
        # The binding's worker threads outlive an exception: leave without waiting for them.
        try:
            stacks(float(os.environ.get("RUN_S", "30")))
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        sys.stdout.flush()
        os._exit(0)
    else:
        capture()
