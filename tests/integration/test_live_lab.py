"""Live capture on a mirrored link with real S7 and DNP3 stacks: live events, assets and alerts equal a replay's.

The lab (pcaps/generators/demo/netlab.py) joins namespaces ``plc``, ``hmi`` and ``eng`` through a
bridge in a ``switch`` namespace; tc mirred copies every frame entering the bridge to a span veth,
as a switch's SPAN port does.  ``plc`` runs two real stacks: the C libsnap7 S7 server of
python-snap7 2.1 on TCP 102 and an opendnp3 outstation (yadnp3) on TCP 20000.  ``eng`` runs the
libsnap7 client (DB write and read-back, SZL reads, CPU state, PLC stop, hot start, block list);
``hmi`` runs an opendnp3 master (its startup: disable unsolicited and integrity poll, then a
class 0 poll, a CROB and two analog outputs).  This module is also their script:
``python -m tests.integration.test_live_lab ROLE IP``.

``ics-monitor live`` and tcpdump sniff the span port at the same time; the monitor is stopped with
SIGINT, then tcpdump's file is replayed.  Every s7comm and dnp3 record, every flow, every asset and
every alert must be the same in both runs, field by field, apart from the capture times (each
packet socket stamps a mirrored frame on its own delivery) and what is derived from them.  The
peers check their own answers (values written are read back, commands succeed), so the records
compared are those of a working session, not of an error path.

Needs root and network namespaces; skips, saying why, only where the kernel (or a missing
iproute2/tcpdump, python-snap7 or yadnp3) refuses.  Must not touch the root namespace.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO
from tests.integration.lab_support import open_lab, read_jsonl, replay_capture, settled, wait_for

# One at a time (one xdist worker): timing assertions and namespaces do not share the CPU well.
pytestmark = pytest.mark.xdist_group("live")

SPAN_PREFIX = "icslab"
PLC_IP = "10.78.0.11"
HMI_IP = "10.78.0.21"
ENG_IP = "10.78.0.22"
S7_PORT = 102
DNP3_PORT = 20000
DNP3_MASTER = 1
DNP3_OUTSTATION = 10
S7_DB = 1
S7_DB_BYTES = 32
S7_WRITTEN = bytes(range(0x41, 0x41 + 16))  # "ABCD...": what eng writes to DB1.DBB8 and reads back
CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]
PEER = ["env", f"PYTHONPATH={REPO}", sys.executable, "-u", "-m", "tests.integration.test_live_lab"]

# Capture times differ by the microseconds between two packet sockets' deliveries of one mirrored
# frame; flow ids and alert ids hash a time (make_alert_id: rule, key, first time), flow durations
# and asset times are times.  Everything else must be equal.
TIME_KEYS = frozenset(
    {"ts", "flow_id", "alert_id", "first_seen", "last_seen", "ts_start", "ts_end", "duration", "last_ts"}
)


# ---- the peers (run inside the namespaces as `python -m tests.integration.test_live_lab ...`) --------


def say(*parts: object) -> None:
    print(*parts, flush=True)


def s7_server(address: str) -> None:
    """The C libsnap7 server (python-snap7 2.1), DB1 of 32 zero bytes; runs until SIGTERM."""
    import ctypes

    from snap7.server import Server
    from snap7.type import SrvArea

    server = Server(log=False)
    database = (ctypes.c_uint8 * S7_DB_BYTES)()  # the C server reads and writes this buffer in place
    server.register_area(SrvArea.DB, S7_DB, database)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start_to(address, S7_PORT)
    say("READY s7")
    stop.wait()
    server.stop()
    server.destroy()


def s7_client(address: str) -> int:
    """Write DB1, read it back, read SZLs and the CPU state, stop and hot-start the CPU; 1 on a wrong answer."""
    import snap7

    client = snap7.client.Client()
    client.connect(address, 0, 2, S7_PORT)
    failures: list[str] = []

    def expect(name: str, ok: bool, detail: object = "") -> None:
        say("OK  " if ok else "FAIL", name, detail)
        if not ok:
            failures.append(name)

    client.db_write(S7_DB, 8, bytearray(S7_WRITTEN))
    back = bytes(client.db_read(S7_DB, 8, len(S7_WRITTEN)))
    expect("db read-back", back == S7_WRITTEN, back.hex())
    expect("db head", bytes(client.db_read(S7_DB, 0, 8)) == bytes(8))
    szl = client.read_szl(0x0011, 0)
    expect("szl 0x0011", szl.Header.LengthDR > 0, szl.Header.LengthDR)
    expect("cpu state", client.get_cpu_state() == "S7CpuStatusRun")
    client.plc_stop()
    expect("cpu state after stop", client.get_cpu_state() == "S7CpuStatusStop")
    client.plc_hot_start()
    expect("cpu state after hot start", client.get_cpu_state() == "S7CpuStatusRun")
    blocks = client.list_blocks()
    expect("list blocks", blocks.DBCount >= 1, blocks.DBCount)
    client.disconnect()
    say(f"done, {len(failures)} failures")
    return 1 if failures else 0


def dnp3_outstation(address: str) -> None:
    """An opendnp3 outstation (address 10) with 4 points of each type; logs the controls it executes."""
    import opendnp3 as o

    class Listener(o.IChannelListener):
        def OnStateChange(self, state: object) -> None:
            pass

    class Commands(o.ICommandHandler):
        def Begin(self) -> None:
            pass

        def End(self) -> None:
            pass

        def Select(self, *args: object) -> object:
            return o.CommandStatus.SUCCESS

        def Operate(self, *args: object) -> object:
            command = args[0]
            value = getattr(command, "value", None)
            say("OPERATE", type(command).__name__, args[1], value)
            return o.CommandStatus.SUCCESS

    class Application(o.IOutstationApplication):
        def Now(self) -> object:
            return o.DNPTime(int(time.time() * 1000))

    manager = o.DNP3Manager(1)
    channel = manager.AddTCPServer(
        "server",
        o.levels.NORMAL,
        o.ServerAcceptMode.CloseExisting,
        o.IPEndpoint(address, DNP3_PORT),
        Listener(),
    )
    config = o.OutstationStackConfig(o.DatabaseConfig(4))
    config.outstation.eventBufferConfig = o.EventBufferConfig.AllTypes(20)
    config.link.LocalAddr = DNP3_OUTSTATION
    config.link.RemoteAddr = DNP3_MASTER
    outstation = channel.AddOutstation("outstation", Commands(), Application(), config)
    outstation.Enable()
    builder = o.UpdateBuilder()
    builder.Update(o.Binary(True), 0)
    builder.Update(o.Analog(42.5), 1)
    builder.Update(o.Counter(1234), 2)
    outstation.Apply(builder.Build())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    say("READY dnp3")
    stop.wait()
    manager.Shutdown()


def dnp3_master(address: str) -> int:
    """An opendnp3 master (address 1): startup, class 0 poll, CROB latch on, two analog outputs."""
    import opendnp3 as o

    results: dict[str, str] = {}
    done = threading.Event()
    values: list[str] = []

    class Listener(o.IChannelListener):
        def OnStateChange(self, state: object) -> None:
            pass

    class Measurements(o.ISOEHandler):
        def BeginFragment(self, info: object) -> None:
            pass

        def EndFragment(self, info: object) -> None:
            pass

        def Process(self, info: object, measurements: object) -> None:
            values.append(str(getattr(info, "gv", info)))

    class Application(o.IMasterApplication):
        def OnOpen(self) -> None:
            pass

        def OnClose(self) -> None:
            pass

        def OnReceiveIIN(self, iin: object) -> None:
            pass

        def OnTaskStart(self, task: object, identifier: object) -> None:
            pass

        def OnTaskComplete(self, info: object) -> None:
            say("task", info.type, info.result)  # type: ignore[attr-defined]

        def AssignClassDuringStartup(self) -> bool:
            return False

        def Now(self) -> object:
            return o.UTCTimestamp(int(time.time() * 1000))

    def report(name: str) -> Any:
        def callback(result: object) -> None:
            results[name] = str(getattr(result, "summary", result))
            done.set()

        return callback

    def command(name: str, send: Any) -> None:
        done.clear()
        send(report(name))
        if not done.wait(5):
            results[name] = "timeout"
        say(name, "->", results[name])

    manager = o.DNP3Manager(1)
    # One connection for the whole session (no reconnect inside the test's time).
    channel = manager.AddTCPClient(
        "client",
        o.levels.NORMAL,
        o.ChannelRetry.Default(),
        [o.IPEndpoint(address, DNP3_PORT)],
        "0.0.0.0",
        Listener(),
    )
    config = o.MasterStackConfig()
    config.master.responseTimeout = o.TimeDuration.Seconds(2)
    config.master.timeSyncMode = getattr(o.TimeSyncMode, "None")
    config.link.LocalAddr = DNP3_MASTER
    config.link.RemoteAddr = DNP3_OUTSTATION
    handler = Measurements()
    master = channel.AddMaster("master", handler, Application(), config)
    master.Enable()
    time.sleep(2.0)  # the startup tasks: disable unsolicited, integrity poll, enable unsolicited
    master.ScanClasses(o.ClassField(True, False, False, False), handler)
    time.sleep(1.0)
    command(
        "crob",
        lambda cb: master.DirectOperate(o.ControlRelayOutputBlock(o.OperationType.LATCH_ON), 0, cb),
    )
    command("ao16", lambda cb: master.DirectOperate(o.AnalogOutputInt16(1234), 1, cb))
    command("aof", lambda cb: master.SelectAndOperate(o.AnalogOutputFloat32(3.25), 2, cb))
    time.sleep(0.5)
    manager.Shutdown()
    failures = [name for name, summary in results.items() if "SUCCESS" not in summary.upper()]
    failures += [] if values else ["no measurements"]
    say(f"done, {len(failures)} failures", failures, sorted(set(values)))
    return 1 if failures else 0


# ---- helpers ------------------------------------------------------------------------------------


def without_times(value: Any) -> Any:
    """``value`` with every capture-time-derived key removed, at any depth."""
    if isinstance(value, dict):
        return {key: without_times(item) for key, item in value.items() if key not in TIME_KEYS}
    if isinstance(value, list):
        return [without_times(item) for item in value]
    return value


def by_type(records: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [record for record in records if record.get("event_type") == event_type]


@pytest.fixture
def lab() -> Iterator[tuple[Any, Any]]:
    yield from open_lab(SPAN_PREFIX)


def listening(net: Any, address: str, port: int) -> bool:
    """A TCP connect over the host's own loopback route, so that no frame reaches the span port."""
    probe = f"import socket; socket.create_connection(('{address}', {port}), 0.5).close()"
    result = subprocess.run(
        ["ip", "netns", "exec", net.namespace("plc"), sys.executable, "-c", probe],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


# ---- the test -----------------------------------------------------------------------------------


def test_s7_and_dnp3_live_on_span_port_equal_replay(lab: Any, tmp_path: Path) -> None:
    snap7 = pytest.importorskip("snap7", reason="python-snap7 2.1 is in the dev extra (make install)")
    # The peers use the C libsnap7 of 2.x (3.x is a pure-Python rewrite with another server API).
    assert snap7.__version__.startswith("2."), f"python-snap7 {snap7.__version__}: the dev extra pins 2.1"
    pytest.importorskip("opendnp3", reason="yadnp3 is in the dev extra (make install)")
    netlab, net = lab
    net.add_bridge("ot")
    net.add_host(netlab.Host("plc", (netlab.Leg("ot", "02:00:00:78:00:11", f"{PLC_IP}/24"),)))
    net.add_host(netlab.Host("hmi", (netlab.Leg("ot", "02:00:00:78:00:21", f"{HMI_IP}/24"),)))
    net.add_host(netlab.Host("eng", (netlab.Leg("ot", "02:00:00:78:00:22", f"{ENG_IP}/24"),)))
    span = net.add_span(["ot"])

    # The servers first, probed over plc's loopback: the span port sees only the sessions.
    s7_log, outstation_log = tmp_path / "s7_server.log", tmp_path / "outstation.log"
    net.popen("plc", [*PEER, "s7-server", PLC_IP], log=s7_log)
    net.popen("plc", [*PEER, "dnp3-outstation", PLC_IP], log=outstation_log)
    wait_for(lambda: listening(net, PLC_IP, S7_PORT), "the S7 server")
    wait_for(lambda: listening(net, PLC_IP, DNP3_PORT), "the DNP3 outstation")

    tcpdump_file = tmp_path / "span.pcap"
    tcpdump = net.capture(tcpdump_file)
    live_state, live_log = tmp_path / "live", tmp_path / "live.log"
    monitor = net.popen(netlab.SWITCH, [*CLI, "live", "-i", span, "--state", str(live_state)], log=live_log)
    wait_for(lambda: "listening on" in live_log.read_text(errors="replace"), "the live monitor to listen")

    s7 = net.run("eng", [*PEER, "s7-client", PLC_IP], timeout=60)
    assert "done, 0 failures" in s7.stdout, s7.stdout
    dnp3 = net.run("hmi", [*PEER, "dnp3-master", PLC_IP], timeout=60)
    assert "done, 0 failures" in dnp3.stdout, dnp3.stdout
    # The outstation executed exactly the three controls the master sent.
    operated = [line for line in outstation_log.read_text().splitlines() if line.startswith("OPERATE")]
    assert [line.split()[1:3] for line in operated] == [
        ["ControlRelayOutputBlock", "0"],
        ["AnalogOutputInt16", "1"],
        ["AnalogOutputFloat32", "2"],
    ], operated

    # tcpdump writes a block of frames when the block times out and drops what it holds at
    # SIGTERM: wait until its file stops growing.
    wait_for(lambda: settled(tcpdump_file), "tcpdump to write the capture")
    assert net.stop(monitor, signal.SIGINT, grace=30) == 0, live_log.read_text(errors="replace")
    net.stop(tcpdump)

    replay_state = tmp_path / "replay"
    replay_capture(tcpdump_file, replay_state)

    live_events = read_jsonl(live_state / "events.jsonl")
    replay_events = read_jsonl(replay_state / "events.jsonl")
    # Every protocol record (s7comm, cotp, dnp3, arp), in order, frame numbers included: both
    # sniffers saw the same frames in the same order.  Flows are compared below, as a set; health
    # records (capture counters of a live run) have no counterpart in a replay.
    live_records = [r for r in live_events if r["event_type"] not in ("flow", "health")]
    replay_records = [r for r in replay_events if r["event_type"] not in ("flow", "health")]
    # tcpdump stops after the monitor: the kernels' neighbour probes (ARP, some seconds after the
    # sessions) may fall in between.  Frames past the last one the monitor analysed are left out,
    # and must be nothing else.
    seen = by_type(live_events, "health")[-1]["frames"]
    late = [r for r in replay_records if r["frame"] > seen]
    assert all(r["event_type"] == "arp" for r in late), late
    replay_records = replay_records[: len(replay_records) - len(late)]
    assert [without_times(r) for r in live_records] == [without_times(r) for r in replay_records]
    for live_record, replay_record in zip(live_records, replay_records, strict=True):
        assert abs(live_record["ts"] - replay_record["ts"]) < 0.005

    s7_records = by_type(live_events, "s7comm")
    functions = [r["function"] for r in s7_records if r["direction"] == "request"]
    assert {"WRITE_VAR", "READ_VAR", "PLC_STOP", "PI_SERVICE"} <= set(functions), functions
    assert {r["szl_id"] for r in s7_records if r.get("szl_id") is not None} >= {0x0011, 0x0424}
    assert [r["pi_service"] for r in s7_records if r.get("pi_service")] == ["P_PROGRAM"] * 2
    # The bytes the client wrote are on the wire, in the write request and in the read-back.
    written = [list(S7_WRITTEN)]
    assert [
        [item["values"] for item in r["data_items"]]
        for r in s7_records
        if r["function"] in ("WRITE_VAR", "READ_VAR")
        and r["data_items"]
        and r["items"] is not None
        and r["items"][0]["address"] == 8
    ] == [written, written]

    dnp3_records = by_type(live_events, "dnp3")
    dnp3_requests = [r["function"] for r in dnp3_records if r["direction"] == "request"]
    assert {"READ", "DIRECT_OPERATE", "SELECT", "OPERATE", "DISABLE_UNSOLICITED"} <= set(dnp3_requests)
    crob = [
        o
        for r in dnp3_records
        if r["function"] == "DIRECT_OPERATE" and r["direction"] == "request"
        for o in r["objects"]
        if o["group"] == 12
    ]
    assert [(o["points"][0]["index"], o["points"][0]["operation"]) for o in crob] == [(0, "LATCH_ON")]
    analog_outputs = [
        (o["variation"], p["index"], p["value"])
        for r in dnp3_records
        if r["function"] in ("DIRECT_OPERATE", "OPERATE") and r["direction"] == "request"
        for o in r["objects"]
        if o["group"] == 41
        for p in o["points"]
    ]
    assert analog_outputs == [(2, 1, 1234), (3, 2, 3.25)]

    live_flows = [without_times(r) for r in by_type(live_events, "flow")]
    replay_flows = [without_times(r) for r in by_type(replay_events, "flow")]
    assert {(f["dst_port"], f["transport"]) for f in live_flows} >= {(S7_PORT, "tcp"), (DNP3_PORT, "tcp")}
    assert sorted(live_flows, key=orjson.dumps) == sorted(replay_flows, key=orjson.dumps)

    live_alerts = [without_times(a) for a in read_jsonl(live_state / "alerts.jsonl")]
    replay_alerts = [without_times(a) for a in read_jsonl(replay_state / "alerts.jsonl")]
    rules = {a["rule_id"] for a in live_alerts}
    # S7 PLC stop and hot start; opendnp3's start-up (disable unsolicited, poll, enable) is no alert.
    assert {"ICS-1001", "ICS-1002"} <= rules and "ICS-1206" not in rules, rules
    assert live_alerts == replay_alerts

    def assets(state: Path) -> list[dict[str, Any]]:
        output = subprocess.run(
            [*CLI, "assets", "--state", str(state), "--json"], capture_output=True, check=True, timeout=60
        ).stdout
        return sorted((without_times(orjson.loads(line)) for line in output.splitlines()), key=orjson.dumps)

    live_assets = assets(live_state)
    assert {a["ip"] for a in live_assets} == {PLC_IP, HMI_IP, ENG_IP}
    assert live_assets == assets(replay_state)
    log = live_log.read_text(errors="replace")
    assert f"{span}: " in log and " 0 dropped by the kernel" in log


ROLES = {
    "s7-server": s7_server,
    "s7-client": s7_client,
    "dnp3-outstation": dnp3_outstation,
    "dnp3-master": dnp3_master,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ROLES:
        sys.exit(f"usage: python -m tests.integration.test_live_lab {{{','.join(ROLES)}}} IP")
    sys.exit(ROLES[sys.argv[1]](sys.argv[2]))
