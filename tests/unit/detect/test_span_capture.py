"""The demo as an imperfect SPAN port records it, against the baseline learned from the clean normal phase.

Frames swapped in pairs (an answer captured before its question) change nothing: the flow table
hands each direction on in the order the hosts saw it.  Frames dropped lose what they carried,
but the answers to lost questions are the capture's loss, not answers nobody asked for
(ICS-2003, "possible spoofing").
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.conftest import PCAPS
from tests.support.span import lossy, reordered
from tests.unit.detect.test_sliced_capture import _alerts, _cli

NORMAL, ATTACK = PCAPS / "demo" / "plant_normal.pcap", PCAPS / "demo" / "plant_attack.pcap"


def _learned(state: Path) -> Path:
    _cli("baseline", "learn", "--state", str(state), str(NORMAL))
    return state


def test_answers_captured_before_their_questions_raise_nothing_more(tmp_path: Path) -> None:
    whole, swapped = _learned(tmp_path / "whole"), _learned(tmp_path / "swapped")
    _cli("replay", "--state", str(swapped), str(reordered(NORMAL, tmp_path / "normal_ooo.pcap")))
    assert _alerts(swapped) == Counter()
    _cli("replay", "--state", str(whole), str(ATTACK))
    _cli("replay", "--state", str(swapped), str(reordered(ATTACK, tmp_path / "attack_ooo.pcap")))
    assert _alerts(swapped) == _alerts(whole)
    assert sum(_alerts(whole).values()) >= 19


def test_frames_lost_by_the_span_port_are_not_called_spoofing(tmp_path: Path) -> None:
    for share in (0.02, 0.05):
        state = _learned(tmp_path / f"loss{share}")
        _cli("replay", "--state", str(state), str(lossy(NORMAL, tmp_path / f"normal_{share}.pcap", share)))
        assert _alerts(state) == Counter(), share
    whole, lost = _learned(tmp_path / "whole"), _learned(tmp_path / "lost")
    _cli("replay", "--state", str(whole), str(ATTACK))
    _cli("replay", "--state", str(lost), str(lossy(ATTACK, tmp_path / "attack_loss.pcap", 0.02)))
    seen = _alerts(lost)
    assert "ICS-2003" not in seen and "ICS-2006" not in seen
    assert seen <= _alerts(whole) and seen["ICS-1001"] == 1  # the PLC stop still seen
