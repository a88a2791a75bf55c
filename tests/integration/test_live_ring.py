"""The TPACKET_V3 receive ring of ``LiveSource`` on a real kernel: a veth pair in a namespace of its own.

tcpreplay sends a crafted capture out of ``ringa``; ring sources (and tcpdump, the reference)
sniff the peer ``ringb``.  Checked: the frames equal tcpdump's (count, bytes, order, wire length,
timestamps to the microsecond, a VLAN tag the kernel lifted put back), the snap length cut by the
kernel, loopback frames once (the same frames as the ``recvmsg`` path), the kernel's drop and
freeze counters on a ring too small for a burst, a fanout group of two rings splitting flows
symmetrically, a source pickled to a fork-server child that maps the ring there, an interface
that goes away mid-capture (one error line, frames before it kept), and a stop before reading
(the frames the kernel already holds still come out, ring and recvmsg paths alike).

The probes run inside the namespace as ``python -m tests.integration.test_live_ring PROBE ARGS``
and print JSON.  Everything needs root, network namespaces, tcpreplay and tcpdump; the tests skip,
saying why, only where those are missing or the kernel refuses.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ics_monitor.capture import open_capture
from ics_monitor.capture.live import open_fanout
from ics_monitor.capture.ring import DEFAULT_RING_SIZE, RingLayout, cut_program
from ics_monitor.core.errors import ConfigError
from tests.conftest import REPO
from tests.integration.lab_support import open_lab

pytestmark = pytest.mark.xdist_group("live")

PREFIX = "icsring"
SENDER, SNIFFER = "ringa", "ringb"
PROBE = ["env", f"PYTHONPATH={REPO}", sys.executable, "-m", "tests.integration.test_live_ring"]
FLOWS = 24  # UDP flows, each 3 datagrams one way and 3 back
MAC_A, MAC_B = bytes.fromhex("020000880001"), bytes.fromhex("020000880002")

# ---- crafted frames -----------------------------------------------------------------------------


def udp_frame(source_port: int, destination_port: int, payload: bytes, *, reverse: bool = False) -> bytes:
    """Ethernet + IPv4 + UDP between 10.88.0.1 and 10.88.0.2 (``reverse``: from .2 to .1)."""
    addresses = (
        (bytes([10, 88, 0, 2]), bytes([10, 88, 0, 1]))
        if reverse
        else (bytes([10, 88, 0, 1]), bytes([10, 88, 0, 2]))
    )
    udp = struct.pack("!HHHH", source_port, destination_port, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, *addresses)
    macs = MAC_A + MAC_B if reverse else MAC_B + MAC_A
    return macs + b"\x08\x00" + ip + udp


def vlan_frame(payload: bytes) -> bytes:
    """A UDP frame with an 802.1Q tag: priority 5, VLAN 100."""
    plain = udp_frame(4000, 4001, payload)
    return plain[:12] + struct.pack("!HH", 0x8100, 5 << 13 | 100) + plain[12:]


def write_pcap(path: Path, frames: list[bytes]) -> Path:
    """A classic little-endian pcap, Ethernet, one microsecond apart."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for number, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_700_000_000, number, len(frame), len(frame)) + frame)
    return path


def mixed_frames() -> list[bytes]:
    """Flows in both directions interleaved, tiny and full-size frames, and tagged frames."""
    frames = []
    for round_number in range(3):
        for flow in range(FLOWS):
            payload = bytes([flow, round_number]) * (10 + 20 * flow)
            frames.append(udp_frame(20000 + flow, 9, payload))
            frames.append(udp_frame(9, 20000 + flow, payload[::-1], reverse=True))
        frames.append(udp_frame(5000, 5001, b"\x00" * 18))  # 60 bytes: the Ethernet minimum
        frames.append(udp_frame(5000, 5001, bytes(range(256)) * 5 + b"\xaa" * 192))  # 1514: full size
        frames.append(vlan_frame(bytes([round_number]) * 40))
    return frames


def flow_key(frame: bytes) -> tuple[bytes, ...]:
    """The symmetric 5-tuple of an untagged IPv4/UDP frame."""
    ends = sorted([(frame[26:30], frame[34:36]), (frame[30:34], frame[36:38])])
    return (frame[23:24], *ends[0], *ends[1])


# ---- the probes (inside the namespace) ----------------------------------------------------------


def replay(path: str) -> None:
    subprocess.run(["tcpreplay", "-q", "--topspeed", "-i", SENDER, path], check=True, capture_output=True)


def frames_of(source: Any) -> list[tuple[float, str, int]]:
    return [(ts, data.hex(), wire) for ts, _link, data, wire in source]


