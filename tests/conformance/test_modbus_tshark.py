"""Modbus against tshark 4.0, per frame, over every shared capture holding Modbus and the project's own.

For every frame in which either side sees a Modbus ADU we compare, in order, the (transaction id,
unit id, function code) of each ADU completed in that frame, the exception codes, and where tshark
shows them: the addresses and quantities on the wire (``modbus.reference_num``, ``word_cnt``,
``bit_cnt``), register values (``regval_uint16``), coil/input values (``bitval``), FC 8
sub-functions (``diagnostic_code``), FC 22 masks, FC 23 ranges, FC 5/6 values, FC 43/14 object ids
and texts, and the request frame of each response.  tshark strips the exception bit from
``modbus.func_code``; an exception is the presence of ``modbus.exception_code``.

tshark decodes Modbus only on one port per transport (``mbtcp.tcp.port``, ``mbudp.udp.port``; 502
unless set), and classifies query and response by it.  For a capture in which our run found Modbus
on another port, tshark runs once more with that port set, and each frame is taken from the run
whose port it uses.

Capture sets: each top directory of ../shared/pcaps must agree on 99.5 % of its frames, the
real-stack captures of ``pcaps/modbus`` on 100 %.  The crafted captures of ``pcaps/modbus`` (scapy,
deliberately broken or oddly segmented) are compared too; there every disagreement must be a
known tshark limitation.  The off-spec device capture (a real stack answering under another unit
id) disagrees on every answer, each for that reason alone, and nowhere else.  Every disagreement is printed with its reason, and none may be
unexplained.  Also: every FC 43/14 response tshark decodes yields our device identification
objects, and every exception code tshark shows we report in the same frame.
"""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.dissect import default_registry
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks import record_to_dict
from tests.conftest import PCAPS, SHARED_PCAPS, need_tool, shared_pcaps

THRESHOLD = 0.995
_CATALOG_ROW = re.compile(r"^\| (?P<path>[^ |]+\.(?:pcap|pcapng|cap)) \|.*\bmodbus=\d+")
# Fields tshark shows for requests (q) and responses (r) by function code, as it does in 4.0.
_WIRE_ADDRESS = {"q": {1, 2, 3, 4, 5, 6, 15, 16, 22, 24}, "r": {5, 6, 15, 16, 22}}
_WIRE_QUANTITY = {"q": {1, 2, 3, 4, 15, 16}, "r": {15, 16}}
_REGISTER_VALUES = {"q": {16}, "r": {3, 4}}
_BIT_VALUES = {"q": set(), "r": {1, 2}}
FIELDS = [
    "frame.number",
    "mbtcp.trans_id",
    "mbtcp.unit_id",
    "modbus.func_code",
    "modbus.exception_code",
    "modbus.reference_num",
    "modbus.word_cnt",
    "modbus.bit_cnt",
    "modbus.regval_uint16",
    "modbus.bitval",
    "modbus.diagnostic_code",
    "modbus.mei",
    "modbus.object_id",
    "modbus.object_str_value",
    "_ws.malformed",
    "_ws.expert.message",
    "tcp.analysis.retransmission",
    "mbtcp.len",
    "modbus.request_frame",
    "modbus.read_reference_num",
    "modbus.read_word_cnt",
    "modbus.write_reference_num",
    "modbus.write_word_cnt",
    "modbus.and_mask",
    "modbus.or_mask",
    "modbus.data",
    "tcp.srcport",
    "tcp.dstport",
    "udp.srcport",
    "udp.dstport",
]
# Per frame of every TCP segment: stream, source port and payload size (for the short-segment reason).
SEGMENT_FIELDS = ["frame.number", "tcp.stream", "tcp.srcport", "tcp.len"]
# Reasons that are tshark's limitations, not ours to match.
TSHARK_SIDE = (
    "duplicate transaction id",
    "tshark pairs",
    "TCP retransmission",
    "tshark: malformed",
    "tshark ignores a segment",
    "tshark did not decode the request",
    "tshark drops a segment",
    "tshark accepts",
    "tshark's Modbus/UDP",
)


