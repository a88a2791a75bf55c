"""The installed ``ics-monitor`` command, run as a user would: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from tests.conftest import REPO
from tests.support.sliced import sliced
from tests.unit.capture.test_files import pcap_bytes

CLI = str(Path(sys.executable).with_name("ics-monitor"))
MAC = "00:80:f4:00:00:02"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, check=False)


def session_capture(path: Path, truncate: int = 0) -> Path:
    frames = [
        Ether(dst=MAC)
        / IP(src="192.0.2.10", dst="192.0.2.20")
        / TCP(sport=40000, dport=502, flags="S", seq=1),
        Ether(dst=MAC)
        / IP(src="192.0.2.20", dst="192.0.2.10")
        / TCP(sport=502, dport=40000, flags="SA", ack=2),
        Ether(dst=MAC) / IP(src="192.0.2.10", dst="192.0.2.53") / UDP(sport=5353, dport=53) / Raw(b"query"),
        Ether(dst=MAC)
        / IP(src="192.0.2.10", dst="192.0.2.20")
        / TCP(sport=40000, dport=502, flags="A", seq=2),
    ]
    content = pcap_bytes([(1700000000 + i, 0, bytes(f)) for i, f in enumerate(frames)])
    path.write_bytes(content[: len(content) - truncate] if truncate else content)
    return path


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("ics-monitor ")


def test_flows_json_lines_to_stdout_and_file(tmp_path: Path) -> None:
    capture = session_capture(tmp_path / "s.pcap")
    result = run("flows", str(capture))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted((r["transport"], r["dst_port"], r["service"]) for r in records) == [
        ("tcp", 502, "modbus"),
        ("udp", 53, "dns"),
    ]
    out = tmp_path / "flows.jsonl"
    assert run("flows", str(capture), "-o", str(out)).returncode == 0
    assert len(out.read_text().splitlines()) == 2


def test_flows_table(tmp_path: Path) -> None:
    result = run("flows", "--table", str(session_capture(tmp_path / "s.pcap")))
    assert result.returncode == 0
    assert "192.0.2.20:502" in result.stdout and "2 largest of 2" in result.stdout


def test_flows_table_says_which_tunnel_a_flow_came_through() -> None:
    result = run("flows", "--table", "--limit", "20", str(REPO / "pcaps" / "network" / "tunnels.pcap"))
    assert result.returncode == 0
    rows = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") == 11}
    assert "10.1.0.10:37338 vlan 10 via erspan2 100" in rows
    assert "10.8.0.10:58880 via vxlan 9" in rows  # the innermost of GRE over IPv6, then VXLAN
    assert "10.7.0.10:49402 via ip-in-ip" in rows and "172.16.2.1:40000" in rows


def test_summary(tmp_path: Path) -> None:
    result = run("summary", str(session_capture(tmp_path / "s.pcap")))
    assert result.returncode == 0
    assert "Protocols" in result.stdout and "modbus" in result.stdout and "dns" in result.stdout


def test_summary_says_when_the_snap_length_cut_the_capture(tmp_path: Path) -> None:
    demo = REPO / "pcaps" / "demo" / "plant_attack.pcap"
    result = run("summary", str(sliced(demo, tmp_path / "s96.pcap", 96)))
    assert result.returncode == 0
    line = next(
        line for line in result.stdout.splitlines() if line.startswith("cut by the capture's snap length")
    )
    counts = re.search(r"(\d+) flows, .* not kept; (\d+) protocol records read from cut PDUs", line)
    assert counts is not None and int(counts[1]) == 8 and int(counts[2]) > 300
    whole = run("summary", str(demo))
    assert whole.returncode == 0 and "snap length" not in whole.stdout


def test_summary_lists_the_tunnels_a_capture_came_through(tmp_path: Path) -> None:
    result = run("summary", str(REPO / "pcaps" / "network" / "erspan_plant_attack.pcap"))
    assert result.returncode == 0
    table = result.stdout.split("Tunnels opened", 1)[1].split("Application functions", 1)[0]
    rows = [line for line in table.splitlines() if "172.16.0.2 > 172.16.0.100" in line]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].split("│")]
    assert cells[1] == "erspan2 1 172.16.0.2 > 172.16.0.100"
    plain = run("summary", str(REPO / "pcaps" / "demo" / "plant_attack.pcap"))
    assert plain.returncode == 0 and "Tunnels" not in plain.stdout
    # The plain capture's flows and their packets (every frame but ARP), all through the session.
    flows = re.search(r"([\d,]+) flows", plain.stdout)
    protocols = plain.stdout.split("Protocols", 1)[1].split("Top conversations", 1)[0]
    packets = sum(
        int(row.split("│")[3].replace(",", "")) for row in protocols.splitlines() if row.count("│") == 5
    )
    assert flows is not None and (cells[2], int(cells[3].replace(",", ""))) == (flows[1], packets) != ("0", 0)


def test_missing_file_is_one_line_exit_2(tmp_path: Path) -> None:
    result = run("flows", str(tmp_path / "nope.pcap"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nope.pcap: no such file" in result.stderr and "Traceback" not in result.stderr


def test_not_a_capture_is_one_line_exit_2(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello, I am not a capture file at all")
    result = run("dissect", str(bogus))
    assert result.returncode == 2 and "not a pcap or pcapng" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = run("--debug", "flows", str(tmp_path / "nope.pcap"))
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_truncated_capture_keeps_everything_before_the_damage(tmp_path: Path) -> None:
    capture = session_capture(tmp_path / "t.pcap", truncate=20)
    out = tmp_path / "flows.jsonl"
    result = run("flows", str(capture), "-o", str(out))
    assert result.returncode == 2
    assert "t.pcap: truncated record" in result.stderr and "byte offset" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    tcp = next(r for r in records if r["transport"] == "tcp")
    assert tcp["packets_to_server"] + tcp["packets_to_client"] == 2  # the cut 4th frame is lost, not more
    assert any(r["transport"] == "udp" for r in records)


def test_output_into_closed_pipe_is_quiet(tmp_path: Path) -> None:
    capture = session_capture(tmp_path / "s.pcap")
    shell = subprocess.run(
        f"{CLI} flows {capture} {capture} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in shell.stderr


def test_frames_cut_inside_their_headers_end_the_run_with_one_warning(tmp_path: Path) -> None:
    capture = sliced(REPO / "pcaps" / "demo" / "plant_attack.pcap", tmp_path / "s40.pcap", 40)
    one = run("dissect", "-o", str(tmp_path / "one.jsonl"), str(capture))
    two = run("dissect", "--workers", "2", "-o", str(tmp_path / "two.jsonl"), str(capture))
    assert one.returncode == two.returncode == 0
    warnings = [line for line in one.stderr.splitlines() if "snap length inside their" in line]
    # Every frame: the TCP ones lost their TCP header, the ARP ones (42 bytes) their last two bytes.
    assert len(warnings) == 1 and warnings[0].startswith("ics-monitor: warning: 1,056 frames were cut")
    assert [line for line in two.stderr.splitlines() if "snap length inside their" in line] == warnings
    assert (tmp_path / "one.jsonl").read_text() == ""  # nothing reported frame by frame
    whole = run(
        "dissect", "-o", str(tmp_path / "whole.jsonl"), str(REPO / "pcaps" / "demo" / "plant_attack.pcap")
    )
    assert whole.returncode == 0 and "snap length" not in whole.stderr


def test_ctrl_c_while_the_command_line_loads_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Ctrl-C during the imports (about 0.13 s at every start) exits 130 with the
    line a Ctrl-C during a run gives, not a KeyboardInterrupt traceback."""
    import importlib.abc
    from typing import Any

    from ics_monitor.cli import entry

    class InterruptedImport(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any, target: Any = None) -> None:
            if name == "ics_monitor.cli.app":
                raise KeyboardInterrupt

    monkeypatch.delitem(sys.modules, "ics_monitor.cli.app", raising=False)
    monkeypatch.setattr(sys, "meta_path", [InterruptedImport(), *sys.meta_path])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err == "ics-monitor: interrupted\n"


def test_the_console_script_loads_the_command_line_through_its_guard() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "ics-monitor"]
    assert script.value == "ics_monitor.cli.entry:main"
    result = subprocess.run([CLI, "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip().endswith("0.1.0"), result.stderr


def test_a_capture_of_a_link_type_not_decoded_says_so(tmp_path: Path) -> None:
    """Every frame of a link type this version does not decode: one warning line (the run does not
    end as a capture of nothing would, with 0 assets and 0 alerts and nothing said)."""
    data = bytearray((REPO / "pcaps" / "demo" / "plant_normal.pcap").read_bytes())
    data[20:24] = (0xDEAD).to_bytes(4, "little")  # the global header's link type
    capture = tmp_path / "odd.pcap"
    capture.write_bytes(bytes(data))
    result = run("replay", "--state", str(tmp_path / "state"), "--no-events", str(capture))
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "link type" in line]
    assert len(warnings) == 1 and "(all " in warnings[0] and "nothing was analysed" in warnings[0]
    normal = run(
        "replay",
        "--state",
        str(tmp_path / "state2"),
        "--no-events",
        str(REPO / "pcaps" / "demo" / "plant_normal.pcap"),
    )
    assert "link type" not in normal.stderr
