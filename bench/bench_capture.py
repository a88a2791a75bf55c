"""Capture loop cost: one ``recvmsg`` per frame against the TPACKET_V3 ring (and pcapy-ng if present).

A veth pair ``capa``/``capb`` inside a namespace of its own (``pcaps/generators/demo/netlab.py``
makes and removes it); tcpreplay sends the first ``--frames`` frames of a capture
(``.bench/modbus_1m.pcap`` by default) out of ``capa``; a consumer process sniffs ``capb`` and does
nothing with a frame but count it (``for frame in source``), so the figures are the capture loop's
alone.  Two modes per method:

    prefilled   the consumer opens its socket, tcpreplay sends everything (``--prefill`` frames, few
                enough for the 32 MiB socket buffer and the 64 MiB ring), then the consumer reads them
                all: CPU microseconds per frame of the loop with nobody competing, and frames/s
                of reading (wall clock)
    topspeed    tcpreplay ``--topspeed`` while the consumer reads: frames/s over the capture's span
                (kernel timestamps), CPU microseconds per frame, and the kernel's drop count

Printed per method and mode: frames read, kernel packets and drops, CPU us/frame, frames/s.  Methods:

    recvmsg     LiveSource(ring_size=0): one recvmsg_into per frame (the fallback)
    ring        LiveSource(): the TPACKET_V3 ring (the default)
    pcapy       pcapy-ng next_batch (libpcap's own TPACKET_V3 ring), frames built as the same tuples
                (caplen as wire length: next_batch does not give it); only if ``import pcapy`` works
    pcapy-raw   next_batch alone, no per-frame Python (the floor of any Python loop)

Needs root (a network namespace), iproute2 and tcpreplay.  Touches nothing outside its namespace,
kills only processes it started.  Bounded: about a minute with the defaults.

usage: sudo .venv/bin/python bench/bench_capture.py [--frames 200000] [--prefill 30000]
       [--methods recvmsg,ring,pcapy,pcapy-raw] [--capture PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO / ".bench" / "modbus_1m.pcap"
NETLAB_PATH = REPO / "pcaps" / "generators" / "demo" / "netlab.py"
PREFIX = "icscap"
SENDER, SNIFFER = "capa", "capb"
IDLE_TICKS = 3  # quiet on_ticks (half a second each) with no new frame: the sender is done


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---- the consumer (runs in the namespace: ``bench_capture.py consume METHOD IFACE MODE``) ------


def consume_live_source(interface: str, ring: bool, prefilled: bool) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from ics_monitor.capture.live import LiveSource
    from ics_monitor.capture.ring import DEFAULT_RING_SIZE

    source = LiveSource([interface], duration=120.0, ring_size=DEFAULT_RING_SIZE if ring else 0)
    idle = [0, -1]

    def on_tick(now: float, quiet: bool) -> None:
        # The end: quiet for IDLE_TICKS ticks in a row after frames came.
        idle[0] = idle[0] + 1 if quiet and count > 0 and count == idle[1] else 0
        idle[1] = count
        if idle[0] >= IDLE_TICKS:
            source.stop()

    source.on_tick = on_tick
    count = 0
    first = last = 0.0
    print("ready", flush=True)
    # Prefilled: the parent says "go N" once N frames were sent; reading ends at the N-th.
    target = int(sys.stdin.readline().split()[1]) if prefilled else 0
    started = cpu_seconds()
    wall = time.perf_counter()
    spent = -1.0
    for frame in source:
        if not count:
            first = frame[0]
        count += 1
        last = frame[0]
        if count == target:
            # Timed here: leaving the loop closes the source, and freeing a ring waits for the kernel.
            spent = cpu_seconds() - started
            wall = time.perf_counter() - wall
            break
    if spent < 0:
        spent = cpu_seconds() - started
        wall = time.perf_counter() - wall
    if prefilled:
        first, last = 0.0, wall  # the rate of reading, not of sending
    counters = source.statistics()[interface]
    return {
        "frames": count,
        "cpu": spent,
        "span": last - first,
        "kernel_packets": counters["kernel_packets"],
        "kernel_drops": counters["kernel_drops"],
    }


def consume_pcapy(interface: str, raw: bool, prefilled: bool) -> dict[str, Any]:
    import select
    import struct

    import pcapy

    reader = pcapy.create(interface)
    reader.set_snaplen(262144)
    reader.set_promisc(1)
    reader.set_timeout(50)
    reader.set_buffer_size(64 << 20)
    reader.activate()
    reader.setnonblock(1)  # a blocking next_batch waits forever on an idle link
    poller = select.poll()
    poller.register(reader.getfd(), select.POLLIN)
    meta_record = struct.Struct("=IIII")  # sec, usec, offset, caplen (next_batch's packed records)
    print("ready", flush=True)
    target = int(sys.stdin.readline().split()[1]) if prefilled else -1
    count = 0
    first = last = 0.0
    empty = 0
    started = cpu_seconds()
    wall = time.perf_counter()
    while (empty < 30 or not count) and count != target:  # 30 empty polls of 50 ms after frames: done
        data, meta = reader.next_batch(4096)
        if not meta:
            if not poller.poll(50):
                empty += 1
            continue
        empty = 0
        if raw:
            records = len(meta) // 16
            if not count:
                first = meta_record.unpack_from(meta)[0] + meta_record.unpack_from(meta)[1] / 1e6
            count += records
            seconds, micro, _offset, _caplen = meta_record.unpack_from(meta, (records - 1) * 16)
            last = seconds + micro / 1e6
            continue
        frames = [
            (seconds + micro / 1e6, 1, data[offset : offset + caplen], caplen)
            for seconds, micro, offset, caplen in meta_record.iter_unpack(meta)
        ]
        for frame in frames:
            if not count:
                first = frame[0]
            count += 1
            last = frame[0]
    spent = cpu_seconds() - started
    wall = time.perf_counter() - wall
    received, dropped, _interface_dropped = reader.stats()
    return {
        "frames": count,
        "cpu": spent,
        "span": wall if prefilled else last - first,
        "kernel_packets": received,
        "kernel_drops": dropped,
    }


def consume(method: str, interface: str, mode: str) -> None:
    prefilled = mode == "prefilled"
    if method in ("recvmsg", "ring"):
        result = consume_live_source(interface, method == "ring", prefilled)
    else:
        result = consume_pcapy(interface, method == "pcapy-raw", prefilled)
    print(json.dumps(result), flush=True)


# ---- the driver ---------------------------------------------------------------------------------


def _bench_live() -> Any:
    """bench_live.py beside this file: its lab loader and capture slicer serve here too."""
    sys.path.insert(0, str(REPO / "bench"))
    import bench_live

    return bench_live


def successful_packets(report: str) -> int:
    """tcpreplay's "Successful packets:" figure."""
    for line in report.splitlines():
        if "Successful packets:" in line:
            return int(line.split(":")[1])
    raise SystemExit(f"bench_capture: no packet count in tcpreplay's report: {report!r}")


