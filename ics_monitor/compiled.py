"""Which per-packet modules run compiled (mypyc), and whether an in-place build is older than its source.

``setup.py`` compiles ``HOT_MODULES`` (it reads the list from this file, which therefore imports
nothing but the standard library).  A wheel holds the extensions and never goes stale; an in-place
build (``make compiled``) sits beside the sources, where an edited ``.py`` would be hidden by its
older extension: ``stale()`` finds those, ``remove()`` deletes the whole build (the per-module
extensions are shims over one shared library: they go together or not at all).  This module must
not import the modules it inspects.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

# What every packet goes through in ``flows``/``dissect``/``replay``: reading, decoding, flows, TCP
# reassembly, the dissect engine, the three dissectors, record construction, the JSON-lines sink,
# and the per-frame and per-record loops of multi-core runs (shard); then what every record goes
# through in a replay's analysis: the detection engine and detectors, the inventory, alert records
# and throttling, the SQLite store and the alert log.  Classes that are pickled, serialised by orjson
# or subclassed elsewhere are marked ``mypyc_attr`` in their modules.
HOT_MODULES = [
    "ics_monitor/core/packet.py",
    "ics_monitor/core/addresses.py",
    "ics_monitor/core/flowkey.py",
    "ics_monitor/core/bounded.py",
    "ics_monitor/capture/files.py",
    "ics_monitor/decode/headers.py",
    "ics_monitor/decode/decoder.py",
    "ics_monitor/decode/fragments.py",
    "ics_monitor/flows/tcp.py",
    "ics_monitor/flows/table.py",
    "ics_monitor/dissect/api.py",
    "ics_monitor/dissect/engine.py",
    "ics_monitor/dissect/modbus/parser.py",
    "ics_monitor/dissect/modbus/rtu.py",
    "ics_monitor/dissect/modbus/ascii_framing.py",
    "ics_monitor/dissect/modbus/state.py",
    "ics_monitor/dissect/modbus/dissector.py",
    "ics_monitor/dissect/dnp3/crc.py",
    "ics_monitor/dissect/dnp3/link.py",
    "ics_monitor/dissect/dnp3/transport.py",
    "ics_monitor/dissect/dnp3/application.py",
    "ics_monitor/dissect/dnp3/state.py",
    "ics_monitor/dissect/dnp3/dissector.py",
    "ics_monitor/dissect/s7comm/tpkt_cotp.py",
    "ics_monitor/dissect/s7comm/parser.py",
    "ics_monitor/dissect/s7comm/state.py",
    "ics_monitor/dissect/s7comm/dissector.py",
    "ics_monitor/events/base.py",
    "ics_monitor/events/modbus.py",
    "ics_monitor/events/dnp3.py",
    "ics_monitor/events/s7comm.py",
    "ics_monitor/events/flow.py",
    "ics_monitor/sinks/jsonl.py",
    "ics_monitor/pipeline.py",
    "ics_monitor/shard.py",
    "ics_monitor/detect/api.py",
    "ics_monitor/detect/engine.py",
    "ics_monitor/detect/deviation.py",
    "ics_monitor/detect/response_time.py",
    "ics_monitor/detect/commands.py",
    "ics_monitor/detect/availability.py",
    "ics_monitor/detect/recon.py",
    "ics_monitor/detect/network.py",
    "ics_monitor/detect/anomalies.py",
    "ics_monitor/detect/policy.py",
    "ics_monitor/inventory/assets.py",
    "ics_monitor/inventory/baseline.py",
    "ics_monitor/inventory/roles.py",
    "ics_monitor/inventory/identity.py",
    "ics_monitor/alerts/explain.py",
    "ics_monitor/alerts/record.py",
    "ics_monitor/alerts/throttle.py",
    "ics_monitor/sinks/sqlite.py",
    "ics_monitor/sinks/logs.py",
]
# Hand-written C built with them, each the compiled twin of the Python module of the same name.
C_SOURCES = ["ics_monitor/_records.c"]
GROUP = "_native__mypyc"  # the shared library's name in ics_monitor/ (setup.py: group_name)
STAMP = ".compiled-stamp"  # written in ics_monitor/ by `make compiled` once a build is complete

_PACKAGE = Path(__file__).resolve().parent
_SUFFIXES = importlib.machinery.EXTENSION_SUFFIXES


def _extensions(source: Path) -> list[Path]:
    return [built for suffix in _SUFFIXES if (built := source.with_suffix(suffix)).is_file()]


def built(package: Path = _PACKAGE) -> list[Path]:
    """Every compiled file of an in-place or installed build under ``package``.

    Beside any module, not only today's ``HOT_MODULES``: a module taken off the list keeps the
    extension of an earlier build, which would still shadow it and load a shared library that no
    longer holds it.
    """
    found = [built for source in sorted(package.rglob("*.py")) for built in _extensions(source)]
    found += sorted(package.glob(f"{GROUP}*"))
    return found


def compiled_modules(package: Path = _PACKAGE) -> int:
    """How many of ``HOT_MODULES`` have an extension beside them."""
    return sum(1 for module in HOT_MODULES if _extensions(package.parent / module))


def stale(package: Path = _PACKAGE) -> list[str]:
    """Hot modules edited after the in-place build (``make compiled``) that would hide the edit.

    The build's time is its stamp file's (``make compiled`` writes it last); the extensions' own
    times do not tell, since an unchanged extension keeps the time of an earlier build.
    """
    root = package.parent
    compiled = [module for module in HOT_MODULES if _extensions(root / module)]
    # A C source and its Python twin (``_records.c``, ``_records.py``): the extension hides both.
    for source in C_SOURCES:
        if _extensions(root / source):
            compiled += [
                twin for twin in (source, source.removesuffix(".c") + ".py") if (root / twin).is_file()
            ]
    if not compiled:
        return []
    stamp = package / STAMP
    if stamp.is_file():
        built_at = stamp.stat().st_mtime
    else:  # built by hand (setup.py build_ext --inplace): the newest extension is the build
        built_at = max(path.stat().st_mtime for path in built(package))
    return [module for module in compiled if (root / module).stat().st_mtime > built_at]


def remove(package: Path = _PACKAGE) -> int:
    """Delete the whole build under ``package`` (pure Python again); how many files went."""
    files = built(package)
    for path in files:
        path.unlink(missing_ok=True)
    (package / STAMP).unlink(missing_ok=True)
    return len(files)
