"""Streaming readers for classic pcap and pcapng files, plain or compressed (gzip, zstd, LZ4, xz, bzip2).

Both readers pull fixed-size chunks and cut records out of them with precompiled structs, so memory
does not depend on file size.  A damaged file is read up to the damage: every record before it is
yielded, then ``CaptureError`` names the file and the byte offset (in the uncompressed stream).  The
readers never decode packet contents.

Compressed files are recognised by their first bytes, not their names, and read as streams: gzip,
zstd and LZ4 frames (the three tshark reads; zstd is what Arkime writes its captures with), xz and
bzip2.  A compressed file cut short is an error at the offset reached, as for a plain one.

Classic pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-03.html)::

    file header (24 bytes)         record header (16 bytes)
    +--------+-----+-----+         +--------+-----------+---------+----------+
    | magic  | ver | ... snaplen   | ts_sec | ts_frac   | incl_len| orig_len | data (incl_len)
    | linktype (low 16 bits)       +--------+-----------+---------+----------+

pcapng (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-03.html): blocks of
``type(4) total_length(4) body total_length(4)``; SHB sets byte order and starts a section, IDBs
declare interfaces (link type, if_tsresol, if_tsoffset), EPB/SPB/OPB carry packets; other blocks are
skipped.
"""

from __future__ import annotations

import bz2
import gzip
import heapq
import lzma
import os
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Final

import lz4.frame
import zstandard

from ics_monitor.core.errors import CaptureError

Frame = tuple[float, int, bytes, int]  # (ts, link_type, data, wire_len)

CHUNK = 1 << 20
# Larger records than this are corruption, not packets (Wireshark's own limit is 256 KiB).
MAX_RECORD: Final = 1 << 18
# Packet times a capture may hold: from 1970 up to the end of year 9999 (what dates can show).  A
# pcapng block past it (a 64-bit count of ticks, an interface's time offset) is corrupt.
MAX_TS: Final = 253402300800.0

PCAP_MAGIC_US: Final = 0xA1B2C3D4
PCAP_MAGIC_NS: Final = 0xA1B23C4D
PCAPNG_SHB: Final = 0x0A0D0D0A
PCAPNG_BOM: Final = 0x1A2B3C4D
GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
LZ4_MAGIC: Final = b"\x04\x22\x4d\x18"
XZ_MAGIC: Final = b"\xfd7zXZ\x00"
BZIP2_MAGIC: Final = b"BZh"
# What the decompressors raise on damaged input (cut short: EOFError; lz4's RuntimeError is turned
# into OSError where it is raised, so that any other RuntimeError stays a bug with its traceback).
_STREAM_ERRORS: Final = (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)

_BLOCK_IDB: Final = 1
_BLOCK_OPB: Final = 2
_BLOCK_SPB: Final = 3
_BLOCK_EPB: Final = 6
_OPT_END: Final = 0
_OPT_TSRESOL: Final = 9
_OPT_TSOFFSET: Final = 14