def report(source: Any, frames: list[tuple[float, str, int]]) -> dict[str, Any]:
    return {
        "frames": frames,
        "statistics": source.statistics()[SNIFFER],
        "freezes": source.kernel_freezes[SNIFFER],
        "errors": [str(error) for error in source.errors],
    }


def probe_sniff(path: str, specs: str) -> None:
    """Open one source per ``snaplen:ring_size`` spec, send ``path``, then read each source in turn."""
    from ics_monitor.capture.live import LiveSource

    sources = []
    for spec in specs.split(","):
        snaplen, ring_size = (int(word) for word in spec.split(":"))
        sources.append(LiveSource([SNIFFER], snaplen=snaplen, ring_size=ring_size, duration=1.0))
    replay(path)
    # Read after the sending: the ring (or the socket buffer) held everything meanwhile.
    print(json.dumps([report(source, frames_of(source)) for source in sources]))


def loopback_sources(duration: float, datagrams: int, size: int) -> list[Any]:
    """A ring source and a recvmsg source on loopback, opened together; then ``datagrams`` sent to them."""
    import socket

    from ics_monitor.capture.live import LiveSource

    sources = [
        LiveSource(["lo"], duration=duration, bpf="udp dst port 9", ring_size=ring)
        for ring in (DEFAULT_RING_SIZE, 0)
    ]
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for number in range(datagrams):
        sender.sendto(bytes([number]) * size, ("127.0.0.1", 9))
    return sources


def probe_loopback() -> None:
    """Three datagrams on loopback, read through a ring source and a recvmsg source."""
    sources = loopback_sources(1.0, 3, 300)
    print(json.dumps([[(data.hex(), wire) for _ts, _link, data, wire in source] for source in sources]))


def probe_stopped() -> None:
    """Five datagrams on loopback, then stop() before reading: ring and recvmsg sources still yield them."""
    sources = loopback_sources(5.0, 5, 100)
    for source in sources:
        source.stop()  # as a signal handler does: what the kernel already holds is read, then the end
    started = time.monotonic()
    frames = [[data[42:].hex() for _ts, _link, data, _wire in source] for source in sources]
    print(json.dumps({"frames": frames, "seconds": time.monotonic() - started}))


def probe_fanout(path: str) -> None:
    """Two ring sources in one fanout group; send ``path``; each member's frames."""
    sources = open_fanout([SNIFFER], 2, duration=1.0)
    replay(path)
    print(json.dumps([frames_of(source) for source in sources]))


def capture_in_child(source: Any, queue: Any) -> None:
    frames = frames_of(source)
    queue.put(report(source, frames))


def probe_pickled(path: str) -> None:
    """A ring source opened here, passed to a fork-server child, which maps the ring and reads it."""
    from ics_monitor.capture.live import LiveSource

    context = multiprocessing.get_context("forkserver")
    source = LiveSource([SNIFFER], duration=3.0)
    queue = context.Queue()
    child = context.Process(target=capture_in_child, args=(source, queue))
    child.start()
    source.detach()  # the child holds the socket now; this process keeps no copy
    time.sleep(0.5)
    replay(path)
    result = queue.get(timeout=30)
    child.join(10)
    result["parent_sockets"] = len(source._sockets)
    print(json.dumps(result))


def probe_vanish(path: str) -> None:
    """Read ``path``'s frames, then delete the veth pair from the tick hook: the capture must end."""
    from ics_monitor.capture.live import LiveSource

    source = LiveSource([SNIFFER], duration=20.0)
    frames: list[tuple[float, str, int]] = []
    deleted: list[float] = []

    def on_tick(now: float, quiet: bool) -> None:
        if frames and quiet and not deleted:
            subprocess.run(["ip", "link", "del", SENDER], check=True)
            deleted.append(time.monotonic())

    source.on_tick = on_tick
    replay(path)
    for ts, _link, data, wire in source:
        frames.append((ts, data.hex(), wire))
    result = report(source, frames)
    result["after_delete"] = time.monotonic() - deleted[0] if deleted else None
    print(json.dumps(result))


# ---- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def lab() -> Iterator[tuple[Any, Any]]:
    for netlab, net in open_lab(PREFIX, tools=("ip", "tcpdump", "tcpreplay")):
        namespace = net.namespace(netlab.SWITCH)
        for argv in (
            ["link", "add", SENDER, "type", "veth", "peer", "name", SNIFFER],
            ["link", "set", SENDER, "up"],
            ["link", "set", SNIFFER, "up"],
        ):
            subprocess.run(["ip", "-n", namespace, *argv], check=True, capture_output=True)
        yield netlab, net


def run_probe(netlab: Any, net: Any, *arguments: str) -> Any:
    result = net.run(netlab.SWITCH, [*PROBE, *arguments], timeout=120)
    return json.loads(result.stdout)


