"""Live load test: tcpreplay onto a mirrored link at rising rates, ``ics-monitor live`` on the SPAN port.

The lab of ``pcaps/generators/demo/netlab.py`` (namespaces ``plc`` and ``hmi`` on a bridge in
``switch``, tc mirred copying every frame that enters the bridge to a span veth).  tcpreplay runs
inside ``hmi`` and sends a large capture (``.bench/modbus_polling_1m.pcap``, built by
``bench.py`` if missing) out of its ``eth0`` at a fixed ``--pps``; the bridge's ingress mirror
puts every frame on the span port, where a fresh ``ics-monitor live`` (full analysis: inventory,
always-on detectors, SQLite store; protocol events not written, as ``bench.py``'s replay line)
listens.  Per rate it sends ``rate x --window`` frames, waits until the monitor's socket queue is
empty (``Rmem`` of ``/proc/net/packet`` in the switch namespace), stops the monitor with SIGINT and
reads its exit report.  Printed per rate:

    sent        frames tcpreplay put on hmi's eth0 ("Successful packets")
    seen        frames the kernel delivered to the monitor's packet socket (tp_packets)
    dropped     of those, dropped because the socket buffer was full (tp_drops)
    analysed    frames the pipeline processed
    cpu         the monitor's CPU seconds during the run

A rate passes when nothing was lost: dropped 0 and analysed == sent.  It stops after two failing
rates; the last line is the highest passing rate.  The receive ring (64 MiB) holds several
hundred thousand small frames, so a rate above the sustained analysis rate can pass a short
window: read the ``cpu`` column as well (frames / cpu seconds is the analysis rate).  A rate
whose window needs more frames than the capture holds sends the whole capture once.  Bounded:
about 2 minutes with the default rates.

Needs root (namespaces), iproute2, tc and tcpreplay (Debian package).  Must not touch the root
namespace and must not kill anything it did not start (the lab stops its own processes).

usage: sudo .venv/bin/python bench/bench_live.py [--rates 5000,10000,...] [--window 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / ".bench"
CAPTURE = OUT / "modbus_polling_1m.pcap"
TEMPLATE = REPO / "pcaps" / "modbus" / "pymodbus_polling.pcap"
NETLAB_PATH = REPO / "pcaps" / "generators" / "demo" / "netlab.py"
CLI = [sys.executable, "-c", "from ics_monitor.cli.app import main; main()"]
DEFAULT_RATES = "10000,20000,40000,60000,80000,100000,120000,150000,200000,250000"
PREFIX = "icsload"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load_module(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ensure_capture(path: Path = CAPTURE, packets: int = 1_000_000) -> Path:
    """The 1M-packet Modbus polling capture of ``make bench``; built the same way when missing."""
    if not path.is_file():
        print(f"building {path} ({packets:,} packets from {TEMPLATE.name})", flush=True)
        OUT.mkdir(exist_ok=True)
        load_module("ics_bench", REPO / "bench" / "bench.py").build(TEMPLATE, path, packets)
    return path


def slice_capture(source: Path, target: Path, packets: int) -> Path:
    """The first ``packets`` records of a classic pcap file (header kept), streamed."""
    with source.open("rb") as reader, target.open("wb") as writer:
        header = reader.read(24)
        little = header[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
        writer.write(header)
        for _ in range(packets):
            record = reader.read(16)
            if len(record) < 16:
                break
            length = int.from_bytes(record[8:12], "little" if little else "big")
            writer.write(record + reader.read(length))
    return target


def need_tools(*names: str) -> None:
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        sys.exit(f"bench_live: missing {', '.join(missing)} (apt-get install iproute2 tcpreplay)")
    if os.geteuid() != 0:
        sys.exit("bench_live: network namespaces need root")


def make_lab(netlab: Any, prefix: str) -> tuple[Any, str]:
    """The lab: ``plc`` and ``hmi`` on bridge ``ot``, every host port mirrored to the span port."""
    net = netlab.NetLab(prefix)
    net.open()
    net.add_bridge("ot")
    net.add_host(netlab.Host("plc", (netlab.Leg("ot", "02:00:00:79:00:11", "10.79.0.11/24"),)))
    net.add_host(netlab.Host("hmi", (netlab.Leg("ot", "02:00:00:79:00:21", "10.79.0.21/24"),)))
    return net, net.add_span(["ot"])


def start_monitor(net: Any, netlab: Any, span: str, state: Path, log: Path, events: bool) -> Any:
    argv = [*CLI, "live", "-i", span, "--state", str(state), "--no-events" if not events else "--events"]
    monitor = net.popen(netlab.SWITCH, argv, log=log)
    deadline = time.monotonic() + 60
    while "listening on" not in log.read_text(errors="replace"):
        if monitor.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the monitor did not start: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    return monitor


def queued_bytes(net: Any, netlab: Any) -> int:
    """Bytes waiting in the switch namespace's packet sockets (``Rmem`` of /proc/net/packet)."""
    result = subprocess.run(
        ["ip", "netns", "exec", net.namespace(netlab.SWITCH), "cat", "/proc/net/packet"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    column = lines[0].split().index("Rmem")
    return sum(int(line.split()[column]) for line in lines[1:] if line.strip())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (``ip netns exec`` execs, so it is the monitor)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_drained(net: Any, netlab: Any, timeout: float, pid: int | None = None) -> bool:
    """Wait until the monitor has caught up for 0.6 s; False on timeout.

    Caught up: the packet sockets' queues are empty and, with ``pid``, the monitor is idle (under
    5% of a core).  The queue alone cannot tell with the receive ring: frames wait in the mapped
    ring, not in the socket's queue, so only the reader's own work says it still has some.
    """
    deadline = time.monotonic() + timeout
    empty_since: float | None = None
    cpu = cpu_seconds(pid) if pid is not None else 0.0
    while time.monotonic() < deadline:
        time.sleep(0.2)
        used = cpu_seconds(pid) if pid is not None else cpu
        idle = used - cpu < 0.01  # of the 0.2 s slept
        cpu = used
        if idle and queued_bytes(net, netlab) == 0:
            empty_since = empty_since or time.monotonic()
            if time.monotonic() - empty_since >= 0.6:
                return True
        else:
            empty_since = None
    return False


EXIT_KERNEL = re.compile(r": ([\d,]+) packets seen by the kernel, ([\d,]+) dropped by the kernel")
# The run summary ("N frames, M flows, ...") or the final health line ("health: N frames, ...").
EXIT_FRAMES = re.compile(r"\b([\d,]+) frames, ")
SENT = re.compile(r"Successful packets:\s+(\d+)")
FAILED = re.compile(r"Failed packets:\s+(\d+)")


def number(pattern: re.Pattern[str], text: str, group: int = 1) -> int:
    """The figure in ``group`` of the last match of ``pattern`` (the exit report comes last)."""
    matches = list(pattern.finditer(text))
    if not matches:
        raise SystemExit(f"cannot find {pattern.pattern!r} in:\n{text}")
    return int(matches[-1].group(group).replace(",", ""))


@dataclass
class RateResult:
    rate: int
    sent: int
    send_failed: int
    send_seconds: float
    seen: int
    dropped: int
    analysed: int
    cpu: float

    @property
    def passed(self) -> bool:
        return self.dropped == 0 and self.send_failed == 0 and self.analysed >= self.sent > 0


def run_rate(
    net: Any, netlab: Any, span: str, capture: Path, rate: int, window: float, work: Path, events: bool
) -> RateResult:
    state = work / f"state-{rate}"
    log = work / f"live-{rate}.log"
    monitor = start_monitor(net, netlab, span, state, log, events)
    cpu_before = cpu_seconds(monitor.pid)
    count = int(rate * window)
    started = time.monotonic()
    replay = net.run(
        "hmi",
        ["tcpreplay", "-i", "eth0", f"--pps={rate}", f"--limit={count}", str(capture)],
        timeout=window * 4 + 60,
    )
    send_seconds = time.monotonic() - started
    drained = wait_drained(net, netlab, timeout=120, pid=monitor.pid)
    cpu = cpu_seconds(monitor.pid) - cpu_before
    code = net.stop(monitor, signal.SIGINT, grace=120)
    report = log.read_text(errors="replace")
    if code != 0 or not drained:
        raise SystemExit(f"monitor exit {code}, drained {drained}:\n{report}")
    shutil.rmtree(state, ignore_errors=True)
    return RateResult(
        rate=rate,
        sent=number(SENT, replay.stdout),
        send_failed=number(FAILED, replay.stdout),
        send_seconds=send_seconds,
        seen=number(EXIT_KERNEL, report, 1),
        dropped=number(EXIT_KERNEL, report, 2),
        analysed=number(EXIT_FRAMES, report),
        cpu=cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="packets per second, comma-separated")
    parser.add_argument("--window", type=float, default=8.0, help="seconds of traffic per rate")
    parser.add_argument("--events", action="store_true", help="also write protocol events (events.jsonl)")
    parser.add_argument("--capture", type=Path, default=None, help=f"default: {CAPTURE}")
    args = parser.parse_args()
    need_tools("ip", "tc", "tcpreplay")
    capture = args.capture or ensure_capture()
    netlab = load_module("ics_netlab", NETLAB_PATH)
    rates = [int(rate) for rate in args.rates.split(",")]
    print(
        f"live load test ({os.cpu_count()} cores): tcpreplay in hmi -> bridge (tc mirred) -> span -> "
        f"ics-monitor live; {capture.name}, {args.window:g} s per rate; "
        f"load average {os.getloadavg()[0]:.1f} (other work shares these cores)",
        flush=True,
    )
    print(
        f"  {'pps':>8} {'sent':>9} {'seen':>9} {'dropped':>8} {'analysed':>9} {'send s':>7} "
        f"{'cpu s':>6} {'frames/cpu s':>12}  verdict",
        flush=True,
    )
    results: list[RateResult] = []
    failures = 0
    with tempfile.TemporaryDirectory(prefix="ics-bench-live-") as temporary:
        work = Path(temporary)
        net, span = make_lab(netlab, PREFIX)
        try:
            for rate in rates:
                result = run_rate(net, netlab, span, capture, rate, args.window, work, args.events)
                results.append(result)
                print(
                    f"  {result.rate:>8,} {result.sent:>9,} {result.seen:>9,} {result.dropped:>8,} "
                    f"{result.analysed:>9,} {result.send_seconds:>7.1f} {result.cpu:>6.1f} "
                    f"{result.analysed / max(result.cpu, 0.01):>12,.0f}  "
                    + ("zero drops" if result.passed else "LOSS"),
                    flush=True,
                )
                failures = 0 if result.passed else failures + 1
                if failures >= 2:
                    break
        finally:
            net.close()
    best = max((r.rate for r in results if r.passed), default=None)
    if best is None:
        print("highest rate with zero drops: none of the rates tried")
    else:
        print(f"highest rate with zero drops: {best:,} pps ({args.window:g} s bursts)")


if __name__ == "__main__":
    main()
