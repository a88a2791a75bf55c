"""JSON lines: one object per record, keys equal to the record's attribute names.

orjson serialises the records directly (tuples become arrays), an order of magnitude faster than
``json`` + ``asdict``; records keep their fields in a plain instance ``__dict__`` (see
``events.base``), which orjson reads in one pass.  Output goes to a file or to stdout.
"""

from __future__ import annotations

import sys
from typing import IO, Any, Final

import orjson

_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE


def record_to_dict(record: Any) -> dict[str, Any]:
    """Return the JSON object of a record, as a dict (for tests and other sinks)."""
    result: dict[str, Any] = orjson.loads(orjson.dumps(record))
    return result


class JsonLinesSink:
    """Writes each record as one JSON line; ``path`` None or '-' means stdout."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.count = 0
        if path in (None, "-"):
            self._out: IO[bytes] = sys.stdout.buffer
            self._owned = False
        else:
            self._out = open(path, "wb", buffering=1 << 16)  # noqa: SIM115 - closed in close()
            self._owned = True

    def emit(self, record: Any) -> None:
        """Write one record."""
        self._out.write(orjson.dumps(record, option=_OPTIONS))
        self.count += 1

    def close(self) -> None:
        """Flush; close the file if we opened it."""
        try:
            self._out.flush()
        finally:
            if self._owned:
                self._out.close()
