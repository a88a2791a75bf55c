"""Shared fixtures: where the repo, its captures and ../shared live; what tools exist."""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path
from types import FrameType

import pytest

from ics_monitor import compiled

REPO = Path(__file__).resolve().parents[1]

# An in-place mypyc build older than an edited source would test the old code: drop it (all of it,
# the modules share one library) and test the sources; `make compiled` builds it again.
_STALE = compiled.stale()
if _STALE:
    compiled.remove()


def _interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """A run stopped by SIGTERM (a CI time limit, ``kill``) tears down as Ctrl-C does.

    Session fixtures then stop what they started: the Elasticsearch node runs in a session of its
    own and, killed outright, pytest left it running (800 MB and a CPU's share) after the run.
    In every process that runs tests (each xdist worker loads this file too).
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        signal.signal(signal.SIGTERM, _interrupted)


def pytest_report_header() -> list[str]:
    """Say whether the per-packet modules run compiled: the suite covers both ways."""
    count = compiled.compiled_modules()
    lines = [
        f"ics-monitor hot path: {'compiled (mypyc), ' + str(count) + ' modules' if count else 'pure Python'}"
    ]
    if _STALE:
        lines.append(f"ics-monitor: removed a stale compiled build ({', '.join(_STALE[:3])} edited since)")
    return lines


PCAPS = REPO / "pcaps"
SHARED_PCAPS = REPO.parent / "shared" / "pcaps"


def shared_pcaps() -> Path:
    """Return ../shared/pcaps, or skip the test where it is absent (a user's clone)."""
    if not (SHARED_PCAPS / "CATALOG.md").is_file():
        pytest.skip(f"public captures not present at {SHARED_PCAPS}")
    return SHARED_PCAPS


def need_tool(name: str) -> str:
    """Return the path of a command-line tool, or skip where it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def all_shared_captures() -> list[Path]:
    """Every capture file under ../shared/pcaps (empty where absent)."""
    if not SHARED_PCAPS.is_dir():
        return []
    return sorted(
        p for p in SHARED_PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap") and p.is_file()
    )
