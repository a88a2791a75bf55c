"""The bidirectional flow table: every conversation, IT and OT, with counters, state and timeouts.

Flows are keyed by the canonical 5-tuple plus VLAN stack.  The client is whoever sent the SYN, else
the side not using a well-known server port, else the first talker.  Flows leave the table on idle
timeout (per class: TCP open, TCP closed, UDP, other), when a new SYN reuses a closed 5-tuple, when
the table is full (least recently seen first, with an anomaly), or at the end of input; an active
timeout cuts a record from a long-lived flow without ending it.

Payload goes to a ``FlowHandler`` (the pipeline's bridge to the dissectors): TCP bytes in stream
order after reassembly, UDP datagrams as they come.  The two directions of a TCP connection go out
in the order the hosts saw them, which a SPAN port may not keep: a segment that acknowledges bytes
of the other direction not captured yet waits for them (``REORDER_HOLD``, ``Flow.held``).  This
module knows nothing of application protocols beyond the port table.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, Protocol

from mypy_extensions import mypyc_attr

from ics_monitor.core.addresses import format_ip, format_mac
from ics_monitor.core.anomalies import severity_name
from ics_monitor.core.flowkey import FlowKey, community_id, flow_id
from ics_monitor.core.packet import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    TRANSPORT_NAMES,
    Packet,
    tcp_flag_names,
)
from ics_monitor.core.ports import TCP_SERVICES, UDP_SERVICES
from ics_monitor.events.base import AnomalyEvent, new_anomaly_event, record_from
from ics_monitor.events.flow import FlowRecord
from ics_monitor.flows.tcp import BUFFER_FULL, HALF, MISMATCH, NO_MARK, Chunk, TcpStream, seq_diff

TO_SERVER: Final = 0
# Mirror copies of one datagram or segment dropped at most (see ``FlowTable._mirror_copy``).
MAX_MIRROR_COPIES: Final = 3
TO_CLIENT: Final = 1
DIRECTION_NAMES: Final[tuple[str, ...]] = ("to_server", "to_client")

# Timeout classes: each has its own insertion-ordered dict so expiry pops from the front.
_OPEN_TCP: Final = 0
_CLOSED_TCP: Final = 1
_UDP: Final = 2
_OTHER: Final = 3
# Offsets into Flow.counters (plus the direction, 0 or 1).
BYTES: Final = 2
PAYLOAD: Final = 4
FLAGS: Final = 6
COPIES: Final = 8
# The first frame that carried payload each way (0: none yet), for evidence that cites the bytes.
PAYLOAD_FRAME: Final = 10
# A TCP segment that acknowledges bytes of the other direction the capture has not shown yet
# waits (with what follows it that way) until those bytes come, at most this long in capture
# time.  A SPAN port that mirrors a link's two directions through separate queues delivers an
# answer a fraction of a millisecond ahead of its question; dissected in capture order, the
# answer would pair with nothing and the question would go unanswered.
REORDER_HOLD: Final = 0.5
# Past ``REORDER_HOLD`` the wait ends when the other direction shows the bytes lost (later data,
# or an acknowledgment carrying a later sequence number) and so had them sent and not captured;
# without that evidence, after this long.  Giving bytes up on a peer's acknowledgment alone would
# let one forged segment blind the monitor to the real ones that follow.
REORDER_HOLD_MAX: Final = 10.0


# An ordinary class even when this module is compiled (mypyc): it is pickled to worker processes,
# and a native frozen class cannot be unpickled.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True)
class FlowConfig:
    """Flow-table limits.  Times are seconds of capture time."""

    tcp_idle_timeout: float = 600.0
    tcp_closed_timeout: float = 15.0
    udp_idle_timeout: float = 120.0
    other_idle_timeout: float = 60.0
    active_timeout: float = 1800.0
    # About 1.5 KB per tracked flow with its reassembly and dissection state: 100k flows stay near 150 MB.
    max_flows: int = 100_000
    # Out-of-order bytes held per direction before a hole is given up as a gap.
    max_reassembly_bytes: int = 256 * 1024
    # A packet repeated within this many seconds, same direction, is a copy made by the mirroring
    # (a SPAN session on both ports of a path, two TAPs): a UDP datagram with the same IPv4 id and
    # payload, a TCP segment with the same IPv4 id, sequence and acknowledgment numbers, flags and
    # length.  Counted in the flow's packets and bytes (as tshark counts frames) and in its
    # ``mirror_copies_*``, not handed on: to a dissector a UDP copy looks like a second request or
    # an answer to nothing, and a TCP copy is no retransmission.  0: off.
    mirror_copy_window: float = 0.005


class FlowHandler(Protocol):
    """What the table calls as traffic moves; implemented by the pipeline."""

    def flow_started(self, flow: Flow) -> None:
        """A new flow entered the table."""

    def payload(self, flow: Flow, direction: int, data: bytes, ts: float, frame: int) -> None:
        """In-order TCP bytes, or one UDP datagram, in ``direction`` (0 to server, 1 to client).

        ``ts``/``frame`` are those of the packet that completed the bytes (at flow end: its last).
        """

    def gap(self, flow: Flow, direction: int, size: int) -> None:
        """``size`` bytes of the TCP stream in ``direction`` are missing from the capture."""

    def cut_datagram(self, flow: Flow, direction: int, data: bytes, cut: int, ts: float, frame: int) -> None:
        """A UDP datagram of which the capture kept ``data``; its last ``cut`` bytes are not there."""

    def flow_ended(self, flow: Flow, reason: str) -> None:
        """The flow leaves the table (``reason`` as in the flow record); flush its state."""


class Flow:
    """State of one conversation.  ``app`` belongs to the handler (dissection state)."""

    __slots__ = (
        "app",
        "app_protocol",
        "client_ip",
        "client_mac",
        "client_port",
        "copies",
        "counters",
        "cuts",
        "deliver",
        "first_frame",
        "first_ts",
        "held",
        "id",
        "ip_version",
        "key",
        "last_frame",
        "last_sent",
        "last_ts",
        "orientation",
        "proto",
        "record_frame",
        "record_start",
        "server_ip",
        "server_mac",
        "server_port",
        "service",
        "sliced",
        "source_macs",
        "streams",
        "timeout_class",
        "touched",
        "tunnel",
        "twins",
        "vlan",
    )

    def __init__(self, key: FlowKey, pkt: Packet, client_is_src: bool, orientation: str) -> None:
        self.key = key
        self.vlan = pkt.vlan
        self.tunnel = pkt.tunnel
        self.proto = pkt.ip_proto
        self.ip_version = pkt.ip_version
        if client_is_src:
            self.client_ip, self.client_port, self.server_ip, self.server_port = (
                pkt.src_ip,
                pkt.sport,
                pkt.dst_ip,
                pkt.dport,
            )
            self.client_mac, self.server_mac = pkt.src_mac, pkt.dst_mac
        else:
            self.client_ip, self.client_port, self.server_ip, self.server_port = (
                pkt.dst_ip,
                pkt.dport,
                pkt.src_ip,
                pkt.sport,
            )
            self.client_mac, self.server_mac = pkt.dst_mac, pkt.src_mac
        self.orientation = orientation
        # The source MAC of each direction's first packet (to server, to client); None: no packet
        # yet, or no MACs on this link.  Emptied once a change is reported.
        self.source_macs: list[bytes | None] = [pkt.src_mac, None] if client_is_src else [None, pkt.src_mac]
        self.first_ts = self.last_ts = self.touched = self.record_start = pkt.ts
        self.first_frame = self.record_frame = self.last_frame = pkt.frame
        self.id = flow_id(key, pkt.ts)
        # One list for all per-direction counters (a list each would cost ~200 bytes per flow more):
        # [packets, packets, bytes, bytes, payload bytes, payload bytes, tcp flags, tcp flags, mirror
        # copies, mirror copies, first payload frame, first payload frame], index ``direction`` + 0
        # / 2 / 4 / 6 / 8 / 10.
        self.counters = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        self.streams: tuple[TcpStream, TcpStream] | None = (
            (TcpStream(), TcpStream()) if self.proto == IPPROTO_TCP else None
        )
        self.deliver = True
        # Reassembled data of one direction waiting for the other to catch up (``REORDER_HOLD``):
        # [direction, the acknowledgment number to reach, chunks, capture time it began, bytes
        # held], or None.
        self.held: list[Any] | None = None
        # The last packet handed on per direction, to tell a mirror copy (``FlowTable._mirror_copy``):
        # [IPv4 id, ts, payload length, payload hash (UDP) or sequence number (TCP), copies of it
        # dropped, acknowledgment number, TCP flags] (None until one is; a hash, not the bytes, so a
        # flow holds no payload), and how many mirror copies the whole flow dropped each way (its
        # records count theirs in ``counters``, reset at an active timeout).
        self.last_sent: list[list[Any] | None] | None = None
        self.copies = [0, 0]
        # The keys (other VLAN stacks) this flow's packets are seen again under (``_twin_of``).
        self.twins: list[FlowKey] | None = None
        # UDP datagrams the capture's snap length cut, and the payload bytes it did not keep
        # (TCP keeps these per stream: ``TcpStream.cuts``/``sliced``).
        self.cuts = 0
        self.sliced = 0
        self.app: Any = None
        self.app_protocol: str | None = None
        services = (
            TCP_SERVICES if self.proto == IPPROTO_TCP else UDP_SERVICES if self.proto == IPPROTO_UDP else {}
        )
        self.service: str | None = services.get(self.server_port)
        self.timeout_class = (
            _OPEN_TCP if self.proto == IPPROTO_TCP else _UDP if self.proto == IPPROTO_UDP else _OTHER
        )

    @property
    def transport(self) -> str:
        """The IP protocol's IANA keyword (``tcp``, ``udp``, ``gre`` ...: ``TRANSPORT_NAMES``), else its number."""
        return TRANSPORT_NAMES.get(self.proto) or str(self.proto)

    def direction_of(self, pkt: Packet) -> int:
        """0 when ``pkt`` goes client to server, else 1."""
        if pkt.src_ip == self.client_ip and pkt.sport == self.client_port:
            return TO_SERVER
        return TO_CLIENT

    def state(self) -> str | None:
        """Connection state from the TCP flags seen each way (None for non-TCP)."""
        if self.proto != IPPROTO_TCP:
            return None
        to_server = self.counters[FLAGS]
        to_client = self.counters[FLAGS + 1]
        if (to_server | to_client) & TCP_RST:
            if to_server & TCP_SYN and to_client & TCP_RST and not to_client & TCP_SYN:
                return "rejected"
            return "reset"
        if to_server & TCP_FIN and to_client & TCP_FIN:
            return "closed"
        if (to_server | to_client) & TCP_FIN:
            return "half_closed"
        if to_server & TCP_SYN:
            return "established" if to_client & TCP_SYN else "syn_sent"
        return "midstream"


