"""Operations of ``ics-monitor live`` on a real link, checked while the monitor runs.

Each test runs the monitor in a fresh network namespace (pcaps/generators/demo/netlab.py) on its
loopback, with a small Modbus/TCP device and client (plain sockets, this module's ``DEVICE`` and
``CLIENT`` scripts) talking over 127.0.0.1:502 in the same namespace: real frames through a real
AF_PACKET socket, nothing mocked.  What is checked, with the monitor still running:

* alerts reach alerts.jsonl and the SQLite store within a few seconds (periodic flushing);
* capture time follows the wall clock on a quiet link: a held (throttled) alert update comes out
  and a closed TCP connection's flow record is written after its timeout, with no new frame;
* health records every --stats-interval, and a final one at exit (file, store, stderr);
* SIGHUP reloads rules and zones; a file that does not load keeps the old ones, in one log line;
* --rotate-size rotates the JSON-lines logs with no record lost or split;
* --learn-for learns for the window, then enforces the baseline by itself.

Needs root and network namespaces; the tests skip, saying why, only where the kernel refuses.
"""

from __future__ import annotations

import itertools
import os
import shutil
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
import yaml

from tests.conftest import REPO
from tests.integration.lab_support import open_lab, read_records, wait_for
from tests.integration.test_live_span import CLI

# One at a time (one xdist worker): timing assertions and namespaces do not share the CPU well.
pytestmark = pytest.mark.xdist_group("live")

PREFIX = "icsop"
DEVICE = """
import socket, struct, threading
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 502))
server.listen()
print("ready", flush=True)

def answer(connection):
    buffer = b""
    while True:
        data = connection.recv(4096)
        if not data:
            break
        buffer += data
        while len(buffer) >= 7:
            transaction, _protocol, length, unit = struct.unpack(">HHHB", buffer[:7])
            if len(buffer) < 6 + length:
                break
            pdu, buffer = buffer[7 : 6 + length], buffer[6 + length :]
            if pdu[0] == 3:
                count = struct.unpack(">H", pdu[3:5])[0]
                reply = bytes([3, 2 * count]) + bytes(2 * count)
            else:
                reply = pdu  # FC 6 and FC 8 sub-functions 0/1: the echo is the normal response
            connection.sendall(struct.pack(">HHHB", transaction, 0, len(reply) + 1, unit) + reply)
    connection.close()

while True:
    connection, _ = server.accept()
    threading.Thread(target=answer, args=(connection,), daemon=True).start()
"""
# argv: requests, each "3" (read 4 holding registers at 0), "6" (write 1234 to register 5) or "8/1"
# (restart communications); all on one connection, each answered before the next; then FIN.
CLIENT = """
import socket, struct, sys
PDUS = {"3": bytes([3, 0, 0, 0, 4]), "6": bytes([6, 0, 5]) + (1234).to_bytes(2, "big"),
        "8/1": bytes([8, 0, 1, 0, 0])}
connection = socket.create_connection(("127.0.0.1", 502), timeout=20)
for transaction, name in enumerate(sys.argv[1:], 1):
    pdu = PDUS[name]
    connection.sendall(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, 1) + pdu)
    header = connection.recv(7)
    length = struct.unpack(">HHHB", header)[2]
    body = b""
    while len(body) < length - 1:
        body += connection.recv(length - 1 - len(body))
connection.close()
print("done", flush=True)
"""


@pytest.fixture
def lab() -> Iterator[tuple[Any, Any]]:
    yield from open_lab(PREFIX, ("ip", "tcpdump"))


