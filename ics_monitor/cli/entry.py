"""The console script: Ctrl-C at any moment, loading included, ends with one line, not a traceback.

Loading the command line (typer, rich, the analysis modules) takes about 0.13 s (``-X importtime``); a
Ctrl-C then raised ``KeyboardInterrupt`` inside an import, before ``app.main`` could catch it.
This module imports nothing beyond the standard library until it can catch it.
"""

from __future__ import annotations

import importlib
import sys

INTERRUPTED = "ics-monitor: interrupted\n"
EXIT_INTERRUPTED = 130


def main() -> None:
    """Load the command line and run it (``ics_monitor.cli.app.main``)."""
    try:
        app = importlib.import_module("ics_monitor.cli.app")
        app.main()
    except KeyboardInterrupt:  # before app.main handles it itself (it exits with 130 then)
        sys.stderr.write(INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