class FlowTable:
    """Tracks flows; hands payload to the handler; collects records and anomalies for the pipeline."""

    def __init__(self, config: FlowConfig, handler: FlowHandler) -> None:
        self.config = config
        self.handler = handler
        self.flows: dict[FlowKey, Flow] = {}
        # OrderedDict, not dict: popping a plain dict from the front makes next(iter()) O(n).
        self._classes: tuple[OrderedDict[FlowKey, Flow], ...] = (
            OrderedDict(),
            OrderedDict(),
            OrderedDict(),
            OrderedDict(),
        )
        self._timeouts = (
            config.tcp_idle_timeout,
            config.tcp_closed_timeout,
            config.udp_idle_timeout,
            config.other_idle_timeout,
        )
        self._copy_window = config.mirror_copy_window
        self.records: list[FlowRecord] = []
        self.anomalies: list[AnomalyEvent] = []
        self.now = 0.0
        self._next_sweep = 0.0
        self._next_active_check = 0.0
        self.evicted = 0
        self._evicted_reported = 0
        self._chunks: list[Chunk] = []
        # Flows holding one direction's data (``Flow.held``), for the sweep to release when due.
        self._holding: dict[FlowKey, Flow] = {}
        # The first live flow of each 5-tuple whatever its VLANs, and the keys under which another
        # flow's packets are seen again on other VLANs (``_twin_of``).
        self._by_tuple: dict[tuple[Any, ...], Flow] = {}
        self._twins: dict[FlowKey, Flow] = {}
        # Set while a wait is given up (``_release``): what waited keeps its own time and frame.
        self._giving_up = False

    # -- per packet ------------------------------------------------------------------------------

    def process(self, pkt: Packet) -> Flow:
        """Account one IP packet to its flow; deliver its payload; return the flow."""
        ts = pkt.ts
        if ts > self.now:
            self.now = ts
            if ts >= self._next_sweep:
                self.sweep()
        proto = pkt.ip_proto
        src = pkt.src_ip
        dst = pkt.dst_ip
        sport = pkt.sport
        dport = pkt.dport
        if src < dst or (src == dst and sport <= dport):
            key = (pkt.vlan, proto, src, sport, dst, dport)
        else:
            key = (pkt.vlan, proto, dst, dport, src, sport)
        flow = self.flows.get(key)
        flags = pkt.tcp_flags
        if flow is None:
            if self._copy_window > 0.0 and proto in (IPPROTO_TCP, IPPROTO_UDP):
                twin = self._twin_of(key, pkt)
                if twin is not None:
                    return twin
            flow = self._create(key, pkt)
        elif (
            proto == IPPROTO_TCP
            and flags & TCP_SYN
            and not flags & TCP_ACK
            and flow.timeout_class == _CLOSED_TCP
        ):
            # A new connection reusing the 5-tuple of a finished one.
            self._end(flow, "closed" if flow.state() == "closed" else "reset")
            flow = self._create(key, pkt)
        direction = 0 if src == flow.client_ip and sport == flow.client_port else 1
        macs = flow.source_macs
        if macs and macs[direction] != pkt.src_mac:
            self._source_mac(flow, direction, pkt)
        counters = flow.counters
        counters[direction] += pkt.fragments
        counters[BYTES + direction] += pkt.wire_len
        flow.last_ts = ts
        flow.last_frame = pkt.frame
        if not flow.record_frame:
            flow.record_frame = pkt.frame  # first packet after an active-timeout record
        payload = pkt.payload
        if payload:
            if not counters[PAYLOAD + direction]:
                # The direction's first payload of the record's period, in capture order (a
                # segment captured before the one it follows is cited; a mirror copy comes after
                # its original).
                counters[PAYLOAD_FRAME + direction] = pkt.frame
            counters[PAYLOAD + direction] += len(payload)
        if ts - flow.touched > 1.0:
            # Keep the timeout class roughly ordered by last activity (1 s granularity is enough).
            self._classes[flow.timeout_class].move_to_end(key)
            flow.touched = ts
        if proto == IPPROTO_TCP:
            counters[FLAGS + direction] |= flags
            if self._copy_window > 0.0 and self._mirror_copy(flow, direction, pkt, pkt.seq):
                return flow
            if flags & (TCP_SYN | TCP_FIN | TCP_RST):
                self._tcp_control(flow, direction, pkt)
            elif payload and flow.deliver:
                streams = flow.streams
                assert streams is not None
                stream = streams[direction]
                if flags & TCP_ACK:
                    streams[1 - direction].acked = pkt.ack
                peer = streams[1 - direction]
                if (
                    stream.next_seq == pkt.seq
                    and not stream.segments
                    and not peer.segments
                    and not pkt.cut
                    and flow.held is None
                    and not (flags & TCP_ACK and peer.next_seq >= 0 and _ahead(pkt.ack, peer.next_seq))
                ):
                    # The common case, a segment that continues its stream with nothing held on
                    # either side: what TcpStream.add and _hand_over would do, without the chunk list.
                    stream.advance(payload)
                    self.handler.payload(flow, direction, payload, ts, pkt.frame)
                    return flow
            if flow.deliver:
                self._tcp_payload(flow, direction, pkt)
            return flow
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            # The message types each way, as bits (the FLAGS slots: TCP flows only use them there).
            counters[FLAGS + direction] |= 1 << pkt.icmp_type
        if payload:
            # A copy is a copy whether or not the flow is still dissected (one whose dissector gave
            # up, or without one, counts its payload all the same).
            if (
                proto == IPPROTO_UDP
                and self._copy_window > 0.0
                and self._mirror_copy(flow, direction, pkt, hash(payload))
            ):
                return flow
            if not flow.deliver:
                return flow
            if pkt.cut:
                flow.cuts += 1
                flow.sliced += pkt.cut
                self.handler.cut_datagram(flow, direction, payload, pkt.cut, ts, pkt.frame)
                return flow
            self.handler.payload(flow, direction, payload, ts, pkt.frame)
        return flow

    def _twin_of(self, key: FlowKey, pkt: Packet) -> Flow | None:
        """The flow whose packets these are, seen again under other VLAN tags; counted there as copies.

        A SPAN of a trunk (or of a router-on-a-stick's port) carries a routed packet twice: on the
        client's VLAN and on the server's, with another VLAN tag, other MACs and one less TTL, but
        the same IPv4 id, sequence and acknowledgment numbers, flags and payload.  The first
        packet of a new VLAN stack of a live flow's 5-tuple that repeats that flow's last packet of
        the same direction within the copy window makes the stack a twin: its packets are
        counted as the flow's mirror copies (``mirror_copies_*``), never reassembled, dissected or
        recorded as a flow of their own.  Two plants behind overlapping addresses on two VLANs
        send no such repeats, and stay two flows.
        """
        original = self._twins.get(key)
        if original is None:
            original = self._by_tuple.get(key[1:])
            if original is None:
                return None
            last_sent = original.last_sent
            last = last_sent[original.direction_of(pkt)] if last_sent is not None else None
            mark = pkt.seq if pkt.ip_proto == IPPROTO_TCP else hash(pkt.payload)
            if last is None or not self._repeats(last, pkt, mark, original.proto):
                return None
            self._twins[key] = original
            if original.twins is None:
                original.twins = []
            original.twins.append(key)
        direction = original.direction_of(pkt)
        counters = original.counters
        counters[direction] += pkt.fragments
        counters[BYTES + direction] += pkt.wire_len
        counters[COPIES + direction] += 1
        original.copies[direction] += 1
        return original

    def _repeats(self, last: list[Any], pkt: Packet, mark: int, proto: int) -> bool:
        """Whether ``pkt`` repeats ``last`` (a direction's last packet, ``Flow.last_sent``) as a copy.

        Within the copy window, the same IPv4 id, length, ``mark``, acknowledgment number and
        flags; never a TCP segment with neither payload nor IPv4 id (``_mirror_copy``).
        """
        ip_id = pkt.ip_id
        size = len(pkt.payload)
        return (
            pkt.ts - last[1] <= self._copy_window
            and last[0] == ip_id
            and last[3] == mark
            and last[2] == size
            and last[5] == pkt.ack
            and last[6] == pkt.tcp_flags
            and bool(ip_id or size or proto != IPPROTO_TCP)
        )

    def _mirror_copy(self, flow: Flow, direction: int, pkt: Packet, mark: int) -> bool:
        """Whether this packet repeats the last one of its direction within the copy window.

        A copy the mirroring made carries the same IPv4 id (IPv6 has none) and length microseconds
        after the original, and the same ``mark``: the payload's 64-bit hash for a UDP datagram,
        the sequence number for a TCP segment, whose acknowledgment number and flags must match
        too.  A TCP segment without payload and without an IPv4 id (IPv6, or a stack that sends
        id 0) is never taken for a copy: duplicate ACKs look just like that.  Genuine
        retransmissions come after a timeout of 10 ms at the least (Linux's tail loss probe;
        retransmission timeouts are 200 ms and more), never within the window.  At most
        ``MAX_MIRROR_COPIES`` copies per original are dropped: a sender repeating a datagram on
        purpose, however fast, still has every fourth one seen.
        """
        last_sent = flow.last_sent
        if last_sent is None:
            last_sent = flow.last_sent = [None, None]
        last = last_sent[direction]
        size = len(pkt.payload)
        if last is not None and last[4] < MAX_MIRROR_COPIES and self._repeats(last, pkt, mark, flow.proto):
            last[4] += 1
            counters = flow.counters
            counters[COPIES + direction] += 1
            # A copy's payload is the original's: what the hosts sent counts once (``payload_bytes_*``).
            counters[PAYLOAD + direction] -= size
            if not counters[PAYLOAD + direction]:
                # Its original was counted in the record before an active timeout: no payload of
                # this record's period yet.
                counters[PAYLOAD_FRAME + direction] = 0
            flow.copies[direction] += 1
            return True
        if last is None:
            last = last_sent[direction] = [0, 0.0, 0, 0, 0, 0, 0]
        # In place: a TCP flow passes here with every segment.
        last[0] = pkt.ip_id
        last[1] = pkt.ts
        last[2] = size
        last[3] = mark
        last[4] = 0
        last[5] = pkt.ack
        last[6] = pkt.tcp_flags
        return False

    def _source_mac(self, flow: Flow, direction: int, pkt: Packet) -> None:
        """A direction's first packet, or one from another station than the first (reported once)."""
        macs = flow.source_macs
        first = macs[direction]
        if first is None:
            macs[direction] = pkt.src_mac
            return
        flow.source_macs = []
        dst = pkt.dst_ip
        if not any(pkt.src_ip) or (dst[0] >= 224 if len(dst) == 4 else dst[0] == 0xFF):
            return  # from 0.0.0.0 (DHCP discovers of several clients) or to a group: no two stations
        self._anomaly(
            "flow.source_mac_changed",
            flow,
            direction,
            pkt,
            f"source MAC {format_mac(pkt.src_mac)} after {format_mac(first)} (the first packet's)",
        )

    def _tcp_control(self, flow: Flow, direction: int, pkt: Packet) -> None:
        flags = pkt.tcp_flags
        streams = flow.streams
        assert streams is not None
        if flags & TCP_SYN:
            streams[direction].syn(pkt.seq)
        if flags & TCP_RST or (flow.counters[FLAGS] & TCP_FIN and flow.counters[FLAGS + 1] & TCP_FIN):
            self._reclass(flow, _CLOSED_TCP)

    def _tcp_payload(self, flow: Flow, direction: int, pkt: Packet) -> None:
        streams = flow.streams
        assert streams is not None
        held = flow.held
        if held is not None and pkt.ts - held[3] > REORDER_HOLD:
            self._due(flow, pkt.ts, pkt.seq if direction != held[0] and not pkt.payload else -1)
        if pkt.tcp_flags & TCP_ACK:
            # The peer acknowledges bytes we never saw and holds later data: those bytes are lost.
            # (A SPAN keeps each direction's order: what one side sent after them is there, and
            # so was sent after; only the other side's packets come early.)
            peer = streams[1 - direction]
            peer.acked = pkt.ack
            if peer.segments and peer.next_seq >= 0 and seq_diff(pkt.ack, peer.next_seq) > 0:
                first = peer.first_buffered()
                if seq_diff(pkt.ack, first) >= 0:
                    chunks = self._chunks
                    mismatches = peer.mismatch
                    # What it acknowledges came before this packet; what was held past that may
                    # answer it, and follows it.
                    peer.skip_to(first, chunks)
                    peer.drain(chunks, until=pkt.ack)
                    self._peer_out(flow, 1 - direction, pkt)
                    done = False
                    if peer.segments:
                        self._tcp_data(flow, direction, pkt)
                        peer.drain(chunks)
                        self._peer_out(flow, 1 - direction, pkt)
                        done = True
                    if peer.mismatch != mismatches:  # held segments that overlap, bytes differing
                        self._held_mismatch(flow, 1 - direction, pkt)
                    if done:
                        return
        self._tcp_data(flow, direction, pkt)

    def _peer_out(self, flow: Flow, direction: int, pkt: Packet) -> None:
        """The other direction's bytes an acknowledgment let out (``_tcp_payload``).

        Handed on, or, when that direction is held (``Flow.held``), put after what it holds: its
        earlier bytes wait there, and these come after them.
        """
        held = flow.held
        if held is not None and held[0] == direction:
            self._join_wait(flow, held, None)
        else:
            self._hand_over(flow, direction, pkt)

    def _join_wait(self, flow: Flow, held: list[Any], pkt: Packet | None) -> None:
        """The chunks of the held direction go after what it holds (``Flow.held``).

        ``pkt``: that direction's own packet, whose acknowledgment may move what it waits for.
        """
        chunks = self._chunks
        held[2].extend(chunks)
        for chunk in chunks:
            held[4] += len(chunk[1])
        chunks.clear()
        if (
            pkt is not None
            and pkt.tcp_flags & TCP_ACK
            and _ahead(pkt.ack, held[1])
            and _awaits(flow, held[0], pkt.ack)
        ):
            held[1] = pkt.ack
        if held[4] > self.config.max_reassembly_bytes:
            self._release(flow, True)  # no more waiting than out-of-order data gets

    def _tcp_data(self, flow: Flow, direction: int, pkt: Packet) -> None:
        """The packet's own bytes (``_tcp_payload``): reassembled, then handed on or held."""
        streams = flow.streams
        assert streams is not None
        chunks = self._chunks
        payload = pkt.payload
        cut = pkt.cut
        if not payload and not cut:
            return
        stream = streams[direction]
        seq = pkt.seq
        if pkt.tcp_flags & TCP_SYN:
            seq = (seq + 1) & 0xFFFFFFFF  # data on a SYN (TCP Fast Open) follows the SYN's number
        status = (
            stream.add(seq, payload, self.config.max_reassembly_bytes, chunks, pkt.ts, pkt.frame)
            if payload
            else 0
        )
        if cut:
            # The capture kept only the head of this segment: step over the rest now, so the
            # dissector reads the head as a cut PDU and the next segment as the next PDU.
            stream.slice((seq + len(payload)) & 0xFFFFFFFF, cut, chunks, pkt.ts, pkt.frame)
        if status:
            if status & MISMATCH:
                self._anomaly(
                    "tcp.overlap_mismatch",
                    flow,
                    direction,
                    pkt,
                    f"bytes at seq {pkt.seq} differ from another copy of them (retransmitted or held)",
                )
            if status & BUFFER_FULL:
                self._anomaly(
                    "tcp.reassembly_buffer_full",
                    flow,
                    direction,
                    pkt,
                    f"more than {self.config.max_reassembly_bytes} out-of-order bytes held",
                )
        if not chunks:
            return
        held = flow.held
        if held is not None and held[0] == direction:
            # This direction waits already: what follows it joins the wait, in order.
            self._join_wait(flow, held, pkt)
            return
        if held is None and pkt.tcp_flags & TCP_ACK and _awaits(flow, direction, pkt.ack):
            # Sent after bytes of the other direction this capture has not shown yet: it
            # waits for them (``REORDER_HOLD``), so each side is dissected in the order the
            # hosts saw it.
            flow.held = [direction, pkt.ack, list(chunks), pkt.ts, sum(len(chunk[1]) for chunk in chunks)]
            chunks.clear()
            self._holding[flow.key] = flow
            return
        self._hand_over(flow, direction, pkt)

    def _due(self, flow: Flow, now: float, seq: int) -> None:
        """A wait past ``REORDER_HOLD``: end it if the bytes awaited are shown lost, or waited too long.

        ``seq``: the sequence number of a bare acknowledgment from the other direction (-1: none).
        """
        held = flow.held
        streams = flow.streams
        assert held is not None and streams is not None
        peer = streams[1 - held[0]]
        if now - held[3] > REORDER_HOLD_MAX:
            self._release(flow, True)
        elif peer.next_seq >= 0 and (
            (peer.segments and not _ahead(peer.first_buffered(), held[1]))
            or (seq >= 0 and _ahead(seq, peer.next_seq) and not _ahead(seq, held[1]))
        ):
            self._release(flow, True, seq)

    def _release(
        self, flow: Flow, expired: bool, seq: int = -1, completed: tuple[float, int] = NO_MARK
    ) -> None:
        """Hand on the held direction's data (``Flow.held``).

        ``expired``: the bytes it acknowledged did not come in time.  If the other direction holds
        later data behind a hole those bytes fall in (or ``seq``, its sequence number on a bare
        acknowledgment, is past them), they are lost from the capture: the hole is given up first
        (as when a peer's acknowledgment covers it), and the held data goes out where the other
        direction reaches what it acknowledged (``_hand_over``): after the loss, before what the
        other side sent later.  ``completed``: the time and frame of the packet whose bytes the held
        data waited for (as a segment held behind a hole is completed by the packet that fills it,
        the records parsed from it name that frame, so a flow's records keep to capture order);
        none (frame 0) when the wait was given up, and each chunk keeps its own.
        """
        held = flow.held
        assert held is not None
        direction: int = held[0]
        streams = flow.streams
        assert streams is not None
        chunks = self._chunks
        if expired:
            peer = streams[1 - direction]
            self._giving_up = True
            try:
                if peer.segments and peer.next_seq >= 0 and _ahead(held[1], peer.next_seq):
                    first = peer.first_buffered()
                    if not _ahead(first, held[1]):
                        peer.skip_to(first, chunks)
                        peer.drain(chunks)
                        self._hand_over(flow, 1 - direction, None)
                elif seq >= 0 and peer.next_seq >= 0 and _ahead(seq, peer.next_seq):
                    peer.skip_to(seq, chunks)
                    self._hand_over(flow, 1 - direction, None)
            finally:
                self._giving_up = False
            if flow.held is not held:
                return  # gone out in order with the other direction's data
        flow.held = None
        self._holding.pop(flow.key, None)
        chunks = self._chunks
        if completed[1]:
            ts, frame = completed
            chunks.extend((gap, data, ts, frame) for gap, data, _ts, _frame in held[2])
        else:
            chunks.extend(held[2])
        self._hand_over(flow, direction, None)

    def _hand_over(self, flow: Flow, direction: int, pkt: Packet | None) -> None:
        chunks = self._chunks
        handler = self.handler
        held = flow.held
        streams = flow.streams
        # The other direction waits for this one to reach its acknowledgment number: it goes out
        # right after the chunk that gets there, ahead of the chunks after it.
        watch = held is not None and held[0] != direction and streams is not None
        position = 0
        if watch:
            assert streams is not None
            self._chunks = []  # the release hands on through a list of its own
            position = streams[direction].next_seq
            for gap, data, _ts, _frame in chunks:
                position -= (gap if gap > 0 else -gap) + len(data)
        for gap, data, ts, frame in chunks:
            if gap < 0:
                handler.gap(flow, direction, -gap)  # cut by the snap length (``TcpStream.slice``)
            elif gap:
                if streams is not None and streams[direction].gaps == gap:
                    self._anomaly(
                        "tcp.reassembly_gap",
                        flow,
                        direction,
                        pkt,
                        f"{gap} bytes missing before this segment; later gaps are counted only",
                    )
                handler.gap(flow, direction, gap)
            if data and flow.deliver:
                # The segment's own time and frame: held behind a hole, it may come out later.
                if frame:
                    handler.payload(flow, direction, data, ts, frame)
                else:
                    handler.payload(flow, direction, data, flow.last_ts, flow.last_frame)
            if watch:
                assert held is not None
                position += (gap if gap > 0 else -gap) + len(data)
                if flow.held is held and not _ahead(held[1], position & 0xFFFFFFFF):
                    self._release(flow, False, completed=NO_MARK if self._giving_up else (ts, frame))
                    watch = False
        chunks.clear()
        if chunks is not self._chunks:
            self._chunks = chunks  # the one list again (the release left its own empty)

    # -- flow lifecycle --------------------------------------------------------------------------

    def _create(self, key: FlowKey, pkt: Packet) -> Flow:
        if len(self.flows) >= self.config.max_flows:
            self._evict_one(pkt)
        client_is_src, orientation = _orient(pkt)
        flow = Flow(key, pkt, client_is_src, orientation)
        self.flows[key] = flow
        self._classes[flow.timeout_class][key] = flow
        if self._copy_window > 0.0:
            self._by_tuple.setdefault(key[1:], flow)
        self.handler.flow_started(flow)
        return flow

    def _reclass(self, flow: Flow, timeout_class: int) -> None:
        if flow.timeout_class != timeout_class:
            del self._classes[flow.timeout_class][flow.key]
            flow.timeout_class = timeout_class
            self._classes[timeout_class][flow.key] = flow
            flow.touched = flow.last_ts

    def _end(self, flow: Flow, reason: str) -> None:
        if flow.held is not None:
            self._release(flow, True)
        streams = flow.streams
        if streams is not None and flow.deliver and (streams[0].segments or streams[1].segments):
            for direction in (0, 1):
                stream = streams[direction]
                mismatches = stream.mismatch
                stream.flush(self._chunks)
                if stream.mismatch != mismatches:  # held segments that overlap, bytes differing
                    self._held_mismatch(flow, direction, None)
                self._hand_over(flow, direction, None)
        self.handler.flow_ended(flow, reason)
        if flow.cuts or (streams is not None and (streams[0].cuts or streams[1].cuts)):
            self._sliced(flow)
        to_server, to_client = flow.copies
        copies = to_server + to_client
        if copies:
            tcp = flow.proto == IPPROTO_TCP
            self.anomalies.append(
                flow_anomaly(
                    "tcp.mirror_copies" if tcp else "udp.mirror_copies",
                    flow,
                    TO_SERVER if to_server >= to_client else TO_CLIENT,
                    None,
                    f"{copies} {'segments' if tcp else 'datagrams'} repeated within "
                    f"{self._copy_window * 1000:g} ms with the same "
                    f"{'IPv4 id, sequence number and flags' if tcp else 'IPv4 id and payload'}: the same "
                    "packets seen twice on their way (a mirror of both ports of a path, or a station "
                    f"relaying them), counted in the flow's packets, not {'reassembled' if tcp else 'dissected'}"
                    + _twin_note(flow),
                )
            )
        del self.flows[flow.key]
        del self._classes[flow.timeout_class][flow.key]
        if self._by_tuple.get(flow.key[1:]) is flow:
            del self._by_tuple[flow.key[1:]]
        if flow.twins is not None:
            for twin in flow.twins:
                self._twins.pop(twin, None)
        self.records.append(self._record(flow, reason))

    def _sliced(self, flow: Flow) -> None:
        """Once per flow, at its end: how much of it the capture's snap length cut off."""
        streams = flow.streams
        cuts, sliced = flow.cuts, flow.sliced
        direction = TO_SERVER
        if streams is not None:
            cuts += streams[0].cuts + streams[1].cuts
            sliced += streams[0].sliced + streams[1].sliced
            direction = TO_SERVER if streams[0].cuts else TO_CLIENT
        what = "segment" if streams is not None else "datagram"
        self.anomalies.append(
            flow_anomaly(
                "flow.sliced",
                flow,
                direction,
                None,
                f"{cuts} {what}{'' if cuts == 1 else 's'} cut by the capture's snap length ({sliced} payload "
                "bytes not kept): "
                "a PDU past the cut is dissected as far as it was kept and marked truncated",
            )
        )

    def _evict_one(self, pkt: Packet) -> None:
        # Prefer finished TCP connections, then whatever was seen least recently.
        candidates = [next(iter(c.values())) for c in self._classes if c]
        closed = self._classes[_CLOSED_TCP]
        victim = next(iter(closed.values())) if closed else min(candidates, key=lambda f: f.touched)
        self._end(victim, "evicted")
        self.evicted += 1
        # One anomaly per power of two evictions keeps a flood from drowning the output.
        if self.evicted & (self.evicted - 1) == 0:
            self.anomalies.append(
                AnomalyEvent(
                    ts=pkt.ts,
                    frame=pkt.frame,
                    code="flow.table_full",
                    severity=severity_name("flow.table_full"),
                    detail=f"{self.config.max_flows} flows tracked; {self.evicted} evicted so far",
                    protocol="flow",
                )
            )

    def sweep(self) -> None:
        """Expire idle flows and cut records of long-running ones (called as capture time moves)."""
        now = self.now
        self._next_sweep = now + 1.0
        if self._holding:
            for flow in list(self._holding.values()):
                held = flow.held
                if held is not None and now - held[3] > REORDER_HOLD:
                    self._due(flow, now, -1)
        for timeout_class, flows in enumerate(self._classes):
            timeout = self._timeouts[timeout_class]
            while flows:
                flow = next(iter(flows.values()))
                if now - flow.last_ts <= timeout:
                    if now - flow.touched <= timeout:
                        break
                    # Seen recently but not re-queued yet: move it back and go on.
                    flows.move_to_end(flow.key)
                    flow.touched = flow.last_ts
                    continue
                self._end(flow, self._closed_reason(flow) if timeout_class == _CLOSED_TCP else "idle_timeout")
        if now >= self._next_active_check:
            self._next_active_check = now + 60.0
            active = self.config.active_timeout
            for flow in list(self.flows.values()):
                if now - flow.record_start > active:
                    self.records.append(self._record(flow, "active_timeout"))
                    _reset_counters(flow, now)

    def flush(self) -> None:
        """End of input: every flow still open gets its record."""
        for flow in list(self.flows.values()):
            self._end(
                flow, self._closed_reason(flow) if flow.timeout_class == _CLOSED_TCP else "end_of_capture"
            )

    @staticmethod
    def _closed_reason(flow: Flow) -> str:
        return "closed" if flow.state() == "closed" else "reset"

    # -- output ----------------------------------------------------------------------------------

    def _record(self, flow: Flow, reason: str) -> FlowRecord:
        src_ip = format_ip(flow.client_ip)
        dst_ip = format_ip(flow.server_ip)
        streams = flow.streams
        counters = flow.counters
        tcp = flow.proto == IPPROTO_TCP
        # In FlowRecord's field order (see ``record_from``).
        return record_from(
            FlowRecord,
            {
                "event_type": "flow",
                "flow_id": flow.id,
                "community_id": community_id(
                    flow.proto, flow.client_ip, flow.client_port, flow.server_ip, flow.server_port
                ),
                "ts_start": flow.record_start,
                "ts_end": flow.last_ts,
                "duration": round(flow.last_ts - flow.record_start, 6),
                "first_frame": flow.record_frame,
                "transport": flow.transport,
                "ip_version": flow.ip_version,
                "vlan": flow.vlan,
                "src_ip": src_ip,
                "src_port": flow.client_port,
                "dst_ip": dst_ip,
                "dst_port": flow.server_port,
                "src_mac": format_mac(flow.client_mac),
                "dst_mac": format_mac(flow.server_mac),
                "orientation": flow.orientation,
                "packets_to_server": counters[0],
                "packets_to_client": counters[1],
                "bytes_to_server": counters[BYTES],
                "bytes_to_client": counters[BYTES + 1],
                "payload_bytes_to_server": counters[PAYLOAD],
                "payload_bytes_to_client": counters[PAYLOAD + 1],
                "tcp_flags_to_server": tuple(tcp_flag_names(counters[FLAGS])) if tcp else (),
                "tcp_flags_to_client": tuple(tcp_flag_names(counters[FLAGS + 1])) if tcp else (),
                "state": flow.state(),
                "end_reason": reason,
                "service": flow.service,
                "app_protocol": flow.app_protocol,
                "missed_bytes": (streams[0].gaps + streams[1].gaps) if streams else 0,
                "retransmissions": (streams[0].retransmissions + streams[1].retransmissions)
                if streams
                else 0,
                "tunnel": tunnel_layers(flow.tunnel) if flow.tunnel else (),
                "sliced_bytes": flow.sliced + (streams[0].sliced + streams[1].sliced if streams else 0),
                "icmp_types_to_server": () if tcp else _bits(counters[FLAGS]),
                "icmp_types_to_client": () if tcp else _bits(counters[FLAGS + 1]),
                "mirror_copies_to_server": counters[COPIES],
                "mirror_copies_to_client": counters[COPIES + 1],
                "first_payload_frame_to_server": counters[PAYLOAD_FRAME],
                "first_payload_frame_to_client": counters[PAYLOAD_FRAME + 1],
            },
        )

    def _held_mismatch(self, flow: Flow, direction: int, pkt: Packet | None) -> None:
        """Segments held out of order that overlap, with different bytes, found as they were given up."""
        self._anomaly(
            "tcp.overlap_mismatch", flow, direction, pkt, "overlapping segments held out of order differ"
        )

    def _anomaly(self, code: str, flow: Flow, direction: int, pkt: Packet | None, detail: str) -> None:
        self.anomalies.append(flow_anomaly(code, flow, direction, pkt, detail))


