"""Flow table and TCP reassembly, driven by decoded scapy-built frames."""

from __future__ import annotations

from dataclasses import replace

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from ics_monitor.decode import Decoder
from ics_monitor.flows import Flow, FlowConfig, FlowTable
from ics_monitor.flows.tcp import Chunk, TcpStream, seq_diff
from ics_monitor.inventory.baseline import is_probe, is_tcp_knock

MAC_C, MAC_S = "00:1b:1b:00:00:01", "00:80:f4:00:00:02"
C, S = "192.0.2.10", "192.0.2.20"


class Recorder:
    """A FlowHandler that writes down every call."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, int], bytearray] = {}
        self.gaps: list[tuple[str, int, int]] = []
        self.cuts: list[tuple[str, int, int]] = []
        self.started: list[str] = []
        self.ended: list[tuple[str, str]] = []
        self.calls: list[tuple[int, bytes, float, int]] = []  # (direction, bytes, ts, frame)

    def flow_started(self, flow: Flow) -> None:
        self.started.append(flow.id)

    def payload(self, flow: Flow, direction: int, data: bytes, ts: float, frame: int) -> None:
        self.data.setdefault((flow.id, direction), bytearray()).extend(data)
        self.calls.append((direction, bytes(data), ts, frame))

    def gap(self, flow: Flow, direction: int, size: int) -> None:
        self.gaps.append((flow.id, direction, size))

    def cut_datagram(self, flow: Flow, direction: int, data: bytes, cut: int, ts: float, frame: int) -> None:
        self.payload(flow, direction, data, ts, frame)
        self.cuts.append((flow.id, direction, cut))

    def flow_ended(self, flow: Flow, reason: str) -> None:
        self.ended.append((flow.id, reason))


def tcp(
    ts: float,
    client: bool,
    flags: str,
    seq: int,
    ack: int = 0,
    data: bytes = b"",
    sport: int = 40000,
    dport: int = 7777,
    vlan: int | None = None,
) -> tuple[float, bytes]:
    src, dst, smac, dmac = (C, S, MAC_C, MAC_S) if client else (S, C, MAC_S, MAC_C)
    sp, dp = (sport, dport) if client else (dport, sport)
    l2 = Ether(src=smac, dst=dmac)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    frame = l2 / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack)
    if data:
        frame = frame / Raw(data)
    return ts, bytes(frame)


def udp(
    ts: float, client: bool, data: bytes, sport: int = 40000, dport: int = 53, vlan: int | None = None
) -> tuple[float, bytes]:
    src, dst = (C, S) if client else (S, C)
    sp, dp = (sport, dport) if client else (dport, sport)
    l2 = Ether(src=MAC_C, dst=MAC_S)
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return ts, bytes(l2 / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / Raw(data))


def run(frames: list[tuple[float, bytes]], config: FlowConfig | None = None) -> tuple[FlowTable, Recorder]:
    recorder = Recorder()
    table = FlowTable(config or FlowConfig(), recorder)
    decoder = Decoder()
    for number, (ts, frame) in enumerate(frames, start=1):
        pkt = decoder.decode(number, ts, 1, frame, len(frame))
        assert pkt is not None
        table.process(pkt)
    table.flush()
    return table, recorder


def handshake(isn_c: int = 1000, isn_s: int = 5000, t: float = 1.0, **kw: int) -> list[tuple[float, bytes]]:
    return [
        tcp(t, True, "S", isn_c, **kw),
        tcp(t + 0.001, False, "SA", isn_s, isn_c + 1, **kw),
        tcp(t + 0.002, True, "A", isn_c + 1, isn_s + 1, **kw),
    ]


def test_session_counters_orientation_state() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"hello"),
        tcp(1.02, False, "PA", 5001, 1006, b"world!"),
        tcp(1.03, True, "FA", 1006, 5007),
        tcp(1.04, False, "FA", 5007, 1007),
        tcp(1.05, True, "A", 1007, 5008),
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert (record.src_ip, record.src_port, record.dst_ip, record.dst_port) == (C, 40000, S, 7777)
    assert record.orientation == "syn"
    assert (record.packets_to_server, record.packets_to_client) == (5, 3)
    assert record.bytes_to_server == sum(len(f) for i, (_, f) in enumerate(frames) if i in (0, 2, 3, 5, 7))
    assert (record.payload_bytes_to_server, record.payload_bytes_to_client) == (5, 6)
    # first_frame is the SYN; the first bytes each way are frames 4 and 5.
    assert record.first_frame == 1
    assert (record.first_payload_frame_to_server, record.first_payload_frame_to_client) == (4, 5)
    assert record.state == "closed" and record.end_reason == "closed"
    assert record.src_mac == MAC_C and record.dst_mac == MAC_S
    assert set(record.tcp_flags_to_server) == {"SYN", "ACK", "PSH", "FIN"}
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"hello"
    assert bytes(recorder.data[(record.flow_id, 1)]) == b"world!"


def test_orientation_without_syn_uses_ports_then_first_talker() -> None:
    table, _ = run([udp(1.0, False, b"answer"), udp(1.1, True, b"query")])  # server (port 53) speaks first
    (record,) = table.records
    assert (record.src_port, record.dst_port, record.orientation) == (40000, 53, "port")
    assert record.service == "dns"
    table, _ = run([udp(1.0, False, b"x", sport=40000, dport=41000)])
    assert table.records[0].orientation == "first_packet"
    assert table.records[0].src_port == 41000  # the first talker is taken as the client


def test_icmp_flows_record_the_message_types_each_way() -> None:
    def icmp(ts: float, client: bool, kind: int) -> tuple[float, bytes]:
        src, dst = (C, S) if client else (S, C)
        return ts, bytes(Ether(src=MAC_C, dst=MAC_S) / IP(src=src, dst=dst) / ICMP(type=kind))

    table, _ = run([icmp(1.0, True, 8), icmp(1.1, False, 0), icmp(2.0, True, 8), icmp(2.5, True, 13)])
    (record,) = table.records
    assert (record.transport, record.src_ip, record.packets_to_server) == ("icmp", C, 3)
    assert (record.icmp_types_to_server, record.icmp_types_to_client) == ((8, 13), (0,))
    assert record.tcp_flags_to_server == () and record.state is None
    table, _ = run([icmp(1.0, True, 8)])
    assert (table.records[0].icmp_types_to_server, table.records[0].icmp_types_to_client) == ((8,), ())
    v6 = [
        (1.0, bytes(Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest())),
        (1.1, bytes(Ether() / IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoReply())),
    ]
    table, _ = run(v6)
    (record,) = table.records
    assert (record.transport, record.icmp_types_to_server, record.icmp_types_to_client) == (
        "ipv6-icmp",
        (128,),
        (129,),
    )
    # TCP and UDP flows carry none.
    table, _ = run([udp(1.0, True, b"q"), *handshake(t=2.0)])
    assert all(r.icmp_types_to_server == () == r.icmp_types_to_client for r in table.records)


def test_vlans_keep_flows_apart() -> None:
    table, _ = run([udp(1.0, True, b"a", vlan=10), udp(1.1, True, b"b"), udp(1.2, True, b"c", vlan=20)])
    assert sorted(r.vlan for r in table.records) == [(), (10,), (20,)]
    assert len({r.flow_id for r in table.records}) == 3


def test_rejected_connection_and_port_reuse() -> None:
    frames = [
        tcp(1.0, True, "S", 100, dport=23),
        tcp(1.001, False, "RA", 0, 101, dport=23),
        tcp(2.0, True, "S", 900, dport=23),  # same 5-tuple again: a new connection
        tcp(2.001, False, "SA", 50, 901, dport=23),
    ]
    table, _ = run(frames)
    first, second = table.records
    assert first.state == "rejected" and first.end_reason == "reset"
    assert second.state == "established" and second.ts_start == 2.0
    assert first.flow_id != second.flow_id


def test_idle_and_active_timeouts() -> None:
    config = FlowConfig(udp_idle_timeout=10.0, active_timeout=100.0)
    frames = [udp(0.0, True, b"a"), udp(50.0, True, b"b", sport=40001)]
    table, _ = run(frames, config)
    assert [r.end_reason for r in table.records] == ["idle_timeout", "end_of_capture"]
    # A chatty flow lasting 300 s is cut into records by the active timeout, same flow id.
    chatty = [udp(float(t), True, b"x") for t in range(0, 300, 5)]
    table, _ = run(chatty, config)
    reasons = [r.end_reason for r in table.records]
    assert reasons.count("active_timeout") >= 2 and reasons[-1] == "end_of_capture"
    assert len({r.flow_id for r in table.records}) == 1
    assert sum(r.packets_to_server for r in table.records) == len(chatty)
    # Each record cites the first payload of its own period; no answer came: 0 to the client.
    firsts = [r.first_payload_frame_to_server for r in table.records]
    assert firsts == [r.first_frame for r in table.records] and firsts[0] == 1 and firsts[1] > 1
    assert {r.first_payload_frame_to_client for r in table.records} == {0}


def test_data_on_a_syn_is_the_stream_s_first_bytes() -> None:
    """TCP Fast Open: the SYN's own data follows its sequence number, not at it."""
    frames = [
        tcp(1.0, True, "S", 1000, 0, b"HELLO"),
        tcp(1.001, False, "SA", 5000, 1006),
        tcp(1.002, True, "PA", 1006, 5001, b" WORLD"),
        tcp(1.003, False, "PA", 5001, 1012, b"ok"),
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"HELLO WORLD"
    assert record.missed_bytes == 0 and record.first_payload_frame_to_server == 1


def test_a_mirror_copy_cut_from_its_original_by_an_active_timeout_is_no_payload() -> None:
    """The original ends one record (active timeout), its copy begins the next: that record
    counts no payload, so it cites no payload frame either."""
    config = FlowConfig(udp_idle_timeout=120.0, active_timeout=50.0)
    frames = [
        udp_id(1.0, True, b"a", 1),  # the first sweep: the active timeouts are checked from 61 on
        udp_id(60.000005, True, b"b", 2),  # a sweep: the next one is due at 61.000005
        udp_id(61.0, True, b"c", 3),
        udp_id(61.00002, True, b"c", 3),  # its copy, after that sweep's active-timeout cut
    ]
    table, _ = run(frames, config)
    first, second = table.records
    assert first.end_reason == "active_timeout" and first.first_payload_frame_to_server == 1
    assert (second.mirror_copies_to_server, second.payload_bytes_to_server) == (1, 0)
    assert second.first_payload_frame_to_server == 0


def test_a_flow_without_payload_cites_no_payload_frame() -> None:
    table, _ = run(handshake() + [tcp(1.01, True, "RA", 1001, 5001)])
    (record,) = table.records
    assert (record.first_payload_frame_to_server, record.first_payload_frame_to_client) == (0, 0)


def test_table_cap_evicts_with_anomaly() -> None:
    config = replace(FlowConfig(), max_flows=4)
    table, _ = run([udp(1.0 + i / 100, True, b"q", sport=1000 + i) for i in range(10)], config)
    reasons = [r.end_reason for r in table.records]
    assert reasons.count("evicted") == 6
    codes = [a.code for a in table.anomalies]
    assert codes and set(codes) == {"flow.table_full"}
    assert len(codes) < 6  # rate-limited: one per power of two


def test_out_of_order_segments_delivered_in_order() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"AAAA"),
        tcp(1.02, True, "PA", 1009, 5001, b"CCCC"),
        tcp(1.03, True, "PA", 1005, 5001, b"BBBB"),
        tcp(1.04, True, "PA", 1013, 5001, b"DDDD"),
    ]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert bytes(recorder.data[(flow_id, 0)]) == b"AAAABBBBCCCCDDDD"
    assert recorder.gaps == [] and table.anomalies == []


