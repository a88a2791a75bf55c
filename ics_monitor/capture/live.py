"""Live frame source: promiscuous capture from network interfaces through Linux AF_PACKET sockets.

One ``SOCK_RAW`` packet socket per interface, bound to the interface and ``ETH_P_ALL`` in the same
call (a socket made with protocol ``ETH_P_ALL`` would receive every interface's traffic until it is
bound).  Each socket is put in promiscuous mode with ``PACKET_ADD_MEMBERSHIP`` (reference-counted
by the kernel and undone when the socket closes, unlike setting IFF_PROMISC on the device).
Frames come out as the same ``(ts, link_type, data, wire_len)`` tuples as the file readers, so the
pipeline cannot tell a live run from a replay.

By default each socket receives through a TPACKET_V3 memory-mapped ring (``capture.ring``,
``ring_size`` bytes, 64 MiB): the kernel hands over blocks of frames, read with no system call per
frame (about 4 times less CPU per frame than one ``recvmsg`` each: bench/bench_capture.py).
``ring_size=0`` chooses the fallback: one ``recvmsg_into`` per frame from a large receive buffer
(for a host that cannot spare the ring's locked memory, and as the measured reference; unlike the
ring it loses the VLAN tag the kernel lifts off a frame).  Per received packet (``MSG_TRUNC``)::

    buffer (snaplen bytes)           return value            ancillary data
    +---------------------------+    +------------------+    +--------------------------------+
    | frame bytes, cut at snaplen|   | length on the wire|   | SCM_TIMESTAMPNS: tv_sec tv_nsec |
    +---------------------------+    +------------------+    +--------------------------------+

An optional BPF filter (tcpdump syntax, compiled by ``tcpdump -ddd``) is attached before bind.
Kernel drop counters come from ``PACKET_STATISTICS`` (each read resets them, so they are summed;
a ring socket also counts how often the ring was full: ``kernel_freezes``).
Iteration ends when ``stop()`` is called (from a signal handler: see ``stop_on_signals``) or after
``duration`` seconds; the sockets are closed then.  Between two frames, at most every
``TICK_SECONDS``, the optional ``on_tick(now, quiet)`` hook runs (the consumer's housekeeping:
flushing, health, a wall-clock tick): ``quiet`` is True when a poll found every socket empty (a
ring: no block handed over, none being filled), so no frame stamped before ``now`` is still waiting.  It needs CAP_NET_RAW and nothing else.  It must
not change any interface's settings (no IFF_PROMISC, no up/down) and must not decode frames.

``open_fanout`` opens several sources whose sockets share one ``PACKET_FANOUT`` group per
interface (``PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG``): the kernel hands each frame to one
member by the symmetric flow hash of its reassembled 5-tuple, so both directions of a flow, and all
fragments of a datagram, reach the same member.  A source pickles with its sockets (multiprocessing
passes their descriptors to the child), so the parent opens them all, reporting any error in one
line, and each worker process captures from its own (and maps its ring there: a ring is set up
on the socket when it is opened, but mapped only by the process that iterates).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Protocol

from ics_monitor.capture.ring import (
    DEFAULT_RING_SIZE,
    LINKTYPE_ETHERNET,
    PACKET_OUTGOING,
    RETIRE_MILLISECONDS,
    SOCK_FILTER,
    SOL_PACKET,
    Frame,
    Ring,
    RingLayout,
    cut_program,
    set_up_ring,
)
from ics_monitor.core.errors import CaptureError, ConfigError

# Linux <linux/if_packet.h>, <linux/if_ether.h>, <asm-generic/socket.h>; Python names few of them.
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_STATISTICS = 6
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_UNIQUEID = 0x2000  # the kernel picks a group id unused in this namespace
PACKET_FANOUT_FLAG_DEFRAG = 0x8000  # reassemble IPv4 fragments before hashing
BPF_MAXINSNS = 4096
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_MREQ = struct.Struct("iHH8s")  # struct packet_mreq: ifindex, type, alen, address
_FANOUT = struct.Struct("I")  # PACKET_FANOUT: group id (low 16 bits), type and flags (high 16)
_STATS = struct.Struct("II")  # struct tpacket_stats: tp_packets, tp_drops
_STATS_V3 = struct.Struct("III")  # struct tpacket_stats_v3 (ring sockets): also tp_freeze_q_cnt
_TIMESPEC = struct.Struct("qq")  # struct timespec on 64-bit Linux
_PROGRAM = struct.Struct("@HP")  # struct sock_fprog: len, pointer to the instructions

# ARPHRD_* device types (/sys/class/net/IF/type) whose frames start with an Ethernet header.
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772
_ETHERNET_TYPES = {ARPHRD_ETHER, ARPHRD_LOOPBACK}

DEFAULT_SNAPLEN = 262144  # tcpdump's default: whole frames, GRO/GSO super-frames included
MIN_SNAPLEN = 64
RECEIVE_BUFFER = 32 << 20  # per socket; past net.core.rmem_max only with SO_RCVBUFFORCE (CAP_NET_ADMIN)
BATCH = 256  # recvmsg path: packets read from one socket per wake-up before the others get their turn
POLL_SECONDS = 0.2  # how soon stop() and the duration are noticed when the link is quiet
# After stop(): how long the frames the kernel already holds may take to be read (a ring's block
# being filled retires within RETIRE_MILLISECONDS); then the capture ends whatever is left.
DRAIN_SECONDS = 1.0
TICK_SECONDS = 0.5  # on_tick runs at least this often (wall clock), busy link or quiet


class LiveSource:
    """Frames from one or more interfaces, in arrival order; iterate once.

    ``snaplen`` caps the bytes kept per frame (``wire_len`` stays the full length); ``duration``
    ends the capture after that many seconds; ``bpf`` is a tcpdump-syntax filter run in the
    kernel; ``ring_size`` is the receive ring's size per interface in bytes (0: no ring, one
    ``recvmsg`` per frame).  Opening checks the filter, every interface and the privilege first,
    and raises ``ConfigError``/``CaptureError`` with a one-line reason.
    """

    def __init__(
        self,
        interfaces: Sequence[str],
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        duration: float | None = None,
        bpf: str | None = None,
        fanout: dict[str, int] | None = None,
        compiled_filter: bytes | None = None,
        ring_size: int = DEFAULT_RING_SIZE,
    ) -> None:
        if not interfaces:
            raise ConfigError("live capture needs at least one interface (-i IFACE)")
        if len(set(interfaces)) != len(interfaces):
            raise ConfigError("an interface is named twice")
        if snaplen < MIN_SNAPLEN:
            raise ConfigError(f"snap length {snaplen} is below the minimum of {MIN_SNAPLEN}")
        if duration is not None and duration <= 0:
            raise ConfigError("duration must be more than zero")
        if ring_size < 0:
            raise ConfigError("ring size must not be negative (0: no ring)")
        self.ring = RingLayout.of(ring_size, snaplen) if ring_size else None
        self.interfaces = list(interfaces)
        self.snaplen = snaplen
        self.duration = duration
        self.size = 0  # no byte total: keeps the file sources' progress interface
        self.position = 0
        self.errors: list[CaptureError] = []
        self.packets = 0  # frames handed to the pipeline
        self.bytes = 0  # their length on the wire
        self.on_tick: Callable[[float, bool], None] | None = None
        self._kernel_packets = dict.fromkeys(self.interfaces, 0)
        self._kernel_drops = dict.fromkeys(self.interfaces, 0)
        self.kernel_freezes = dict.fromkeys(self.interfaces, 0)  # ring sockets: times the ring was full
        self._stopping = False
        self._sockets: dict[str, socket.socket] = {}
        self.fanout_groups: dict[str, int] = {}
        program = compiled_filter if compiled_filter is not None else compile_filter(bpf) if bpf else None
        if self.ring is not None:
            # The kernel cuts at the snap length: long frames take no more ring space than kept.
            program = cut_program(program, snaplen)
        try:
            for name in self.interfaces:
                sock = self._sockets[name] = _open_socket(name, program, self.ring)
                if fanout is not None:
                    self.fanout_groups[name] = _join_fanout(name, sock, fanout.get(name))
        except CaptureError:
            self.close()
            raise

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["on_tick"] = None  # a hook belongs to the process that set it
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        for sock in self._sockets.values():
            # Rebuilt from a passed descriptor: make sure Python treats it as non-blocking too.
            sock.setblocking(False)

    def detach(self) -> None:
        """Close this process's copies of the sockets, another process capturing from them now.

        The counters are not read (each read resets them: they belong to the capturing process).
        """
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def stop(self) -> None:
        """Ask the capture to end (safe from a signal handler): iteration finishes within a poll."""
        self._stopping = True

    def close(self) -> None:
        """Read the last drop counters and close every socket."""
        for name, sock in self._sockets.items():
            with contextlib.suppress(OSError):
                self._read_statistics(name, sock)
            sock.close()
        self._sockets.clear()

    def _read_statistics(self, name: str, sock: socket.socket) -> None:
        # A ring socket answers with struct tpacket_stats_v3, any other with the first two fields.
        counters = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size)
        packets, drops = _STATS.unpack_from(counters)
        # tp_packets counts the dropped ones too; each read resets every counter.
        self._kernel_packets[name] += packets
        self._kernel_drops[name] += drops
        if len(counters) >= _STATS_V3.size:
            self.kernel_freezes[name] += _STATS_V3.unpack(counters)[2]

    def statistics(self) -> dict[str, dict[str, int]]:
        """Per interface: packets the kernel saw for us and how many it dropped (buffer full)."""
        for name, sock in self._sockets.items():
            with contextlib.suppress(OSError):
                self._read_statistics(name, sock)
        return {
            name: {"kernel_packets": self._kernel_packets[name], "kernel_drops": self._kernel_drops[name]}
            for name in self.interfaces
        }

    def __iter__(self) -> Iterator[Frame]:
        return self._iterate_ring() if self.ring is not None else self._iterate_messages()

    def _iterate_ring(self) -> Iterator[Frame]:
        """Frames block by block from each socket's ring, the sockets in turn, one block each."""
        assert self.ring is not None
        rings: dict[int, tuple[str, Ring]] = {}
        poller = select.poll()
        # Rings whose socket reported an error but whose last blocks may still come: descriptor,
        # time to stop waiting for them.
        closing: dict[int, float] = {}
        grace = 3 * RETIRE_MILLISECONDS / 1000  # a partly filled block is handed over within two
        try:
            for name, sock in self._sockets.items():
                loopback = _device_type(name) == ARPHRD_LOOPBACK
                try:
                    # Mapped here, by the process that reads (a worker, for a passed source).
                    ring = Ring(sock, self.ring, snaplen=self.snaplen, loopback=loopback)
                except OSError as exc:
                    raise CaptureError(name, f"cannot map the receive ring: {exc.strerror or exc}") from None
                rings[sock.fileno()] = (name, ring)
                poller.register(sock.fileno(), select.POLLIN | select.POLLERR)
            deadline = time.monotonic() + self.duration if self.duration is not None else None
            next_tick = time.monotonic() + TICK_SECONDS
            drain_until: float | None = None
            while rings:
                ready = [entry for entry in rings.items() if entry[1][1].ready()]
                monotonic = time.monotonic()
                if deadline is not None and monotonic >= deadline:
                    return
                if self._stopping:
                    # Stop asked (a signal): frames captured before it are still read, the block
                    # being filled once it retires, so none is lost; then the capture ends.
                    if drain_until is None:
                        drain_until = monotonic + DRAIN_SECONDS
                    if monotonic >= drain_until or not (
                        ready or any(ring.pending() for _name, ring in rings.values())
                    ):
                        return
                if not ready:
                    timeout = POLL_SECONDS if drain_until is None else RETIRE_MILLISECONDS / 1000
                    if deadline is not None:
                        timeout = min(timeout, deadline - monotonic)
                    if closing:
                        timeout = min(timeout, RETIRE_MILLISECONDS / 1000)
                    for descriptor, events in poller.poll(max(1, int(timeout * 1000))):
                        if events & select.POLLERR and descriptor not in closing:
                            self._ring_failed(rings[descriptor][0], descriptor, poller, closing, grace)
                    ready = [entry for entry in rings.items() if entry[1][1].ready()]
                    monotonic = time.monotonic()
                on_tick = self.on_tick
                if on_tick is not None and monotonic >= next_tick:
                    now = time.time()
                    # Nothing handed over and nothing in the blocks being filled: frames from now
                    # on are stamped later than ``now``, so capture time may move to it.
                    quiet = not ready and not any(ring.pending() for _name, ring in rings.values())
                    on_tick(now, quiet)
                    next_tick = time.monotonic() + TICK_SECONDS
                for _descriptor, (_name, ring) in ready:
                    frames = ring.take()
                    if frames:
                        yield from frames
                        # Counted once the block was consumed: on_tick (between blocks) sees exact figures.
                        self.packets += len(frames)
                        self.bytes += ring.taken_bytes
                for descriptor, give_up in list(closing.items()):
                    if monotonic >= give_up and not rings[descriptor][1].ready():
                        del closing[descriptor]
                        rings.pop(descriptor)[1].close()
        finally:
            for _name, ring in rings.values():
                ring.close()
            self.close()

    def _ring_failed(
        self, name: str, descriptor: int, poller: select.poll, closing: dict[int, float], grace: float
    ) -> None:
        """A ring socket reports an error: say so now, and read its last blocks for a retire time."""
        sock = self._sockets[name]
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not code:
            return
        # An interface that goes away (ENETDOWN) ends its capture only.
        self.errors.append(CaptureError(name, f"capture failed: {os.strerror(code)}"))
        poller.unregister(descriptor)
        closing[descriptor] = time.monotonic() + grace

    def _iterate_messages(self) -> Iterator[Frame]:
        """Frames by one ``recvmsg_into`` each, up to ``BATCH`` from one socket before the next."""
        selector = selectors.DefaultSelector()
        for name, sock in self._sockets.items():
            loopback = _device_type(name) == ARPHRD_LOOPBACK
            selector.register(sock, selectors.EVENT_READ, (name, sock, loopback))
        buffer = bytearray(self.snaplen)
        view = memoryview(buffer)
        snaplen = self.snaplen
        ancillary = socket.CMSG_SPACE(_TIMESPEC.size)
        deadline = time.monotonic() + self.duration if self.duration is not None else None
        next_tick = time.monotonic() + TICK_SECONDS
        drain_until: float | None = None
        try:
            while True:
                timeout = POLL_SECONDS
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    timeout = min(timeout, left)
                if self._stopping:
                    # Stop asked (a signal): read what the sockets already hold, then end.
                    if drain_until is None:
                        drain_until = time.monotonic() + DRAIN_SECONDS
                    elif time.monotonic() >= drain_until:
                        return
                    timeout = 0
                ready = selector.select(timeout)
                if drain_until is not None and not ready:
                    return
                on_tick = self.on_tick
                if on_tick is not None and time.monotonic() >= next_tick:
                    # An empty poll means every queue is drained: frames from now on are stamped
                    # later than ``now``, so capture time may move to it without going back.
                    on_tick(time.time(), not ready)
                    next_tick = time.monotonic() + TICK_SECONDS
                for key, _mask in ready:
                    name, sock, loopback = key.data
                    receive = sock.recvmsg_into
                    for _ in range(BATCH):
                        try:
                            wire_len, cmsgs, _flags, address = receive([view], ancillary, socket.MSG_TRUNC)
                        except BlockingIOError:
                            break
                        except OSError as exc:
                            # An interface that goes away (ENETDOWN, ENXIO) ends its capture only.
                            self.errors.append(CaptureError(name, f"capture failed: {exc.strerror}"))
                            selector.unregister(sock)
                            break
                        if loopback and address[2] == PACKET_OUTGOING:
                            # Loopback hands every packet to us twice, sent and received: keep one,
                            # as libpcap does, so live and tcpdump see the same frames.
                            continue
                        ts = _timestamp(cmsgs)
                        self.packets += 1
                        self.bytes += wire_len
                        yield (ts, LINKTYPE_ETHERNET, bytes(view[: min(wire_len, snaplen)]), wire_len)
                if not selector.get_map():
                    return
        finally:
            selector.close()
            self.close()


