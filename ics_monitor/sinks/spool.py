r"""A durable on-disk FIFO for documents waiting to be confirmed by a remote store.

Documents are written here *before* they are sent and removed only after the receiver confirmed
them, so neither an outage of the receiver nor a restart of the monitor loses anything::

    <dir>/
      lock                    flock: one process per spool
      cursor                  "<segment> <offset>": first byte not yet confirmed (atomic rename)
      000000000001.spool      segments of lines "<kind>\t<json>\n", appended, read in order
      000000000002.spool      ...

Readers take lines from the cursor on; ``commit`` moves the cursor and deletes segments wholly
behind it.  The receiver must accept a document twice (a crash may lose the last cursor move);
the Elasticsearch sink's deterministic ids make that a no-op.  A line cut short by a crash is truncated away when the spool is opened again.

Size cap and drop policy: the unconfirmed bytes never exceed ``max_bytes``.  When an append would
pass it, the *oldest* unconfirmed segments are dropped first (during a long outage the newest
records matter most to an analyst, and the oldest have had the longest chance to be delivered);
every dropped document is counted by kind in ``dropped``.  Only if a single batch is larger than the
cap is the batch itself dropped (also counted).

This module knows nothing about Elasticsearch; it must not block for long (appends are buffered
writes plus an optional fsync).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ics_monitor.core.errors import IcsMonitorError

_SUFFIX = ".spool"
_CURSOR = "cursor"
_LOCK = "lock"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# 8 MiB segments: small enough that dropping one under the cap loses little, large enough that a
# day of flow records does not make thousands of files.
DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024


class SpoolError(IcsMonitorError):
    """The spool directory cannot be used (in use by another process, not writable)."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the spool: segment number and byte offset in it."""

    segment: int
    offset: int


@dataclass(frozen=True, slots=True)
class Batch:
    """Lines read from the spool, and the position just after the last one."""

    kinds: list[str]
    lines: list[bytes]
    end: Position


