"""Append-only JSON-lines logs of a state directory: ``alerts.jsonl`` and ``events.jsonl``, rotated.

Unlike ``JsonLinesSink`` (which writes one run's output), these append: the state directory keeps
what every run saw, as the store does.  An alert's update (same ``alert_id``, larger ``count``) is
a new line; the latest line of an id is its current state.  Writes are buffered; ``flush`` pushes
them to the file (a live run calls it every second so a SIEM tailing the file sees records soon).

Rotation (for weeks-long live runs), as logrotate names files::

    events.jsonl      <- being written
    events.jsonl.1    <- the newest full file
    ...
    events.jsonl.N    <- the oldest kept (N = keep); an older one is deleted

A file is rotated before a record that would take it past ``rotate_size`` bytes (so no file
grows past the size unless one record alone is larger), and by ``flush`` once it has been open
``rotate_every`` seconds.  Rotation only ever happens between two records: a record is never
split across files nor lost.  This module must not decide what a record is or when to flush.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import orjson
from mypy_extensions import mypyc_attr

from ics_monitor.alerts.record import alert_json

_OPTIONS: Final = orjson.OPT_APPEND_NEWLINE
DEFAULT_KEEP: Final = 10
MIN_ROTATE_SIZE: Final = 4096  # smaller files would rotate on every few records


# An ordinary class even when this module is compiled (mypyc): it is pickled to worker processes,
# and a native frozen class cannot be unpickled.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class Rotation:
    """When to rotate: past ``size`` bytes and/or after ``every`` seconds; keep ``keep`` old files."""

    size: int | None = None
    every: float | None = None
    keep: int = DEFAULT_KEEP

    def __post_init__(self) -> None:
        if self.size is not None and self.size < MIN_ROTATE_SIZE:
            raise ValueError(f"rotation size {self.size} is below the minimum of {MIN_ROTATE_SIZE} bytes")
        if self.every is not None and self.every <= 0:
            raise ValueError("rotation interval must be more than zero")
        if self.keep < 1:
            raise ValueError("rotation must keep at least one old file")


def _drop_torn_line(path: Path) -> None:
    """Cut a last line that has no newline (a write a full disk or a crash left half done).

    Appending after it would glue the next record to the fragment: one line that is not JSON in
    the middle of the file.  The fragment was never a record; what precedes it stays.
    """
    try:
        with open(path, "rb+") as file:
            size = file.seek(0, os.SEEK_END)
            if not size:
                return
            file.seek(size - 1)
            if file.read(1) == b"\n":
                return
            end = size
            while end > 0:
                start = max(0, end - (1 << 16))
                file.seek(start)
                chunk = file.read(end - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    file.truncate(start + newline + 1)
                    return
                end = start
            file.truncate(0)
    except OSError:  # no file yet, a device or pipe, not readable: nothing to mend here
        return


class AppendLog:
    """Appends each record as one JSON line.

    ``convert`` turns a record into its JSON object first; ``dump``, if given, turns it into its
    JSON text (without the newline) instead.
    """

    def __init__(
        self,
        path: str | Path,
        convert: Callable[[Any], Any] | None = None,
        *,
        rotation: Rotation | None = None,
        clock: Callable[[], float] = time.monotonic,
        dump: Callable[[Any], bytes] | None = None,
    ) -> None:
        self.path = Path(path)
        self.convert = convert
        self.dump = dump
        self.rotation = rotation
        self.count = 0
        self.rotations = 0
        self._clock = clock
        self._limit = rotation.size if rotation is not None and rotation.size is not None else None
        self._size = 0
        self._opened = 0.0
        self._out: IO[bytes] = self._open()

    def _open(self) -> IO[bytes]:
        _drop_torn_line(self.path)
        out = open(self.path, "ab", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        # Appending to a file an earlier run left: its bytes count toward the size limit.
        self._size = out.tell()
        self._opened = self._clock()
        return out

    def emit(self, record: Any) -> None:
        """Write one record (rotating first when it would take the file past the size limit)."""
        dump = self.dump
        if dump is not None:
            line = dump(record) + b"\n"
        else:
            convert = self.convert
            line = orjson.dumps(convert(record) if convert is not None else record, option=_OPTIONS)
        limit = self._limit
        if limit is not None and self._size and self._size + len(line) > limit:
            self.rotate()
        self._out.write(line)
        self._size += len(line)
        self.count += 1

    def flush(self) -> None:
        """Push buffered lines to the file; rotate it when it has been open for the rotation interval."""
        if self._out.closed:
            return
        self._out.flush()
        rotation = self.rotation
        if (
            rotation is not None
            and rotation.every is not None
            and self._size
            and self._clock() - self._opened >= rotation.every
        ):
            self.rotate()

    def rotate(self) -> None:
        """Close the file, shift ``path.1`` .. ``path.N`` up by one (dropping the oldest), reopen."""
        self._out.close()
        keep = self.rotation.keep if self.rotation is not None else DEFAULT_KEEP
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._numbered(keep))
        for number in range(keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._numbered(number), self._numbered(number + 1))
        os.replace(self.path, self._numbered(1))
        self.rotations += 1
        self._out = self._open()

    def _numbered(self, number: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{number}")

    def close(self) -> None:
        """Flush and close the file (safe to call twice)."""
        if not self._out.closed:
            self._out.close()


def alert_log(path: str | Path, rotation: Rotation | None = None) -> AppendLog:
    """The alerts log: alerts written as ``alert_json`` (the text the store keeps too)."""
    return AppendLog(path, rotation=rotation, dump=alert_json)