def _timestamp(cmsgs: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in cmsgs:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) + int(nanoseconds) / 1e9
    return time.time()


def compile_filter(expression: str) -> bytes:
    """Classic BPF instructions for a tcpdump-syntax filter on Ethernet, compiled by ``tcpdump -ddd``.

    The filter's accept value is the largest snap length, so the kernel never cuts a frame (a cut
    would also shorten the wire length reported); the receive buffer does the snap length.
    """
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise ConfigError("--bpf needs tcpdump to compile the filter (Debian package tcpdump)")
    argv = [tcpdump, "-ddd", "-y", "EN10MB", "-s", str(DEFAULT_SNAPLEN), "--", expression]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot run tcpdump to compile the filter: {exc}") from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["tcpdump failed"])[-1].removeprefix("tcpdump: ")
        raise ConfigError(f"bad BPF filter {expression!r}: {reason}")
    try:
        numbers = [int(word) for word in result.stdout.split()]
    except ValueError:
        raise ConfigError(f"unexpected tcpdump -ddd output for {expression!r}") from None
    count = numbers[0] if numbers else 0
    if not 0 < count <= BPF_MAXINSNS or len(numbers) != 1 + 4 * count:
        raise ConfigError(f"unexpected tcpdump -ddd output for {expression!r}")
    return b"".join(SOCK_FILTER.pack(*numbers[1 + 4 * i : 5 + 4 * i]) for i in range(count))


