"""Real-stack sessions recorded with a short snap length: every PDU is still recorded, as far as kept.

The capture is the real one with each frame cut to ``snaplen`` bytes (its original length kept),
as ``tcpdump -s`` records it.  Against the whole capture: the same protocol records; those whose
PDU was cut are marked ``truncated`` and agree with the whole record on everything the kept
bytes hold (values a prefix); the others are identical; no anomaly appears that the whole
capture does not raise (a cut PDU is not a malformed one, an answer to it is no orphan), except
``flow.sliced``, once per flow.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ics_monitor.core.anomalies import CATALOGUE
from ics_monitor.dissect import default_registry
from ics_monitor.dissect.api import ParseContext
from ics_monitor.dissect.modbus.parser import read_file_response
from ics_monitor.events.base import AnomalyEvent
from tests.conformance.test_modbus_tshark import run_ours
from tests.conftest import PCAPS
from tests.support.sliced import sliced

PROTOCOLS = ("modbus", "s7comm", "dnp3", "cotp")
EXAMPLES = int(os.environ.get("ICS_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=max(20, EXAMPLES // 10), deadline=None, suppress_health_check=list(HealthCheck))


def ident(record: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies a record whatever its frame (a head comes in an earlier frame than the end)."""
    kind = record["event_type"]
    common = (record["flow_id"], kind, record["direction"], record.get("function_code"))
    if kind == "modbus":
        return (*common, record["transaction_id"], record["unit_id"])
    if kind == "s7comm":
        return (*common, record["rosctr"], record["pdu_ref"])
    if kind == "dnp3":
        return (*common, record["src"], record["dst"], record["sequence"])
    return (*common, record.get("pdu_type"))


def prefix(cut: Any, whole: Any) -> bool:
    """``cut`` is the start of ``whole``: values, hex text, or items whose last one may be cut itself."""
    if cut is None or cut == whole:
        return True
    if isinstance(cut, str):
        return isinstance(whole, str) and whole.startswith(cut)
    if isinstance(cut, dict):
        return isinstance(whole, dict) and all(prefix(v, whole.get(k)) for k, v in cut.items())
    if not isinstance(cut, (list, tuple)) or not isinstance(whole, (list, tuple)) or len(cut) > len(whole):
        return False
    if not cut:
        return True
    return list(cut[:-1]) == list(whole[: len(cut) - 1]) and prefix(cut[-1], whole[len(cut) - 1])


def agrees(cut: dict[str, Any], whole: dict[str, Any]) -> bool:
    """A truncated record says nothing the whole one contradicts: each value it has is the whole
    one's, or the start of it (values, items, objects, hex), or None (not kept)."""
    if cut["frame"] > whole["frame"] or cut.get("request_frame") not in (None, whole.get("request_frame")):
        return False
    # What a head cannot know: when and where the PDU ended, its frames, its length and end.
    ignore = {"truncated", "ts", "frame", "request_frame", "confirmed_frame", "frames", "fin"}
    if cut["event_type"] == "dnp3":
        ignore.add("length")
    return prefix({k: v for k, v in cut.items() if k not in ignore}, whole)


CASES = [
    ("modbus/pymodbus_all_functions.pcap", 90),
    ("modbus/pymodbus_polling.pcap", 80),
    ("s7comm/snap7_session.pcap", 100),
    ("s7comm/snap7_session.pcap", 86),  # the connection request and confirm cut too
    ("s7comm/snap7_blocks.pcap", 95),
    ("dnp3/opendnp3_session.pcap", 90),
    ("dnp3/opendnp3_session_udp.pcap", 70),
    ("modbus/pymodbus_udp.pcap", 52),
]


