"""S7comm and S7comm-plus against tshark 4.0, per frame, over every capture holding them.

Captures: every ../shared capture CATALOG.md lists with S7comm, COTP or S7comm-plus frames, the
python-snap7 captures in ../shared/pcaps/stacks and the project's own in pcaps/s7comm/.

S7comm, per frame in which either side sees an S7comm PDU, in order: (ROSCTR, PDU reference) of
every PDU; parameter function codes of JOB/ACK_DATA PDUs that have a parameter part; USERDATA
(function group, subfunction); request items (area, DB number, byte address or timer/counter
number; DBREAD areas: DB and start address); SZL (id, index); COTP connect/disconnect TPDUs (type, calling and called TSAP, TPDU
size).  The agreement per capture set must reach 99.5 %; every disagreement is
printed with its reason, and disagreements without a known reason fail the test.

S7comm-plus, which this tshark cannot decode: per frame, the number of our ``s7comm_plus`` records
equals the number of COTP DT payloads (``data.data``) starting with 0x72; frames where TCP
analysis shows retransmission or a missing segment are explained (tshark dissects an out-of-order
segment at once and skips the retransmission that fills the hole; our reassembly delivers the bytes
once, in order, when the hole is filled).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_captures
from ics_monitor.config import Config, DissectConfig
from ics_monitor.dissect import Registry
from ics_monitor.dissect.s7comm.constants import NUMBERED_AREAS
from ics_monitor.dissect.s7comm.dissector import S7commDissector
from ics_monitor.pipeline import Pipeline
from ics_monitor.sinks import record_to_dict
from tests.conftest import PCAPS, SHARED_PCAPS, need_tool, shared_pcaps

THRESHOLD = 0.995
# Frames over which a PDU may move when the capture lost TCP segments (see ``compare``).
LOSS_WINDOW = 16
_CATALOG_ROW = re.compile(r"^\| (?P<path>[^ |]+\.(?:pcap|pcapng|cap)) \|.*\b(?:s7comm|cotp|s7comm-plus)=\d+")
FIELDS = [
    "frame.number",
    "s7comm.header.rosctr",
    "s7comm.header.pduref",
    "s7comm.header.parlg",
    "s7comm.param.func",
    "s7comm.param.userdata.funcgroup",
    "s7comm.param.userdata.subfunc",
    "s7comm.param.item.area",
    "s7comm.param.item.db",
    "s7comm.param.item.address.byte",
    "s7comm.param.item.address.number",
    "s7comm.param.item.dbread.db",
    "s7comm.param.item.dbread.startaddress",
    "s7comm.data.userdata.szl_id",
    "s7comm.data.userdata.szl_index",
    "data.data",
    "cotp.type",
    "cotp.src-tsap",
    "cotp.dst-tsap",
    "cotp.tpdu_size",
    "tcp.analysis.retransmission",
    "tcp.analysis.out_of_order",
    "tcp.analysis.lost_segment",
    "tcp.analysis.ack_lost_segment",
    "_ws.malformed",
]
# Frames counted as agreeing although a PDU sits in a neighbouring frame (capture loss, see compare).
DELAYED_FRAMES = 0
_LOSS_FLAGS = ("tcp.analysis.lost_segment", "tcp.analysis.ack_lost_segment")
# Reasons that are tshark's behaviour, not a fault of ours.
TSHARK_SIDE = ("TCP retransmission", "tshark marks", "TCP out of order")


def shared_s7_captures() -> list[Path]:
    """Shared captures with S7 traffic (CATALOG.md rows and the python-snap7 stack captures)."""
    catalog = SHARED_PCAPS / "CATALOG.md"
    if not catalog.is_file():
        return []
    paths = set()
    for line in catalog.read_text().splitlines():
        match = _CATALOG_ROW.match(line)
        if match and (SHARED_PCAPS / match["path"]).is_file():
            paths.add(SHARED_PCAPS / match["path"])
    paths.update((SHARED_PCAPS / "stacks").glob("s7comm*.pcap"))
    return sorted(paths)


def own_s7_captures() -> list[Path]:
    return sorted((PCAPS / "s7comm").glob("*.pcap"))


def label(capture: Path) -> str:
    if PCAPS in capture.parents:
        return str(capture.relative_to(PCAPS.parent))
    return str(capture.relative_to(SHARED_PCAPS))


def capture_set(capture: Path) -> str:
    if PCAPS in capture.parents:
        return "pcaps/s7comm"
    return capture.relative_to(SHARED_PCAPS).parts[0]


def run_ours(capture: Path) -> list[dict[str, Any]]:
    """Every record of a strict in-process run with only the S7 dissector."""
    records: list[dict[str, Any]] = []

    class Collect:
        def emit(self, record: Any) -> None:
            records.append(record_to_dict(record))

        def close(self) -> None:
            pass

    pipeline = Pipeline(
        Config(dissect=DissectConfig(strict=True)),
        Registry([S7commDissector()]),
        dissect="full",
        event_sinks=[Collect()],
    )
    pipeline.run(open_captures([str(capture)]))
    return records


def run_tshark(capture: Path) -> dict[int, dict[str, list[str]]]:
    """Per frame: the lists of field values tshark shows (all occurrences, in order)."""
    command = ["tshark", "-r", str(capture), "-n", "-T", "fields", "-E", "separator=/t"]
    command += ["-E", "aggregator=|", "-E", "occurrence=a"]
    port = re.search(r"_port(\d+)", capture.stem)
    if port:
        command += ["-d", f"tcp.port=={port[1]},tpkt"]  # tshark knows ISO-on-TCP on port 102 only
    for field in FIELDS:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600).stdout
    frames: dict[int, dict[str, list[str]]] = {}
    for line in output.splitlines():
        values = line.split("\t")
        if len(values) < len(FIELDS) or not any(values[1:]):
            continue
        frames[int(values[0])] = {
            name: (values[i].split("|") if values[i] else []) for i, name in enumerate(FIELDS) if i
        }
    return frames


def _int(value: str) -> int:
    return int(value, 0)


def their_view(their: dict[str, list[str]]) -> dict[str, list[Any]]:
    """tshark's fields of one frame in the shape ``our_view`` gives."""
    rosctr = [_int(v) for v in their.get("s7comm.header.rosctr", [])]
    parameter_lengths = [_int(v) for v in their.get("s7comm.header.parlg", [])]
    functions = [_int(v) for v in their.get("s7comm.param.func", [])]
    # tshark shows the first parameter byte of USERDATA as a function too (0x00/0x01): drop those.
    kept = []
    position = 0
    for kind, length in zip(rosctr, parameter_lengths, strict=False):
        if length == 0:
            continue
        if position < len(functions) and kind != 7:
            kept.append(functions[position])
        position += 1
    return {
        "pdus": list(zip(rosctr, (_int(v) for v in their.get("s7comm.header.pduref", [])), strict=False)),
        "functions": kept,
        "userdata": list(
            zip(
                (_int(v) for v in their.get("s7comm.param.userdata.funcgroup", [])),
                (_int(v) for v in their.get("s7comm.param.userdata.subfunc", [])),
                strict=False,
            )
        ),
        "areas": [_int(v) for v in their.get("s7comm.param.item.area", []) if _int(v) != 0x01],
        "dbs": [_int(v) for v in their.get("s7comm.param.item.db", [])],
        "addresses": [_int(v) for v in their.get("s7comm.param.item.address.byte", [])]
        + [_int(v) for v in their.get("s7comm.param.item.address.number", [])],
        "dbread": list(
            zip(
                (_int(v) for v in their.get("s7comm.param.item.dbread.db", [])),
                (_int(v) for v in their.get("s7comm.param.item.dbread.startaddress", [])),
                strict=False,
            )
        ),
        "szl": list(
            zip(
                (_int(v) for v in their.get("s7comm.data.userdata.szl_id", [])),
                (_int(v) for v in their.get("s7comm.data.userdata.szl_index", [])),
                strict=False,
            )
        ),
        "cotp": _their_cotp(their),
    }


