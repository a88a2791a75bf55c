"""Multi-core replay: flows sharded across worker processes by a symmetric 5-tuple hash.

    capture files ──┬─▶ worker 0: read all, keep shard 0 (+ ARP, non-IP) ─▶ decode ─▶ flows ─▶ dissect ─┐
                    └─▶ worker k: read all, keep shard k ──────────────────▶ decode ─▶ flows ─▶ dissect ─┤
                                                                                                        ▼
           parent: heap merge by (frame, stage) ─▶ event/flow sinks, the one Analysis (inventory, baseline,
                                                   detection, alert and change sinks)

Every worker reads every capture file itself (reading costs less than shipping frames between
processes) and numbers every frame, so records carry the frame numbers a single process gives them.
A cheap pre-hash on the raw bytes (Ethernet, one 802.1Q tag, raw IP, Linux cooked; IPv4 that is not a
fragment, IPv6 with TCP/UDP/ICMPv6 right after the fixed header) says which worker owns a frame;
the others skip it without decoding, only letting their flow table's clock move so idle flows expire
at the same frame as in one process.  ARP and other non-IP frames belong to worker 0.  Frames the
pre-hash cannot place (IP fragments, QinQ, MPLS, IPv6 extension headers, other link types, short
frames) are decoded by every worker: each keeps the decoded packet only if the packet's own hash
(the same function, over the reassembled 5-tuple) is its shard, and only worker 0 keeps the decoder's
anomalies about them.  So a flow whose datagrams are sometimes fragmented still lands in one worker,
the fragment table is identical everywhere, and nothing is reported twice.  This is the rule of
AF_PACKET fanout hashing and Zeek cluster workers, with defragmentation done before the choice.

Each worker tags what it produces with ``frame * 8 + stage`` (the order ``Pipeline.run`` drains a
frame's records in) and ships batches through a pipe; the parent merges the sorted streams with a
heap and feeds sinks and analysis exactly as ``Pipeline`` does, so cross-flow detectors (scans,
sweeps) see all traffic, and events, assets, alerts and the baseline equal a one-process run (flows
ending at the same frame in different workers may come out in another order).  Worker 0 also
emits the analysis clock ticks and the progress position.

Workers start from a fork server (``WorkerSpec`` says what to build): a fresh process, not a copy
of a parent that may hold a large baseline.  Records cross the pipe as marshal data (class number
and field values, see ``shard.marshalled``; pickle for what marshal refuses); when nothing
but JSON-lines files is downstream and there is no analysis (``dissect``/``flows -o``), the workers
serialise the lines themselves and the parent only writes them in order.

Live capture (``LiveShards``, ``live --workers N``) shards in the kernel instead: each worker owns
one socket per interface in an AF_PACKET fanout group (``PACKET_FANOUT_HASH`` with defragmentation:
the kernel's flow hash is symmetric, so a flow stays with one worker) and decodes everything it
gets.  Frame numbers come from a counter in shared memory, taken as each frame leaves a socket, and
order the merge as above; a quiet worker sends a heartbeat every half second so the merge never
waits for frames that will not come, and with it its kernel counters.  A worker that dies ends the
whole run cleanly (its socket's share of the hash would move to the others mid-flow).

This module reads no header beyond the flow key and knows no protocol; a worker that dies or fails
ends its stream: the parent keeps everything merged so far, finishes the analysis, closes the
sinks and reports one ``WorkerError``.  The flow cap (``FlowConfig.max_flows``) applies per worker.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import heapq
import multiprocessing
import os
import pickle
import queue
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from ics_monitor.capture import open_captures
from ics_monitor.capture.live import open_fanout, stop_on_signals
from ics_monitor.capture.ring import DEFAULT_RING_SIZE
from ics_monitor.config import Config
from ics_monitor.core.collector import tune_collector
from ics_monitor.core.errors import CaptureError, IcsMonitorError
from ics_monitor.dissect import Registry
from ics_monitor.pipeline import Pipeline, RunStats, WorkerChecks, loaded_as_digested, rules_digest
from ics_monitor.shard import (
    ARP,
    EVENT,
    EVENT_PASSED,
    FLOW,
    MARK,
    PICKLE_PROTO,
    TICK,
    LiveShard,
    lines_marshalled,
    marshalled,
    merge_into,
    run_shard,
    unmarshalled,
)
from ics_monitor.sinks import JsonLinesSink

# Batches received ahead of the merge per worker: records (tens of KB each) for an analysis that
# may lag behind for a while, or JSON lines (up to about 600 KB each, S7) that are only written.
_PREFETCH_BATCHES = 128
_PREFETCH_LINE_BATCHES = 32
# More processes than this is a typing error, not a sensor.
MAX_WORKERS = 64


class WorkerError(IcsMonitorError):
    """A worker process failed or died; what was merged before it is kept."""


# glibc malloc options (malloc.h): serve blocks below MMAP_THRESHOLD from the heap, and keep up to
# TRIM_THRESHOLD of free memory at its top instead of handing it back to the kernel.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 128 << 20


def tune_allocator() -> bool:
    """Stop glibc from giving back, and faulting in again, the memory of every batch (True if set).

    A batch is one buffer of a few hundred KB (marshal grows it by realloc, the pipe hands it over
    whole), above glibc's default mmap threshold and big enough to trim the heap when freed: each
    one came as fresh pages from the kernel, zeroed and faulted in one by one.  That was 13% of a
    worker's time on S7 traffic (``perf``: ``exc_page_fault`` under ``realloc`` in marshal).  Set
    once per process that ships or takes batches: it raises the RSS by at most the free memory the
    heap keeps (the thresholds above), independent of the capture's size.  A no-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # only where batches cross processes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )


