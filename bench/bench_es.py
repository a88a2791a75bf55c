"""``make bench``, Elasticsearch path: bulk documents/s into a local node, and the replay rate with
the Elasticsearch sink on compared with JSON lines only (target: within 20%).

Uses ``$ICS_MONITOR_ES_URL`` when set, otherwise starts the test node (tests/support/elasticsearch.py,
after ``.ci/install-es.sh``).  Each figure is wall clock in this process; the node shares the cores.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
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


def run(capture: Path, url: str, packets: int) -> None:
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
    # the sink's worker process (default) and, for comparison, its in-process sender thread.  Best of
    # three, alternated, since the node and other work share the cores (the load average is printed).
    jsonl_runs: list[tuple[float, float, float]] = []
    es_runs: list[tuple[float, float, float, int]] = []
    for _ in range(3):
        jsonl_runs.append(_replay(capture, None))
        es_runs.append(_replay_es(capture, url, worker_process=True))
    thread = _replay_es(capture, url, worker_process=False)
    jsonl_only, jsonl_cpu, _ = min(jsonl_runs)
    with_es, es_cpu, worker_cpu, sent = min(es_runs)
    ratio = with_es / jsonl_only
    print(
        f"  replay {packets:,} packets (load average {os.getloadavg()[0]:.1f}): "
        f"JSON lines {packets / jsonl_only:,.0f} pkt/s, + Elasticsearch ({sent:,} docs, drained) "
        f"{packets / with_es:,.0f} pkt/s: {(ratio - 1) * 100:+.1f}% time "
        f"({'within' if ratio <= 1.2 else 'OUTSIDE'} the 20% target)"
    )
    print(
        f"  monitor CPU {jsonl_cpu:.1f} s -> {es_cpu:.1f} s ({(es_cpu / jsonl_cpu - 1) * 100:+.1f}%), "
        f"delivery worker {worker_cpu:.1f} s; sender thread in-process instead: "
        f"{(thread[0] / jsonl_only - 1) * 100:+.1f}% time, monitor CPU {thread[1]:.1f} s ({thread[3]:,} docs)"
    )


def _replay_es(capture: Path, url: str, *, worker_process: bool) -> tuple[float, float, float, int]:
    settings = _settings(url, worker_process=worker_process)
    setup_templates(make_client(settings), settings)
    with tempfile.TemporaryDirectory() as state:
        sink = ElasticsearchSink(settings, state)
        wall, cpu, worker = _replay(capture, sink)
        return wall, cpu, worker, sum(sink.stats.delivered.values())


def main(capture: Path, packets: int) -> None:
    url = os.environ.get("ICS_MONITOR_ES_URL")
    node = None
    if not url:
        from tests.support.elasticsearch import ElasticsearchNode

        node = ElasticsearchNode("ics-monitor-bench")
        node.start()
        url = node.url
    try:
        run(capture, url, packets)
    finally:
        if node is not None:
            node.destroy()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