def shared_modbus_captures() -> list[Path]:
    """Captures CATALOG.md lists with Modbus frames, and the stack captures beside them."""
    catalog = SHARED_PCAPS / "CATALOG.md"
    if not catalog.is_file():
        return []
    paths = []
    for line in catalog.read_text().splitlines():
        match = _CATALOG_ROW.match(line)
        if match and (SHARED_PCAPS / match["path"]).is_file():
            paths.append(SHARED_PCAPS / match["path"])
    paths += (SHARED_PCAPS / "stacks").glob("modbus*.pcap")
    return sorted(set(paths))


def own_modbus_captures() -> list[Path]:
    # Serial framings over TCP: RTU against tshark's mbrtu in test_modbus_rtu_tshark.py; ASCII,
    # which tshark does not decode, in the golden case modbus-ascii-over-tcp.
    serial = ("_rtu_", "_ascii_")
    return sorted(p for p in (PCAPS / "modbus").glob("*.pcap") if not any(s in p.name for s in serial))


# Real-stack captures of a device off the specification on purpose (answers under another unit
# id): its answers are paired where tshark leaves them unpaired, each for that reason.
OFF_SPEC: frozenset[str] = frozenset({"pymodbus_ignores_unit_id.pcap"})
UNIT_MISMATCH_REASON = "an answer under another unit id than its request's"


def capture_set(path: Path) -> str:
    if PCAPS in path.parents:
        if path.name.startswith("crafted_"):
            return "pcaps/modbus (crafted)"
        return "pcaps/modbus (off-spec device)" if path.name in OFF_SPEC else "pcaps/modbus"
    return path.relative_to(SHARED_PCAPS).parts[0]


def label(path: Path) -> str:
    if PCAPS in path.parents:
        return str(path.relative_to(PCAPS.parent))
    return str(path.relative_to(SHARED_PCAPS))


def run_ours(capture: Path) -> list[dict[str, Any]]:
    """Every record of a strict in-process run with the shipped dissectors (as the CLI runs)."""
    records: list[dict[str, Any]] = []

    class Collect:
        def emit(self, record: Any) -> None:
            records.append(record_to_dict(record))

        def close(self) -> None:
            pass

    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        default_registry(),
        dissect="full",
        event_sinks=[Collect()],
    )
    pipeline.run(open_captures([str(capture)]))
    return records


def _tshark(capture: Path, fields: list[str], options: list[str]) -> list[list[str]]:
    command = ["tshark", "-r", str(capture), "-n", "-T", "fields", "-E", "separator=/t"]
    command += ["-E", "aggregator=|", "-E", "occurrence=a", *options]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600).stdout
    return [line.split("\t") for line in output.splitlines()]


def _frame_ports(values: dict[str, list[str]]) -> set[tuple[str, int]]:
    ports = set()
    for transport in ("tcp", "udp"):
        for side in ("srcport", "dstport"):
            ports |= {(transport, int(port)) for port in values.get(f"{transport}.{side}", [])}
    return ports


def run_tshark(capture: Path, ports: set[tuple[str, int]]) -> dict[int, dict[str, list[str]]]:
    """Per frame: lists of Modbus field values as tshark shows them (only frames with Modbus).

    ``ports`` are the non-standard (transport, port) pairs our run found Modbus on: a run per
    port, each frame from the run of the port it uses (the default run for the others).
    """
    runs: list[tuple[tuple[str, int] | None, list[str]]] = [(None, [])]
    for transport, port in sorted(ports):
        # tshark 4.0 classifies query and response by the TCP port preference, UDP included.
        options = ["-o", f"mbtcp.tcp.port:{port}"]
        if transport == "udp":
            options += ["-o", f"mbudp.udp.port:{port}"]
        runs.append(((transport, port), options))
    frames: dict[int, dict[str, list[str]]] = {}
    for port, options in runs:
        for values in _tshark(capture, FIELDS, options):
            if len(values) < len(FIELDS) or not values[3]:
                continue
            entry = {name: (values[i].split("|") if values[i] else []) for i, name in enumerate(FIELDS)}
            frame_ports = _frame_ports(entry)
            if (port is None and not frame_ports & ports) or (port is not None and port in frame_ports):
                frames[int(values[0])] = entry
    return frames


