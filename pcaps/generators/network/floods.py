"""Make ``pcaps/network/conn_normal.pcap`` and ``conn_flood.pcap``: TCP connections to a PLC, real stacks.

Lab (``../demo/netlab.py``): one switch ``ot`` with a SPAN port; plc 192.168.20.11 (Schneider
Electric OUI) runs the demo's pymodbus PLC; hmi 192.168.20.21 (Advantech OUI) polls it with a new
connection per poll, 4 a second (``pollconn.py``); attacker 192.168.20.66 (Raspberry Pi OUI).

* ``conn_normal.pcap`` (20 s): the connection-per-poll polling alone.
* ``conn_flood.pcap`` (20 s): the same, and from +6 s the attacker opens and closes 800 TCP
  connections to port 502 with 4 threads, no data (``connflood.py``).

Needs root, iproute2, tcpdump and the project's venv (pymodbus).  Writing into ``pcaps/network/``
(the default) also updates ``pcaps/MANIFEST``; logs go to ``/tmp/icsflood-<name>-logs``.  Timing
comes from real kernels, so a new run differs in frame times and counts, not in the story.

usage: sudo .venv/bin/python pcaps/generators/network/floods.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "demo"))
sys.path.insert(0, str(HERE.parent))
import manifest  # noqa: E402
from netlab import Host, Leg, NetLab, wait_ready  # noqa: E402

PYTHON = sys.executable
PLC = ("plc", "00:80:f4:0a:17:11", "192.168.20.11")
HMI = ("hmi", "00:d0:c9:0a:17:21", "192.168.20.21")
ATTACKER = ("attacker", "b8:27:eb:0a:17:66", "192.168.20.66")
FLOOD = 800


def build(lab: NetLab) -> None:
    lab.add_bridge("ot")
    for name, mac, ip in (PLC, HMI, ATTACKER):
        lab.add_host(Host(name, (Leg("ot", mac, f"{ip}/24"),), port_range=(40000, 49999)))
    lab.add_span(["ot"])


def run(out: Path, name: str, seconds: float, attack: bool) -> Path:
    capture = out / f"{name}.pcap"
    logs = Path("/tmp") / f"icsflood-{name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with NetLab("icsflood") as lab:
        build(lab)
        plc_log = logs / "plc.log"
        plc_log.unlink(missing_ok=True)
        plc = lab.popen("plc", [PYTHON, str(HERE.parent / "demo" / "plc_modbus.py"), PLC[2]], log=plc_log)
        wait_ready(plc, plc_log, "plc")
        tcpdump = lab.capture(capture)
        time.sleep(0.5)
        start = time.monotonic()
        processes = [
            lab.popen(
                "hmi", [PYTHON, str(HERE / "pollconn.py"), PLC[2], str(seconds - 2)], log=logs / "hmi.log"
            )
        ]
        if attack:
            time.sleep(6.0)
            argv = [PYTHON, str(HERE / "connflood.py"), PLC[2], "502", str(FLOOD), "4"]
            with open(logs / "attacker.log", "w") as log:
                log.write(lab.run("attacker", argv, timeout=120).stdout)
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        for process in processes:
            lab.stop(process)
        time.sleep(1.0)
        lab.stop(tcpdump)
    shutil.move(str(capture.with_suffix(".tcpdump.log")), str(logs / "tcpdump.log"))
    return capture


HOSTS = (
    "Hosts: plc 192.168.20.11 00:80:f4:0a:17:11 (Schneider Electric OUI): the demo's pymodbus PLC; "
    "hmi 192.168.20.21 00:d0:c9:0a:17:21 (Advantech OUI): polls FC3 holding 0-11 with a new TCP "
    "connection per poll, 4 a second; attacker 192.168.20.66 b8:27:eb:0a:17:66 (Raspberry Pi OUI)."
)
CONTENT = {
    "conn_normal": "connection lab, normal (20 s), real kernels and pymodbus in network namespaces, "
    "SPAN capture: the HMI's connection-per-poll polling alone; no attacker traffic. " + HOSTS,
    "conn_flood": f"connection lab, connection flood (20 s), same lab and polling: from +6 s the "
    f"attacker opens and closes {FLOOD} TCP connections to the PLC's port 502 with 4 threads, sending "
    "no data (a DoS script's connection flood). " + HOSTS,
}


def main() -> None:
    default = HERE.parents[1] / "network"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.mkdir(parents=True, exist_ok=True)
    for name, seconds, attack in (("conn_normal", 20.0, False), ("conn_flood", 20.0, True)):
        path = run(out, name, seconds, attack)
        print(f"{manifest.sha256_of(path)}\t{path.name}")
    if out.resolve() == default.resolve():
        manifest.update(
            "generators/network/floods.py", {f"network/{n}.pcap": text for n, text in CONTENT.items()}
        )


if __name__ == "__main__":
    main()