def _tsap(value: str | None) -> Any:
    """tshark shows a TSAP as hex when it is not printable text, else as the text."""
    if value is None:
        return None
    return int(value, 16) if value.startswith("0x") else value


def _their_cotp(their: dict[str, list[str]]) -> list[tuple[Any, ...]]:
    types = [_int(v) for v in their.get("cotp.type", []) if _int(v) != 0x0F]
    if not types:
        return []
    sources = their.get("cotp.src-tsap", [])
    destinations = their.get("cotp.dst-tsap", [])
    sizes = their.get("cotp.tpdu_size", [])
    result = []
    for index, kind in enumerate(types):
        result.append(
            (
                kind,
                _tsap(sources[index]) if index < len(sources) else None,
                _tsap(destinations[index]) if index < len(destinations) else None,
                int(sizes[index]) if index < len(sizes) else None,
            )
        )
    return result


def _our_tsap(value: dict[str, Any] | None) -> Any:
    if value is None:
        return None
    return value.get("text") or int(value["hex"], 16)


def our_view(records: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Our ``s7comm`` records completed in one frame, as the fields compared with tshark."""
    view: dict[str, list[Any]] = {
        "pdus": [],
        "functions": [],
        "userdata": [],
        "areas": [],
        "dbs": [],
        "addresses": [],
        "dbread": [],
        "szl": [],
        "cotp": [],
    }
    numbered: list[int] = []
    for record in records:
        if record["event_type"] == "cotp":
            view["cotp"].append(
                (
                    record["pdu_type"],
                    _our_tsap(record["src_tsap"]),
                    _our_tsap(record["dst_tsap"]),
                    record["tpdu_size"],
                )
            )
            continue
        view["pdus"].append((record["rosctr"], record["pdu_ref"]))
        if record["rosctr"] in (1, 3) and record["parameter_length"]:
            view["functions"].append(record["function_code"])
        userdata = record["userdata"]
        if userdata is not None:
            view["userdata"].append((userdata["group"], userdata["subfunction"]))
        # A response repeats its request's items: compare those only where they were sent.
        if record["direction"] == "request" or record["rosctr"] == 7:
            for item in record["items"] or ():
                view["dbread"] += [(area["db"], area["address"]) for area in item.get("areas", ())]
                if "area" not in item or item["area"] == 0x01:
                    continue
                view["areas"].append(item["area"])
                view["dbs"].append(item["db"])
                if item["area"] in NUMBERED_AREAS:
                    numbered.append(item["address"])
                else:
                    view["addresses"].append(item["address"] & 0xFFFF)
        if record["szl_id"] is not None:
            view["szl"].append((record["szl_id"], record["szl_index"]))
    view["addresses"] += numbered
    return view


def compare(capture: Path) -> tuple[int, int, int, list[str], tuple[int, int], list[str]]:
    """(frames compared, agreeing, excused, disagreements, (our, their S7comm-plus PDUs), plus notes)."""
    records = run_ours(capture)
    theirs = run_tshark(capture)
    ours: dict[int, list[dict[str, Any]]] = defaultdict(list)
    plus: dict[int, int] = defaultdict(int)
    anomalies: dict[int, set[str]] = defaultdict(set)
    for record in records:
        if record["event_type"] in ("s7comm", "cotp"):
            ours[record["frame"]].append(record)
        elif record["event_type"] == "s7comm_plus" and not record["tls"]:
            plus[record["frame"]] += 1
        elif record["event_type"] == "anomaly":
            anomalies[record["frame"]].add(record["code"])
    compared = agreed = excused = 0
    disagreements: list[str] = []
    their_plus: dict[int, int] = {}
    for frame, fields in theirs.items():
        count = sum(1 for value in fields.get("data.data", []) if value.startswith("72"))
        if count and not fields.get("tcp.analysis.retransmission"):
            their_plus[frame] = count
    frames = sorted(set(ours) | {f for f, v in theirs.items() if _their_frame(v)})
    views = {frame: (our_view(ours.get(frame, [])), their_view(theirs.get(frame, {}))) for frame in frames}
    delayed: set[int] = set()
    for position, frame in enumerate(frames):
        mine, expected = views[frame]
        if frame in delayed or mine == expected:
            continue
        # Segments after a hole in the capture: tshark dissects each where it arrives, our
        # reassembly holds them until the peer's ACK shows the missing bytes are lost (a later
        # frame).  Accept when a short run of frames holds the same PDUs on both sides.
        window = frames[position : position + LOSS_WINDOW]
        if not any(_capture_loss(theirs, f) for f in window):
            continue
        for end in range(2, len(window) + 1):
            run = window[:end]
            if _merged([views[f][0] for f in run]) == _merged([views[f][1] for f in run]):
                delayed.update(run)
                break
    global DELAYED_FRAMES  # noqa: PLW0603 - a figure for the printed summary only
    DELAYED_FRAMES += len(delayed)
    for frame in frames:
        mine, expected = views[frame]
        compared += 1
        if mine == expected:
            agreed += 1
            continue
        if frame in delayed:
            agreed += 1
            disagreements.append(
                f"{label(capture)} frame {frame}: same PDUs within {LOSS_WINDOW} frames: the capture lost "
                "TCP segments and we report a PDU where reassembly could deliver it (agreement counted)"
            )
            continue
        their = theirs.get(frame, {})
        reason = _reason(their, mine, expected, anomalies[frame])
        excused += reason.startswith(TSHARK_SIDE)
        differing = {k: (mine[k], expected[k]) for k in mine if mine[k] != expected[k]}
        disagreements.append(f"{label(capture)} frame {frame}: ours/tshark {differing}: {reason}")
    plus_notes = []
    for frame in sorted(set(plus) | set(their_plus)):
        if plus.get(frame, 0) != their_plus.get(frame, 0):
            their = theirs.get(frame, {})
            flagged = any(
                theirs.get(f, {}).get(flag)
                for f in range(frame - 8, frame + 1)
                for flag in (
                    "tcp.analysis.retransmission",
                    "tcp.analysis.lost_segment",
                    "tcp.analysis.out_of_order",
                )
            )
            if flagged:
                reason = (
                    "TCP out of order: tshark dissects the out-of-order segment, we deliver it in order "
                    "once the retransmission fills the hole"
                )
            elif anomalies[frame] & {"s7comm_plus.truncated"}:
                reason = "a cut S7comm-plus PDU gives an anomaly (s7comm_plus.truncated), not a record"
            else:
                reason = "unexplained"
            plus_notes.append(
                f"{label(capture)} frame {frame}: {plus.get(frame, 0)} S7comm-plus PDUs ours, "
                f"{their_plus.get(frame, 0)} 0x72 payloads tshark: {reason}"
            )
    return (
        compared,
        agreed,
        excused,
        disagreements,
        (sum(plus.values()), sum(their_plus.values())),
        plus_notes,
    )


def _their_frame(fields: dict[str, list[str]]) -> bool:
    """tshark sees an S7comm PDU or a COTP TPDU other than data in the frame."""
    return bool(fields.get("s7comm.header.rosctr")) or any(
        _int(v) != 0x0F for v in fields.get("cotp.type", [])
    )


def _capture_loss(theirs: dict[int, dict[str, list[str]]], frame: int) -> bool:
    return any(theirs.get(frame, {}).get(flag) for flag in _LOSS_FLAGS)


def _merged(views: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    return {key: sorted((value for view in views for value in view[key]), key=repr) for key in views[0]}


def _reason(
    their: dict[str, list[str]], mine: dict[str, list[Any]], expected: dict[str, list[Any]], flagged: set[str]
) -> str:
    if their.get("tcp.analysis.retransmission"):
        return "TCP retransmission: tshark dissects the copy again, our reassembly delivers the bytes once"
    if their.get("tcp.analysis.out_of_order"):
        return "TCP out of order: tshark dissects the segment where it arrives, we where it fits"
    if their.get("_ws.malformed"):
        return f"tshark marks the frame malformed; our anomalies: {sorted(flagged) or 'none'}"
    if flagged & {"tpkt.bad_version", "tpkt.bad_length"} and not expected["pdus"]:
        return "tshark marks nothing but gives up on the segment at a broken TPKT; we resync to the next"
    if not mine["cotp"] and expected["cotp"] and all(src is None for _, src, _, _ in expected["cotp"]):
        return "not S7: a COTP connection request without TSAPs (RDP), the flow is RDP for us"
    return f"unexplained (our anomalies: {sorted(flagged) or 'none'})"


def _all_captures() -> list[Path]:
    return shared_s7_captures() + own_s7_captures()


@pytest.mark.tshark
def test_s7comm_agrees_with_tshark() -> None:
    need_tool("tshark")
    if not shared_s7_captures():
        shared_pcaps()  # skips with the reason
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    lines: list[str] = []
    plus_ours = plus_theirs = 0
    plus_lines: list[str] = []
    for capture in _all_captures():
        compared, agreed, excused, disagreements, (ours, theirs), notes = compare(capture)
        name = capture_set(capture)
        totals[name][0] += compared
        totals[name][1] += agreed
        totals[name][2] += excused
        lines += disagreements
        plus_ours += ours
        plus_theirs += theirs
        plus_lines += notes
    print()
    all_compared = sum(t[0] for t in totals.values())
    all_agreed = sum(t[1] for t in totals.values())
    for name, (compared, agreed, excused) in sorted(totals.items()):
        print(
            f"{name}: {agreed}/{compared} frames agree ({100 * agreed / max(compared, 1):.2f} %); "
            f"{excused} differ for a listed tshark-side reason"
        )
    print(
        f"all S7comm/COTP frames: {all_agreed}/{all_compared} ({100 * all_agreed / max(all_compared, 1):.3f} %)"
    )
    print(f"of which {DELAYED_FRAMES} agree only over a run of frames with TCP segments lost in the capture")
    for line in lines:
        print("  ", line)
    print(f"S7comm-plus PDUs: ours {plus_ours}, tshark's 0x72 COTP payloads {plus_theirs}")
    for line in plus_lines:
        print("  ", line)
    assert not [line for line in lines if "unexplained" in line]
    assert not [line for line in plus_lines if "unexplained" in line]
    assert plus_theirs > 0
    for name, (compared, agreed, excused) in totals.items():
        assert compared > excused, name
        assert agreed / (compared - excused) >= THRESHOLD, f"{name}: {agreed}/{compared - excused}"


# -- device identity and block hashes against tshark -------------------------------------------------


def _tshark_fields(capture: Path, fields: list[str], display_filter: str) -> list[list[list[str]]]:
    command = ["tshark", "-r", str(capture), "-n", "-Y", display_filter, "-T", "fields"]
    command += ["-E", "separator=/t", "-E", "aggregator=|", "-E", "occurrence=a"]
    port = re.search(r"_port(\d+)", capture.stem)
    if port:
        command += ["-d", f"tcp.port=={port[1]},tpkt"]
    for field in fields:
        command += ["-e", field]
    output = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600).stdout
    return [[value.split("|") if value else [] for value in line.split("\t")] for line in output.splitlines()]


@pytest.mark.tshark
def test_identity_agrees_with_tshark() -> None:
    """Every order number and serial number tshark reads from an SZL answer is in our identity."""
    need_tool("tshark")
    if not shared_s7_captures():
        shared_pcaps()
    checked = 0
    missing: list[str] = []
    for capture in _all_captures():
        rows = _tshark_fields(
            capture,
            [
                "frame.number",
                "s7comm.szl.xy11.0001.index",
                "s7comm.szl.xy11.0001.anz",
                "s7comm.szl.001c.0005.serialn",
            ],
            "s7comm.szl.xy11.0001.anz || s7comm.szl.001c.0005.serialn",
        )
        if not rows:
            continue
        ours: dict[int, dict[str, Any]] = {}
        for record in run_ours(capture):
            if record["event_type"] == "s7comm" and record["szl"] and record["szl"].get("identity"):
                ours.setdefault(record["frame"], {}).update(record["szl"]["identity"])
        for frame_values, indexes, orders, serials in rows:
            frame = int(frame_values[0])
            identity = ours.get(frame, {})
            for index, order in zip(indexes, orders, strict=False):
                if int(index, 16) == 1:
                    checked += 1
                    if identity.get("order_number") != order.strip():
                        missing.append(f"{label(capture)} frame {frame}: order {order!r}, ours {identity}")
            for serial in serials:
                checked += 1
                if identity.get("serial_number") != serial.strip():
                    missing.append(f"{label(capture)} frame {frame}: serial {serial!r}, ours {identity}")
    print(f"\n{checked} order/serial numbers compared with tshark")
    for line in missing:
        print("  ", line)
    assert checked > 0
    assert not missing


@pytest.mark.tshark
def test_block_hashes_agree_with_tshark_bytes() -> None:
    """SHA-256 and length of every finished transfer equal those of the bytes tshark shows.

    tshark shows the block bytes of each upload (0x1E) and download block (0x1B) answer as
    ``s7comm.resp.data``; concatenated per transfer in capture order they must hash to what we report
    on the END_UPLOAD / DOWNLOAD_ENDED record.
    """
    need_tool("tshark")
    if not shared_s7_captures():
        shared_pcaps()
    compared = 0
    for capture in _all_captures():
        records = run_ours(capture)
        ends = [
            r
            for r in records
            if r["event_type"] == "s7comm"
            and r["rosctr"] == 1
            and r["function_code"] in (0x1C, 0x1F)
            and (r["block"] or {}).get("sha256")
        ]
        if not ends:
            continue
        rows = _tshark_fields(
            capture,
            ["frame.number", "s7comm.param.func", "s7comm.resp.data"],
            "s7comm.header.rosctr == 3 && (s7comm.param.func == 0x1b || s7comm.param.func == 0x1e)",
        )
        chunks = {int(row[0][0]): bytes.fromhex(row[2][0]) for row in rows if row[2]}
        for end in ends:
            block = end["block"]
            frames = sorted(f for f in chunks if block["first_frame"] <= f < end["frame"])
            data = b"".join(chunks[f] for f in frames)
            assert len(frames) == block["chunks"], (label(capture), end["frame"])
            assert (len(data), hashlib.sha256(data).hexdigest()) == (block["length"], block["sha256"])
            compared += 1
    print(f"\n{compared} block transfers hashed alike")
    assert compared >= 4
