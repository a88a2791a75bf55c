"""ICS-5014: a server answering a kind of request much slower than it did while learning.

A PLC, RTU or gateway answers the same request in about the same time, scan cycle after scan
cycle: the baseline learns, per conversation and response key (``baseline.response_key``: the
function, and the Modbus unit or DNP3 outstation it addressed; S7comm jobs and userdata, and
S7comm-plus requests, by their function), the median of every 8 answers in a row and the band
those medians kept (``response_time`` in the YAML).  Enforcing, each answer's
delay (from its own request: the dissectors pair them, ``request_frame``) joins the last 8 of its
key; when their lower median (5 of the 8 took that long or longer) passes ``max_ratio`` times the top of the learned band, and that top by
``min_seconds``, the alert names the conversation and what slowed.

Why: a man in the middle that holds each frame before passing it on (an attacker relaying between
HMI and PLC to read or rewrite it) adds its delay to every answer the sensor sees on the HMI's
side; a device whose CPU is swamped (a flood, a scan, an overloaded gateway) answers late before
it stops answering.  Exception and error answers are left out (a gateway's "target failed to
respond" comes after its own timeout), and so are answers whose request was not seen.  S7comm-plus
answers are all timed: their return value is not decoded, and an error answer, which comes no
later than a good one, can only make the window look faster.  A
request's time runs from when it was sent or from the device's latest answer to a request sent
before it (``baseline.AnswerTimes``): a pipelining client, or a gateway serving several masters,
makes answers queue behind each other, and that queue is not the device's speed.

One alert per slow episode and conversation; it may fire again once the median came back under
the threshold.  Memory: a bounded table of flows, of requests awaiting their answer, and of the
last 8 delays per (conversation, response key).
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter, client_endpoints
from ics_monitor.inventory.baseline import (
    MIN_RESPONSE_SAMPLES,
    RESPONSE_BLOCK,
    AnswerTimes,
    Baseline,
    Conversation,
    ResponseStats,
    protocol_of_event,
    response_key,
)
from ics_monitor.inventory.roles import error_response, expects_answer

RULE: Final = "ICS-5014"
MAX_FLOWS: Final = 65_536
MAX_SLOTS: Final = 65_536
# Request shapes (function, unit or outstation) whose response key a flow remembers: a sweep of
# unit ids and functions past it is looked up afresh.
MAX_SHAPES_PER_FLOW: Final = 1024
# The answers of a window (RESPONSE_BLOCK) that must be over the threshold: its lower median is.
SLOW_ANSWERS: Final = RESPONSE_BLOCK - (RESPONSE_BLOCK - 1) // 2
# A flow to a server with no learned answer times.
_NOTHING: Final[tuple[Any, ...]] = ()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class _Slot:
    """The last RESPONSE_BLOCK answer times of one response key of a conversation."""

    __slots__ = ("over", "recent", "slow", "stats", "threshold")

    def __init__(self, stats: ResponseStats, threshold: float) -> None:
        self.stats = stats
        self.threshold = threshold
        self.recent: list[float] = []
        self.over = 0  # how many of them took longer than the threshold
        self.slow = False  # reported, until the window is fast again


class _Flow:
    """A flow to a server with learned answer times; its conversation's, if that is learned."""

    __slots__ = ("conversation", "keys", "slots")

    def __init__(self, conversation: Conversation | None, slots: dict[str, _Slot]) -> None:
        self.conversation = conversation
        # (function code, unit or outstation or S7 userdata group and subfunction) -> (response
        # key if judged else None, answered)
        self.keys: dict[tuple[Any, Any], tuple[str | None, bool]] = {}
        self.slots = slots  # shared by the conversation's flows