def test_retransmission_same_bytes_and_overlap_with_different_bytes() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"12345678"),
        tcp(1.02, True, "PA", 1001, 5001, b"12345678"),  # plain retransmission
        tcp(1.03, True, "PA", 1005, 5001, b"5678abcd"),  # half old (same), half new
        tcp(1.04, True, "PA", 1001, 5001, b"XXXX"),  # rewrites delivered bytes: evasion
    ]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert bytes(recorder.data[(flow_id, 0)]) == b"12345678abcd"
    assert [a.code for a in table.anomalies] == ["tcp.overlap_mismatch"]
    assert table.records[0].retransmissions == 2


def test_keepalive_probes_are_not_data_nor_a_mismatch() -> None:
    """A keep-alive carries one garbage byte at SND.NXT - 1 (Windows and PLC stacks send 0x00):
    once the receiver has acknowledged the stream it keeps its copy, so the probe is neither
    delivered nor compared.  A longer rewrite of delivered bytes still is a mismatch."""
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"\x03\x00\x00\x07\x02\xf0\x80"),
        tcp(1.02, False, "A", 5001, 1008),  # the server has all 7 bytes
        tcp(2.01, True, "A", 1007, 5001, b"\x00"),  # keep-alive: not the 0x80 it sits on
        tcp(3.01, True, "A", 1007, 5001, b"\x00"),
        tcp(4.01, True, "PA", 1008, 5001, b"next"),
        tcp(5.01, True, "PA", 1010, 5001, b"XY"),  # two bytes back, different: a rewrite
    ]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert bytes(recorder.data[(flow_id, 0)]) == b"\x03\x00\x00\x07\x02\xf0\x80next"
    assert [a.code for a in table.anomalies] == ["tcp.overlap_mismatch"]
    assert table.records[0].retransmissions == 1


