"""Every public capture in ../shared: read to the end, frame counts as capinfos, flows as tshark.

Frame counts must equal ``capinfos -c`` exactly.  Flow records, summed per 5-tuple (so a reused port
or an active-timeout slice does not matter), must equal ``tshark -q -z conv,tcp -z conv,udp`` per
conversation and direction: frames exactly, bytes exactly where tshark prints bytes and within its
rounding where it prints kB/MB.  Skips cleanly where ../shared or the tools are absent.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks.memory import ListSink
from tests.conftest import SHARED_PCAPS, all_shared_captures, need_tool, shared_pcaps

CAPTURES = all_shared_captures()
IDS = [str(p.relative_to(SHARED_PCAPS)) for p in CAPTURES]

_CONV_LINE = re.compile(
    r"^(?P<a>\S+)\s+<->\s+(?P<b>\S+)\s+"
    r"(?P<ba_frames>\d+)\s+(?P<ba_bytes>[\d,]+ \w*bytes|[\d,]+ [kMG]B)\s+"
    r"(?P<ab_frames>\d+)\s+(?P<ab_bytes>[\d,]+ \w*bytes|[\d,]+ [kMG]B)\s+"
)
_UNITS = {"bytes": 1, "kB": 1000, "MB": 1000**2, "GB": 1000**3}


def _endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.rpartition(":")
    return address.strip("[]"), int(port)


def _bytes_value(text: str) -> tuple[int, int]:
    """Return (value, tolerance) for tshark's size text ('2294 bytes', '12 kB')."""
    number, unit = text.rsplit(" ", 1)
    scale = _UNITS[unit]
    return int(number.replace(",", "")) * scale, (scale if scale > 1 else 0)


def tshark_conversations(capture: Path) -> dict[tuple[str, Any, Any], dict[str, Any]]:
    """Conversations keyed by (transport, endpoint A, endpoint B) with per-direction counts."""
    output = subprocess.run(
        ["tshark", "-r", str(capture), "-q", "-z", "conv,tcp", "-z", "conv,udp"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    conversations: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    transport = ""
    for line in output.splitlines():
        if line.startswith("TCP Conversations"):
            transport = "tcp"
        elif line.startswith("UDP Conversations"):
            transport = "udp"
        match = _CONV_LINE.match(line)
        if not match:
            continue
        a, b = _endpoint(match["a"]), _endpoint(match["b"])
        if (transport, b, a) in conversations:
            a, b = b, a
            match_ab, match_ba = "ba", "ab"
        else:
            match_ab, match_ba = "ab", "ba"
        # tshark lists a reused 5-tuple once per TCP stream: sum them as we sum our flow records.
        conv = conversations.setdefault(
            (transport, a, b), {"ab_frames": 0, "ab_bytes": (0, 0), "ba_frames": 0, "ba_bytes": (0, 0)}
        )
        for ours_side, theirs_side in (("ab", match_ab), ("ba", match_ba)):
            value, tolerance = _bytes_value(match[f"{theirs_side}_bytes"])
            conv[f"{ours_side}_frames"] += int(match[f"{theirs_side}_frames"])
            total, slack = conv[f"{ours_side}_bytes"]
            conv[f"{ours_side}_bytes"] = (total + value, slack + tolerance)
    return conversations


def our_flows(capture: Path) -> tuple[int, list[Any], list[str]]:
    sink = ListSink()
    source = open_captures([str(capture)])
    stats = Pipeline(Config(), default_registry(), dissect="detect", flow_sinks=[sink]).run(source)
    return stats.frames, sink.records, [str(e) for e in source.errors]


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_read_to_end_with_capinfos_frame_count(capture: Path) -> None:
    need_tool("capinfos")
    frames, _records, errors = our_flows(capture)
    assert errors == []
    counted = (
        subprocess.run(
            ["capinfos", "-c", "-M", "-T", "-r", str(capture)], capture_output=True, text=True, check=True
        )
        .stdout.split("\t")[-1]
        .strip()
    )
    assert frames == int(counted)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_flow_counts_agree_with_tshark_conversations(capture: Path) -> None:
    need_tool("tshark")
    _frames, records, _errors = our_flows(capture)
    ours: dict[tuple[str, Any, Any], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for record in records:
        if record.transport not in ("tcp", "udp"):
            continue
        key = (record.transport, (record.src_ip, record.src_port), (record.dst_ip, record.dst_port))
        counts = ours[key]
        counts[0] += record.packets_to_server
        counts[1] += record.bytes_to_server
        counts[2] += record.packets_to_client
        counts[3] += record.bytes_to_client
    theirs = tshark_conversations(capture)
    problems = []
    for (transport, a, b), conv in theirs.items():
        if (transport, a, b) in ours:
            forward = ours[(transport, a, b)]
            got = {
                "ab_frames": forward[0],
                "ab_bytes": forward[1],
                "ba_frames": forward[2],
                "ba_bytes": forward[3],
            }
        elif (transport, b, a) in ours:
            backward = ours[(transport, b, a)]
            got = {
                "ab_frames": backward[2],
                "ab_bytes": backward[3],
                "ba_frames": backward[0],
                "ba_bytes": backward[1],
            }
        else:
            problems.append(f"{transport} {a} <-> {b}: no flow of ours")
            continue
        for field in ("ab_frames", "ba_frames"):
            if got[field] != conv[field]:
                problems.append(f"{transport} {a} <-> {b}: {field} ours {got[field]} tshark {conv[field]}")
        for field in ("ab_bytes", "ba_bytes"):
            value, tolerance = conv[field]
            if abs(got[field] - value) > tolerance:
                problems.append(
                    f"{transport} {a} <-> {b}: {field} ours {got[field]} tshark {value}±{tolerance}"
                )
    unmatched = len(ours) - len(theirs)
    if unmatched > 0:
        problems.append(f"{unmatched} flows of ours have no tshark conversation")
    assert not problems, "\n".join(problems[:30])


def test_catalogue_is_present_or_skipped() -> None:
    """Guard against silently testing nothing: with ../shared present, the captures are found."""
    root = shared_pcaps()
    assert len(CAPTURES) >= 100, f"only {len(CAPTURES)} captures found under {root}"


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_community_id_agrees_with_tshark(capture: Path) -> None:
    need_tool("tshark")
    _frames, records, _errors = our_flows(capture)
    output = subprocess.run(
        [
            "tshark",
            "-r",
            str(capture),
            "--enable-protocol",
            "communityid",
            "-T",
            "fields",
            "-e",
            "frame.number",
            "-e",
            "communityid",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    ).stdout
    theirs = dict(line.split("\t", 1) for line in output.splitlines() if "\t" in line)
    compared = 0
    problems = []
    for record in records:
        # ICMP is left out: for ICMP errors tshark hashes the quoted inner packet, while the
        # Community ID spec (and Zeek, and we) hash the outer header's type/code.
        if record.transport not in ("tcp", "udp"):
            continue
        expected = theirs.get(str(record.first_frame), "")
        if not expected or record.first_frame == 0:
            continue  # tshark has no id for this frame (e.g. a fragment it did not reassemble)
        compared += 1
        if expected.split(",")[0] != record.community_id:
            problems.append(f"frame {record.first_frame}: ours {record.community_id} tshark {expected}")
    assert not problems, "\n".join(problems[:20])
    assert compared == sum(1 for r in records if r.transport in ("tcp", "udp") and r.first_frame)
