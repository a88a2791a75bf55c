"""Shared fixtures: where the repo, its captures and ../shared live; what tools exist."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
