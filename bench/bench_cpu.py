"""What two CPUs allow: per 1M-packet line, tshark's CPU against the CPU our replay needs.

tshark's ``io,phs`` runs in one process; a ``replay`` can beat it on a machine of N CPUs only if
its work, spread over them, takes under N times tshark's CPU time.  For each line (the files and
baselines ``bench.py`` makes, made here when missing) this runs, once each and in turn: tshark
``-q -z io,phs``; ``replay --no-events`` as ``make bench`` does (the default workers); and
``replay --workers 1`` (one process).  CPU is every process of the run's tree, read from /proc
(``bench_workers.measure``).  The last column is the bound: N x tshark's CPU over the one-process
CPU, where under 1 even a perfect split of today's work over the CPUs stays under tshark.

Usage: ``.venv/bin/python bench/bench_cpu.py [LINE,...]`` with lines among every_function,
polling, dnp3, s7comm, polling_plant, dnp3_plant, s7comm_plant (default: all).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_workers

import bench

# line -> (template name in bench.TEMPLATES, clients: None for a new client per copy)
LINES: dict[str, tuple[str, int | None]] = {
    "every_function": ("modbus", None),
    "polling": ("modbus_polling", None),
    "dnp3": ("dnp3", None),
    "s7comm": ("s7comm", None),
    "polling_plant": ("modbus_polling", bench.PLANT_CLIENTS),
    "dnp3_plant": ("dnp3", bench.PLANT_CLIENTS),
    "s7comm_plant": ("s7comm", bench.PLANT_CLIENTS),
}


def _prepared(line: str) -> tuple[Path, Path] | None:
    """The line's 1M capture and a learned state snapshot (made when missing), or None."""
    name, clients = LINES[line]
    template = next((p for p in bench.TEMPLATES[name][0] if p.is_file()), None)
    if template is None:
        return None
    bench.OUT.mkdir(exist_ok=True)
    big = bench.OUT / (f"{name}_1m.pcap" if clients is None else f"{name}_plant{clients}_1m.pcap")
    if not big.is_file():
        bench.build(template, big, 1_000_000, clients)
    state = bench.OUT / (f"{name}_state" if clients is None else f"{name}_plant_state")
    snapshot = state.with_name(state.name + ".learned")
    if not snapshot.is_dir():
        bench.learned_state(state, big)
    return big, snapshot


def main() -> None:
    wanted = sys.argv[1].split(",") if len(sys.argv) > 1 else list(LINES)
    unknown = [line for line in wanted if line not in LINES]
    if unknown:
        raise SystemExit(f"unknown line(s): {', '.join(unknown)}; known: {', '.join(LINES)}")
    cpus = os.cpu_count() or 1
    print(f"CPU per line ({cpus} CPUs): tshark io,phs, replay (default workers), replay in one process")
    for line in wanted:
        prepared = _prepared(line)
        if prepared is None:
            print(f"  {line}: no template capture present, skipped")
            continue
        big, snapshot = prepared
        tshark_wall, _, _, tshark_cpu, _ = bench_workers.measure(bench._phs(big))
        runs = []
        for extra in ([], ["--workers", "1"]):
            with tempfile.TemporaryDirectory() as scratch:
                state = Path(scratch) / "state"
                shutil.copytree(snapshot, state)
                wall, _, _, cpu, busiest = bench_workers.measure(
                    [bench.CLI, "replay", *extra, "--state", str(state), "--no-events", str(big)]
                )
            runs.append((wall, cpu, busiest))
        (wall, cpu, busiest), (one_wall, one_cpu, _) = runs
        print(
            f"  {line:15} tshark {tshark_wall:5.2f} s, CPU {tshark_cpu:5.2f} s | replay {wall:5.2f} s "
            f"({tshark_wall / wall:.2f}x), CPU {cpu:5.2f} s, busiest process {busiest:5.2f} s | one process "
            f"{one_wall:5.2f} s, CPU {one_cpu:5.2f} s | bound {cpus * tshark_cpu / one_cpu:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