def _twin_note(flow: Flow) -> str:
    """What an anomaly about a flow's copies says of those seen under other VLAN tags."""
    if not flow.twins:
        return ""
    stacks = ", ".join(
        "untagged" if not key[0] else ".".join(str(tag) for tag in key[0]) for key in flow.twins[:4]
    )
    return f"; also seen routed or trunked under VLAN {stacks} (those copies made no flow of their own)"


def _awaits(flow: Flow, direction: int, ack: int) -> bool:
    """Whether ``ack``, sent ``direction``, acknowledges bytes of the other direction not seen yet.

    The other direction's FIN takes a sequence number of its own: its acknowledgment is one past
    the last byte.
    """
    streams = flow.streams
    assert streams is not None
    next_seq = streams[1 - direction].next_seq
    if next_seq < 0:
        return False
    diff = (ack - next_seq) & 0xFFFFFFFF
    if not 0 < diff < HALF:
        return False
    return not (diff == 1 and flow.counters[FLAGS + 1 - direction] & TCP_FIN)


def _ahead(ack: int, next_seq: int) -> bool:
    """Whether ``ack`` acknowledges bytes past ``next_seq`` (``seq_diff(ack, next_seq) > 0``), inline."""
    diff = (ack - next_seq) & 0xFFFFFFFF
    return 0 < diff < HALF


