"""``extract``: an alert's frames, flow or hosts carved from the captures its run read."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture.writer import CaptureWriter, UnwritableFrameError, write_capture
from ics_monitor.core.addresses import format_ip
from ics_monitor.decode.decoder import Decoder
from ics_monitor.evidence import EvidenceError, Selection, carve, evidence_captures, selection_for
from ics_monitor.sinks.sqlite import Store
from tests.conftest import PCAPS, need_tool
from tests.unit.capture.test_writer import read_back
from tests.unit.cli.test_cli import CLI, run
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


def replayed(state: Path, capture: Path, rule_id: str) -> dict[str, Any]:
    """Replay ``capture`` into ``state``; the first stored alert of ``rule_id``."""
    assert run("replay", "--state", str(state), str(capture)).returncode == 0
    alerts = json_lines(run("alerts", "--state", str(state), "--json").stdout)
    return next(alert for alert in alerts if alert["rule_id"] == rule_id)


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
    [frame] = read_back(out)
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
    carved = read_back(out)
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
    carved = read_back(out)
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
    one_line_error(
        run("extract", stop["alert_id"], "--state", str(state), "-o", str(tmp_path / "no" / "dir.pcap")),
        "cannot write",
    )
    # Found in review: -o naming a capture read overwrote the evidence source.
    victim = Path(shutil.copy(ATTACK, tmp_path / "victim.pcap"))
    size = victim.stat().st_size
    result = run("extract", stop["alert_id"], str(victim), "--state", str(state), "-o", str(victim))
    one_line_error(result, "is one of the captures read")
    assert victim.stat().st_size == size
    victim.unlink()
    # A failed carve leaves an existing file as it was, and no partial file.
    kept = tmp_path / "kept.pcap"
    kept.write_bytes(b"earlier evidence")
    result = run(
        "extract", stop["alert_id"], other, "--state", str(state), "--scope", "frames", "-o", str(kept)
    )
    assert result.returncode == 2 and kept.read_bytes() == b"earlier evidence"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["kept.pcap"]
    assert not list(Path.cwd().glob("alert-*.pcap"))


def test_a_capture_gone_since_the_run(tmp_path: Path) -> None:
    capture = Path(shutil.copy(ATTACK, tmp_path / "attack.pcap"))
    state = tmp_path / "state"
    assert run("replay", "--state", str(state), str(capture)).returncode == 0
    alert = json_lines(run("alerts", "--state", str(state), "--json").stdout)[0]
    capture.unlink()
    result = run("extract", alert["alert_id"], "--state", str(state))
    one_line_error(result, f"capture {capture}, read by the alert's run, is not there")
    # Given the capture again (elsewhere), the carve works.
    moved = Path(shutil.copy(ATTACK, tmp_path / "moved.pcap"))
    out = tmp_path / "out.pcap"
    assert (
        run("extract", alert["alert_id"], str(moved), "--state", str(state), "-o", str(out)).returncode == 0
    )
    assert read_back(out)


def test_carve_checks_cited_frames_against_the_alert(tmp_path: Path) -> None:
    # Frame 1 of the polling capture is traffic of 127.0.0.1: an alert about other hosts refuses it.
    capture = [str(PCAPS / "modbus" / "pymodbus_polling.pcap")]
    wrong = Selection("frames", frames=frozenset({1}), hosts=(bytes([10, 0, 0, 9]),), names=("10.0.0.9",))
    writer = CaptureWriter(tmp_path / "wrong.pcap")
    with pytest.raises(EvidenceError, match=r"frame 1 of these captures is not traffic of 10\.0\.0\.9"):
        carve(capture, wrong, writer)
    assert writer.frames == 0
    late = Selection("frames", frames=frozenset({1}), hosts=(bytes([127, 0, 0, 1]),), start=0.0, end=1.0)
    with pytest.raises(EvidenceError, match="not within the alert's time"):
        carve(capture, late, CaptureWriter(tmp_path / "late.pcap"))
    right = Selection(
        "frames", frames=frozenset({1, 3}), hosts=(bytes([127, 0, 0, 1]),), names=("127.0.0.1",)
    )
    writer = CaptureWriter(tmp_path / "right.pcap")
    carved = carve(capture, right, writer)
    assert writer.close() == "pcap"
    assert (carved.frames, carved.read) == (2, 3)  # stops after the last cited frame
    assert [frame[0] for frame in read_back(tmp_path / "right.pcap")] == [carved.first_ts, carved.last_ts]


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


def test_cited_frames_of_other_captures_at_other_times_are_refused(tmp_path: Path) -> None:
    # Found in review: a run over the attack capture alone numbers its frames from 1; carving its
    # error-storm alert's frames from normal + attack wrote two polling frames of the same hosts.
    state = tmp_path / "state"
    storm = replayed(state, ATTACK, "ICS-4001")
    out = tmp_path / "out.pcap"
    wrong = run(
        "extract", storm["alert_id"], str(NORMAL), str(ATTACK), "--state", str(state), "--scope", "frames"
    )
    one_line_error(wrong, "is not traffic of")
    right = run("extract", storm["alert_id"], "--state", str(state), "--scope", "frames", "-o", str(out))
    assert right.returncode == 0, right.stderr
    carved = read_back(out)
    # The storm cites the errors that led up to it: the last is the one that fired it.
    assert len(carved) == len(storm["frames"]) and abs(carved[-1][0] - storm["ts"]) < 0.001


def test_captures_recorded_absolute(tmp_path: Path) -> None:
    # Found in review: paths were stored as typed, so extract run elsewhere found another file.
    (tmp_path / "sub").mkdir()
    shutil.copy(ATTACK, tmp_path / "attack.pcap")
    shutil.copy(NORMAL, tmp_path / "sub" / "attack.pcap")  # same name, other traffic
    cli = Path(CLI)
    replay = subprocess.run(
        [str(cli), "replay", "--state", "state", "attack.pcap"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert replay.returncode == 0
    alerts = json_lines(run("alerts", "--state", str(tmp_path / "state"), "--json").stdout)
    stop = next(a for a in alerts if a["rule_id"] == "ICS-1001")
    carve_run = subprocess.run(
        [
            str(cli),
            "extract",
            stop["alert_id"],
            "--state",
            "../state",
            "--scope",
            "frames",
            "-o",
            "stop.pcap",
        ],
        cwd=tmp_path / "sub",
        capture_output=True,
        text=True,
        check=False,
    )
    assert carve_run.returncode == 0, carve_run.stderr
    assert endpoints(read_back(tmp_path / "sub" / "stop.pcap")[0])[2:] == (stop["dst_ip"], 102)


def test_fragments_of_the_flow_are_taken(tmp_path: Path) -> None:
    # Found in review: only the fragment completing a datagram was matched, so Wireshark could
    # not reassemble the request the alert was about.
    from scapy.layers.inet import IP, UDP, fragment
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    datagram = IP(src="10.0.0.5", dst="10.0.0.9", id=7) / UDP(sport=40000, dport=20000) / Raw(b"x" * 2500)
    pieces = [Ether() / piece for piece in fragment(datagram, fragsize=1000)]
    other = Ether() / IP(src="10.0.0.5", dst="10.0.0.7") / UDP(sport=40000, dport=20000) / Raw(b"y")
    frames = [(1000.0 + n, 1, bytes(p), len(bytes(p))) for n, p in enumerate([pieces[0], other, *pieces[1:]])]
    capture = tmp_path / "fragments.pcap"
    write_capture(capture, frames)
    alert = {
        "alert_id": "f",
        "src_ip": "10.0.0.5",
        "src_port": 40000,
        "dst_ip": "10.0.0.9",
        "dst_port": 20000,
    }
    selection = selection_for({**alert, "ts": 1003.0, "last_ts": 1003.0}, "flow", 5.0)
    writer = CaptureWriter(tmp_path / "out.pcap")
    carved = carve([str(capture)], selection, writer)
    writer.close()
    assert len(pieces) == 3 and carved.frames == 3
    assert [frame[2] for frame in read_back(tmp_path / "out.pcap")] == [bytes(p) for p in pieces]


def test_evidence_captures_follow_the_runs() -> None:
    def run_record(run_id: int, first: float, last: float, *captures: str) -> dict[str, Any]:
        return {"run_id": run_id, "first_ts": first, "last_ts": last, "captures": list(captures)}

    runs = [
        run_record(1, 0.0, 50.0, "/a.pcap"),
        run_record(2, 0.0, 100.0, "/a.pcap", "/b.pcap"),
        run_record(3, 60.0, 100.0, "/b.pcap"),
    ]
    # Raised last by run 3 (a part of b), its record kept from run 2 (more occurrences): frames
    # are numbered as run 2 read them.
    alert = {"run_id": 3, "ts": 40.0, "recorded_ts": 40.0, "last_ts": 90.0}
    assert evidence_captures(alert, runs, "frames", 5.0) == ["/a.pcap", "/b.pcap"]
    assert evidence_captures({**alert, "recorded_ts": 70.0}, runs, "frames", 5.0) == ["/b.pcap"]
    # The store names the run whose record was kept: its captures, even where another run that
    # raised it read the same time.
    assert evidence_captures({**alert, "record_run": 3}, runs, "frames", 5.0) == ["/b.pcap"]
    assert evidence_captures({**alert, "record_run": 1, "recorded_ts": 70.0}, runs, "frames", 5.0) == [
        "/a.pcap"
    ]
    # A run the store does not list: the choice by time, as for a store from before record_run.
    assert evidence_captures({**alert, "record_run": 9}, runs, "frames", 5.0) == ["/a.pcap", "/b.pcap"]
    # A window: every run covering it, each capture once.
    assert evidence_captures(alert, runs, "flow", 5.0) == ["/a.pcap", "/b.pcap"]
    assert evidence_captures({**alert, "ts": 70.0, "last_ts": 80.0}, runs[:1], "flow", 5.0) == []


def test_icmp_alerts_take_their_hosts_and_odd_times_are_refused(tmp_path: Path) -> None:
    alert = {
        "alert_id": "i",
        "src_ip": "10.0.0.5",
        "src_port": 0,
        "dst_ip": "10.0.0.9",
        "dst_port": 0,
        "ts": 5.0,
    }
    assert selection_for(alert, "flow", 1.0).scope == "hosts"
    for ts in (-1.0, float("inf"), float("nan")):
        with pytest.raises(UnwritableFrameError, match="cannot be written"):
            write_capture(tmp_path / "odd.pcap", [(ts, 1, b"\x00" * 14, 14)])


def test_every_demo_alert_carves_its_cited_frames(
    demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    # The checks refuse other captures, not the run's own: each alert's frames come out.
    state, _ = demo_state
    with Store(state, create=False) as store:
        alerts = [store.find_alerts(alert["alert_id"])[0] for alert in store.alerts()]
        runs = [run for run in store.runs() if run["command"] != "live"]
    assert len(alerts) > 10
    for alert in alerts:
        writer = CaptureWriter(tmp_path / f"{alert['alert_id']}.pcap")
        carved = carve(
            evidence_captures(alert, runs, "frames", 0.0), selection_for(alert, "frames", 0.0), writer
        )
        writer.close()
        assert carved.frames == len(alert["frames"]), alert["rule_id"]


def test_second_review_arp_sweep_frames_and_twin_captures(tmp_path: Path) -> None:
    # An ARP sweep is judged seconds after its requests: the frame it cites follows its time.
    state = tmp_path / "state"
    sweep = replayed(state, PCAPS / "network" / "arp_mitm.pcap", "ICS-7003")
    out = tmp_path / "sweep.pcap"
    result = run("extract", sweep["alert_id"], "--state", str(state), "--scope", "frames", "-o", str(out))
    assert result.returncode == 0, result.stderr
    # Two captures of the same traffic give each frame once.
    twin = Path(shutil.copy(ATTACK, tmp_path / "twin.pcap"))
    stop = Selection(
        "flow",
        hosts=(bytes([192, 168, 10, 66]), bytes([192, 168, 10, 12])),
        ports=(50066, 102),
        names=("192.168.10.66", "192.168.10.12"),
    )
    once, twice = CaptureWriter(tmp_path / "once.pcap"), CaptureWriter(tmp_path / "twice.pcap")
    single = carve([str(ATTACK)], stop, once)
    double = carve([str(ATTACK), str(twin)], stop, twice)
    once.close()
    twice.close()
    assert single.frames == double.frames > 10


def test_frames_are_read_from_the_run_whose_record_was_kept(tmp_path: Path) -> None:
    # Found in review: a second run over a copy missing two ACKs and the third occurrence raised
    # the alert last (2 occurrences) while the store kept the first run's record (3, its frame
    # numbers): the frames were read from the copy, 2 numbers off on the same connection, exit 0.
    original = PCAPS / "modbus" / "pymodbus_all_functions.pcap"
    frames = read_back(original)
    rule = "ICS-1301"
    state = tmp_path / "state"
    whole = replayed(state, original, rule)
    assert whole["count"] == 3
    third = whole["frames"][-1]
    dropped = {5, 7, third, third + 1}  # two bare ACKs; the third occurrence and its answer
    assert all(not frames[number - 1][2][66:] for number in (5, 7))
    copy = tmp_path / "copy.pcap"
    write_capture(copy, [frame for number, frame in enumerate(frames, 1) if number not in dropped])
    again = replayed(state, copy, rule)
    assert (again["alert_id"], again["count"], again["frames"]) == (whole["alert_id"], 3, whole["frames"])
    out = tmp_path / "out.pcap"
    result = run("extract", whole["alert_id"], "--state", str(state), "--scope", "frames", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert [frame[2] for frame in read_back(out)] == [frames[number - 1][2] for number in whole["frames"]]


def test_an_alert_keyed_on_its_source_cites_frames_with_other_devices(tmp_path: Path) -> None:
    # Found in review: a throttled alert deduplicated on its source alone (ICS-3003, a source
    # enumerating device identities) cites later occurrences with other devices; frames scope
    # refused them for not being between its two addresses.
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    def frame(dst: str, n: int) -> tuple[float, int, bytes, int]:
        data = bytes(Ether() / IP(src="10.0.0.5", dst=dst) / TCP(sport=40000 + n, dport=502))
        return (1000.0 + n, 1, data, len(data))

    capture = tmp_path / "enumeration.pcap"
    write_capture(capture, [frame("10.0.0.9", 0), frame("10.0.0.7", 1), frame("10.0.0.8", 2)])
    alert = {
        "alert_id": "e",
        "key": "10.0.0.5",
        "src_ip": "10.0.0.5",
        "src_port": 40000,
        "dst_ip": "10.0.0.9",
        "dst_port": 502,
        "ts": 1000.0,
        "last_ts": 1002.0,
        "frames": [1, 2, 3],
    }
    writer = CaptureWriter(tmp_path / "out.pcap")
    assert carve([str(capture)], selection_for(alert, "frames", 0.0), writer).frames == 3
    writer.close()
    # Keyed on the pair (or on an address only inside a longer one): both addresses, as before.
    for key in ("10.0.0.5>10.0.0.9", "10.0.0.55", "x:10.0.0.9"):
        selection = selection_for({**alert, "key": key}, "frames", 0.0)
        with pytest.raises(EvidenceError, match=r"is not traffic of 10\.0\.0\.5 and 10\.0\.0\.9"):
            carve([str(capture)], selection, CaptureWriter(tmp_path / "refused.pcap"))
    # Keyed on the destination: frames must reach it.
    selection = selection_for({**alert, "key": "modbus:10.0.0.9"}, "frames", 0.0)
    assert selection.required == (bytes([10, 0, 0, 9]),)


def test_an_arp_alert_takes_the_claimants_mac(tmp_path: Path) -> None:
    # Found in review: ARP poisoning (ICS-7002) matched nothing in flow or hosts scope: its
    # replies carry the address it claims, not its own.
    state = tmp_path / "state"
    capture = PCAPS / "network" / "arp_mitm.pcap"
    poisoning = replayed(state, capture, "ICS-7002")
    mac = bytes.fromhex(poisoning["src_mac"].replace(":", ""))
    out = tmp_path / "poisoning.pcap"
    result = run("extract", poisoning["alert_id"], "--state", str(state), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"MAC {poisoning['src_mac']}" in result.stdout + result.stderr
    carved = read_back(out)
    everything = read_back(capture)
    assert all(mac in (data[0:6], data[6:12]) for _, _, data, _ in carved)
    # The replies counted since the window opened, the one that fired it among them, and
    # frames relayed through that MAC (IPv4).
    cited = everything[poisoning["frames"][0] - 1]
    assert cited in carved
    replies = [
        f for f in carved if f[2][12:14] == b"\x08\x06" and f[2][20:22] == b"\x00\x02" and f[2][22:28] == mac
    ]
    assert len(replies) >= poisoning["evidence"]["replies"]
    assert any(f[2][12:14] == b"\x08\x00" for f in carved)
    start = poisoning["evidence"]["window_start"] - 5.0
    expected = [
        f
        for f in everything
        if start <= f[0] <= poisoning["last_ts"] + 5.0 and mac in (f[2][0:6], f[2][6:12])
    ]
    assert carved == expected


def test_output_through_a_link_and_sigterm(
    demo_state: tuple[Path, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    state, alerts = demo_state
    stop = alerts["ICS-1001"]
    # -o naming a symbolic link writes the file it names; the link stays.
    real = tmp_path / "evidence" / "stop.pcap"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "stop-link.pcap"
    link.symlink_to(real)
    result = run("extract", stop["alert_id"], "--state", str(state), "--scope", "frames", "-o", str(link))
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and len(read_back(real)) == 1
    assert sorted(p.name for p in real.parent.iterdir()) == ["stop.pcap"]
    # SIGTERM during a long carve: exit 130, no partial file, nothing at the target.
    frames = read_back(ATTACK)
    big = tmp_path / "big.pcap"
    write_capture(big, frames * 500)
    out = tmp_path / "big-out.pcap"
    partial = tmp_path / "big-out.pcap.partial"
    process = subprocess.Popen(
        [
            CLI,
            "extract",
            stop["alert_id"],
            str(big),
            "--state",
            str(state),
            "--scope",
            "hosts",
            "--pad",
            "1e9",
        ]
        + ["-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert partial.exists(), "the carve ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == f"ics-monitor: error: interrupted: {out} not written"
    assert not partial.exists() and not out.exists()


def _wrapped(frames: list[tuple[float, int, bytes, int]], how: str) -> list[tuple[float, int, bytes, int]]:
    """``frames`` (Ethernet) carried in VXLAN, or as a Linux cooked capture (SLL) would hold them."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    out = []
    for ts, _link, data, _wire in frames:
        if how == "vxlan":
            outer = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(
                src="10.9.9.1", dst="10.9.9.2"
            )
            wrapped = bytes(outer / UDP(sport=49152, dport=4789) / VXLAN(vni=7) / Ether(data))
            out.append((ts, 1, wrapped, len(wrapped)))
        else:  # SLL: packet type, ARPHRD_ETHER, address length, the sender's address, protocol
            cooked = b"\x00\x00\x00\x01\x00\x06" + data[6:12] + b"\x00\x00" + data[12:14] + data[14:]
            out.append((ts, 113, cooked, len(cooked)))
    return out


