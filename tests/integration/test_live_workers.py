"""``ics-monitor live --workers N`` on a real mirrored link: an AF_PACKET fanout group of worker processes.

The lab is test_live_span's (namespaces ``plc`` and ``hmi`` on a bridge, a tc mirred SPAN copy to a
span veth).  The monitor runs with two workers whose sockets share one ``PACKET_FANOUT_HASH``
group: the kernel gives each frame to one of them by its symmetric flow hash.  Three Modbus client
connections (three flows) run one after another; both the monitor and tcpdump sniff the span port,
the monitor is stopped with SIGINT and the tcpdump file is replayed.  Modbus records (in order),
flows and assets must equal the replay's, as with one process, and the kernel counters of both
workers' sockets are summed in the exit lines.

Also: the fanout itself (every frame to exactly one member, a flow's frames all to the same one)
and a worker killed mid-run (one error line, non-zero exit, what was merged before it is kept).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.core.collector import YOUNG_THRESHOLD
from ics_monitor.core.errors import CaptureError
from ics_monitor.dissect import Registry
from ics_monitor.parallel import LiveShards
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.memory import ListSink
from tests.conftest import REPO
from tests.integration.lab_support import (
    open_lab,
    read_jsonl,
    read_records,
    replay_capture,
    settled,
    wait_for,
)
from tests.integration.test_live_span import (
    FLOW_COUNTERS,
    HMI_IP,
    MODBUS_PORT,
    PEER,
    PLC_IP,
    ROUNDS,
    asset_key,
    modbus_key,
    round_values,
)
from tests.support.lenmsg import CollectorReportingDissector, SlowStartingDissector

pytestmark = pytest.mark.xdist_group("live")

CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]
PREFIX = "icslw"
CONNECTIONS = 3


@pytest.fixture
def lab() -> Iterator[tuple[Any, Any]]:
    yield from open_lab(PREFIX)


def modbus_lab(netlab: Any, net: Any, tmp_path: Path) -> tuple[str, Any]:
    """Hosts, span port and a listening Modbus server in ``plc``; returns (span, server process)."""
    net.add_bridge("ot")
    net.add_host(netlab.Host("plc", (netlab.Leg("ot", "02:00:00:77:00:11", f"{PLC_IP}/24"),)))
    net.add_host(netlab.Host("hmi", (netlab.Leg("ot", "02:00:00:77:00:21", f"{HMI_IP}/24"),)))
    span = net.add_span(["ot"])
    server = net.popen("plc", [*PEER, "server", PLC_IP], log=tmp_path / "server.log")
    # Probed over plc's own loopback: the probe puts no frame on the span port.
    probe = f"import socket; socket.create_connection(('{PLC_IP}', {MODBUS_PORT}), 0.5).close()"

    def listening() -> bool:
        argv = ["ip", "netns", "exec", net.namespace("plc"), sys.executable, "-c", probe]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    wait_for(listening, "the Modbus server")
    return span, server


def start_monitor(netlab: Any, net: Any, span: str, state: Path, log: Path, *extra: str) -> Any:
    argv = [
        *CLI,
        "live",
        "-i",
        span,
        "--workers",
        "2",
        "--state",
        str(state),
        "--stats-interval",
        "1s",
        *extra,
    ]
    monitor = net.popen(netlab.SWITCH, argv, log=log)
    wait_for(lambda: "listening on" in log.read_text(errors="replace"), "the live monitor to listen")
    return monitor


def test_two_workers_on_span_port_equal_replay_of_tcpdump(lab: Any, tmp_path: Path) -> None:
    pytest.importorskip("pymodbus", reason="pymodbus is in the dev extra")
    netlab, net = lab
    span, server = modbus_lab(netlab, net, tmp_path)
    tcpdump_file = tmp_path / "span.pcap"
    tcpdump = net.capture(tcpdump_file)
    live_state = tmp_path / "live"
    live_log = tmp_path / "live.log"
    monitor = start_monitor(netlab, net, span, live_state, live_log)
    assert "listening on " + span + " with 2 workers" in live_log.read_text()

    for _ in range(CONNECTIONS):
        result = net.run("hmi", [*PEER, "client", PLC_IP])
        assert "done, 0 failures" in result.stdout
    wait_for(lambda: settled(tcpdump_file, modbus=12 * ROUNDS * CONNECTIONS), "tcpdump to write the capture")
    assert net.stop(monitor, signal.SIGINT, grace=30) == 0, live_log.read_text(errors="replace")
    net.stop(tcpdump)
    net.stop(server)

    replay_state = tmp_path / "replay"
    replay_capture(tcpdump_file, replay_state)

    live_modbus = read_records(live_state / "events.jsonl", "modbus")
    replay_modbus = read_records(replay_state / "events.jsonl", "modbus")
    assert len(replay_modbus) == 12 * ROUNDS * CONNECTIONS
    # The connections ran one after another: the merged stream keeps their order.
    assert [modbus_key(r) for r in live_modbus] == [modbus_key(r) for r in replay_modbus]
    for live_record, replay_record in zip(live_modbus, replay_modbus, strict=True):
        assert abs(live_record["ts"] - replay_record["ts"]) < 0.005
    reads = [
        r["values"]
        for r in live_modbus
        if r["function_code"] == 3 and r["direction"] == "response" and r["address"] == 10
    ]
    assert reads == [round_values(number)[0] for number in range(ROUNDS)] * CONNECTIONS
    # Frame numbers drawn from the workers' shared counter: unique, never going back in the
    # merged stream, and a response's request_frame is its request's frame.
    frames = [r["frame"] for r in live_modbus]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    request_frames = {
        (r["src_port"], r["transaction_id"]): r["frame"] for r in live_modbus if r["direction"] == "request"
    }
    for response in (r for r in live_modbus if r["direction"] == "response"):
        assert response["request_frame"] == request_frames[(response["dst_port"], response["transaction_id"])]

    # The periodic health records count the merged events as they come, not only at exit.
    health = read_records(live_state / "events.jsonl", "health")
    periodic = [record["events"] for record in health if not record["final"]]
    assert periodic == sorted(periodic) and periodic[-1] > 0, periodic

    live_flows = read_records(live_state / "events.jsonl", "flow")
    replay_flows = read_records(replay_state / "events.jsonl", "flow")
    assert len([f for f in live_flows if f["dst_port"] == MODBUS_PORT]) == CONNECTIONS
    assert sorted(tuple(f[k] for k in FLOW_COUNTERS) for f in live_flows) == sorted(
        tuple(f[k] for k in FLOW_COUNTERS) for f in replay_flows
    )

    def assets(state: Path) -> list[dict[str, Any]]:
        # Not first_frame: live frame numbers follow the order the workers took the frames off
        # their sockets (the ARP and the first TCP frame may be taken in either order).
        output = subprocess.run(
            [*CLI, "assets", "--state", str(state), "--json"], capture_output=True, check=True, timeout=60
        ).stdout
        records = [asset_key(orjson.loads(line)) for line in output.splitlines()]
        for record in records:
            del record["first_frame"]
        return sorted(records, key=lambda a: a["ip"])

    live_assets = assets(live_state)
    assert sorted(a["ip"] for a in live_assets) == sorted([PLC_IP, HMI_IP])
    replay_assets = assets(replay_state)
    for live_asset, replay_asset in zip(live_assets, replay_assets, strict=True):
        differences = {
            key: (value, replay_asset.get(key))
            for key, value in live_asset.items()
            if value != replay_asset.get(key)
        }
        assert differences == {}, live_asset["ip"]

    # Both workers' kernel counters, summed: every frame tcpdump saw was counted, none dropped.
    log = live_log.read_text(errors="replace")
    health = [r for r in read_jsonl(live_state / "events.jsonl") if r.get("event_type") == "health"]
    final = health[-1]
    assert final["final"] is True
    assert final["kernel_drops"] == 0
    captured = sum(1 for _frame in open_captures([str(tcpdump_file)]))
    assert len(replay_modbus) < final["frames"] == final["kernel_packets"] <= captured
    assert f"{span}: {final['kernel_packets']:,} packets seen by the kernel, 0 dropped by the kernel" in log


FANOUT_PROBE = """
import json, socket, sys, time
import multiprocessing
from ics_monitor.capture.live import open_fanout