def test_one_byte_rewrite_before_the_ack_is_a_mismatch() -> None:
    """Evasion by decoy: a byte the host drops (bad checksum) but the monitor takes, then the real
    byte at the same place as a one-byte segment.  The host has not acknowledged it yet, so it is
    no keep-alive: the monitor reports the conflict instead of hiding it."""
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"\x00\x01\x00\x00\x00\x06\x01\x03"),  # decoy ends 0x03
        tcp(1.02, True, "PA", 1008, 5001, b"\x06"),  # the real function code, before any ACK
    ]
    table, _ = run(frames)
    assert [a.code for a in table.anomalies] == ["tcp.overlap_mismatch"]
    stream = TcpStream()
    stream.syn(99)
    out: list[Chunk] = []
    stream.add(100, b"abc", 1000, out)
    assert stream.add(102, b"z", 1000, out) != 0 and stream.mismatch == 1  # nothing acknowledged
    stream.acked = 103
    assert stream.add(102, b"y", 1000, out) == 0 and (stream.mismatch, stream.retransmissions) == (1, 1)
    assert stream.add(101, b"zz", 1000, out) != 0 and stream.mismatch == 2
    stream.acked = (103 + (1 << 32) - 5) & 0xFFFFFFFF  # an older ACK (wrapped arithmetic): compare
    assert stream.add(102, b"x", 1000, out) != 0 and stream.mismatch == 3


