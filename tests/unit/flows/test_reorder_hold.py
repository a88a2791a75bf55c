"""A segment that acknowledges bytes of the other direction not captured yet waits for them.

A SPAN port mirroring a link's two directions through separate queues can deliver an answer
ahead of its question; the flow table hands each side on in the order the hosts saw it.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ics_monitor.decode import Decoder
from ics_monitor.flows import FlowConfig, FlowTable
from ics_monitor.flows.table import REORDER_HOLD, REORDER_HOLD_MAX

from .test_flow_table import C, Recorder, handshake, run, tcp


def feed(table: FlowTable, frames: list[tuple[float, bytes]], each: Any = None) -> None:
    """Decode and process ``frames`` in turn (``each(number)`` after each); no flush."""
    decoder = Decoder()
    for number, (ts, frame) in enumerate(frames, start=1):
        pkt = decoder.decode(number, ts, 1, frame, len(frame))
        assert pkt is not None
        table.process(pkt)
        if each is not None:
            each(number)


def order(recorder: object) -> list[tuple[int, bytes]]:
    return [(direction, data) for direction, data, _ts, _frame in recorder.calls]  # type: ignore[attr-defined]


def test_an_answer_captured_before_its_question_is_handed_on_after_it() -> None:
    frames = handshake() + [
        tcp(1.0100, False, "PA", 5001, 1005, b"RSP1"),  # acknowledges the question not seen yet
        tcp(1.0101, True, "PA", 1001, 5001, b"REQ1"),
        tcp(1.0200, True, "PA", 1005, 5005, b"REQ2"),
        tcp(1.0201, False, "PA", 5005, 1009, b"RSP2"),
    ]
    table, recorder = run(frames)
    assert order(recorder) == [(0, b"REQ1"), (1, b"RSP1"), (0, b"REQ2"), (1, b"RSP2")]
    # The answer is completed by the question it waited for, as a segment held behind a hole is
    # by the one that fills it: its records name that frame, so they keep to capture order.
    assert [call[3] for call in recorder.calls] == [5, 5, 6, 7]
    assert recorder.calls[1][2] == 1.0101
    assert table.anomalies == [] and recorder.gaps == []


def test_what_follows_a_waiting_answer_that_way_waits_too_in_order() -> None:
    frames = handshake() + [
        tcp(1.0100, False, "PA", 5001, 1005, b"RSP1"),
        tcp(1.0102, False, "PA", 5005, 1005, b"MORE"),
        tcp(1.0103, True, "PA", 1001, 5001, b"REQ1"),
    ]
    _, recorder = run(frames)
    assert order(recorder) == [(0, b"REQ1"), (1, b"RSP1"), (1, b"MORE")]


def test_in_order_traffic_and_an_acknowledged_fin_are_never_held() -> None:
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"REQ1"),
        tcp(1.02, False, "PA", 5001, 1005, b"RSP1"),
        tcp(1.03, False, "FA", 5005, 1005),
        # The server's FIN took a sequence number: 5006 acknowledges it, no byte is missing.
        tcp(1.04, True, "PA", 1005, 5006, b"LATE"),
        tcp(1.05, False, "R", 5006),
    ]
    table, recorder = run(frames)
    assert order(recorder) == [(0, b"REQ1"), (1, b"RSP1"), (0, b"LATE")]
    assert [call[2] for call in recorder.calls] == [1.01, 1.02, 1.04]
    assert table._holding == {}


def test_a_question_lost_from_the_capture_is_given_up_when_the_next_one_shows_it() -> None:
    frames = handshake() + [
        # REQ1 (1001..1004) never captured; its answer acknowledges it.
        tcp(1.01, False, "PA", 5001, 1005, b"RSP1"),
        tcp(1.02, True, "A", 1005, 5005),  # the client's own acknowledgment: seq past the hole
        tcp(1.02 + REORDER_HOLD + 0.1, True, "PA", 1005, 5005, b"REQ2"),
        tcp(1.03 + REORDER_HOLD + 0.1, False, "PA", 5005, 1009, b"RSP2"),
    ]
    table, recorder = run(frames)
    # The loss first, then the answer to the lost question, then the rest in order.
    flow_id = table.records[0].flow_id
    assert recorder.gaps == [(flow_id, 0, 4)]
    assert order(recorder) == [(1, b"RSP1"), (0, b"REQ2"), (1, b"RSP2")]
    assert [a.code for a in table.anomalies] == ["tcp.reassembly_gap"]


def test_a_bare_acknowledgment_past_the_hole_shows_the_loss_after_the_wait() -> None:
    frames = handshake() + [
        tcp(1.01, False, "PA", 5001, 1005, b"RSP1"),  # REQ1 lost
        tcp(1.02, True, "A", 1005, 5005),  # within the wait: not yet taken as evidence
        tcp(1.02 + REORDER_HOLD, True, "A", 1005, 5005),  # the client is past REQ1: it was sent
        tcp(1.03 + REORDER_HOLD, True, "PA", 1005, 5005, b"REQ2"),
    ]
    table, recorder = run(frames)
    flow_id = table.records[0].flow_id
    assert recorder.gaps == [(flow_id, 0, 4)]
    assert order(recorder) == [(1, b"RSP1"), (0, b"REQ2")]
    # The answer went out at the acknowledgment that showed the loss, with its own frame.
    assert recorder.calls[0][3] == 4


def test_later_data_behind_the_hole_gives_it_up_after_the_wait() -> None:
    frames = handshake() + [
        tcp(1.01, False, "PA", 5001, 1005, b"RSP1"),  # REQ1 lost
        tcp(1.02, True, "PA", 1005, 5005, b"REQ2"),  # held behind the hole
        tcp(1.03 + REORDER_HOLD, False, "A", 5005, 1005),
        tcp(1.04 + REORDER_HOLD, False, "PA", 5005, 1009, b"RSP2"),
    ]
    table, recorder = run(frames)
    # The answer to the lost question goes out where the hole ends: before the next question.
    assert order(recorder) == [(1, b"RSP1"), (0, b"REQ2"), (1, b"RSP2")]
    assert recorder.gaps == [(table.records[0].flow_id, 0, 4)]


def test_an_acknowledgment_alone_gives_no_bytes_up_and_the_wait_is_bounded() -> None:
    # One forged answer acknowledging 1,000 bytes the client never sent must not make the monitor
    # skip the client's real bytes: they come in order, and the answer goes out in the end.
    frames = handshake() + [
        tcp(1.01, False, "PA", 5001, 2001, b"FORGED"),
        tcp(1.02, True, "PA", 1001, 5001, b"REAL"),
        tcp(1.02 + REORDER_HOLD_MAX + 1, True, "PA", 1005, 5001, b"WRITE"),
    ]
    table, recorder = run(frames)
    assert bytes(recorder.data[(table.records[0].flow_id, 0)]) == b"REALWRITE"
    assert recorder.gaps == []
    assert order(recorder) == [(0, b"REAL"), (1, b"FORGED"), (0, b"WRITE")]


def test_the_sweep_releases_a_wait_on_a_quiet_flow() -> None:
    frames = handshake() + [
        tcp(1.01, False, "PA", 5001, 1005, b"RSP1"),
        tcp(1.02, True, "PA", 1005, 5005, b"REQ2"),  # behind the hole of a lost REQ1
        # Another flow moves the clock on; this one stays quiet.
        tcp(1.03 + REORDER_HOLD + 2, True, "S", 7000, sport=40001),
    ]
    recorder = Recorder()
    table = FlowTable(FlowConfig(), recorder)

    def still_waiting(number: int) -> None:
        if number == 5:
            assert recorder.calls == [] and table._holding

    feed(table, frames, still_waiting)
    # Released by the sweep, with no flush and no packet of its own.
    assert order(recorder) == [(1, b"RSP1"), (0, b"REQ2")]
    assert recorder.calls[0][3] == 4 and not table._holding


def test_data_given_up_on_behind_a_hole_splits_at_what_the_packet_acknowledges() -> None:
    # The server's answer acknowledges the client's bytes up to 1013: those held past the lost
    # ones came before it, the client's later bytes after it.
    frames = handshake() + [
        tcp(1.01, True, "PA", 1001, 5001, b"aaaa"),
        # 1005..1008 never captured
        tcp(1.03, True, "PA", 1009, 5001, b"cccc"),
        tcp(1.04, True, "PA", 1013, 5001, b"dddd"),
        tcp(1.05, False, "PA", 5001, 1013, b"RSP"),
    ]
    table, recorder = run(frames)
    assert order(recorder) == [(0, b"aaaa"), (0, b"cccc"), (1, b"RSP"), (0, b"dddd")]
    assert recorder.gaps == [(table.records[0].flow_id, 0, 4)]


class _Stream:
    """A FlowHandler noting each direction's bytes and gaps in the order they are handed on."""

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[int, bytes]]] = {0: [], 1: []}
        self.order: list[int] = []

    def flow_started(self, flow: Any) -> None:
        pass

    def payload(self, flow: Any, direction: int, data: bytes, ts: float, frame: int) -> None:
        self.parts[direction].append((0, bytes(data)))
        self.order.append(direction)

    def gap(self, flow: Any, direction: int, size: int) -> None:
        self.parts[direction].append((size, b""))

    def cut_datagram(self, flow: Any, direction: int, data: bytes, cut: int, ts: float, frame: int) -> None:
        pass

    def flow_ended(self, flow: Any, reason: str) -> None:
        pass