# -- batch transport -------------------------------------------------------------------------------
#
# Batches go as marshal data (``shard.marshalled``, ``shard.lines_marshalled``); the few marshal
# refuses (a live mark carries a named tuple) go as pickle.


_PIPE_BYTES = 1 << 20
# Connection.send_bytes framing: a 4-byte big-endian length; -1, then 8 bytes, from 2 GiB on.
_MESSAGE_SIZE = struct.Struct("!i")
_LARGE_MESSAGE_SIZE = struct.Struct("!Q")


def _widen(conn: Connection) -> None:
    """Give a worker's pipe room for a whole batch (1 MiB, the unprivileged maximum) where it can.

    With the default 64 KiB a batch of S7 lines (about 600 KB) took ten refills, each waiting
    for the parent's receiver thread to get the GIL from the merge: the worker sat blocked in
    ``write`` and a core idled (7% of a 2-worker dissect's CPU time).  A failure leaves the
    default: slower, not wrong.
    """
    with contextlib.suppress(ImportError, AttributeError, OSError):  # no fcntl; not Linux; refused
        import fcntl

        fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)


def _read_exactly(fd: int, size: int) -> bytes:
    data = os.read(fd, size)
    if len(data) == size:
        return data  # a whole batch in one read: the usual case with a widened pipe
    if not data:
        raise EOFError
    chunks = [data]
    remaining = size - len(data)
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive_bytes(fd: int) -> bytes:
    """One message a worker sent with ``Connection.send_bytes``, read off the pipe's descriptor.

    Its framing: a 4-byte big-endian length (-1, then 8 bytes, from 2 GiB on).
    ``Connection.recv_bytes`` gathers the payload in a BytesIO and copies it out again: two more
    copies of every batch, in the thread that competes with the merge for the GIL.
    """
    (size,) = _MESSAGE_SIZE.unpack(_read_exactly(fd, 4))
    if size == -1:
        (size,) = _LARGE_MESSAGE_SIZE.unpack(_read_exactly(fd, 8))
    return _read_exactly(fd, size) if size else b""


def _dumps(batch: list[Any]) -> bytes:
    data = marshalled(batch)
    return data if data is not None else pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps_lines(batch: list[Any]) -> bytes:
    """A batch with its records already as JSON lines, and what the parent's figures need."""
    data, lines = lines_marshalled(batch)
    return data if data is not None else pickle.dumps(lines, protocol=pickle.HIGHEST_PROTOCOL)


def _loads(data: bytes) -> Any:
    """A message from a worker: a marshalled batch (see ``shard.marshalled``) or anything pickled."""
    if data[0] == PICKLE_PROTO:
        return pickle.loads(data)
    return unmarshalled(data)