class Spool:
    """The spool in ``directory`` (created if absent); see the module docstring for the format."""

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        fsync: bool = True,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("spool sizes must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        # At least eight segments under the cap, so the drop policy drops in small steps.
        self.segment_bytes = min(segment_bytes, max(4096, max_bytes // 8))
        self.fsync = fsync
        self.dropped: Counter[str] = Counter()
        self.appended = 0
        self.committed = 0
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / _LOCK, "a+b")  # noqa: SIM115 - held until close()
        except OSError as exc:
            raise SpoolError(f"cannot use spool directory {self.directory}: {exc.strerror}") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise SpoolError(f"spool {self.directory} is in use by another ics-monitor process") from None
        self._segments: list[int] = self._scan()
        self._cursor = self._load_cursor()
        for segment in [s for s in self._segments if s < self._cursor.segment]:
            # Confirmed before a crash that came between the cursor write and the unlink.
            self._segments.remove(segment)
            self._path(segment).unlink(missing_ok=True)
        self._writer: IO[bytes] | None = None
        self._writer_segment = 0
        self._writer_size = 0
        self._dirty = False
        self.pending_bytes, self.pending_items = self._measure()

    # -- opening ------------------------------------------------------------------------------

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}{_SUFFIX}"

    def _scan(self) -> list[int]:
        segments = []
        for path in self.directory.glob(f"*{_SUFFIX}"):
            try:
                segments.append(int(path.name[: -len(_SUFFIX)]))
            except ValueError:
                continue
        segments.sort()
        for segment in segments:
            self._truncate_partial(self._path(segment))
        return segments

    @staticmethod
    def _truncate_partial(path: Path) -> None:
        """Cut a last line left without its newline by a crash."""
        size = path.stat().st_size
        if size == 0:
            return
        with open(path, "r+b") as handle:
            keep = size
            block = 1 << 16
            while keep > 0:
                start = max(0, keep - block)
                handle.seek(start)
                chunk = handle.read(keep - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                keep = start
            if keep != size:
                handle.truncate(keep)

    def _load_cursor(self) -> Position:
        first = Position(self._segments[0], 0) if self._segments else Position(1, 0)
        try:
            text = (self.directory / _CURSOR).read_text().split()
            cursor = Position(int(text[0]), int(text[1]))
        except (OSError, ValueError, IndexError):
            return first
        if cursor < first:
            return first
        if cursor.segment not in self._segments:
            # Its segment was deleted (fully confirmed, or dropped): resume at the next one, or
            # at a fresh segment number so no offset points into a file that starts anew.
            later = [segment for segment in self._segments if segment > cursor.segment]
            return Position(later[0], 0) if later else Position(cursor.segment + 1, 0)
        size = self._path(cursor.segment).stat().st_size
        return cursor if cursor.offset <= size else Position(cursor.segment, size)

    def _measure(self) -> tuple[int, int]:
        total_bytes = 0
        total_items = 0
        for segment in self._segments:
            if segment < self._cursor.segment:
                continue
            start = self._cursor.offset if segment == self._cursor.segment else 0
            with open(self._path(segment), "rb") as handle:
                handle.seek(start)
                while chunk := handle.read(1 << 20):
                    total_bytes += len(chunk)
                    total_items += chunk.count(b"\n")
        return total_bytes, total_items

    # -- writing ------------------------------------------------------------------------------

    def append(self, kinds: list[str], lines: list[bytes], *, sync: bool = True) -> int:
        """Append documents (``lines`` without newline); return how many were kept.

        ``sync`` False skips the fsync (the next synced append or ``flush`` covers these lines).
        A batch is spread over segments of ``segment_bytes``; if it alone exceeds the cap, its
        oldest lines are dropped (and counted) like the oldest segments would be.
        """
        if not lines:
            return 0
        payload = [kind.encode() + b"\t" + line + b"\n" for kind, line in zip(kinds, lines, strict=True)]
        with self._lock:
            total = sum(len(item) for item in payload)
            first = 0
            while total > self.max_bytes and first < len(payload):
                total -= len(payload[first])
                self.dropped[kinds[first]] += 1
                first += 1
            if first:
                # The batch alone fills the cap: every older line goes before the batch's own
                # oldest did (the spool keeps a tail of what was appended, never older lines
                # beside a gap; a worker's pipe read under load makes such batches).
                self._make_room(self.max_bytes)  # room for a full cap: nothing older is left
            index = first
            while index < len(payload):
                chunk_end = index
                chunk_size = 0
                while chunk_end < len(payload) and (
                    chunk_end == index or chunk_size + len(payload[chunk_end]) <= self.segment_bytes
                ):
                    chunk_size += len(payload[chunk_end])
                    chunk_end += 1
                self._make_room(chunk_size)
                writer = self._writer_for(chunk_size)
                writer.write(b"".join(payload[index:chunk_end]))
                self._writer_size += chunk_size
                self.pending_bytes += chunk_size
                self.pending_items += chunk_end - index
                self.appended += chunk_end - index
                self._dirty = True
                index = chunk_end
            if sync:
                self._sync()
        return len(payload) - first

    def _make_room(self, size: int) -> None:
        """Drop the oldest unconfirmed segments until ``size`` more bytes fit under the cap."""
        while self.pending_bytes + size > self.max_bytes:
            if self._drop_oldest():
                continue
            if self._writer is None or not self._writer_size:
                return
            # Only the segment being written is left: close it so that it can be dropped too
            # (the oldest go first; the lines in hand are the newest).
            self._roll()

    def _writer_for(self, size: int) -> IO[bytes]:
        if self._writer is not None and self._writer_size + size > self.segment_bytes and self._writer_size:
            self._roll()
        if self._writer is None:
            segment = self._segments[-1] if self._segments else max(1, self._cursor.segment)
            path = self._path(segment)
            if self._segments and path.stat().st_size >= self.segment_bytes:
                segment += 1
                path = self._path(segment)
            if not self._segments or segment != self._segments[-1]:
                self._segments.append(segment)
            self._writer = open(path, "ab")  # noqa: SIM115 - kept open for appends, closed in close()
            self._writer_segment = segment
            self._writer_size = self._writer.tell()
        return self._writer

    def _roll(self) -> None:
        self._sync()
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        self._writer_segment = 0
        self._writer_size = 0
        # The next append starts a new segment rather than reopening this one.
        self._segments.append(self._segments[-1] + 1)
        self._path(self._segments[-1]).touch()

    def _sync(self) -> None:
        if self._writer is not None and self._dirty:
            self._writer.flush()
            if self.fsync:
                os.fsync(self._writer.fileno())
            self._dirty = False

    def flush(self) -> None:
        """Make every appended line durable."""
        with self._lock:
            self._sync()

    def _drop_oldest(self) -> bool:
        """Drop the oldest unconfirmed segment (never the one being written); False if none."""
        candidates = [s for s in self._segments if s >= self._cursor.segment and s != self._writer_segment]
        if not candidates:
            return False
        segment = candidates[0]
        start = self._cursor.offset if segment == self._cursor.segment else 0
        path = self._path(segment)
        dropped_bytes = 0
        with open(path, "rb") as handle:
            handle.seek(start)
            for line in handle:
                dropped_bytes += len(line)
                self.dropped[line.split(b"\t", 1)[0].decode(errors="replace")] += 1
                self.pending_items -= 1
        self.pending_bytes -= dropped_bytes
        self._segments.remove(segment)
        path.unlink(missing_ok=True)
        following = [s for s in self._segments if s > segment]
        self._set_cursor(Position(following[0], 0) if following else Position(segment + 1, 0))
        return True

    # -- reading ------------------------------------------------------------------------------

    def read(self, max_items: int, max_bytes: int = 16 * 1024 * 1024) -> Batch:
        """Up to ``max_items`` unconfirmed lines from the cursor on (without committing them)."""
        kinds: list[str] = []
        lines: list[bytes] = []
        with self._lock:
            self._sync()
            position = self._cursor
            taken = 0
            for segment in self._segments:
                if segment < position.segment:
                    continue
                offset = position.offset if segment == position.segment else 0
                with open(self._path(segment), "rb") as handle:
                    handle.seek(offset)
                    for line in handle:
                        if not line.endswith(b"\n"):
                            break  # a write in progress elsewhere cannot happen (lock); be safe
                        kind, _, body = line[:-1].partition(b"\t")
                        kinds.append(kind.decode(errors="replace"))
                        lines.append(body)
                        offset += len(line)
                        taken += len(line)
                        if len(lines) >= max_items or taken >= max_bytes:
                            return Batch(kinds, lines, Position(segment, offset))
                position = Position(segment, offset)
            return Batch(kinds, lines, position)

    def commit(self, end: Position, items: int) -> None:
        """Mark everything before ``end`` (``items`` lines read by ``read``) as confirmed."""
        with self._lock:
            if end <= self._cursor:
                return  # already dropped past it under the size cap
            confirmed_bytes = 0
            for segment in self._segments:
                if segment < self._cursor.segment or segment > end.segment:
                    continue
                start = self._cursor.offset if segment == self._cursor.segment else 0
                stop = end.offset if segment == end.segment else self._path(segment).stat().st_size
                confirmed_bytes += max(0, stop - start)
            self.pending_bytes = max(0, self.pending_bytes - confirmed_bytes)
            self.pending_items = max(0, self.pending_items - items)
            self.committed += items
            self._set_cursor(end)
            for segment in list(self._segments):
                if segment < end.segment and segment != self._writer_segment:
                    self._segments.remove(segment)
                    self._path(segment).unlink(missing_ok=True)

    def _set_cursor(self, position: Position) -> None:
        self._cursor = position
        path = self.directory / _CURSOR
        temporary = path.with_suffix(".tmp")
        # Atomic but not fsynced: a cursor lost in a crash only means documents are sent again,
        # which the receiver must tolerate anyway (deterministic ids, 409 = delivered); an fsync
        # per confirmed batch cost more than the whole rest of the delivery path.
        with open(temporary, "w") as handle:
            handle.write(f"{position.segment} {position.offset}\n")
        os.replace(temporary, path)

    # -- closing ------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        """True when every appended line has been confirmed (or dropped)."""
        return self.pending_items <= 0

    def close(self) -> None:
        """Flush and release the directory lock; unconfirmed lines stay for the next run."""
        with self._lock:
            if self._writer is not None:
                self._sync()
                self._writer.close()
                self._writer = None
            if self.empty:
                for segment in self._segments:
                    self._path(segment).unlink(missing_ok=True)
                self._segments.clear()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
