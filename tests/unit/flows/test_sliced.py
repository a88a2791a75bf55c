"""Segments cut by the capture's snap length: stepped over at once, counted apart from lost bytes."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from ics_monitor.decode import Decoder
from ics_monitor.flows import FlowConfig, FlowTable
from tests.unit.flows.test_flow_table import C, Recorder, S, handshake, tcp, udp

HEADERS = 14 + 20 + 20  # Ethernet, IPv4, TCP without options


def run_cut(
    frames: list[tuple[float, bytes]], snaplen: dict[int, int]
) -> tuple[FlowTable, Recorder, list[tuple[str, int, object]]]:
    """Decode and account ``frames``, the ones numbered in ``snaplen`` cut to that many bytes.

    Returns the table, the recorder and, in call order, ("data", direction, bytes) and ("gap",
    direction, size) as the handler received them.
    """
    calls: list[tuple[str, int, object]] = []

    class Ordered(Recorder):
        def payload(self, flow, direction, data, ts, frame):  # type: ignore[no-untyped-def]
            super().payload(flow, direction, data, ts, frame)
            calls.append(("data", direction, bytes(data)))

        def gap(self, flow, direction, size):  # type: ignore[no-untyped-def]
            super().gap(flow, direction, size)
            calls.append(("gap", direction, size))

    recorder = Ordered()
    table = FlowTable(FlowConfig(), recorder)
    decoder = Decoder()
    for number, (ts, frame) in enumerate(frames, start=1):
        data = frame[: snaplen[number]] if number in snaplen else frame
        pkt = decoder.decode(number, ts, 1, data, len(frame))
        assert pkt is not None
        table.process(pkt)
    table.flush()
    return table, recorder, calls


def test_a_cut_segment_is_stepped_over_at_once_and_the_next_one_follows() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"A" * 30),  # frame 4: cut to 10 payload bytes
        tcp(1.02, True, "PA", 1031, 5001, b"B" * 8),  # continues right after the cut bytes
    ]
    table, _recorder, calls = run_cut(frames, {4: HEADERS + 10})
    assert calls == [("data", 0, b"A" * 10), ("gap", 0, 20), ("data", 0, b"B" * 8)]
    record = table.records[0]
    assert record.sliced_bytes == 20
    assert record.missed_bytes == 0  # nothing was lost: the capture kept less of it
    codes = [a.code for a in table.anomalies]
    assert codes == ["flow.sliced"]  # once, at the flow's end; no reassembly gap
    assert (
        "1 segment cut by the capture's snap length" in table.anomalies[0].detail
        and "20 payload bytes" in table.anomalies[0].detail
    )
    assert table.anomalies[0].severity == "info"


def test_every_cut_counts_and_a_whole_capture_reports_nothing() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"A" * 30),
        tcp(1.02, False, "PA", 5001, 1031, b"R" * 40),
        tcp(1.03, True, "PA", 1031, 5041, b"C" * 30),
    ]
    table, _recorder, calls = run_cut(frames, {4: HEADERS + 12, 5: HEADERS + 12, 6: HEADERS + 12})
    assert [c for c in calls if c[0] == "gap"] == [("gap", 0, 18), ("gap", 1, 28), ("gap", 0, 18)]
    assert table.records[0].sliced_bytes == 64
    (anomaly,) = table.anomalies
    assert anomaly.code == "flow.sliced" and "3 segments cut" in anomaly.detail
    whole, _recorder, _calls = run_cut(frames, {})
    assert whole.records[0].sliced_bytes == 0 and whole.anomalies == []


def test_a_cut_right_after_the_tcp_header_still_advances_the_stream() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"A" * 30),
        tcp(1.02, True, "PA", 1031, 5001, b"B" * 8),
    ]
    table, _recorder, calls = run_cut(frames, {4: HEADERS})
    assert calls == [("gap", 0, 30), ("data", 0, b"B" * 8)]
    assert table.records[0].sliced_bytes == 30


def test_a_retransmitted_cut_segment_does_not_step_twice() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"A" * 30),
        tcp(1.02, True, "PA", 1001, 5001, b"A" * 30),  # the same segment again, cut again
        tcp(1.03, True, "PA", 1031, 5001, b"B" * 8),
    ]
    table, _recorder, calls = run_cut(frames, {4: HEADERS + 10, 5: HEADERS + 10})
    assert calls == [("data", 0, b"A" * 10), ("gap", 0, 20), ("data", 0, b"B" * 8)]
    assert table.records[0].sliced_bytes == 20
    assert table.records[0].retransmissions == 1


def test_a_cut_segment_held_out_of_order_leaves_an_ordinary_gap() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1011, 5001, b"B" * 30),  # ahead of the stream, and cut
        tcp(1.02, True, "PA", 1001, 5001, b"A" * 10),  # fills the hole before it
        tcp(1.03, False, "A", 5001, 1041),  # the server acknowledges everything
        tcp(1.04, True, "PA", 1041, 5001, b"C" * 4),
    ]
    table, _recorder, calls = run_cut(frames, {4: HEADERS + 10})
    assert calls == [("data", 0, b"A" * 10), ("data", 0, b"B" * 10), ("gap", 0, 20), ("data", 0, b"C" * 4)]
    record = table.records[0]
    assert record.missed_bytes == 20 and record.sliced_bytes == 0
    assert [a.code for a in table.anomalies] == ["tcp.reassembly_gap"]


def test_the_decoder_says_how_much_of_the_datagram_was_cut() -> None:
    decoder = Decoder()
    v4 = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=502) / Raw(b"x" * 100))
    pkt = decoder.decode(1, 0.0, 1, v4[:70], len(v4))
    assert pkt is not None and pkt.truncated and pkt.cut == 84 and pkt.payload == b"x" * 16
    whole = decoder.decode(2, 0.0, 1, v4, len(v4))
    assert whole is not None and whole.cut == 0 and not whole.truncated
    v6 = bytes(
        Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=1, dport=502) / Raw(b"y" * 50)
    )
    pkt6 = decoder.decode(3, 0.0, 1, v6[:100], len(v6))
    assert pkt6 is not None and pkt6.cut == len(v6) - 100 and pkt6.payload == b"y" * 26


def test_a_cut_datagram_goes_to_the_handler_with_its_missing_length() -> None:
    frames = [udp(1.0, True, b"Q" * 40, dport=20000), udp(1.1, False, b"R" * 12, dport=20000)]
    recorder = Recorder()
    table = FlowTable(FlowConfig(), recorder)
    decoder = Decoder()
    for number, (ts, frame) in enumerate(frames, start=1):
        data = frame[: 14 + 20 + 8 + 15] if number == 1 else frame
        pkt = decoder.decode(number, ts, 1, data, len(frame))
        assert pkt is not None
        table.process(pkt)
    table.flush()
    flow_id = table.records[0].flow_id
    assert recorder.cuts == [(flow_id, 0, 25)]
    assert bytes(recorder.data[(flow_id, 0)]) == b"Q" * 15 and bytes(recorder.data[(flow_id, 1)]) == b"R" * 12
    assert table.records[0].sliced_bytes == 25
    (anomaly,) = table.anomalies
    assert anomaly.code == "flow.sliced" and anomaly.detail.startswith(
        "1 datagram cut by the capture's snap length"
    )


def test_frames_cut_inside_their_headers_are_counted_not_reported() -> None:
    decoder = Decoder()
    frame = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=502) / Raw(b"x" * 100))
    for number, keep in enumerate((10, 20, 40, 50), start=1):  # link, IP, TCP header cut
        assert decoder.decode(number, 0.0, 1, frame[:keep], len(frame)) is None
    assert decoder.cut_headers == 4 and decoder.anomalies == []
    # The same bytes as a whole frame of that length are malformed: reported, not counted.
    assert decoder.decode(5, 0.0, 1, frame[:40], 40) is None
    assert decoder.cut_headers == 4
    assert [a.code for a in decoder.anomalies] == ["ipv4.truncated", "tcp.truncated"]


def test_a_segment_cut_inside_its_tcp_options_still_moves_its_flow() -> None:
    options = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]  # a 32-byte header, as Linux sends

    def segment(ts: float, seq: int, data: bytes) -> tuple[float, bytes]:
        packet = (
            Ether()
            / IP(src=C, dst=S)
            / TCP(sport=40000, dport=7777, flags="PA", seq=seq, ack=5001, options=options)
        )
        return ts, bytes(packet / Raw(data))

    frames = handshake() + [segment(1.01, 1001, b"A" * 30), segment(1.02, 1031, b"B" * 8)]
    table, _recorder, calls = run_cut(frames, {4: HEADERS + 6})  # 6 of the 12 option bytes kept
    assert calls == [("gap", 0, 30), ("data", 0, b"B" * 8)]
    assert table.records[0].sliced_bytes == 30 and table.records[0].packets_to_server == 4