def test_copies_of_segments_held_out_of_order_that_differ_are_a_mismatch() -> None:
    """Found by a red-team review: the tail of a request sent out of order twice, the first copy a
    decoy (bad checksum: the host drops it), then the head.  The monitor keeps the first copy and
    must say that the copies differ; so must segments held out of order that overlap."""
    decoy = handshake() + [
        tcp(1.01, True, "PA", 1005, 5001, b"XXXX"),  # decoy tail, out of order
        tcp(1.02, True, "PA", 1005, 5001, b"STOP"),  # the real tail, same place
        tcp(1.03, True, "PA", 1001, 5001, b"head"),
    ]
    table, recorder = run(decoy)
    assert [a.code for a in table.anomalies] == ["tcp.overlap_mismatch"]
    assert bytes(recorder.data[(table.records[0].flow_id, 0)]) == b"headXXXX"  # the first copy
    # The same copy twice is a plain retransmission; a longer copy agreeing on its start too.
    for second in (b"XXXX", b"XXXXYY"):
        table, _ = run([*decoy[:4], tcp(1.02, True, "PA", 1005, 5001, second), decoy[5]])
        assert table.anomalies == []
    # Two held segments overlapping by two bytes, with different bytes there.
    overlap = handshake() + [
        tcp(1.01, True, "PA", 1005, 5001, b"abcd"),
        tcp(1.02, True, "PA", 1007, 5001, b"XYef"),  # bytes 1007-1008 again: "cd" vs "XY"
        tcp(1.03, True, "PA", 1001, 5001, b"head"),
    ]
    table, recorder = run(overlap)
    assert [a.code for a in table.anomalies] == ["tcp.overlap_mismatch"]
    assert bytes(recorder.data[(table.records[0].flow_id, 0)]) == b"headabcdef"
    same = [*overlap[:4], tcp(1.02, True, "PA", 1007, 5001, b"cdef"), overlap[5]]
    assert run(same)[0].anomalies == []
    # Found in review: never filled (the head lost), given up at the flow's end: compared too.
    table, _ = run(overlap[:5])
    assert "tcp.overlap_mismatch" in [a.code for a in table.anomalies]
    # Given up through the peer's ACK (it acknowledges the missing head): compared all the same.
    acked = [*overlap[:5], tcp(1.03, False, "A", 5001, 1011)]
    table, _ = run(acked)
    assert sorted(a.code for a in table.anomalies) == ["tcp.overlap_mismatch", "tcp.reassembly_gap"]


def test_bytes_after_a_gap_are_not_compared_with_those_before_it() -> None:
    """After a gap the kept tail ends before the missing bytes: a late copy of them is not compared
    with bytes it does not overlap (once read as a mismatch, or not one, by chance)."""
    stream = TcpStream()
    stream.syn(99)
    out: list[Chunk] = []
    stream.add(100, b"abcd", 1000, out)
    stream.add(108, b"ijkl", 1000, out)  # 104-107 missing
    stream.skip_to(108, out)
    stream.drain(out)
    assert stream.add(104, b"efgh", 1000, out) == 0 and stream.mismatch == 0
    assert stream.add(110, b"kX", 1000, out) != 0 and stream.mismatch == 1  # after it: compared


def test_gap_detected_from_peer_ack() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"aaaa"),
        # 1005..1009 never captured
        tcp(1.03, True, "PA", 1009, 5001, b"cccc"),
        tcp(1.04, False, "A", 5001, 1013),  # server acknowledges everything
        tcp(1.05, True, "PA", 1013, 5001, b"dddd"),
    ]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert recorder.gaps == [(flow_id, 0, 4)]
    assert bytes(recorder.data[(flow_id, 0)]) == b"aaaaccccdddd"
    assert [a.code for a in table.anomalies] == ["tcp.reassembly_gap"]
    assert table.records[0].missed_bytes == 4