@pytest.mark.parametrize(("name", "snaplen"), CASES, ids=[f"{n}@{s}" for n, s in CASES])
def test_a_sliced_capture_gives_every_record_as_far_as_kept(tmp_path: Path, name: str, snaplen: int) -> None:
    whole = run_ours(PCAPS / name)
    cut = run_ours(sliced(PCAPS / name, tmp_path / "sliced.pcap", snaplen))
    whole_records = [r for r in whole if r["event_type"] in PROTOCOLS]
    cut_records = [r for r in cut if r["event_type"] in PROTOCOLS]
    assert Counter(map(ident, cut_records)) == Counter(map(ident, whole_records))
    by_frame = {(ident(r), r["frame"]): r for r in whole_records}
    by_ident: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for record in whole_records:
        by_ident.setdefault(ident(record), []).append(record)
    truncated = [r for r in cut_records if r.get("truncated")]
    assert len(truncated) >= 10, "the snap length must cut PDUs for this test to mean anything"
    assert not any(r.get("truncated") for r in whole_records)
    cut_frames = {(r["flow_id"], r["frame"]) for r in truncated}
    for record in cut_records:
        if record.get("truncated"):
            assert any(agrees(record, candidate) for candidate in by_ident[ident(record)]), record
            continue
        counterpart = by_frame[(ident(record), record["frame"])]
        refers = {k: record.get(k) for k in ("request_frame", "confirmed_frame") if record.get(k)}
        if any((record["flow_id"], frame) in cut_frames for frame in refers.values()):
            # A whole answer to a cut request (or a DNP3 confirm of a cut response): it names
            # the frame the cut PDU was recorded in (its head's), and what it takes from it (an
            # S7 read's items, which type its values) is as far as that was kept.
            assert prefix({k: v for k, v in record.items() if k not in refers}, counterpart), record
        else:
            assert record == counterpart
    anomalies = Counter(r["code"] for r in cut if r["event_type"] == "anomaly")
    assert anomalies.pop("flow.sliced") == len({r["flow_id"] for r in truncated})
    assert anomalies <= Counter(r["code"] for r in whole if r["event_type"] == "anomaly")


def test_a_cut_read_file_response_is_short_not_inconsistent() -> None:
    # Byte count 8: one sub-response of 7 bytes (reference 6, three registers); 5 bytes kept.
    pdu = bytes([8, 7, 6, 0x00, 0x01, 0x00])
    *_, own, problems = read_file_response(pdu, 0, len(pdu), None)
    assert [code for code, _detail in problems] == ["modbus.truncated_pdu"]
    assert own == ({"records": []},)
    inconsistent = bytes([8, 9, 6, 0x00, 0x01, 0x00, 0x02, 0x00, 0x03])  # 9 bytes claimed of 8
    *_, problems = read_file_response(inconsistent, 0, len(inconsistent), None)
    assert [code for code, _detail in problems] == ["modbus.byte_count_mismatch"]


SLICEABLE = [
    "demo/plant_attack.pcap",
    "modbus/pymodbus_all_functions.pcap",
    "modbus/crafted_anomalies.pcap",
    "s7comm/snap7_blocks.pcap",
    "s7comm/crafted_anomalies.pcap",
    "dnp3/crafted_objects.pcap",
    "dnp3/opendnp3_session_udp.pcap",
]


@FUZZ
@given(name=st.sampled_from(SLICEABLE), snaplen=st.integers(min_value=34, max_value=160))
def test_any_snap_length_gives_records_and_catalogued_anomalies_only(name: str, snaplen: int) -> None:
    """Strict mode (a dissector's exception fails the test) over captures cut anywhere in their headers."""
    with tempfile.TemporaryDirectory() as directory:
        records = run_ours(sliced(PCAPS / name, Path(directory) / "cut.pcap", snaplen))
    for record in records:
        if record["event_type"] == "anomaly":
            assert record["code"] in CATALOGUE
        elif record.get("truncated"):
            assert record["event_type"] in PROTOCOLS


@FUZZ
@given(data=st.binary(min_size=0, max_size=300), missing=st.integers(min_value=1, max_value=2000))
def test_a_random_head_never_makes_a_dissector_raise(data: bytes, missing: int) -> None:
    for dissector in default_registry():
        if dissector.identify_only:
            continue
        for transport in sorted(dissector.transports):
            ctx = ParseContext("f", transport, "10.0.0.1", 40000, "10.0.0.2", 502)
            state = dissector.new_state(ctx)
            for direction in (0, 1):
                events = dissector.truncated(state, memoryview(data), direction, ctx, missing)
                assert all(e.code in CATALOGUE for e in events if isinstance(e, AnomalyEvent))