def capture(source, queue):
    queue.put([(data[34:38].hex(), wire) for _ts, _link, data, wire in source])

if __name__ == "__main__":
    context = multiprocessing.get_context("forkserver")
    sources = open_fanout(["lo"], 3, duration=2.0, bpf="udp dst port 9 or udp src port 9")
    queue = context.Queue()
    processes = [context.Process(target=capture, args=(source, queue)) for source in sources]
    for process, source in zip(processes, sources):
        process.start()
        source.detach()
    time.sleep(0.5)
    for port in range(21000, 21024):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.1", port))
        for _ in range(3):
            sender.sendto(b"x", ("127.0.0.1", 9))
        sender.close()
    print(json.dumps([queue.get(timeout=10) for _ in processes]))
    for process in processes:
        process.join(10)
"""


def test_fanout_gives_each_flow_to_one_member(lab: Any, tmp_path: Path) -> None:
    """``open_fanout``: three members, 24 UDP flows of 3 datagrams; every frame once, flows whole."""
    netlab, net = lab
    # A script file, not -c: the fork server imports the main module to find ``capture``.
    script = tmp_path / "fanout_probe.py"
    script.write_text(FANOUT_PROBE)
    result = net.run(netlab.SWITCH, ["env", f"PYTHONPATH={REPO}", sys.executable, str(script)])
    members = json.loads(result.stdout)
    ports = [[int(ports[:4], 16) for ports, _wire in frames] for frames in members]
    everything = sorted(port for member in ports for port in member)
    # Loopback frames are kept once (as libpcap does); each of the 72 datagrams reached one member.
    assert everything == sorted(list(range(21000, 21024)) * 3)
    owners: dict[int, set[int]] = {}
    for index, member in enumerate(ports):
        for port in member:
            owners.setdefault(port, set()).add(index)
    assert all(len(owner) == 1 for owner in owners.values())
    # The kernel's hash spread 24 flows over more than one member (all on one: 3 * (1/3)^24).
    assert sum(1 for member in ports if member) >= 2


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as children:
            found.extend(int(word) for word in children.read().split())
    return found


@pytest.mark.parametrize(
    ("stop", "options", "message"),
    [
        (signal.SIGKILL, (), " of 2 ended unexpectedly (exit code -9)"),
        # Alive but silent (stopped): past --worker-timeout the parent kills it, as for a dead one.
        (signal.SIGSTOP, ("--worker-timeout", "3s"), " of 2 stopped responding (no heartbeat for 3 s)"),
    ],
    ids=["killed", "hung"],
)
def test_lost_worker_is_one_error_line_and_output_kept(
    lab: Any, tmp_path: Path, stop: signal.Signals, options: tuple[str, ...], message: str
) -> None:
    """A worker that dies, or hangs, ends the run cleanly: one error line, exit 2, and what the
    client did before is in the log and the store; a hung one is not given up before the timeout."""
    pytest.importorskip("pymodbus", reason="pymodbus is in the dev extra")
    netlab, net = lab
    span, server = modbus_lab(netlab, net, tmp_path)
    state = tmp_path / "live"
    log = tmp_path / "live.log"
    monitor = start_monitor(netlab, net, span, state, log, *options)
    result = net.run("hmi", [*PEER, "client", PLC_IP])
    assert "done, 0 failures" in result.stdout
    time.sleep(1.5)  # the heartbeats carry the records to the parent

    # The workers are the fork server's children (the fork server is the monitor's child).
    def workers() -> list[int]:
        return [pid for child in _children(monitor.pid) for pid in _children(child)]

    wait_for(lambda: len(workers()) == 2, "two worker processes")
    stopped = time.monotonic()
    os.kill(workers()[0], stop)
    assert monitor.wait(timeout=30) == 2
    if stop == signal.SIGSTOP:
        assert time.monotonic() - stopped >= 2.5  # not before the timeout
    net.stop(server)
    output = log.read_text(errors="replace")
    errors = [line for line in output.splitlines() if line.startswith("ics-monitor: error:")]
    assert len(errors) == 1, output
    assert "worker " in errors[0] and message in errors[0], errors[0]
    assert "Traceback" not in output
    assert len(read_records(state / "events.jsonl", "modbus")) == 12 * ROUNDS
    assert read_records(state / "events.jsonl", "health")[-1]["final"] is True


def _lo_shards(
    dissector: Any, port: int, duration: float, watchdog: float = 30.0
) -> tuple[LiveShards, Pipeline, ListSink]:
    """Two live workers on this host's loopback for UDP to ``port``, a pipeline with ``dissector``."""
    events = ListSink()
    pipeline = Pipeline(Config(), Registry([dissector]), event_sinks=[events])
    try:
        shards = LiveShards(
            ["lo"], 2, snaplen=65535, duration=duration, bpf=f"udp dst port {port}", watchdog=watchdog
        )
    except CaptureError as error:
        if "CAP_NET_RAW" not in str(error):
            raise  # only a process without the capture right skips, as the lab tests do
        pytest.skip(f"live capture on lo: {error}")
    return shards, pipeline, events


