"""The capture's clock as read: a step back and a long gap are anomalies, once each, the same in one
process and with workers (worker 0 reads every frame and reports them)."""

from __future__ import annotations

import json
import multiprocessing
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.shard import LiveShard
from tests.conftest import REPO

CLI = [str(REPO / ".venv" / "bin" / "ics-monitor")]
SOURCE = REPO / "pcaps" / "demo" / "plant_normal.pcap"


def _retimed(target: Path, shift: dict[int, float]) -> Path:
    """``SOURCE`` (little-endian microsecond pcap) with frames from N on moved by ``shift[N]`` seconds."""
    raw = SOURCE.read_bytes()
    out = [raw[:24]]
    position, frame, moved = 24, 0, 0.0
    while position + 16 <= len(raw):
        sec, usec, incl, orig = struct.unpack_from("<IIII", raw, position)
        frame += 1
        moved = shift.get(frame, moved)
        ts = sec + usec / 1e6 + moved
        whole = int(ts)
        out.append(struct.pack("<IIII", whole, round((ts - whole) * 1e6) % 1_000_000, incl, orig))
        out.append(raw[position + 16 : position + 16 + incl])
        position += 16 + incl
    target.write_bytes(b"".join(out))
    return target


def _clock_anomalies(capture: Path, output: Path, workers: int) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*CLI, "dissect", "--workers", str(workers), "-o", str(output), str(capture)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in output.read_text().splitlines()]
    return [r for r in records if r["event_type"] == "anomaly" and r["code"].startswith("capture.")]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_clock_step_back_and_a_gap_are_reported_once_each(tmp_path: Path, workers: int) -> None:
    # From frame 400 the clock is 30 s behind (set back), frames 400-599 all within that step;
    # from frame 600 it is 2 h ahead: a gap before frame 600.
    capture = _retimed(tmp_path / "retimed.pcap", {400: -30.0, 600: 7200.0})
    found = _clock_anomalies(capture, tmp_path / f"w{workers}.jsonl", workers)
    assert [(a["code"], a["frame"], a["severity"]) for a in found] == [
        ("capture.time_backwards", 400, "low"),
        ("capture.time_gap", 600, "info"),
    ]
    assert "the capture clock stepped back" in found[0]["detail"]
    assert found[0]["detail"].startswith("stamped 29.") or found[0]["detail"].startswith("stamped 30.")
    assert found[1]["detail"].startswith("the first frame after 72")


def test_a_capture_in_time_order_has_no_clock_anomaly(tmp_path: Path) -> None:
    assert _clock_anomalies(SOURCE, tmp_path / "plain.jsonl", 1) == []
    # A SPAN port's reordering (frames a few milliseconds apart swapped) is not a step back.
    capture = _retimed(tmp_path / "jitter.pcap", {100: -0.004, 101: 0.0})
    assert _clock_anomalies(capture, tmp_path / "jitter.jsonl", 1) == []


def test_frames_without_a_time_first_are_no_gap(tmp_path: Path) -> None:
    """pcapng simple packet blocks carry no time (0.0): read first, they are no clock to step from."""
    sec, usec = struct.unpack_from("<II", SOURCE.read_bytes(), 24)
    capture = _retimed(tmp_path / "untimed_first.pcap", {1: -(sec + usec / 1e6), 2: 0.0})
    assert _clock_anomalies(capture, tmp_path / "untimed.jsonl", 1) == []


class _Frames:
    """What a live source gives ``LiveShard``: frames, and the ``on_tick`` it sets."""

    def __init__(self, capture: Path) -> None:
        self.frames = list(open_captures([str(capture)]))
        self.on_tick: Any = None

    def __iter__(self) -> Any:
        return iter(self.frames)


def _live_clock_anomalies(capture: Path, index: int) -> list[Any]:
    batches: list[list[Any]] = []
    shard = LiveShard(
        Pipeline(Config(), default_registry()),
        _Frames(capture),
        index,
        multiprocessing.Value("q", 0),
        multiprocessing.Lock(),
        batches.append,
        None,
        False,
        lambda: None,
    )
    shard.run()
    items = [item for batch in batches for item in batch]
    assert [item[0] for item in items] == sorted(item[0] for item in items)  # the merge relies on it
    return [
        item[3]
        for item in items
        if getattr(item[3], "event_type", None) == "anomaly" and item[3].code.startswith("capture.")
    ]


def test_a_live_worker_0_reports_the_system_clock_set_back(tmp_path: Path) -> None:
    """Live, with workers: worker 0 watches its frames' times; a step back is reported once."""
    capture = _retimed(tmp_path / "retimed.pcap", {400: -30.0, 600: 7200.0})
    found = _live_clock_anomalies(capture, 0)
    # Not the gap: a fanout member's share of a link may be quiet for hours while others are busy.
    assert [(a.code, a.frame, a.severity) for a in found] == [("capture.time_backwards", 400, "low")]
    assert _live_clock_anomalies(capture, 1) == []
    assert _live_clock_anomalies(SOURCE, 0) == []