def test_data_held_behind_a_lost_hole_keeps_its_own_frame_and_time() -> None:
    # A request segment arrives after a lost one; the server's answer acknowledges both, so the
    # held request is handed on when the answer comes: with its own frame and time, not the
    # answer's (a record parsed from it, and an alert on it, names the frame that carried it).
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"aaaa"),
        # 1005..1009 never captured
        tcp(1.03, True, "PA", 1009, 5001, b"cccc"),
        tcp(1.04, False, "PA", 5001, 1013, b"resp"),
        tcp(1.05, True, "PA", 1013, 5009, b"dddd"),
    ]
    table, recorder = run(frames)
    first = len(handshake()) + 1
    assert recorder.calls == [
        (0, b"aaaa", 1.01, first),
        (0, b"cccc", 1.03, first + 1),
        (1, b"resp", 1.04, first + 2),
        (0, b"dddd", 1.05, first + 3),
    ]
    assert table.records[0].missed_bytes == 4
    # Held out of order and the hole filled later: the filling packet completes what waited
    # (tshark's frame for a reassembled PDU); a hole given up at the end of the flow: its own.
    frames = handshake() + [
        tcp(1.01, True, "PA", 1005, 5001, b"bbbb"),
        tcp(1.02, True, "PA", 1001, 5001, b"aaaa"),
        tcp(1.03, True, "PA", 1013, 5001, b"dddd"),  # 1009..1013 never captured
    ]
    _, recorder = run(frames)
    assert recorder.calls == [
        (0, b"aaaa", 1.02, first + 1),
        (0, b"bbbb", 1.02, first + 1),
        (0, b"dddd", 1.03, first + 2),
    ]


def test_buffer_cap_gives_up_the_hole() -> None:
    config = replace(FlowConfig(), max_reassembly_bytes=10)
    frames = handshake() + [
        tcp(1.01, True, "PA", 1011, 5001, b"x" * 8),  # hole 1001..1011
        tcp(1.02, True, "PA", 1019, 5001, b"y" * 8),  # over the cap
    ]
    table, recorder = run(frames, config)
    flow_id = table.records[0].flow_id
    assert "tcp.reassembly_buffer_full" in [a.code for a in table.anomalies]
    assert bytes(recorder.data[(flow_id, 0)]) == b"x" * 8 + b"y" * 8
    assert recorder.gaps[0] == (flow_id, 0, 10)


def test_sequence_wrap_and_midstream_pickup() -> None:
    isn = 2**32 - 6
    frames = handshake(isn_c=isn) + [
        tcp(1.01, True, "PA", isn + 1, 5001, b"01234567"),  # wraps inside this segment
        tcp(1.02, True, "PA", (isn + 9) % 2**32, 5001, b"89"),
    ]
    table, recorder = run(frames)
    assert bytes(recorder.data[(table.records[0].flow_id, 0)]) == b"0123456789"
    # No handshake: the first data segment starts the stream.
    table, recorder = run([tcp(1.0, True, "PA", 777, 1, b"mid"), tcp(1.1, True, "PA", 780, 1, b"dle")])
    record = table.records[0]
    assert record.state == "midstream" and record.orientation == "first_packet"
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"middle"


def test_unfilled_hole_flushed_at_end_with_gap() -> None:
    frames = handshake() + [tcp(1.01, True, "PA", 1005, 5001, b"late")]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert recorder.gaps == [(flow_id, 0, 4)]
    assert bytes(recorder.data[(flow_id, 0)]) == b"late"


def test_seq_diff_serial_arithmetic() -> None:
    assert seq_diff(5, 2**32 - 5) == 10
    assert seq_diff(2**32 - 5, 5) == -10
    stream = TcpStream()
    out: list[Chunk] = []
    stream.syn(2**32 - 1)
    assert stream.next_seq == 0
    stream.add(0, b"ab", 100, out, 1.5, 7)
    assert out == [(0, b"ab", 1.5, 7)]


def test_a_second_source_mac_partway_through_a_flow_is_reported_once() -> None:
    # A station in the middle: the client's segments, then the same segments relayed by it (as a
    # SPAN port sees them), then the server's answer relayed too.
    relay = "b8:27:eb:00:00:66"

    def relayed(frame: tuple[float, bytes], ts: float) -> tuple[float, bytes]:
        packet = Ether(frame[1])
        packet.src = relay
        return ts, bytes(packet)

    first = tcp(1.01, True, "PA", 1001, 5001, b"12345678")
    answer = tcp(1.03, False, "PA", 5001, 1009, b"abcd")
    frames = [*handshake(), first, relayed(first, 1.011), answer, relayed(answer, 1.031)]
    table, recorder = run(frames)
    [anomaly, copies] = table.anomalies
    assert anomaly.code == "flow.source_mac_changed" and anomaly.frame == 5
    # The relayed segments are the same packets seen again (same IPv4 id within 5 ms).
    assert copies.code == "tcp.mirror_copies" and table.records[0].mirror_copies_to_server == 1
    assert (anomaly.src_ip, anomaly.dst_ip, anomaly.direction) == (C, S, "to_server")
    assert anomaly.detail == f"source MAC {relay} after {MAC_C} (the first packet's)"
    assert anomaly.severity == "medium"
    # The bytes are delivered once.
    assert bytes(recorder.data[(table.records[0].flow_id, 0)]) == b"12345678"
    # The server's first packet sets its direction's MAC; one MAC per direction is quiet.
    table, _ = run([*handshake(), first, answer])
    assert table.anomalies == []