class Monitor:
    """``ics-monitor live -i lo`` in the lab's namespace, with the Modbus device beside it."""

    def __init__(self, lab: Any, tmp_path: Path, *options: str) -> None:
        self.netlab, self.net = lab
        self.state = tmp_path / "state"
        self.log = tmp_path / "live.log"
        argv = [*CLI, "live", "-i", "lo", "--bpf", "tcp port 502", "--state", str(self.state), *options]
        self.process = self.net.popen(self.netlab.SWITCH, argv, log=self.log)
        wait_for(lambda: "listening on lo" in self.output(), "the live monitor to listen")
        self.started = time.monotonic()
        device_log = tmp_path / "device.log"
        self.net.popen(self.netlab.SWITCH, [sys.executable, "-c", DEVICE], log=device_log)
        wait_for(lambda: device_log.exists() and "ready" in device_log.read_text(), "the Modbus device")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, *requests: str) -> None:
        result = self.net.run(self.netlab.SWITCH, [sys.executable, "-c", CLIENT, *requests])
        assert "done" in result.stdout

    def records(self, event_type: str, name: str = "events.jsonl") -> list[dict[str, Any]]:
        path = self.state / name
        return read_records(path, event_type) if path.exists() else []

    def alerts(self, rule_id: str) -> list[dict[str, Any]]:
        return [alert for alert in self.records("alert", "alerts.jsonl") if alert["rule_id"] == rule_id]

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, number: int) -> None:
        os.killpg(self.process.pid, number)

    def stop(self) -> str:
        assert self.net.stop(self.process, signal.SIGINT, grace=30) == 0, self.output()
        return self.output()


def stored_alerts(state: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(state / "store.sqlite") as database:
        return database.execute("SELECT rule_id, count FROM alerts ORDER BY rule_id").fetchall()


def copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules, ignore=shutil.ignore_patterns("examples"))
    return rules


def test_alerts_flushed_and_clock_ticks_while_running(lab: Any, tmp_path: Path) -> None:
    # Modbus alerts throttled for 5 s instead of 300, so the held update is due within the test.
    rules = copy_rules(tmp_path)
    modbus_rules = rules / "modbus.yaml"
    shipped = modbus_rules.read_text()
    modbus_rules.write_text(shipped.replace("defaults:\n  throttle: 300\n", "defaults:\n  throttle: 5\n"))
    assert modbus_rules.read_text() != shipped
    monitor = Monitor(lab, tmp_path, "--rules", str(rules), "--stats-interval", "1")
    monitor.client("8/1", "8/1")
    sent = time.monotonic()

    # Item 2: the first restart-communications alert is on disk and in the store within seconds.
    wait_for(lambda: monitor.alerts("ICS-1301"), "ICS-1301 in alerts.jsonl", timeout=20)
    wait_for(lambda: ("ICS-1301", 1) in stored_alerts(monitor.state), "ICS-1301 in the store", timeout=20)
    assert time.monotonic() - sent < 5

    # The server's answer: alerts go out at the tick, so an answer within the same second is in
    # the alert's first record; one after a tick boundary brings a second record with count 1.
    def answered_records() -> list[dict[str, Any]]:
        return [alert for alert in monitor.alerts("ICS-1301") if "outcome" in alert["evidence"]]

    wait_for(answered_records, "ICS-1301 with the server's answer", timeout=20)
    answered = answered_records()[0]
    singles = [alert for alert in monitor.alerts("ICS-1301") if alert["count"] == 1]
    assert singles[-1] == answered and len(singles) <= 2
    assert {alert["alert_id"] for alert in singles} == {answered["alert_id"]}
    assert answered["evidence"]["outcome"]["result"] == "accepted"

    # The second request was throttled into a held update: the engine releases it once the 5 s
    # window has passed, at its next 10 s throttle flush of capture time; no frame comes any more,
    # so only the wall-clock tick can bring it out.  It keeps the answer.
    wait_for(lambda: monitor.alerts("ICS-1301")[-1]["count"] == 2, "the held ICS-1301 update", timeout=20)
    held = monitor.alerts("ICS-1301")[-1]
    assert [alert["count"] for alert in monitor.alerts("ICS-1301")] == [1] * len(singles) + [2]
    assert held["alert_id"] == answered["alert_id"]
    assert held["evidence"]["outcome"] == answered["evidence"]["outcome"]
    assert ("ICS-1301", 2) in stored_alerts(monitor.state)

    # The connection was closed (FIN both ways): its flow record comes after the closed-TCP
    # timeout (15 s of capture time), again with no frame to move the clock.
    wait_for(lambda: monitor.records("flow"), "the flow record of the closed connection", timeout=25)
    (flow,) = monitor.records("flow")
    assert (flow["dst_port"], flow["end_reason"]) == (502, "closed")
    assert flow["packets_to_server"] >= 4
    assert monitor.running()

    # Item 1: a health record every second while running.
    health = monitor.records("health")
    assert len(health) >= 10
    assert all(not record["final"] for record in health)
    times = [record["ts"] for record in health]
    assert times == sorted(times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) > 0.5 and max(gaps) < 2.5
    last = health[-1]
    assert [interface["name"] for interface in last["interfaces"]] == ["lo"]
    # The filter passes only port 502 frames; loopback hands each to the socket twice (sent and
    # received, one kept): the kernel counted exactly twice the frames we analysed.
    assert last["frames"] == flow["packets_to_server"] + flow["packets_to_client"]
    assert last["kernel_packets"] == 2 * last["frames"]
    assert last["kernel_drops"] == 0
    assert last["events"] == 4 and last["alerts"] == 1
    assert last["alert_records"] == len(monitor.alerts("ICS-1301"))  # every record written, once
    assert last["flows_ended"] == 1 and last["flows_active"] == 0 and last["flow_evictions"] == 0
    assert last["rss_bytes"] > 10 << 20
    assert {sink["sink"] for sink in last["sinks"]} == {"AppendLog", "Store"}

    output = monitor.stop()
    final = monitor.records("health")[-1]
    assert final["final"] is True and final["frames"] == last["frames"]
    assert "health: " in output and f"{last['frames']} frames, 4 events, 1 alerts" in output
    with sqlite3.connect(monitor.state / "store.sqlite") as database:
        (stats,) = database.execute("SELECT stats FROM runs").fetchone()
    assert orjson.loads(stats)["health"]["frames"] == last["frames"]