def tcpdump_frames(netlab: Any, net: Any, path: Path, *probe: str) -> tuple[Any, list[Any]]:
    """Run a probe while tcpdump sniffs the same interface; (probe output, tcpdump's frames)."""
    # The ring, not immediate mode: the probes send bursts at line rate.
    tcpdump = net.capture(path, interface=SNIFFER, immediate=False)
    output = run_probe(netlab, net, *probe)
    time.sleep(0.3)
    net.stop(tcpdump, signal.SIGINT, grace=10)
    reference = open_capture(str(path))
    frames = [(ts, data, wire) for ts, _link, data, wire in reference]
    reference.close()
    return output, frames


def test_ring_frames_equal_tcpdump_and_snaplen_cut(lab: Any, tmp_path: Path) -> None:
    """Same frames, bytes, order and wire lengths as tcpdump on the same link; the snap length cut."""
    netlab, net = lab
    sent = mixed_frames()
    pcap = write_pcap(tmp_path / "mixed.pcap", sent)
    spec = f"262144:{DEFAULT_RING_SIZE},100:{DEFAULT_RING_SIZE}"
    (full, cut), reference = tcpdump_frames(netlab, net, tmp_path / "tcpdump.pcap", "sniff", str(pcap), spec)
    # tcpdump saw exactly what was sent, in order, the VLAN tag included (libpcap puts it back).
    assert [data for _ts, data, _wire in reference] == sent
    frames = [(ts, bytes.fromhex(data), wire) for ts, data, wire in full["frames"]]
    assert [(data, wire) for _ts, data, wire in frames] == [(data, wire) for _ts, data, wire in reference]
    # The kernel stamps a frame once for every packet socket: tcpdump has the same time, cut to
    # microseconds (a float of epoch seconds resolves about a quarter of one).
    assert all(
        -0.3e-6 < ours - theirs < 1.3e-6
        for (ours, _d, _w), (theirs, _e, _x) in zip(frames, reference, strict=True)
    )

    # Per flow too (implied by the global order, but it is what the pipeline relies on).
    def per_flow(frames: list[tuple[float, bytes, int]]) -> dict[tuple[bytes, ...], list[bytes]]:
        flows: dict[tuple[bytes, ...], list[bytes]] = {}
        for _ts, data, _wire in frames:
            if data[12:14] == b"\x08\x00":
                flows.setdefault(flow_key(data), []).append(data)
        return flows

    assert per_flow(frames) == per_flow(reference)
    assert len(per_flow(frames)) == FLOWS + 1
    # Snap length 100: cut by the kernel (the filter's accept value), wire length whole.
    assert [(bytes.fromhex(data), wire) for _ts, data, wire in cut["frames"]] == [
        (data[:100], len(data)) for data in sent
    ]
    for result in (full, cut):
        assert result["statistics"] == {"kernel_packets": len(sent), "kernel_drops": 0}
        assert result["freezes"] == 0 and result["errors"] == []


def test_ring_drop_and_freeze_counters(lab: Any, tmp_path: Path) -> None:
    """A 4 MiB ring not read while 40,000 frames arrive: the kernel counts what it had to drop."""
    netlab, net = lab
    burst = [udp_frame(30000 + number % 100, 9, number.to_bytes(4, "big") * 100) for number in range(40_000)]
    pcap = write_pcap(tmp_path / "burst.pcap", burst)
    (small,) = run_probe(netlab, net, "sniff", str(pcap), f"262144:{4 << 20}")
    stats = small["statistics"]
    read = len(small["frames"])
    # Each frame takes ~560 bytes of ring: 4 blocks of 1 MiB hold a few thousand, not 40,000.
    assert 0 < read < 10_000
    assert stats["kernel_packets"] == len(burst)
    assert stats["kernel_drops"] == len(burst) - read
    assert small["freezes"] >= 1  # the ring was full at least once
    # What was read is the start of the burst, in order: the kernel dropped only once full.
    assert [bytes.fromhex(data) for _ts, data, _wire in small["frames"]] == burst[:read]


def test_loopback_frames_once_and_equal_to_recvmsg(lab: Any) -> None:
    netlab, net = lab
    ring, messages = run_probe(netlab, net, "loopback")
    assert len(ring) == 3
    assert ring == messages
    for number, (data, wire) in enumerate(ring):
        assert wire == 14 + 20 + 8 + 300
        assert bytes.fromhex(data)[42:] == bytes([number]) * 300


