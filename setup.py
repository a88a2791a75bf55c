"""Build hook: ship the detection rules inside the package; compile the per-packet path with mypyc.

Rules: they live in ``rules/`` at the top of the repository, where analysts read and edit them; an
installed (non-editable) package has no repository beside it, so the build copies ``rules/*.yaml``
(and the example zones file) to ``ics_monitor/rules/``, where ``detect.rules.default_directory``
looks first.

Compiled hot path: mypyc (it ships with mypy) turns the type-annotated modules of ``HOT_MODULES``
into C extensions; the ``.py`` files stay beside them and Python imports the extension first.  A
wheel build (``pip install .``) compiles them; an editable install does not (a compiled module
would hide later edits of its source), and ``make compiled`` builds them in place instead
(``ICS_MONITOR_COMPILE=1 setup.py build_ext --inplace``), rebuilding when a source changes.
``ICS_MONITOR_PURE=1`` forces pure Python.  When mypyc or a C compiler is missing, or the build
fails, the package installs as pure Python with one warning line: it must install on hosts
without gcc.  Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import os
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
RULES = ROOT / "rules"

# The per-packet modules and the hand-written C, listed in ics_monitor/compiled.py (read without
# importing the package).
_LISTS = runpy.run_path(str(ROOT / "ics_monitor" / "compiled.py"))
HOT_MODULES: list[str] = _LISTS["HOT_MODULES"]
C_SOURCES: list[str] = _LISTS["C_SOURCES"]


class BuildWithRules(build_py):
    """``build_py`` plus the rules files."""

    def run(self) -> None:
        """Build the package, then copy the rules into it."""
        super().run()
        target = Path(self.build_lib) / "ics_monitor" / "rules"
        for source in [*sorted(RULES.glob("*.yaml")), RULES / "README.md", RULES / "examples" / "zones.yaml"]:
            if source.is_file():
                destination = target / source.relative_to(RULES)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


class OptionalBuildExt(build_ext):
    """``build_ext`` that leaves pure Python behind when the C build fails (no compiler, headers).

    All or nothing: the per-module extensions are thin shims over one shared library, so a shim
    without its library would fail to import instead of falling back to the ``.py`` file.
    """

    def run(self) -> None:
        """Build every extension; on any failure remove what was built and keep pure Python."""
        try:
            super().run()
        except Exception as exc:  # any build failure means "install pure Python"
            for ext in self.extensions:
                built = Path(self.get_ext_fullpath(ext.name))
                (built if built.is_absolute() else ROOT / built).unlink(missing_ok=True)
            _warn(f"compiling the hot path failed ({exc}); pure Python")


def _warn(message: str) -> None:
    print(f"ics-monitor setup: {message}", file=sys.stderr)


def _wanted() -> bool:
    if os.environ.get("ICS_MONITOR_PURE"):
        return False
    if os.environ.get("ICS_MONITOR_COMPILE"):
        return True
    # A wheel, not an editable install (``editable_wheel``) nor metadata queries (``egg_info``).
    return "bdist_wheel" in sys.argv and "editable_wheel" not in sys.argv


# mypyc's CPyBytes_GetSlice (lib-rt/bytes_ops.c, mypy 1.x to 2.4.1 at least) clamps start and end
# to the bytes but not end to start, so ``data[a:b]`` with a > b, which Python answers with b"",
# passes a negative length to PyBytes_FromStringAndSize and raises SystemError: malformed PDUs
# reach such slices (the S7 mutation test found one).  The generated group C file includes the
# runtime sources first, so a macro after them sends every later call to this corrected copy.
_BYTES_SLICE_FIX = """
/* ics-monitor (setup.py): bytes slices with start > end give b"" as in Python, see setup.py. */
static PyObject *IcsMonitor_BytesGetSlice(PyObject *obj, CPyTagged start, CPyTagged end) {
    if (CPyTagged_CheckShort(start) && CPyTagged_CheckShort(end)) {
        Py_ssize_t length = ((PyVarObject *)obj)->ob_size;
        Py_ssize_t first = CPyTagged_ShortAsSsize_t(start);
        Py_ssize_t last = CPyTagged_ShortAsSsize_t(end);
        if (first < 0) first += length;
        if (last < 0) last += length;
        first = first < 0 ? 0 : (first > length ? length : first);
        last = last < first ? first : (last > length ? length : last);
        if (PyBytes_Check(obj)) {
            return PyBytes_FromStringAndSize(PyBytes_AS_STRING(obj) + first, last - first);
        }
        return PyByteArray_FromStringAndSize(PyByteArray_AS_STRING(obj) + first, last - first);
    }
    return CPyObject_GetSlice(obj, start, end);
}
#define CPyBytes_GetSlice IcsMonitor_BytesGetSlice
"""
_RUNTIME_INCLUDE = "#include <bytes_ops.c>\n"


def _fix_bytes_slices(extensions: list[Any]) -> None:
    """Insert ``_BYTES_SLICE_FIX`` after the runtime includes of each generated C file."""
    for extension in extensions:
        for source in extension.sources:
            path = Path(source)
            if path.suffix != ".c" or not path.is_file():
                continue
            text = path.read_text()
            if _RUNTIME_INCLUDE not in text or "IcsMonitor_BytesGetSlice" in text:
                continue
            lines = text.splitlines(keepends=True)
            last = max(i for i, line in enumerate(lines) if line.startswith("#include <"))
            lines.insert(last + 1, _BYTES_SLICE_FIX)
            path.write_text("".join(lines))


def _ext_modules() -> list[Any]:
    if not _wanted():
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc not available; pure Python")
        return []
    try:
        # One group named inside the package, so its shared library sits in ``ics_monitor/``
        # for in-place builds as for wheels.
        extensions = list(mypycify(HOT_MODULES, opt_level="3", group_name="ics_monitor._native"))
    except BaseException as exc:  # a mypy/mypyc error (even SystemExit) must not block installation
        _warn(f"mypyc could not compile the hot path ({exc}); pure Python")
        return []
    _fix_bytes_slices(extensions)
    # Hand-written C beside the mypyc modules, each the twin of the Python module of its name
    # (imported when the C is not built): record construction (``ics_monitor/_records``).
    for source in C_SOURCES:
        extensions.append(Extension(source.removesuffix(".c").replace("/", "."), [source]))
    return extensions


setup(
    ext_modules=_ext_modules(),
    cmdclass={"build_py": BuildWithRules, "build_ext": OptionalBuildExt},
)