def test_review_arp_alerts_in_tunnels_and_cooked_captures(tmp_path: Path) -> None:
    # Found in review: the claimant's MAC was matched on the outer Ethernet header only (a
    # VXLAN-carried poisoning matched nothing), and a Linux cooked capture, which names only the
    # sender, silently lost the frames sent to the claimant.
    capture = PCAPS / "network" / "arp_mitm.pcap"
    frames = read_back(capture)
    for how, link in (("vxlan", 1), ("sll", 113)):
        wrapped = tmp_path / f"{how}.pcap"
        write_capture(wrapped, _wrapped(frames, how))
        state = tmp_path / f"state-{how}"
        poisoning = replayed(state, wrapped, "ICS-7002")
        out = tmp_path / f"{how}-out.pcap"
        result = run("extract", poisoning["alert_id"], "--state", str(state), "-o", str(out))
        assert result.returncode == 0, result.stderr
        carved = read_back(out)
        mac = bytes.fromhex(poisoning["src_mac"].replace(":", ""))
        start, end = poisoning["evidence"]["window_start"] - 5.0, poisoning["last_ts"] + 5.0
        if how == "vxlan":
            inner = [f for f in frames if start <= f[0] <= end and mac in (f[2][0:6], f[2][6:12])]
            assert len(carved) == len(inner) > 5 and all(f[1] == link for f in carved)
            assert "Linux cooked" not in result.stderr
        else:
            # From the claimant, and ARP to it; IP sent to it cannot be told: said, not hidden.
            assert "names only the sender's MAC" in result.stderr
            sent = [f for f in frames if start <= f[0] <= end and f[2][6:12] == mac]
            arp_to = [
                f
                for f in frames
                if start <= f[0] <= end and f[2][12:14] == b"\x08\x06" and f[2][32:38] == mac
            ]
            assert len(carved) == len(sent) + len({f[0] for f in arp_to} - {f[0] for f in sent})