def pcapy_available() -> bool:
    return importlib.util.find_spec("pcapy") is not None


def run_one(net: Any, netlab: Any, method: str, mode: str, capture: Path) -> dict[str, Any]:
    namespace = net.namespace(netlab.SWITCH)
    consumer = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, __file__, "consume", method, SNIFFER, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert consumer.stdout is not None and consumer.stdin is not None
        if consumer.stdout.readline().strip() != "ready":
            raise SystemExit(f"bench_capture: the {method} consumer did not start")
        replay = ["tcpreplay", "-q", "--topspeed", "-i", SENDER, str(capture)]
        sent = net.run(netlab.SWITCH, replay, timeout=300)
        if mode == "prefilled":
            time.sleep(0.5)
            consumer.stdin.write(f"go {successful_packets(sent.stdout)}\n")
            consumer.stdin.flush()
        output, _ = consumer.communicate(timeout=180)
    finally:
        if consumer.poll() is None:
            consumer.kill()
            consumer.wait()
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    result["sent"] = successful_packets(sent.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=200_000, help="frames sent in the topspeed mode")
    parser.add_argument("--prefill", type=int, default=30_000, help="frames sent before reading")
    parser.add_argument("--methods", default="recvmsg,ring,pcapy,pcapy-raw")
    parser.add_argument("--capture", type=Path, default=CAPTURE)
    parser.add_argument("--repeat", type=int, default=1, help="runs per method and mode (best is printed)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_capture: a network namespace needs root")
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            sys.exit(f"bench_capture: missing {tool} (apt-get install iproute2 tcpreplay)")
    if not arguments.capture.is_file():
        sys.exit(f"bench_capture: no capture {arguments.capture} (make bench builds it)")
    methods = arguments.methods.split(",")
    if not pcapy_available():
        skipped = [method for method in methods if method.startswith("pcapy")]
        methods = [method for method in methods if not method.startswith("pcapy")]
        if skipped:
            print("pcapy-ng is not importable: pcapy methods skipped (PYTHONPATH=... to add a copy)")
    live = _bench_live()
    netlab = live.load_module("ics_netlab", NETLAB_PATH)
    slice_capture = live.slice_capture
    with tempfile.TemporaryDirectory(prefix="bench_capture.") as scratch, netlab.NetLab(PREFIX) as net:
        namespace = net.namespace(netlab.SWITCH)
        for argv in (
            ["link", "add", SENDER, "type", "veth", "peer", "name", SNIFFER],
            ["link", "set", SENDER, "up"],
            ["link", "set", SNIFFER, "up"],
        ):
            subprocess.run(["ip", "-n", namespace, *argv], check=True)
        captures = {
            "prefilled": slice_capture(arguments.capture, Path(scratch, "prefill.pcap"), arguments.prefill),
            "topspeed": slice_capture(arguments.capture, Path(scratch, "topspeed.pcap"), arguments.frames),
        }
        print(
            f"{'method':10} {'mode':9} {'sent':>8} {'read':>8} {'kernel':>8} {'drops':>7} {'us/frame':>9} "
            f"{'frames/s':>10}"
        )
        for mode, capture in captures.items():
            for method in methods:
                runs = [run_one(net, netlab, method, mode, capture) for _ in range(arguments.repeat)]
                best = min(runs, key=lambda run: run["cpu"] / max(run["frames"], 1))
                per_frame = best["cpu"] / max(best["frames"], 1) * 1e6
                rate = best["frames"] / best["span"] if best["span"] > 0 else 0.0
                print(
                    f"{method:10} {mode:9} {best['sent']:8d} {best['frames']:8d} {best['kernel_packets']:8d} "
                    f"{best['kernel_drops']:7d} {per_frame:9.2f} {rate:10.0f}",
                    flush=True,
                )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "consume":
        consume(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        main()