def _attach_filter(sock: socket.socket, program: bytes) -> None:
    # The kernel copies the instructions during setsockopt, so the buffer may go right after.
    instructions = ctypes.create_string_buffer(program, len(program))
    sock.setsockopt(
        socket.SOL_SOCKET,
        SO_ATTACH_FILTER,
        _PROGRAM.pack(len(program) // SOCK_FILTER.size, ctypes.addressof(instructions)),
    )


def _open_socket(name: str, program: bytes | None = None, ring: RingLayout | None = None) -> socket.socket:
    """One promiscuous, non-blocking packet socket on ``name``, filtered by ``program``.

    With a ``ring`` layout it receives through a TPACKET_V3 ring (set up here, mapped by the reader),
    else through a large receive buffer for ``recvmsg``.  Either way frames carry kernel receive times.
    """
    try:
        index = socket.if_nametoindex(name)
    except OSError:
        raise CaptureError(name, "no such network interface") from None
    device_type = _device_type(name)
    if device_type is not None and device_type not in _ETHERNET_TYPES:
        raise CaptureError(name, f"link type ARPHRD {device_type} is not supported (Ethernet only)")
    try:
        # Protocol 0: receive nothing until bind() sets interface and ETH_P_ALL at once.
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise CaptureError(
            name, "permission denied: live capture needs CAP_NET_RAW (root, or setcap cap_net_raw+ep)"
        ) from None
    try:
        if ring is None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            with contextlib.suppress(OSError):
                # SO_RCVBUFFORCE passes net.core.rmem_max, but needs CAP_NET_ADMIN; best effort.
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        if program is not None:
            _attach_filter(sock, program)  # before bind: no unfiltered frame gets in
        if ring is not None:
            try:
                # Before bind: a frame queued outside the ring would never be read.
                set_up_ring(sock, ring)
            except OSError as exc:
                raise CaptureError(
                    name, f"cannot set up a {ring.size >> 20} MiB receive ring: {exc.strerror or exc}"
                ) from None
        sock.bind((name, ETH_P_ALL))  # Python converts the protocol to network order itself
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, _MREQ.pack(index, PACKET_MR_PROMISC, 0, b""))
        # Also on a ring socket, which reads no ancillary data: the option makes the kernel stamp
        # every frame once on arrival, before any packet socket sees it.  Without it each ring
        # socket stamps frames itself when it copies them, and tcpdump's times differ from ours.
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        # Counters from before the capture starts belong to nobody.
        sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS_V3.size)
    except CaptureError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        if exc.errno == errno.ENODEV:
            raise CaptureError(name, "no such network interface") from None
        raise CaptureError(name, f"cannot capture: {exc.strerror or exc}") from None
    return sock


