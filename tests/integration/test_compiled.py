"""The compiled hot path (``make compiled``, mypyc) gives the same records as its sources run as Python.

mypyc checks declared types at run time and keeps ``int``/``bool``/``float`` values in native form,
so code that is correct Python can still change meaning compiled: a ``bool`` in an expression
typed ``int`` comes out as 0/1 (DNP3 binary points did).  This test runs the same dissection twice
in child processes, once on the compiled package and once on a copy of the sources without the
extensions, over every capture of the repository and of ../shared, and compares the records
(events and flows, as JSON) capture by capture; and the analysis (inventory, baseline learning,
every detector in strict mode, the alert and change records) twice the same way.  It runs where
the build exists; CI requires the build (``ICS_MONITOR_REQUIRE_COMPILED``), so a compiler missing
there fails instead of skipping.
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
from tests.support.sliced import sliced

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


# Per capture: learn a baseline from it, then replay it enforcing that baseline (detectors in
# strict mode re-raise what they would otherwise contain); digest the learned baseline, every
# alert and asset change, and the assets at the end.  The demo and layer-2 pairs learn on their
# normal part and enforce on the whole, so that the attack rules fire compiled too.
_ANALYSIS = r"""
import hashlib, json, sys, tempfile
from pathlib import Path
import orjson
from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.core.errors import IcsMonitorError
from ics_monitor.dissect import default_registry
from ics_monitor.flows import table
from ics_monitor.detect import engine
from ics_monitor.inventory.assets import Inventory
from ics_monitor.pipeline import ENFORCE, LEARN, Pipeline, build_analysis
from ics_monitor.sinks.ecs import record_dict
from ics_monitor.sinks.memory import ListSink

def analyse(paths, mode, baseline, digest):
    config = Config(dissect=DissectConfig(strict=True))
    inventory = Inventory(config.inventory)
    alerts, changes = ListSink(), ListSink()
    analysis = build_analysis(
        config, inventory, mode=mode, baseline_path=baseline, alert_sinks=[alerts], change_sinks=[changes]
    )
    pipeline = Pipeline(config, default_registry(), dissect="full", analysis=analysis)
    try:
        pipeline.run(open_captures(paths))
    except IcsMonitorError as exc:
        digest.update(str(exc).encode())
    if mode == LEARN:
        analysis.learner.baseline().save(baseline)
        digest.update(baseline.read_bytes())
    for record in [*alerts.records, *changes.records, *inventory.assets()]:
        digest.update(orjson.dumps(record_dict(record), option=orjson.OPT_SORT_KEYS))
    return len(alerts.records)

out = {"engine": engine.__file__}
with tempfile.TemporaryDirectory() as scratch:
    baseline = Path(scratch) / "baseline.yaml"
    for group in json.loads(sys.argv[1]):
        learn, enforce = group
        digest = hashlib.sha256()
        analyse(learn, LEARN, baseline, digest)
        alerts = analyse(enforce, ENFORCE, baseline, digest)
        baseline.unlink(missing_ok=True)
        out[" ".join(enforce)] = [digest.hexdigest(), alerts]
print(json.dumps(out))
"""


def _run_child(pythonpath: Path, script: str, arguments: list[str]) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", script, *arguments],
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


def _digests(pythonpath: Path, captures: list[str]) -> dict[str, object]:
    return _run_child(pythonpath, _DIGESTS, captures)


def _require_build() -> None:
    if not compiled.compiled_modules():
        if os.environ.get("ICS_MONITOR_REQUIRE_COMPILED"):
            # CI sets it: a build that fell back to pure Python must not pass as a skip.
            pytest.fail("the hot path is not compiled although CI requires it: see build/compiled.log")
        pytest.skip("the hot path is not compiled here (`make compiled` builds it; CI does)")


def _pure_copy(tmp_path: Path) -> Path:
    """The package's sources without the extensions (and the rules beside them, as in the repository)."""
    copy = tmp_path / "pure"
    shutil.copytree(
        REPO / "ics_monitor", copy / "ics_monitor", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    shutil.copytree(REPO / "rules", copy / "rules")
    return copy


def test_compiled_records_equal_the_sources(tmp_path: Path) -> None:
    _require_build()
    captures = sorted(str(p) for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    captures += [str(p) for p in all_shared_captures()]
    # Cut by a short snap length: the records of cut PDUs (``truncated``) take their own path.
    for name, snaplen in (
        ("demo/plant_attack.pcap", 80),
        ("demo/plant_attack.pcap", 96),
        ("s7comm/snap7_blocks.pcap", 95),
        ("modbus/pymodbus_udp.pcap", 52),
        ("dnp3/opendnp3_session_udp.pcap", 70),
    ):
        target = tmp_path / f"{Path(name).stem}_s{snaplen}.pcap"
        captures.append(str(sliced(PCAPS / name, target, snaplen)))
    assert len(captures) > 20
    copy = _pure_copy(tmp_path)
    native = _digests(REPO, captures)
    pure = _digests(copy, captures)
    assert str(native.pop("table")).endswith(".so")
    assert str(pure.pop("table")).endswith(".py")
    different = [path for path in captures if native[path] != pure[path]]
    assert not different, f"{len(different)} captures differ compiled vs source, e.g. {different[:5]}"
    assert sum(entry[1] for entry in pure.values()) > 1000  # type: ignore[index]


def test_compiled_analysis_equals_the_sources(tmp_path: Path) -> None:
    """Inventory, baseline and every detector give the same results compiled and as Python.

    The analysis modules are compiled too: a native ``dict`` subclass failed to delete tuple keys
    there (found as an eviction retried on every insertion), and orjson cannot serialise native
    dataclasses; both changed results or crashed only in the compiled build.
    """
    _require_build()
    demo, network = PCAPS / "demo", PCAPS / "network"
    groups = [
        [
            [str(demo / "plant_normal.pcap")],
            [str(demo / "plant_normal.pcap"), str(demo / "plant_attack.pcap")],
        ],
        [
            [str(network / "arp_normal.pcap")],
            [str(network / "arp_normal.pcap"), str(network / "arp_mitm.pcap")],
        ],
    ]
    singles = sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng") and p.is_file())
    # The shared captures up to a size that keeps the test near a minute (most of them).
    singles += [p for p in all_shared_captures() if p.stat().st_size <= 8_000_000]
    groups += [[[str(path)], [str(path)]] for path in singles]
    copy = _pure_copy(tmp_path)
    native = _run_child(REPO, _ANALYSIS, [json.dumps(groups)])
    pure = _run_child(copy, _ANALYSIS, [json.dumps(groups)])
    assert str(native.pop("engine")).endswith(".so")
    assert str(pure.pop("engine")).endswith(".py")
    assert native.keys() == pure.keys()
    different = [name for name in native if native[name] != pure[name]]
    assert not different, f"{len(different)} analyses differ compiled vs source, e.g. {different[:5]}"
    assert sum(entry[1] for entry in pure.values()) > 50  # type: ignore[index]


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
    (package / "cli").mkdir(parents=True)
    (package / "cli" / "app.py").write_text("")
    (package / "cli" / "notes.txt").write_text("")
    old = package / "cli" / f"app{suffix}"
    old.write_bytes(b"")
    shared = package / f"{compiled.GROUP}{suffix}"
    shared.write_bytes(b"")
    assert "ics_monitor/cli/app.py" not in compiled.HOT_MODULES
    assert set(compiled.built(package)) == {old, shared}
    assert compiled.remove(package) == 2
    assert not old.exists() and not shared.exists() and (package / "cli" / "app.py").exists()
