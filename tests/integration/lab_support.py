"""What every test on the namespace lab shares: loading the lab, opening it, waiting, reading records.

The lab itself is ``pcaps/generators/demo/netlab.py`` (namespaces joined through a bridge, a tc
mirred copy of every frame to a span veth); tests open it under a prefix of their own, so that
several modules can run one after another without meeting each other's namespaces.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import REPO, need_tool

NETLAB_PATH = REPO / "pcaps" / "generators" / "demo" / "netlab.py"


def load_netlab() -> Any:
    spec = importlib.util.spec_from_file_location("ics_netlab", NETLAB_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ics_netlab"] = module
    spec.loader.exec_module(module)
    return module


def open_lab(prefix: str, tools: Iterable[str] = ("ip", "tc", "tcpdump")) -> Iterator[tuple[Any, Any]]:
    """For a fixture: ``(netlab module, open lab)``, closed afterwards; skip only if the kernel refuses."""
    for tool in tools:
        need_tool(tool)
    netlab = load_netlab()
    try:
        instance = netlab.NetLab(prefix)
        instance.open()
    except netlab.LabError as exc:
        pytest.skip(f"the kernel refuses network namespaces here: {exc}")
    try:
        yield netlab, instance
    finally:
        instance.close()


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def modbus_records_in(path: Path) -> int:
    """Modbus records in the capture ``path`` so far (one still being written is read up to its end)."""
    from ics_monitor.capture import open_captures
    from ics_monitor.config import Config
    from ics_monitor.core.errors import CaptureError
    from ics_monitor.dissect import default_registry
    from ics_monitor.pipeline import Pipeline
    from ics_monitor.sinks.memory import ListSink

    sink = ListSink()
    try:
        Pipeline(Config(), default_registry(), event_sinks=[sink]).run(open_captures([str(path)]))
    except CaptureError:  # not even a whole file header yet
        return 0
    return sum(1 for record in sink.records if record.event_type == "modbus")


def settled(path: Path, quiet: float = 1.5, modbus: int = 0) -> bool:
    """True once ``path`` holds frames (at least ``modbus`` Modbus records) and its size has not
    changed for ``quiet`` seconds.  A sniffer starved of CPU by a busy test run can be quiet for
    longer than ``quiet`` with frames still queued for it: the count waits for those."""
    if modbus and modbus_records_in(path) < modbus:
        return False
    size = path.stat().st_size
    deadline = time.monotonic() + quiet
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if path.stat().st_size != size:
            return False
    return size > 24  # more than the pcap file header


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def read_records(path: Path, event_type: str) -> list[dict[str, Any]]:
    return [record for record in read_jsonl(path) if record.get("event_type") == event_type]


def replay_capture(capture: Path, state: Path) -> None:
    """``ics-monitor replay CAPTURE --state STATE`` (the reference a live run is compared with)."""
    replay = subprocess.run(
        [sys.executable, "-c", "from ics_monitor.cli.app import main; main()", "replay", str(capture),
         "--state", str(state)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
