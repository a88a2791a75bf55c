"""Make ``pcaps/network/scan_normal.pcap`` and ``scan_recon.pcap``: routed scans of an OT subnet, real nmap.

Lab (``../demo/netlab.py``): switch ``ot`` (192.168.20.0/24) and switch ``it`` (10.20.30.0/24),
joined by a router namespace that forwards between them; one SPAN port mirrors both switches (a
core switch's view: routed packets show once per segment).  On ``ot``: plc
192.168.20.11 runs the demo's pymodbus PLC, hmi 192.168.20.21 polls it once a second
(``poller.py``), eng 192.168.20.22 is idle, nms 192.168.20.30 is a monitoring server that pings
plc, hmi and eng every 2 s.  On ``it``: scanner 10.20.30.66, which reaches ``ot`` through the
router.  OT hosts send ICMP errors without rate limit (``net.ipv4.icmp_ratelimit=0``) so the UDP
scan does not crawl.

* ``scan_normal.pcap`` (30 s): the polling and the monitoring pings alone.
* ``scan_recon.pcap`` (60 s): the same, and from the scanner at +5 s ``nmap -n -sn
  192.168.20.0/26`` (host discovery from another subnet: ICMP echo, TCP SYN to 443, TCP ACK to
  80, ICMP timestamp per address; the router ARPs for each on ``ot``), at +25 s ``nmap -n -Pn -sU
  -p 161,502,20000,44818,47808 --max-retries 1`` against plc, hmi and eng (closed ports answer
  ICMP port unreachable).

Needs root, iproute2, tcpdump, nmap, ping (iputils-ping) and the project's venv (pymodbus).  Writing into
``pcaps/network/`` (the default) also updates ``pcaps/MANIFEST``; logs go to
``/tmp/icsscan-<name>-logs``.  Timing comes from real kernels and nmap, so a new run differs in
frame times and counts, not in the story.

usage: sudo .venv/bin/python pcaps/generators/network/scans.py [OUT_DIR]
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
PLC = ("plc", "00:80:f4:0a:15:11", "192.168.20.11")
HMI = ("hmi", "00:d0:c9:0a:15:21", "192.168.20.21")
ENG = ("eng", "54:bf:64:0a:15:22", "192.168.20.22")
NMS = ("nms", "00:50:56:0a:15:30", "192.168.20.30")
ROUTER_OT = ("00:90:e8:0a:15:01", "192.168.20.1")
ROUTER_IT = ("00:90:e8:0a:16:01", "10.20.30.1")
SCANNER = ("scanner", "b8:27:eb:0a:16:66", "10.20.30.66")
QUIET_ICMP = {"net.ipv4.icmp_ratelimit": "0"}


def build(lab: NetLab) -> None:
    lab.add_bridge("ot")
    lab.add_bridge("it")
    for name, mac, ip in (PLC, HMI, ENG, NMS):
        lab.add_host(
            Host(
                name,
                (Leg("ot", mac, f"{ip}/24"),),
                gateway=ROUTER_OT[1],
                port_range=(40000, 40999),
                sysctls=QUIET_ICMP,
            )
        )
    lab.add_host(
        Host(
            "router",
            (
                Leg("ot", ROUTER_OT[0], f"{ROUTER_OT[1]}/24"),
                Leg("it", ROUTER_IT[0], f"{ROUTER_IT[1]}/24", name="eth1"),
            ),
            forwarding=True,
        )
    )
    name, mac, ip = SCANNER
    lab.add_host(Host(name, (Leg("it", mac, f"{ip}/24"),), gateway=ROUTER_IT[1]))
    # Both switches, as a SPAN of the core switch: a sweep of empty addresses never reaches the
    # ``ot`` segment (the router's ARP for them goes unanswered), only the scanner's side sees it.
    lab.add_span(["ot", "it"])


def pinger(seconds: float) -> list[str]:
    """The monitoring server's loop: one ping to each device every 2 s."""
    targets = " ".join(ip for _, _, ip in (PLC, HMI, ENG))
    script = (
        f"end=$(( $(date +%s) + {int(seconds)} )); while [ $(date +%s) -lt $end ]; do "
        f"for h in {targets}; do ping -n -c 1 -W 1 $h; done; sleep 2; done"
    )
    return ["sh", "-c", script]