@dataclasses.dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its own pipeline (picklable: workers may start afresh)."""

    config: Config
    registry: Registry
    dissect: str | None
    emit_arp: bool
    # The analysis clock period, or None without analysis (worker 0 then sends no ticks).
    tick: float | None
    progress: bool
    serialized: bool
    # (baseline file, rules directory, their digest) to check read values with where they are
    # dissected (``Analysis.checks``, ``pipeline.worker_checks_of``), or None.
    checks: WorkerChecks | None = None

    @classmethod
    def of(cls, pipeline: Pipeline) -> WorkerSpec:
        """The spec of the parent's pipeline."""
        analysis = pipeline.analysis
        return cls(
            config=pipeline.config,
            registry=pipeline.registry,
            dissect=pipeline.dissect,
            emit_arp=pipeline.emit_arp,
            tick=analysis.tick if analysis is not None else None,
            progress=pipeline.progress is not None,
            serialized=_serialized(pipeline),
            checks=analysis.checks if analysis is not None else None,
        )


def _worker_main(
    spec: WorkerSpec, paths: list[str], index: int, workers: int, conn: Connection, backlog: Any = None
) -> None:
    """Entry point of worker ``index``: run its shard, ship records, then a final summary."""
    # Ctrl-C reaches the whole process group: the parent alone decides, and stops us (SIGTERM
    # kills: a worker forked from the CLI would inherit its handler that turns it into Ctrl-C).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tune_collector()  # as the CLI's main process: a fork server's child starts at the default
    tune_allocator()
    try:
        pipeline = Pipeline(spec.config, spec.registry, dissect=spec.dissect)
        summary = _work(spec, pipeline, paths, index, workers, conn, backlog)
        conn.send_bytes(pickle.dumps(("done", summary)))
    except BaseException as exc:
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
        with contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(("failed", line)))
    finally:
        conn.close()
    # Leave without running the parent's inherited atexit handlers or flushing its buffers (open
    # sinks were copied by fork: flushing them here would write their pending bytes twice).
    os._exit(0)


def _work(
    spec: WorkerSpec,
    pipeline: Pipeline,
    paths: list[str],
    index: int,
    workers: int,
    conn: Connection,
    backlog: Any = None,
) -> dict[str, Any]:
    source = open_captures(paths)
    send_bytes = conn.send_bytes
    dumps = _dumps_lines if spec.serialized else _dumps

    def send(batch: list[Any]) -> None:
        send_bytes(dumps(batch))

    figures = run_shard(
        source,
        lambda: source.position,
        pipeline,
        index,
        workers,
        send,
        spec.tick,
        index == 0 and (spec.emit_arp or spec.tick is not None),
        index == 0 and spec.progress,
        _worker_check(spec.checks),
        backlog,
    )
    return _summary(
        source,
        figures.frames,
        figures.bytes,
        figures.ip_packets,
        figures.arp_packets,
        pipeline.decoder.cut_headers,
        figures.first_ts,
        figures.last_ts,
    )


def _worker_check(checks: WorkerChecks | None) -> Callable[[Any], bool] | None:
    """``WorkerCheck.passes`` over the baseline and rules of ``checks``, or None.

    Loaded by the first record the worker is asked about that it could pass (``LazyWorkerCheck``):
    the parent has loaded the same files by then.  A file this worker cannot use gives no check,
    not a failure, and so do files whose contents are not those of the digest taken before the
    workers started (read before and after loading); the worker does not write the baseline's
    cache (the parent may be writing it).
    """
    if checks is None or not checks[2]:
        return None
    from ics_monitor.detect.deviation import LazyWorkerCheck

    return LazyWorkerCheck(lambda: _load_worker_check(checks)).passes


def _load_worker_check(checks: WorkerChecks) -> Any:
    from pathlib import Path

    from ics_monitor.detect.deviation import WorkerCheck
    from ics_monitor.detect.rules import RuleSet
    from ics_monitor.inventory.baseline import Baseline

    rules_before = rules_digest(checks[1])
    try:
        rules = RuleSet.load(None if checks[1] is None else Path(checks[1]))
        baseline = Baseline.load(checks[0], keep_cache=False)
    except Exception:  # the parent, loading them too, reports why
        return None
    if not loaded_as_digested(checks[2], checks[0], checks[1], rules_before, baseline):
        return None
    return WorkerCheck(rules, baseline)


def _summary(
    source: Any,
    frames: int,
    total_bytes: int,
    ip_packets: int,
    arp_packets: int,
    cut_headers: int,
    first_ts: float | None,
    last_ts: float,
) -> dict[str, Any]:
    return {
        "frames": frames,
        "bytes": total_bytes,
        "ip_packets": ip_packets,
        "arp_packets": arp_packets,
        "cut_headers": cut_headers,
        "first_ts": first_ts,
        "last_ts": last_ts if frames else None,
        "errors": [(error.path, error.reason, error.offset) for error in source.errors],
    }


