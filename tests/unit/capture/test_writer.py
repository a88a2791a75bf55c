"""The capture writer: what it writes, our readers and tshark read back frame for frame."""

from __future__ import annotations

import subprocess
from pathlib import Path

from ics_monitor.capture import open_capture
from ics_monitor.capture.writer import SNAPLEN, CaptureWriter, write_capture
from tests.conftest import need_tool

ETHERNET, RAW_IP = 1, 101
# An Ethernet frame carrying IPv4/UDP, and a raw IPv4 packet (link type 101), both 42/28 bytes.
UDP_FRAME = bytes.fromhex(
    "ffffffffffff020000000001080045000024000100004011f7c4c0000201c0000202d4310035001000004142434445464748"
)
RAW_PACKET = bytes.fromhex("4500001c000100004001f7ccc0000201c00002020800f7ff00000000")


def read_back(path: Path) -> list[tuple[float, int, bytes, int]]:
    capture = open_capture(str(path))
    try:
        return list(capture)
    finally:
        capture.close()


def test_one_link_type_is_classic_pcap(tmp_path: Path) -> None:
    frames = [
        (1796069506.466281, ETHERNET, UDP_FRAME, len(UDP_FRAME)),
        (1796069506.9999996, ETHERNET, UDP_FRAME[:30], 1514),  # cut by a snap length; rounds up
    ]
    path = tmp_path / "one.pcap"
    assert write_capture(path, frames) == "pcap"
    assert path.read_bytes()[:4] == bytes.fromhex("d4c3b2a1")
    back = read_back(path)
    assert [(round(ts, 6), link, data, wire) for ts, link, data, wire in back] == [
        (1796069506.466281, ETHERNET, UDP_FRAME, len(UDP_FRAME)),
        (1796069507.0, ETHERNET, UDP_FRAME[:30], 1514),
    ]


def test_several_link_types_are_pcapng(tmp_path: Path) -> None:
    frames = [
        (1700000000.25, ETHERNET, UDP_FRAME, len(UDP_FRAME)),
        (1700000001.5, RAW_IP, RAW_PACKET, len(RAW_PACKET)),
        (1700000002.75, ETHERNET, UDP_FRAME[:-1], len(UDP_FRAME)),  # odd length: padded block
    ]
    path = tmp_path / "mixed.pcapng"
    assert write_capture(path, frames) == "pcapng"
    assert read_back(path) == frames
    # tshark, another reader, sees the same frames, link types and lengths.
    need_tool("tshark")
    fields = ["frame.time_epoch", "frame.encap_type", "frame.cap_len", "frame.len"]
    command = ["tshark", "-r", str(path), "-T", "fields", *(arg for name in fields for arg in ("-e", name))]
    rows = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split("\n")
    parsed = [row.split("\t") for row in rows if row]
    assert [(float(row[0]), int(row[2]), int(row[3])) for row in parsed] == [
        (ts, len(data), wire) for ts, _link, data, wire in frames
    ]
    assert parsed[0][1] == parsed[2][1] != parsed[1][1]  # Ethernet twice, raw IP once


def test_no_frames_is_an_empty_capture(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    assert write_capture(path, []) == "pcap"
    assert read_back(path) == []


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    # The extract command's cleanup closes a writer whose close may already have run.
    writer = CaptureWriter(tmp_path / "twice.pcap")
    writer.write((1700000000.0, ETHERNET, UDP_FRAME, len(UDP_FRAME)))
    assert writer.close() == writer.close() == "pcap"
    assert len(read_back(tmp_path / "twice.pcap")) == 1
    empty = CaptureWriter(tmp_path / "empty.pcap")  # its close writes a header: not twice
    assert empty.close() == empty.close() == "pcap"


def test_a_frame_longer_than_readers_take_is_cut(tmp_path: Path) -> None:
    # Found in review: a 300,000-byte frame (a reassembled loopback capture with a large snap
    # length) was written whole under a 262,144 snap length, which Wireshark and tcpdump refuse.
    jumbo = UDP_FRAME + bytes(300_000 - len(UDP_FRAME))
    path = tmp_path / "jumbo.pcap"
    writer = CaptureWriter(path)
    writer.write((1700000000.0, ETHERNET, jumbo, len(jumbo)))
    writer.write((1700000001.0, ETHERNET, UDP_FRAME, len(UDP_FRAME)))
    writer.close()
    assert writer.cut == 1
    assert read_back(path) == [
        (1700000000.0, ETHERNET, jumbo[:SNAPLEN], 300_000),
        (1700000001.0, ETHERNET, UDP_FRAME, len(UDP_FRAME)),
    ]
    need_tool("tshark")
    command = ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.cap_len", "-e", "frame.len"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(SNAPLEN), "300000", str(len(UDP_FRAME)), str(len(UDP_FRAME))]
