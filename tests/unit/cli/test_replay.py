"""``replay``, ``assets``, ``alerts`` and ``baseline`` run as a user would: outputs, the store, exit codes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.conftest import PCAPS, shared_pcaps
from tests.unit.cli.test_cli import run

POLLING = str(PCAPS / "modbus" / "pymodbus_polling.pcap")
ALL_FUNCTIONS = str(PCAPS / "modbus" / "pymodbus_all_functions.pcap")


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_line_error(result: Any, fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert fragment in result.stderr, result.stderr


def test_replay_builds_the_store_and_shows_assets_and_alerts(tmp_path: Path) -> None:
    capture = str(shared_pcaps() / "icsnpp-s7comm" / "snap7.pcap")
    state = tmp_path / "state"
    result = run("replay", "--state", str(state), capture)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Assets (2)" in out and "134.217.61.211" in out and "CPU 315-2 PN/DP" in out and "V3.2.7" in out
    assert "only the always-on detectors ran" in out and "critical" in out
    assert {path.name for path in state.iterdir()} >= {"store.sqlite", "alerts.jsonl", "events.jsonl"}
    # The snap7 client stops the PLC (tshark: S7 job 0x29 PLC Stop in frame 57).
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    stops = [a for a in alerts if a["rule_name"] == "s7_plc_stop"]
    assert len(stops) == 1 and stops[0]["dst_ip"] == "134.217.61.211" and stops[0]["severity"] == 4
    assert [a["severity"] for a in alerts] == sorted((a["severity"] for a in alerts), reverse=True)
    logged = json_lines((state / "alerts.jsonl").read_text())
    assert {a["alert_id"] for a in logged} == {a["alert_id"] for a in alerts}
    events = json_lines((state / "events.jsonl").read_text())
    assert {"s7comm", "flow"} <= {e["event_type"] for e in events}
    # Assets as JSON lines, identity included.
    assets = {a["ip"]: a for a in json_lines(run("assets", "--state", str(state), "--json").stdout)}
    assert assets["134.217.61.211"]["identity"]["order_number"] == "6ES7 315-2EH14-0AB0"
    assert "engineering_station" in assets["134.217.61.131"]["roles"]
    # A second replay of the same capture adds nothing: same assets, same alert rows, no new alert.
    again = run("replay", "--state", str(state), capture)
    assert again.returncode == 0 and "(0 new)" in again.stdout and "(0 changes this run)" in again.stdout
    assert len(json_lines(run("alerts", "--state", str(state), "--json").stdout)) == len(alerts)
    db = sqlite3.connect(state / "store.sqlite")
    assert db.execute("SELECT COUNT(*), MAX(run_id) FROM runs").fetchone() == (2, 2)
    db.close()


def test_alert_filters(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert (
        run(
            "replay",
            "--no-events",
            "--state",
            str(state),
            str(shared_pcaps() / "icsnpp-s7comm" / "snap7.pcap"),
        ).returncode
        == 0
    )
    assert not (state / "events.jsonl").exists()
    everything = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    critical = json_lines(run("alerts", "--state", str(state), "--severity", "critical", "--json").stdout)
    high = json_lines(run("alerts", "--state", str(state), "--severity", "3", "--json").stdout)
    assert critical and all(a["severity"] == 4 for a in critical)
    assert len(critical) < len(high) <= len(everything)
    assert all(a["severity"] >= 3 for a in high)
    # --since: the capture is from 2016; a duration counts back from its own latest time.
    assert len(json_lines(run("alerts", "--state", str(state), "--since", "1h", "--json").stdout)) == len(
        everything
    )
    assert json_lines(run("alerts", "--state", str(state), "--since", "2030-01-01", "--json").stdout) == []
    table = run("alerts", "--state", str(state))
    assert table.returncode == 0 and "S7 PLC stop" in table.stdout and "critical 1" in table.stdout


def test_alerts_by_rule_sum_up_the_stored_alerts(tmp_path: Path) -> None:
    state = tmp_path / "s"
    normal = str(PCAPS / "demo" / "plant_normal.pcap")
    learned = run("replay", "--learn", "--no-events", "--state", str(state), normal)
    assert learned.returncode == 0, learned.stderr
    attack = str(PCAPS / "demo" / "plant_attack.pcap")
    replayed = run("replay", "--no-events", "--limit", "3", "--state", str(state), attack)
    assert replayed.returncode == 0, replayed.stderr
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    rules = json_lines(run("alerts", "--state", str(state), "--by-rule", "--json").stdout)
    # More alerts than the summary's table shows: every rule that fired follows it.
    assert "Alerts (3 of" in replayed.stdout and "Alerts by rule" in replayed.stdout
    assert all(rule["rule_id"] in replayed.stdout for rule in rules)
    # The oracle: the per-alert listing, grouped here.
    expected: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        row = expected.setdefault(
            alert["rule_id"],
            {"alerts": 0, "occurrences": 0, "sources": set(), "destinations": set(), "first": [], "last": []},
        )
        row["alerts"] += 1
        row["occurrences"] += alert["count"]
        row["sources"] |= {alert["src_ip"]} - {None}
        row["destinations"] |= {alert["dst_ip"]} - {None}
        row["first"].append(alert["ts"])
        row["last"].append(alert["last_ts"])
    assert len(rules) == len(expected) > 5
    assert any(rule["alerts"] > 1 for rule in rules) and any(
        rule["occurrences"] > rule["alerts"] for rule in rules
    )
    for rule in rules:
        want = expected[rule["rule_id"]]
        assert (rule["alerts"], rule["occurrences"]) == (want["alerts"], want["occurrences"]), rule
        assert set(rule["sources"]) == want["sources"] and set(rule["destinations"]) == want["destinations"]
        assert (rule["ts"], rule["last_ts"]) == (min(want["first"]), max(want["last"]))
    # Most severe first, then the rule with most alerts.
    order = [(-rule["severity"], -rule["alerts"], rule["rule_id"]) for rule in rules]
    assert order == sorted(order)
    high = json_lines(
        run("alerts", "--state", str(state), "--by-rule", "--severity", "high", "--json").stdout
    )
    assert high == [rule for rule in rules if rule["severity"] >= 3] and 0 < len(high) < len(rules)
    table = run("alerts", "--state", str(state), "--by-rule")
    assert table.returncode == 0 and f"{len(alerts)} alerts of {len(rules)} rules" in table.stdout
    assert "S7 PLC stop command" in table.stdout and "192.168.10.66" in table.stdout


def test_alerts_of_one_run(tmp_path: Path) -> None:
    """``alerts --run``: what one run raised, checked against the alerts log each run appends to."""
    state = tmp_path / "s"
    log = state / "alerts.jsonl"

    def replay(capture: str) -> set[str]:
        """Replay into the store; the ids of the alert lines this run appended to the log."""
        before = len(log.read_text().splitlines()) if log.exists() else 0
        result = run("replay", "--no-events", "--state", str(state), capture)
        assert result.returncode == 0, result.stderr
        return {json.loads(line)["alert_id"] for line in log.read_text().splitlines()[before:]}

    def listed(*args: str) -> list[dict[str, Any]]:
        result = run("alerts", "--state", str(state), "--json", *args)
        assert result.returncode == 0, result.stderr
        return json_lines(result.stdout)

    attack = replay(str(PCAPS / "demo" / "plant_attack.pcap"))  # run 1
    modbus = replay(ALL_FUNCTIONS)  # run 2: other flows, other alerts
    assert attack and modbus and not attack & modbus
    assert {alert["alert_id"] for alert in listed("--run", "1")} == attack
    last = listed("--run", "last")
    assert {alert["alert_id"] for alert in last} == modbus == {a["alert_id"] for a in listed("--run", "2")}
    assert len(last) == len(modbus)
    one_line_error(run("alerts", "--state", str(state), "--run", "3"), "no run 3 in")  # not yet
    # Replayed again, the attack's alerts are raised again (the same ids): run 3 owns them now.
    assert replay(str(PCAPS / "demo" / "plant_attack.pcap")) == attack
    assert listed("--run", "1") == [] and {a["alert_id"] for a in listed("--run", "last")} == attack
    rules = listed("--run", "last", "--by-rule")
    assert sum(rule["alerts"] for rule in rules) == len(attack)
    high = listed("--run", "last", "--severity", "high")
    assert high and {a["alert_id"] for a in high} < attack and all(a["severity"] >= 3 for a in high)


def test_learn_then_enforce_then_diff(tmp_path: Path) -> None:
    state = tmp_path / "s"
    learned = run("replay", "--learn", "--state", str(state), POLLING)
    assert learned.returncode == 0, learned.stderr
    assert "learned a baseline" in learned.stdout and (state / "baseline.yaml").is_file()
    shown = run("baseline", "show", "--state", str(state))
    assert shown.returncode == 0 and "format: ics-monitor-baseline/1" in shown.stdout
    assert "127.0.0.1 -> 127.0.0.1 modbus tcp/502" in shown.stdout
    # The polling capture reads only; the all-functions capture writes, restarts, sweeps.
    enforced = run("replay", "--state", str(state), ALL_FUNCTIONS)
    assert enforced.returncode == 0 and "enforced the baseline" in enforced.stdout
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    assert any(a["category"] == "baseline" or a["rule_id"].startswith("ICS-50") for a in alerts)
    # Identical baselines: no output, exit 0; different ones: lines and exit 1 (like diff).
    same = run("baseline", "diff", str(state / "baseline.yaml"), "--state", str(state))
    assert same.returncode == 0 and same.stdout == ""
    other = tmp_path / "other.yaml"
    made = run("baseline", "learn", "--state", str(state), "-o", str(other), ALL_FUNCTIONS)
    assert made.returncode == 0 and other.is_file() and "baseline learned from" in made.stderr
    different = run("baseline", "diff", str(state / "baseline.yaml"), str(other))
    assert different.returncode == 1 and different.stdout.strip()
    db = sqlite3.connect(state / "store.sqlite")
    assert db.execute("SELECT COUNT(*) FROM baselines").fetchone()[0] == 2
    db.close()


def test_learn_for_a_window_then_enforce(tmp_path: Path) -> None:
    state = tmp_path / "s"
    result = run("replay", "--learn-for", "2s", "--state", str(state), POLLING)
    assert result.returncode == 0, result.stderr
    assert "learned a baseline, then enforced it" in result.stdout
    assert (state / "baseline.yaml").is_file()


def test_user_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    state = str(tmp_path / "none")
    one_line_error(run("assets", "--state", state), "no store in")
    one_line_error(run("alerts", "--state", state), "no store in")
    one_line_error(run("es", "drain", "--state", state), "no such state directory")  # not made
    assert not Path(state).exists()
    one_line_error(
        run("replay", "--learn", "--learn-for", "1m", "--state", state, POLLING), "exclude each other"
    )
    one_line_error(run("replay", "--learn-for", "soon", "--state", state, POLLING), "bad duration")
    one_line_error(
        run("replay", "--baseline", str(tmp_path / "x.yaml"), "--state", state, POLLING), "no such baseline"
    )
    one_line_error(
        run("replay", "--zones", str(tmp_path / "z.yaml"), "--state", state, POLLING), "no such zones"
    )
    one_line_error(run("replay", "--rules", str(tmp_path), "--state", state, POLLING), "no rules in")
    one_line_error(run("baseline", "show", "--state", state), "no such baseline file")
    one_line_error(run("replay", "--state", state, str(tmp_path / "missing.pcap")), "no such file")
    run("replay", "--no-events", "--state", state, POLLING)
    one_line_error(run("alerts", "--state", state, "--severity", "urgent"), "bad severity")
    one_line_error(run("alerts", "--state", state, "--run", "yesterday"), "bad run")
    wrong_shape = tmp_path / "shape.yaml"
    wrong_shape.write_text("format: ics-monitor-baseline/1\nassets: 5\nconversations: [1]\n")
    one_line_error(run("replay", "--baseline", str(wrong_shape), "--state", state, POLLING), "baseline")
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text(": : :\n  - [")
    one_line_error(run("baseline", "show", str(not_yaml)), "not valid YAML")
    bad_zones = tmp_path / "zones.yaml"
    bad_zones.write_text("zones: [{name: plant, level: 1, subnets: [not-a-subnet]}]\n")
    one_line_error(run("replay", "--zones", str(bad_zones), "--state", state, POLLING), "bad zone")


def test_enforcing_replay_of_the_same_capture_twice_raises_nothing_new(tmp_path: Path) -> None:
    """Ids must not depend on what the store already knows: a new host is one alert, not one per run.

    The attack phase brings a host the baseline does not know; on the first run the inventory
    reports it (a ``new_asset`` change at its first ARP), on the second the restored inventory
    knows it already, and the alert must still come from that same first sighting.
    """
    state = tmp_path / "state"
    normal, attack = str(PCAPS / "demo" / "plant_normal.pcap"), str(PCAPS / "demo" / "plant_attack.pcap")
    assert run("baseline", "learn", "--state", str(state), normal).returncode == 0
    first = run("replay", "--state", str(state), attack)
    assert first.returncode == 0, first.stderr
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    assert any(a["rule_id"] == "ICS-5001" and a["src_ip"] == "192.168.10.66" for a in alerts)
    again = run("replay", "--state", str(state), attack)
    assert again.returncode == 0 and "(0 new)" in again.stdout, again.stdout[-600:]
    assert {a["alert_id"] for a in json_lines(run("alerts", "--state", str(state), "--json").stdout)} == {
        a["alert_id"] for a in alerts
    }


def test_out_targets_feed_a_jsonl_file_and_a_syslog_collector(tmp_path: Path) -> None:
    """``--out jsonl:FILE --out cef:udp://...``: beside the store, the same alerts reach both feeds."""
    import socket

    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    port = collector.getsockname()[1]
    state, feed = tmp_path / "state", tmp_path / "feed.jsonl"
    capture = str(PCAPS / "demo" / "plant_attack.pcap")
    result = run(
        "replay", "--no-events", "--state", str(state), "--out", f"jsonl:{feed}",
        "--out", f"cef:udp://127.0.0.1:{port}?kinds=alert", capture,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"jsonl: appended to {feed}" in result.stderr and "messages sent" in result.stderr
    stored = {a["alert_id"]: a for a in json_lines(run("alerts", "--state", str(state), "--json").stdout)}
    records = json_lines(feed.read_text())
    fed = {r["alert_id"] for r in records if r.get("event_type") == "alert"}
    assert stored and fed == set(stored)
    assets = json_lines(run("assets", "--state", str(state), "--json").stdout)
    assert {r["asset_id"] for r in records if r.get("event_type") == "asset"} == {
        a["asset_id"] for a in assets
    }
    rules = {a["rule_id"] for a in stored.values()}
    messages: list[str] = []
    try:
        # Every alert, some again later (a device's answer, a count): until each rule was heard
        # (a rule never heard ends in the collector's timeout).
        while not all(any(f"|{rule}|" in message for message in messages) for rule in rules):
            messages.append(collector.recv(65535).decode())
    finally:
        collector.close()
    assert len(messages) >= len(rules) and all("CEF:0|" in message for message in messages)
    bad = run("replay", "--state", str(state), "--out", "kafka:broker", capture)
    one_line_error(bad, "expected es, es:URL")


def test_replay_picks_workers_by_capture_size_and_cpus(monkeypatch: Any) -> None:
    """No --workers: one process for small captures; from the threshold on, one per usable CPU
    (at most MAX_AUTO_WORKERS); an explicit --workers always wins."""
    import os

    from ics_monitor.cli import app

    source = app._open([Path(POLLING)])
    assert 0 < source.size < app.AUTO_WORKERS_BYTES
    assert app._auto_workers(None, source) == 1
    assert app._auto_workers(3, source) == 3
    monkeypatch.setattr(app, "AUTO_WORKERS_BYTES", source.size)
    cpus = len(os.sched_getaffinity(0))
    assert app._auto_workers(None, source) == max(1, min(cpus, app.MAX_AUTO_WORKERS))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    assert app._auto_workers(None, source) == app.MAX_AUTO_WORKERS
    assert app._auto_workers(1, source) == 1


def test_a_compressed_capture_gets_the_workers_of_what_it_holds(monkeypatch: Any, tmp_path: Path) -> None:
    """A 20 MB zstd file of 400 MB of packets is a large capture, not a small one."""
    import zstandard

    from ics_monitor.cli import app

    packed = tmp_path / "polling.pcap.zst"
    packed.write_bytes(zstandard.ZstdCompressor().compress(Path(POLLING).read_bytes()))
    plain, compressed = app._open([Path(POLLING)]), app._open([packed])
    assert compressed.size < plain.size == plain.capture_size == compressed.capture_size
    monkeypatch.setattr(app, "AUTO_WORKERS_BYTES", plain.size)
    assert app._analysis_processes(None, compressed, 2) == app._analysis_processes(None, plain, 2) == 1
    assert (
        app._auto_workers(None, compressed)
        == app._auto_workers(None, plain)
        == min(app._cpus(), app.MAX_AUTO_WORKERS)
    )


def test_replay_leaves_one_cpu_to_the_analysis(monkeypatch: Any, tmp_path: Path) -> None:
    """replay and baseline learn: by default one worker process per CPU but one, so on 2 CPUs a
    single worker dissects while this process analyses (a pipeline); the same store as one process."""
    from typer.testing import CliRunner

    from ics_monitor import parallel
    from ics_monitor.cli import app

    source = app._open([Path(POLLING)])
    assert app._analysis_processes(None, source) == 0  # small: one process
    assert app._analysis_processes(1, source) == 0 and app._analysis_processes(3, source) == 3
    monkeypatch.setattr(app, "AUTO_WORKERS_BYTES", 1)
    assert [app._analysis_processes(None, source, cpus) for cpus in (1, 2, 3, 8)] == [
        0,
        1,
        2,
        app.MAX_AUTO_WORKERS,
    ]

    started: list[int] = []
    real = parallel.ShardedRun.__init__

    def counted(self: Any, spec: Any, paths: list[str], workers: int, *args: Any) -> None:
        started.append(workers)
        real(self, spec, paths, workers, *args)

    monkeypatch.setattr(parallel.ShardedRun, "__init__", counted)
    monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: {0, 1})
    outputs = []
    for args in (["--workers", "1"], []):
        state = tmp_path / f"state{len(outputs)}"
        result = CliRunner().invoke(app.app, ["replay", *args, "--state", str(state), ALL_FUNCTIONS])
        assert result.exit_code == 0, result.output
        outputs.append(
            [
                (state / name).read_bytes()
                for name in ("alerts.jsonl", "baseline.yaml")
                if (state / name).exists()
            ]
            + [sorted((state / "events.jsonl").read_bytes().splitlines())]
        )
    assert started == [1]
    assert outputs[1] == outputs[0] and len(outputs[0][-1]) > 100


