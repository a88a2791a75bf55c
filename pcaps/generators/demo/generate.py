"""Make pcaps/demo/plant_normal.pcap and plant_attack.pcap: the demo plant, run for real in network namespaces.

Steps:
1. Make (once) two virtual environments with the real stacks, each pinned: ``stacks``
   (pymodbus 3.16.1, yadnp3 3.2.1.4, python-snap7 3.3.0) and ``snap7-2.1`` (python-snap7
   2.1.0, the C library); both versions install the module ``snap7``, so they cannot share one.
   They live in ``$ICS_DEMO_VENVS`` (default ``~/.cache/ics-monitor/demo-venvs``).
2. Build the lab (``netlab.py``): an OT switch with plc1, plc2, rtu1, hmi, eng, the attacker and
   the router's OT leg; an IT switch with the office PC and the router's IT leg; a SPAN port that
   mirrors everything entering the OT switch, captured with tcpdump.
3. Start the servers (plc1 Modbus and RDP listener, plc2 S7, rtu1 DNP3), wait for their READY
   lines, then every client with the same epoch; each follows the time table of ``plant.py``
   (normal phase ticks 0-149, attack phase 150-224) and exits when it is done.
4. Stop the servers and tcpdump, cut the capture at the end of the normal phase, check both
   parts with tshark (``verify.py``), and only then copy them to pcaps/demo/ and update
   pcaps/MANIFEST.  Namespaces are deleted at the end, also on failure or SIGTERM.

Needs root, iproute2 (ip, tc), tcpdump, tshark, and network access to PyPI the first time.
Run from anywhere: ``sudo .venv/bin/python pcaps/generators/demo/generate.py``.
``KEEP_WORK=1`` keeps the work directory (logs of every process, the whole capture); a failed run
always keeps it.
``--manifest-only`` checks the captures in pcaps/demo/ again and rewrites their MANIFEST lines.
It must not write anything but pcaps/demo/*.pcap, pcaps/MANIFEST, the venvs and its work directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PCAPS = HERE.parent.parent
OUT = PCAPS / "demo"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PCAPS / "generators"))

import plant  # noqa: E402
import verify  # noqa: E402
from manifest import update  # noqa: E402
from netlab import Host, LabError, Leg, NetLab  # noqa: E402

GENERATOR = "generators/demo/generate.py"
VENV_ROOT = Path(os.environ.get("ICS_DEMO_VENVS", Path.home() / ".cache" / "ics-monitor" / "demo-venvs"))
VENVS = {
    "stacks": ("pymodbus==3.16.1", "yadnp3==3.2.1.4", "python-snap7==3.3.0"),
    "snap7-2.1": ("python-snap7==2.1.0",),
}
# A client namespace has a single ephemeral port (deterministic client ports).  Its connections
# follow one another, so the port must be free again at once: no TIME_WAIT sockets there.
NO_TIME_WAIT = {"net.ipv4.tcp_max_tw_buckets": "0"}
SERVER_START_BUDGET = 8.0  # seconds for the servers to print READY; the epoch leaves room for it


def log(*args: object) -> None:
    print("generate:", *args, flush=True)


# ---- virtual environments --------------------------------------------------------------------


def venv_python(name: str) -> str:
    """The interpreter of one stack venv, made and filled on first use (a stamp lists its pins)."""
    venv = VENV_ROOT / name
    python = venv / "bin" / "python"
    stamp = venv / "ics-demo-requirements.txt"
    wanted = "\n".join(VENVS[name]) + "\n"
    if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
        log(f"making venv {venv} with {', '.join(VENVS[name])}")
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *VENVS[name]], check=True)
        stamp.write_text(wanted)
    return str(python)


# ---- the lab ---------------------------------------------------------------------------------


def build_lab(lab: NetLab) -> None:
    lab.add_bridge("ot")
    lab.add_bridge("it")
    for machine in (plant.PLC1, plant.PLC2, plant.RTU1, plant.HMI, plant.ENG, plant.ATTACKER):
        port = (machine.source_port, machine.source_port) if machine.source_port else None
        lab.add_host(
            Host(
                machine.name,
                (Leg("ot", machine.mac, f"{machine.ip}/24"),),
                gateway=plant.ROUTER_OT.ip,
                port_range=port,
                role=machine.role,
                sysctls=dict(NO_TIME_WAIT) if port else {},
            )
        )
    lab.add_host(
        Host(
            "router",
            (
                Leg("ot", plant.ROUTER_OT.mac, f"{plant.ROUTER_OT.ip}/24"),
                Leg("it", plant.ROUTER_IT.mac, f"{plant.ROUTER_IT.ip}/24", name="eth1"),
            ),
            forwarding=True,
            role=plant.ROUTER_OT.role,
        )
    )
    office = plant.OFFICE
    lab.add_host(
        Host(
            office.name,
            (Leg("it", office.mac, f"{office.ip}/24"),),
            gateway=plant.ROUTER_IT.ip,
            port_range=(office.source_port, office.source_port),
            role=office.role,
            sysctls=dict(NO_TIME_WAIT),
        )
    )
    lab.add_span(["ot"])


def wait_ready(path: Path, process: subprocess.Popen[bytes], what: str, deadline: float) -> None:
    while time.time() < deadline:
        if path.exists() and "READY" in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.05)
    text = path.read_text(errors="replace") if path.exists() else ""
    raise LabError(f"{what} did not start:\n{text}")


def run_scenario(lab: NetLab, work: Path, capture: Path) -> float:
    """Run servers and clients under tcpdump; return the epoch (absolute time of tick 0)."""
    stacks = venv_python("stacks")
    snap7_c = venv_python("snap7-2.1")
    stdlib = shutil.which("python3") or sys.executable
    script = {name: str(HERE / name) for name in os.listdir(HERE) if name.endswith(".py")}
    tcpdump = lab.capture(capture)
    time.sleep(0.5)
    epoch = time.time() + SERVER_START_BUDGET + plant.LEAD_IN
    epoch_text = f"{epoch:.3f}"
    servers = [
        ("plc1", [stacks, "-u", script["plc_modbus.py"], "0.0.0.0"], "plc1-modbus"),
        ("plc1", [stdlib, "-u", script["rdp.py"], "server", "0.0.0.0"], "plc1-rdp"),
        ("plc2", [stacks, "-u", script["plc_s7.py"], "0.0.0.0"], "plc2-s7"),
        ("rtu1", [stacks, "-u", script["rtu_dnp3.py"], "0.0.0.0", epoch_text], "rtu1-dnp3"),
    ]
    running = []
    for host, argv, name in servers:
        path = work / f"{name}.log"
        running.append((name, path, lab.popen(host, argv, log=path)))
    for name, path, process in running:
        wait_ready(path, process, name, epoch - plant.LEAD_IN)
    log(
        f"servers ready; tick 0 in {epoch - time.time():.1f} s, the run takes "
        f"{plant.NORMAL_TICKS + plant.ATTACK_TICKS} s more"
    )
    clients = [
        ("hmi", [stacks, "-u", script["modbus_client.py"], "hmi", epoch_text], "hmi-modbus"),
        ("hmi", [stacks, "-u", script["dnp3_master.py"], "hmi", epoch_text], "hmi-dnp3"),
        ("eng", [snap7_c, "-u", script["s7_client.py"], "eng", epoch_text], "eng-s7"),
        ("attacker", [stacks, "-u", script["modbus_client.py"], "attack", epoch_text], "attacker-modbus"),
        ("attacker", [snap7_c, "-u", script["s7_client.py"], "attack", epoch_text], "attacker-s7"),
        ("attacker", [stacks, "-u", script["dnp3_master.py"], "attack", epoch_text], "attacker-dnp3"),
        ("office", [stdlib, "-u", script["rdp.py"], "client", epoch_text], "office-rdp"),
    ]
    started = [
        (name, work / f"{name}.log", lab.popen(host, argv, log=work / f"{name}.log"))
        for host, argv, name in clients
    ]
    end = epoch + plant.NORMAL_TICKS + plant.ATTACK_TICKS
    failed = []
    for name, path, process in started:
        try:
            code = process.wait(timeout=max(1.0, end + 30 - time.time()))
        except subprocess.TimeoutExpired:
            code = lab.stop(process)
        if code != 0:
            failed.append(name)
            log(f"{name} exited with {code}; its log:\n{path.read_text(errors='replace')[-3000:]}")
    time.sleep(1.0)  # the last answers and FINs
    for _name, _path, process in running:
        lab.stop(process)
    time.sleep(0.5)
    lab.stop(tcpdump, signal.SIGINT)
    report = capture.with_suffix(".tcpdump.log").read_text(errors="replace")
    if not re.search(r"^0 packets dropped by kernel$", report, re.MULTILINE):
        raise LabError(f"tcpdump dropped packets or did not report:\n{report}")
    if failed:
        raise LabError(f"clients failed: {', '.join(failed)} (logs in {work})")
    return epoch


# ---- splitting the capture -------------------------------------------------------------------


def split_pcap(source: Path, boundary: float, before: Path, after: Path) -> tuple[int, int]:
    """Copy the records of a classic pcap file with time < boundary to ``before``, the rest to ``after``."""
    data = source.read_bytes()
    magic = data[:4]
    orders = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
        b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
        b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if magic not in orders:
        raise LabError(f"{source}: not a classic pcap file")
    order, unit = orders[magic]
    record = struct.Struct(order + "IIII")
    parts: list[list[bytes]] = [[data[:24]], [data[:24]]]
    position = 24
    while position + record.size <= len(data):
        seconds, fraction, included, _original = record.unpack_from(data, position)
        end = position + record.size + included
        parts[0 if seconds + fraction * unit < boundary else 1].append(data[position:end])
        position = end
    before.write_bytes(b"".join(parts[0]))
    after.write_bytes(b"".join(parts[1]))
    return len(parts[0]) - 1, len(parts[1]) - 1


# ---- MANIFEST --------------------------------------------------------------------------------


def hosts_text() -> str:
    return "; ".join(f"{m.name} {m.ip} {m.mac} ({m.vendor} OUI): {m.role}" for m in plant.MACHINES)


def manifest_entries(times: dict[str, float]) -> dict[str, str]:
    normal = (
        f"demo plant, normal phase ({plant.NORMAL_TICKS} s), real stacks in network namespaces, captured "
        "on the OT switch's SPAN port. HMI polls plc1 every 1 s (Modbus FC3 holding 0-11, FC1 coils 0-7) "
        "and writes the pump speed setpoint (FC6 holding 10, 1400..1480 rpm) every 30 s; HMI is DNP3 "
        "master 1 of rtu1 (outstation 10): startup integrity poll and enable unsolicited, class 1/2/3 "
        "poll every 5 s, integrity poll every 30 s, unsolicited events every 2 s with confirms; eng reads "
        "plc2 DB1 (24 bytes) every 1 s, CPU state (SZL 0x0424) every 5 s, SZL 0x0011/0x001C every 60 s. "
        f"Hosts: {hosts_text()}. No attacker traffic."
    )
    steps = "; ".join(
        f"+{times[step]:.1f} s {text}" if step in times else text
        for _tick, _tool, step, text in plant.ATTACK_STEPS
    )
    attack = (
        f"demo plant, attack phase ({plant.ATTACK_TICKS} s), continues plant_normal.pcap in time with the "
        "normal polling still running (connections started there continue without handshake). Attacker "
        f"{plant.ATTACKER.ip} {plant.ATTACKER.mac} (Raspberry Pi OUI) is new. Steps (seconds after the "
        f"file's first frame): {steps}. The rogue DNP3 master takes the RTU's only session: the HMI is "
        f"disconnected and reconnects after {plant.DNP3_HMI_RETRY_SECONDS} s, without re-enabling unsolicited "
        "reporting (events then come with the class polls). The write makes plc1's "
        "pump overspeed (speed, pressure, alarm registers out of their normal range) until the HMI's "
        f"next setpoint write. The office PC {plant.OFFICE.ip} reaches plc1 through the router "
        f"(source MAC {plant.ROUTER_OT.mac}). Hosts: {hosts_text()}."
    )
    return {"demo/plant_normal.pcap": normal, "demo/plant_attack.pcap": attack}


def refresh_manifest() -> None:
    """Check the installed captures again and rewrite their MANIFEST lines (no new run)."""
    normal, attack = OUT / "plant_normal.pcap", OUT / "plant_attack.pcap"
    failed = verify.verify(normal, attack)
    if failed:
        raise SystemExit(f"verification failed: {'; '.join(failed)}")
    update(GENERATOR, manifest_entries(verify.step_times(attack)))
    log("MANIFEST updated")


def main() -> None:
    if sys.argv[1:] == ["--manifest-only"]:
        refresh_manifest()
        return
    if os.geteuid() != 0:
        raise SystemExit("generate.py needs root (network namespaces, tcpdump)")
    for tool in ("ip", "tc", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found")
    work = Path(tempfile.mkdtemp(prefix="ics-demo-"))
    whole = work / "plant_whole.pcap"
    done = False
    try:
        with NetLab("icsd") as lab:
            build_lab(lab)
            epoch = run_scenario(lab, work, whole)
        boundary = epoch + plant.NORMAL_TICKS - plant.SPLIT_BEFORE
        normal, attack = work / "plant_normal.pcap", work / "plant_attack.pcap"
        counts = split_pcap(whole, boundary, normal, attack)
        log(f"split: {counts[0]} frames normal, {counts[1]} frames attack")
        failed = verify.verify(normal, attack)
        if failed:
            raise SystemExit(f"verification failed: {'; '.join(failed)} (work directory {work})")
        OUT.mkdir(exist_ok=True)
        for path in (normal, attack):
            shutil.copyfile(path, OUT / path.name)
            (OUT / path.name).chmod(0o644)
            log(f"{OUT / path.name}: {path.stat().st_size} bytes")
        update(GENERATOR, manifest_entries(verify.step_times(attack)))
        log("MANIFEST updated")
        done = True
    finally:
        if os.environ.get("KEEP_WORK") == "1" or not done:  # a failed run keeps its logs
            log(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
