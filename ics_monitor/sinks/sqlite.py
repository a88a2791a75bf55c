"""The embedded default store: one SQLite file in a state directory, beside JSON-lines logs.

Layout of a state directory (``--state DIR``, default ``./ics-monitor-state``)::

    DIR/store.sqlite     assets, asset changes (identity history), alerts, baselines, runs
    DIR/alerts.jsonl     every alert record as emitted (an update of an alert is a new line)
    DIR/events.jsonl     protocol events, anomalies, ARP and flow records of the runs
    DIR/baseline.yaml    the learned baseline (written by the baseline model; a copy goes in the db)

Alerts are upserted by ``alert_id``: the row keeps the largest ``count``, the earliest ``ts`` and the
latest ``last_ts``, so replaying a capture twice does not double anything.  Writes are batched
(``BATCH_ROWS`` rows per transaction) in WAL mode: a flood of alerts costs a few commits, not one
per record.  A run's full batches are written by a thread of the store's own (``_Writer``): SQLite
works without Python's lock, so on a second CPU while the analysis goes on; anything else that
touches the database, ``flush`` included, first waits for the batches handed over
(``alerts_written`` counts what was handed over).  The store is a ``Sink`` for alerts and asset
changes (``emit``); assets are saved whole at the end of a run (``save_assets``).  Reading (``alerts``, ``load_assets``, ``runs``) is for
the CLI.  Nothing here decides what is an alert or an asset.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import orjson

from ics_monitor.alerts.record import alert_json
from ics_monitor.core.addresses import ip_sort_key
from ics_monitor.core.errors import IcsMonitorError

DEFAULT_STATE_DIR: Final = "ics-monitor-state"
DB_NAME: Final = "store.sqlite"
ALERTS_LOG: Final = "alerts.jsonl"
EVENTS_LOG: Final = "events.jsonl"
BASELINE_NAME: Final = "baseline.yaml"


def baseline_path_of(state_dir: str | Path) -> Path:
    """Where a state directory's learned baseline lives (``Store.baseline_path``, without a store)."""
    return Path(state_dir) / BASELINE_NAME


SCHEMA_VERSION: Final = 2
BATCH_ROWS: Final = 1000

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    finished REAL,
    command TEXT NOT NULL,
    mode TEXT NOT NULL,
    captures TEXT NOT NULL,
    first_ts REAL,
    last_ts REAL,
    frames INTEGER,
    flows INTEGER,
    events INTEGER,
    alerts INTEGER,
    assets INTEGER,
    seconds REAL,
    stats TEXT
);
CREATE TABLE IF NOT EXISTS assets (
    asset_id TEXT PRIMARY KEY,
    ip TEXT,
    mac TEXT,
    vendor TEXT,
    roles TEXT NOT NULL,
    purdue_level INTEGER,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS asset_changes (
    change_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER,
    ts REAL NOT NULL,
    frame INTEGER NOT NULL,
    asset_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    field TEXT,
    before TEXT,
    after TEXT
);
CREATE INDEX IF NOT EXISTS asset_changes_asset ON asset_changes (asset_id, ts);
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    severity INTEGER NOT NULL,
    severity_name TEXT NOT NULL,
    title TEXT NOT NULL,
    category TEXT,
    protocol TEXT,
    src_ip TEXT,
    dst_ip TEXT,
    ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    count INTEGER NOT NULL,
    run_id INTEGER,
    data TEXT NOT NULL,
    record_run INTEGER
);
CREATE INDEX IF NOT EXISTS alerts_time ON alerts (last_ts);
CREATE INDEX IF NOT EXISTS alerts_run ON alerts (run_id);
CREATE TABLE IF NOT EXISTS baselines (
    baseline_id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    run_id INTEGER,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    content TEXT NOT NULL
);
"""

_UPSERT_ALERT: Final = """
INSERT INTO alerts (alert_id, rule_id, severity, severity_name, title, category, protocol, src_ip,
                    dst_ip, ts, last_ts, count, run_id, data, record_run)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13)