def test_dissect_shards_large_captures_by_default(monkeypatch: Any, tmp_path: Path) -> None:
    """dissect picks its workers as replay does: from the size threshold on it runs sharded (the
    real worker processes), and writes the same lines as one process."""
    from typer.testing import CliRunner

    from ics_monitor import parallel
    from ics_monitor.cli import app

    runs: list[int] = []
    real = parallel.run_sharded

    def counted(pipeline: Any, paths: list[str], workers: int, *args: Any) -> Any:
        runs.append(workers)
        return real(pipeline, paths, workers, *args)

    monkeypatch.setattr(parallel, "run_sharded", counted)
    one = tmp_path / "one.jsonl"
    assert run("dissect", "--workers", "1", "-o", str(one), ALL_FUNCTIONS).returncode == 0
    monkeypatch.setattr(app, "AUTO_WORKERS_BYTES", 1)
    monkeypatch.setattr(app.os, "sched_getaffinity", lambda pid: {0, 1})
    default = tmp_path / "default.jsonl"
    result = CliRunner().invoke(app.app, ["dissect", "-o", str(default), ALL_FUNCTIONS])
    assert result.exit_code == 0, result.output
    assert runs == [2]
    assert default.read_bytes() == one.read_bytes()
    # --strict (chasing a dissector bug) stays in one process unless --workers says otherwise.
    strict = tmp_path / "strict.jsonl"
    result = CliRunner().invoke(app.app, ["dissect", "--strict", "-o", str(strict), ALL_FUNCTIONS])
    assert result.exit_code == 0, result.output
    assert runs == [2] and strict.read_bytes() == one.read_bytes()


