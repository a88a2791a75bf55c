"""The embedded store: reopen, alert dedup by id, assets, history, baselines, runs, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from ics_monitor.alerts.record import Alert, make_alert_id, updated
from ics_monitor.core.errors import IcsMonitorError
from ics_monitor.inventory.assets import AssetChange, Inventory
from ics_monitor.sinks.logs import AppendLog, alert_log
from ics_monitor.sinks.sqlite import BATCH_ROWS, SCHEMA_VERSION, Store, StoreError


def alert(
    rule_id: str = "ICS-1001", key: str = "10.0.0.1>10.0.0.2", ts: float = 100.0, **overrides: Any
) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": make_alert_id(rule_id, key, ts),
        "rule_id": rule_id,
        "rule_name": "s7_plc_stop",
        "title": "S7 PLC stop",
        "severity": 4,
        "severity_name": "critical",
        "category": "command",
        "protocol": "s7comm",
        "tactic": ({"id": "TA0107", "name": "Inhibit Response Function"},),
        "technique": ({"id": "T0816", "name": "Device Restart/Shutdown", "id_v19": "T0816", "name_v19": ""},),
        "explanation": "10.0.0.1 stopped the PLC 10.0.0.2.",
        "evidence": {"function": "PLC_STOP", "frames": (3, 4)},
        "key": key,
        "src_ip": "10.0.0.1",
        "src_port": 40000,
        "dst_ip": "10.0.0.2",
        "dst_port": 102,
        "ts": ts,
        "last_ts": ts,
        "frames": (3,),
    }
    fields.update(overrides)
    return Alert(**fields)


def change(asset_id: str = "a1", before: Any = "V2.1", after: Any = "V3.0") -> AssetChange:
    return AssetChange(
        kind="identity_change",
        asset_id=asset_id,
        ip="10.0.0.2",
        mac=None,
        field="revision",
        before=before,
        after=after,
        ts=20.0,
        frame=7,
    )


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Store(state) as store:
        run = store.begin_run("replay", "detect", ["a.pcap"])
        store.emit(alert())
        store.emit(change())
        store.save_assets(
            [{"asset_id": "a1", "ip": "10.0.0.2", "roles": ["s7_plc"], "first_seen": 1.0, "last_seen": 2.0}]
        )
        store.finish_run({"frames": 10, "first_ts": 1.0, "last_ts": 200.0})
    with Store(state, create=False) as store:
        assert [a["rule_id"] for a in store.alerts()] == ["ICS-1001"]
        assert store.load_assets()[0]["roles"] == ["s7_plc"]
        assert store.asset_changes("a1")[0] | {"run_id": run} == {
            "run_id": run,
            "ts": 20.0,
            "frame": 7,
            "asset_id": "a1",
            "kind": "identity_change",
            "field": "revision",
            "before": "V2.1",
            "after": "V3.0",
        }
        assert store.runs()[0]["captures"] == ["a.pcap"] and store.runs()[0]["frames"] == 10
        assert store.latest_capture_time() == 200.0


def test_alert_updates_and_replays_do_not_double(tmp_path: Path) -> None:
    first = alert(ts=100.0)
    with Store(tmp_path) as store:
        store.begin_run("replay", "detect", [])
        store.emit(first)
        store.flush()
        # The throttle's update of the same alert: same id, more occurrences, later last_ts.
        store.emit(updated(first, last_ts=160.0, count=12, frames=(3, 9, 11)))
        store.flush()
        # The same capture replayed: the first record again (count 1) must not shrink anything.
        store.emit(first)
        stored = store.alerts()
    assert len(stored) == 1
    assert (stored[0]["count"], stored[0]["ts"], stored[0]["last_ts"]) == (12, 100.0, 160.0)
    assert stored[0]["frames"] == [3, 9, 11]  # the record of the largest count


def test_many_alerts_are_written_in_batches(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        for index in range(BATCH_ROWS * 2 + 5):
            store.emit(alert(key=f"k{index}", ts=100.0 + index, severity=1 + index % 4))
        assert store.alerts_written == BATCH_ROWS * 2  # two full batches flushed on their own
        high = store.alerts(min_severity=3)
        recent = store.alerts(since=100.0 + BATCH_ROWS * 2)
    assert {a["severity"] for a in high} == {3, 4} and len(high) == (BATCH_ROWS * 2 + 5) // 2
    assert len(recent) == 5
    assert [a["severity"] for a in high] == sorted((a["severity"] for a in high), reverse=True)


def test_batches_written_by_the_writer_thread_keep_their_order(tmp_path: Path) -> None:
    # One alert updated in every batch: written by the store's thread in the order handed over,
    # the row ends with the last count; another connection sees every row once flush returns.
    with Store(tmp_path) as store:
        for round_ in range(1, 4):
            store.emit(updated(alert(), count=round_, last_ts=100.0 + round_, frames=(3,)))
            for index in range(BATCH_ROWS - 1):
                store.emit(alert(key=f"r{round_}-{index}", ts=200.0 + index))
        store.flush()
        other = sqlite3.connect(tmp_path / "store.sqlite")
        rows, total = other.execute("SELECT COUNT(*), MAX(count) FROM alerts").fetchone()
        other.close()
    assert rows == 1 + 3 * (BATCH_ROWS - 1) and total == 3


def test_a_failed_background_write_is_one_store_error(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store._conn.execute("PRAGMA query_only=ON")  # the disk refuses from now on, as a full one would
    for index in range(BATCH_ROWS):  # a full batch: handed to the writer thread, no wait
        store.emit(alert(key=f"k{index}"))
    with pytest.raises(StoreError, match="cannot write: attempt to write a readonly database"):
        store.flush()
    store._conn.execute("PRAGMA query_only=OFF")
    store.emit(alert(key="after"))  # the store goes on once the error is told
    store.shutdown()
    assert [a["key"] for a in Store(tmp_path).alerts()] == ["after"]


def test_run_alerts_are_the_runs_own_most_severe_first_with_counts(tmp_path: Path) -> None:
    """A replay's summary: only its alerts (not the store's history), the first few in the order of
    ``alerts``, and the count per severity of all of them.  An earlier alert raised again belongs
    to the run that raised it last."""
    with Store(tmp_path) as store:
        first_run = store.begin_run("replay", "detect", ["a.pcap"])
        earlier = [alert(key=f"old{index}", ts=10.0 + index, severity=4) for index in range(20)]
        for record in earlier:
            store.emit(record)
        store.flush()
        second_run = store.begin_run("replay", "detect", ["b.pcap"])
        run = [alert(key=f"new{index}", ts=200.0 + index, severity=1 + index % 4) for index in range(30)]
        for record in [*run, earlier[0]]:
            store.emit(record)
        ids = {record.alert_id for record in run} | {earlier[0].alert_id}
        shown, counts = store.run_alerts(5)
        assert counts == {4: 8, 3: 7, 2: 8, 1: 8}
        expected = [a for a in store.alerts() if a["alert_id"] in ids][:5]
        assert shown == expected and [a["severity"] for a in shown] == [4] * 5
        assert shown[0]["alert_id"] == earlier[0].alert_id  # severity 4, the earliest
        shown, counts = store.run_alerts(None, first_run)
        assert {a["alert_id"] for a in shown} == {record.alert_id for record in earlier[1:]}
        assert counts == {4: 19}
        assert store.run_alerts(None, second_run + 1) == ([], {})
    with Store(tmp_path / "no-run") as store:  # alerts stored outside any run belong to none
        store.emit(alert(key="loose"))
        assert store.run_alerts(None) == ([], {}) and len(store.alerts()) == 1


def test_alert_rules_of_a_run_list_addresses_in_numeric_order(tmp_path: Path) -> None:
    # Text order would put 10.0.0.10 before 10.0.0.9 and "::1" before both.
    sources = ["10.0.0.10", "::1", "10.0.0.9", "9.1.1.1"]
    with Store(tmp_path) as store:
        store.begin_run("replay", "detect", ["a.pcap"])
        store.emit(alert("ICS-1002", key="other"))
        store.flush()
        run_id = store.begin_run("replay", "detect", ["b.pcap"])
        for source in sources:
            store.emit(alert(key=source, src_ip=source, count=2))
        (rule,) = store.alert_rules(run_id=run_id)
        assert rule["sources"] == ["9.1.1.1", "10.0.0.9", "10.0.0.10", "::1"]
        assert (rule["rule_id"], rule["alerts"], rule["occurrences"]) == ("ICS-1001", 4, 8)
        assert rule["destinations"] == ["10.0.0.2"]
        assert len(store.alert_rules()) == 2  # without a run: every stored alert


def test_alert_rules_sum_each_rule_as_sql_would(tmp_path: Path) -> None:
    # Three rules: ordered by severity (highest first), then by how many alerts, then by id.
    plan = [
        ("ICS-2001", 2, "medium", 5),
        ("ICS-1001", 4, "critical", 2),
        ("ICS-3002", 2, "medium", 5),
        ("ICS-1301", 2, "medium", 7),
    ]
    with Store(tmp_path) as store:
        run_id = store.begin_run("replay", "detect", ["a.pcap"])
        for rule_id, severity, name, alerts in plan:
            for index in range(alerts):
                store.emit(
                    alert(
                        rule_id,
                        key=f"k{index}",
                        ts=100.0 + index,
                        severity=severity - 1 if index % 2 and severity > 1 else severity,
                        # Within a rule, the text columns vary too: each is summed as MAX alone.
                        title=f"{rule_id} title {index % 3}",
                        severity_name=name if index % 2 else f"{name}-{index}",
                        count=index + 1,
                        last_ts=300.0 - index,
                        src_ip=f"10.0.1.{index}" if index % 2 else None,
                    )
                )
        rules = store.alert_rules(run_id=run_id)
        db = sqlite3.connect(tmp_path / "store.sqlite")
        expected = db.execute(
            "SELECT rule_id, MAX(severity), MAX(severity_name), MAX(title), COUNT(*), SUM(count),"
            " MIN(ts), MAX(last_ts) FROM alerts GROUP BY rule_id"
            " ORDER BY MAX(severity) DESC, COUNT(*) DESC, rule_id"
        ).fetchall()
    assert [rule["rule_id"] for rule in rules] == ["ICS-1001", "ICS-1301", "ICS-2001", "ICS-3002"]
    summed = [
        (
            r["rule_id"],
            r["severity"],
            r["severity_name"],
            r["title"],
            r["alerts"],
            r["occurrences"],
            r["ts"],
            r["last_ts"],
        )
        for r in rules
    ]
    assert summed == expected
    ics_1301 = rules[1]
    assert ics_1301["sources"] == ["10.0.1.1", "10.0.1.3", "10.0.1.5"]  # NULL sources left out
    assert ics_1301["destinations"] == ["10.0.0.2"]


def test_wal_mode_and_schema_version(tmp_path: Path) -> None:
    Store(tmp_path).shutdown()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer ics-monitor"):
        Store(tmp_path)


def test_the_run_whose_record_was_kept(tmp_path: Path) -> None:
    # Found in review: the record (frames) was kept from the run with the most occurrences while
    # only the last run was stored, so extract read another run's frame numbering.
    first = alert(count=5, frames=(3, 9))
    with Store(tmp_path) as store:
        one = store.begin_run("replay", "detect", ["whole.pcap"])
        store.emit(first)
        store.finish_run({})
        two = store.begin_run("replay", "detect", ["part.pcap"])
        store.emit(alert(count=2, frames=(1,)))
        store.finish_run({})
        (found,) = store.find_alerts(first.alert_id[:8])
        assert (found["run_id"], found["record_run"], found["frames"], found["count"]) == (
            two,
            one,
            [3, 9],
            5,
        )
        three = store.begin_run("replay", "detect", ["again.pcap"])
        store.emit(alert(count=5, frames=(4, 10)))
        store.finish_run({})
        (found,) = store.find_alerts(first.alert_id)
        assert (found["run_id"], found["record_run"], found["frames"]) == (three, three, [4, 10])
        assert [a["alert_id"] for a in store.alerts(run_id=three)] == [first.alert_id]


def _version_1_store(state: Path) -> None:
    """A store as version 1 wrote it: no record_run column."""
    with Store(state) as store:
        store.begin_run("replay", "detect", ["a.pcap"])
        store.emit(alert())
        store.finish_run({})
    db = sqlite3.connect(state / "store.sqlite")
    db.execute("ALTER TABLE alerts DROP COLUMN record_run")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()


def _schema_version(state: Path) -> str:
    db = sqlite3.connect(state / "store.sqlite")
    try:
        return str(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        db.close()


def test_a_version_1_store_is_read_as_it_is_and_upgraded_by_a_writer(tmp_path: Path) -> None:
    _version_1_store(tmp_path)
    # Reading leaves it as it is (it may be read-only, or in use by the version that wrote it).
    with Store(tmp_path, create=False) as store:
        (found,) = store.find_alerts(alert().alert_id)
        assert found["record_run"] is None and found["run_id"] == 1
    assert _schema_version(tmp_path) == "1"
    with Store(tmp_path) as store:
        store.begin_run("replay", "detect", ["b.pcap"])
        store.emit(alert(count=3))
        store.finish_run({})
        assert store.find_alerts(alert().alert_id)[0]["record_run"] == 2
    assert _schema_version(tmp_path) == str(SCHEMA_VERSION)


def _open_store(state: str) -> str:
    try:
        Store(state).shutdown()
    except StoreError as error:
        return str(error)
    return "ok"


def test_writers_opening_a_version_1_store_at_once_all_upgrade_it(tmp_path: Path) -> None:
    # Found in review: a plain BEGIN took the write lock only at its first write, and a second
    # process upgrading at the same moment failed at once ("database is locked").
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_number in range(3):
        state = tmp_path / f"state{round_number}"
        _version_1_store(state)
        with context.Pool(6) as pool:
            assert pool.map(_open_store, [str(state)] * 6) == ["ok"] * 6
        assert _schema_version(state) == str(SCHEMA_VERSION)


def test_missing_store_and_bad_directory_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store in") as missing:
        Store(tmp_path / "nothing", create=False)
    assert isinstance(missing.value, IcsMonitorError)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store(not_a_dir)


def test_baseline_copy(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("format: test\nassets: []\n")
    with Store(tmp_path / "s") as store:
        assert store.latest_baseline() is None
        digest = store.save_baseline(baseline)
        latest = store.latest_baseline()
    assert latest is not None and latest["content"] == "format: test\nassets: []\n"
    assert latest["sha256"] == digest and len(digest) == 64 and latest["path"] == str(baseline)


def test_assets_of_a_real_inventory_round_trip(tmp_path: Path) -> None:
    from tests.conftest import PCAPS
    from tests.unit.inventory.helpers import inventory_of

    inventory, changes, _ = inventory_of(PCAPS / "dnp3" / "crafted_objects.pcap")
    with Store(tmp_path) as store:
        for record in changes:
            store.emit(record)
        assert store.save_assets(asset.to_dict() for asset in inventory.assets()) == len(inventory)
        loaded = store.load_assets()
        history = store.asset_changes()
    restored = Inventory()
    restored.restore(loaded)
    assert [a.to_dict() for a in restored.assets()] == [a.to_dict() for a in inventory.assets()]
    assert [c["kind"] for c in history] == [c.kind for c in changes]


def test_append_logs_accumulate(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    for _ in range(2):
        log = alert_log(path)
        log.emit(alert())
        log.close()
        log.close()  # the pipeline and the analysis may both close a shared log
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(lines) == 2 and lines[0]["technique"][0]["id"] == "T0816" and lines[0]["frames"] == [3]
    events = AppendLog(tmp_path / "events.jsonl")
    events.emit(change())
    events.close()
    assert orjson.loads((tmp_path / "events.jsonl").read_bytes())["event_type"] == "asset_change"


def test_the_store_and_the_alerts_log_keep_the_same_text_of_an_alert(tmp_path: Path) -> None:
    """In a run the store takes each alert first, then the log: one JSON text serves both."""
    records = [alert(key=f"k{index}", ts=100.0 + index, evidence={"items": {3, 1}}) for index in range(3)]
    log = alert_log(tmp_path / "alerts.jsonl")
    with Store(tmp_path) as store:
        for record in records:
            store.emit(record)
            log.emit(record)
        log.close()
        store.flush()
        stored = [row[0] for row in store._db.execute("SELECT data FROM alerts ORDER BY ts")]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert lines == stored
    assert [orjson.loads(line)["alert_id"] for line in lines] == [r.alert_id for r in records]
    assert orjson.loads(lines[0])["evidence"]["items"] == [1, 3]  # a set, as JSON