class CaptureFile:
    """One capture file opened for streaming; iterate it for frames.

    ``position`` (bytes consumed of the file on disk) and ``size`` serve progress reports.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self._raw: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
            self.size = os.fstat(self._raw.fileno()).st_size
        except FileNotFoundError:
            raise CaptureError(path, "no such file") from None
        except IsADirectoryError:
            raise CaptureError(path, "is a directory, not a capture file") from None
        except PermissionError:
            raise CaptureError(path, "permission denied") from None
        except OSError as exc:
            raise CaptureError(path, f"cannot open: {exc.strerror or exc}") from None
        self._stream: BinaryIO = self._raw
        self.compressed = False
        # The capture's own size, for sizing the work (worker count): the file's size, or for a
        # compressed file an estimate (``_uncompressed_estimate``).
        self.capture_size = self.size
        try:
            head = self._raw.read(18)
            self._raw.seek(0)
            stream = _decompressing(self._raw, head)
            if stream is not None:
                self.compressed = True
                self.capture_size = _uncompressed_estimate(self._raw, head, self.size)
                self._stream = stream
            start = self._read_exact_start(12)
        except _STREAM_ERRORS as exc:
            self.close()
            raise CaptureError(path, f"unreadable: {exc}") from None
        magic_le = int.from_bytes(start[:4], "little")
        if len(start) >= 4 and magic_le == PCAPNG_SHB:
            self.format = "pcapng"
        elif len(start) >= 4 and (
            magic_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS)
            or int.from_bytes(start[:4], "big") in (PCAP_MAGIC_US, PCAP_MAGIC_NS)
        ):
            self.format = "pcap"
        else:
            self.close()
            raise CaptureError(path, "not a pcap or pcapng capture (unknown magic number)")
        self._head = start

    def _read_exact_start(self, count: int) -> bytes:
        # A decompressing stream may return less than asked before its end.
        start = b""
        while len(start) < count:
            more = self._stream.read(count - len(start))
            if not more:
                break
            start += more
        return start

    @property
    def position(self) -> int:
        """Bytes of the on-disk file consumed so far."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return self.size

    def close(self) -> None:
        """Release the file."""
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __iter__(self) -> Iterator[Frame]:
        try:
            if self.format == "pcap":
                yield from self._pcap()
            else:
                yield from self._pcapng()
        finally:
            self.close()

    # -- low-level chunked reading ---------------------------------------------------------------

    def _chunks(self) -> Iterator[bytes]:
        """Yield the file's bytes in chunks, starting with the already-read head."""
        yield self._head
        # read1: a decompressing reader's read(n) drops what it gathered when the file proves cut
        # short before n bytes; read1 hands out each piece as it comes, so the error comes after.
        read = getattr(self._stream, "read1", self._stream.read)
        while True:
            try:
                chunk = read(CHUNK)
            except _STREAM_ERRORS as exc:
                raise _StreamError(str(exc) or type(exc).__name__) from None
            if not chunk:
                return
            yield chunk

    # -- classic pcap ----------------------------------------------------------------------------

    def _pcap(self) -> Iterator[Frame]:
        path = self.path
        chunks = self._chunks()
        buf = b""
        base = 0  # file offset of buf[0]
        try:
            for chunk in chunks:
                buf += chunk
                if len(buf) >= 24:
                    break
        except _StreamError as exc:
            raise CaptureError(path, f"read error: {exc}", 0) from None
        if len(buf) < 24:
            raise CaptureError(path, "truncated pcap file header", len(buf))
        order = "<" if int.from_bytes(buf[:4], "little") in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
        magic, _major, _minor, _zone, _sigfigs, snaplen, linktype_field = struct.unpack_from(
            order + "IHHiIII", buf, 0
        )
        divisor = 1_000_000_000.0 if magic == PCAP_MAGIC_NS else 1_000_000.0
        link_type = linktype_field & 0x0FFFFFFF  # upper bits: FCS length flags
        limit = max(snaplen, MAX_RECORD)
        record = struct.Struct(order + "IIII")
        unpack = record.unpack_from
        pos = 24
        # Typed: compiled, the arithmetic and the slice stay native instead of boxed.
        sec: int
        frac: int
        incl: int
        orig: int
        while True:
            end = len(buf)
            while pos + 16 <= end:
                sec, frac, incl, orig = unpack(buf, pos)
                if incl > limit:
                    raise CaptureError(
                        path,
                        f"corrupt record: captured length {incl} exceeds the maximum {limit}",
                        base + pos,
                    )
                stop = pos + 16 + incl
                if stop > end:
                    break
                yield (sec + frac / divisor, link_type, buf[pos + 16 : stop], orig)
                pos = stop
            try:
                chunk = next(chunks, b"")
            except _StreamError as exc:
                raise CaptureError(path, f"read error: {exc}", base + len(buf)) from None
            if not chunk:
                if pos < len(buf):
                    raise CaptureError(
                        path,
                        f"truncated record ({len(buf) - pos} bytes of a record at end of file)",
                        base + pos,
                    )
                return
            base += pos
            buf = buf[pos:] + chunk
            pos = 0

    # -- pcapng ----------------------------------------------------------------------------------

    def _pcapng(self) -> Iterator[Frame]:
        path = self.path
        chunks = self._chunks()
        buf = b""
        base = 0
        pos = 0
        order = "<"
        # per section: list of (link_type, divisor, offset_seconds, snaplen)
        interfaces: list[tuple[int, float, float, int]] = []
        # Precompiled per byte order (a section header may switch it): block head, trailer, the
        # enhanced, simple and obsolete packet blocks' fixed fields.
        head, trailer_of, epb, spb, opb = _PCAPNG_LE
        block_type: int
        total: int
        iface: int
        high: int
        low: int
        incl: int
        orig: int
        while True:
            end = len(buf)
            while pos + 12 <= end:
                block_type, total = head.unpack_from(buf, pos)
                if block_type == PCAPNG_SHB:
                    bom = buf[pos + 8 : pos + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        order = "<"
                        head, trailer_of, epb, spb, opb = _PCAPNG_LE
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        order = ">"
                        head, trailer_of, epb, spb, opb = _PCAPNG_BE
                    else:
                        raise CaptureError(path, "corrupt section header: bad byte-order magic", base + pos)
                    block_type, total = head.unpack_from(buf, pos)
                if total < 12 or total % 4:
                    raise CaptureError(path, f"corrupt block: total length {total}", base + pos)
                if total > MAX_RECORD + 4096 and block_type != PCAPNG_SHB:
                    raise CaptureError(path, f"corrupt block: total length {total} too large", base + pos)
                stop = pos + total
                if stop > end:
                    break
                trailer: int = trailer_of.unpack_from(buf, stop - 4)[0]
                if trailer != total:
                    raise CaptureError(
                        path, f"corrupt block: trailing length {trailer} differs from {total}", base + pos
                    )
                if block_type == _BLOCK_EPB:
                    if total < 32:
                        raise CaptureError(path, "corrupt enhanced packet block: too short", base + pos)
                    iface, high, low, incl, orig = epb.unpack_from(buf, pos + 8)
                    if iface >= len(interfaces):
                        raise CaptureError(path, f"packet block names unknown interface {iface}", base + pos)
                    if 28 + incl > total - 4:
                        raise CaptureError(path, "corrupt enhanced packet block: data past block", base + pos)
                    link_type, divisor, offset, _snap = interfaces[iface]
                    ts = _packet_time(high, low, divisor, offset, path, base + pos)
                    yield (ts, link_type, buf[pos + 28 : pos + 28 + incl], orig)
                elif block_type == _BLOCK_SPB:
                    if not interfaces:
                        raise CaptureError(path, "simple packet block before any interface", base + pos)
                    orig = spb.unpack_from(buf, pos + 8)[0]
                    link_type, _divisor, _offset, snap = interfaces[0]
                    incl = min(orig, total - 16, snap or orig)
                    # A simple packet block has no timestamp: 0.0 marks "unknown".
                    yield (0.0, link_type, buf[pos + 12 : pos + 12 + incl], orig)
                elif block_type == _BLOCK_OPB:
                    if total < 32:
                        raise CaptureError(path, "corrupt packet block: too short", base + pos)
                    iface, _drops, high, low, incl, orig = opb.unpack_from(buf, pos + 8)
                    if iface >= len(interfaces):
                        raise CaptureError(path, f"packet block names unknown interface {iface}", base + pos)
                    if 28 + incl > total - 4:
                        raise CaptureError(path, "corrupt packet block: data past block", base + pos)
                    link_type, divisor, offset, _snap = interfaces[iface]
                    ts = _packet_time(high, low, divisor, offset, path, base + pos)
                    yield (ts, link_type, buf[pos + 28 : pos + 28 + incl], orig)
                elif block_type == _BLOCK_IDB:
                    if total < 20:
                        raise CaptureError(path, "corrupt interface block: too short", base + pos)
                    interfaces.append(_interface(buf, pos, stop, order))
                elif block_type == PCAPNG_SHB:
                    interfaces = []
                pos = stop
            try:
                chunk = next(chunks, b"")
            except _StreamError as exc:
                raise CaptureError(path, f"read error: {exc}", base + len(buf)) from None
            if not chunk:
                if pos < len(buf):
                    raise CaptureError(
                        path,
                        f"truncated block ({len(buf) - pos} bytes of a block at end of file)",
                        base + pos,
                    )
                return
            base += pos
            buf = buf[pos:] + chunk
            pos = 0


def _pcapng_structs(
    order: str,
) -> tuple[struct.Struct, struct.Struct, struct.Struct, struct.Struct, struct.Struct]:
    """Block head, trailer, EPB, SPB and OPB fixed fields in one byte order."""
    return (
        struct.Struct(order + "II"),
        struct.Struct(order + "I"),
        struct.Struct(order + "IIIII"),
        struct.Struct(order + "I"),
        struct.Struct(order + "HHIIII"),
    )


_PCAPNG_LE: Final = _pcapng_structs("<")
_PCAPNG_BE: Final = _pcapng_structs(">")


def _interface(buf: bytes, pos: int, stop: int, order: str) -> tuple[int, float, float, int]:
    """Parse an IDB: link type, timestamp divisor, timestamp offset (seconds), snap length."""
    link_type, _reserved, snaplen = struct.unpack_from(order + "HHI", buf, pos + 8)
    divisor = 1_000_000.0
    offset = 0.0
    opt = pos + 16
    opt_end = stop - 4
    option = struct.Struct(order + "HH")
    while opt + 4 <= opt_end:
        code, length = option.unpack_from(buf, opt)
        value = opt + 4
        if code == _OPT_END:
            break
        if value + length > opt_end:
            break
        if code == _OPT_TSRESOL and length >= 1:
            resol = buf[value]
            divisor = float(2 ** (resol & 0x7F)) if resol & 0x80 else float(10**resol)
        elif code == _OPT_TSOFFSET and length >= 8:
            (offset_int,) = struct.unpack_from(order + "q", buf, value)
            offset = float(offset_int)
        opt = value + ((length + 3) & ~3)
    return (link_type, divisor, offset, snaplen)


def _decompressing(raw: BinaryIO, head: bytes) -> BinaryIO | None:
    """A decompressing reader over ``raw`` when ``head`` (its first bytes) is a compressed format's."""
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(ZSTD_MAGIC) or _skippable(head):
        return _ZstdFrames(raw)  # type: ignore[return-value]
    if head.startswith(LZ4_MAGIC):
        return _Lz4Frames(raw)  # type: ignore[return-value]
    if head.startswith(XZ_MAGIC):
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(BZIP2_MAGIC):
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    return None


# What a compressed capture is taken to hold per byte when it does not say more: pcaps compress
# 3 to 5 times with gzip or zstd (real plant captures here), 20 times when synthetic.
ASSUMED_RATIO: Final = 4
# A declared size beyond this many bytes per byte of file is not believed: deflate cannot expand
# more (about 1032:1), and a file cut short or followed by junk ends in bytes that are no trailer.
MAX_DECLARED_RATIO: Final = 1032


def _uncompressed_estimate(raw: BinaryIO, head: bytes, size: int) -> int:
    """About how many bytes a compressed capture holds: at least ``ASSUMED_RATIO`` x its size.

    More when the file says so: gzip's trailer holds its (last member's) size modulo 4 GiB, a zstd
    frame header may hold its content size (``zstd`` writes it for a file; one frame's only); a
    declared size past ``MAX_DECLARED_RATIO`` is ignored.  Only sizes the work: progress goes by
    the bytes read from disk.
    """
    declared = 0
    try:
        if head.startswith(GZIP_MAGIC) and size >= 18:
            raw.seek(size - 4)
            declared = int.from_bytes(raw.read(4), "little")
        elif head.startswith(ZSTD_MAGIC):
            declared = max(zstandard.frame_content_size(head), 0)
    except (OSError, zstandard.ZstdError):
        declared = 0
    finally:
        raw.seek(0)
    if declared > size * MAX_DECLARED_RATIO:
        declared = 0
    return max(size * ASSUMED_RATIO, declared)


class _Lz4Frames:
    """``lz4.frame``'s reader, whose report of damaged data (a RuntimeError) is raised as OSError."""

    def __init__(self, raw: BinaryIO) -> None:
        self._file = lz4.frame.LZ4FrameFile(raw, mode="rb")

    def read(self, size: int = -1) -> bytes:
        """As ``LZ4FrameFile.read``."""
        try:
            data: bytes = self._file.read(size)
        except RuntimeError as exc:  # LZ4F_decompress failed ...: the library's only error
            raise OSError(str(exc)) from None
        return data

    def read1(self, size: int = -1) -> bytes:
        """As ``LZ4FrameFile.read1``."""
        try:
            data: bytes = self._file.read1(size)
        except RuntimeError as exc:
            raise OSError(str(exc)) from None
        return data

    def close(self) -> None:
        """Close the reader (not the file under it)."""
        self._file.close()


def _skippable(head: bytes) -> bool:
    """A zstd skippable frame (magic 0x184D2A50-5F, little-endian), as pzstd writes first."""
    return len(head) >= 4 and head[1:4] == b"\x2a\x4d\x18" and 0x50 <= head[0] <= 0x5F


class _ZstdFrames:
    """A zstd file read as one stream: its frames one after another (``zstd`` and Arkime write several).

    A frame cut short raises EOFError, as the gzip and xz readers do (zstandard's own stream reader
    ends quietly there).  Input goes in 512-byte pieces: what one piece decompresses to is bounded
    (about 16 MiB at zstd's largest ratio), whatever the file, and is handed out without copying
    the rest again.
    """

    _PIECE: Final = 1 << 9

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._context = zstandard.ZstdDecompressor()
        self._frame = self._context.decompressobj()
        self._started = False  # input given to the current frame
        self._input = b""
        self._offset = 0
        self._output = b""
        self._at = 0  # read position in _output
        self._error: Exception | None = None

    def read(self, size: int) -> bytes:
        if self._at < len(self._output):
            out = self._output[self._at : self._at + size]
            self._at += len(out)
            return out
        if self._error is not None:
            raise self._error
        parts: list[bytes] = []
        have = 0
        try:
            while have < size:
                if self._offset >= len(self._input):
                    self._input = self._raw.read(1 << 16)
                    self._offset = 0
                    if not self._input:
                        if self._started:
                            raise EOFError("compressed file ended before the end of a zstd frame")
                        break
                piece = self._input[self._offset : self._offset + self._PIECE]
                self._offset += len(piece)
                while piece:
                    self._started = True
                    data = self._frame.decompress(piece)
                    parts.append(data)
                    have += len(data)
                    if not self._frame.eof:
                        break
                    piece = self._frame.unused_data  # the next frame starts in this piece
                    self._frame = self._context.decompressobj()
                    self._started = False
        except (zstandard.ZstdError, EOFError) as exc:
            if not have:
                raise
            self._error = exc  # what was decompressed goes out first; the error on the next read
        self._output = b"".join(parts)
        self._at = min(size, len(self._output))
        return self._output[: self._at]

    def close(self) -> None:
        """Nothing of its own to release (the file is closed by its owner)."""


class _StreamError(Exception):
    """Internal: the underlying stream failed (e.g. a corrupt gzip member)."""


def open_capture(path: str) -> CaptureFile:
    """Open one capture file; raises ``CaptureError`` with a one-line reason."""
    return CaptureFile(path)


class MergedSource:
    """Several capture files read as one stream in timestamp order.

    A file that turns out to be damaged stops contributing at the damage; its error is kept in
    ``errors`` and the other files go on, so nothing readable is lost.
    """

    def __init__(self, files: list[CaptureFile]) -> None:
        self.files = files
        self.errors: list[CaptureError] = []
        self.size = sum(f.size for f in files)
        # The captures' own bytes (compressed files estimated): what the worker count goes by.
        self.capture_size = sum(f.capture_size for f in files)

    @property
    def position(self) -> int:
        """Bytes consumed so far over all files."""
        return sum(f.position for f in self.files)

    def _guarded(self, capture: CaptureFile) -> Iterator[Frame]:
        try:
            yield from capture
        except CaptureError as exc:
            self.errors.append(exc)

    def __iter__(self) -> Iterator[Frame]:
        if len(self.files) == 1:
            return self._guarded(self.files[0])
        return heapq.merge(*(self._guarded(f) for f in self.files), key=_ts)


def _ts(frame: Frame) -> float:
    return frame[0]


def _packet_time(high: int, low: int, divisor: float, offset: float, path: str, at: int) -> float:
    """A pcapng packet block's time in seconds; ``CaptureError`` when no date holds it (see MAX_TS)."""
    ts = ((high << 32) | low) / divisor + offset
    if not 0.0 <= ts < MAX_TS:
        raise CaptureError(path, f"corrupt packet block: time {ts:.6g} s out of range", at)
    return ts


def open_captures(paths: Iterable[str]) -> MergedSource:
    """Open every file first (so a bad name fails before any work), then merge them by time.

    A file given twice (by another name or a link too) is an error: merged with itself, every
    packet would come twice, read as a mirror copy of itself.
    """
    files: list[CaptureFile] = []
    seen: dict[tuple[int, int], str] = {}
    try:
        for path in paths:
            try:
                status = os.stat(path)
            except OSError:
                status = None  # open_capture names the problem
            if status is not None and stat.S_ISREG(status.st_mode):
                identity = (status.st_dev, status.st_ino)
                if identity in seen:
                    raise CaptureError(path, f"given twice (also as {seen[identity]})")
                seen[identity] = path
            files.append(open_capture(path))
    except CaptureError:
        for opened in files:
            opened.close()
        raise
    return MergedSource(files)