def test_dhcp_discovers_of_two_clients_are_not_a_relayed_flow() -> None:
    # Every client says 0.0.0.0:68 -> 255.255.255.255:67: one flow, many stations, no relay.
    discovers = [
        (
            1.0 + i,
            bytes(
                Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                / IP(src="0.0.0.0", dst="255.255.255.255")
                / UDP(sport=68, dport=67)
                / Raw(b"x" * 20)
            ),
        )
        for i, mac in enumerate((MAC_C, MAC_S, "00:0e:8c:00:00:03"))
    ]
    table, _ = run(discovers)
    assert table.anomalies == [] and len(table.records) == 1


# -- UDP copies made by the mirroring ------------------------------------------------------------


def udp_id(ts: float, client: bool, data: bytes, ident: int, v6: bool = False) -> tuple[float, bytes]:
    """A DNP3-over-UDP-like datagram with an explicit IPv4 id (or IPv6)."""
    src, dst = (C, S) if client else (S, C)
    sp, dp = (40000, 20000) if client else (20000, 40000)
    if v6:
        src, dst = ("2001:db8::10", "2001:db8::20") if client else ("2001:db8::20", "2001:db8::10")
        network = IPv6(src=src, dst=dst)
    else:
        network = IP(src=src, dst=dst, id=ident)
    return ts, bytes(Ether(src=MAC_C, dst=MAC_S) / network / UDP(sport=sp, dport=dp) / Raw(data))