def test_replay_of_modbus_rtu_over_tcp_analyses_it_as_modbus(tmp_path: Path) -> None:
    # A serial device server's port (4001, no Modbus hint): RTU frames found by content. Before RTU
    # framing was read, the flow was undecodable (ICS-3008) and its FC 8 restart went unseen.
    state = tmp_path / "state"
    capture = str(PCAPS / "modbus" / "pymodbus_rtu_over_tcp4001.pcap")
    result = run("replay", "--state", str(state), capture)
    assert result.returncode == 0, result.stderr
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    assert [(a["rule_id"], a["dst_port"]) for a in alerts] == [("ICS-1301", 4001)]
    (asset,) = json_lines(run("assets", "--state", str(state), "--json").stdout)
    assert {"modbus_client", "modbus_server"} <= set(asset["roles"])
    assert asset["identity"]["vendor_name"] == "ics-monitor test vendor"
    events = json_lines((state / "events.jsonl").read_text())
    framings = {e["framing"] for e in events if e["event_type"] == "modbus"}
    assert framings == {"rtu"}
    (flow,) = [e for e in events if e["event_type"] == "flow"]
    assert flow["app_protocol"] == "modbus"


def test_a_failing_output_loses_nothing_else_and_fails_the_command(tmp_path: Path) -> None:
    # A SIEM file on a full disk (/dev/full): the store and the state directory's files keep every
    # alert, the output says once that it stopped, and the command ends with one error line.
    capture = str(PCAPS / "demo" / "plant_attack.pcap")
    reference = run("replay", "--no-events", "--state", str(tmp_path / "ref"), capture)
    assert reference.returncode == 0, reference.stderr
    stored = json_lines(run("alerts", "--state", str(tmp_path / "ref"), "--json").stdout)
    state = tmp_path / "state"
    result = run("replay", "--no-events", "--state", str(state), "--out", "jsonl:/dev/full", capture)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "ics-monitor: jsonl:/dev/full: write failed (No space left on device); the run goes on without it"
    )
    assert lines[-1].startswith("ics-monitor: error: jsonl:/dev/full missed ")
    kept = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    assert {a["alert_id"] for a in kept} == {a["alert_id"] for a in stored} and stored
    assert len(json_lines((state / "alerts.jsonl").read_text())) >= len(stored)
    # An output that cannot be opened: one line before any work.
    for target in (tmp_path / "no" / "dir.jsonl", tmp_path):
        one_line_error(
            run("replay", "--state", str(tmp_path / "other"), "--out", f"jsonl:{target}", capture),
            f"--out jsonl:{target}: cannot open",
        )


