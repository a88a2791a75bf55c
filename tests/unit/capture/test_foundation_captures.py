"""The reader against tshark, frame by frame, on every capture in pcaps/foundation.

tshark is an independent reader of the same files: frame count, wire length, captured length and
time of every frame must agree (tshark shows no time for a simple packet block; ours is 0.0).  For
a damaged file both stop at the damage.  Also: the text file named .pcap is refused with one clear
error (the golden harness cannot express an error at open), and MANIFEST describes each file.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from ics_monitor.capture import open_capture, open_captures
from ics_monitor.core.errors import CaptureError
from tests.conftest import PCAPS, need_tool

FOUNDATION = PCAPS / "foundation"
CAPTURES = sorted(p for p in FOUNDATION.glob("*") if p.name != "not_a_capture.pcap")


def _ours(path: Path) -> list[tuple[float, int, int]]:
    frames = []
    try:
        for ts, _link_type, data, wire_len in open_capture(str(path)):
            frames.append((ts, wire_len, len(data)))
    except CaptureError:
        pass  # damaged files: compared up to the damage, where tshark stops too
    return frames


def _tshark(path: Path) -> list[tuple[float | None, int, int]]:
    tshark = need_tool("tshark")
    # tshark exits non-zero on a damaged file after printing every frame before the damage.
    result = subprocess.run(
        [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "separator=,"]
        + ["-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len"],
        capture_output=True,
        text=True,
        check=False,
    )
    frames = []
    for line in result.stdout.splitlines():
        time_text, wire_len, cap_len = line.split(",")
        frames.append((float(time_text) if time_text else None, int(wire_len), int(cap_len)))
    return frames


@pytest.mark.tshark
@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_every_frame_agrees_with_tshark(capture: Path) -> None:
    theirs = _tshark(capture)
    ours = _ours(capture)
    assert len(ours) == len(theirs) > 0
    for number, ((ts, wire_len, cap_len), (their_ts, their_wire, their_cap)) in enumerate(
        zip(ours, theirs, strict=True), start=1
    ):
        assert (wire_len, cap_len) == (their_wire, their_cap), f"frame {number}"
        expected_ts = 0.0 if their_ts is None else their_ts
        assert ts == pytest.approx(expected_ts, abs=1e-6), f"frame {number}"


def test_not_a_capture_is_one_clear_error() -> None:
    path = str(FOUNDATION / "not_a_capture.pcap")
    with pytest.raises(CaptureError) as caught:
        open_captures([path])
    assert caught.value.offset is None
    assert str(caught.value) == f"{path}: not a pcap or pcapng capture (unknown magic number)"


def test_manifest_describes_every_foundation_capture() -> None:
    rows = {}
    for line in (PCAPS / "MANIFEST").read_text().splitlines():
        if line and not line.startswith("#"):
            digest, rel_path, generator, _content = line.split("\t")
            rows[rel_path] = (digest, generator)
    files = sorted(FOUNDATION.glob("*"))
    assert files
    for path in files:
        digest, generator = rows[f"foundation/{path.name}"]
        assert generator == "generators/foundation/make_foundation.py"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path.name
