"""``--workers N``: flows sharded over processes give the results of one process.

The shard function is checked against the decoder on real frames (raw pre-hash == hash of the
decoded packet, both directions alike); then whole runs with 1, 2 and 3 workers are compared record
for record (as sorted JSON: flows that end at the same frame in different workers may come out in
another order) over every capture of the repository and some multi-flow public ones; then the CLI's
replay (learn, enforce, learn-for) on the demo plant: baseline file, alerts, assets and events equal.
Failures: a damaged capture gives one error line and everything before the damage; a worker that
fails or dies gives a ``WorkerError`` and keeps what was merged before.
"""

from __future__ import annotations

import copy
import marshal
import multiprocessing
import os
import random
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from ics_monitor import parallel, shard
from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.core.collector import YOUNG_THRESHOLD
from ics_monitor.core.errors import CaptureError
from ics_monitor.decode import Decoder
from ics_monitor.dissect import Registry, default_registry
from ics_monitor.parallel import WorkerError, run_sharded
from ics_monitor.pipeline import Pipeline, RunStats
from ics_monitor.shard import frame_shard, packet_shard, shard_of
from ics_monitor.sinks import JsonLinesSink
from ics_monitor.sinks.memory import ListSink
from tests.conftest import PCAPS, SHARED_PCAPS, shared_pcaps
from tests.support.lenmsg import CollectorReportingDissector

CLI = str(Path(sys.executable).with_name("ics-monitor"))
DEMO = [PCAPS / "demo" / "plant_normal.pcap", PCAPS / "demo" / "plant_attack.pcap"]


def _opens(path: Path) -> bool:
    try:
        open_captures([str(path)])
    except CaptureError:
        return False
    return True


# Files that do not even open are the CLI's business before any worker starts (see test_cli).
REPO_CAPTURES = sorted(p for p in PCAPS.rglob("*") if p.is_file() and ".pcap" in p.name and _opens(p))
# Public captures with many flows or hosts (checked where ../shared is present).
SHARED_MULTI_FLOW = [
    "lemay-modbus/send_a_fake_command_modbus_6RTU_with_operate.pcap",
    "dnp3-ics-lab/NORMAL.pcap",
    "qut-s7/20161215195722.ReactorOn_Flooding.hmi.pcap",
    "iti/modbus_test_2.pcap",
]


def _run(
    paths: list[Path], workers: int, dissect: str = "full", start_method: str = "forkserver"
) -> tuple[RunStats, ListSink, ListSink]:
    events, flows = ListSink(), ListSink()
    pipeline = Pipeline(
        Config(), default_registry(), dissect=dissect, event_sinks=[events], flow_sinks=[flows], emit_arp=True
    )
    if workers == 0:  # this process alone, no worker
        source = open_captures(str(path) for path in paths)
        stats = pipeline.run(source)
        stats.errors = list(source.errors)
    else:
        stats = run_sharded(pipeline, [str(path) for path in paths], workers, start_method)
    return stats, events, flows


def _lines(sink: ListSink) -> list[bytes]:
    return sorted(orjson.dumps(record, option=orjson.OPT_SORT_KEYS) for record in sink.records)


def _figures(stats: RunStats) -> dict[str, Any]:
    return {
        "frames": stats.frames,
        "bytes": stats.bytes,
        "ip_packets": stats.ip_packets,
        "arp_packets": stats.arp_packets,
        "flows": stats.flows,
        "events": stats.events,
        "anomalies": dict(stats.anomalies),
        "protocols": dict(stats.protocols),
        "first_ts": stats.first_ts,
        "last_ts": stats.last_ts,
        "errors": [str(error) for error in stats.errors],
    }


def _assert_same_as_one_process(paths: list[Path], workers: tuple[int, ...] = (2, 3)) -> None:
    one, one_events, one_flows = _run(paths, 0)
    for count in workers:
        many, many_events, many_flows = _run(paths, count)
        assert _figures(many) == _figures(one), count
        assert _lines(many_events) == _lines(one_events), count
        assert _lines(many_flows) == _lines(one_flows), count
        assert many_events.closed and many_flows.closed


# -- the shard function ----------------------------------------------------------------------------


