"""Make the DNP3 captures of pcaps/dnp3/ from real stacks over loopback, then record them in MANIFEST.

Needs root (tcpdump on lo), the venv's yadnp3 (opendnp3) and dnp3py, and scapy.  Captures:

* opendnp3_session.pcap: yadnp3 master and outstation, the whole session of yadnp3_session.py,
  with 20 points per type and a 400-byte transmit fragment (multi-frame, multi-fragment responses);
* interop_opendnp3_master_dnp3py_outstation.pcap and interop_dnp3py_master_opendnp3_outstation.pcap:
  each stack against the other's independent encoder;
* opendnp3_session_tcpport21000.pcap: the session rewritten to server port 21000;
* opendnp3_session_udp.pcap: the session rewritten as DNP3 over UDP/20000, one datagram per TCP
  segment carrying whole link frames.

Usage: ``.venv/bin/python pcaps/generators/dnp3/generate.py`` from the repo root.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "dnp3"
PYTHON = sys.executable
PORT = 20000
sys.path.insert(0, str(PCAPS / "generators"))

from manifest import update  # noqa: E402


def capture(
    name: str, commands: list[tuple[list[str], dict[str, str], float]], main: list[str], env: dict[str, str]
) -> Path:
    """Run ``commands`` (servers, each after its delay) and ``main`` under tcpdump; return the file."""
    path = OUT / name
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-s", "0", "-w", str(path), f"tcp port {PORT}"],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    servers = []
    log = open(Path(tempfile.gettempdir()) / f"{name}.log", "w")  # noqa: SIM115
    try:
        for command, extra, delay in commands:
            servers.append(
                subprocess.Popen(command, env={**os.environ, **extra}, stdout=log, stderr=subprocess.STDOUT)
            )
            time.sleep(delay)
        subprocess.run(
            main, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, timeout=180, check=False
        )
        for server in servers:
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.terminate()
                server.wait(timeout=10)
        time.sleep(1.0)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
        log.close()
    return path


def rewrite_port(source: Path, target: Path, new_port: int) -> None:
    from scapy.all import IP, TCP, rdpcap, wrpcap

    packets = rdpcap(str(source))
    for packet in packets:
        tcp = packet[TCP]
        if tcp.sport == PORT:
            tcp.sport = new_port
        if tcp.dport == PORT:
            tcp.dport = new_port
        del packet[IP].chksum
        del tcp.chksum
    wrpcap(str(target), packets)


def _frame_size(length: int) -> int:
    user = length - 5
    return 10 + user + 2 * ((user + 15) // 16)


def rewrite_udp(source: Path, target: Path) -> None:
    """DNP3 over UDP: the link frames of each TCP segment become one datagram (same ports)."""
    from scapy.all import IP, TCP, UDP, Ether, Raw, rdpcap, wrpcap

    out = []
    pending: dict[tuple[str, int], bytes] = {}
    for packet in rdpcap(str(source)):
        tcp = packet[TCP]
        payload = bytes(tcp.payload)
        if not payload:
            continue
        key = (packet[IP].src, tcp.sport)
        data = pending.get(key, b"") + payload
        position = 0
        while len(data) - position >= 10 and data[position : position + 2] == b"\x05\x64":
            size = _frame_size(data[position + 2])
            if len(data) - position < size:
                break
            position += size
        pending[key] = data[position:]
        if not position:
            continue
        datagram = (
            Ether(src=packet[Ether].src, dst=packet[Ether].dst)
            / IP(src=packet[IP].src, dst=packet[IP].dst)
            / UDP(sport=tcp.sport, dport=tcp.dport)
            / Raw(data[:position])
        )
        datagram.time = packet.time
        out.append(datagram)
    wrpcap(str(target), out)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    session = capture(
        "opendnp3_session.pcap",
        [],
        [PYTHON, str(HERE / "yadnp3_session.py"), str(PORT)],
        {"ROLE": "both", "DNP3_POINTS": "20", "DNP3_MAX_TX_FRAG": "400"},
    )
    interop1 = capture(
        "interop_opendnp3_master_dnp3py_outstation.pcap",
        [([PYTHON, str(HERE / "dnp3py_outstation.py"), str(PORT)], {"RUN_S": "45"}, 2.0)],
        [PYTHON, str(HERE / "yadnp3_session.py"), str(PORT)],
        {"ROLE": "master"},
    )
    interop2 = capture(
        "interop_dnp3py_master_opendnp3_outstation.pcap",
        [([PYTHON, str(HERE / "yadnp3_session.py"), str(PORT)], {"ROLE": "outstation", "RUN_S": "30"}, 2.0)],
        [PYTHON, str(HERE / "dnp3py_master.py"), str(PORT)],
        {},
    )
    moved = OUT / "opendnp3_session_tcpport21000.pcap"
    rewrite_port(session, moved, 21000)
    udp = OUT / "opendnp3_session_udp.pcap"
    rewrite_udp(session, udp)
    generator = "generators/dnp3/generate.py"
    update(
        generator,
        {
            "dnp3/opendnp3_session.pcap": (
                "DNP3/TCP 20000, yadnp3 (opendnp3) master 1 and outstation 10: startup (disable unsolicited, "
                "clear restart g80, integrity poll, LAN time sync, enable unsolicited), class polls, "
                "unsolicited events with confirms, CROB and g41v1-4 direct operate and select/operate, "
                "immediate freeze and freeze-and-clear g20, g34 dead-band write, delay measurement, link "
                "status, g0v254 read, g70 file info/open/read/close/delete, warm and cold restart, stop "
                "application; 20 points per type and 400-byte fragments (multi-frame, multi-fragment "
                "responses); class-0 responses hold g50v4, unknown to Wireshark 4.0"
            ),
            "dnp3/interop_opendnp3_master_dnp3py_outstation.pcap": (
                "DNP3/TCP 20000, yadnp3 master session against the dnp3py 0.6 outstation (its own "
                "event variations, unsolicited responses with confirms)"
            ),
            "dnp3/interop_dnp3py_master_opendnp3_outstation.pcap": (
                "DNP3/TCP 20000, dnp3py 0.6 master against the yadnp3 outstation: link reset, polls, "
                "CROB and analog controls, delay measurement, unsolicited responses with confirms"
            ),
            "dnp3/opendnp3_session_tcpport21000.pcap": (
                "opendnp3_session.pcap rewritten to server port 21000 (scapy, checksums recomputed)"
            ),
            "dnp3/opendnp3_session_udp.pcap": (
                "opendnp3_session.pcap rewritten as DNP3 over UDP 20000: the whole link frames of each "
                "TCP segment in one datagram (scapy)"
            ),
        },
    )
    for path in (session, interop1, interop2, moved, udp):
        print(path.relative_to(PCAPS), path.stat().st_size)


if __name__ == "__main__":
    main()
