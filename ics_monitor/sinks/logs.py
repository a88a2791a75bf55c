"""Append-only JSON-lines logs of a state directory: ``alerts.jsonl`` and ``events.jsonl``.

Unlike ``JsonLinesSink`` (which writes one run's output), these append: the state directory keeps
what every run saw, as the store does.  An alert's update (same ``alert_id``, larger ``count``) is
a new line; the latest line of an id is its current state.  Writes are buffered.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from ics_monitor.alerts.record import alert_to_dict

_OPTIONS = orjson.OPT_APPEND_NEWLINE


class AppendLog:
    """Appends each record as one JSON line; ``convert`` turns a record into its JSON object first."""

    def __init__(self, path: str | Path, convert: Callable[[Any], Any] | None = None) -> None:
        self.path = Path(path)
        self.convert = convert
        self.count = 0
        self._out: IO[bytes] = open(self.path, "ab", buffering=1 << 16)  # noqa: SIM115 - closed in close()

    def emit(self, record: Any) -> None:
        """Write one record."""
        convert = self.convert
        self._out.write(orjson.dumps(convert(record) if convert is not None else record, option=_OPTIONS))
        self.count += 1

    def close(self) -> None:
        """Flush and close the file (safe to call twice)."""
        if not self._out.closed:
            self._out.close()


def alert_log(path: str | Path) -> AppendLog:
    """The alerts log: alerts written with ``alert_to_dict``."""
    return AppendLog(path, alert_to_dict)