def _serialized(pipeline: Pipeline) -> bool:
    """True when records need not reach the parent as objects (``dissect``/``flows -o``)."""
    sinks = (*pipeline.event_sinks, *pipeline.flow_sinks)
    return pipeline.analysis is None and bool(sinks) and all(type(sink) is JsonLinesSink for sink in sinks)


class _Stream:
    """One worker's batches as a sorted record iterator; keeps its summary or failure.

    A thread receives the worker's batches ahead of the merge (up to ``_PREFETCH_BATCHES``): the
    merge takes records in time order, so without it a worker could only run one batch ahead of
    the slowest stream and the processes would wait on each other in turn.
    """

    def __init__(
        self,
        index: int,
        process: Any,
        conn: Connection,
        prefetch: int = _PREFETCH_BATCHES,
        backlog: Any = None,
    ) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.summary: dict[str, Any] | None = None
        self.failure: str | None = None
        self._batches: queue.Queue[bytes | None] = queue.Queue(prefetch)
        # Shared with the worker (``shard.run_shard``): how many of its batches the merge has taken.
        self._backlog = backlog
        self._taken = 0
        self._receiver = threading.Thread(target=self._receive, name=f"receive-{index}", daemon=True)
        self._receiver.start()

    def _receive(self) -> None:
        put = self._batches.put
        fd = self.conn.fileno()
        try:
            while True:
                put(_receive_bytes(fd))
        except (EOFError, OSError):
            put(None)

    def close(self) -> None:
        """Stop the worker if it still runs, let the receiver meet the end of the pipe, close it.

        The pipe is closed only once its receiver thread is gone: closing it under a blocked read
        would free the descriptor number for the next run's pipe while the old thread still reads.
        """
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(5)
        for _ in range(100):
            if not self._receiver.is_alive():
                self.conn.close()
                return
            with contextlib.suppress(queue.Empty):
                self._batches.get(timeout=0.05)  # unblock a receiver stuck on a full queue

    def next_batch(self) -> list[tuple[int, int, int, Any]] | None:
        """The worker's next batch of records in order; None at its end (summary or failure kept)."""
        data = self._batches.get()
        if self._backlog is not None:
            self._taken += 1
            self._backlog.value = self._taken
        return self._message(data)

    def _message(self, data: bytes | None) -> list[tuple[int, int, int, Any]] | None:
        if data is None:
            self.process.join(5)
            self.failure = f"ended unexpectedly (exit code {self.process.exitcode})"
            return None
        message = _loads(data)
        if type(message) is list:
            return message
        if message[0] == "done":
            self.summary = message[1]
        else:
            self.failure = str(message[1])
        return None

    def __iter__(self) -> Iterator[tuple[int, int, int, Any]]:
        while True:
            batch = self.next_batch()
            if batch is None:
                return
            yield from batch


def run_sharded(
    pipeline: Pipeline, paths: list[str], workers: int, start_method: str = "forkserver"
) -> RunStats:
    """Run ``pipeline`` over the capture files with ``workers`` processes; same contract as ``run``.

    Each worker builds its own decoder, flow table and dissect engine from ``WorkerSpec.of``; the
    sinks and the analysis stay in this process.  Workers start from a fork server by default: a
    clean process that never held the parent's baseline or inventory (forked from this process
    they would copy its pages as they allocate; tests use ``"fork"`` to inject failures).  Capture
    errors are in ``stats.errors`` as in a one-process run, a failed worker as a ``WorkerError``.
    """
    with ShardedRun(WorkerSpec.of(pipeline), paths, workers, start_method) as sharded:
        return sharded.run(pipeline)


