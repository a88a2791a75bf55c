"""A TPACKET_V3 receive ring on an AF_PACKET socket: the kernel writes frames into shared memory.

The kernel fills fixed-size blocks of a memory-mapped ring with frames and hands a whole block
over (``block_status`` = ``TP_STATUS_USER``) when it is full or ``RETIRE_MILLISECONDS`` after it
was opened, so a quiet link still delivers.  Reading a block costs no system call: its frames are
copied out as ``bytes``, then the block goes back to the kernel (``TP_STATUS_KERNEL``) at once,
before the consumer works on them, so a slow consumer holds one block, not the ring.  Blocks are
consumed in ring order; each carries a sequence number, which tells whether the block the kernel
is filling now is a fresh one (see ``Ring.pending``).

One block (``struct tpacket_block_desc``, <linux/if_packet.h>)::

    0       4               8              12        16                  20       24        32
    +-------+---------------+--------------+---------+-------------------+--------+---------+--
    |version|offset_to_priv |block_status  |num_pkts |offset_to_first_pkt|blk_len |seq_num  | ts..
    +-------+---------------+--------------+---------+-------------------+--------+---------+--
    ... then num_pkts frames, each found from the previous one by tp_next_offset:

    struct tpacket3_hdr (48 bytes)                       struct sockaddr_ll   frame bytes
    +----+------+-------+----------+------+---------+----+-------------------+ ... +-------------+
    |next|tp_sec|tp_nsec|tp_snaplen|tp_len|tp_status|mac | hv1: rxhash, vlan | ... |at tp_mac,   |
    |off |      |       |(kept)    |(wire)|         |u16 | tci, vlan tpid    |     |tp_snaplen   |
    +----+------+-------+----------+------+---------+----+-------------------+ ... +-------------+
    0    4      8       12         16     20        24   28                  48    sll_pkttype at 58

The setup (``set_up_ring``) runs on the socket before it is bound, in the process that opens it;
the mapping (``Ring``) is made by the process that reads, so a source whose sockets were passed to
a worker process maps the same kernel ring there.  The snap length is cut by the kernel (a socket
filter whose accept value is the snap length: ``cut_program``), so long frames do not fill the
ring; ``tp_len`` stays the length on the wire.  The kernel strips a frame's first VLAN tag before
any packet socket sees it and reports it in the header: it is put back, as libpcap does.

Pure ``struct`` on the ``mmap`` object: no ctypes, no dependency.  It must not decode frames, and
must not touch interface settings.
"""

from __future__ import annotations

import mmap
import socket
import struct

from ics_monitor.core.errors import ConfigError

Frame = tuple[float, int, bytes, int]  # (ts, link_type, data, wire_len), as capture.files

# <linux/if_packet.h>
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_VERSION = 10
TPACKET_V3 = 2
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
PACKET_OUTGOING = 4  # sockaddr_ll.sll_pkttype of a frame this host sent
LINKTYPE_ETHERNET = 1
ETH_P_8021Q = 0x8100

DEFAULT_RING_SIZE = 64 << 20  # per interface and socket: ~400k small frames, ~45k full-size ones
BLOCK_SIZE = 1 << 20  # the unit the kernel hands over; must hold the largest frame kept
BLOCK_HEADROOM = 4096  # block header and one frame header, rounded up to a page
MIN_BLOCKS = 4  # fewer, and the kernel stalls whenever the reader holds one block
MAX_RING_SIZE = 2 << 30  # the kernel wants block size x count below 4 GiB; 2 GiB locked is plenty
# Retire a partly filled block after this long: the most a frame waits on a quiet link.  Lower
# wastes ring space (a block holding one frame still takes a whole block) when the reader stalls.
RETIRE_MILLISECONDS = 50
FRAME_SIZE = 2048  # meaningless for TPACKET_V3 (frames are packed) but the kernel checks it