def _swap_ipv4_ethernet(data: bytes) -> bytes | None:
    """The same TCP/UDP packet the other way round (untagged Ethernet IPv4 only)."""
    if len(data) < 38 or data[12:14] != b"\x08\x00" or data[23] not in (6, 17):
        return None
    header = (data[14] & 0x0F) * 4
    swapped = bytearray(data)
    swapped[26:30], swapped[30:34] = data[30:34], data[26:30]
    ports = 14 + header
    swapped[ports : ports + 2], swapped[ports + 2 : ports + 4] = (
        data[ports + 2 : ports + 4],
        data[ports : ports + 2],
    )
    return bytes(swapped)


def test_frame_shard_agrees_with_the_decoded_packet_and_is_symmetric() -> None:
    placed = checked = swapped_checked = 0
    for path in REPO_CAPTURES:
        decoder = Decoder()
        for frame, (ts, link_type, data, wire_len) in enumerate(open_captures([str(path)]), 1):
            owner = frame_shard(link_type, data, 4)
            pkt = decoder.decode(frame, ts, link_type, data, wire_len)
            assert -2 <= owner < 4
            if owner >= 0:
                placed += 1
                if pkt is not None and pkt.ip_version:
                    # The pre-hash on raw bytes and the hash of the decoded packet must agree, or a
                    # flow with fragmented and whole datagrams would be split between workers.
                    assert packet_shard(pkt, 4) == owner, (path.name, frame)
                    checked += 1
            elif owner == -2:
                assert pkt is None or not pkt.ip_version, (path.name, frame)
            if link_type == 1:
                swapped = _swap_ipv4_ethernet(data)
                if swapped is not None and owner >= 0:
                    assert frame_shard(link_type, swapped, 4) == owner, (path.name, frame)
                    swapped_checked += 1
    assert placed > 1000 and checked > 1000 and swapped_checked > 1000


def test_batches_are_read_off_the_pipe_as_connection_sends_them() -> None:
    # The receiver reads the descriptor itself (parallel._receive_bytes): it must take exactly
    # what Connection.send_bytes framed, small, large (more than the pipe holds) and in a row.

    reader, writer = multiprocessing.Pipe(duplex=False)
    parallel._widen(reader)
    messages = [b"x", bytes(range(256)) * 40, os.urandom(3 << 20), b"", b"end"]
    sender = threading.Thread(target=lambda: [writer.send_bytes(m) for m in messages])
    sender.start()
    try:
        received = [parallel._receive_bytes(reader.fileno()) for _ in messages]
    finally:
        sender.join()
    assert received == messages
    writer.close()
    with pytest.raises(EOFError):
        parallel._receive_bytes(reader.fileno())
    reader.close()


def test_flows_spread_evenly_over_the_workers() -> None:
    # Clients of one subnet to one server port, as a SCADA network has them, and random IPv6 pairs:
    # each worker must get its share (within 5% of the mean), or one of them sets the pace.

    rng = random.Random(7)
    server = int.from_bytes(bytes((10, 0, 0, 1)), "big")
    keys = [
        (0, 6, server ^ (0x0A000100 + host), 502 ^ (32768 + rng.randrange(28000))) for host in range(2, 254)
    ]
    keys += [(0, 6, server ^ rng.getrandbits(32), rng.getrandbits(16)) for _ in range(20_000)]
    keys += [(0, 17, rng.getrandbits(128), rng.getrandbits(16)) for _ in range(5_000)]
    keys += [(tag + 1, 6, server ^ (0x0A000100 + tag), 102 ^ 49152) for tag in range(4095)]
    for workers in (2, 3, 4):
        counts = [0] * workers
        for key in keys:
            counts[shard_of(*key, workers)] += 1
        mean = len(keys) / workers
        assert all(abs(count - mean) < 0.05 * mean for count in counts), (workers, counts)


def test_frame_shard_sends_fragments_and_stacked_tags_to_every_worker() -> None:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0x2000, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    udp = struct.pack("!HHHH", 1000, 20000, 20, 0)
    ethernet = b"\x02" * 6 + b"\x04" * 6
    fragment = ethernet + b"\x08\x00" + ip + udp
    assert frame_shard(1, fragment, 2) == -1  # more-fragments set: decided after reassembly
    whole = ethernet + b"\x08\x00" + ip[:6] + b"\x40\x00" + ip[8:] + udp  # don't-fragment only
    assert frame_shard(1, whole, 2) >= 0
    qinq = ethernet + b"\x88\xa8\x00\x0a\x81\x00\x00\x14\x08\x00" + ip + udp
    assert frame_shard(1, qinq, 2) == -1
    arp = ethernet + b"\x08\x06" + bytes(28)
    assert frame_shard(1, arp, 2) == -2
    assert frame_shard(1, b"\x00" * 10, 2) == -1  # too short to tell: the decoder reports it