def test_alerts_since_and_run_refuse_what_they_cannot_mean(tmp_path: Path) -> None:
    # nan, inf and 1e400 once gave "0 alerts"; a bad date said "bad duration"; a run that does
    # not exist gave an empty list.
    state = str(tmp_path / "state")
    run("replay", "--no-events", "--state", state, POLLING)
    for since in ("nan", "inf", "1e400", "2026-13-01", "soon"):
        one_line_error(run("alerts", "--state", state, "--since", since), f"bad --since {since!r}")
    one_line_error(run("alerts", "--state", state, "--run", "99"), "no run 99 in")
    assert run("alerts", "--state", state, "--run", "1").returncode == 0
    assert run("alerts", "--state", state, "--since", "2h").returncode == 0


def test_a_read_only_store_can_be_read(tmp_path: Path) -> None:
    # An archived state directory, or another user's: alerts and assets read it as it is (they
    # once failed with "attempt to write a readonly database").  Root ignores file modes, so the
    # reading commands run without the capabilities that let it.
    import os
    import shutil
    import subprocess

    from tests.unit.cli.test_cli import CLI

    state = tmp_path / "state"
    assert (
        run(
            "replay", "--no-events", "--state", str(state), str(PCAPS / "demo" / "plant_attack.pcap")
        ).returncode
        == 0
    )
    expected = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) drops root's file-mode override"
        drop = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]
    (state / "store.sqlite").chmod(0o444)
    state.chmod(0o555)
    try:
        denied = subprocess.run(
            [*prefix, "touch", str(state / "probe")], capture_output=True, text=True, check=False
        )
        assert denied.returncode != 0, "the state directory is still writable"
        for command in (["alerts", "--json"], ["assets", "--json"]):
            result = subprocess.run(
                [*prefix, CLI, *command, "--state", str(state)], capture_output=True, text=True, check=False
            )
            assert result.returncode == 0, result.stderr
            if command[0] == "alerts":
                assert json_lines(result.stdout) == expected and expected
            else:
                assert json_lines(result.stdout)
    finally:
        state.chmod(0o755)
