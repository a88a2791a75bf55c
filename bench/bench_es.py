"""``make bench``, Elasticsearch path: bulk documents/s into a local node, and the replay rate with
the Elasticsearch sink on compared with JSON lines only (target: within 20%).

Uses ``$ICS_MONITOR_ES_URL`` when set, otherwise starts the test node (tests/support/elasticsearch.py,
after ``.ci/install-es.sh``).  Each figure is wall clock in this process; the node shares the cores.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ROUNDS = 4  # paired replay rounds (JSON lines only, then with Elasticsearch)
# The discard port on loopback: nothing listens, every connection is refused at once.
UNREACHABLE = "http://127.0.0.1:9"
sys.path.insert(0, str(REPO))

from ics_monitor.capture import open_captures  # noqa: E402
from ics_monitor.config import Config  # noqa: E402
from ics_monitor.dissect import default_registry  # noqa: E402
from ics_monitor.pipeline import Pipeline  # noqa: E402
from ics_monitor.sinks import JsonLinesSink  # noqa: E402
from ics_monitor.sinks.ecs import KINDS  # noqa: E402
from ics_monitor.sinks.elasticsearch import (  # noqa: E402
    ElasticsearchSettings,
    ElasticsearchSink,
    make_client,
    setup_templates,
)
from ics_monitor.sinks.memory import ListSink  # noqa: E402


def _settings(url: str, **extra: Any) -> ElasticsearchSettings:
    return ElasticsearchSettings(
        urls=(url,), index_prefix=f"bench{uuid.uuid4().hex[:8]}", close_timeout=600, **extra
    )


def _replay(capture: Path, es: ElasticsearchSink | None) -> tuple[float, float, float]:
    """(wall, monitor CPU, worker CPU) seconds to replay ``capture`` into JSON lines (+ ``es``).

    The sink is made before the clock starts (its worker process takes a moment to start, once
    per monitor run), and the clock stops when it has drained: every document confirmed.  CPU
    seconds do not depend on what else runs on the machine, wall clock does.
    """
    extra = [es] if es is not None else []
    events, flows = [JsonLinesSink(os.devnull), *extra], [JsonLinesSink(os.devnull), *extra]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started, cpu = time.perf_counter(), time.process_time()
    Pipeline(Config(), default_registry(), event_sinks=events, flow_sinks=flows).run(
        open_captures([str(capture)])
    )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    worker = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return wall, cpu, worker


def run(capture: Path, url: str, packets: int, node_group: int | None) -> None:
    # 1. Bulk throughput: protocol events of the capture (up to 200k) from emit to confirmed.
    collect = ListSink()
    Pipeline(Config(), default_registry(), event_sinks=[collect]).run(open_captures([str(capture)]))
    documents = collect.records[:200_000]
    settings = _settings(url, kinds=frozenset(KINDS))
    setup_templates(make_client(settings), settings)
    with tempfile.TemporaryDirectory() as state:
        sink = ElasticsearchSink(settings, state)
        started = time.perf_counter()
        for record in documents:
            sink.emit(record)
        sink.close()
        seconds = time.perf_counter() - started
        delivered = sum(sink.stats.delivered.values())
    print(
        f"  elasticsearch bulk: {delivered:,} documents in {seconds:.1f} s = {delivered / seconds:,.0f} docs/s"
    )

    # 2. Replay rate, default kinds (alerts, assets, flows, anomalies): JSON lines only vs + Elasticsearch,
    # the sink's worker process (default) and, for comparison, its in-process sender thread.  Paired
    # rounds: each run with Elasticsearch follows one without, and the figure is the median of the
    # rounds' ratios (this host's speed moves by tens of percent within a minute: the replay without
    # Elasticsearch took 9.5 s and 15.0 s in two runs a minute apart, so the best of each side
    # taken apart compared a lucky run with an unlucky one).  One untimed run first: a node just
    # started spends its first bulk loads compiling its own code (the JVM took 29 s, then 19 s, then
    # 6-7 s of CPU for the same 97,830 documents), which a cluster that has been up does not.
    _replay_es(capture, url, node_group, worker_process=True)
    rounds: list[tuple[tuple[float, float, float], tuple[float, float, float, int, float]]] = []
    for _ in range(ROUNDS):
        rounds.append((_replay(capture, None), _replay_es(capture, url, node_group, worker_process=True)))
    ratios = sorted(es[0] / jsonl[0] for jsonl, es in rounds)
    ratio = statistics.median(ratios)
    jsonl_only = statistics.median(jsonl[0] for jsonl, _ in rounds)
    with_es = statistics.median(es[0] for _, es in rounds)
    jsonl_cpu = statistics.median(jsonl[1] for jsonl, _ in rounds)
    es_cpu = statistics.median(es[1] for _, es in rounds)
    worker_cpu = statistics.median(es[2] for _, es in rounds)
    node_cpu = statistics.median(es[4] for _, es in rounds)
    sent = rounds[-1][1][3]
    print(
        f"  replay {packets:,} packets (load average {os.getloadavg()[0]:.1f}), {ROUNDS} paired rounds: "
        f"JSON lines {packets / jsonl_only:,.0f} pkt/s, + Elasticsearch ({sent:,} docs, drained) "
        f"{packets / with_es:,.0f} pkt/s (medians): {(ratio - 1) * 100:+.1f}% time, median of the rounds "
        f"(range {(ratios[0] - 1) * 100:+.1f}% to {(ratios[-1] - 1) * 100:+.1f}%; "
        f"{'within' if ratio <= 1.2 else 'OUTSIDE'} the 20% target)"
    )
    print(
        f"  CPU: monitor {jsonl_cpu:.1f} s -> {es_cpu:.1f} s ({(es_cpu / jsonl_cpu - 1) * 100:+.1f}%), "
        f"delivery worker {worker_cpu:.1f} s"
        + (
            f", the Elasticsearch node itself {node_cpu:.1f} s (on the same {os.cpu_count()} CPUs)"
            if node_group
            else ""
        )
    )
    # 3. The sensor's side alone: the same replay with the node unreachable, so that the worker maps
    # and spools every document (and sends none) while no node takes CPU beside the monitor.  With
    # the node on the same small machine, its indexing is most of the cost above.
    away = [
        (_replay(capture, None), _replay_es(capture, UNREACHABLE, None, worker_process=True))
        for _ in range(2)
    ]
    away_ratios = sorted(es[0] / jsonl[0] for jsonl, es in away)
    print(
        f"  node unreachable (documents mapped and spooled, none sent), 2 paired rounds: "
        f"{(statistics.median(away_ratios) - 1) * 100:+.1f}% time "
        f"(range {(away_ratios[0] - 1) * 100:+.1f}% to {(away_ratios[-1] - 1) * 100:+.1f}%), monitor CPU "
        f"{statistics.median(j[1] for j, _ in away):.1f} s -> {statistics.median(e[1] for _, e in away):.1f} s, "
        f"delivery worker {statistics.median(e[2] for _, e in away):.1f} s"
    )
    thread = _replay_es(capture, url, node_group, worker_process=False)
    print(
        f"  sender thread in-process instead of the worker: {(thread[0] / jsonl_only - 1) * 100:+.1f}% time "
        f"against the median run without, monitor CPU {thread[1]:.1f} s ({thread[3]:,} docs)"
    )


def _group_cpu(group: int | None) -> float:
    """CPU seconds of every process in process group ``group`` (0.0 for None)."""
    if group is None:
        return 0.0
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _replay_es(
    capture: Path, url: str, node_group: int | None, *, worker_process: bool
) -> tuple[float, float, float, int, float]:
    """``_replay`` with Elasticsearch: (wall, monitor CPU, worker CPU, documents delivered, node CPU)."""
    unreachable = url == UNREACHABLE
    settings = _settings(url, worker_process=worker_process)
    if unreachable:
        settings = dataclasses.replace(settings, close_timeout=0.1)
    else:
        setup_templates(make_client(settings), settings)
    with tempfile.TemporaryDirectory() as state:
        sink = ElasticsearchSink(settings, state)
        node_before = _group_cpu(node_group)
        wall, cpu, worker = _replay(capture, sink)
        return wall, cpu, worker, sum(sink.stats.delivered.values()), _group_cpu(node_group) - node_before


def main(capture: Path, packets: int) -> None:
    url = os.environ.get("ICS_MONITOR_ES_URL")
    node = None
    group: int | None = None
    if not url:
        from tests.support.elasticsearch import ElasticsearchNode

        node = ElasticsearchNode("ics-monitor-bench")
        node.start()
        url = node.url
        group = node.process_group
    try:
        run(capture, url, packets, group)
    finally:
        if node is not None:
            node.destroy()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