def test_a_stop_reads_what_the_kernel_already_holds(lab: Any) -> None:
    """stop() (SIGINT/SIGTERM) before the frames were read: both paths still yield every one, soon."""
    netlab, net = lab
    result = run_probe(netlab, net, "stopped")
    expected = [(bytes([number]) * 100).hex() for number in range(5)]
    assert result["frames"] == [expected, expected]
    assert result["seconds"] < 2.0  # the drain is bounded (1 s), not the 5 s duration


def test_fanout_of_two_rings_splits_flows_symmetrically(lab: Any, tmp_path: Path) -> None:
    netlab, net = lab
    sent = [frame for frame in mixed_frames() if frame[12:14] == b"\x08\x00"]
    pcap = write_pcap(tmp_path / "flows.pcap", sent)
    members = run_probe(netlab, net, "fanout", str(pcap))
    taken = [[bytes.fromhex(data) for _ts, data, _wire in member] for member in members]
    # Every frame reached exactly one member.
    assert sorted(frame for member in taken for frame in member) == sorted(sent)
    owners: dict[tuple[bytes, ...], set[int]] = {}
    for index, member in enumerate(taken):
        for frame in member:
            owners.setdefault(flow_key(frame), set()).add(index)
    # Both directions of a flow went to the same member; the hash used both members.
    assert len(owners) == FLOWS + 1 and all(len(owner) == 1 for owner in owners.values())
    assert all(taken)
    # Within a member, each flow's frames kept their order.
    for member in taken:
        assert member == [frame for frame in sent if frame in set(member)]


def test_pickled_ring_source_reads_in_a_child_process(lab: Any, tmp_path: Path) -> None:
    netlab, net = lab
    sent = mixed_frames()
    pcap = write_pcap(tmp_path / "mixed.pcap", sent)
    result = run_probe(netlab, net, "pickled", str(pcap))
    assert [bytes.fromhex(data) for _ts, data, _wire in result["frames"]] == sent
    assert result["statistics"] == {"kernel_packets": len(sent), "kernel_drops": 0}
    assert result["parent_sockets"] == 0


def test_interface_going_away_ends_capture_with_one_error(lab: Any, tmp_path: Path) -> None:
    netlab, net = lab
    sent = mixed_frames()[:50]
    pcap = write_pcap(tmp_path / "few.pcap", sent)
    result = run_probe(netlab, net, "vanish", str(pcap))
    assert [bytes.fromhex(data) for _ts, data, _wire in result["frames"]] == sent
    assert result["errors"] == [f"{SNIFFER}: capture failed: Network is down"]
    # It ended on the error (within a poll and the grace for the last block), not at the duration.
    assert result["after_delete"] is not None and result["after_delete"] < 2.0


# ---- no kernel needed ---------------------------------------------------------------------------


def test_ring_layout_and_bad_sizes() -> None:
    layout = RingLayout.of(DEFAULT_RING_SIZE, 262144)
    assert (layout.block_size, layout.block_count, layout.size) == (1 << 20, 64, 64 << 20)
    # A snap length past a block's room doubles the block (a frame must fit in one).
    assert RingLayout.of(64 << 20, 1 << 20).block_size == 2 << 20
    with pytest.raises(ConfigError, match=r"^ring size 1 MiB is too small: it needs at least 4 blocks"):
        RingLayout.of(1 << 20, 262144)
    with pytest.raises(ConfigError, match=r"^ring size must be at most 2048 MiB$"):
        RingLayout.of(4 << 30, 262144)


def test_cut_program_equals_tcpdump_snaplen(tmp_path: Path) -> None:
    """Capping the accept values equals compiling with that snap length (tcpdump -ddd -s N)."""
    from ics_monitor.capture.live import compile_filter
    from tests.conftest import need_tool

    need_tool("tcpdump")
    for expression in ("udp dst port 9", "tcp or (vlan and udp)", "ip host 10.0.0.1 and not icmp"):
        ours = cut_program(compile_filter(expression), 100)
        result = subprocess.run(
            ["tcpdump", "-ddd", "-y", "EN10MB", "-s", "100", "--", expression],
            capture_output=True,
            text=True,
            check=True,
        )
        numbers = [int(word) for word in result.stdout.split()]
        theirs = b"".join(struct.pack("HBBI", *numbers[1 + 4 * i : 5 + 4 * i]) for i in range(numbers[0]))
        assert ours == theirs, expression
    assert cut_program(None, 100) == struct.pack("HBBI", 0x06, 0, 0, 100)


if __name__ == "__main__":
    probes: dict[str, Callable[..., None]] = {
        "sniff": probe_sniff,
        "loopback": probe_loopback,
        "stopped": probe_stopped,
        "fanout": probe_fanout,
        "pickled": probe_pickled,
        "vanish": probe_vanish,
    }
    probes[sys.argv[1]](*sys.argv[2:])