def test_live_workers_run_the_collector_as_the_command_line_does() -> None:
    """A live worker is a fork server's child too: it sets the collector's threshold itself, or
    it collects every 700 allocations (``core.collector``; the batch workers' test is in
    test_workers).  Two workers on this host's loopback; 24 lenmsg datagrams, each from a port of
    its own (a flow each: the kernel's hash gives both workers some, but for 2 in 2^24)."""
    port = 47777
    shards, pipeline, events = _lo_shards(CollectorReportingDissector(udp_ports=frozenset({port})), port, 1.5)
    # The sockets are open and their rings set up: the datagrams wait there for their worker.
    clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(24)]
    try:
        for client in clients:
            client.bind(("127.0.0.1", 0))
            client.sendto(b"\xab\xcd\x00\x02hi", ("127.0.0.1", port))
    finally:
        for client in clients:
            client.close()
    shards.run(pipeline)
    reports = [record.body.split()[1::2] for record in events.records if record.event_type == "lenmsg"]
    assert len(reports) == 24
    assert {int(threshold) for threshold, _pid in reports} == {YOUNG_THRESHOLD}
    assert len({pid for _threshold, pid in reports}) == 2


def test_live_workers_take_frames_only_once_all_are_ready(tmp_path: Path) -> None:
    """The start gate: one worker takes 1.5 s longer to build its pipeline.  Once ``on_listening``
    is called, sixteen lenmsg datagrams, each a flow of its own (the kernel's hash spreads them over
    both workers), are sent 0.08 s apart: the merged records keep the order they were sent in.
    Without the gate, the fast worker would number its datagrams before the slow one's backlog."""
    port = 47778
    claim = tmp_path / "slow-worker"
    shards, pipeline, events = _lo_shards(
        SlowStartingDissector(frozenset({port}), str(claim), 1.5), port, 4.0
    )
    listened: list[float] = []
    sent: list[int] = []

    def send() -> None:
        for _ in range(16):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.bind(("127.0.0.1", 0))
                sent.append(client.getsockname()[1])
                client.sendto(b"\xab\xcd\x00\x02hi", ("127.0.0.1", port))
            time.sleep(0.08)

    def on_listening() -> None:
        listened.append(time.monotonic())
        threading.Thread(target=send, daemon=True).start()

    shards.on_listening = on_listening
    started = time.monotonic()
    shards.run(pipeline)
    assert claim.exists()  # one worker was slow to start
    assert len(listened) == 1 and listened[0] - started >= 1.5  # said once both were ready
    frames = [record for record in events.records if record.event_type == "lenmsg"]
    # Both workers took some (a record's body names the pid that parsed it; all 16 flows on one
    # worker: 2 in 2^16), and the merged order is the sending order.
    assert len({record.body.split()[3] for record in frames}) == 2
    assert [record.src_port for record in frames] == sent


def test_a_worker_starting_slower_than_the_watchdog_does_not_hold_the_others(tmp_path: Path) -> None:
    """One worker takes 3 s to start, the watchdog is 2 s: the gate opens at the watchdog and
    "listening" is said then (a script waiting for it does not wait for ever); the run ends
    normally, the slow worker capturing once started."""
    port = 47779
    claim = tmp_path / "slow-worker"
    shards, pipeline, _events = _lo_shards(
        SlowStartingDissector(frozenset({port}), str(claim), 3.0), port, 2.0, watchdog=2.0
    )
    listened: list[float] = []
    shards.on_listening = lambda: listened.append(time.monotonic())
    started = time.monotonic()
    stats = shards.run(pipeline)
    assert claim.exists() and stats.errors == []
    assert len(listened) == 1 and 1.5 <= listened[0] - started < 3.0