ON CONFLICT (alert_id) DO UPDATE SET
    data = CASE WHEN excluded.count >= alerts.count THEN excluded.data ELSE alerts.data END,
    record_run = CASE WHEN excluded.count >= alerts.count THEN excluded.run_id ELSE alerts.record_run END,
    count = MAX(alerts.count, excluded.count),
    ts = MIN(alerts.ts, excluded.ts),
    last_ts = MAX(alerts.last_ts, excluded.last_ts),
    run_id = excluded.run_id
"""

_UPSERT_ASSET: Final = """
INSERT OR REPLACE INTO assets (asset_id, ip, mac, vendor, roles, purdue_level, first_seen, last_seen, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_INSERT_CHANGE: Final = """
INSERT INTO asset_changes (run_id, ts, frame, asset_id, kind, field, before, after)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""


def _read_only_error(exc: BaseException) -> bool:
    """Whether opening failed because the store (or its directory) cannot be written."""
    text = str(exc).lower()
    return (
        isinstance(exc, PermissionError)
        or "readonly" in text
        or "read-only" in text
        or ("unable to open" in text)
    )


class StoreError(IcsMonitorError):
    """The state directory or its database cannot be used."""


def _alert_filter(
    since: float | None, min_severity: int | None, run_id: int | None = None
) -> tuple[str, list[Any]]:
    """The WHERE clause (and its parameters) of the alert queries' filters."""
    conditions: list[str] = []
    parameters: list[Any] = []
    if run_id is not None:
        conditions.append("run_id = ?")
        parameters.append(run_id)
    if since is not None:
        conditions.append("last_ts >= ?")
        parameters.append(since)
    if min_severity is not None:
        conditions.append("severity >= ?")
        parameters.append(min_severity)
    return ("WHERE " + " AND ".join(conditions) if conditions else ""), parameters


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


class Store:
    """One state directory.  ``create=False`` opens an existing store only (the read commands)."""

    def __init__(self, state_dir: str | Path = DEFAULT_STATE_DIR, *, create: bool = True) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / DB_NAME
        if not create and not self.path.is_file():
            raise StoreError(
                f"no store in {self.state_dir} (run `ics-monitor replay --state {self.state_dir} CAPTURE` first)"
            )
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise StoreError(f"{self.state_dir}: not a directory")
        self._writer: _Writer | None = None
        conn: sqlite3.Connection | None = None
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # One connection, used by one thread at a time: the writer's, or this one's after
            # ``_settle`` (the ``_db`` property).
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            if create or not _read_only_error(exc):
                raise StoreError(f"{self.path}: cannot open the store: {exc}") from None
            # A store to read that this user may not write (an archived copy, another owner's
            # directory): read it as it is.  "immutable": no lock or WAL index to create; only
            # for reading commands, which never run beside a writer of that copy.
            if conn is not None:
                conn.close()
            try:
                uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM meta LIMIT 1")
            except sqlite3.Error as error:
                raise StoreError(f"{self.path}: cannot open the store: {error}") from None
        self._record_run = True
        self._check_version(create)
        self.run_id: int | None = None
        self._alerts: dict[str, tuple[Any, ...]] = {}
        self._changes: list[tuple[Any, ...]] = []
        self.alerts_written = 0
        self.changes_written = 0

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, once the writer thread has written what it was handed."""
        self._settle()
        return self._conn

    def _settle(self) -> None:
        writer = self._writer
        if writer is None:
            return
        writer.wait()
        error = writer.error
        if error is not None:
            writer.error = None
            raise StoreError(f"{self.path}: cannot write: {error}")

    @property
    def alerts_log(self) -> Path:
        """Path of the alerts JSON-lines log."""
        return self.state_dir / ALERTS_LOG

    @property
    def events_log(self) -> Path:
        """Path of the events JSON-lines log."""
        return self.state_dir / EVENTS_LOG

    @property
    def baseline_path(self) -> Path:
        """Where the learned baseline lives by default."""
        return baseline_path_of(self.state_dir)

    def _check_version(self, create: bool) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None and not create:
            raise StoreError(f"{self.path}: not an ics-monitor store (no schema version)")
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: written by a newer ics-monitor (schema {row[0]})")
        elif int(row[0]) < SCHEMA_VERSION and create:
            # Only a command that writes upgrades: reading leaves an older store as it is (it
            # may be read-only, or still in use by the version that wrote it).
            self._migrate(int(row[0]))
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(alerts)")}
        self._record_run = "record_run" in columns

    def _migrate(self, found: int) -> None:
        """Bring a store written by an older ics-monitor up to this schema, in place.

        One writer at a time (``BEGIN IMMEDIATE`` waits for the others, up to the busy timeout);
        the version is read again inside, as another process may have upgraded it meanwhile.
        """
        db = self._db
        version = found
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                version = int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
                if version < 2:
                    # Version 2: the run whose record of an alert was kept (``record_run``);
                    # unknown for the alerts stored before it (NULL).
                    columns = {row[1] for row in db.execute("PRAGMA table_info(alerts)")}
                    if "record_run" not in columns:
                        db.execute("ALTER TABLE alerts ADD COLUMN record_run INTEGER")
                if version < SCHEMA_VERSION:
                    db.execute(
                        "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot upgrade the store from schema {version}: {exc}") from None

    # -- runs ------------------------------------------------------------------------------------------

    def begin_run(self, command: str, mode: str, captures: Iterable[str]) -> int:
        """Record the start of a run; later writes carry its id."""
        cursor = self._db.execute(
            "INSERT INTO runs (started, command, mode, captures) VALUES (?, ?, ?, ?)",
            (time.time(), command, mode, _json(list(captures))),
        )
        self.run_id = int(cursor.lastrowid or 0)
        return self.run_id

    def finish_run(self, figures: dict[str, Any]) -> None:
        """Record what the run saw (frames, flows, events, alerts, assets, times)."""
        if self.run_id is None:
            return
        self.flush()
        self._db.execute(
            "UPDATE runs SET finished = ?, first_ts = ?, last_ts = ?, frames = ?, flows = ?, events = ?,"
            " alerts = ?, assets = ?, seconds = ?, stats = ? WHERE run_id = ?",
            (
                time.time(),
                figures.get("first_ts"),
                figures.get("last_ts"),
                figures.get("frames"),
                figures.get("flows"),
                figures.get("events"),
                figures.get("alerts"),
                figures.get("assets"),
                figures.get("seconds"),
                _json(figures),
                self.run_id,
            ),
        )

    def runs(self) -> list[dict[str, Any]]:
        """Every run, oldest first."""
        cursor = self._db.execute(
            "SELECT run_id, started, finished, command, mode, captures, first_ts, last_ts, frames, flows,"
            " events, alerts, assets, seconds FROM runs ORDER BY run_id"
        )
        names = [column[0] for column in cursor.description]
        rows = []
        for row in cursor:
            record = dict(zip(names, row, strict=True))
            record["captures"] = orjson.loads(record["captures"])
            rows.append(record)
        return rows

    def last_run_id(self) -> int | None:
        """The id of the newest run, or None before the first."""
        row = self._db.execute("SELECT MAX(run_id) FROM runs").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def latest_capture_time(self) -> float | None:
        """The latest capture time the store knows (runs and alerts): 'now' for relative --since."""
        row = self._db.execute(
            "SELECT MAX(t) FROM (SELECT MAX(last_ts) AS t FROM runs UNION ALL SELECT MAX(last_ts) FROM alerts)"
        ).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    # -- the Sink side: alerts and asset changes -------------------------------------------------------

    def emit(self, record: Any) -> None:
        """Take an alert (upserted by id) or an asset change (appended to the history)."""
        kind = record.event_type
        if kind == "alert":
            # Plain fields, as ``alert_to_dict`` has them: no conversion for the columns.
            data: dict[str, Any] = record.__dict__
            self._alerts[data["alert_id"]] = (
                data["alert_id"],
                data["rule_id"],
                data["severity"],
                data["severity_name"],
                data["title"],
                data["category"],
                data["protocol"],
                data["src_ip"],
                data["dst_ip"],
                data["ts"],
                data["last_ts"],
                data["count"],
                self.run_id,
                alert_json(record).decode(),
            )
            if len(self._alerts) >= BATCH_ROWS:
                self._hand_over()
        elif kind == "asset_change":
            self._changes.append(
                (
                    self.run_id,
                    record.ts,
                    record.frame,
                    record.asset_id,
                    record.kind,
                    record.field,
                    _json(record.before),
                    _json(record.after),
                )
            )
            if len(self._changes) >= BATCH_ROWS:
                self._hand_over()

    def _hand_over(self) -> None:
        """Give the pending rows to the writer thread (started on first use); do not wait."""
        if not self._alerts and not self._changes:
            return
        writer = self._writer
        if writer is None:
            writer = self._writer = _Writer(self._conn)
        elif writer.error is not None:
            self._settle()
        # New containers: the thread owns the old ones now.
        alerts = list(self._alerts.values())
        changes = self._changes
        self._alerts = {}
        self._changes = []
        writer.put(alerts, changes)
        self.alerts_written += len(alerts)
        self.changes_written += len(changes)

    def flush(self) -> None:
        """Write pending rows (in one transaction) and wait until everything handed over is written."""
        self._hand_over()
        self._settle()

    def close(self) -> None:
        """Flush pending rows (called by the pipeline at the end of a run); the connection stays open."""
        self.flush()

    def shutdown(self) -> None:
        """Flush and close the database."""
        try:
            self.flush()
        finally:
            if self._writer is not None:
                self._writer.stop()
                self._writer = None
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *args: object) -> None:
        self.shutdown()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    # -- assets ----------------------------------------------------------------------------------------

    def save_assets(self, assets: Iterable[dict[str, Any]]) -> int:
        """Replace the stored assets by these (``Asset.to_dict`` dicts); return how many."""
        rows = [
            (
                data["asset_id"],
                data.get("ip"),
                data.get("mac"),
                data.get("vendor"),
                _json(data.get("roles") or []),
                data.get("purdue_level"),
                data["first_seen"],
                data["last_seen"],
                _json(data),
            )
            for data in assets
        ]
        try:
            with self._transaction():
                self._db.execute("DELETE FROM assets")
                for start in range(0, len(rows), BATCH_ROWS):
                    self._db.executemany(_UPSERT_ASSET, rows[start : start + BATCH_ROWS])
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write assets: {exc}") from None
        return len(rows)

    def load_assets(self) -> list[dict[str, Any]]:
        """Every stored asset as its dict."""
        return [orjson.loads(row[0]) for row in self._db.execute("SELECT data FROM assets ORDER BY rowid")]

    def asset_changes(self, asset_id: str | None = None) -> list[dict[str, Any]]:
        """The change history (all assets, or one), oldest first."""
        self.flush()
        query = "SELECT run_id, ts, frame, asset_id, kind, field, before, after FROM asset_changes"
        parameters: tuple[Any, ...] = ()
        if asset_id is not None:
            query += " WHERE asset_id = ?"
            parameters = (asset_id,)
        query += " ORDER BY ts, change_id"
        return [
            {
                "run_id": run_id,
                "ts": ts,
                "frame": frame,
                "asset_id": asset,
                "kind": kind,
                "field": name,
                "before": orjson.loads(before) if before is not None else None,
                "after": orjson.loads(after) if after is not None else None,
            }
            for run_id, ts, frame, asset, kind, name, before, after in self._db.execute(query, parameters)
        ]

    # -- alerts ----------------------------------------------------------------------------------------

    def alert_ids(self) -> set[str]:
        """Ids of every stored alert."""
        self.flush()
        return {row[0] for row in self._db.execute("SELECT alert_id FROM alerts")}

    def alerts(
        self,
        *,
        since: float | None = None,
        min_severity: int | None = None,
        run_id: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored alerts, filtered: last seen at or after ``since``, severity ``min_severity`` or more.

        ``run_id``: only the alerts that run raised (last).  Ordered by severity (highest first),
        then first-seen time; the first ``limit`` of them when given.
        """
        self.flush()
        where, parameters = _alert_filter(since, min_severity, run_id)
        query = f"SELECT data, count, ts, last_ts FROM alerts {where} ORDER BY severity DESC, ts, alert_id"
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(limit)
        rows = self._db.execute(query, parameters)
        return [_stored(orjson.loads(data), count, first, last) for data, count, first, last in rows]

    def find_alerts(self, prefix: str) -> list[dict[str, Any]]:
        """The stored alerts whose id starts with ``prefix`` (at most two: enough to tell it is ambiguous).

        Each carries ``run_id``, the run that raised it last; ``record_run``, the run whose record
        (frames, evidence) was kept, the one with the most occurrences (None when stored by a
        version before 2); and ``recorded_ts``, that record's first time.
        """
        self.flush()
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # A store from before version 2, opened to read, has no record_run column.
        # (Not named like the loop's variable: compiled, a name keeps its first type, str.)
        kept_run = "record_run" if self._record_run else "NULL"
        query = (
            f"SELECT data, count, ts, last_ts, run_id, {kept_run} FROM alerts"
            " WHERE alert_id LIKE ? ESCAPE '\\' ORDER BY alert_id LIMIT 2"
        )
        result = []
        for data, count, first, last, run_id, record_run in self._db.execute(query, (escaped + "%",)):
            kept = orjson.loads(data)
            recorded = kept.get("ts")
            record = _stored(kept, count, first, last)
            record["recorded_ts"], record["run_id"], record["record_run"] = recorded, run_id, record_run
            result.append(record)
        return result

    def alert_rules(
        self,
        *,
        since: float | None = None,
        min_severity: int | None = None,
        run_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Stored alerts per rule (filters as ``alerts``; ``run_id``: only the alerts a run raised).

        What a storm of one rule comes down to.  Each row: the rule's id, severity and title, how
        many alerts and how many occurrences (their counts summed), the distinct sources and
        destinations (sorted), first and last seen.  Ordered by severity (highest first), then by
        alerts (most first), then rule id.
        """
        self.flush()
        where, parameters = _alert_filter(since, min_severity, run_id)
        # One pass over the rows, summed here: a GROUP BY and a DISTINCT were two scans of rows
        # that carry each alert's JSON (a run of 38k alerts: 0.17 s, now about half).
        rules: dict[str, _RuleSummary] = {}
        for rule_id, severity, severity_name, title, count, first, last, src_ip, dst_ip in self._db.execute(
            "SELECT rule_id, severity, severity_name, title, count, ts, last_ts, src_ip, dst_ip"
            f" FROM alerts {where}",
            parameters,
        ):
            summary = rules.get(rule_id)
            if summary is None:
                summary = rules[rule_id] = _RuleSummary(severity, severity_name, title, first, last)
            else:
                summary.severity = max(summary.severity, severity)
                summary.severity_name = max(summary.severity_name, severity_name)
                summary.title = max(summary.title, title)
                summary.first = min(summary.first, first)
                summary.last = max(summary.last, last)
            summary.alerts += 1
            summary.occurrences += count
            if src_ip:
                summary.sources.add(src_ip)
            if dst_ip:
                summary.destinations.add(dst_ip)
        ordered = sorted(rules.items(), key=lambda item: (-item[1].severity, -item[1].alerts, item[0]))
        return [
            {
                "rule_id": rule_id,
                "severity": summary.severity,
                "severity_name": summary.severity_name,
                "title": summary.title,
                "alerts": summary.alerts,
                "occurrences": summary.occurrences,
                "sources": sorted(summary.sources, key=ip_sort_key),
                "destinations": sorted(summary.destinations, key=ip_sort_key),
                "ts": summary.first,
                "last_ts": summary.last,
            }
            for rule_id, summary in ordered
        ]

    def run_alerts(
        self, limit: int | None, run_id: int | None = None
    ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """The first ``limit`` alerts a run raised (in ``alerts`` order) and their count per severity.

        ``run_id``: this store's current run by default.  An alert raised again keeps its row and
        takes the id of the run that raised it last, so a run's alerts are found through an index
        on the column: what a run's summary shows, without reading every alert the store holds.
        """
        if run_id is None:
            run_id = self.run_id
            if run_id is None:
                return [], {}  # no run begun: none of its alerts (not every alert)
        self.flush()
        where, parameters = _alert_filter(None, None, run_id)
        counts = {
            int(severity): int(count)
            for severity, count in self._db.execute(
                f"SELECT severity, count(*) FROM alerts {where} GROUP BY severity", parameters
            )
        }
        return self.alerts(run_id=run_id, limit=limit), counts

    # -- baseline --------------------------------------------------------------------------------------

    def save_baseline(self, path: Path) -> str:
        """Keep a copy of the baseline file ``path`` (and where it is); return its SHA-256."""
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the baseline: {exc.strerror or exc}") from None
        digest = hashlib.sha256(content.encode()).hexdigest()
        self._db.execute(
            "INSERT INTO baselines (created, run_id, path, sha256, content) VALUES (?, ?, ?, ?, ?)",
            (time.time(), self.run_id, str(path), digest, content),
        )
        return digest

    def latest_baseline(self) -> dict[str, Any] | None:
        """The newest stored baseline: ``{created, run_id, path, sha256, content}``, or None."""
        row = self._db.execute(
            "SELECT created, run_id, path, sha256, content FROM baselines ORDER BY baseline_id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("created", "run_id", "path", "sha256", "content"), row, strict=True))


def _stored(record: dict[str, Any], count: int, first: float, last: float) -> dict[str, Any]:
    """An alert as stored: its kept record under the count and times of every run that raised it."""
    record["count"], record["ts"], record["last_ts"] = count, first, last
    return record


class _RuleSummary:
    """One rule's alerts in ``Store.alert_rules``, summed as the rows come."""

    __slots__ = (
        "alerts",
        "destinations",
        "first",
        "last",
        "occurrences",
        "severity",
        "severity_name",
        "sources",
        "title",
    )

    def __init__(self, severity: int, severity_name: str, title: str, first: float, last: float) -> None:
        self.severity = severity
        self.severity_name = severity_name
        self.title = title
        self.first = first
        self.last = last
        self.alerts = 0
        self.occurrences = 0
        self.sources: set[str] = set()
        self.destinations: set[str] = set()


def _write(db: sqlite3.Connection, alerts: list[tuple[Any, ...]], changes: list[tuple[Any, ...]]) -> None:
    with _Transaction(db):
        if alerts:
            # Updates of one alert within a batch: the last (largest count) is kept (``emit``).
            db.executemany(_UPSERT_ALERT, alerts)
        if changes:
            db.executemany(_INSERT_CHANGE, changes)


class _Writer:
    """A thread that writes the batches it is handed, in order, each in one transaction.

    At most ``QUEUED`` batches wait (memory stays bounded when the disk is slower than the
    alerts).  A failed write is kept in ``error`` and the batches after it are dropped, until the
    store reports it (``Store._settle``).
    """

    QUEUED: Final = 2

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.error: str | None = None
        self.batches: queue.Queue[Any] = queue.Queue(maxsize=self.QUEUED)
        self.thread = threading.Thread(target=self.run, name="ics-monitor-store", daemon=True)
        self.thread.start()

    def put(self, alerts: list[tuple[Any, ...]], changes: list[tuple[Any, ...]]) -> None:
        self.batches.put((alerts, changes))

    def wait(self) -> None:
        """Until every batch handed over is written (or dropped after an error)."""
        self.batches.join()

    def stop(self) -> None:
        self.batches.put(None)
        self.thread.join()

    def run(self) -> None:
        batches = self.batches
        while True:
            batch = batches.get()
            try:
                if batch is None:
                    return
                if self.error is None:
                    _write(self.db, batch[0], batch[1])
            except Exception as exc:  # reported by the store, whatever it is: never a silent dead thread
                self.error = str(exc)
            finally:
                batches.task_done()


class _Transaction:
    """One explicit transaction on the store's connection (committed, or rolled back on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN")

    def __exit__(self, kind: type[BaseException] | None, *args: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