def _bits(mask: int) -> tuple[int, ...]:
    """The positions of the bits set in ``mask``, lowest first."""
    found: list[int] = []
    position = 0
    while mask:
        if mask & 1:
            found.append(position)
        mask >>= 1
        position += 1
    return tuple(found)


def tunnel_layers(layers: tuple[tuple[str, int, int, bytes, bytes], ...]) -> tuple[dict[str, Any], ...]:
    """``Packet.tunnel`` as the flow record carries it: one dict per encapsulation, outermost first."""
    formatted: list[dict[str, Any]] = []
    for kind, ident, _version, src, dst in layers:
        layer: dict[str, Any] = {"type": kind}
        if ident >= 0:
            layer["id"] = ident
        layer["src_ip"] = format_ip(src)
        layer["dst_ip"] = format_ip(dst)
        formatted.append(layer)
    return tuple(formatted)


def flow_anomaly(
    code: str, flow: Flow, direction: int, pkt: Packet | None, detail: str, protocol: str | None = None
) -> AnomalyEvent:
    """Build an anomaly about ``flow``, oriented by ``direction`` (shared with the dissect bridge)."""
    forward = direction == TO_SERVER
    return new_anomaly_event(
        pkt.ts if pkt is not None else flow.last_ts,
        pkt.frame if pkt is not None else 0,
        code,
        severity_name(code),
        detail,
        protocol or code.split(".", 1)[0],
        flow.id,
        flow.transport,
        format_ip(flow.client_ip if forward else flow.server_ip),
        flow.client_port if forward else flow.server_port,
        format_ip(flow.server_ip if forward else flow.client_ip),
        flow.server_port if forward else flow.client_port,
        DIRECTION_NAMES[direction],
    )


def _reset_counters(flow: Flow, now: float) -> None:
    flow.record_start = now
    flow.record_frame = 0
    counters = flow.counters
    counters[0:6] = (0, 0, 0, 0, 0, 0)  # TCP flags accumulate over the whole flow
    counters[COPIES : COPIES + 4] = (0, 0, 0, 0)  # with the first payload frames


def _orient(pkt: Packet) -> tuple[bool, str]:
    """Decide whether the packet's source is the client, and how we decided."""
    if pkt.ip_proto == IPPROTO_TCP and pkt.tcp_flags & TCP_SYN:
        return (not pkt.tcp_flags & TCP_ACK), "syn"
    if pkt.ip_proto in (IPPROTO_TCP, IPPROTO_UDP):
        services = TCP_SERVICES if pkt.ip_proto == IPPROTO_TCP else UDP_SERVICES
        sport, dport = pkt.sport, pkt.dport
        src_known, dst_known = sport in services, dport in services
        if dst_known != src_known:
            return dst_known, "port"
        if (dport < 1024) != (sport < 1024):
            return dport < 1024, "port"
    if pkt.ip_proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and pkt.icmp_type in (0, 129):
        return False, "port"  # an echo reply's sender is the responder
    return True, "first_packet"
