"""Make ``pcaps/s7comm/s7_lab_*.pcap``: an S7 PLC, its HMI and engineering station, and an attacker.

Lab (``../demo/netlab.py``): one switch ``ot`` with a SPAN port; plc 192.168.30.11 (Siemens OUI)
runs the C libsnap7 server of python-snap7 2.1 (``s7_server.py``); hmi 192.168.30.21 (Advantech
OUI) polls DB1 over one OP connection every 0.5 s; eng 192.168.30.31 (Dell OUI) opens a PG and an
OP connection in turn (CPU state, order code, DB1), later 6 PG connections at once; attacker
192.168.30.66 (Raspberry Pi OUI).  Actors: ``lab_actor.py``.

* ``s7_lab_normal.pcap`` (25 s): the HMI and the engineering station alone.
* ``s7_lab_recon.pcap`` (25 s): the same, and the attacker sweeps rack/slot pairs (a connection
  each, plcscan style) from +5 s, then sends broken openings on port 102 from +12 s.
* ``s7_lab_hold.pcap`` (25 s): the same as normal, and from +6 s the attacker opens 32 S7
  sessions (COTP connection and S7 set-up each) and holds them 8 s.

Needs root, iproute2, tcpdump and the project's venv (python-snap7 2.1).  Writing into
``pcaps/s7comm/`` (the default) also updates ``pcaps/MANIFEST``; logs go to
``/tmp/icss7lab-<name>-logs``.  Timing comes from real kernels, so a new run differs in frame
times and counts, not in the story.

usage: sudo .venv/bin/python pcaps/generators/s7comm/lab.py [OUT_DIR]
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
PLC = ("plc", "00:1b:1b:0a:1e:11", "192.168.30.11")
HMI = ("hmi", "00:d0:c9:0a:1e:21", "192.168.30.21")
ENG = ("eng", "00:14:22:0a:1e:31", "192.168.30.31")
ATTACKER = ("attacker", "b8:27:eb:0a:1e:66", "192.168.30.66")
SECONDS = 25.0
HELD = 32


def build(lab: NetLab) -> None:
    lab.add_bridge("ot")
    for name, mac, ip in (PLC, HMI, ENG, ATTACKER):
        lab.add_host(Host(name, (Leg("ot", mac, f"{ip}/24"),), port_range=(40000, 49999)))
    lab.add_span(["ot"])


def actor(role: str, *args: str) -> list[str]:
    return [PYTHON, "-u", str(HERE / "lab_actor.py"), PLC[2], role, *args]


def run(out: Path, name: str, attack: list[tuple[float, list[str]]]) -> Path:
    capture = out / f"{name}.pcap"
    logs = Path("/tmp") / f"icss7lab-{name}-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    with NetLab("icss7") as lab:
        build(lab)
        plc_log = logs / "plc.log"
        plc = lab.popen("plc", [PYTHON, "-u", str(HERE / "s7_server.py"), "102"], log=plc_log)
        wait_ready(plc, plc_log, "plc")
        tcpdump = lab.capture(capture)
        time.sleep(0.5)
        start = time.monotonic()
        hmi = lab.popen("hmi", actor("hmi", str(SECONDS - 3)), log=logs / "hmi.log")
        timeline = sorted([(3.0, ["eng", *actor("eng")]), (10.0, ["eng", *actor("eng-parallel", "6")])])
        timeline += [(at, ["attacker", *argv]) for at, argv in attack]
        started = []
        for at, (host, *argv) in sorted(timeline, key=lambda item: item[0]):
            time.sleep(max(0.0, start + at - time.monotonic()))
            started.append(lab.popen(host, argv, log=logs / f"{host}.log"))
        for process in [hmi, *started]:
            if process.wait(timeout=start + SECONDS + 30 - time.monotonic()) != 0:
                raise SystemExit(f"an actor failed: see {logs}")
        time.sleep(1.0)
        lab.stop(tcpdump)
    shutil.move(str(capture.with_suffix(".tcpdump.log")), str(logs / "tcpdump.log"))
    return capture


HOSTS = (
    "Hosts: plc 192.168.30.11 00:1b:1b:0a:1e:11 (Siemens OUI): libsnap7 server (python-snap7 2.1); "
    "hmi 192.168.30.21 00:d0:c9:0a:1e:21 (Advantech OUI): one OP connection (TSAP 0x0202), DB1.DBB0 x16 "
    "read every 0.5 s; eng 192.168.30.31 00:14:22:0a:1e:31 (Dell OUI): at +3 s a PG then an OP "
    "connection (CPU state, order code, DB1), at +10 s 6 PG connections at once for 2 s; attacker "
    "192.168.30.66 b8:27:eb:0a:1e:66 (Raspberry Pi OUI)."
)
CONTENT = {
    "s7_lab_normal": "S7 lab, normal (25 s), real kernels and libsnap7 in network namespaces, SPAN "
    "capture: HMI polling and engineering station only. " + HOSTS,
    "s7_lab_recon": "S7 lab, reconnaissance (25 s), same lab: from +5 s the attacker sweeps rack/slot "
    "pairs (0,0) (0,1) (0,2) (0,3) (0,4) (1,0) (1,1), a connection and CPU state read each (plcscan "
    "style); from +12 s broken openings on TCP 102, a connection each: an empty TPKT (length 4), an "
    "undefined COTP TPDU code 0x9, a connection request in a TPKT claiming 65535 bytes (26 sent), "
    "and bytes that are no TPKT. " + HOSTS,
    "s7_lab_hold": f"S7 lab, session exhaustion (25 s), same lab: from +6 s the attacker opens {HELD} "
    "S7 sessions to the PLC (COTP connection and S7 set-up each, raw sockets) and holds them 8 s "
    "before closing them. " + HOSTS,
}


def main() -> None:
    default = HERE.parents[1] / "s7comm"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.mkdir(parents=True, exist_ok=True)
    scenarios: dict[str, list[tuple[float, list[str]]]] = {
        "s7_lab_normal": [],
        "s7_lab_recon": [(5.0, actor("sweep")), (12.0, actor("broken"))],
        "s7_lab_hold": [(6.0, actor("hold", str(HELD), "8"))],
    }
    for name, attack in scenarios.items():
        path = run(out, name, attack)
        print(f"{manifest.sha256_of(path)}\t{path.name}")
    if out.resolve() == default.resolve():
        manifest.update("generators/s7comm/lab.py", {f"s7comm/{n}.pcap": text for n, text in CONTENT.items()})


if __name__ == "__main__":
    main()