# struct tpacket_req3: block size, block count, frame size, frame count, retire time, private, features
_REQUEST = struct.Struct("=7I")
_STATUS = struct.Struct("=I")  # block_status, at 8
_BLOCK = struct.Struct("=IIIIIIQ")  # version .. seq_num: the block header up to the sequence number
# tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status, tp_mac: one unpack per frame.
_FRAME = struct.Struct("=IIIIIIH")
_VLAN = struct.Struct("=IH")  # hv1.tp_vlan_tci, hv1.tp_vlan_tpid, at 32
_TAG = struct.Struct("!HH")  # an 802.1Q tag as put back into the frame: TPID, TCI
_BPF_RET_K = 0x06  # BPF_RET | BPF_K: return a constant (0 drops, n keeps n bytes)
SOCK_FILTER = struct.Struct("HBBI")  # struct sock_filter: code, jt, jf, k
STATUS_OFFSET = 8
VLAN_OFFSET = 32
PKTTYPE_OFFSET = 48 + 10  # TPACKET_ALIGN(sizeof tpacket3_hdr) + offsetof(sockaddr_ll, sll_pkttype)


class RingLayout:
    """Block size and count of one ring (picklable: it travels with a source to a worker)."""

    __slots__ = ("block_count", "block_size")

    def __init__(self, block_size: int, block_count: int) -> None:
        self.block_size = block_size
        self.block_count = block_count

    def __getstate__(self) -> tuple[int, int]:
        return self.block_size, self.block_count

    def __setstate__(self, state: tuple[int, int]) -> None:
        self.block_size, self.block_count = state

    @property
    def size(self) -> int:
        """Bytes of the whole ring (what is mapped)."""
        return self.block_size * self.block_count

    @classmethod
    def of(cls, ring_size: int, snaplen: int) -> RingLayout:
        """The layout for ``ring_size`` bytes whose blocks hold a ``snaplen`` frame; ConfigError if none."""
        block_size = BLOCK_SIZE
        while block_size < snaplen + BLOCK_HEADROOM:
            block_size *= 2  # a power of two: the kernel allocates blocks in page orders
        if ring_size > MAX_RING_SIZE:
            raise ConfigError(f"ring size must be at most {MAX_RING_SIZE >> 20} MiB")
        if ring_size < MIN_BLOCKS * block_size:
            raise ConfigError(
                f"ring size {ring_size >> 20} MiB is too small: it needs at least {MIN_BLOCKS} blocks of "
                f"{block_size >> 10} KiB for snap length {snaplen}"
            )
        return cls(block_size, ring_size // block_size)


def set_up_ring(sock: socket.socket, layout: RingLayout) -> None:
    """Make ``sock`` a TPACKET_V3 ring socket (before bind: no frame may queue outside the ring).

    Raises OSError as the kernel does: ENOMEM for a ring it cannot allocate, EINVAL for a layout
    it refuses, ENOPROTOOPT on a kernel without TPACKET_V3.
    """
    sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
    frames_per_block = layout.block_size // FRAME_SIZE
    request = _REQUEST.pack(
        layout.block_size,
        layout.block_count,
        FRAME_SIZE,
        frames_per_block * layout.block_count,
        RETIRE_MILLISECONDS,
        0,  # no private area per block
        0,  # no feature request (TP_FT_REQ_FILL_RXHASH)
    )
    sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)


def cut_program(program: bytes | None, snaplen: int) -> bytes:
    """``program`` with every accept value capped at ``snaplen`` (a one-instruction program if None).

    A socket filter returns how many bytes to keep; on a ring socket that cuts what is copied into
    the ring while ``tp_len`` keeps the length on the wire.
    """
    if program is None:
        return SOCK_FILTER.pack(_BPF_RET_K, 0, 0, snaplen)
    instructions = []
    for code, jump_true, jump_false, constant in SOCK_FILTER.iter_unpack(program):
        if code == _BPF_RET_K and constant > snaplen:
            constant = snaplen
        instructions.append(SOCK_FILTER.pack(code, jump_true, jump_false, constant))
    return b"".join(instructions)


