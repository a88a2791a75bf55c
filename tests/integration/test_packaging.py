"""The built wheel works without the repository: rules inside the package, detection runs.

An editable install finds ``rules/`` at the top of the repository; an installed wheel has no
repository beside it, so the build must put the rules in the package (setup.py).  This builds the
wheel, unpacks it into a directory of its own, and runs the main job from a directory outside the
repository with that copy first on the path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import PCAPS, REPO

pytestmark = pytest.mark.xdist_group("packaging")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The build backend (setuptools>=77) comes from the package index, as for any user's install.
    # Pure Python: the compiled modules are the same sources, which the suite runs in place after
    # ``make compiled``; compiling them again here would only add minutes.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "ICS_MONITOR_PURE": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (built,) = out.glob("ics_monitor-*.whl")
    return built


def test_wheel_carries_the_rules(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"ics_monitor/rules/{path.name}" for path in (REPO / "rules").glob("*.yaml")}
    assert shipped and shipped <= names
    assert "ics_monitor/rules/examples/zones.yaml" in names
    assert "ics_monitor/alerts/alert.schema.json" in names


def test_installed_wheel_detects_without_the_repository(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    environment = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import ics_monitor.detect.rules as r; print(r.default_directory())"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        timeout=60,
        check=True,
    )
    assert Path(where.stdout.strip()) == site / "ics_monitor" / "rules"
    state = tmp_path / "state"
    capture = PCAPS / "demo" / "plant_attack.pcap"
    replay = subprocess.run(
        [
            sys.executable,
            "-c",
            "from ics_monitor.cli.app import main; main()",
            "replay",
            "--no-events",
            "--state",
            str(state),
            str(capture),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**environment, "COLUMNS": "200"},
        timeout=300,
        check=False,
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    alerts = (state / "alerts.jsonl").read_text()
    # Always-on detectors from the packaged rules: the PLC stop and the DNP3 cold restart.
    assert '"rule_id":"ICS-1001"' in alerts and '"rule_id":"ICS-1201"' in alerts
