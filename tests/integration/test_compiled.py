"""The compiled hot path (``make compiled``, mypyc) gives the same records as its sources run as Python.

mypyc checks declared types at run time and keeps ``int``/``bool``/``float`` values in native form,
so code that is correct Python can still change meaning compiled: a ``bool`` in an expression
typed ``int`` comes out as 0/1 (DNP3 binary points did).  This test runs the same dissection twice
in child processes, once on the compiled package and once on a copy of the sources without the
extensions, over every capture of the repository and of ../shared, and compares the records
(events and flows, as JSON) capture by capture.  It runs where the build exists; CI requires the
build (``ICS_MONITOR_REQUIRE_COMPILED``), so a compiler missing there fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ics_monitor import compiled
from tests.conftest import PCAPS, REPO, all_shared_captures

pytestmark = pytest.mark.xdist_group("compiled")

_DIGESTS = r"""
import hashlib, json, sys
import orjson
from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.core.errors import IcsMonitorError
from ics_monitor.dissect import default_registry
from ics_monitor.flows import table
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.memory import ListSink

out = {"table": table.__file__}
for path in sys.argv[1:]:
    events, flows = ListSink(), ListSink()
    pipeline = Pipeline(Config(), default_registry(), dissect="full", event_sinks=[events], flow_sinks=[flows], emit_arp=True)
    digest = hashlib.sha256()
    try:
        source = open_captures([path])
        pipeline.run(source)
    except IcsMonitorError as exc:
        digest.update(str(exc).encode())
    for record in [*events.records, *flows.records]:
        digest.update(orjson.dumps(record))
    out[path] = [digest.hexdigest(), len(events.records), len(flows.records)]
print(json.dumps(out))
"""


def _digests(pythonpath: Path, captures: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _DIGESTS, *captures],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
        env={**os.environ, "PYTHONPATH": str(pythonpath)},
        cwd=pythonpath,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    digests: dict[str, object] = json.loads(result.stdout)
    return digests


def test_compiled_records_equal_the_sources(tmp_path: Path) -> None:
    if not compiled.compiled_modules():
        if os.environ.get("ICS_MONITOR_REQUIRE_COMPILED"):
            # CI sets it: a build that fell back to pure Python must not pass as a skip.
            pytest.fail("the hot path is not compiled although CI requires it: see build/compiled.log")
        pytest.skip("the hot path is not compiled here (`make compiled` builds it; CI does)")
    captures = sorted(str(p) for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    captures += [str(p) for p in all_shared_captures()]
    assert len(captures) > 20
    copy = tmp_path / "pure"
    shutil.copytree(
        REPO / "ics_monitor", copy / "ics_monitor", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    native = _digests(REPO, captures)
    pure = _digests(copy, captures)
    assert str(native.pop("table")).endswith(".so")
    assert str(pure.pop("table")).endswith(".py")
    different = [path for path in captures if native[path] != pure[path]]
    assert not different, f"{len(different)} captures differ compiled vs source, e.g. {different[:5]}"
    assert sum(entry[1] for entry in pure.values()) > 1000  # type: ignore[index]


def test_a_bytes_slice_past_its_end_is_empty() -> None:
    """``data[a:b]`` with a > b is b"" compiled too (setup.py corrects mypyc's runtime for it).

    An S7 read-var item of length 0 makes the parser slice its specification as
    ``parameter[offset + 3 : offset + 2]``; unpatched, compiled code raised SystemError there.
    Runs either way; it guards the compiled build, where the S7 mutation test first found it.
    """
    from ics_monitor.dissect.s7comm.parser import parse_pdu

    parameter = bytes([0x04, 0x01, 0x12, 0x00, 0x00])  # read var, 1 item: 0x12, length 0, syntax 0
    pdu = bytes([0x32, 0x01, 0, 0, 0, 1]) + len(parameter).to_bytes(2, "big") + b"\x00\x00" + parameter
    problems: list[tuple[str, str]] = []
    parsed = parse_pdu(pdu, problems, None)
    assert parsed.items == ({"syntax_id": 0, "syntax": "UNKNOWN", "specification": ""},)


def test_remove_takes_the_extensions_of_modules_no_longer_compiled(tmp_path: Path) -> None:
    """A module taken off ``HOT_MODULES`` keeps an older build's extension beside it, which would
    still shadow its source: ``built``/``remove`` find extensions beside any module."""
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    package = tmp_path / "ics_monitor"
    (package / "detect").mkdir(parents=True)
    (package / "detect" / "engine.py").write_text("")
    (package / "detect" / "notes.txt").write_text("")
    old = package / "detect" / f"engine{suffix}"
    old.write_bytes(b"")
    shared = package / f"{compiled.GROUP}{suffix}"
    shared.write_bytes(b"")
    assert "ics_monitor/detect/engine.py" not in compiled.HOT_MODULES
    assert set(compiled.built(package)) == {old, shared}
    assert compiled.remove(package) == 2
    assert not old.exists() and not shared.exists() and (package / "detect" / "engine.py").exists()