def test_shards_spread_many_flows() -> None:
    counts = [0, 0]
    for client in range(200):
        ip = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes((198, 18, 0, client)), b"\x0a\0\0\2"
        )
        tcp = struct.pack("!HHIIBBHHH", 40000 + client, 502, 0, 0, 0x50, 2, 0, 0, 0)
        counts[frame_shard(1, b"\x02" * 12 + b"\x08\x00" + ip + tcp, 2)] += 1
    assert min(counts) > 60, counts


# -- whole runs ------------------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """``value`` with every container and scalar tagged by its exact type (tuple is not list)."""
    if isinstance(value, dict):
        return ("dict", [(key, _shape(item)) for key, item in value.items()])
    if isinstance(value, (list, tuple, set, frozenset)):
        return (type(value).__name__, [_shape(item) for item in value])
    return (type(value).__name__, value)


def test_batches_cross_the_pipe_unchanged() -> None:
    """Real records of the three protocols, flows and ARP, through ``_dumps``/``_loads``: the same
    classes, field values of the same exact types in the same key order; ticks and marks too.  A
    batch marshal cannot carry (a named tuple in a mark) goes as pickle and arrives the same."""
    events, flows = ListSink(), ListSink()
    paths = [str(p) for p in REPO_CAPTURES if p.parent.name in ("modbus", "dnp3", "s7comm", "demo")]
    pipeline = Pipeline(Config(), default_registry(), event_sinks=[events], flow_sinks=[flows], emit_arp=True)
    pipeline.run(open_captures(paths))
    kinds = {"arp": shard.ARP}
    batch = [
        (n * 8, 1, kinds.get(record.event_type, shard.EVENT), record)
        for n, record in enumerate(events.records)
    ]
    batch += [(n * 8 + 5, 0, shard.FLOW, record) for n, record in enumerate(flows.records)]
    batch += [(7, 0, shard.TICK, 12.5), (15, 0, shard.MARK, 4096)]
    # A record cut by the capture carries a key beyond its fields: it goes as its whole dict.
    cut = copy.copy(next(r for _, _, _, r in batch if type(r).__name__ == "ModbusEvent"))
    object.__setattr__(cut, "__dict__", {**cut.__dict__, "truncated": True})
    batch.append((23, 1, shard.EVENT, cut))
    assert {type(r).__name__ for _, _, _, r in batch} >= {
        "ModbusEvent",
        "Dnp3Event",
        "S7commEvent",
        "ArpEvent",
    }
    data = parallel._dumps(batch)
    assert data[0] != shard.PICKLE_PROTO  # marshal took it
    # Field values without their keys, but for the cut record.
    sent = marshal.loads(data)[1]
    assert sum(isinstance(item[4], dict) for item in sent if item[3] >= 0) == 1
    back = parallel._loads(data)
    assert back[-1][3].__dict__["truncated"] is True and list(back[-1][3].__dict__)[-1] == "truncated"
    assert [(o, i, k, type(r)) for o, i, k, r in back] == [(o, i, k, type(r)) for o, i, k, r in batch]
    for (_, _, _, got), (_, _, _, sent) in zip(back, batch, strict=True):
        if hasattr(sent, "__dict__"):
            assert _shape(got.__dict__) == _shape(sent.__dict__)
            assert got == sent
        else:
            assert _shape(got) == _shape(sent)
    figures = parallel._LiveFigures(*range(len(parallel._LiveFigures._fields)))
    mixed = [batch[0], (23, 0, shard.MARK, (None, figures))]
    data = parallel._dumps(mixed)
    assert data[0] == shard.PICKLE_PROTO  # a named tuple: pickled
    assert parallel._loads(data) == mixed