def short_segment_starts(capture: Path) -> set[int]:
    """Frames whose TCP segment is under 8 bytes: tshark does not look for an ADU start there."""
    return {
        int(values[0])
        for values in _tshark(capture, SEGMENT_FIELDS, ["-Y", "tcp.len > 0 && tcp.len < 8"])
        if len(values) == len(SEGMENT_FIELDS)
    }


def _ours_by_frame(records: list[dict[str, Any]]) -> dict[int, dict[str, list[Any]]]:
    frames: dict[int, dict[str, list[Any]]] = defaultdict(_empty)
    for record in records:
        if record["event_type"] == "anomaly":
            frames[record["frame"]]["anomalies"].append(record["code"])
            continue
        if record["event_type"] != "modbus":
            continue
        entry = frames[record["frame"]]
        side = "q" if record["direction"] == "request" else "r"
        code = record["function_code"]
        entry["adus"].append((record["transaction_id"], record["unit_id"], code))
        entry["sizes"].append(record["length"] + 6)
        entry["transport"] = [record["transport"]]
        if record["exception_code"] is not None:
            # tshark shows no request frame for exception responses.
            entry["exceptions"].append(record["exception_code"])
            continue
        if side == "r" and record["request_frame"] is not None:
            entry["request_frames"].append(record["request_frame"])
        if code in _WIRE_ADDRESS[side] and record["address"] is not None:
            entry["addresses"].append(record["address"])
        if code in _WIRE_QUANTITY[side] and record["quantity"] is not None:
            entry["quantities"].append(record["quantity"])
        if code in _REGISTER_VALUES[side]:
            entry["registers"].extend(record["values"] or ())
        if code in _BIT_VALUES[side]:
            entry["bits"].extend(record["values"] or ())
        extra = record.get("extra") or {}
        if (code == 20 and side == "q") or code == 21:
            entry["quantities"].extend(item["record_length"] for item in extra.get("records", ()))
        if code == 24 and side == "r" and "fifo_count" in extra:
            entry["quantities"].append(extra["fifo_count"])
        if code == 23 and side == "q" and "write_address" in extra:
            entry["read_write"].append(
                (record["address"], record["quantity"], extra["write_address"], extra["write_quantity"])
            )
        if code == 22 and "and_mask" in extra:
            entry["masks"].append((extra["and_mask"], extra["or_mask"]))
        if code in (5, 6) and record["values"]:
            value = record["values"][0]
            entry["singles"].append(0xFF00 if code == 5 and value == 1 else value)
        if code == 8 and record.get("sub_function") is not None:
            entry["sub_functions"].append(record["sub_function"])
        device_id = record.get("device_id")
        if code == 43 and device_id:
            if side == "q":
                entry["objects"].append(device_id["object_id"])
            else:
                entry["objects"].extend(item["id"] for item in device_id["objects"])
                entry["texts"].extend(item["value"] for item in device_id["objects"] if item["id"] < 0x80)
                entry["device_ids"].append(len(device_id["objects"]))
    return frames


def _empty() -> dict[str, list[Any]]:
    return {
        "adus": [],
        "sizes": [],
        "transport": [],
        "exceptions": [],
        "addresses": [],
        "quantities": [],
        "registers": [],
        "bits": [],
        "sub_functions": [],
        "objects": [],
        "texts": [],
        "device_ids": [],
        "read_write": [],
        "masks": [],
        "singles": [],
        "request_frames": [],
        "anomalies": [],
    }


