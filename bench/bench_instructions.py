"""``make bench-instructions``: instructions executed by a one-process replay, counted by callgrind.

Wall-clock figures on a shared 2-CPU host drift by more than most single changes save: tshark's
own time on one file ran from 10.0 s to 14.3 s within minutes on the machine these lines were
written on.  An instruction count does not drift: the same code on the same capture executes the
same instructions (give or take a few hundred thousand for hash seeds and timing), so it can tell
a 2% change from noise where a stopwatch cannot.  It does not weigh cache misses or memory
traffic, so it complements ``make bench`` and does not replace it.

For each protocol this builds (in ``.bench/``, as ``bench.py`` does) a capture of ``--packets``
packets, either every copy of the template session a new client or ``--clients`` clients in turn,
learns a baseline on it, then replays it under ``valgrind --tool=callgrind`` in one process
(``--workers 1``, no events written) from that learned state.  It prints the total instruction
count and the package's most expensive functions (inclusive), and keeps each callgrind file for
``callgrind_annotate``.  Compare two commits by running it on each (a worktree with its own
``make compiled``).  About 4 minutes per 100,000 packets.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# bench.py beside this file (a script's directory is on sys.path).
from bench import CLI, OUT, TEMPLATES, build

_TOTAL = re.compile(r"^\s*([\d,]+) \(100\.0+%\)\s+PROGRAM TOTALS", re.MULTILINE)
# callgrind_annotate lines for compiled functions of the package: "  1,234 (12.34%)  file:CPyDef_name [lib]"
_FUNCTION = re.compile(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+\S*:CPyDef_(\S+) \[", re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--protocols", default="modbus,modbus_polling,dnp3,s7comm")
    parser.add_argument(
        "--clients", type=int, default=None, help="clients in turn (default: a new one per copy)"
    )
    parser.add_argument("--top", type=int, default=25, help="functions listed per capture")
    args = parser.parse_args()
    missing = [tool for tool in ("valgrind", "callgrind_annotate") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench_instructions: {', '.join(missing)} not installed (apt-get install valgrind)")
    OUT.mkdir(exist_ok=True)
    suffix = f"{args.packets // 1000}k" + (f"_plant{args.clients}" if args.clients else "")
    for name in args.protocols.split(","):
        if name not in TEMPLATES:
            raise SystemExit(f"bench_instructions: unknown protocol {name!r} (one of {', '.join(TEMPLATES)})")
        template = next((path for path in TEMPLATES[name][0] if path.is_file()), None)
        if template is None:
            print(f"{name}: no template capture present, skipped")
            continue
        capture = OUT / f"{name}_{suffix}.pcap"
        if not capture.is_file():
            build(template, capture, args.packets, args.clients)
        result = OUT / f"{name}_{suffix}.callgrind"
        total, functions = count(capture, result)
        print(f"{name} ({capture.name}): {total:,} instructions ({total / args.packets:,.0f} per packet)")
        for instructions, share, function in functions[: args.top]:
            print(f"  {instructions:>15,} {share:6.2f}%  {function}")
        print(f"  (callgrind_annotate --inclusive=yes {result})", flush=True)


def count(capture: Path, result: Path) -> tuple[int, list[tuple[int, float, str]]]:
    """Learn on ``capture``, replay it under callgrind; the total and the package's functions."""
    with tempfile.TemporaryDirectory(prefix="ics-bench-ir-") as work:
        state = Path(work) / "state"
        subprocess.run(
            [CLI, "baseline", "learn", "--state", str(state), str(capture)], check=True, capture_output=True
        )
        replay = [CLI, "replay", "--workers", "1", "--no-events", "--state", str(state), str(capture)]
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={result}",
                sys.executable,
                *replay,
            ],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"bench_instructions: replay under callgrind failed: {done.stderr.strip()[-400:]}"
            )
    report = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(result)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = _TOTAL.search(report)
    if match is None:
        raise SystemExit(f"bench_instructions: no total in callgrind_annotate's report of {result}")
    functions: dict[str, tuple[int, float]] = {}
    for instructions, share, function in _FUNCTION.findall(report):
        # The same function may be listed per file it was inlined into: keep its largest figure.
        value = int(instructions.replace(",", ""))
        if value > functions.get(function, (0, 0.0))[0]:
            functions[function] = (value, float(share))
    ranked = sorted(((v, s, f) for f, (v, s) in functions.items()), reverse=True)
    return int(match.group(1).replace(",", "")), ranked


if __name__ == "__main__":
    main()
