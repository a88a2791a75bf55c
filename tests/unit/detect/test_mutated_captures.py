"""Every detector, the inventory and the baseline learner over corrupted copies of real traffic.

The dissectors' fuzz tests prove they never raise on bad bytes; this proves the analysis never
raises on what they then make of them (odd function codes, truncated item lists, values of unusual
types, anomalies in place of events).  It matters most for the compiled build, where a value of a
type the code did not declare raises TypeError instead of passing through: strict mode re-raises
what a normal run would contain and count.  Every classic pcap of the protocol directories (the demo plant: Modbus,
DNP3, S7comm, an RDP flow; the stacks' sessions; the layer-2 captures) is corrupted a few payload
bytes at a time, seeded; a baseline is learned from a corrupted copy and enforced on the rest.
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

import pytest

from tests.conftest import PCAPS
from tests.evaluation.support import run_captures

COPIES = int(os.environ.get("ICS_FUZZ_EXAMPLES", "200")) // 100 + 2
CAPTURES = [PCAPS / "demo" / "plant_normal.pcap"] + sorted(
    path
    for directory in ("demo", "modbus", "dnp3", "s7comm", "network")
    for path in (PCAPS / directory).glob("*.pcap")
    if path.name != "plant_normal.pcap"
)
# Ethernet + IPv4 + TCP without options: bytes past this are payload in most frames (the
# layer-2 capture's ARP bodies start earlier and get corrupted too, on purpose).
HEADERS = 54


def _corrupted(source: Path, target: Path, seed: int, share: float) -> int:
    """Copy a classic pcap, changing 1-4 bytes past the headers in ``share`` of the frames."""
    generator = random.Random(seed)
    data = source.read_bytes()
    magic = data[:4]
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out = bytearray(data[:24])
    offset, changed = 24, 0
    while offset + 16 <= len(data):
        included = struct.unpack(order + "I", data[offset + 8 : offset + 12])[0]
        frame = bytearray(data[offset + 16 : offset + 16 + included])
        if len(frame) > HEADERS + 4 and generator.random() < share:
            for _ in range(generator.randint(1, 4)):
                position = generator.randrange(
                    HEADERS - 12 if generator.random() < 0.1 else HEADERS, len(frame)
                )
                frame[position] = generator.choice(
                    (0x00, 0xFF, generator.randrange(256), frame[position] ^ 0x80)
                )
            changed += 1
        out += data[offset : offset + 16] + frame
        offset += 16 + included
    target.write_bytes(bytes(out))
    return changed


@pytest.mark.parametrize("seed", range(COPIES))
def test_analysis_survives_corrupted_traffic(tmp_path: Path, seed: int) -> None:
    learn, enforce = tmp_path / "learn.pcap", tmp_path / "enforce.pcap"
    corrupted = [tmp_path / f"{n}.pcap" for n in range(len(CAPTURES))]
    changed = sum(
        _corrupted(path, target, 100 * seed + n, 0.3)
        for n, (path, target) in enumerate(zip(CAPTURES, corrupted, strict=True))
    )
    assert changed > 100
    # Learned from corrupted traffic too: the learner and the baseline it makes take odd values.
    learned = run_captures([corrupted[0]], learn=True)
    assert learned.baseline is not None and learned.events
    _corrupted(CAPTURES[0], learn, 7 + seed, 0.05)
    _corrupted(CAPTURES[1], enforce, 11 + seed, 0.05)
    enforced = run_captures([*corrupted[1:], learn, enforce], baseline=learned.baseline)
    assert enforced.alerts  # the attack part still raises alerts through the damage
    # Bad bytes that reached the analysis: malformed-PDU anomalies among the events.
    assert any(getattr(event, "event_type", "") == "anomaly" for event in enforced.events)