def _theirs(their: dict[str, list[str]]) -> dict[str, list[Any]]:
    ints = lambda name: [int(v, 0) for v in their.get(name, [])]  # noqa: E731
    adus = list(zip(ints("mbtcp.trans_id"), ints("mbtcp.unit_id"), ints("modbus.func_code"), strict=False))
    return {
        "adus": adus,
        "exceptions": ints("modbus.exception_code"),
        "addresses": ints("modbus.reference_num"),
        "quantities": ints("modbus.word_cnt") + ints("modbus.bit_cnt"),
        "registers": ints("modbus.regval_uint16"),
        "bits": [1 if v in ("1", "True") else 0 for v in their.get("modbus.bitval", [])],
        "sub_functions": ints("modbus.diagnostic_code"),
        "objects": ints("modbus.object_id"),
        "texts": their.get("modbus.object_str_value", []),
        "read_write": list(
            zip(
                ints("modbus.read_reference_num"),
                ints("modbus.read_word_cnt"),
                ints("modbus.write_reference_num"),
                ints("modbus.write_word_cnt"),
                strict=False,
            )
        ),
        "masks": list(zip(ints("modbus.and_mask"), ints("modbus.or_mask"), strict=False)),
        # FC 5/6 values: tshark shows them only as the data bytes.
        "singles": [int(v.replace(":", ""), 16) for v in their.get("modbus.data", [])]
        if adus and all(code in (5, 6) for _, _, code in adus) and not their.get("modbus.exception_code")
        else [],
        "request_frames": ints("modbus.request_frame"),
    }


_COMPARED = (
    "adus",
    "exceptions",
    "addresses",
    "quantities",
    "registers",
    "bits",
    "sub_functions",
    "objects",
    "read_write",
    "masks",
    "singles",
    "request_frames",
)


def differences(mine: dict[str, list[Any]], theirs: dict[str, list[Any]]) -> list[str]:
    """Names of the compared items that differ (quantities as multisets: tshark's order varies)."""
    names = []
    for name in _COMPARED:
        a, b = mine[name], theirs[name]
        if name in ("quantities", "exceptions"):
            a, b = sorted(a), sorted(b)
        if a != b:
            names.append(name)
    if mine["texts"] != theirs["texts"] and not _texts_equal(mine["texts"], theirs["texts"]):
        names.append("texts")
    return names


def _texts_equal(mine: list[str], theirs: list[str]) -> bool:
    """tshark prints control characters escaped; compare printable text only."""
    clean = lambda text: "".join(c for c in text if c.isprintable() and c != "\\")  # noqa: E731
    return [clean(t) for t in mine] == [clean(t) for t in theirs]


class Context:
    """What the reasons need to know about one capture beyond the frame at hand."""

    def __init__(self, capture: Path, records: list[dict[str, Any]], theirs_raw: dict[int, Any]) -> None:
        self.capture = capture
        self.theirs_raw = theirs_raw
        self.duplicates = {
            r["frame"]
            for r in records
            if r["event_type"] == "anomaly" and r["code"] == "modbus.duplicate_transaction_id"
        }
        self._short: set[int] | None = None
        # Our request records by frame: (unit id, transaction id, function code).
        self.requests: dict[int, set[tuple[Any, Any, Any]]] = defaultdict(set)
        for r in records:
            if r["event_type"] == "modbus" and r["direction"] == "request":
                self.requests[r["frame"]].add((r["unit_id"], r.get("transaction_id"), r["function_code"]))

    @property
    def short_segments(self) -> set[int]:
        if self._short is None:
            self._short = short_segment_starts(self.capture)
        return self._short


