"""Make ``pcaps/network/arp_mitm.pcap`` and ``arp_normal.pcap``: ARP on a flat OT segment, real stacks.

Lab (``../demo/netlab.py``): one switch ``ot`` with a SPAN port; plc 192.168.20.11 (Schneider
Electric OUI) runs the demo's pymodbus PLC, hmi 192.168.20.21 (Advantech OUI) polls it once a
second (``poller.py``), eng 192.168.20.22 (Dell OUI) is idle (it answers ARP), attacker
192.168.20.66 (Raspberry Pi OUI) forwards IPv4 with ICMP redirects off.

* ``arp_normal.pcap`` (30 s): the polling alone, with the ARP the kernels send by
  themselves (resolution at start, unicast re-probes of stale entries).
* ``arp_mitm.pcap`` (50 s): the same, and ``arp_attack.py`` in the attacker's namespace: an ARP
  sweep of the /24 at +8 s, poisoning of hmi and plc every 2 s from +16 s (the polling then flows
  through the attacker), re-ARP of the true bindings at +40 s.

Needs root, iproute2, tcpdump and the project's venv (pymodbus, scapy).  Writing into
``pcaps/network/`` (the default) also updates ``pcaps/MANIFEST``; the tcpdump and process logs go
to ``<capture>-logs/`` beside the capture, outside git.  Timing comes from real kernels, so a new
run differs in frame times and ARP re-probe counts, not in the story.

usage: sudo .venv/bin/python pcaps/generators/network/generate.py [OUT_DIR]
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
PLC = ("plc", "00:80:f4:0a:14:11", "192.168.20.11")
HMI = ("hmi", "00:d0:c9:0a:14:21", "192.168.20.21")
ENG = ("eng", "54:bf:64:0a:14:22", "192.168.20.22")
ATTACKER = ("attacker", "b8:27:eb:0a:14:66", "192.168.20.66")


def build(lab: NetLab) -> None:
    lab.add_bridge("ot")
    for name, mac, ip in (PLC, HMI, ENG):
        lab.add_host(Host(name, (Leg("ot", mac, f"{ip}/24"),), port_range=(40000, 40999)))
    name, mac, ip = ATTACKER
    lab.add_host(
        Host(
            name,
            (Leg("ot", mac, f"{ip}/24"),),
            forwarding=True,
            sysctls={"net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.eth0.send_redirects": "0"},
        )
    )
    lab.add_span(["ot"])


def run(out: Path, name: str, seconds: float, attack: bool) -> Path:
    capture = out / f"{name}.pcap"
    logs = Path("/tmp") / f"icsarp-{name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with NetLab("icsarp") as lab:
        build(lab)
        plc_log = logs / "plc.log"
        plc_log.unlink(missing_ok=True)
        plc = lab.popen("plc", [PYTHON, str(HERE.parent / "demo" / "plc_modbus.py"), PLC[2]], log=plc_log)
        wait_ready(plc, plc_log, "plc")
        tcpdump = lab.capture(capture)
        time.sleep(0.5)
        processes = [
            lab.popen(
                "hmi", [PYTHON, str(HERE / "poller.py"), PLC[2], str(seconds - 2)], log=logs / "hmi.log"
            )
        ]
        if attack:
            processes.append(
                lab.popen(
                    "attacker",
                    [
                        PYTHON,
                        str(HERE / "arp_attack.py"),
                        "eth0",
                        ATTACKER[2],
                        HMI[2],
                        HMI[1],
                        PLC[2],
                        PLC[1],
                    ],
                    log=logs / "attacker.log",
                )
            )
        time.sleep(seconds)
        for process in processes:
            lab.stop(process)
        time.sleep(1.0)
        lab.stop(tcpdump)
    shutil.move(str(capture.with_suffix(".tcpdump.log")), str(logs / "tcpdump.log"))
    return capture


HOSTS = (
    "Hosts: plc 192.168.20.11 00:80:f4:0a:14:11 (Schneider Electric OUI): the demo's pymodbus PLC; "
    "hmi 192.168.20.21 00:d0:c9:0a:14:21 (Advantech OUI): polls FC3 holding 0-11 every 1 s on one "
    "connection; eng 192.168.20.22 54:bf:64:0a:14:22 (Dell OUI): idle, answers ARP; attacker "
    "192.168.20.66 b8:27:eb:0a:14:66 (Raspberry Pi OUI): forwards IPv4, ICMP redirects off."
)
CONTENT = {
    "arp_normal": "ARP lab, normal (30 s), real kernels and pymodbus in network namespaces, SPAN capture: "
    "the HMI's polling of the PLC with the ARP the kernels send themselves (resolution, unicast "
    "re-probes of stale entries); no attacker traffic. " + HOSTS,
    "arp_mitm": "ARP lab, adversary in the middle (50 s), same lab and polling: +8 s the attacker "
    "ARP-sweeps 192.168.20.0/24 (253 requests, 5 ms apart); +16 s to +40 s every 2 s unicast ARP "
    "replies to hmi claiming 192.168.20.11 and to plc claiming 192.168.20.21 with the attacker's MAC "
    "(the kernels re-resolve in between, so the bindings flip); the polling then flows through the "
    "attacker (each frame seen twice on the SPAN, once per hop); +40 s three re-ARPs of the true "
    "bindings per victim. " + HOSTS,
}


def main() -> None:
    default = HERE.parents[1] / "network"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.mkdir(parents=True, exist_ok=True)
    for name, seconds, attack in (("arp_normal", 30.0, False), ("arp_mitm", 50.0, True)):
        path = run(out, name, seconds, attack)
        print(f"{manifest.sha256_of(path)}\t{path.name}")
    if out.resolve() == default.resolve():
        manifest.update(
            "generators/network/generate.py", {f"network/{n}.pcap": text for n, text in CONTENT.items()}
        )


if __name__ == "__main__":
    main()