class ResponseTimeDrift(BaseDetector):
    """ICS-5014 against the answer times learned per conversation."""

    name = "response_time_drift"
    rule_ids = (RULE,)
    event_types = frozenset({"modbus", "dnp3", "s7comm", "s7comm_plus"})
    directions = frozenset({"request", "response"})
    needs_baseline = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        assert context.baseline is not None
        self.baseline: Baseline = context.baseline
        rules = context.rules
        self.max_ratio = float(rules.param(RULE, "max_ratio"))
        self.min_seconds = float(rules.param(RULE, "min_seconds"))
        # Servers (ip, port) with a conversation whose answer times are judged: every flow to
        # them is followed (their answers to other clients say when they were busy), no other.
        self.servers: set[tuple[str, int]] = {
            (conversation.server, conversation.port)
            for conversation in self.baseline.conversations.values()
            if any(stats.count >= MIN_RESPONSE_SAMPLES for stats in conversation.responses.values())
        }
        # flow id -> _Flow, or _NOTHING
        self.flows: BoundedDict = BoundedDict(MAX_FLOWS)
        # Requests awaiting their answer, per flow, and the servers' recent answers.
        self.answers = AnswerTimes()
        # conversation key -> response key -> _Slot
        self.slots: BoundedDict = BoundedDict(MAX_SLOTS)

    def _flow(self, fields: dict[str, Any]) -> Any:
        if fields["direction"] == "request":
            client, server, port = fields["src_ip"], fields["dst_ip"], fields["dst_port"]
        else:
            client, server, port = fields["dst_ip"], fields["src_ip"], fields["src_port"]
        if (server, port) not in self.servers:
            return _NOTHING
        key = (client, server, fields["transport"], port, protocol_of_event(fields["event_type"]))
        conversation = self.baseline.conversation(key)
        if conversation is None or not conversation.responses:
            # Another client of a timed server: its requests only say when the device was busy.
            return _Flow(None, {})
        slots = self.slots.get(key)
        if slots is None:
            slots = self.slots[key] = {}
        return _Flow(conversation, slots)

    def on_event(self, event: Any, out: Emitter) -> None:
        """A request starts its clock; its answer (not an error) stops it and is judged."""
        fields: dict[str, Any] = event.__dict__
        flow_id = fields["flow_id"]
        found = self.flows.get(flow_id)
        if found is None:
            found = self.flows[flow_id] = self._flow(fields)
        if found is _NOTHING:
            return
        flow: _Flow = found
        if fields["direction"] == "request":
            event_type = fields["event_type"]
            if event_type == "modbus":
                below: Any = fields["unit_id"]
            elif event_type == "dnp3":
                below = fields["dst"]
            elif event_type == "s7comm_plus":
                # By its function (codes apart from S7comm's), opcode (a keep-alive or a request
                # cut before its function has none: only a request is answered) and whether it
                # came in fragments (not timed: ``response_key``).
                below = ("plus", fields["opcode"], fields["fragment"] is None)
            else:  # S7comm: a job by its function, userdata by its group and subfunction
                userdata = fields["userdata"]
                below = (
                    (userdata.get("group"), userdata.get("subfunction"))
                    if fields["rosctr"] == 7 and userdata is not None
                    else None
                )
            shape: tuple[Any, Any] = (fields["function_code"], below)
            known = flow.keys.get(shape)
            if known is None:
                known = self._key(flow, event, fields)
                if len(flow.keys) < MAX_SHAPES_PER_FLOW:
                    flow.keys[shape] = known
            if known[1]:
                self.answers.request(flow_id, fields["frame"], fields["ts"], known[0])
            return
        request_frame = fields.get("request_frame")
        if request_frame is None:
            return
        timed = self.answers.answer(
            flow_id, (fields["src_ip"], fields["src_port"]), request_frame, fields["ts"]
        )
        if timed is not None and not error_response(fields):
            self._judge(flow, timed[0], timed[1], request_frame, event, out)

    def _key(self, flow: _Flow, event: Any, fields: dict[str, Any]) -> tuple[str | None, bool]:
        """(response key if its answers are judged, else None; whether the request is answered)."""
        conversation = flow.conversation
        key = response_key(event) if conversation is not None else None
        if conversation is not None and key is not None:
            stats = conversation.responses.get(key)
            if stats is None or stats.window is None or stats.count < MIN_RESPONSE_SAMPLES:
                key = None  # as the saved baseline has it: fewer answers are left out
        return key, expects_answer(fields)

    def _judge(
        self, flow: _Flow, key: str, seconds: float, request_frame: int, event: Any, out: Emitter
    ) -> None:
        slot = flow.slots.get(key)
        if slot is None:
            conversation = flow.conversation
            assert conversation is not None
            stats = conversation.responses[key]
            assert stats.window is not None
            high = stats.window[1]
            slot = flow.slots[key] = _Slot(stats, max(high * self.max_ratio, high + self.min_seconds))
        threshold = slot.threshold
        recent = slot.recent
        recent.append(seconds)
        over = slot.over + (1 if seconds > threshold else 0)
        if len(recent) > RESPONSE_BLOCK:
            if recent.pop(0) > threshold:
                over -= 1
        elif len(recent) < RESPONSE_BLOCK:
            slot.over = over
            return
        slot.over = over
        if over < SLOW_ANSWERS:
            slot.slow = False
            return
        if slot.slow:
            return
        slot.slow = True
        self._fire(flow, key, slot, request_frame, event, out)

    def _fire(self, flow: _Flow, key: str, slot: _Slot, request_frame: int, event: Any, out: Emitter) -> None:
        conversation = flow.conversation
        assert conversation is not None
        stats = slot.stats
        window = stats.window
        assert window is not None
        recent = slot.recent
        # The lower median: most of the last answers (SLOW_ANSWERS of them) took this long or longer.
        median = sorted(recent)[(RESPONSE_BLOCK - 1) // 2]
        threshold = slot.threshold
        out.fire(
            RULE,
            f"{conversation.client}>{conversation.server}:{conversation.protocol}:"
            f"{conversation.transport}/{conversation.port}",
            ts=event.ts,
            frames=(request_frame, event.frame),
            source=event,
            endpoints=client_endpoints(event),
            evidence={
                "response_key": key,
                "recent_median_seconds": round(median, 6),
                "recent_seconds": [round(value, 6) for value in recent],
                "learned_median_seconds": None if stats.median is None else round(stats.median, 6),
                "learned_window_seconds": [round(window[0], 6), round(window[1], 6)],
                "learned_samples": stats.count,
                "threshold_seconds": round(threshold, 6),
                "max_ratio": self.max_ratio,
                "min_seconds": self.min_seconds,
            },
            fields={
                "recent_ms": _ms(median),
                "learned_low_ms": _ms(window[0]),
                "learned_high_ms": _ms(window[1]),
                "threshold_ms": _ms(threshold),
            },
        )