def _reason(
    frame: int,
    names: list[str],
    mine: dict[str, list[Any]],
    their: dict[str, list[str]],
    theirs: dict[str, list[Any]],
    context: Context,
) -> str:
    experts = " ".join(their.get("_ws.expert.message", []))
    anomalies = set(mine["anomalies"])
    if (
        names == ["request_frames"]
        and theirs["request_frames"]
        and set(theirs["request_frames"]) <= context.duplicates
    ):
        return (
            "duplicate transaction id: tshark pairs every response with the latest request of that id, "
            "we pair one response per request and report the others as modbus.unmatched_response"
        )
    if names == ["request_frames"] and "modbus.response_function_mismatch" in anomalies:
        return (
            "tshark pairs a response only with a request of the same function; we pair by (unit id, "
            "transaction id) and report modbus.response_function_mismatch"
        )
    if (
        context.capture.name in OFF_SPEC
        and names == ["request_frames"]
        and not theirs["request_frames"]
        and len(mine["adus"]) == len(mine["request_frames"]) == 1
        and any(
            unit != mine["adus"][0][1] and (transaction, code) == (mine["adus"][0][0], mine["adus"][0][2])
            for unit, transaction, code in context.requests[mine["request_frames"][0]]
        )
    ):
        return (
            f"{UNIT_MISMATCH_REASON} (a device answering as itself): we pair it by transaction id and "
            "function (modbus.response_unit_mismatch, once per flow), tshark leaves it unpaired"
        )
    if their.get("tcp.analysis.retransmission"):
        return "TCP retransmission: tshark dissects the copy again, our reassembly delivers the bytes once"
    if not mine["adus"] and their.get("_ws.malformed"):
        return "tshark: malformed frame"
    if mine["adus"] and not theirs["adus"] and {frame - n for n in range(1, 13)} & context.short_segments:
        return (
            "tshark ignores a segment of fewer than 8 bytes at an ADU start (packet-mbtcp.c wants 8 bytes "
            "before it reassembles), so it never sees this ADU split inside its header"
        )
    missed = [f for f in mine["request_frames"] if f not in context.theirs_raw]
    # Without the request tshark does not know the quantity either and shows every bit of the bytes.
    if (
        missed
        and not theirs["request_frames"]
        and set(names) <= {"request_frames", "bits"}
        and mine["bits"] == theirs["bits"][: len(mine["bits"])]
    ):
        return f"tshark did not decode the request (frame {missed[0]}), so it has no request frame"
    if "modbus.bad_protocol_id" in anomalies and not theirs["adus"]:
        return (
            "tshark drops a segment that starts with a non-zero protocol id; we skip that ADU by its "
            "length and read the next"
        )
    if "modbus.bad_length" in anomalies and theirs["adus"] and not mine["adus"]:
        return (
            "tshark accepts an MBAP length over 254 (the specification's PDU limit); we report "
            "modbus.bad_length and resynchronise"
        )
    if not mine["adus"] and theirs["adus"] and all(code == 0 for _t, _u, code in theirs["adus"]):
        return (
            "tshark accepts function code 0 after a zero protocol id; a flow whose ADUs have no defined "
            "function code is not Modbus to us"
        )
    if mine["transport"] == ["udp"] and len(mine["adus"]) > 1 and theirs["adus"] == mine["adus"][:1]:
        return "tshark's Modbus/UDP dissector reads only the first ADU of a datagram"
    return f"unexplained ({', '.join(names)}; our anomalies: {sorted(anomalies) or 'none'}; {experts})"


def compare(capture: Path) -> tuple[int, int, list[str], list[dict[str, Any]], dict[int, Any]]:
    """Return (frames compared, agreeing, disagreement lines, our records, tshark's frames)."""
    records = run_ours(capture)
    ports = {
        (r["transport"], r["dst_port"] if r["direction"] == "request" else r["src_port"])
        for r in records
        if r["event_type"] == "modbus"
    }
    ports = {(transport, port) for transport, port in ports if port != 502}
    theirs_raw = run_tshark(capture, ports)
    ours = _ours_by_frame(records)
    context = Context(capture, records, theirs_raw)
    compared = agreed = 0
    lines: list[str] = []
    for frame in sorted(set(theirs_raw) | {f for f, e in ours.items() if e["adus"]}):
        their = theirs_raw.get(frame, {})
        theirs = _theirs(their)
        mine = ours.get(frame) or _empty()
        compared += 1
        names = differences(mine, theirs)
        if not names:
            agreed += 1
            continue
        detail = "; ".join(f"{n}: ours {_short(mine[n])} tshark {_short(theirs[n])}" for n in names)
        reason = _reason(frame, names, mine, their, theirs, context)
        lines.append(f"{label(capture)} frame {frame}: {detail}: {reason}")
    return compared, agreed, lines, records, theirs_raw