class ShardedRun:
    """Worker processes started ahead of the pipeline they feed (``run_sharded`` in two steps).

    A replay starts its workers before it loads the rules, the baseline and the inventory: they
    read, decode and dissect meanwhile (their batches wait in the pipes), so that loading, which
    takes a second for a large baseline, overlaps the work instead of preceding it.  ``spec`` must
    describe the pipeline later given to ``run`` (``WorkerSpec.of`` it would give); leaving the
    ``with`` block without ``run`` (a bad rules file, say) stops the workers.
    """

    def __init__(
        self, spec: WorkerSpec, paths: list[str], workers: int, start_method: str = "forkserver"
    ) -> None:
        # One worker is a pipeline rather than a split: it reads, decodes and dissects everything
        # while this process analyses (a replay's default on 2 CPUs).
        if workers < 1:
            raise ValueError("run_sharded needs at least 1 worker")
        self.spec = spec
        self.started = time.perf_counter()
        self.streams: list[_Stream] = []
        context: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            context.set_forkserver_preload(["ics_monitor.parallel"])
        tune_allocator()  # the receivers take every batch as one buffer
        # Forked children inherit unflushed buffers; flush ours so nothing can be written twice.
        sys.stdout.flush()
        sys.stderr.flush()
        # Forked from here, a worker would walk the parent's objects at every full collection and
        # copy their pages: frozen objects are left alone by the collector (harmless for a fork server).
        gc.freeze()
        try:
            for index in range(workers):
                reader, writer = context.Pipe(duplex=False)
                _widen(reader)
                # Batches of this worker waiting for the merge, kept up to date here and read by the
                # worker: how far behind the analysis is (see ``shard.run_shard``).
                backlog = context.RawValue("i", 0)
                process = context.Process(
                    target=_worker_main,
                    args=(spec, paths, index, workers, writer, backlog),
                    name=f"ics-monitor-worker-{index}",
                    daemon=True,
                )
                process.start()
                writer.close()
                prefetch = _PREFETCH_LINE_BATCHES if spec.serialized else _PREFETCH_BATCHES
                self.streams.append(_Stream(index, process, reader, prefetch, backlog))
        except BaseException:
            self.close()
            raise
        finally:
            gc.unfreeze()  # also when starting a worker failed

    def run(self, pipeline: Pipeline) -> RunStats:
        """Merge the workers' records into ``pipeline`` (its sinks and analysis); its figures."""
        expected = WorkerSpec.of(pipeline)
        if dataclasses.replace(expected, config=self.spec.config, registry=self.spec.registry) != self.spec:
            raise ValueError(f"the workers were started for {self.spec}, not for this pipeline ({expected})")
        stats = pipeline.stats
        try:
            merge_into(pipeline, self.streams)
        finally:
            _summarise(stats, self.streams)
            pipeline.finish_merged()
            stats.seconds = time.perf_counter() - self.started
        return stats

    def close(self) -> None:
        """Stop the workers still running and close their pipes."""
        for stream in self.streams:
            stream.close()

    def __enter__(self) -> ShardedRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _taker(pipeline: Pipeline) -> Callable[[int, Any], bool]:
    """``take(kind, record)``: deliver an EVENT, FLOW or ARP record as ``Pipeline.run`` does.

    Returns False for the kinds the merges handle themselves (lines, ticks, marks).
    """
    deliver: dict[int, Callable[[Any], None]] = {
        EVENT: pipeline.deliver_event,
        EVENT_PASSED: pipeline.deliver_event,  # live workers check nothing; as an event if one did
        FLOW: pipeline.deliver_flow,
        ARP: pipeline.deliver_arp,
    }

    def take(kind: int, record: Any) -> bool:
        method = deliver.get(kind)
        if method is None:
            return False
        method(record)
        return True

    return take


def _summarise(stats: RunStats, streams: list[_Stream]) -> None:
    """Frame figures from the workers' summaries; their capture errors and failures as errors."""
    errors: list[IcsMonitorError] = []
    first = streams[0].summary if streams else None
    if first is not None:
        stats.frames = first["frames"]
        stats.bytes = first["bytes"]
        stats.first_ts = first["first_ts"]
        stats.last_ts = first["last_ts"]
        # Every worker read the same files and met the same damage: report it once.
        errors.extend(CaptureError(path, reason, offset) for path, reason, offset in first["errors"])
    for stream in streams:
        if stream.summary is not None:
            stats.ip_packets += stream.summary["ip_packets"]
            stats.arp_packets += stream.summary["arp_packets"]
            stats.cut_headers += stream.summary["cut_headers"]
            if first is None:
                stats.frames = max(stats.frames, stream.summary["frames"])
        if stream.failure is not None:
            errors.append(
                WorkerError(
                    f"worker {stream.index + 1} of {len(streams)} {stream.failure}; "
                    "results cover only what was merged before"
                )
            )
    stats.errors = errors