@pytest.mark.parametrize("path", REPO_CAPTURES, ids=lambda p: str(p.relative_to(PCAPS)))
def test_repository_captures_give_the_same_records(path: Path) -> None:
    # A lone worker process too (the default for a large capture on two CPUs): it takes every
    # frame without hashing it, fragments, tunnels and ARP included.
    _assert_same_as_one_process([path], workers=(1, 2, 3))


def test_demo_plant_merged_from_two_files_gives_the_same_records() -> None:
    _assert_same_as_one_process(DEMO)


def test_forked_workers_give_the_same_records() -> None:
    one = _run(DEMO, 0)
    forked = _run(DEMO, 2, start_method="fork")
    assert _figures(forked[0]) == _figures(one[0])
    assert _lines(forked[1]) == _lines(one[1]) and _lines(forked[2]) == _lines(one[2])


@pytest.mark.parametrize("name", SHARED_MULTI_FLOW)
def test_public_multi_flow_captures_give_the_same_records(name: str) -> None:
    path = shared_pcaps() / name
    if not path.is_file():
        pytest.skip(f"{name} is not in {SHARED_PCAPS}")
    _assert_same_as_one_process([path], workers=(2,))


class _AnomaliesOnly(ListSink):
    """An output kept for alerts, flows and anomalies (the Elasticsearch and CEF default)."""

    protocol_events = False


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sink_without_protocol_events_gets_every_anomaly_and_nothing_else(workers: int) -> None:
    paths = [PCAPS / "dnp3" / "crafted_anomalies.pcap", *DEMO]
    everything, anomalies_only = ListSink(), _AnomaliesOnly()
    pipeline = Pipeline(Config(), default_registry(), event_sinks=[everything, anomalies_only], emit_arp=True)
    if workers == 1:
        pipeline.run(open_captures(str(path) for path in paths))
    else:
        run_sharded(pipeline, [str(path) for path in paths], workers, "forkserver")
    anomalies = [record for record in everything.records if record.event_type == "anomaly"]
    assert anomalies and len(anomalies) < len(everything.records)
    assert anomalies_only.records == anomalies and anomalies_only.closed


def test_flows_only_mode_gives_the_same_records() -> None:
    one = _run(DEMO, 0, dissect="detect")
    two = _run(DEMO, 2, dissect="detect")
    assert _lines(two[2]) == _lines(one[2]) and one[2].records
    assert _figures(two[0]) == _figures(one[0])


@pytest.mark.parametrize(
    "names",
    [
        ["demo/plant_normal.pcap", "demo/plant_attack.pcap"],
        ["foundation/ipv4_frag.pcap"],
        ["foundation/vlan.pcap", "foundation/malformed.pcap"],
    ],
    ids=["demo", "fragments", "vlan-malformed"],
)
def test_json_lines_written_by_the_workers_equal_one_process(tmp_path: Path, names: list[str]) -> None:
    """``dissect``/``flows -o FILE``: workers serialise the lines themselves; same files, same figures."""
    paths = [PCAPS / name for name in names]
    for path in paths:
        if not path.is_file():
            pytest.skip(f"{path} missing")
    results = []
    for workers in (1, 2):
        events_file, flows_file = tmp_path / f"events-{workers}.jsonl", tmp_path / f"flows-{workers}.jsonl"
        events, flows = JsonLinesSink(str(events_file)), JsonLinesSink(str(flows_file))
        pipeline = Pipeline(
            Config(), default_registry(), event_sinks=[events], flow_sinks=[flows], emit_arp=True
        )
        if workers == 1:
            stats = pipeline.run(open_captures(str(path) for path in paths))
        else:
            stats = run_sharded(pipeline, [str(path) for path in paths], workers)
        results.append(
            (
                _figures(stats),
                sorted(events_file.read_bytes().splitlines()),
                sorted(flows_file.read_bytes().splitlines()),
            )
        )
    assert results[1] == results[0]
    assert results[0][2]


# -- the CLI: replay with analysis -----------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=300, check=False)


def _replay_outputs(state: Path) -> dict[str, Any]:
    assets = cli("assets", "--json", "--state", str(state))
    alerts = cli("alerts", "--json", "--state", str(state))
    assert assets.returncode == 0 and alerts.returncode == 0, assets.stderr + alerts.stderr
    return {
        "baseline": (state / "baseline.yaml").read_bytes(),
        "alerts_log": (state / "alerts.jsonl").read_bytes(),
        "events_log": sorted((state / "events.jsonl").read_bytes().splitlines()),
        "assets": assets.stdout,
        "alerts": alerts.stdout,
    }


