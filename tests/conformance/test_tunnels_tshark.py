"""Modbus, S7comm and DNP3 inside tunnels and remote mirror sessions, per frame against tshark.

tshark opens ERSPAN, GRE, VXLAN, Geneve and IP in IP as we do, so the per-frame comparisons of the
three protocol conformance tests apply unchanged to ``pcaps/network/tunnels.pcap`` (one real-stack
session per encapsulation) and ``erspan_plant_attack.pcap`` (the demo's attack phase over ERSPAN).
Every frame must agree, or differ for a reason those tests list.  One difference is ours by
design: tshark decodes any UDP datagram to port 4789 as VXLAN; we, like the Linux VXLAN driver,
open only those with the I flag (RFC 7348: set for a valid VNI), and the tunnels capture holds
one such datagram carrying a Modbus request.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conformance import test_dnp3_tshark as dnp3
from tests.conformance import test_modbus_tshark as modbus
from tests.conformance import test_s7comm_tshark as s7comm
from tests.conftest import PCAPS, need_tool

CAPTURES = [PCAPS / "network" / "tunnels.pcap", PCAPS / "network" / "erspan_plant_attack.pcap"]


def _vxlan_without_i_flag(capture: Path) -> set[int]:
    """Frames tshark decodes as VXLAN though their flags lack the I bit."""
    command = ["tshark", "-r", str(capture), "-n", "-Y", "vxlan && vxlan.flag_i == 0", "-T", "fields"]
    output = subprocess.run([*command, "-e", "frame.number"], capture_output=True, text=True, check=True)
    return {int(line) for line in output.stdout.split()}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_modbus_inside_tunnels_agrees_with_tshark(capture: Path) -> None:
    need_tool("tshark")
    compared, agreed, lines, _records, _theirs = modbus.compare(capture)
    print(f"\n{capture.name}: {agreed}/{compared} Modbus frames agree")
    for line in lines:
        print("  ", line)
    assert compared > 300
    expected = {f"frame {frame}:" for frame in _vxlan_without_i_flag(capture)}
    assert len(expected) == (capture.name == "tunnels.pcap")
    assert all(any(tag in line for tag in expected) for line in lines), lines
    assert agreed == compared - len(expected)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_s7comm_inside_tunnels_agrees_with_tshark(capture: Path) -> None:
    need_tool("tshark")
    compared, agreed, excused, lines, _plus, notes = s7comm.compare(capture)
    print(f"\n{capture.name}: {agreed}/{compared} S7comm/COTP frames agree, {excused} excused")
    for line in lines + notes:
        print("  ", line)
    assert compared > 100
    assert not [line for line in lines + notes if "unexplained" in line]
    assert agreed + len(lines) == compared


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.name)
def test_dnp3_inside_tunnels_agrees_with_tshark(capture: Path) -> None:
    need_tool("tshark")
    compared, agreed, excused, lines, crc_misses = dnp3.compare(capture)
    print(f"\n{capture.name}: {agreed}/{compared} DNP3 frames agree, {excused} excused")
    for line in lines:
        print("  ", line)
    assert compared > 80
    assert not [line for line in lines if "unexplained" in line]
    assert agreed + excused == compared
    assert crc_misses == []
