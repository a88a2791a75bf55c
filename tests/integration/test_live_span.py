"""Live capture on a real mirrored link: ``ics-monitor live`` on a SPAN port equals a replay of tcpdump's capture.

The lab (pcaps/generators/demo/netlab.py) builds namespaces ``plc`` and ``hmi`` joined through a
bridge in a ``switch`` namespace; tc mirred copies every frame that enters the bridge to a span
veth, exactly as a switch's SPAN port does.  A pymodbus server runs in ``plc`` and a pymodbus client
in ``hmi`` (this module is also their script: ``python -m tests.integration.test_live_span server|client IP``).  The
monitor and tcpdump sniff the span port at the same time; the monitor is stopped with SIGINT, then
the tcpdump file is replayed.  Both runs must give the same Modbus records (transaction id,
function, addresses, values, timestamps to the microsecond), the same flows and the same assets, and
the register values must be the ones the client wrote.

Also checked: the one-line errors for an unknown interface and for a process without CAP_NET_RAW.
Everything needs root and network namespaces; the tests skip, saying why, only where the kernel
(or a missing iproute2/tcpdump) refuses.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO, need_tool
from tests.integration.lab_support import open_lab, read_records, replay_capture, settled, wait_for

# One at a time (one xdist worker): timing assertions and namespaces do not share the CPU well.
pytestmark = pytest.mark.xdist_group("live")

PLC_IP = "10.77.0.11"
HMI_IP = "10.77.0.21"
MODBUS_PORT = 502
SPAN_PREFIX = "icslv"
ROUNDS = 4
CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]
# The Modbus peers are this module run as a script (``env`` because the lab's run() takes no env).
PEER = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.integration.test_live_span"]


# ---- the Modbus peers (run inside the namespaces as `python test_live_span.py ...`) -------------


def round_values(round_number: int) -> tuple[list[int], int, list[bool]]:
    """What the client writes in one round: three holding registers, one register, three coils."""
    base = 100 * (round_number + 1)
    return [base + 11, base + 22, base + 33], 4000 + round_number, [True, round_number % 2 == 1, True]


def serve(address: str) -> None:
    """A pymodbus 3.16 TCP server, unit 1, 100 zeroed holding registers and coils; runs until killed."""
    import asyncio

    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import StartAsyncTcpServer

    # ModbusSequentialDataBlock(1, v) puts v[0] at protocol address 0 (pymodbus 3.16).
    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, [0] * 100), co=ModbusSequentialDataBlock(1, [False] * 100)
    )
    context = ModbusServerContext(devices=device, single=True)
    asyncio.run(StartAsyncTcpServer(context=context, address=(address, MODBUS_PORT)))


def client(address: str) -> int:
    """Write, then read back, in ``ROUNDS`` rounds on one connection; exit 1 on any wrong answer."""
    from pymodbus.client import ModbusTcpClient

    connection = ModbusTcpClient(address, port=MODBUS_PORT, timeout=2, retries=0)
    if not connection.connect():
        print(f"cannot connect to {address}", flush=True)
        return 1
    failures = 0
    for number in range(ROUNDS):
        registers, single, coils = round_values(number)
        results = [
            connection.write_registers(10, registers, device_id=1).isError(),
            connection.read_holding_registers(10, count=3, device_id=1).registers != registers,
            connection.write_register(20, single, device_id=1).isError(),
            connection.read_holding_registers(20, count=1, device_id=1).registers != [single],
            connection.write_coils(0, coils, device_id=1).isError(),
            connection.read_coils(0, count=3, device_id=1).bits[:3] != coils,
        ]
        failures += sum(results)
    connection.close()
    print(f"done, {failures} failures", flush=True)
    return 1 if failures else 0


# ---- helpers ------------------------------------------------------------------------------------


def modbus_key(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        record[name]
        for name in (
            "src_ip",
            "src_port",
            "dst_ip",
            "dst_port",
            "direction",
            "transaction_id",
            "unit_id",
            "function_code",
            "exception_code",
            "address",
            "quantity",
            "values",
        )
    )


# Not flow_id: it hashes the first frame's time, which each sniffer stamps on its own (see below).
FLOW_COUNTERS = (
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "src_mac",
    "dst_mac",
    "packets_to_server",
    "packets_to_client",
    "bytes_to_server",
    "bytes_to_client",
    "payload_bytes_to_server",
    "payload_bytes_to_client",
)


def asset_key(record: dict[str, Any]) -> dict[str, Any]:
    """An asset without the times (epoch floats) that tcpdump's microseconds round differently."""
    kept = {key: value for key, value in record.items() if key not in ("first_seen", "last_seen")}
    kept["services"] = [
        {key: value for key, value in service.items() if key not in ("first_seen", "last_seen")}
        for service in record["services"]
    ]
    return kept


@pytest.fixture
def lab() -> Iterator[tuple[Any, Any]]:
    yield from open_lab(SPAN_PREFIX)


# ---- tests --------------------------------------------------------------------------------------


