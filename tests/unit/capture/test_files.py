"""Capture readers against files built field by field here (independent of the generators)."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import struct
from collections.abc import Callable
from pathlib import Path

import lz4.frame
import pytest
import zstandard

from ics_monitor.capture import open_capture, open_captures
from ics_monitor.capture.files import ASSUMED_RATIO
from ics_monitor.core.errors import CaptureError


def pcap_bytes(
    records: list[tuple[int, int, bytes]],
    order: str = "<",
    nano: bool = False,
    link_type: int = 1,
    snaplen: int = 65535,
) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(
        order + "IHHiIII",
        magic,  # magic number (byte order + resolution)
        2,  # major version
        4,  # minor version
        0,  # thiszone
        0,  # sigfigs
        snaplen,  # snap length
        link_type,  # link type
    )
    for sec, frac, data in records:
        out += struct.pack(order + "IIII", sec, frac, len(data), len(data) + 4) + data
    return out


def block(block_type: int, body: bytes, order: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", block_type, total) + body + struct.pack(order + "I", total)


def shb(order: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def idb(link_type: int, tsresol: int | None = None, order: str = "<") -> bytes:
    body = struct.pack(order + "HHI", link_type, 0, 0)
    if tsresol is not None:
        body += struct.pack(order + "HH", 9, 1) + bytes((tsresol,)) + b"\0\0\0"
        body += struct.pack(order + "HH", 0, 0)
    return block(1, body, order)


def epb(iface: int, ticks: int, data: bytes, order: str = "<") -> bytes:
    return block(
        6,
        struct.pack(order + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data,
        order,
    )


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


FRAMES = [(1700000000, 1, b"A" * 60), (1700000000, 500000, b"B" * 61), (1700000001, 2, b"C" * 62)]


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_microseconds_both_byte_orders(tmp_path: Path, order: str) -> None:
    path = write(tmp_path, "a.pcap", pcap_bytes(FRAMES, order=order))
    frames = list(open_capture(path))
    assert [f[2] for f in frames] == [f[2] for f in FRAMES]
    assert frames[1][0] == pytest.approx(1700000000.5)
    assert frames[0][1] == 1  # link type
    assert frames[0][3] == 64  # wire length


def test_pcap_nanoseconds(tmp_path: Path) -> None:
    path = write(tmp_path, "n.pcap", pcap_bytes([(10, 123456789, b"x" * 20)], order=">", nano=True))
    (frame,) = list(open_capture(path))
    assert frame[0] == pytest.approx(10.123456789)


def test_gzip_is_transparent(tmp_path: Path) -> None:
    path = write(tmp_path, "a.pcap.gz", gzip.compress(pcap_bytes(FRAMES), mtime=0))
    assert [f[2] for f in open_capture(path)] == [f[2] for f in FRAMES]


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
    "lz4": lz4.frame.compress,
    "xz": lzma.compress,
    "bz2": bz2.compress,
}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compressed_captures_read_as_the_plain_file_whatever_their_name(tmp_path: Path, suffix: str) -> None:
    content = pcap_bytes(FRAMES)
    named = write(tmp_path, f"a.pcap.{suffix}", COMPRESSORS[suffix](content))
    unnamed = write(tmp_path, "b.pcap", COMPRESSORS[suffix](content))  # recognised by content
    plain = list(open_capture(write(tmp_path, "p.pcap", content)))
    assert list(open_capture(named)) == plain == list(open_capture(unnamed))
    assert open_capture(named).compressed


def _records(count: int) -> list[tuple[int, int, bytes]]:
    noise = random.Random(7)  # incompressible payloads: the compressed file is as long as the data
    return [(1700000000 + n, 0, noise.randbytes(200)) for n in range(count)]


def test_zstd_frames_are_read_one_after_another(tmp_path: Path) -> None:
    content = pcap_bytes(_records(50))
    compressor = zstandard.ZstdCompressor()
    frames = compressor.compress(content[:3000]) + compressor.compress(content[3000:])
    path = write(tmp_path, "f.pcap.zst", frames)
    assert [f[2] for f in open_capture(path)] == [r[2] for r in _records(50)]


def test_a_zstd_file_cut_short_yields_its_whole_frames_then_names_the_cut(tmp_path: Path) -> None:
    # zstandard's own stream reader ends quietly at a cut frame: records would go missing unsaid.
    content = pcap_bytes(_records(50))
    compressor = zstandard.ZstdCompressor()
    first = compressor.compress(content[:5000])
    second = compressor.compress(content[5000:])
    path = write(tmp_path, "t.pcap.zst", first + second[: len(second) // 2])
    seen = []
    with pytest.raises(CaptureError, match="zstd frame") as error:
        for frame in open_capture(path):
            seen.append(frame)
    whole = (5000 - 24) // 216  # the records inside the first frame
    assert len(seen) == whole
    assert error.value.offset == 5000  # in the decompressed stream: where the whole frame ended


def _until_error(path: str) -> tuple[int, CaptureError | None]:
    seen = 0
    try:
        for _frame in open_capture(path):
            seen += 1
    except CaptureError as error:
        return seen, error
    return seen, None


def test_bytes_after_the_last_zstd_frame_cost_no_record_before_them(tmp_path: Path) -> None:
    # 6,000 records of 216 bytes: more than one read (1 MiB) of decompressed data before the garbage.
    content = pcap_bytes(_records(6000))
    path = write(tmp_path, "g.pcap.zst", zstandard.ZstdCompressor().compress(content) + b"garbage!")
    seen, error = _until_error(path)
    assert seen == 6000 and error is not None


@pytest.mark.parametrize("suffix", ["gz", *sorted(COMPRESSORS)])
def test_a_compressed_file_cut_short_yields_the_records_before_the_cut(tmp_path: Path, suffix: str) -> None:
    content = pcap_bytes(_records(6000))  # 1.3 MB: the cut falls after the first 1 MiB read
    packers = {**COMPRESSORS, "gz": gzip.compress, "bz2": lambda data: bz2.compress(data, 1)}
    packed = packers[suffix](content)  # bzip2 in 100 kB blocks: a cut loses at most one
    path = write(tmp_path, f"c.pcap.{suffix}", packed[: len(packed) * 9 // 10])
    seen, error = _until_error(path)
    assert error is not None
    # Random payloads do not compress: 90% of the file holds about 5,400 records; a block of
    # the compressor's (at most 100 kB, bzip2 at level 1) may go with the cut, not a read's MiB.
    assert seen >= 4900
    assert error.offset is not None and error.offset >= 24 + seen * 216


def test_a_zstd_file_starting_with_a_skippable_frame_is_read(tmp_path: Path) -> None:
    skippable = struct.pack("<II", 0x184D2A50, 4) + b"pzst"  # as pzstd writes first
    content = pcap_bytes(FRAMES)
    path = write(tmp_path, "p.pcap.zst", skippable + zstandard.ZstdCompressor().compress(content))
    assert [f[2] for f in open_capture(path)] == [f[2] for f in FRAMES]


def test_a_compressed_capture_is_sized_by_what_it_holds(tmp_path: Path) -> None:
    # A highly compressible capture: gzip's trailer and zstd's frame header say its real size,
    # far beyond the assumed ratio; files that say nothing count at the assumed ratio.
    content = pcap_bytes([(1700000000 + n, 0, bytes(1000)) for n in range(200)])
    plain = open_capture(write(tmp_path, "p.pcap", content))
    assert plain.capture_size == plain.size == len(content)
    frames = [f[2] for f in plain]
    packed = {
        "gz": gzip.compress(content, mtime=0),
        "zst": zstandard.ZstdCompressor().compress(content),  # content size in the header
        **{suffix: pack(content) for suffix, pack in COMPRESSORS.items() if suffix != "zst"},
    }
    for suffix, data in packed.items():
        capture = open_capture(write(tmp_path, f"c.pcap.{suffix}", data))
        assert capture.size == len(data) < len(content) // 10, suffix
        if suffix in ("gz", "zst"):
            assert capture.capture_size == len(content), suffix
        else:
            assert capture.capture_size == ASSUMED_RATIO * len(data), suffix
        assert [f[2] for f in capture] == frames, suffix
    merged = open_captures([str(tmp_path / "c.pcap.gz"), str(tmp_path / "p.pcap")])
    assert merged.capture_size == 2 * len(content)
    assert merged.size == len(content) + len(packed["gz"])  # progress: bytes on disk


def test_a_cut_or_padded_gzip_capture_is_not_sized_by_its_last_bytes(tmp_path: Path) -> None:
    # Its last four bytes are compressed data or junk, not the trailer: read as a size they say
    # anything up to 4 GiB (a 30 kB cut file made four workers start).
    content = pcap_bytes(_records(400))
    packed = gzip.compress(content, mtime=0)
    for name, data in (
        ("cut", packed[: len(packed) // 2] + b"\xff\xff\xff\x7f"),
        ("padded", packed + b"junk\xff\xff\xff\x7f"),
    ):
        capture = open_capture(write(tmp_path, f"{name}.pcap.gz", data))
        assert capture.capture_size == ASSUMED_RATIO * len(data), name


def test_a_bug_in_a_reader_is_not_reported_as_a_damaged_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # lz4 reports damaged data with RuntimeError, read errors are OSError and the like: any other
    # RuntimeError inside reading is a bug and keeps its traceback instead of reading "read error".
    def broken(self: object, size: int = -1) -> bytes:
        raise RuntimeError("a bug")

    path = write(tmp_path, "b.pcap.gz", gzip.compress(pcap_bytes(FRAMES), mtime=0))
    monkeypatch.setattr(gzip.GzipFile, "read1", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        list(open_capture(path))


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_damaged_compressed_data_is_one_capture_error(tmp_path: Path, suffix: str) -> None:
    packed = bytearray(COMPRESSORS[suffix](pcap_bytes(_records(40))))
    middle = len(packed) // 2
    packed[middle : middle + 64] = bytes(64)
    path = write(tmp_path, f"d.pcap.{suffix}", bytes(packed))
    with pytest.raises(CaptureError):
        list(open_capture(path))


def test_truncated_record_yields_everything_before_then_names_offset(tmp_path: Path) -> None:
    content = pcap_bytes(FRAMES)
    cut = len(content) - 10
    path = write(tmp_path, "t.pcap", content[:cut])
    seen = []
    with pytest.raises(CaptureError) as error:
        for frame in open_capture(path):
            seen.append(frame)
    assert len(seen) == 2
    third_record_offset = 24 + 16 + 60 + 16 + 61
    assert error.value.offset == third_record_offset
    assert "t.pcap" in str(error.value) and str(third_record_offset) in str(error.value)


def test_truncated_file_header(tmp_path: Path) -> None:
    path = write(tmp_path, "h.pcap", pcap_bytes([])[:20])
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        list(open_capture(path))


def test_absurd_record_length_is_corruption(tmp_path: Path) -> None:
    content = pcap_bytes(FRAMES[:1]) + struct.pack("<IIII", 1, 0, 10_000_000, 10_000_000) + b"x" * 100
    path = write(tmp_path, "c.pcap", content)
    with pytest.raises(CaptureError, match="corrupt record"):
        list(open_capture(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"hello world, this is not a capture", "not a pcap or pcapng"), (b"", "not a pcap or pcapng")],
)
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, "x.pcap", content)
    with pytest.raises(CaptureError, match=message):
        open_capture(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(str(tmp_path / "absent.pcap"))
    with pytest.raises(CaptureError, match="is a directory"):
        open_capture(str(tmp_path))


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_interfaces_resolutions_and_blocks(tmp_path: Path, order: str) -> None:
    content = (
        shb(order)
        + idb(1, order=order)  # interface 0: Ethernet, microseconds
        + idb(101, tsresol=9, order=order)  # interface 1: raw IP, nanoseconds
        + idb(1, tsresol=0x80 | 10, order=order)  # interface 2: 2^-10 s units
        + epb(0, 1_700_000_000_250_000, b"e" * 14, order)
        + epb(1, 1_700_000_000_500_000_001, b"\x45" + b"r" * 19, order)
        + epb(2, 1024 * 1_700_000_001 + 512, b"f" * 14, order)
        + block(3, struct.pack(order + "I", 14) + b"s" * 14, order)  # simple packet block
        + block(2, struct.pack(order + "HHIIII", 1, 0, 0, 5, 20, 20) + b"\x45" + b"o" * 19, order)  # OPB
        + block(4, b"\0" * 8, order)  # name resolution block: skipped
        + block(5, struct.pack(order + "III", 0, 0, 0), order)  # interface statistics: skipped
    )
    path = write(tmp_path, "m.pcapng", content)
    frames = list(open_capture(path))
    assert [(f[1], len(f[2])) for f in frames] == [(1, 14), (101, 20), (1, 14), (1, 14), (101, 20)]
    assert frames[0][0] == pytest.approx(1_700_000_000.25)
    assert frames[1][0] == pytest.approx(1_700_000_000.5)
    assert frames[2][0] == pytest.approx(1_700_000_001.5)
    assert frames[4][0] == pytest.approx(5 / 1e9)


def test_pcapng_second_section_restarts_interfaces(tmp_path: Path) -> None:
    content = shb() + idb(1) + epb(0, 1, b"a" * 14) + shb() + idb(101) + epb(0, 2, b"\x45" + b"b" * 19)
    frames = list(open_capture(write(tmp_path, "s.pcapng", content)))
    assert [f[1] for f in frames] == [1, 101]


def test_pcapng_corrupt_block_length(tmp_path: Path) -> None:
    good = shb() + idb(1) + epb(0, 1, b"a" * 14)
    content = good + struct.pack("<II", 6, 6) + b"\0" * 16
    seen = []
    with pytest.raises(CaptureError, match="total length 6") as error:
        for frame in open_capture(write(tmp_path, "c.pcapng", content)):
            seen.append(frame)
    assert len(seen) == 1
    assert error.value.offset == len(good)


def test_pcapng_trailer_mismatch(tmp_path: Path) -> None:
    bad = bytearray(epb(0, 1, b"a" * 14))
    bad[-4:] = struct.pack("<I", 999)
    content = shb() + idb(1) + bytes(bad)
    with pytest.raises(CaptureError, match="trailing length"):
        list(open_capture(write(tmp_path, "t.pcapng", content)))


def test_pcapng_unknown_interface(tmp_path: Path) -> None:
    content = shb() + idb(1) + epb(3, 1, b"a" * 14)
    with pytest.raises(CaptureError, match="unknown interface 3"):
        list(open_capture(write(tmp_path, "u.pcapng", content)))


def test_pcapng_time_out_of_range_is_a_corrupt_block_after_the_good_ones(tmp_path: Path) -> None:
    # 2**64 - 1 microseconds (year 586,000): no date holds it, nor a flow id; the packet before stays.
    good = epb(0, 1_700_000_000 * 1_000_000, b"a" * 14)
    content = shb() + idb(1) + good + epb(0, (1 << 64) - 1, b"b" * 14)
    path = write(tmp_path, "t.pcapng", content)
    frames = []
    with pytest.raises(CaptureError, match=r"time 1\.84467e\+13 s out of range") as error:
        for frame in open_capture(path):
            frames.append(frame)
    assert len(frames) == 1 and error.value.offset == len(shb() + idb(1) + good)


def test_a_capture_given_twice_is_refused_before_any_work(tmp_path: Path) -> None:
    # Merged with itself, every packet came twice and was counted as a mirror copy.
    path = write(tmp_path, "a.pcapng", shb() + idb(1) + epb(0, 1, b"a" * 14))
    link = tmp_path / "link.pcapng"
    link.symlink_to(path)
    for second in (path, str(link)):
        with pytest.raises(CaptureError, match="given twice"):
            open_captures([path, second])
    copy = write(tmp_path, "b.pcapng", Path(path).read_bytes())  # another file with the same bytes
    assert len(list(open_captures([path, copy]))) == 2


def test_merge_in_time_order_and_damage_isolated(tmp_path: Path) -> None:
    first = write(tmp_path, "1.pcap", pcap_bytes([(1, 0, b"a" * 20), (3, 0, b"c" * 20)]))
    second_content = pcap_bytes([(2, 0, b"b" * 20), (4, 0, b"d" * 20)])
    second = write(tmp_path, "2.pcap", second_content[:-5])  # last record truncated
    source = open_captures([first, second])
    frames = list(source)
    assert [f[2][:1] for f in frames] == [b"a", b"b", b"c"]
    assert len(source.errors) == 1 and "2.pcap" in str(source.errors[0])


def test_open_captures_fails_before_work_on_bad_name(tmp_path: Path) -> None:
    good = write(tmp_path, "g.pcap", pcap_bytes(FRAMES))
    with pytest.raises(CaptureError, match="no such file"):
        open_captures([good, str(tmp_path / "missing.pcap")])


def test_records_spanning_read_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ics_monitor.capture import files

    monkeypatch.setattr(files, "CHUNK", 37)  # force every record across a chunk boundary
    records = [(i, 0, bytes([i % 256]) * (50 + i)) for i in range(40)]
    path = write(tmp_path, "chunky.pcap", pcap_bytes(records))
    assert [f[2] for f in open_capture(path)] == [r[2] for r in records]
    content = shb() + idb(1) + b"".join(epb(0, i, bytes([i]) * (30 + i)) for i in range(30))
    assert len(list(open_capture(write(tmp_path, "chunky.pcapng", content)))) == 30
