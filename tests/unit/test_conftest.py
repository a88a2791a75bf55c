"""The suite's own plumbing: a test run stopped by SIGTERM still tears its fixtures down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO

_SESSION = """
import pathlib, time, pytest

MARKS = pathlib.Path({marks!r})


@pytest.fixture(scope="session")
def node():
    yield
    (MARKS / "torn_down").write_text("yes")


def test_long(node):
    (MARKS / "started").write_text("yes")
    time.sleep(60)
"""


def test_a_run_stopped_by_sigterm_tears_its_session_fixtures_down(tmp_path: Path) -> None:
    """As a CI time limit stops a run: the session fixture (as the one that starts an
    Elasticsearch node in a session of its own) runs its teardown; without the suite's handler
    the process dies at once and the node outlives it."""
    (tmp_path / "test_session.py").write_text(_SESSION.format(marks=str(tmp_path)))
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
        ]
        + [str(tmp_path / "test_session.py")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "started").exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    assert (tmp_path / "started").exists(), run.communicate()[0].decode()
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=30)[0].decode()
    assert (tmp_path / "torn_down").read_text() == "yes", output
    assert run.returncode == 2, output  # pytest's "interrupted"
