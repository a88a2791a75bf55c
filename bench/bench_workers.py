"""``make bench`` (workers): dissect and full replay with 1 and 2 worker processes on the 1M Modbus file.

Each line is one command in its own process tree: wall time, packets per second, and the peaks of
the summed RSS and of the summed PSS of the whole tree (parent plus workers, sampled from /proc
every 50 ms; wait4 would give only the largest single process).  RSS counts pages the forked
workers still share with the parent once per process; PSS splits them, so it is the real total.  Every configuration runs ``--repeat`` times (default 2),
and the load average before each run is printed: the machine may be shared, so read the figures as
ratios between runs made under the same load.  The full replay enforces a baseline learned on the
same file at the start of each bench run (as bench.py does), from a fresh state directory each run,
protocol events not written.

Needs ``.bench/modbus_1m.pcap`` (bench/bench.py builds it).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / ".bench"
CLI = str(Path(sys.executable).with_name("ics-monitor"))
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def _pss(pid: int) -> int:
    """Proportional set size in bytes: shared (copy-on-write) pages counted once over the tree."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_memory(root: int, cpu: dict[int, float]) -> tuple[int, int]:
    """Summed RSS and summed PSS in bytes of ``root`` and all its descendants.

    ``cpu`` gets each process's user+system seconds so far (the last sample before it ends).
    """
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    ticks: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(fields[1])
        rss[pid] = int(fields[21]) * PAGE
        ticks[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total_rss = total_pss = 0
    for pid, resident in rss.items():
        node = pid
        while node > 1:
            if node == root:
                total_rss += resident
                total_pss += _pss(pid)
                cpu[pid] = max(cpu.get(pid, 0.0), ticks[pid])
                break
            node = parents.get(node, 0)
    return total_rss, total_pss


def measure(command: list[str]) -> tuple[float, float, float, float, float]:
    """Run ``command``; return wall seconds, peak tree RSS and PSS in MB, tree CPU seconds, and
    the CPU seconds of its busiest process (the wall time it would take with a free core each).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_rss = peak_pss = 0
    cpu: dict[int, float] = {}
    while child.poll() is None:
        resident, proportional = _tree_memory(child.pid, cpu)
        peak_rss = max(peak_rss, resident)
        peak_pss = max(peak_pss, proportional)
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        error = child.stderr.read().decode() if child.stderr else ""
        raise SystemExit(f"{' '.join(command)} failed: {error.strip()[:400]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Reaped descendants count in RUSAGE_CHILDREN, but workers started by a fork server are the
    # server's children, and it is not reaped: add up the /proc samples too and keep the larger.
    reaped = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    total = max(reaped, sum(cpu.values()))
    return elapsed, peak_rss / (1 << 20), peak_pss / (1 << 20), total, max(cpu.values(), default=0.0)


def _count(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        handle.seek(24)
        while True:
            head = handle.read(16)
            if len(head) < 16:
                return count
            handle.seek(int.from_bytes(head[8:12], "little"), 1)
            count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--capture", type=Path, default=OUT / "modbus_1m.pcap")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-replay", action="store_true")
    args = parser.parse_args()
    capture: Path = args.capture
    if not capture.is_file():
        print(f"workers: {capture} missing (bench/bench.py builds it), skipped")
        return
    packets = _count(capture)
    counts = [int(text) for text in args.workers.split(",")]
    print(f"workers: {packets:,} packets in {capture.name}, {os.cpu_count()} cores", flush=True)
    learned = OUT / "workers_baseline.yaml"
    # Learned afresh each run: a baseline (and its load cache) from an older version would time
    # another detection, or a first replay that rebuilds the cache.
    if not args.skip_replay:
        state = OUT / "workers_learn_state"
        shutil.rmtree(state, ignore_errors=True)
        subprocess.run(
            [CLI, "baseline", "learn", "--state", str(state), "-o", str(learned), str(capture)],
            check=True,
            capture_output=True,
        )
    jobs: list[tuple[str, int]] = [("dissect", n) for n in counts]
    if not args.skip_replay:
        jobs += [("replay", n) for n in counts]
    best: dict[tuple[str, int], float] = {}
    for kind, workers in jobs:
        for attempt in range(1, args.repeat + 1):
            if kind == "dissect":
                command = [CLI, "dissect", "--workers", str(workers), "-o", "/dev/null", str(capture)]
            else:
                state = OUT / "workers_replay_state"
                shutil.rmtree(state, ignore_errors=True)
                command = [
                    CLI,
                    "replay",
                    "--workers",
                    str(workers),
                    "--state",
                    str(state),
                    "--baseline",
                    str(learned),
                    "--no-events",
                    str(capture),
                ]
            load = os.getloadavg()[0]
            seconds, rss, pss, cpu, busiest = measure(command)
            best[kind, workers] = min(best.get((kind, workers), seconds), seconds)
            print(
                f"  {kind:<8} --workers {workers}  run {attempt}: {seconds:7.2f} s  "
                f"{packets / seconds:>9,.0f} pkt/s  peak {rss:6.0f} MB RSS {pss:6.0f} MB PSS  "
                f"CPU {cpu:6.1f} s, busiest process {busiest:6.1f} s  (load {load:.2f} before)",
                flush=True,
            )
    for kind in ("dissect", "replay"):
        if (kind, 1) in best:
            for workers in counts[1:]:
                if (kind, workers) in best:
                    print(
                        f"  {kind}: best of {args.repeat}, {workers} workers vs 1: "
                        f"{best[kind, 1] / best[kind, workers]:.2f}x",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