# -- live capture over an AF_PACKET fanout group ---------------------------------------------------
#
# Frame numbers: a live run has no file to number frames by, so the workers draw them from one
# counter in shared memory as they take each frame off their socket.  Numbers are then unique,
# every worker's own are increasing, and every record (``frame``, ``request_frame``, a flow's
# ``first_frame``) refers to frames by numbers valid across the whole run.  Records are merged by
# ``frame * 8 + stage`` exactly as in a replay, which gives the merged stream in the order the
# workers took the frames, and frame numbers that never go back.  A quiet worker sends a heartbeat
# at the counter's value (any frame it takes later gets a larger number), so the merge moves on.
#
# Start gate: the workers take no frame until every one of them has built its pipeline.  A worker
# still starting would otherwise find its socket's backlog numbered after what a faster one took
# meanwhile: a connection that ran first would be merged after one that ran later.  The command
# says it listens (``on_listening``) once the gate opens.

HEARTBEAT_SECONDS = 0.5  # a worker sends what it holds, and a heartbeat, at least this often
# A live worker not heard from for this long (60 heartbeats missed) is hung: the run ends as if it
# had died, rather than the merge waiting on it for ever while the others' records pile up.
WATCHDOG_SECONDS = 30.0
# A worker waits this long at the start gate at most (the parent opens it within the watchdog).
GATE_SECONDS = 2 * WATCHDOG_SECONDS


class _LiveFigures(NamedTuple):
    """A live worker's figures, cumulative, sent with every heartbeat and in its summary."""

    packets: int
    bytes: int
    interfaces: dict[str, dict[str, int]]  # per interface: kernel_packets, kernel_drops
    flows_active: int
    flow_evictions: int


