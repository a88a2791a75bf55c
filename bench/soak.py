"""Soak: ``ics-monitor live`` on a mirrored link for 10 minutes of steady traffic; is its memory flat?

The lab of ``bench_live.py`` plus an ``eng`` host: a pymodbus 3.16 server in ``plc``, a pymodbus
client in ``hmi`` polling it (FC3 holding 0-9 and FC1 coils 0-7 every 100 ms on one connection, an
FC6 setpoint write every 5 s), and tcpreplay in ``eng`` looping a 20k-frame slice of the 1M
Modbus polling capture at ``--pps`` without end (about 55 client hosts whose connections open and
close again on every loop, as on a plant network whose HMIs and historians reconnect).  The
monitor runs with protocol events on (every sink path), sniffing the span port.

Every ``--interval`` seconds it prints the monitor's RSS (VmRSS of /proc/PID/status) and CPU
time; at the end, the monitor's exit report (kernel counters, frames), and a verdict: flat when
the largest RSS of the second half is within 10 % of the largest of the first half.  Exits 1
when it is not flat.  Not for CI (``make soak``): it takes ``--minutes`` (10) of wall time.

Needs root, iproute2, tc and tcpreplay.  Must not touch the root namespace and must not kill
anything it did not start.  This file is also the Modbus peers' script (``soak.py modbus-server
IP`` / ``soak.py modbus-poller IP SECONDS``).

usage: sudo .venv/bin/python bench/soak.py [--minutes 10] [--interval 10] [--pps 1000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_live

PLC_IP = "10.79.0.11"
MODBUS_PORT = 502
POLL_SECONDS = 0.1
WRITE_EVERY = 50  # polls: one setpoint write every 5 s
SLICE_PACKETS = 20_000
PREFIX = "icssoak"
FLAT_TOLERANCE = 1.10


# ---- the Modbus peers ------------------------------------------------------------------------


def modbus_server(address: str) -> None:
    """pymodbus 3.16 TCP server, unit 1, 100 holding registers and coils; runs until killed."""
    import asyncio

    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.server import StartAsyncTcpServer

    device = ModbusDeviceContext(
        hr=ModbusSequentialDataBlock(1, list(range(100))), co=ModbusSequentialDataBlock(1, [False] * 100)
    )
    context = ModbusServerContext(devices=device, single=True)
    asyncio.run(StartAsyncTcpServer(context=context, address=(address, MODBUS_PORT)))


def modbus_poller(address: str, seconds: float) -> int:
    """Poll as an HMI does for ``seconds``; reconnects after an error; prints the counts at the end."""
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(address, port=MODBUS_PORT, timeout=2, retries=0)
    deadline = time.monotonic() + seconds
    polls = errors = 0
    next_poll = time.monotonic()
    while time.monotonic() < deadline:
        try:
            if not client.connected:
                client.connect()
            client.read_holding_registers(0, count=10, device_id=1)
            client.read_coils(0, count=8, device_id=1)
            if polls % WRITE_EVERY == 0:
                client.write_register(10, 1400 + polls // WRITE_EVERY % 80, device_id=1)
            polls += 1
        except Exception as exc:  # a poller keeps polling, as an HMI would; the count is reported
            errors += 1
            print(f"error: {exc}", flush=True)
            client.close()
            time.sleep(1)
        next_poll += POLL_SECONDS
        time.sleep(max(0.0, next_poll - time.monotonic()))
    client.close()
    print(f"done, {polls} polls, {errors} errors", flush=True)
    return 1 if errors else 0


# ---- the soak --------------------------------------------------------------------------------


def rss_megabytes(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def verdict(samples: list[float]) -> tuple[bool, float, float]:
    """Flat when the second half's largest RSS is within 10 % of the first half's largest."""
    half = len(samples) // 2
    first, second = max(samples[:half]), max(samples[half:])
    return second <= first * FLAT_TOLERANCE, first, second


def soak(minutes: float, interval: float, pps: int) -> int:
    bench_live.need_tools("ip", "tc", "tcpreplay")
    netlab = bench_live.load_module("ics_netlab", bench_live.NETLAB_PATH)
    seconds = minutes * 60
    peer = [sys.executable, "-u", str(Path(__file__).resolve())]
    with tempfile.TemporaryDirectory(prefix="ics-soak-") as temporary:
        work = Path(temporary)
        loop = bench_live.slice_capture(bench_live.ensure_capture(), work / "loop.pcap", SLICE_PACKETS)
        net = netlab.NetLab(PREFIX)
        net.open()
        try:
            net.add_bridge("ot")
            for name, last_octet in (("plc", 11), ("hmi", 21), ("eng", 22)):
                leg = netlab.Leg("ot", f"02:00:00:79:00:{last_octet}", f"10.79.0.{last_octet}/24")
                net.add_host(netlab.Host(name, (leg,)))
            span = net.add_span(["ot"])
            live_log = work / "live.log"
            monitor = bench_live.start_monitor(net, netlab, span, work / "state", live_log, events=True)
            net.popen("plc", [*peer, "modbus-server", PLC_IP], log=work / "server.log")
            time.sleep(2)  # the server's start; the poller reconnects anyway
            poller = net.popen("hmi", [*peer, "modbus-poller", PLC_IP, str(seconds)], log=work / "poller.log")
            replay_log = work / "tcpreplay.log"
            replay = net.popen(
                "eng",
                ["tcpreplay", "-i", "eth0", f"--pps={pps}", "--loop=0", "--preload-pcap", str(loop)],
                log=replay_log,
            )
            print(
                f"soak: {minutes:g} min; pymodbus polling every {POLL_SECONDS * 1000:.0f} ms, tcpreplay "
                f"{SLICE_PACKETS:,}-frame loop at {pps:,} pps; RSS every {interval:g} s",
                flush=True,
            )
            print(f"  {'t s':>6} {'RSS MB':>8} {'cpu s':>7}", flush=True)
            started = time.monotonic()
            samples: list[float] = []
            while time.monotonic() - started < seconds:
                time.sleep(interval - (time.monotonic() - started) % interval)
                if monitor.poll() is not None:
                    print(live_log.read_text(errors="replace"))
                    return 2
                samples.append(rss_megabytes(monitor.pid))
                cpu = bench_live.cpu_seconds(monitor.pid)
                print(f"  {time.monotonic() - started:>6.0f} {samples[-1]:>8.1f} {cpu:>7.1f}", flush=True)
            net.stop(replay, signal.SIGINT)
            with contextlib.suppress(Exception):
                poller.wait(timeout=30)
            bench_live.wait_drained(net, netlab, timeout=60, pid=monitor.pid)
            code = net.stop(monitor, signal.SIGINT, grace=120)
            report = live_log.read_text(errors="replace")
            seen = bench_live.number(bench_live.EXIT_KERNEL, report, 1)
            dropped = bench_live.number(bench_live.EXIT_KERNEL, report, 2)
            frames = bench_live.number(bench_live.EXIT_FRAMES, report)
            print(
                f"monitor: exit {code}; {seen:,} frames seen by the kernel, {dropped:,} dropped, "
                f"{frames:,} analysed"
            )
            print("poller:", (work / "poller.log").read_text(errors="replace").strip().splitlines()[-1:])
            print("tcpreplay:", " ".join(replay_log.read_text(errors="replace").split())[-240:])
        finally:
            net.close()
    flat, first, second = verdict(samples)
    print(
        f"verdict: {'FLAT' if flat else 'GROWING'}: largest RSS {first:.1f} MB in the first half, "
        f"{second:.1f} MB in the second ({(second / first - 1) * 100:+.1f} %, limit +10 %)"
    )
    return 0 if flat else 1


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "modbus-server":
        modbus_server(sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "modbus-poller":
        sys.exit(modbus_poller(sys.argv[2], float(sys.argv[3])))
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument("--pps", type=int, default=1000, help="tcpreplay rate")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("soak: network namespaces need root")
    sys.exit(soak(args.minutes, args.interval, args.pps))


if __name__ == "__main__":
    main()