def run(out: Path, name: str, seconds: float, attack: bool) -> Path:
    capture = out / f"{name}.pcap"
    logs = Path("/tmp") / f"icsscan-{name}-logs"
    logs.mkdir(parents=True, exist_ok=True)
    with NetLab("icsscan") as lab:
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
                "hmi", [PYTHON, str(HERE / "poller.py"), PLC[2], str(seconds - 2)], log=logs / "hmi.log"
            ),
            lab.popen("nms", pinger(seconds - 2), log=logs / "nms.log"),
        ]
        if attack:
            steps = (
                (5.0, ["nmap", "-n", "-sn", "192.168.20.0/26"]),
                (
                    25.0,
                    [
                        "nmap",
                        "-n",
                        "-Pn",
                        "-sU",
                        "-p",
                        "161,502,20000,44818,47808",
                        "--max-retries",
                        "1",
                        "192.168.20.11,21,22",  # plc, hmi, eng
                    ],
                ),
            )
            with open(logs / "scanner.log", "w") as log:
                for at, argv in steps:
                    time.sleep(max(0.0, start + at - time.monotonic()))
                    log.write(f"+{time.monotonic() - start:.1f}s {' '.join(argv)}\n")
                    log.write(lab.run("scanner", argv, timeout=120).stdout)
                    log.flush()
        time.sleep(max(0.0, start + seconds - time.monotonic()))
        for process in processes:
            lab.stop(process)
        time.sleep(1.0)
        lab.stop(tcpdump)
    shutil.move(str(capture.with_suffix(".tcpdump.log")), str(logs / "tcpdump.log"))
    return capture


HOSTS = (
    "Hosts: plc 192.168.20.11 00:80:f4:0a:15:11 (Schneider Electric OUI): the demo's pymodbus PLC; "
    "hmi 192.168.20.21 00:d0:c9:0a:15:21 (Advantech OUI): polls FC3 holding 0-11 every 1 s; eng "
    "192.168.20.22 54:bf:64:0a:15:22 (Dell OUI): idle; nms 192.168.20.30 00:50:56:0a:15:30 (VMware "
    "OUI): monitoring server, pings plc, hmi and eng every 2 s; router 192.168.20.1 "
    "00:90:e8:0a:15:01 / 10.20.30.1 (Moxa OUI): forwards between the OT and IT subnets; scanner "
    "b8:27:eb:0a:16:66 10.20.30.66 (Raspberry Pi OUI) on the IT subnet."
)
CONTENT = {
    "scan_normal": "scan lab, normal (30 s), real kernels and pymodbus in network namespaces, SPAN "
    "capture of both switches: the HMI's polling and the monitoring server's pings, all answered; "
    "no scanner traffic. " + HOSTS,
    "scan_recon": "scan lab, reconnaissance from the IT subnet (60 s), same lab, polling and pings: "
    "+5 s nmap 7.93 -n -sn 192.168.20.0/26 (ICMP echo, TCP SYN 443, TCP ACK 80, ICMP timestamp to "
    "each address; 3 answer, the router ARPs for the rest); +25 s nmap -n -Pn -sU -p "
    "161,502,20000,44818,47808 --max-retries 1 against plc, hmi and eng (every port closed: ICMP "
    "port unreachable back). " + HOSTS,
}


def main() -> None:
    default = HERE.parents[1] / "network"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    out.mkdir(parents=True, exist_ok=True)
    for tool, package in (("nmap", "nmap"), ("ping", "iputils-ping")):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed (apt-get install {package})")
    for name, seconds, attack in (("scan_normal", 30.0, False), ("scan_recon", 60.0, True)):
        path = run(out, name, seconds, attack)
        print(f"{manifest.sha256_of(path)}\t{path.name}")
    if out.resolve() == default.resolve():
        manifest.update(
            "generators/network/scans.py", {f"network/{n}.pcap": text for n, text in CONTENT.items()}
        )


if __name__ == "__main__":
    main()