def _exchange(rounds: int, sizes: list[int]) -> tuple[list[tuple[float, bytes]], bytes, bytes]:
    """A request-answer session: each side acknowledges what it got before it sends."""
    frames = list(handshake())
    client, server = 1001, 5001
    sent_c, sent_s = b"", b""
    ts = 1.01
    for number in range(rounds):
        question = bytes([65 + number % 26]) * sizes[number % len(sizes)]
        answer = bytes([97 + number % 26]) * sizes[(number + 1) % len(sizes)]
        frames.append(tcp(ts, True, "PA", client, server, question))
        client += len(question)
        sent_c += question
        frames.append(tcp(ts + 0.0001, False, "PA", server, client, answer))
        server += len(answer)
        sent_s += answer
        ts += 0.05
    return frames, sent_c, sent_s


def _from_client(frame: tuple[float, bytes]) -> bool:
    return frame[1][26:30] == bytes(int(part) for part in C.split("."))


@settings(max_examples=int(os.environ.get("ICS_FUZZ_EXAMPLES", "200")), deadline=None)
@given(
    st.integers(2, 12),
    st.lists(st.integers(1, 40), min_size=1, max_size=4),
    st.lists(st.integers(3, 30), max_size=6),
    st.lists(st.integers(3, 30), max_size=3),
)
# Found by this test (2026-12-06): the server's answer held for a lost client request, then a
# later answer let out by the client's acknowledgment went out ahead of it, its gap in its place.
@example(rounds=6, sizes=[1], swaps=[13], drops=[9, 11, 12])
def test_reordered_or_lossy_sessions_keep_each_direction_whole_and_in_place(
    rounds: int, sizes: list[int], swaps: list[int], drops: list[int]
) -> None:
    """Whatever frames a SPAN delivers ahead of the other direction's and whatever it drops, each
    direction's bytes come out in stream order, at their place (a loss as a gap of its size),
    nothing twice, nothing held after the end; with swaps alone, every byte of both directions.
    A SPAN keeps each direction's own order (a queue per direction): it swaps frames of opposite
    directions only."""
    frames, sent_c, sent_s = _exchange(rounds, sizes)
    captured = list(frames)
    for at in swaps:
        if at + 1 < len(captured) and _from_client(captured[at]) != _from_client(captured[at + 1]):
            captured[at], captured[at + 1] = captured[at + 1], captured[at]
    lossy = [frame for index, frame in enumerate(captured) if index not in set(drops)]
    for shown, whole in ((captured, True), (lossy, not drops)):
        handler = _Stream()
        table = FlowTable(FlowConfig(), handler)
        feed(table, shown)
        table.flush()
        assert not table._holding and not table._twins
        for direction, sent in ((0, sent_c), (1, sent_s)):
            position = 0
            for gap, data in handler.parts[direction]:
                position += gap
                assert sent[position : position + len(data)] == data
                position += len(data)
            assert position <= len(sent)
            if whole:
                assert b"".join(data for _, data in handler.parts[direction]) == sent