def _join_fanout(name: str, sock: socket.socket, group: int | None) -> int:
    """Join ``sock`` to fanout ``group`` (a new one when None); return the group id.

    The group id is 16 bits shared by everything in the network namespace: a new group takes an
    id the kernel knows unused (UNIQUEID), never a guessed one that could join another program's.
    """
    mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG
    try:
        if group is None:
            # An unsigned 32-bit value (the flags pass INT_MAX): packed, not a Python int.
            sock.setsockopt(
                SOL_PACKET, PACKET_FANOUT, _FANOUT.pack((mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16)
            )
            return int(sock.getsockopt(SOL_PACKET, PACKET_FANOUT)) & 0xFFFF
        sock.setsockopt(SOL_PACKET, PACKET_FANOUT, _FANOUT.pack(mode << 16 | group))
    except OSError as exc:
        raise CaptureError(name, f"cannot join a fanout group: {exc.strerror or exc}") from None
    return group


def open_fanout(
    interfaces: Sequence[str],
    members: int,
    *,
    snaplen: int = DEFAULT_SNAPLEN,
    duration: float | None = None,
    bpf: str | None = None,
    ring_size: int = DEFAULT_RING_SIZE,
) -> list[LiveSource]:
    """``members`` sources over ``interfaces`` whose sockets share one fanout group per interface.

    Each frame reaches exactly one member, chosen by the kernel's symmetric flow hash.  Any
    error closes what was opened and raises as ``LiveSource`` does.
    """
    if members < 1:
        raise ConfigError("a fanout group needs at least one member")
    program = compile_filter(bpf) if bpf else None
    sources: list[LiveSource] = []
    groups: dict[str, int] = {}
    try:
        for _ in range(members):
            source = LiveSource(
                interfaces,
                snaplen=snaplen,
                duration=duration,
                fanout=groups,
                compiled_filter=program,
                ring_size=ring_size,
            )
            sources.append(source)
            groups = source.fanout_groups
    except (CaptureError, ConfigError):
        for source in sources:
            source.close()
        raise
    return sources


def _device_type(name: str) -> int | None:
    try:
        return int(Path("/sys/class/net", name, "type").read_text().strip())
    except (OSError, ValueError):
        return None  # sysfs of another namespace, or none: bind() decides


class Stoppable(Protocol):
    """Anything a signal can ask to stop: a ``LiveSource``, or a group of them in worker processes."""

    def stop(self) -> None:
        """Ask it to end (safe from a signal handler)."""


@contextlib.contextmanager
def stop_on_signals(
    source: Stoppable, signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM end the capture cleanly instead of killing the process.

    The pipeline then finishes normally: flows, sinks, store and baseline are all flushed.
    """
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        source.stop()

    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
