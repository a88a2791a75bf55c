"""ICS-5014: a server answering a kind of request much slower than it did while learning.

A PLC, RTU or gateway answers the same request in about the same time, scan cycle after scan
cycle: the baseline learns, per conversation and response key (``baseline.response_key``: the
function, and the Modbus unit or DNP3 outstation it addressed), the median of every 8 answers in a
row and the band those medians kept (``response_time`` in the YAML).  Enforcing, each answer's
delay (from its own request: the dissectors pair them, ``request_frame``) joins the last 8 of its
key; when their lower median (5 of the 8 took that long or longer) passes ``max_ratio`` times the top of the learned band, and that top by
``min_seconds``, the alert names the conversation and what slowed.

Why: a man in the middle that holds each frame before passing it on (an attacker relaying between
HMI and PLC to read or rewrite it) adds its delay to every answer the sensor sees on the HMI's
side; a device whose CPU is swamped (a flood, a scan, an overloaded gateway) answers late before
it stops answering.  Exception and error answers are left out (a gateway's "target failed to
respond" comes after its own timeout), and so are answers whose request was not seen.  A
request's time runs from when it was sent or from the device's latest answer to a request sent
before it (``baseline.AnswerTimes``): a pipelining client, or a gateway serving several masters,
makes answers queue behind each other, and that queue is not the device's speed.

One alert per slow episode and conversation; it may fire again once the median came back under
the threshold.  Memory: a bounded table of flows, of requests awaiting their answer, and of the
last 8 delays per (conversation, response key).
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.detect.api import BaseDetector, BoundedDict, Context, Emitter, client_endpoints
from ics_monitor.inventory.baseline import (
    MIN_RESPONSE_SAMPLES,
    RESPONSE_BLOCK,
    AnswerTimes,
    Baseline,
    Conversation,
    expects_answer,
    protocol_of_event,
    response_key,
)
from ics_monitor.inventory.roles import error_response

RULE: Final = "ICS-5014"
MAX_FLOWS: Final = 65_536
MAX_SLOTS: Final = 65_536
# A flow whose conversation learned no answer times (or is not in the baseline).
_NOTHING: Final[tuple[Any, ...]] = ()


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


class ResponseTimeDrift(BaseDetector):
    """ICS-5014 against the answer times learned per conversation."""

    name = "response_time_drift"
    rule_ids = (RULE,)
    event_types = frozenset({"modbus", "dnp3", "s7comm"})
    directions = frozenset({"request", "response"})
    needs_baseline = True

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        assert context.baseline is not None
        self.baseline: Baseline = context.baseline
        rules = context.rules
        self.max_ratio = float(rules.param(RULE, "max_ratio"))
        self.min_seconds = float(rules.param(RULE, "min_seconds"))
        # flow id -> its learned conversation, or _NOTHING
        self.flows: BoundedDict = BoundedDict(MAX_FLOWS)
        # Requests awaiting their answer, per flow (every flow's: a device's answers to other
        # clients say when it was busy), and the devices' recent answers.
        self.answers = AnswerTimes()
        # (conversation key, response key) -> [the last RESPONSE_BLOCK delays, slow now]
        self.slots: BoundedDict = BoundedDict(MAX_SLOTS)

    def _conversation(self, fields: dict[str, Any]) -> Any:
        if fields["direction"] == "request":
            client, server, port = fields["src_ip"], fields["dst_ip"], fields["dst_port"]
        else:
            client, server, port = fields["dst_ip"], fields["src_ip"], fields["src_port"]
        conversation = self.baseline.conversation(
            (client, server, fields["transport"], port, protocol_of_event(fields["event_type"]))
        )
        if conversation is None or not conversation.responses:
            return _NOTHING
        return conversation

    def on_event(self, event: Any, out: Emitter) -> None:
        """A request starts its clock; its answer (not an error) stops it and is judged."""
        fields: dict[str, Any] = event.__dict__
        flow_id = fields["flow_id"]
        found = self.flows.get(flow_id)
        if found is None:
            found = self.flows[flow_id] = self._conversation(fields)
        if fields["direction"] == "request":
            key = None
            if found is not _NOTHING:
                key = response_key(event)
                if key not in found.responses:
                    key = None
            self.answers.request(flow_id, fields["frame"], fields["ts"], key, expects_answer(fields))
            return
        request_frame = fields.get("request_frame")
        if request_frame is None:
            return
        timed = self.answers.answer(
            flow_id, (fields["src_ip"], fields["src_port"]), request_frame, fields["ts"]
        )
        if timed is not None and found is not _NOTHING and not error_response(fields):
            self._judge(found, timed[0], timed[1], request_frame, event, out)

    def _judge(
        self,
        conversation: Conversation,
        key: str,
        seconds: float,
        request_frame: int,
        event: Any,
        out: Emitter,
    ) -> None:
        stats = conversation.responses[key]
        window = stats.window
        if window is None or stats.count < MIN_RESPONSE_SAMPLES:
            return  # as the saved baseline has it: fewer answers are left out
        slot_key = (conversation.key, key)
        slot = self.slots.get(slot_key)
        if slot is None:
            slot = self.slots[slot_key] = [[], False]
        recent: list[float] = slot[0]
        recent.append(seconds)
        if len(recent) > RESPONSE_BLOCK:
            del recent[0]
        elif len(recent) < RESPONSE_BLOCK:
            return
        # The lower median: most of the last answers (5 of 8) took this long or longer.
        median = sorted(recent)[(RESPONSE_BLOCK - 1) // 2]
        high = window[1]
        threshold = max(high * self.max_ratio, high + self.min_seconds)
        if median <= threshold:
            slot[1] = False
            return
        if slot[1]:
            return
        slot[1] = True
        client, server = conversation.client, conversation.server
        out.fire(
            RULE,
            f"{client}>{server}:{conversation.protocol}:{conversation.transport}/{conversation.port}",
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
                "learned_high_ms": _ms(high),
                "threshold_ms": _ms(threshold),
            },
        )