def test_udp_copies_made_by_the_mirroring_are_counted_not_delivered() -> None:
    frames = [
        udp_id(1.0, True, b"request-1", 7),
        udp_id(1.00002, True, b"request-1", 7),  # the SPAN's copy
        udp_id(1.01, False, b"answer-1", 90),
        udp_id(1.0101, False, b"answer-1", 90),
        udp_id(2.0, True, b"request-1", 8),  # the same request again, sent again: another id
        udp_id(2.00001, True, b"request-1", 8),
        udp_id(3.0, True, b"request-1", 8),  # same id, a second later: not a copy
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert (record.packets_to_server, record.packets_to_client) == (5, 2)  # the wire as captured
    assert (record.payload_bytes_to_server, record.payload_bytes_to_client) == (27, 8)  # as sent
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1" * 3
    assert bytes(recorder.data[(record.flow_id, 1)]) == b"answer-1"
    (anomaly,) = [a for a in table.anomalies if a.code == "udp.mirror_copies"]
    assert anomaly.severity == "info" and anomaly.detail.startswith("3 datagrams repeated within 5 ms")
    assert (anomaly.src_ip, anomaly.dst_port, anomaly.flow_id) == (C, 20000, record.flow_id)


def test_a_datagram_differing_from_the_last_is_no_copy() -> None:
    frames = [
        udp_id(1.0, True, b"request-1", 7),
        udp_id(1.0001, True, b"request-2", 7),  # same id, other payload (a stack that reuses ids)
        udp_id(1.0002, True, b"request-2", 8),  # same payload, other id
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1" + b"request-2" * 2
    assert not [a for a in table.anomalies if a.code == "udp.mirror_copies"]


def test_at_most_three_copies_of_one_datagram_are_dropped() -> None:
    frames = [udp_id(1.0 + i * 0.0001, True, b"flood", 1) for i in range(9)]  # a tool with a fixed id
    table, recorder = run(frames)
    (record,) = table.records
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"flood" * 3  # frames 1, 5, 9
    assert record.packets_to_server == 9


def test_ipv6_copies_are_matched_by_payload_and_time() -> None:
    frames = [udp_id(1.0, True, b"q", 0, v6=True), udp_id(1.000003, True, b"q", 0, v6=True)]
    table, recorder = run(frames)
    (record,) = table.records
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"q" and record.packets_to_server == 2


def test_copy_window_zero_hands_every_datagram_over() -> None:
    frames = [udp_id(1.0, True, b"request-1", 7), udp_id(1.00002, True, b"request-1", 7)]
    table, recorder = run(frames, replace(FlowConfig(), mirror_copy_window=0.0))
    (record,) = table.records
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1" * 2
    assert not table.anomalies


# -- TCP copies made by the mirroring ------------------------------------------------------------


def tcp_id(
    ts: float, client: bool, flags: str, seq: int, ack: int = 0, data: bytes = b"", ident: int = 1
) -> tuple[float, bytes]:
    """A segment on port 502 with an explicit IPv4 id (0: a stack that sends none)."""
    src, dst, smac, dmac = (C, S, MAC_C, MAC_S) if client else (S, C, MAC_S, MAC_C)
    sp, dp = (40000, 502) if client else (502, 40000)
    frame = (
        Ether(src=smac, dst=dmac)
        / IP(src=src, dst=dst, id=ident)
        / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack)
    )
    return ts, bytes(frame / Raw(data) if data else frame)


def twice(frames: list[tuple[float, bytes]], after: float = 0.00002) -> list[tuple[float, bytes]]:
    """Every frame followed by its copy ``after`` seconds later, as a SPAN of both ports of a path delivers."""
    return [copy for ts, frame in frames for copy in ((ts, frame), (ts + after, frame))]


def modbus_session() -> list[tuple[float, bytes]]:
    """Handshake, two request/response exchanges, an orderly close; each host counts its own ids."""
    return [
        tcp_id(1.0, True, "S", 100, ident=11),
        tcp_id(1.001, False, "SA", 500, 101, ident=71),
        tcp_id(1.002, True, "A", 101, 501, ident=12),
        tcp_id(1.003, True, "PA", 101, 501, b"request-1", ident=13),
        tcp_id(1.004, False, "PA", 501, 110, b"answer-1", ident=72),
        tcp_id(1.005, True, "PA", 110, 509, b"request-2", ident=14),
        tcp_id(1.006, False, "PA", 509, 119, b"answer-2", ident=73),
        tcp_id(1.007, True, "FA", 119, 517, ident=15),
        tcp_id(1.008, False, "FA", 517, 120, ident=74),
        tcp_id(1.009, True, "A", 120, 518, ident=16),
    ]


def test_tcp_copies_made_by_the_mirroring_are_neither_retransmissions_nor_delivered_twice() -> None:
    once, _ = run(modbus_session())
    table, recorder = run(twice(modbus_session()))
    (single,) = once.records
    (record,) = table.records
    # The wire as captured, the copies counted beside it; nothing else tells the two runs apart.
    assert (record.packets_to_server, record.packets_to_client) == (12, 8)
    assert (record.mirror_copies_to_server, record.mirror_copies_to_client) == (6, 4)
    assert (record.packets_sent(0), record.packets_sent(1)) == (
        single.packets_to_server,
        single.packets_to_client,
    )
    assert record.retransmissions == 0 and record.state == single.state == "closed"
    assert (
        (record.payload_bytes_to_server, record.payload_bytes_to_client)
        == (
            single.payload_bytes_to_server,
            single.payload_bytes_to_client,
        )
        == (18, 16)
    )
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1request-2"
    assert bytes(recorder.data[(record.flow_id, 1)]) == b"answer-1answer-2"
    (anomaly,) = [a for a in table.anomalies if a.code == "tcp.mirror_copies"]
    assert anomaly.severity == "info" and anomaly.detail.startswith("10 segments repeated within 5 ms")
    assert not once.anomalies and single.mirror_copies_to_server == single.mirror_copies_to_client == 0
    # The first payload each way is the original's frame, in the doubled capture too.
    assert (single.first_payload_frame_to_server, single.first_payload_frame_to_client) == (4, 5)
    assert (record.first_payload_frame_to_server, record.first_payload_frame_to_client) == (7, 9)


def test_a_retransmission_is_no_copy() -> None:
    frames = modbus_session()[:5]
    # The request again after a retransmission timeout (same bytes; an id of its own, as stacks
    # number every packet), and one that even kept the id: both retransmissions, neither a copy.
    frames += [
        tcp_id(1.25, True, "PA", 101, 501, b"request-1", ident=14),
        tcp_id(1.75, True, "PA", 101, 501, b"request-1", ident=14),
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert record.retransmissions == 2 and record.mirror_copies_to_server == 0
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1"
    assert not [a for a in table.anomalies if a.code == "tcp.mirror_copies"]


def test_a_segment_differing_from_the_last_is_no_copy() -> None:
    frames = modbus_session()[:4] + [
        tcp_id(1.0031, True, "PA", 110, 501, b"request-2", ident=13),  # same id, next data
        tcp_id(1.0032, True, "PA", 110, 502, b"request-2", ident=13),  # same id and seq, other ack
    ]
    table, _ = run(frames)
    (record,) = table.records
    assert record.mirror_copies_to_server == 0 and record.retransmissions == 1


def test_duplicate_acks_without_an_ip_id_are_no_copies() -> None:
    # A stack that sends IPv4 id 0: two ACKs alike within the window are what a receiver missing
    # a segment sends (duplicate ACKs), not copies.  A data segment alike within the window is one: no
    # stack retransmits that soon.
    frames = [
        tcp_id(1.0, True, "S", 100, ident=0),
        tcp_id(1.001, False, "SA", 500, 101, ident=0),
        tcp_id(1.002, True, "A", 101, 501, ident=0),
        tcp_id(1.0021, True, "A", 101, 501, ident=0),
        tcp_id(1.003, True, "PA", 101, 501, b"request-1", ident=0),
        tcp_id(1.00301, True, "PA", 101, 501, b"request-1", ident=0),
    ]
    table, recorder = run(frames)
    (record,) = table.records
    assert (record.mirror_copies_to_server, record.retransmissions) == (1, 0)
    assert bytes(recorder.data[(record.flow_id, 0)]) == b"request-1"


def test_a_mirrored_knock_is_still_a_knock() -> None:
    # A SYN accepted then reset (a connect scan's knock, three packets), each seen twice: still
    # a knock, and a refused one as well; the six packets stay in the counts.
    accepted = twice(
        [
            tcp_id(1.0, True, "S", 100, ident=21),
            tcp_id(1.001, False, "SA", 500, 101, ident=0),
            tcp_id(1.002, True, "R", 101, ident=22),
        ]
    )
    table, _ = run(accepted)
    (record,) = table.records
    assert (record.packets_to_server, record.packets_sent(0), record.state) == (4, 2, "reset")
    assert is_tcp_knock(record) and is_probe(record)
    # The server's SYN-ACK carries id 0 (Linux does for it): without payload it is not taken for a
    # copy, so the client side's two copies are all the flow drops.
    assert (record.mirror_copies_to_server, record.mirror_copies_to_client) == (2, 0)
    refused, _ = run(
        twice([tcp_id(1.0, True, "S", 100, ident=31), tcp_id(1.001, False, "RA", 0, 101, ident=0)])
    )
    (record,) = refused.records
    assert record.state == "rejected" and is_tcp_knock(record)


def test_each_record_of_a_long_mirrored_flow_counts_its_own_copies() -> None:
    # A poll every 5 s for 300 s, each request seen twice: the active timeout cuts the flow into
    # records, and every record's copies are within its own packets (packets_sent never below 0);
    # the anomaly at the end counts the whole flow.
    config = FlowConfig(active_timeout=100.0)
    polls = [udp_id(float(t), True, b"poll", t + 1) for t in range(0, 300, 5)]
    table, _ = run(twice(polls), config)
    records = table.records
    assert len(records) >= 3 and [r.end_reason for r in records][-1] == "end_of_capture"
    for record in records:
        assert record.mirror_copies_to_server * 2 == record.packets_to_server
        assert record.packets_sent(0) == record.mirror_copies_to_server > 0
    assert sum(r.mirror_copies_to_server for r in records) == len(polls)
    (anomaly,) = [a for a in table.anomalies if a.code == "udp.mirror_copies"]
    assert anomaly.detail.startswith(f"{len(polls)} datagrams repeated")
    assert anomaly.direction == "to_server"
    # Five copies to the server in the first record, three to the client in the last: the anomaly
    # at the end names the direction most of the whole flow's copies went, not the last record's.
    answers = [udp_id(float(t) + 0.5, False, b"value", t + 500) for t in range(0, 300, 5)]
    table, _ = run(sorted([*twice(polls[:5]), *polls[5:], *twice(answers[-3:])], key=lambda f: f[0]), config)
    assert [(r.mirror_copies_to_server, r.mirror_copies_to_client) for r in table.records][-1] == (0, 3)
    (anomaly,) = [a for a in table.anomalies if a.code == "udp.mirror_copies"]
    assert anomaly.direction == "to_server" and anomaly.detail.startswith("8 datagrams repeated")
    # Two to the server, five to the client: to the client.
    table, _ = run(sorted([*twice(polls[:2]), *polls[2:], *twice(answers[-5:])], key=lambda f: f[0]), config)
    (anomaly,) = [a for a in table.anomalies if a.code == "udp.mirror_copies"]
    assert anomaly.direction == "to_client" and anomaly.detail.startswith("7 datagrams repeated")


def test_udp_copies_are_told_apart_after_the_dissector_gave_up() -> None:
    """A flow no longer dissected (its dissector gave up, or it has none) still counts a copy as a
    copy: packets as captured, payload as sent, so ICS-3008 reads the same bytes on a doubled SPAN."""

    class GivesUp(Recorder):
        def payload(self, flow: Flow, direction: int, data: bytes, ts: float, frame: int) -> None:
            super().payload(flow, direction, data, ts, frame)
            flow.deliver = False  # as the pipeline does once the flow's dissector is done

    table = FlowTable(FlowConfig(), GivesUp())
    decoder = Decoder()
    frames = twice([udp_id(1.0 + i, True, b"twelve bytes", 40 + i) for i in range(5)])
    for number, (ts, frame) in enumerate(frames, start=1):
        pkt = decoder.decode(number, ts, 1, frame, len(frame))
        assert pkt is not None
        table.process(pkt)
    table.flush()
    (record,) = table.records
    assert (record.packets_to_server, record.mirror_copies_to_server) == (10, 5)
    assert record.payload_bytes_to_server == 5 * 12 and record.packets_sent(0) == 5