def test_sighup_reloads_rules_and_zones(lab: Any, tmp_path: Path) -> None:
    rules = copy_rules(tmp_path)
    modbus_rules = rules / "modbus.yaml"
    shipped = modbus_rules.read_text()
    disabled = shipped.replace(
        "name: modbus_restart_communications\n", "name: modbus_restart_communications\n    enabled: false\n"
    )
    assert disabled != shipped
    modbus_rules.write_text(disabled)
    zones = tmp_path / "zones.yaml"
    shutil.copy(REPO / "rules" / "examples" / "zones.yaml", zones)
    good_zones = zones.read_text()

    monitor = Monitor(lab, tmp_path, "--rules", str(rules), "--zones", str(zones), "--stats-interval", "1")

    def modbus_events() -> int:
        return len(monitor.records("modbus"))

    monitor.client("8/1")
    wait_for(lambda: modbus_events() >= 2, "the first request and response", timeout=30)
    time.sleep(1.5)  # a flush after the events: an alert would be on disk by now
    assert monitor.alerts("ICS-1301") == []

    # A zones file that does not load: one line, and the rules in force stay (still disabled).
    zones.write_text("zones: [unclosed\n")
    monitor.signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in monitor.output(), "the failed reload to be reported")
    failure_lines = [line for line in monitor.output().splitlines() if "reload failed" in line]
    assert len(failure_lines) == 1
    assert "zones.yaml" in failure_lines[0]
    monitor.client("8/1")
    wait_for(lambda: modbus_events() >= 4, "the second request and response", timeout=30)
    time.sleep(1.5)
    assert monitor.alerts("ICS-1301") == []

    # Good files: the enabled rule applies from the next request on.
    zones.write_text(good_zones)
    modbus_rules.write_text(shipped)
    monitor.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded the rules and zones" in monitor.output(), "the reload")
    monitor.client("8/1")
    wait_for(lambda: monitor.alerts("ICS-1301"), "ICS-1301 after the reload", timeout=20)
    assert monitor.running()
    wait_for(lambda: monitor.records("health")[-1]["reloads"] == 1, "a health record after the reload")
    assert monitor.records("health")[-1]["reload_failures"] == 1
    monitor.stop()