def test_live_on_span_port_equals_replay_of_tcpdump(lab: Any, tmp_path: Path) -> None:
    pytest.importorskip("pymodbus", reason="pymodbus is in the dev extra")
    netlab, net = lab
    net.add_bridge("ot")
    net.add_host(netlab.Host("plc", (netlab.Leg("ot", "02:00:00:77:00:11", f"{PLC_IP}/24"),)))
    net.add_host(netlab.Host("hmi", (netlab.Leg("ot", "02:00:00:77:00:21", f"{HMI_IP}/24"),)))
    span = net.add_span(["ot"])

    tcpdump_file = tmp_path / "span.pcap"
    tcpdump = net.capture(tcpdump_file)
    live_state = tmp_path / "live"
    live_log = tmp_path / "live.log"
    monitor = net.popen(netlab.SWITCH, [*CLI, "live", "-i", span, "--state", str(live_state)], log=live_log)
    wait_for(lambda: "listening on" in live_log.read_text(errors="replace"), "the live monitor to listen")

    server = net.popen("plc", [*PEER, "server", PLC_IP], log=tmp_path / "server.log")
    # Probe the port over plc's own loopback, so that the probe puts no frame on the span port.
    probe = f"import socket; socket.create_connection(('{PLC_IP}', {MODBUS_PORT}), 0.5).close()"

    def listening() -> bool:
        return (
            subprocess.run(
                ["ip", "netns", "exec", net.namespace("plc"), sys.executable, "-c", probe],
                capture_output=True,
                check=False,
            ).returncode
            == 0
        )

    wait_for(listening, "the Modbus server")
    result = net.run("hmi", [*PEER, "client", PLC_IP])
    assert "done, 0 failures" in result.stdout
    # tcpdump (libpcap, TPACKET_V3 without --immediate-mode) writes a block of frames only when the
    # block times out (1 s) and drops what it holds at SIGTERM: wait until its file stops growing.
    wait_for(lambda: settled(tcpdump_file, modbus=12 * ROUNDS), "tcpdump to write the capture")
    assert net.stop(monitor, signal.SIGINT, grace=30) == 0, live_log.read_text(errors="replace")
    net.stop(tcpdump)
    net.stop(server)

    replay_state = tmp_path / "replay"
    replay_capture(tcpdump_file, replay_state)

    live_modbus = read_records(live_state / "events.jsonl", "modbus")
    replay_modbus = read_records(replay_state / "events.jsonl", "modbus")
    # 6 requests and 6 responses per round, nothing lost or added by either sniffer.
    assert len(replay_modbus) == 12 * ROUNDS
    assert [modbus_key(r) for r in live_modbus] == [modbus_key(r) for r in replay_modbus]
    # Both are kernel timestamps, but a mirrored frame carries none yet: each packet socket stamps
    # it on delivery, so tcpdump's and ours differ by the tens of microseconds between deliveries.
    for live_record, replay_record in zip(live_modbus, replay_modbus, strict=True):
        assert abs(live_record["ts"] - replay_record["ts"]) < 0.005

    # The values on the wire are the client's, read back from the server.
    reads = [
        r["values"]
        for r in live_modbus
        if r["function_code"] == 3 and r["direction"] == "response" and r["address"] == 10
    ]
    assert reads == [round_values(number)[0] for number in range(ROUNDS)]
    assert sorted({r["transaction_id"] for r in live_modbus}) == list(range(1, 6 * ROUNDS + 1))

    live_flows = read_records(live_state / "events.jsonl", "flow")
    replay_flows = read_records(replay_state / "events.jsonl", "flow")
    assert live_flows
    assert sorted(tuple(f[k] for k in FLOW_COUNTERS) for f in live_flows) == sorted(
        tuple(f[k] for k in FLOW_COUNTERS) for f in replay_flows
    )

    def assets(state: Path) -> list[dict[str, Any]]:
        output = subprocess.run(
            [*CLI, "assets", "--state", str(state), "--json"], capture_output=True, check=True, timeout=60
        ).stdout
        return sorted((asset_key(orjson.loads(line)) for line in output.splitlines()), key=lambda a: a["ip"])

    live_assets = assets(live_state)
    assert [a["ip"] for a in live_assets] == [PLC_IP, HMI_IP] or [a["ip"] for a in live_assets] == sorted(
        [PLC_IP, HMI_IP]
    )
    assert live_assets == assets(replay_state)
    log = live_log.read_text(errors="replace")
    assert f"{span}: " in log and " 0 dropped by the kernel" in log


SEND_UDP = """
import socket
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for number in range(3):
    sender.sendto(bytes([number]) * 500, ("127.0.0.1", 9))
"""
LOOPBACK_PROBE = """
import json, socket, time
from ics_monitor.capture.live import LiveSource
source = LiveSource(["lo"], snaplen=64, duration=1.0, bpf="udp dst port 9")
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for number in range(3):
    sender.sendto(bytes([number]) * 500, ("127.0.0.1", 9))
    sender.sendto(bytes([number]) * 500, ("127.0.0.1", 10))  # filtered out
started = time.time()
frames = [(ts, link, data.hex(), wire) for ts, link, data, wire in source]
print(json.dumps({"started": started, "ended": time.time(), "frames": frames,
                  "statistics": source.statistics()}))
"""