@pytest.mark.parametrize("scenario", ["learn_then_replay", "learn_for"])
def test_replay_with_two_workers_equals_one(tmp_path: Path, scenario: str) -> None:
    results = []
    for workers in ("1", "2"):
        state = tmp_path / f"state-{workers}"
        if scenario == "learn_then_replay":
            learned = cli("replay", "--learn", "--workers", workers, "--state", str(state), str(DEMO[0]))
            assert learned.returncode == 0, learned.stderr
            enforced = cli("replay", "--workers", workers, "--state", str(state), *map(str, DEMO))
        else:
            enforced = cli(
                "replay", "--learn-for", "60s", "--workers", workers, "--state", str(state), *map(str, DEMO)
            )
        assert enforced.returncode == 0, enforced.stderr
        results.append(_replay_outputs(state))
    one, two = results
    assert one["alerts"].count("\n") > 5  # the attack phase raises alerts: the comparison means something
    for key in one:
        assert two[key] == one[key], key


def test_workers_check_records_against_the_baseline_they_load(tmp_path: Path) -> None:
    """An enforcing replay's workers check records where they dissect (``WorkerCheck``): Modbus,
    DNP3 and S7 read values, and requests' functions, targets and written values.
    The records they pass go out marked, and none of them is one the analysis reports on for
    those checks (ICS-5004 to 5007, 5011, 5013); those stay unmarked for the analysis to judge.
    (The replay equality above shows the alerts are those of one process.)"""
    from ics_monitor.detect.deviation import WorkerCheck
    from ics_monitor.detect.rules import RuleSet
    from ics_monitor.inventory.baseline import Baseline

    state = tmp_path / "state"
    learned = cli("replay", "--learn", "--workers", "1", "--state", str(state), str(DEMO[0]))
    assert learned.returncode == 0, learned.stderr
    enforced = cli("replay", "--workers", "1", "--state", str(state), *map(str, DEMO))
    assert enforced.returncode == 0, enforced.stderr
    alerts = [orjson.loads(line) for line in (state / "alerts.jsonl").read_bytes().splitlines()]
    checked = {"ICS-5004", "ICS-5005", "ICS-5006", "ICS-5007", "ICS-5011", "ICS-5013"}
    reported = {frame for alert in alerts if alert["rule_id"] in checked for frame in alert["frames"]}
    assert {alert["rule_id"] for alert in alerts} >= {"ICS-5006", "ICS-5007"}

    check = WorkerCheck(RuleSet.load(), Baseline.load(state / "baseline.yaml")).passes

    def pipeline_of() -> Pipeline:
        return Pipeline(Config(), default_registry(), dissect="full")

    batches: list[list[Any]] = []
    source = open_captures(str(path) for path in DEMO)
    shard.run_shard(source, lambda: 0, pipeline_of(), 0, 1, batches.append, None, False, False, check)
    items = [item for batch in batches for item in batch]
    passed = [item[3] for item in items if item[2] == shard.EVENT_PASSED]
    unmarked = {item[3].frame for item in items if item[2] == shard.EVENT}
    assert len(passed) > 100
    kinds = {(r.event_type, r.direction) for r in passed}
    assert kinds <= {
        (protocol, direction)
        for protocol in ("modbus", "dnp3", "s7comm")
        for direction in ("request", "response")
    }
    assert {("modbus", "request"), ("modbus", "response"), ("s7comm", "request")} <= kinds
    assert reported <= unmarked and not reported & {r.frame for r in passed}
    # A worker whose parent keeps up (takes each batch as it is sent, or lags by fewer than
    # CHECK_BACKLOG batches) leaves the check to it after its first batch; one whose parent is
    # CHECK_BACKLOG batches behind (sent and not taken, wherever they wait) checks on.

    class Taken:
        """What the parent publishes: how many of the batches sent its merge took."""

        def __init__(self, behind: int) -> None:
            self.behind = behind

        @property
        def value(self) -> int:
            return len(batches) - self.behind

    for behind, checked_on in ((0, False), (shard.CHECK_BACKLOG - 1, False), (shard.CHECK_BACKLOG, True)):
        batches = []
        source = open_captures(str(path) for path in DEMO)
        shard.run_shard(
            source, lambda: 0, pipeline_of(), 0, 1, batches.append, None, False, False, check, Taken(behind)
        )
        later = [item for batch in batches[1:] for item in batch if item[2] == shard.EVENT_PASSED]
        assert bool(later) is checked_on and len(batches) >= 3, behind
    # Marked records cross the pipe as records, and come back marked.
    batch = [item for item in items if item[2] in (shard.EVENT, shard.EVENT_PASSED)][:512]
    data = shard.marshalled(batch)
    assert data is not None
    assert [(i[2], i[3].__dict__) for i in shard.unmarshalled(data)] == [(i[2], i[3].__dict__) for i in batch]


