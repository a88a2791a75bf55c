"""``extract``: an alert's frames, flow or hosts carved from the captures its run read."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_capture
from ics_monitor.core.addresses import format_ip
from ics_monitor.decode.decoder import Decoder
from ics_monitor.evidence import EvidenceError, Selection, carve, selection_for
from tests.conftest import PCAPS, need_tool
from tests.unit.cli.test_cli import run
from tests.unit.cli.test_replay import json_lines, one_line_error

NORMAL = PCAPS / "demo" / "plant_normal.pcap"
ATTACK = PCAPS / "demo" / "plant_attack.pcap"


@pytest.fixture(scope="module")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, Any]]]:
    """The demo learned and replayed (copies of its captures, so a test may remove one); alerts by rule."""
    root = tmp_path_factory.mktemp("extract")
    captures = [shutil.copy(path, root / path.name) for path in (NORMAL, ATTACK)]
    state = root / "state"
    assert run("baseline", "learn", "--state", str(state), str(captures[0])).returncode == 0
    assert run("replay", "--state", str(state), *map(str, captures)).returncode == 0
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    return state, {alert["rule_id"]: alert for alert in alerts}


def frames_of(path: Path) -> list[tuple[float, int, bytes, int]]:
    capture = open_capture(str(path))
    try:
        return list(capture)
    finally:
        capture.close()


def endpoints(frame: tuple[float, int, bytes, int]) -> tuple[str, int, str, int]:
    packet = Decoder().decode(1, *frame)
    assert packet is not None
    return format_ip(packet.src_ip), packet.sport, format_ip(packet.dst_ip), packet.dport


def test_the_frames_an_alert_cites(
    demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    state, alerts = demo_state
    stop = alerts["ICS-1001"]  # the S7 PLC stop of the attack phase
    out = tmp_path / "stop.pcap"
    result = run("extract", stop["alert_id"][:8], "--state", str(state), "--scope", "frames", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"1 frame (pcap), frames {stop['frames'][0]}" in result.stdout
    [frame] = frames_of(out)
    assert abs(frame[0] - stop["ts"]) < 1e-6
    assert endpoints(frame) == (stop["src_ip"], stop["src_port"], stop["dst_ip"], stop["dst_port"])
    # tshark agrees it is the stop: S7 job, function 0x29 (PLC Stop).
    need_tool("tshark")
    fields = subprocess.run(
        ["tshark", "-r", str(out), "-T", "fields", "-e", "s7comm.param.func"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert fields == ["0x29"]


def test_the_flow_of_an_alert(demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    state, alerts = demo_state
    cold = alerts["ICS-1201"]  # DNP3 cold restart
    out = tmp_path / "flow.pcap"
    result = run("extract", cold["alert_id"], "--state", str(state), "--pad", "2", "-o", str(out))
    assert result.returncode == 0, result.stderr
    carved = frames_of(out)
    a, b = (cold["src_ip"], cold["src_port"]), (cold["dst_ip"], cold["dst_port"])
    for frame in carved:
        src_ip, sport, dst_ip, dport = endpoints(frame)
        assert {(src_ip, sport), (dst_ip, dport)} == {a, b}
        assert cold["ts"] - 2 - 1e-6 <= frame[0] <= cold["last_ts"] + 2 + 1e-6
    assert [frame[0] for frame in carved] == sorted(frame[0] for frame in carved)
    # Every frame of that connection and window in the attack capture, counted by tshark.
    need_tool("tshark")
    window = f"frame.time_epoch >= {cold['ts'] - 2:.6f} && frame.time_epoch <= {cold['last_ts'] + 2:.6f}"
    flow = f"ip.addr == {a[0]} && ip.addr == {b[0]} && tcp.port == {a[1]} && tcp.port == {b[1]}"
    listed = subprocess.run(
        ["tshark", "-r", str(ATTACK), "-Y", f"{flow} && {window}", "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(carved) == len(listed) > 3
    assert f"{len(carved):,} frames (pcap), flow {a[0]}:{a[1]} <-> {b[0]}:{b[1]}" in result.stdout


def test_an_alert_without_ports_takes_its_hosts(
    demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    state, alerts = demo_state
    rdp = [a for a in alerts.values() if a["rule_id"] == "ICS-5001" and a["src_ip"].startswith("10.")]
    assert rdp, sorted(alerts)
    out = tmp_path / "host.pcap"
    result = run("extract", rdp[0]["alert_id"], "--state", str(state), "--pad", "60", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"traffic of {rdp[0]['src_ip']}" in result.stdout
    carved = frames_of(out)
    assert carved and all(rdp[0]["src_ip"] in endpoints(frame)[::2] for frame in carved)


def test_errors_are_one_line(demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path) -> None:
    state, alerts = demo_state
    one_line_error(run("extract", "zz", "--state", str(state)), "no alert 'zz'")
    one_line_error(run("extract", "", "--state", str(state)), "starts more than one alert id")
    stop = alerts["ICS-1001"]
    # Frames cited by number in captures that are not the run's: refused, not mis-carved.
    other = str(PCAPS / "modbus" / "pymodbus_polling.pcap")
    result = run("extract", stop["alert_id"], other, "--state", str(state), "--scope", "frames")
    one_line_error(result, f"frame {stop['frames'][0]} the alert cites is not among them")
    one_line_error(
        run("extract", stop["alert_id"], "--state", str(state), "--scope", "bytes"), "unknown scope"
    )
    one_line_error(run("extract", stop["alert_id"], "--state", str(tmp_path / "none")), "no store")
    assert not list(Path.cwd().glob("alert-*.pcap"))


def test_a_capture_gone_since_the_run(tmp_path: Path) -> None:
    capture = Path(shutil.copy(ATTACK, tmp_path / "attack.pcap"))
    state = tmp_path / "state"
    assert run("replay", "--state", str(state), str(capture)).returncode == 0
    alert = json_lines(run("alerts", "--state", str(state), "--json").stdout)[0]
    capture.unlink()
    result = run("extract", alert["alert_id"], "--state", str(state))
    one_line_error(result, f"capture {capture} (read by run 1) is not there")
    # Given the capture again (elsewhere), the carve works.
    moved = Path(shutil.copy(ATTACK, tmp_path / "moved.pcap"))
    out = tmp_path / "out.pcap"
    assert (
        run("extract", alert["alert_id"], str(moved), "--state", str(state), "-o", str(out)).returncode == 0
    )
    assert frames_of(out)


def test_carve_checks_cited_frames_against_the_alert() -> None:
    # Frame 1 of the polling capture is traffic of 127.0.0.1: an alert about other hosts refuses it.
    capture = [str(PCAPS / "modbus" / "pymodbus_polling.pcap")]
    wrong = Selection("frames", frames=frozenset({1}), hosts=(bytes([10, 0, 0, 9]),), names=("10.0.0.9",))
    with pytest.raises(EvidenceError, match=r"frame 1 of these captures is not traffic of 10\.0\.0\.9"):
        carve(capture, wrong)
    right = Selection(
        "frames", frames=frozenset({1, 3}), hosts=(bytes([127, 0, 0, 1]),), names=("127.0.0.1",)
    )
    carved = carve(capture, right)
    assert len(carved.frames) == 2 and carved.read == 3  # stops after the last cited frame


def test_selection_for_an_alert() -> None:
    alert = {
        "alert_id": "a1",
        "src_ip": "10.0.0.5",
        "src_port": 40000,
        "dst_ip": "10.0.0.9",
        "dst_port": 502,
        "ts": 100.0,
        "last_ts": 110.0,
        "frames": [7, 9],
    }
    flow = selection_for(alert, "flow", 5.0)
    assert (flow.scope, flow.ports, flow.start, flow.end) == ("flow", (40000, 502), 95.0, 115.0)
    assert selection_for(alert, "frames", 5.0).frames == frozenset({7, 9})
    assert selection_for({**alert, "dst_port": None}, "flow", 0.0).scope == "hosts"
    with pytest.raises(EvidenceError, match="names no IP address"):
        selection_for({**alert, "src_ip": None, "dst_ip": None}, "hosts", 0.0)
    with pytest.raises(EvidenceError, match="cites no frames"):
        selection_for({**alert, "frames": []}, "frames", 0.0)
    assert json.dumps(flow.describe()) == '"flow 10.0.0.5:40000 <-> 10.0.0.9:502"'