def test_live_source_snaplen_duration_loopback(lab: Any) -> None:
    """LiveSource itself: BPF filter, snap length, wire length, kernel times, loopback once, duration.

    Loopback hands a packet socket every packet twice (sent and received); libpcap keeps one.
    """
    netlab, net = lab
    result = net.run(netlab.SWITCH, [sys.executable, "-c", LOOPBACK_PROBE])
    report = orjson.loads(result.stdout)
    udp = report["frames"]
    # The filter let through only the three datagrams to port 9 (no port 10, no ICMP unreachables).
    assert [(bytes.fromhex(frame[2])[23], bytes.fromhex(frame[2])[36:38]) for frame in udp] == [
        (17, b"\x00\x09")
    ] * 3
    for number, (ts, link_type, data_hex, wire_len) in enumerate(udp):
        data = bytes.fromhex(data_hex)
        assert link_type == 1
        assert len(data) == 64
        assert wire_len == 14 + 20 + 8 + 500  # Ethernet, IPv4, UDP, payload
        assert data[42:] == bytes([number]) * 22
        assert report["started"] - 1.0 < ts <= report["started"]
    # The duration ends the capture; the kernel counted what it handed over, dropped nothing.
    assert 0.9 < report["ended"] - report["started"] < 3.0
    assert report["statistics"]["lo"]["kernel_drops"] == 0
    assert report["statistics"]["lo"]["kernel_packets"] >= 3


def test_sigterm_ends_live_cleanly(lab: Any, tmp_path: Path) -> None:
    """SIGTERM (what systemd sends) stops the capture; the run is stored, the counters printed."""
    netlab, net = lab
    state = tmp_path / "state"
    log = tmp_path / "live.log"
    argv = [*CLI, "live", "-i", "lo", "--bpf", "udp dst port 9", "--state", str(state)]
    monitor = net.popen(netlab.SWITCH, argv, log=log)
    wait_for(lambda: "listening on lo" in log.read_text(errors="replace"), "the live monitor to listen")
    net.run(netlab.SWITCH, [sys.executable, "-c", SEND_UDP])
    time.sleep(0.3)
    assert net.stop(monitor, signal.SIGTERM, grace=30) == 0, log.read_text(errors="replace")
    output = log.read_text(errors="replace")
    assert "lo: " in output and " 0 dropped by the kernel" in output
    flows = read_records(state / "events.jsonl", "flow")
    # --bpf reached the kernel: the ICMP port-unreachable answers were filtered out.
    assert [(f["transport"], f["dst_port"], f["packets_to_server"]) for f in flows] == [("udp", 9, 3)]
    with sqlite3.connect(state / "store.sqlite") as database:
        runs = database.execute("SELECT command, captures FROM runs").fetchall()
    assert runs == [("live", '["lo"]')]


def test_unknown_interface_is_one_line(lab: Any) -> None:
    _netlab, net = lab
    result = subprocess.run(
        ["ip", "netns", "exec", net.namespace("switch"), *CLI, "live", "-i", "nosuch0", "--duration", "1"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "ics-monitor: error: nosuch0: no such network interface\n"


def test_bad_filter_is_one_line(lab: Any) -> None:
    _netlab, net = lab
    need_tool("tcpdump")
    result = subprocess.run(
        ["ip", "netns", "exec", net.namespace("switch"), *CLI, "live", "-i", "lo", "--bpf", "udp dst prt 9"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "ics-monitor: error: bad BPF filter 'udp dst prt 9': unknown host 'prt'\n"


def test_missing_capability_is_one_line(lab: Any) -> None:
    _netlab, net = lab
    need_tool("setpriv")
    # Root without CAP_NET_RAW: dropped from the bounding and inheritable sets before exec.
    result = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            net.namespace("switch"),
            "setpriv",
            "--bounding-set",
            "-net_raw",
            "--inh-caps",
            "-net_raw",
            *CLI,
            "live",
            "-i",
            "lo",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert "lo: permission denied: live capture needs CAP_NET_RAW" in result.stderr


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        serve(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "client":
        sys.exit(client(sys.argv[2]))
    else:
        sys.exit("usage: python -m tests.integration.test_live_span {server,client} IP")


def test_live_tests_share_one_xdist_worker(request: pytest.FixtureRequest) -> None:
    """Under ``make test`` (--dist loadgroup) this module's tests carry their group in the node id.

    Without it xdist spreads the live tests over workers, and two of them may build the same
    namespaces at once (pytest 9.2 broke this silently with xdist 3.8: hence the pin).
    """
    if getattr(request.config, "workerinput", None) is None or request.config.getvalue("dist") != "loadgroup":
        return  # not run by xdist with groups: nothing to keep together
    assert request.node.nodeid.endswith("@live")