def test_baseline_learn_with_two_workers_equals_one(tmp_path: Path) -> None:
    baselines = []
    for workers in ("1", "2"):
        target = tmp_path / f"baseline-{workers}.yaml"
        state = tmp_path / f"state-{workers}"
        learned = cli(
            "baseline", "learn", "--workers", workers, "--state", str(state), "-o", str(target), str(DEMO[0])
        )
        assert learned.returncode == 0, learned.stderr
        baselines.append(target.read_text())
    assert baselines[0].count("\n") > 50 and baselines[1] == baselines[0]


def _spec(emit_arp: bool = False) -> parallel.WorkerSpec:
    config = Config()
    return parallel.WorkerSpec(
        config=config,
        registry=default_registry(),
        dissect="full",
        emit_arp=emit_arp,
        tick=None,
        progress=False,
        serialized=False,
    )


def test_workers_started_ahead_give_the_same_records() -> None:
    """``ShardedRun``: the workers start before the pipeline exists (a replay loads its analysis
    meanwhile) and the run is that of ``run_sharded``."""
    expected = _run(DEMO, 2)
    events, flows = ListSink(), ListSink()
    with parallel.ShardedRun(_spec(emit_arp=True), [str(path) for path in DEMO], 2) as started:
        pipeline = Pipeline(
            Config(),
            default_registry(),
            dissect="full",
            event_sinks=[events],
            flow_sinks=[flows],
            emit_arp=True,
        )
        stats = started.run(pipeline)
    assert stats.frames == expected[0].frames and stats.events == expected[0].events > 100
    assert _lines(events) == _lines(expected[1]) and _lines(flows) == _lines(expected[2])


def test_workers_started_ahead_stop_when_no_run_comes() -> None:
    """A replay whose rules or baseline fail to load leaves the block without running: the workers
    stop, none is left behind."""
    with pytest.raises(RuntimeError), parallel.ShardedRun(_spec(), [str(DEMO[0])], 2) as started:
        processes = [stream.process for stream in started.streams]
        assert all(process.is_alive() for process in processes)
        raise RuntimeError("the baseline did not load")
    assert not any(process.is_alive() for process in processes)


def test_workers_started_ahead_refuse_a_pipeline_of_another_kind() -> None:
    with parallel.ShardedRun(_spec(), [str(DEMO[0])], 2) as started:
        flows_only = Pipeline(Config(), default_registry(), dissect=None, flow_sinks=[ListSink()])
        with pytest.raises(ValueError, match="workers were started for"):
            started.run(flows_only)


