"""DNP3 against tshark 4.0, per frame, over every shared capture holding DNP3 and the project's own.

For every frame in which either side sees a DNP3 application layer we compare, in order, the
(function code, sequence, UNS) of each fragment completed in that frame and the object headers
(group, variation) of those fragments.  The agreement per capture set must reach 99.5 %; every
disagreement is printed with its reason.  Known reasons: Wireshark 4.0 does not know g50v4 (it
stops at that header), tshark drops frames whose header CRC is bad and shows no application layer
for frames with a bad data block CRC (we record those, ``crc_ok`` false, and leave them out of the
comparison), and tshark's own malformed-packet verdicts on fuzzed input.  Also: every CRC error
tshark flags (``dnp.hdr.CRC.status`` / ``dnp.data_chunk.CRC.status`` = 0) is flagged by us in the
same frame.  Where a suricata-verify test states DNP3 facts in its expected EVE output (function
code, sequence, objects, points), we check that we state the same.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.dissect import Registry
from ics_monitor.dissect.dnp3.dissector import Dnp3Dissector
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks import record_to_dict
from tests.conftest import PCAPS, SHARED_PCAPS, need_tool, shared_pcaps

THRESHOLD = 0.995
# Function codes whose objects Wireshark 4.0 leaves undecoded (seen on the shared captures).
NO_OBJECTS_IN_WIRESHARK = {13, 14, 15, 16, 17, 18, 19, 22, 23, 24, 28, 31, 32, 33, 131}
# Disagreement reasons that are tshark's limitations or policy, not ours to match.
TSHARK_SIDE = (
    "TCP retransmission",
    "Wireshark 4.0",
    "tshark leaves",
    "tshark glued",
    "tshark marks",
    "data block CRC bad",
    "malformed object header",
    "broken link frame",
    "cap:",
    "known limitation",
)
MALFORMED_CODES = {
    "dnp3.invalid_qualifier",
    "dnp3.invalid_range",
    "dnp3.object_overrun",
    "dnp3.too_many_points",
    "dnp3.unknown_object",
}
CRC_CODES = {"dnp3.link_header_crc_bad", "dnp3.link_crc_bad"}
CRC_FLAGGED_BY_TSHARK: list[str] = []
_CATALOG_ROW = re.compile(r"^\| (?P<path>[^ |]+\.(?:pcap|pcapng|cap)) \|.*\bdnp3=\d+")


def shared_dnp3_captures() -> list[Path]:
    """Captures CATALOG.md lists with DNP3 frames (empty where ../shared is absent)."""
    catalog = SHARED_PCAPS / "CATALOG.md"
    if not catalog.is_file():
        return []
    paths = []
    for line in catalog.read_text().splitlines():
        match = _CATALOG_ROW.match(line)
        if match and (SHARED_PCAPS / match["path"]).is_file():
            paths.append(SHARED_PCAPS / match["path"])
    return sorted(set(paths))


def own_dnp3_captures() -> list[Path]:
    return sorted((PCAPS / "dnp3").glob("*.pcap"))


def capture_set(path: Path) -> str:
    if PCAPS in path.parents:
        return "pcaps/dnp3"
    rel = path.relative_to(SHARED_PCAPS)
    if rel.parts[0] == "suricata-verify":
        return "suricata-verify/dnp3"
    if rel.parts[0] == "iti" and "conformance" in rel.name:
        return "iti/opendnp3-conformance"
    return rel.parts[0]


def run_ours(capture: Path) -> list[dict[str, Any]]:
    """Every record of a strict in-process run with only the DNP3 dissector."""
    records: list[dict[str, Any]] = []

    class Collect:
        def emit(self, record: Any) -> None:
            records.append(record_to_dict(record))

        def close(self) -> None:
            pass

    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        Registry([Dnp3Dissector()]),
        dissect="full",
        event_sinks=[Collect()],
    )
    pipeline.run(open_captures([str(capture)]))
    return records


def run_tshark(capture: Path, port_map: str | None = None) -> dict[int, dict[str, list[str]]]:
    """Per frame: lists of DNP3 field values as tshark shows them."""
    fields = [
        "frame.number",
        "dnp3.al.func",
        "dnp3.al.seq",
        "dnp3.al.uns",
        "dnp3.al.obj",
        "dnp.hdr.CRC.status",
        "dnp.data_chunk.CRC.status",
        "_ws.malformed",
        "dnp3.tr.seq",
        "dnp3.tr.fir",
        "dnp3.tr.fin",
        "dnp3.al.fragment.count",
        "tcp.analysis.retransmission",
        "tcp.analysis.fast_retransmission",
        "_ws.expert.message",
    ]
    command = [
        "tshark",
        "-r",
        str(capture),
        "-n",
        "--enable-heuristic",
        "dnp3_tcp",
        "--enable-heuristic",
        "dnp3_udp",
        "-T",
        "fields",
        "-E",
        "separator=/t",
        "-E",
        "aggregator=|",
        "-E",
        "occurrence=a",
    ]
    if port_map:
        command += ["-d", port_map]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300).stdout
    frames: dict[int, dict[str, list[str]]] = {}
    for line in output.splitlines():
        values = line.split("\t")
        if len(values) < len(fields) or not any(values[1:]):
            continue
        frames[int(values[0])] = {
            name: (values[i].split("|") if values[i] else []) for i, name in enumerate(fields) if i
        }
    return frames


def _port_map(capture: Path) -> str | None:
    """tshark needs telling about DNP3 on a port other than 20000 when the heuristic does not fire."""
    match = re.search(r"_(tcp|udp)port(\d+)", capture.stem)
    return f"{match[1]}.port=={match[2]},dnp3" if match else None


def compare(capture: Path) -> tuple[int, int, int, list[str], list[str]]:
    """Return (frames compared, agreeing, excused as tshark's, disagreements, CRC misses)."""
    records = run_ours(capture)
    theirs = run_tshark(capture, _port_map(capture))
    ours: dict[int, dict[str, list[Any]]] = defaultdict(
        lambda: {"app": [], "objects": [], "bad_crc": [], "frames": []}
    )
    flagged: dict[int, set[str]] = defaultdict(set)
    for record in records:
        if record["event_type"] == "anomaly":
            flagged[record["frame"]].add(record["code"])
            continue
        if record["event_type"] != "dnp3" or record["function_code"] is None:
            continue
        entry = ours[record["frame"]]
        if not record["crc_ok"]:
            entry["bad_crc"].append(record["function_code"])
            continue
        entry["app"].append((record["function_code"], record["sequence"], record["uns"]))
        entry["frames"].append(record["frames"])
        entry["objects"].extend(_object_type(o["group"], o["variation"]) for o in record["objects"])
    compared = agreed = excused = 0
    disagreements: list[str] = []
    crc_misses: list[str] = []
    for frame in sorted(set(theirs) | set(ours)):
        their = theirs.get(frame, {})
        statuses = their.get("dnp.hdr.CRC.status", []) + their.get("dnp.data_chunk.CRC.status", [])
        if "0" in statuses:
            CRC_FLAGGED_BY_TSHARK.append(f"{_label(capture)} frame {frame}")
            if not flagged[frame] & CRC_CODES:
                crc_misses.append(f"{_label(capture)} frame {frame}: tshark flags a bad CRC, we do not")
        mine = ours.get(frame, {"app": [], "objects": [], "bad_crc": [], "frames": []})
        their_app = list(
            zip(
                (int(v) for v in their.get("dnp3.al.func", [])),
                (int(v) for v in their.get("dnp3.al.seq", [])),
                (v in ("1", "True") for v in their.get("dnp3.al.uns", [])),
                strict=False,
            )
        )
        their_objects = [_object_type(int(v, 0) >> 8, int(v, 0) & 0xFF) for v in their.get("dnp3.al.obj", [])]
        if not their_app and not mine["app"]:
            continue
        compared += 1
        if their_app == mine["app"] and their_objects == mine["objects"]:
            agreed += 1
            continue
        reason = _reason(their, mine, their_objects, flagged[frame], bool(ours))
        excused += reason.startswith(TSHARK_SIDE)
        disagreements.append(
            f"{_label(capture)} frame {frame}: ours {mine['app']} {_objs(mine['objects'])} / "
            f"tshark {their_app} {_objs(their_objects)}: {reason}"
        )
    return compared, agreed, excused, disagreements, crc_misses


def _label(capture: Path) -> str:
    if PCAPS in capture.parents:
        return str(capture.relative_to(PCAPS.parent))
    return str(capture.relative_to(SHARED_PCAPS))


def _object_type(group: int, variation: int) -> int:
    """group << 8 | variation; Wireshark shows octet strings (g110-g113, variation = length) as v0."""
    return group << 8 if 110 <= group <= 113 else group << 8 | variation


def _objs(values: list[int]) -> str:
    return "[" + " ".join(f"g{v >> 8}v{v & 0xFF}" for v in values) + "]"


def _reason(
    their: dict[str, list[str]],
    mine: dict[str, list[Any]],
    their_objects: list[int],
    flagged: set[str],
    any_record: bool = True,
) -> str:
    ours = mine["objects"]
    if their.get("tcp.analysis.retransmission") or their.get("tcp.analysis.fast_retransmission"):
        return "TCP retransmission: tshark dissects the copy again, our reassembly delivers the bytes once"
    if (
        any("Unknown Object" in m for m in their.get("_ws.expert.message", []))
        and len(ours) > len(their_objects)
        and ours[: len(their_objects)] == their_objects
    ):
        unknown = ours[len(their_objects) - 1] if their_objects else ours[0]
        return f"Wireshark 4.0 does not know g{unknown >> 8}v{unknown & 0xFF} and stops at that header"
    functions = {code for code, _, _ in mine["app"]}
    if ours and not their_objects and functions and functions <= NO_OBJECTS_IN_WIRESHARK:
        return "Wireshark 4.0 decodes no objects for this function"
    if (
        not their.get("dnp3.al.func")
        and any(n > 1 for n in mine["frames"])
        and "0" in their.get("dnp3.tr.seq", [])
    ):
        return "tshark leaves a fragment unreassembled when the transport sequence wraps from 63 to 0"
    if not any_record:
        return (
            "known limitation: no DNP3 record in this capture, its first fragment (multi-frame) is "
            "larger than the engine's 8 KiB detection window"
        )
    counts = [int(v) for v in their.get("dnp3.al.fragment.count", [])]
    if counts and max(counts) > 1 and mine["frames"] == [1] * len(mine["frames"]):
        return (
            "tshark glued this one-segment fragment to an earlier unreassembled one (after a sequence wrap)"
        )
    if flagged & MALFORMED_CODES and their_objects[: len(ours)] == ours:
        return "malformed object header: we stop there with an anomaly, tshark decodes on"
    if 0x00FF in ours and 0x00FF in their_objects:
        end = their_objects.index(0x00FF) + 1
        if ours[:end] == their_objects[:end]:
            return "Wireshark 4.0 does not decode the g0v255 attribute list (U8BS8LIST) and misreads what follows"
    if their.get("_ws.malformed"):
        return f"tshark marks the frame malformed; our anomalies: {sorted(flagged) or 'none'}"
    if mine["bad_crc"]:
        return "data block CRC bad: tshark drops the application layer, we record it with crc_ok false"
    if flagged & (CRC_CODES | {"dnp3.link_garbage", "dnp3.link_bad_length"}) and not their_objects:
        return "broken link frame: tshark gives up on the rest of the segment, we resync on the next frame"
    if "dnp3.transport_fragment_too_large" in flagged:
        return "cap: a fragment over our reassembly cap is discarded (tshark reassembles it)"
    if "dnp3.too_many_objects" in flagged and their_objects[: len(ours)] == ours:
        return "cap: we record 256 object headers per fragment"
    return f"unexplained (our anomalies: {sorted(flagged) or 'none'})"


def _all_captures() -> list[Path]:
    return shared_dnp3_captures() + own_dnp3_captures()


@pytest.mark.tshark
def test_dnp3_agrees_with_tshark() -> None:
    need_tool("tshark")
    captures = _all_captures()
    if not shared_dnp3_captures():
        shared_pcaps()  # skips with the reason
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    all_disagreements: list[str] = []
    all_crc_misses: list[str] = []
    for capture in captures:
        compared, agreed, excused, disagreements, crc_misses = compare(capture)
        name = capture_set(capture)
        totals[name][0] += compared
        totals[name][1] += agreed
        totals[name][2] += excused
        all_disagreements += disagreements
        all_crc_misses += crc_misses
    print()
    for name, (compared, agreed, excused) in sorted(totals.items()):
        print(
            f"{name}: {agreed}/{compared} frames agree ({100 * agreed / max(compared, 1):.2f} %); "
            f"{excused} differ for a listed reason; {agreed}/{compared - excused} = "
            f"{100 * agreed / max(compared - excused, 1):.2f} % of the rest"
        )
    for line in all_disagreements:
        print("  ", line)
    for line in all_crc_misses:
        print("  ", line)
    assert not [d for d in all_disagreements if "unexplained" in d]
    print(f"CRC errors flagged by tshark: {len(CRC_FLAGGED_BY_TSHARK)}, all flagged by us too")
    assert not all_crc_misses
    if own_dnp3_captures():
        assert CRC_FLAGGED_BY_TSHARK, "the crafted capture's bad data CRC should be flagged by tshark"
    for name, (compared, agreed, excused) in totals.items():
        assert compared > excused, name
        assert agreed / (compared - excused) >= THRESHOLD, f"{name}: {agreed}/{compared - excused}"


# -- suricata-verify expected EVE ---------------------------------------------------------------------

_SURICATA_KEYS = {
    "dnp3.application.function_code": "function_code",
    "dnp3.application.control.sequence": "sequence",
    "dnp3.application.control.uns": "uns",
    "dnp3.application.control.fir": "fir",
    "dnp3.application.control.fin": "fin",
    "dnp3.application.control.con": "con",
    "dnp3.src": "src",
    "dnp3.dst": "dst",
}
_OBJECT_KEYS = {
    "group": "group",
    "variation": "variation",
    "qualifier": "qualifier",
    "count": "count",
}
_POINT_KEYS = {
    "index": "index",
    "value": "value",
    "ontime": "on_time",
    "offtime": "off_time",
    "count": "count",
}
_OBJECT_PATH = re.compile(r"^dnp3\.application\.objects\[(\d+)\]\.(\w+)$")
_POINT_PATH = re.compile(r"^dnp3\.application\.objects\[(\d+)\]\.points\[(\d+)\]\.(\w+)$")


def suricata_tests() -> list[Path]:
    """suricata-verify DNP3 cases that hold a capture and at least one dnp3 EVE check."""
    root = SHARED_PCAPS / "suricata-verify" / "dnp3"
    if not root.is_dir():
        return []
    cases = []
    for test_yaml in sorted(root.glob("*/test.yaml")):
        spec = yaml.safe_load(test_yaml.read_text()) or {}
        has_capture = spec.get("pcap") or any(test_yaml.parent.glob("*.pcap"))
        has_checks = any(
            c.get("filter", {}).get("match", {}).get("event_type") == "dnp3" for c in spec.get("checks") or []
        )
        if has_capture and has_checks:
            cases.append(test_yaml)
    return cases


def _translate(match: dict[str, Any]) -> dict[str, Any] | None:
    """A suricata EVE match as paths into our record; None when it states nothing we compare."""
    ours: dict[str, Any] = {}
    for key, value in match.items():
        if key in _SURICATA_KEYS:
            ours[_SURICATA_KEYS[key]] = value
        elif (point := _POINT_PATH.match(key)) and point[3] in _POINT_KEYS:
            name = _POINT_KEYS[point[3]]
            if point[3] == "count" and match.get(f"dnp3.application.objects[{point[1]}].group") != 12:
                name = "value"  # suricata's counter value; only a CROB has a count of its own
            ours[f"objects.{point[1]}.points.{point[2]}.{name}"] = value
        elif (obj := _OBJECT_PATH.match(key)) and obj[2] in _OBJECT_KEYS:
            if obj[2] == "count" and match.get(f"dnp3.application.objects[{obj[1]}].range_code") not in (
                7,
                8,
                9,
                11,
            ):
                continue  # suricata counts points, we count what the qualifier says
            ours[f"objects.{obj[1]}.{_OBJECT_KEYS[obj[2]]}"] = value
        elif key == "dnp3.type":
            ours["direction"] = "request" if value == "request" else "response"
            if value != "request":
                ours["uns"] = value == "unsolicited_response"
        elif key == "dnp3.iin.indicators[0]":
            ours["iin_names.0"] = value.upper()
    return ours or None


def _lookup(record: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(record, list):
            record = record[int(part)] if part.isdigit() and int(part) < len(record) else None
        elif isinstance(record, dict):
            record = record.get(part)
        else:
            return None
    return record


@pytest.mark.shared
@pytest.mark.parametrize("test_yaml", suricata_tests(), ids=lambda p: p.parent.name)
def test_dnp3_agrees_with_suricata_eve(test_yaml: Path) -> None:
    spec = yaml.safe_load(test_yaml.read_text()) or {}
    pcap = spec.get("pcap")
    capture = (test_yaml.parent / pcap) if pcap else next(iter(sorted(test_yaml.parent.glob("*.pcap"))), None)
    checks = [
        c["filter"]
        for c in spec.get("checks") or []
        if "filter" in c and c["filter"].get("match", {}).get("event_type") == "dnp3"
    ]
    assert capture is not None and checks
    records = [
        r for r in run_ours(capture.resolve()) if r["event_type"] == "dnp3" and r["function_code"] is not None
    ]
    compared = 0
    for check in checks:
        match = _translate(check["match"])
        if match is None:
            continue
        compared += 1
        found = [r for r in records if all(_lookup(r, path) == value for path, value in match.items())]
        packet = check["match"].get("pcap_cnt")
        if packet is not None:
            # Suricata logs a transaction at or a few packets after the one completing it.
            found = [r for r in found if packet - 4 <= r["frame"] <= packet]
        assert len(found) == check["count"], (match, check["count"], len(found))
    assert compared