class LiveShards:
    """``workers`` processes capturing from one fanout group per interface; the parent's face of them.

    Opens every socket here (so a missing interface or privilege is one line, as with one
    process), then ``run`` starts the workers and merges their records.  To ``LiveOperations``
    and the command it looks like a ``LiveSource``: ``statistics()`` sums the workers' kernel
    counters (as last reported, every half second, and at exit), ``packets``/``bytes`` their
    frames, ``stop()`` ends every worker cleanly, ``on_tick`` is called from the merge and
    ``on_listening`` once every worker is ready to take frames.
    """

    def __init__(
        self,
        interfaces: list[str],
        workers: int,
        *,
        snaplen: int,
        duration: float | None = None,
        bpf: str | None = None,
        start_method: str = "forkserver",
        ring_size: int = DEFAULT_RING_SIZE,
        watchdog: float = WATCHDOG_SECONDS,
    ) -> None:
        if not 2 <= workers <= MAX_WORKERS:
            raise ValueError(f"live fanout needs 2 to {MAX_WORKERS} workers")
        self.interfaces = list(interfaces)
        self.workers = workers
        self.start_method = start_method
        self.watchdog = watchdog
        self.sources = open_fanout(
            interfaces, workers, snaplen=snaplen, duration=duration, bpf=bpf, ring_size=ring_size
        )
        self.on_tick: Callable[[float, bool], None] | None = None
        self.on_listening: Callable[[], None] | None = None
        self.errors: list[IcsMonitorError] = []
        self.stopping = False
        self._figures = [_LiveFigures(0, 0, {}, 0, 0)] * workers

    def stop(self) -> None:
        """Ask every worker to end (safe from a signal handler): the merge forwards it."""
        self.stopping = True

    @property
    def packets(self) -> int:
        """Frames the workers took off their sockets."""
        return sum(figures[0] for figures in self._figures)

    @property
    def bytes(self) -> int:
        """Their length on the wire."""
        return sum(figures[1] for figures in self._figures)

    @property
    def flows_active(self) -> int:
        """Flows open in the workers' tables."""
        return sum(figures.flows_active for figures in self._figures)

    @property
    def flow_evictions(self) -> int:
        """Flows the workers' tables evicted at their caps (the cap applies per worker)."""
        return sum(figures.flow_evictions for figures in self._figures)

    def statistics(self) -> dict[str, dict[str, int]]:
        """Per interface: packets the kernel saw for all workers' sockets and how many it dropped."""
        totals = {name: {"kernel_packets": 0, "kernel_drops": 0} for name in self.interfaces}
        for figures in self._figures:
            for name, counters in figures.interfaces.items():
                for key in ("kernel_packets", "kernel_drops"):
                    totals[name][key] += counters[key]
        return totals

    def report(self, worker: int, figures: _LiveFigures) -> None:
        """The latest figures of ``worker`` (cumulative)."""
        self._figures[worker] = figures

    def run(self, pipeline: Pipeline) -> RunStats:
        """Capture and analyse until a stop, the duration, or a worker's failure; same contract as ``run``."""
        context: Any = multiprocessing.get_context(self.start_method)
        if self.start_method == "forkserver":
            context.set_forkserver_preload(["ics_monitor.parallel"])
        spec = WorkerSpec.of(pipeline)
        stats = pipeline.stats
        started = time.perf_counter()
        tune_allocator()
        sys.stdout.flush()
        sys.stderr.flush()
        lock = context.Lock()
        counter = context.RawValue("q", 0)
        ready = context.RawValue("i", 0)  # workers at the start gate (under ``lock``)
        gate = context.Event()
        streams: list[_LiveStream] = []
        gc.freeze()
        try:
            for index, source in enumerate(self.sources):
                reader, writer = context.Pipe(duplex=False)
                _widen(reader)
                process = context.Process(
                    target=_live_worker_main,
                    args=(spec, source, index, counter, lock, writer, ready, gate),
                    name=f"ics-monitor-live-worker-{index}",
                    daemon=True,
                )
                process.start()
                writer.close()
                source.detach()  # the worker holds the sockets now
                streams.append(_LiveStream(index, process, reader, self.stop, self.watchdog))
            gc.unfreeze()
            try:
                self._open_gate(streams, ready, gate)
                self._merge(pipeline, streams)
            finally:
                self._summarise(stats, streams)
                pipeline.finish_merged()
                stats.seconds = time.perf_counter() - started
        finally:
            gate.set()  # never leave a worker waiting
            gc.unfreeze()
            for source in self.sources:
                source.detach()  # sockets not handed over when starting a worker failed
            for stream in streams:
                stream.close()
        return stats

    def _open_gate(self, streams: list[_LiveStream], ready: Any, gate: Any) -> None:
        """Let the workers take frames once all are ready (or one died, a stop came, the watchdog passed)."""
        deadline = time.monotonic() + self.watchdog
        while (
            ready.value < len(streams)
            and not self.stopping
            and time.monotonic() < deadline
            and all(stream.process.is_alive() for stream in streams)
        ):
            time.sleep(0.01)
        gate.set()
        on_listening = self.on_listening
        # Not said when stopped first or a worker failed to start (its error line follows).  A
        # worker still starting past the watchdog: said all the same (the others capture), the
        # slow one's first frames then merged after what they took meanwhile.
        if on_listening is not None and not self.stopping and all(s.process.is_alive() for s in streams):
            on_listening()

    def _merge(self, pipeline: Pipeline, streams: list[_LiveStream]) -> None:
        """``shard.merge_into`` for live records, plus the heartbeats: figures, the on_tick hook, stopping."""
        take = _taker(pipeline)
        analysis = pipeline.analysis
        held = analysis.anomalies if analysis is not None else []
        drain = pipeline._drain_events
        # Per worker: the wall-clock time of its last heartbeat if it was quiet since, else None.
        quiet: list[float | None] = [None] * len(streams)
        clock = -float("inf")  # the analysis clock: never moved back
        next_tick = time.monotonic() + HEARTBEAT_SECONDS
        forwarded = False
        for _order, worker, kind, record in heapq.merge(*streams):
            if take(kind, record):
                pass
            elif kind == TICK:
                if analysis is not None and record > clock:
                    clock = record
                    analysis.advance(record)
            elif kind == MARK:
                quiet_at, figures = record
                self.report(worker, figures)
                quiet[worker] = quiet_at
                on_tick = self.on_tick
                now = time.monotonic()
                if on_tick is not None and now >= next_tick:
                    next_tick = now + HEARTBEAT_SECONDS
                    # Every worker drained its socket at its heartbeat: no frame stamped before
                    # the earliest of those times can still come, so capture time may move on.
                    settled = None if None in quiet else min(q for q in quiet if q is not None)
                    if settled is not None and settled > clock:
                        clock = settled
                        on_tick(settled, True)
                    else:
                        on_tick(time.time(), False)
            if held:
                drain(held)
            if kind not in (MARK, TICK):
                quiet[worker] = None
            if self.stopping and not forwarded:
                forwarded = True
                for stream in streams:
                    stream.stop()

    def _summarise(self, stats: RunStats, streams: list[_LiveStream]) -> None:
        errors: list[IcsMonitorError] = []
        first: list[float] = []
        last: list[float] = []
        for stream in streams:
            summary = stream.summary
            if summary is not None:
                stats.frames += summary["frames"]
                stats.bytes += summary["bytes"]
                stats.ip_packets += summary["ip_packets"]
                stats.arp_packets += summary["arp_packets"]
                stats.cut_headers += summary["cut_headers"]
                if summary["first_ts"] is not None:
                    first.append(summary["first_ts"])
                    last.append(summary["last_ts"])
                self.report(stream.index, summary["figures"])
                errors.extend(
                    CaptureError(path, reason, offset) for path, reason, offset in summary["errors"]
                )
            if stream.failure is not None:
                errors.append(
                    WorkerError(
                        f"worker {stream.index + 1} of {len(streams)} {stream.failure}; "
                        "the run ended there, results cover what was merged before"
                    )
                )
        stats.first_ts = min(first) if first else None
        stats.last_ts = max(last) if last else None
        self.errors = errors
        stats.errors = errors