def test_review_keys_read_as_addresses_output_targets_and_live_records(tmp_path: Path) -> None:
    from ics_monitor.evidence import _named_in

    assert not _named_in("2001:db8::1:5", "2001:db8::1")  # a longer IPv6 address
    assert _named_in("2001:db8::1>2001:db8::2:tcp/502", "2001:db8::2")
    assert _named_in("[fe80::1]:502", "fe80::1") and _named_in("a>10.0.0.13:1>10", "10.0.0.13")
    assert not _named_in("10.0.0.55", "10.0.0.5") and not _named_in("10.0.0.10>10.0.0.11", "10.0.0.1")
    # A record kept from a live run: its frame numbers are that run's, read from no file.
    runs = [
        {"run_id": 1, "command": "replay", "first_ts": 0.0, "last_ts": 100.0, "captures": ["/a.pcap"]},
        {"run_id": 2, "command": "live", "first_ts": 0.0, "last_ts": 100.0, "captures": ["eth0"]},
    ]
    alert = {"alert_id": "x", "run_id": 2, "record_run": 2, "ts": 40.0, "last_ts": 40.0}
    with pytest.raises(EvidenceError, match="as live run 2 numbered them"):
        evidence_captures(alert, runs, "frames", 5.0)
    assert evidence_captures(alert, runs, "flow", 5.0) == ["/a.pcap"]
    # Output: a loop of links, a device or a directory are one-line errors; nothing replaced.
    state = tmp_path / "state"
    stop = replayed(state, ATTACK, "ICS-1001")
    loop = tmp_path / "loop.pcap"
    loop.symlink_to(loop)
    one_line_error(run("extract", stop["alert_id"], "--state", str(state), "-o", str(loop)), "cannot write")
    device = tmp_path / "null.pcap"
    device.symlink_to("/dev/null")
    one_line_error(
        run("extract", stop["alert_id"], "--state", str(state), "-o", str(device)), "not a regular file"
    )
    one_line_error(
        run("extract", stop["alert_id"], "--state", str(state), "-o", str(tmp_path)), "not a regular file"
    )
    assert Path("/dev/null").is_char_device()