def _short(values: list[Any]) -> str:
    text = str(values)
    return text if len(text) < 90 else text[:87] + "...]"


def _all_captures() -> list[Path]:
    return shared_modbus_captures() + own_modbus_captures()


def device_id_responses(theirs_raw: dict[int, Any]) -> list[int]:
    """Frames of the FC 43/14 responses with objects that tshark decodes."""
    return [
        frame
        for frame, their in theirs_raw.items()
        if "14" in their.get("modbus.mei", [])
        and their.get("modbus.object_id")
        and (their.get("modbus.request_frame") or "502" in their.get("tcp.srcport", []))
    ]


def device_id_failures(capture: Path, records: list[dict[str, Any]], frames: list[int]) -> list[str]:
    """FC 43/14 responses tshark decodes for which we give no device identification objects."""
    ours = _ours_by_frame(records)
    return [
        f"{label(capture)} frame {frame}: no device identification objects"
        for frame in frames
        if not ours[frame]["device_ids"] or 0 in ours[frame]["device_ids"]
    ]


def exception_failures(capture: Path, records: list[dict[str, Any]], theirs_raw: dict[int, Any]) -> list[str]:
    """Frames where tshark shows exception codes that we do not report in that frame."""
    ours = _ours_by_frame(records)
    return [
        f"{label(capture)} frame {frame}: tshark exceptions {their['modbus.exception_code']}, ours {ours[frame]['exceptions']}"
        for frame, their in theirs_raw.items()
        if their.get("modbus.exception_code")
        and sorted(int(v, 0) for v in their["modbus.exception_code"]) != sorted(ours[frame]["exceptions"])
    ]


@pytest.mark.tshark
def test_modbus_agrees_with_tshark() -> None:
    need_tool("tshark")
    if not shared_modbus_captures():
        shared_pcaps()  # skips with the reason
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    all_lines: list[str] = []
    device_ids: list[str] = []
    exceptions: list[str] = []
    device_id_frames = exception_frames = 0
    for capture in _all_captures():
        compared, agreed, lines, records, theirs_raw = compare(capture)
        name = capture_set(capture)
        totals[name][0] += compared
        totals[name][1] += agreed
        all_lines += lines
        exceptions += exception_failures(capture, records, theirs_raw)
        exception_frames += sum(1 for their in theirs_raw.values() if their.get("modbus.exception_code"))
        if PCAPS not in capture.parents:
            frames = device_id_responses(theirs_raw)
            device_ids += device_id_failures(capture, records, frames)
            device_id_frames += len(frames)
    print()
    for name, (compared, agreed) in sorted(totals.items()):
        print(f"{name}: {agreed}/{compared} frames agree ({100 * agreed / max(compared, 1):.2f} %)")
    print(
        f"FC 43/14 responses with objects in ../shared (tshark): {device_id_frames}, "
        f"{device_id_frames - len(device_ids)} with our objects; frames with exceptions: {exception_frames}"
    )
    for line in all_lines:
        print("  ", line)
    assert not [line for line in all_lines if "unexplained" in line]
    assert device_ids == []
    assert device_id_frames > 0
    assert exceptions == []
    assert "pcaps/modbus (off-spec device)" in totals
    for name, (compared, agreed) in totals.items():
        assert compared, name
        if name == "pcaps/modbus (crafted)":
            # Deliberately broken input: every disagreement must be a tshark-side limitation.
            assert all(
                any(reason in line for reason in TSHARK_SIDE) for line in all_lines if "crafted_" in line
            )
            continue
        if name == "pcaps/modbus (off-spec device)":
            # Every answer of the capture (20) disagrees, for that reason, and nothing else does.
            off_spec = [line for line in all_lines if any(n in line for n in OFF_SPEC)]
            assert len(off_spec) == compared - agreed == 20, off_spec
            assert all(UNIT_MISMATCH_REASON in line for line in off_spec)
            continue
        want = 1.0 if name == "pcaps/modbus" else THRESHOLD
        assert agreed / compared >= want, f"{name}: {agreed}/{compared}"