class _LiveStream(_Stream):
    """A live worker's stream: a failure stops the whole run (the kernel would move its flows)."""

    def __init__(
        self,
        index: int,
        process: Any,
        conn: Connection,
        on_failure: Callable[[], None],
        watchdog: float = WATCHDOG_SECONDS,
    ) -> None:
        super().__init__(index, process, conn)
        self._on_failure = on_failure
        self._watchdog = watchdog

    def next_batch(self) -> list[tuple[int, int, int, Any]] | None:
        """As for replay, but a worker silent past the watchdog is killed and ends its stream."""
        try:
            data = self._batches.get(timeout=self._watchdog)
        except queue.Empty:
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
                self.failure = f"stopped responding (no heartbeat for {self._watchdog:g} s): killed"
                return None
            data = self._batches.get()  # it died: its receiver is about to say so
        return self._message(data)

    def stop(self) -> None:
        """Ask the worker to end cleanly (SIGTERM: it stops capturing, flushes and reports)."""
        if self.process.is_alive():
            with contextlib.suppress(OSError):
                self.process.terminate()

    def __iter__(self) -> Iterator[tuple[int, int, int, Any]]:
        yield from super().__iter__()
        if self.failure is not None:
            self._on_failure()


def _live_worker_main(
    spec: WorkerSpec,
    source: Any,
    index: int,
    counter: Any,
    lock: Any,
    conn: Connection,
    ready: Any,
    gate: Any,
) -> None:
    """Entry point of live worker ``index``: capture from its fanout sockets until SIGTERM or the duration."""
    # The parent alone decides (it sends SIGTERM); a SIGHUP to the group is its rule reload.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    tune_collector()  # as the CLI's main process: a fork server's child starts at the default
    tune_allocator()
    try:
        with stop_on_signals(source, (signal.SIGTERM,)):
            pipeline = Pipeline(spec.config, spec.registry, dissect=spec.dissect)
            # The kernel chose this worker by the outer header: say so if a UDP tunnel comes.
            pipeline.decoder.fanout_notice_due = True
            with lock:
                ready.value += 1
            gate.wait(GATE_SECONDS)
            summary = _work_live(spec, pipeline, source, index, counter, lock, conn)
        conn.send_bytes(pickle.dumps(("done", summary)))
    except BaseException as exc:
        line = "".join(traceback.format_exception_only(type(exc), exc)).strip().replace("\n", " ")
        with contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(("failed", line)))
    finally:
        conn.close()
    os._exit(0)


def _work_live(
    spec: WorkerSpec,
    pipeline: Pipeline,
    source: Any,
    index: int,
    counter: Any,
    lock: Any,
    conn: Connection,
) -> dict[str, Any]:
    send_bytes = conn.send_bytes
    table = pipeline.table

    def send(batch: list[Any]) -> None:
        send_bytes(_dumps(batch))

    def figures() -> _LiveFigures:
        return _LiveFigures(
            source.packets, source.bytes, source.statistics(), len(table.flows), table.evicted
        )

    shard = LiveShard(
        pipeline,
        source,
        index,
        counter,
        lock,
        send,
        spec.tick,
        spec.emit_arp or spec.tick is not None,
        figures,
    )
    shard.run()
    return {
        "frames": source.packets,
        "bytes": source.bytes,
        "ip_packets": shard.ip_packets,
        "arp_packets": shard.arp_packets,
        "cut_headers": pipeline.decoder.cut_headers,
        "first_ts": shard.first_ts,
        "last_ts": shard.last_ts if shard.first_ts is not None else None,
        "figures": figures(),
        "errors": [(error.path, error.reason, error.offset) for error in source.errors],
    }