def test_replay_with_a_bad_baseline_and_workers_is_one_error_line(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("conversations: [not, a, mapping\n")
    result = cli(
        "replay", "--workers", "2", "--baseline", str(baseline), "--state", str(tmp_path / "s"), str(DEMO[0])
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "baseline" in result.stderr


# -- failures --------------------------------------------------------------------------------------


def test_damaged_capture_gives_one_error_and_everything_before_it(tmp_path: Path) -> None:
    data = DEMO[1].read_bytes()
    damaged = tmp_path / "damaged.pcap"
    damaged.write_bytes(data[: len(data) * 2 // 3] + b"\xff" * 7)
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"events-{workers}.jsonl"
        result = cli("dissect", "--workers", workers, "-o", str(out), str(damaged))
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "damaged.pcap" in lines[0], result.stderr
        outputs.append((lines[0], sorted(out.read_bytes().splitlines())))
    assert outputs[1] == outputs[0]
    assert len(outputs[0][1]) > 100


def _failing_work(real: Any, how: str) -> Any:
    def work(
        spec: Any, pipeline: Pipeline, paths: list[str], index: int, workers: int, conn: Any, *more: Any
    ) -> Any:
        if index == 1:
            if how == "dies":
                os._exit(9)  # as a worker killed by the OOM killer would vanish
            raise RuntimeError("injected failure")
        return real(spec, pipeline, paths, index, workers, conn, *more)

    return work


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_failed_worker_is_one_error_and_merged_records_are_kept(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    one, one_events, one_flows = _run(DEMO, 0)
    # Fork (not the fork server) copies this patched module into the workers: worker 2 fails,
    # worker 1 runs for real.
    monkeypatch.setattr(parallel, "_work", _failing_work(parallel._work, how))
    stats, events, flows = _run(DEMO, 2, start_method="fork")
    assert [type(error) for error in stats.errors] == [WorkerError]
    message = str(stats.errors[0])
    assert "worker 2 of 2" in message and "\n" not in message
    assert ("injected failure" in message) if how == "raises" else ("exit code 9" in message)
    assert events.closed and flows.closed
    # Worker 1's share arrived in full and is a strict part of the one-process result.
    kept = _lines(events)
    assert kept and set(kept) < set(_lines(one_events))
    assert set(_lines(flows)) < set(_lines(one_flows))
    assert stats.frames == one.frames


class _Batches:
    """A worker's batches as ``shard.merged`` takes them (``next_batch``, None at the end)."""

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = list(batches)

    def next_batch(self) -> list[Any] | None:
        return self.batches.pop(0) if self.batches else None


def test_chunked_merge_equals_a_record_by_record_merge() -> None:
    """Workers' batches of frame records, as the worker loop cuts them (never inside one frame's
    records; every worker's mark at the same frame), merged in chunks: the order a heap merge by
    (frame * 8 + stage, worker) gives, every record once, empty batches and early ends included."""
    import heapq

    rng = random.Random(7)
    for trial in range(50):
        workers = rng.randint(1, 4)
        streams: list[list[list[Any]]] = []
        for worker in range(workers):
            batches: list[list[Any]] = []
            out: list[Any] = []
            for frame in range(1, rng.randint(1, 3000)):
                if rng.random() < 1 / workers:
                    out += [(frame * 8 + 3, worker, 0, (trial, frame, n)) for n in range(rng.randint(1, 3))]
                if frame % 64 == 0:
                    out.append((frame * 8 + 7, worker, 4, frame))
                    batches.append(out)
                    out = []
                elif len(out) >= 16 or rng.random() < 0.01:
                    batches.append(out)
                    out = []
            batches.append(out)
            if rng.random() < 0.2:
                batches.insert(rng.randrange(len(batches) + 1), [])
            streams.append(batches)
        expected = list(heapq.merge(*[[item for batch in batches for item in batch] for batches in streams]))
        got = [item for chunk in shard.merged([_Batches(b) for b in streams]) for item in chunk]
        assert got == expected


def test_frame_shard_sends_hsr_tagged_frames_to_every_worker() -> None:
    """The IP packet sits behind the HSR tag: only the decoder knows its flow."""
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    udp = struct.pack("!HHHH", 1000, 20000, 8, 0)
    ethernet = b"\x02" * 6 + b"\x04" * 6
    assert frame_shard(1, ethernet + b"\x89\x2f\x00\x22\x02\x01\x08\x00" + ip + udp, 2) == -1
    assert frame_shard(1, ethernet + b"\x81\x00\x00\x1e\x89\x2f\x00\x22\x02\x01\x08\x00" + ip + udp, 2) == -1


def test_a_worker_runs_the_collector_as_the_command_line_does() -> None:
    """A shard worker is a fork server's child: it sets the collector's threshold itself
    (``core.collector``), or it collects every 700 allocations while it dissects."""
    events = ListSink()
    registry = Registry([CollectorReportingDissector()])
    pipeline = Pipeline(Config(), registry, event_sinks=[events])
    run_sharded(pipeline, [str(PCAPS / "foundation" / "linux_sll.pcap")], 1, "forkserver")
    reports = {tuple(record.body.split()[1::2]) for record in events.records if record.event_type == "lenmsg"}
    ((threshold, pid),) = reports
    assert int(threshold) == YOUNG_THRESHOLD and int(pid) != os.getpid()
