"""Check with tshark that the demo captures hold what the scenario did, and nothing of the attack before it.

Each check is a Wireshark display filter and the number of frames it must match.  For the
attack file each attack step also gets its time: the first matching frame, in seconds after the
first frame of the attack file.  A second function computes a *payload digest*: a sha256 over
the TCP payload bytes of every conversation (client host, server host, server port, direction)
in capture order.  It leaves out what differs between runs (times, TCP sequence numbers and
options, ARP), so two runs of the generator must print the same digest.

Usage (from the repo root):
    python pcaps/generators/demo/verify.py pcaps/demo/plant_normal.pcap pcaps/demo/plant_attack.pcap
Needs tshark (checked with 4.0.17).  Must not write any file.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plant

ATTACKER = f"ip.addr == {plant.ATTACKER.ip} || eth.addr == {plant.ATTACKER.mac}"
FROM_ATTACKER = f"ip.src == {plant.ATTACKER.ip}"
HMI_TO_PLC1 = f"ip.src == {plant.HMI.ip} && ip.dst == {plant.PLC1.ip}"
ENG_TO_PLC2 = f"ip.src == {plant.ENG.ip} && ip.dst == {plant.PLC2.ip}"
MODBUS_REQUEST = "mbtcp && tcp.dstport == 502"
DB_READ = "s7comm.header.rosctr == 1 && s7comm.param.func == 0x04"
NO_ATTACK = (
    ("no frame from or to the attacker", ATTACKER, 0),
    ("no RDP / TCP 3389", "tcp.port == 3389 || rdp", 0),
    ("no S7 PLC stop", "s7comm.param.func == 0x29", 0),
    ("no S7 download", "s7comm.param.func >= 0x1a && s7comm.param.func <= 0x1c", 0),
    ("no S7 PI service", "s7comm.param.func == 0x28", 0),
    ("no DNP3 cold/warm restart", "dnp3.al.func == 13 || dnp3.al.func == 14", 0),
    ("no DNP3 disable unsolicited", "dnp3.al.func == 21", 0),
    ("no Modbus exception", "modbus.exception_code", 0),
    ("no Modbus FC43", "modbus.func_code == 43", 0),
)
COMMON = (
    ("no malformed or error-level frame", "_ws.malformed || _ws.expert.severity >= error", 0),
    ("no IPv6", "ipv6", 0),
)


def register_bytes(value: int) -> str:
    """A 16-bit register value as a display-filter byte string (FC6 values are bytes in tshark)."""
    return f"{value >> 8:02x}:{value & 0xFF:02x}"


@dataclass(frozen=True)
class Check:
    name: str
    display_filter: str
    expected: int | tuple[int, int]  # exact count, or inclusive range


def normal_checks() -> list[Check]:
    ticks = plant.NORMAL_TICKS
    setpoint_writes = len(range(plant.SETPOINT_FIRST, ticks, plant.SETPOINT_EVERY))
    # Set membership ({...}) does not take byte strings in Wireshark 4.0: an "or" chain does.
    setpoints = " || ".join(f"modbus.data == {register_bytes(value)}" for value in plant.SETPOINTS)
    return [
        *(Check(name, display_filter, count) for name, display_filter, count in NO_ATTACK + COMMON),
        Check(
            "HMI FC3 poll every tick", f"{HMI_TO_PLC1} && {MODBUS_REQUEST} && modbus.func_code == 3", ticks
        ),
        Check(
            "HMI FC1 poll every tick", f"{HMI_TO_PLC1} && {MODBUS_REQUEST} && modbus.func_code == 1", ticks
        ),
        Check(
            "HMI FC6 setpoints",
            f"{HMI_TO_PLC1} && {MODBUS_REQUEST} && modbus.func_code == 6",
            setpoint_writes,
        ),
        Check(
            "setpoints are the operator's (1400..1480)",
            f"{MODBUS_REQUEST} && modbus.func_code == 6 && ({setpoints})",
            setpoint_writes,
        ),
        Check("eng S7 DB1 read every tick", f"{ENG_TO_PLC2} && {DB_READ}", ticks),
        Check("eng S7 connection setup", f"{ENG_TO_PLC2} && s7comm.param.func == 0xf0", 1),
        Check(
            "eng SZL 0x0424 reads",
            f"{ENG_TO_PLC2} && s7comm.data.userdata.szl_id == 0x0424",
            len(range(0, ticks, plant.S7_STATE_EVERY)),
        ),
        Check(
            "HMI DNP3 polls",
            f"ip.src == {plant.HMI.ip} && dnp3.al.func == 1",
            (len(range(0, ticks, 5)), len(range(0, ticks, 5)) + 2),
        ),
        Check("HMI enables unsolicited once", f"ip.src == {plant.HMI.ip} && dnp3.al.func == 20", 1),
        Check(
            "RTU unsolicited responses",
            f"ip.src == {plant.RTU1.ip} && dnp3.al.func == 130",
            (ticks // 2 - 5, ticks // 2 + 3),
        ),
    ]


def attack_checks() -> list[Check]:
    ticks = plant.ATTACK_TICKS
    scan = len(plant.ATTACK_UNIT_SCAN)
    disable_tick = next(tick for tick, _, step, _ in plant.ATTACK_STEPS if step == "disable_unsolicited")
    return [
        *(Check(name, display_filter, count) for name, display_filter, count in COMMON),
        Check("HMI FC3 poll goes on", f"{HMI_TO_PLC1} && {MODBUS_REQUEST} && modbus.func_code == 3", ticks),
        Check("eng S7 DB1 read goes on", f"{ENG_TO_PLC2} && {DB_READ}", ticks),
        Check("unit-id scan requests", f"{FROM_ATTACKER} && {MODBUS_REQUEST} && modbus.func_code == 3", scan),
        Check(
            "unit-id scan: exception 4 from every unit but 1",
            f"ip.dst == {plant.ATTACKER.ip} && modbus.exception_code == 4",
            scan - 1,
        ),
        Check(
            "FC43/14 requests",
            f"{FROM_ATTACKER} && {MODBUS_REQUEST} && modbus.func_code == 43 && modbus.mei == 14",
            2,
        ),
        Check(
            "FC43/14 answers with the vendor",
            f'ip.dst == {plant.ATTACKER.ip} && modbus.object_str_value == "Schneider Electric"',
            2,
        ),
        Check(
            "FC6 write of 9999",
            f"{FROM_ATTACKER} && {MODBUS_REQUEST} && modbus.func_code == 6 && modbus.reference_num == {plant.SETPOINT_REGISTER} && modbus.data == {register_bytes(plant.ATTACK_SETPOINT)}",
            1,
        ),
        Check(
            "S7 SZL reads from the attacker",
            f"{FROM_ATTACKER} && (s7comm.data.userdata.szl_id == 0x0011 || s7comm.data.userdata.szl_id == 0x001c)",
            2,
        ),
        Check("S7 PLC stop", f"{FROM_ATTACKER} && s7comm.header.rosctr == 1 && s7comm.param.func == 0x29", 1),
        Check(
            "S7 request download OB1",
            f'{FROM_ATTACKER} && s7comm.param.func == 0x1a && s7comm.param.blockcontrol.filename == "_0800001P"',
            1,
        ),
        Check(
            "S7 download block (PLC asks)",
            f"ip.src == {plant.PLC2.ip} && s7comm.header.rosctr == 1 && s7comm.param.func == 0x1b",
            1,
        ),
        Check(
            "S7 download ended (PLC asks)",
            f"ip.src == {plant.PLC2.ip} && s7comm.header.rosctr == 1 && s7comm.param.func == 0x1c",
            1,
        ),
        Check("S7 PI _INSE", f'{FROM_ATTACKER} && s7comm.param.pistart.servicename == "_INSE"', 1),
        Check(
            "S7 hot start",
            f'{FROM_ATTACKER} && s7comm.param.func == 0x28 && s7comm.param.pistart.servicename == "P_PROGRAM"',
            1,
        ),
        Check(
            "eng sees STOP (SZL 0x0424 bzu-id 4)",
            f"ip.dst == {plant.ENG.ip} && s7comm.szl.0424.0000.bzu_id == 0x04",
            (1, 3),
        ),
        Check("DNP3 cold restart", f"{FROM_ATTACKER} && dnp3.al.func == 13", 1),
        Check(
            "DNP3 cold restart answered (g52 delay)",
            f"ip.dst == {plant.ATTACKER.ip} && dnp3.al.func == 129 && dnp3.al.obj == 0x3402",
            1,
        ),
        Check("DNP3 disable unsolicited", f"{FROM_ATTACKER} && dnp3.al.func == 21", 1),
        Check(
            "HMI reconnects after the take-over",
            f"ip.src == {plant.HMI.ip} && tcp.dstport == 20000 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
            1,
        ),
        Check(
            "no unsolicited events after the disable (the HMI's startup does not run again)",
            f"ip.src == {plant.RTU1.ip} && dnp3.al.func == 130 && dnp3.al.obj"
            f" && frame.time_relative > {disable_tick + 1}",
            0,
        ),
        Check(
            "RDP connection request with cookie",
            f'ip.src == {plant.OFFICE.ip} && rdp.rt_cookie contains "mstshash=operator"',
            1,
        ),
        Check("RDP negotiation response", f"ip.src == {plant.PLC1.ip} && rdp.neg_type == 2", 1),
        Check(
            "RDP crosses the router (office IP, router MAC)",
            f"ip.src == {plant.OFFICE.ip} && eth.src == {plant.ROUTER_OT.mac}",
            (3, 10),
        ),
    ]


STEP_FILTERS = {
    "unit_scan": f"{FROM_ATTACKER} && {MODBUS_REQUEST} && modbus.func_code == 3",
    "device_id": f"{FROM_ATTACKER} && modbus.func_code == 43",
    "write": f"{FROM_ATTACKER} && modbus.func_code == 6",
    "szl": f"{FROM_ATTACKER} && s7comm.data.userdata.szl_id == 0x0011",
    "stop": f"{FROM_ATTACKER} && s7comm.param.func == 0x29",
    "download": f"{FROM_ATTACKER} && s7comm.param.func == 0x1a",
    "hot_start": f'{FROM_ATTACKER} && s7comm.param.func == 0x28 && s7comm.param.pistart.servicename == "P_PROGRAM"',
    "connect": f"{FROM_ATTACKER} && tcp.dstport == 20000 && tcp.flags.syn == 1",
    "cold_restart": f"{FROM_ATTACKER} && dnp3.al.func == 13",
    "disable_unsolicited": f"{FROM_ATTACKER} && dnp3.al.func == 21",
    "rdp": f"ip.src == {plant.OFFICE.ip} && tcp.dstport == 3389 && tcp.flags.syn == 1",
}


def tshark_fields(path: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-n", "-Y", display_filter, "-T", "fields"]
    for name in fields:
        argv += ["-e", name]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"tshark failed on {display_filter!r}: {result.stderr.strip()}")
    return [line.split("\t") for line in result.stdout.splitlines()]


def run_checks(path: Path, checks: list[Check]) -> list[str]:
    """Print one line per check; return the names of the failed ones."""
    failed = []
    for check in checks:
        count = len(tshark_fields(path, check.display_filter, ["frame.number"]))
        low, high = check.expected if isinstance(check.expected, tuple) else (check.expected, check.expected)
        good = low <= count <= high
        print(f"  {'ok ' if good else 'BAD'} {check.name}: {count} (expected {check.expected})")
        if not good:
            failed.append(f"{path.name}: {check.name}")
    return failed


def step_times(attack: Path) -> dict[str, float]:
    """Seconds from the first frame of the attack file to the first frame of each attack step."""
    times = {}
    for step, display_filter in STEP_FILTERS.items():
        rows = tshark_fields(attack, display_filter, ["frame.time_relative"])
        if rows:
            times[step] = float(rows[0][0])
    return times


def payload_digest(path: Path) -> tuple[str, dict[str, str]]:
    """sha256 of the TCP payloads per conversation and direction, and one over all of them."""
    rows = tshark_fields(
        path, "tcp.len > 0", ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.payload"]
    )
    names = {machine.ip: machine.name for machine in plant.MACHINES}
    servers = {plant.MODBUS_PORT, plant.S7_PORT, plant.DNP3_PORT, plant.RDP_PORT}
    streams: dict[str, list[bytes]] = defaultdict(list)
    for source, source_port, destination, destination_port, payload in rows:
        if int(destination_port) in servers:
            key = f"{names.get(source, source)} -> {names.get(destination, destination)}:{destination_port}"
        else:
            key = f"{names.get(destination, destination)} <- {names.get(source, source)}:{source_port}"
        streams[key].append(bytes.fromhex(payload.replace(":", "")))
    digests = {
        key: hashlib.sha256(b"".join(parts)).hexdigest()[:16] for key, parts in sorted(streams.items())
    }
    overall = hashlib.sha256("\n".join(f"{k} {v}" for k, v in digests.items()).encode()).hexdigest()[:16]
    return overall, digests


def verify(normal: Path, attack: Path) -> list[str]:
    """Run every check on both files and print the attack step times; return the failures."""
    print(f"{normal}:")
    failed = run_checks(normal, normal_checks())
    print(f"{attack}:")
    failed += run_checks(attack, attack_checks())
    times = step_times(attack)
    for _tick, _tool, step, text in plant.ATTACK_STEPS:
        moment = times.get(step)
        print(f"  step +{moment:6.2f} s  {text}" if moment is not None else f"  step  (missing) {text}")
    for path in (normal, attack):
        overall, _ = payload_digest(path)
        print(f"payload digest {path.name}: {overall}")
    return failed


def main() -> None:
    failed = verify(Path(sys.argv[1]), Path(sys.argv[2]))
    if failed:
        print("FAILED:", "; ".join(failed))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