def test_sigterm_ends_a_replay_as_ctrl_c_does(tmp_path: Path) -> None:
    # A service manager's stop (SIGTERM) once killed a replay outright, its store without the
    # alerts found so far; Ctrl-C's exit said nothing.  Both: exit 130, one line, the store readable.
    big = tmp_path / "big.pcap"
    # Long enough to be still running half a second after its store appears, on a fast host too
    # (x100 took 0.64 s in all).
    write_capture(big, read_back(ATTACK) * 500)
    state = tmp_path / "state"
    process = subprocess.Popen(
        [CLI, "replay", "--no-events", "--state", str(state), str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (state / "store.sqlite").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)
    assert process.poll() is None, "the replay ended before it could be stopped"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "ics-monitor: interrupted" and "Traceback" not in stderr
    listed = run("alerts", "--state", str(state), "--json")
    assert listed.returncode == 0, listed.stderr


def test_an_interrupt_while_the_writer_opens_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM right after the partial file appears (the writer has opened it, but not returned):
    the file goes too.  Found in CI: the SIGTERM test signals as soon as the file exists."""
    import ics_monitor.capture.writer as writer_module
    from ics_monitor.cli.app import _write_evidence

    class InterruptedWriter(CaptureWriter):
        def __init__(self, path: str | Path) -> None:
            super().__init__(path)
            raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "CaptureWriter", InterruptedWriter)
    target = tmp_path / "out.pcap"
    partial = tmp_path / "out.pcap.partial"
    with pytest.raises(KeyboardInterrupt):
        _write_evidence([str(ATTACK)], None, partial, target, target)
    assert not partial.exists() and not target.exists()
