"""Rotation of the append-only JSON-lines logs: by size, by time, keep N, never a split or lost record."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from ics_monitor.sinks.logs import MIN_ROTATE_SIZE, AppendLog, Rotation


def numbered(path: Path, keep: int) -> list[Path]:
    """The log's files, oldest first: path.keep .. path.1, then path itself."""
    files = [path.with_name(f"{path.name}.{number}") for number in range(keep, 0, -1)]
    return [file for file in [*files, path] if file.exists()]


def lines_of(files: list[Path]) -> list[dict[str, object]]:
    records = []
    for file in files:
        data = file.read_bytes()
        # Every file ends at a record boundary: the last byte is the newline of a whole record.
        assert not data or data.endswith(b"\n"), file
        records.extend(orjson.loads(line) for line in data.splitlines())
    return records


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_size_rotation_keeps_every_record_whole_and_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    size = MIN_ROTATE_SIZE
    log = AppendLog(path, rotation=Rotation(size=size, keep=50))
    records = [{"event_type": "test", "number": number, "pad": "x" * (number % 97)} for number in range(2000)]
    for record in records:
        log.emit(record)
    log.close()
    files = numbered(path, 50)
    assert log.rotations == len(files) - 1 > 5
    # No file went past the limit, and each full one was rotated only when the next record did not fit.
    for file in files:
        assert file.stat().st_size <= size
    for older, newer in itertools.pairwise(files):
        first_of_next = newer.read_bytes().split(b"\n", 1)[0] + b"\n"
        assert older.stat().st_size + len(first_of_next) > size
    assert lines_of(files) == records


def test_keep_drops_the_oldest_files(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    log = AppendLog(path, rotation=Rotation(size=MIN_ROTATE_SIZE, keep=2))
    records = [{"number": number, "pad": "y" * 200} for number in range(200)]
    for record in records:
        log.emit(record)
    log.close()
    assert log.rotations > 3
    assert not path.with_name("alerts.jsonl.3").exists()
    kept = lines_of(numbered(path, 2))
    # What is kept is exactly the newest records, contiguous up to the last one written.
    assert kept == records[-len(kept) :]
    assert len(kept) < len(records)


def test_time_rotation_happens_at_flush_between_records(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = FakeClock()
    log = AppendLog(path, rotation=Rotation(every=60.0, keep=3), clock=clock)
    log.emit({"number": 1})
    clock.now += 59.0
    log.flush()
    assert log.rotations == 0
    # Flushed to disk without rotating yet: a reader tailing the file sees the record now.
    assert lines_of([path]) == [{"number": 1}]
    clock.now += 1.0
    log.flush()
    assert log.rotations == 1
    assert path.read_bytes() == b""
    # An empty file is not rotated, however long it stays open.
    clock.now += 3600.0
    log.flush()
    assert log.rotations == 1
    log.emit({"number": 2})
    log.close()
    assert lines_of(numbered(path, 3)) == [{"number": 1}, {"number": 2}]


def test_existing_file_counts_toward_the_size(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"old":true}\n' * 400)  # 5200 bytes from an earlier run
    log = AppendLog(path, rotation=Rotation(size=MIN_ROTATE_SIZE * 2))
    log.emit({"new": True})
    assert log.rotations == 0
    for _ in range(400):
        log.emit({"new": True})
    log.close()
    assert log.rotations == 1
    records = lines_of(numbered(path, 10))
    assert records.count({"old": True}) == 400
    assert records.count({"new": True}) == 401


def test_without_rotation_nothing_rotates(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = AppendLog(path)
    for number in range(3000):
        log.emit({"number": number})
    log.flush()
    log.close()
    log.flush()  # after close: harmless
    assert log.rotations == 0
    assert len(lines_of([path])) == 3000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"size": 100}, "below the minimum"),
        ({"every": 0.0}, "more than zero"),
        ({"keep": 0}, "at least one"),
    ],
)
def test_bad_rotation_settings(arguments: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rotation(**arguments)  # type: ignore[arg-type]


def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    # A full disk (or a crash) left half a record: the next run's first record must not be glued
    # to it, or one line in the middle of the file is not JSON.
    path = tmp_path / "alerts.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3, "half')
    log = AppendLog(path)
    log.emit({"d": 4})
    log.close()
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n{"d":4}\n'
    path.write_bytes(b"x" * 200_000)  # no newline at all: nothing whole to keep
    log = AppendLog(path)
    log.emit({"e": 5})
    log.close()
    assert path.read_bytes() == b'{"e":5}\n'
    AppendLog(tmp_path / "new.jsonl").close()  # a new file, and a device, are left alone
    AppendLog("/dev/null").close()