def test_rotation_by_size_loses_and_splits_nothing(lab: Any, tmp_path: Path) -> None:
    monitor = Monitor(lab, tmp_path, "--rotate-size", "4k", "--rotate-keep", "100", "--stats-interval", "1h")
    requests = 60
    monitor.client(*["3"] * requests)
    monitor.stop()
    files = sorted(
        monitor.state.glob("events.jsonl.*"), key=lambda path: -int(path.name.rsplit(".", 1)[1])
    ) + [monitor.state / "events.jsonl"]
    assert len(files) > 5, [path.name for path in files]
    records = []
    for path in files:
        data = path.read_bytes()
        assert len(data) <= 4096 and data.endswith(b"\n"), path.name
        records.extend(orjson.loads(line) for line in data.splitlines())
    modbus = [record for record in records if record["event_type"] == "modbus"]
    # Every request and response, in order, across the files (no loss, no duplicate).
    assert len(modbus) == 2 * requests
    assert [record["transaction_id"] for record in modbus] == [
        n for n in range(1, requests + 1) for _ in (0, 1)
    ]
    assert [record["event_type"] for record in records].count("flow") == 1
    assert records[-1]["event_type"] == "health" and records[-1]["final"] is True


def test_rotation_by_time_while_running(lab: Any, tmp_path: Path) -> None:
    """--rotate-every: the flush each second rotates a file open that long, between two records."""
    monitor = Monitor(lab, tmp_path, "--rotate-every", "1s", "--stats-interval", "1")
    wait_for((monitor.state / "events.jsonl.3").exists, "three rotations by time", timeout=10)
    assert monitor.running()
    monitor.stop()
    files = sorted(monitor.state.glob("events.jsonl.*"), key=lambda path: -int(path.name.rsplit(".", 1)[1]))
    files.append(monitor.state / "events.jsonl")
    health = []
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"\n"), path.name
        health.extend(orjson.loads(line) for line in data.splitlines())
    # Every health record once, in time order, across the files; the final one last.
    assert {record["event_type"] for record in health} == {"health"}
    times = [record["ts"] for record in health]
    assert times == sorted(times) and len(set(times)) == len(times) >= 4
    assert [record["final"] for record in health] == [False] * (len(health) - 1) + [True]


def test_learn_for_switches_to_enforcing_on_time(lab: Any, tmp_path: Path) -> None:
    monitor = Monitor(lab, tmp_path, "--learn-for", "3s", "--stats-interval", "1")
    monitor.client("3", "3", "3")
    baseline = monitor.state / "baseline.yaml"
    assert not baseline.exists()
    # No frame after the reads: the window still ends on the wall clock, and the baseline is saved.
    wait_for(baseline.exists, "the learned baseline", timeout=20)
    learned_after = time.monotonic() - monitor.started
    # Three seconds of window; the upper bound leaves room for a loaded machine (CI runs two
    # test workers beside Elasticsearch), not for a window that waits for a frame.
    assert 2.5 < learned_after < 15.0
    assert monitor.running()
    health = monitor.records("health")
    assert health[0]["learning"] is True

    # Enforcing now: a function code the window never saw on this conversation is an alert.
    monitor.client("6")
    wait_for(lambda: monitor.alerts("ICS-5004"), "ICS-5004 (new function code)", timeout=20)
    (alert,) = monitor.alerts("ICS-5004")
    assert alert["evidence"]["function_key"] == "6"
    assert alert["evidence"]["learned_functions"] == ["READ_HOLDING_REGISTERS"]
    wait_for(lambda: monitor.records("health")[-1]["learning"] is False, "a health record after learning")
    monitor.stop()
    # The saved baseline is the window's: three reads on one conversation, nothing after.
    learned = yaml.safe_load(baseline.read_text())
    (conversation,) = learned["conversations"].values()
    assert (conversation["requests"], list(conversation["functions"])) == (3, ["3"])


def test_bad_operation_options_are_one_line(lab: Any) -> None:
    netlab, net = lab
    for options, message in (
        (["--rotate-size", "12"], "rotation size 12 is below the minimum of 4096 bytes"),
        (["--rotate-size", "lots"], "bad size 'lots'"),
        (["--stats-interval", "0"], "bad duration '0'"),
        (["--workers", "2", "--worker-timeout", "1s"], "--worker-timeout 1s: at least 2s"),
    ):
        result = subprocess.run(
            ["ip", "netns", "exec", net.namespace(netlab.SWITCH), *CLI, "live", "-i", "lo", *options],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