class Ring:
    """The mapped ring of one socket, read block by block in ring order."""

    __slots__ = ("_block_size", "_count", "_expected", "_index", "_map", "loopback", "snaplen", "taken_bytes")

    def __init__(self, sock: socket.socket, layout: RingLayout, *, snaplen: int, loopback: bool) -> None:
        self._map = mmap.mmap(sock.fileno(), layout.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._block_size = layout.block_size
        self._count = layout.block_count
        self._index = 0
        # Sequence number of the next block to be handed over; None until one was seen.  The kernel
        # numbers blocks as it opens them, from 0 after the ring is set up.
        self._expected: int | None = None
        self.snaplen = snaplen
        self.loopback = loopback
        self.taken_bytes = 0  # wire length of the frames of the last block taken

    def close(self) -> None:
        """Unmap the ring (the socket keeps it until it closes)."""
        self._map.close()

    def ready(self) -> bool:
        """The next block is handed over: ``take`` returns frames."""
        return bool(
            _STATUS.unpack_from(self._map, self._index * self._block_size + STATUS_OFFSET)[0] & TP_STATUS_USER
        )

    def pending(self) -> bool:
        """The block the kernel is filling holds frames not handed over yet (they come within a retire time).

        A block given back keeps its old header until the kernel opens it again: only a block whose
        sequence number is the next expected one is the kernel's current block.
        """
        _version, _private, status, count, _first, _length, sequence = _BLOCK.unpack_from(
            self._map, self._index * self._block_size
        )
        if status & TP_STATUS_USER:
            return True
        return count > 0 and (self._expected is None or sequence == self._expected)

    def take(self) -> list[Frame] | None:
        """The frames of the next handed-over block, which goes back to the kernel; None if none is."""
        ring = self._map
        base = self._index * self._block_size
        _version, _private, status, count, first, _length, sequence = _BLOCK.unpack_from(ring, base)
        if not status & TP_STATUS_USER:
            return None
        frames: list[Frame] = []
        append = frames.append
        header = _FRAME.unpack_from
        loopback = self.loopback
        # Locals, not module globals: this loop is the whole per-frame cost of a live capture.
        vlan_valid, pkttype_offset, outgoing, ethernet = (
            TP_STATUS_VLAN_VALID,
            PKTTYPE_OFFSET,
            PACKET_OUTGOING,
            LINKTYPE_ETHERNET,
        )
        total = 0
        offset = base + first
        # Per frame: one unpack, one slice (the copy out of the ring), one tuple.  The kernel filled
        # the block before setting its status (it orders its writes), so it is complete here.
        for _ in range(count):
            next_offset, seconds, nanoseconds, kept, wire_len, frame_status, mac = header(ring, offset)
            start = offset + mac
            if frame_status & vlan_valid or (loopback and ring[offset + pkttype_offset] == outgoing):
                frame = self._special(offset, start, kept, wire_len, frame_status)
                if frame is not None:
                    append((seconds + nanoseconds / 1e9, ethernet, frame[0], frame[1]))
                    total += frame[1]
            else:
                append((seconds + nanoseconds / 1e9, ethernet, ring[start : start + kept], wire_len))
                total += wire_len
            offset += next_offset
        # Hand the block back only after every frame was copied out: the kernel may refill it at once.
        _STATUS.pack_into(ring, base + STATUS_OFFSET, TP_STATUS_KERNEL)
        self.taken_bytes = total
        self._expected = sequence + 1
        self._index = (self._index + 1) % self._count
        return frames

    def _special(
        self, offset: int, start: int, kept: int, wire_len: int, status: int
    ) -> tuple[bytes, int] | None:
        """A loopback frame this host sent (None: loopback shows it twice) or one whose VLAN tag was lifted."""
        ring = self._map
        if self.loopback and ring[offset + PKTTYPE_OFFSET] == PACKET_OUTGOING:
            # Loopback hands every packet to us twice, sent and received: keep one, as libpcap does,
            # so live and tcpdump see the same frames.
            return None
        data = ring[start : start + kept]
        if kept < 12:
            return data, wire_len
        tci, tpid = _VLAN.unpack_from(ring, offset + VLAN_OFFSET)
        if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
            tpid = ETH_P_8021Q
        # Back between the MAC addresses and the EtherType, as on the wire (and as libpcap does).
        data = data[:12] + _TAG.pack(tpid, tci & 0xFFFF) + data[12:]
        return data[: self.snaplen], wire_len + 4
