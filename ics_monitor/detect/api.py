"""The detector contract and the alert emitter every detector fires through.

A detector is a small class behind the ``Detector`` protocol: it declares the record types it wants
(``event_types``; ``wants_flows`` / ``wants_changes`` / ``wants_time``) and the rules it implements,
and its hooks append alerts through an ``Emitter``.  The engine calls a hook only for what a
detector declared, so a detector pays nothing for records it ignores; hooks do dict lookups and
counter updates, and build alerts only when a rule fires.

The emitter turns (rule id, key, endpoints, evidence) into an ``Alert``: title, severity, ATT&CK
mapping and explanation come from the rule's YAML, the id is deterministic, and throttling decides
whether it goes out now.  No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from mypy_extensions import mypyc_attr

from ics_monitor.alerts.explain import explanation
from ics_monitor.alerts.record import MAX_FRAMES, SEVERITY_NAMES, Alert, amended, make_alert_id, new_alert
from ics_monitor.alerts.throttle import Throttle
from ics_monitor.detect.rules import Rule, RuleSet
from ics_monitor.events.base import record_from

if TYPE_CHECKING:
    from ics_monitor.detect.zones import Zones
    from ics_monitor.inventory.baseline import Baseline


@dataclass(frozen=True, slots=True)
class Context:
    """What a detector is built from: the rules, and the optional baseline and zones."""

    rules: RuleSet
    baseline: Baseline | None = None
    zones: Zones | None = None


# Alerts awaiting the answer to their request (``Emitter.fire(awaits=True)``): a request never
# answered stays until this many newer ones push it out.
MAX_AWAITING: Final = 4096


class Emitter:
    """Builds alerts for firing rules and collects those throttling lets through."""

    def __init__(self, rules: RuleSet, throttle: Throttle | None = None) -> None:
        self.rules = rules
        # Looked up on every occurrence (most of them then absorbed by the throttle): the dict
        # itself, not a method call into the rules module.
        self._by_id: dict[str, Rule] = dict(rules.by_id)
        self.throttle = throttle if throttle is not None else Throttle()
        self.out: list[Alert] = []
        # (flow id, request frame, pairing id) -> the alert raised on that request, awaiting the
        # device's answer (``fire(awaits=True)``, ``outcome``).
        self._awaiting: dict[tuple[Any, int, Any], Alert] = {}

    def fire(
        self,
        rule_id: str,
        key: str,
        *,
        ts: float,
        frames: Iterable[int] = (),
        source: Any = None,
        evidence: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        last_ts: float | None = None,
        count: int = 1,
        protocol: str | None = None,
        endpoints: dict[str, Any] | None = None,
        awaits: bool = False,
        pairing: Any = None,
    ) -> None:
        """Raise ``rule_id`` for ``key`` (the dedup key within the rule).

        ``source``: the record that triggered it (protocol event, anomaly or flow record), whose
        flow id and endpoints the alert carries (flow records add MACs and Community ID);
        ``endpoints`` overrides or supplies them.  ``evidence``: the triggering fields and figures;
        ``fields``: extra values for the rule's ``what`` template (evidence and endpoints are
        available to it too).  ``awaits``: the alert is about a request whose answer is to come
        (its first frame, in ``source``'s flow, with the protocol's ``pairing`` id: several
        requests may share a frame): ``outcome`` adds the answer to it.
        """
        rule = self._by_id.get(rule_id)
        if rule is None:
            rule = self.rules.get(rule_id)  # raises, naming the unknown rule
        if not rule.enabled:
            return
        if rule.throttle > 0 and self.throttle.absorb(
            rule_id, key, ts, ts if last_ts is None else last_ts, frames
        ):
            # One more occurrence of an alert already out in this window.
            if awaits:
                self._await_repeat(rule_id, key, ts, source, frames, pairing)
            return
        where = _endpoints(source)
        if endpoints:
            where.update(endpoints)
        evidence = evidence or {}
        if source is not None and is_truncated(source):
            # The PDU was cut by the capture: what the alert names is what was kept.
            evidence = {**evidence, "truncated": True}
        values = {**where, **evidence, **(fields or {})}
        alert = new_alert(
            alert_id=make_alert_id(rule_id, key, ts),
            rule_id=rule_id,
            rule_name=rule.name,
            title=rule.title,
            severity=rule.severity,
            severity_name=SEVERITY_NAMES[rule.severity],
            category=rule.category,
            protocol=protocol if protocol is not None else (rule.protocol or where.pop("protocol", None)),
            tactic=rule.tactics,
            technique=rule.techniques,
            explanation=explanation(rule.what, rule.why, rule.check, rule.names, values),
            evidence=evidence,
            key=key,
            flow_id=where.get("flow_id"),
            src_ip=where.get("src_ip") or None,
            src_port=where.get("src_port"),
            dst_ip=where.get("dst_ip") or None,
            dst_port=where.get("dst_port"),
            src_mac=where.get("src_mac"),
            dst_mac=where.get("dst_mac"),
            community_id=where.get("community_id"),
            ts=ts,
            last_ts=ts if last_ts is None else last_ts,
            count=count,
            frames=tuple(frames)[:MAX_FRAMES],
        )
        emitted = self.throttle.offer(alert, rule.throttle)
        self.out.extend(emitted)
        if awaits and emitted and emitted[-1] is alert and alert.flow_id is not None and alert.frames:
            awaiting = self._awaiting
            if len(awaiting) >= MAX_AWAITING:
                del awaiting[next(iter(awaiting))]  # the oldest: never answered
            awaiting[(alert.flow_id, alert.frames[0], pairing)] = alert

    def _await_repeat(
        self, rule_id: str, key: str, ts: float, source: Any, frames: Iterable[int], pairing: Any
    ) -> None:
        """A repeat of a command whose alert has no answer yet, or only a refusal: its answer counts.

        A tool that sends a command without waiting, then again waiting for the answer, or that
        retries after a refusal until the device accepts: the alert must say the command was
        carried out at last.  An accepted one stays as it is.
        """
        flow_id = getattr(source, "flow_id", None)
        first = next(iter(frames), None)
        if flow_id is None or first is None:
            return
        alert = self.throttle.open_alert(rule_id, key, ts)
        if alert is None:
            return
        said = alert.evidence.get("outcome")
        if said is not None and said.get("result") == "accepted":
            return
        awaiting = self._awaiting
        if len(awaiting) >= MAX_AWAITING:
            del awaiting[next(iter(awaiting))]
        awaiting[(flow_id, first, pairing)] = alert

    def throttles(self, rule_id: str) -> bool:
        """Whether ``rule_id`` is enabled and throttled (repeats counted on one alert)."""
        rule = self._by_id.get(rule_id)
        if rule is None:
            rule = self.rules.get(rule_id)
        return rule.enabled and rule.throttle > 0

    def open_alert(self, rule_id: str, key: str, ts: float) -> Alert | None:
        """The alert of (rule id, key) whose throttling window is open at ``ts``, or None."""
        return self.throttle.open_alert(rule_id, key, ts)

    def widen(
        self,
        rule_id: str,
        key: str,
        *,
        ts: float,
        frames: Iterable[int] = (),
        source: Any = None,
        evidence: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        endpoints: dict[str, Any] | None = None,
    ) -> None:
        """What an alert already raised is about grew (a sweep went on): the alert again, wider.

        Not a new occurrence: while the alert's throttling window is open, it goes out again (same
        id) with ``evidence`` and an explanation rendered from it in place of its own, its last
        seen time moved to ``ts`` and its count unchanged.  Once the window has passed, ``fire``
        (a new alert with the whole scope).  Nothing for a rule without throttling, where every
        firing is an alert of its own: its alert at the threshold stands.
        """
        rule = self._by_id.get(rule_id)
        if rule is None:
            rule = self.rules.get(rule_id)
        if not rule.enabled or rule.throttle <= 0:
            return
        throttle = self.throttle
        alert = throttle.open_alert(rule_id, key, ts)
        if alert is None:
            self.fire(
                rule_id,
                key,
                ts=ts,
                frames=frames,
                source=source,
                evidence=evidence,
                fields=fields,
                endpoints=endpoints,
            )
            return
        throttle.stretch(rule_id, key, ts, frames)
        evidence = evidence or {}
        if alert.evidence.get("truncated"):
            evidence = {**evidence, "truncated": True}
        values = dict(alert.__dict__)
        values["evidence"] = evidence
        values["explanation"] = explanation(
            rule.what, rule.why, rule.check, rule.names, {**alert.__dict__, **evidence, **(fields or {})}
        )
        emitted = throttle.amend(alert, record_from(Alert, values), rule.throttle)
        if emitted is not None:
            self.out.append(emitted)

    def awaited(self, flow_id: Any, request_frame: Any, pairing: Any) -> bool:
        """Whether an alert raised on that request awaits its answer (see ``outcome``)."""
        return bool(self._awaiting) and (flow_id, request_frame, pairing) in self._awaiting

    def outcome(
        self, flow_id: Any, request_frame: Any, pairing: Any, outcome: dict[str, Any], sentence: str
    ) -> None:
        """The device answered the request an alert was raised on: that alert again, with the answer.

        ``outcome`` goes into the evidence (``evidence.outcome``), ``sentence`` into what happened.
        The same alert id: stores and SIEMs update the alert in place.  Nothing when no alert
        awaits that answer.
        """
        alert = self._awaiting.pop((flow_id, request_frame, pairing), None)
        if alert is None:
            return
        said = alert.evidence.get("outcome")
        if said is not None and said.get("result") == outcome.get("result"):
            return  # a repeat answered as the first was: nothing new to say
        replacement = amended(alert, {**alert.evidence, "outcome": outcome}, sentence)
        rule = self._by_id.get(alert.rule_id)
        emitted = self.throttle.amend(alert, replacement, rule.throttle if rule is not None else 0.0)
        if emitted is not None:
            self.out.append(emitted)


def client_endpoints(response: Any) -> dict[str, Any]:
    """The endpoints of an alert raised on a response, turned to the client's side.

    For ``Emitter.fire``'s ``endpoints``: an alert about what a client did, or drew, names it as
    the source, as every request-side alert does; a SIEM keyed on the source must not blame the
    answering device.
    """
    fields: dict[str, Any] = response.__dict__
    return {
        "src_ip": fields["dst_ip"],
        "src_port": fields["dst_port"],
        "dst_ip": fields["src_ip"],
        "dst_port": fields["src_port"],
    }


def is_truncated(source: Any) -> bool:
    """Whether the record was marked cut by the capture (``dissect.api.mark_truncated``)."""
    # Dict-backed records (``events.base``) carry the mark as an extra key of their dict: looked up
    # there, a record without it costs no AttributeError raised and caught.
    fields = getattr(source, "__dict__", None)
    if fields is not None:
        return bool(fields.get("truncated", False))
    return bool(getattr(source, "truncated", False))


# What ``_endpoints`` reads of a record without an instance dict (a slotted class).
_ENDPOINT_FIELDS: Final = (
    "flow_id",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "event_type",
    "src_mac",
    "dst_mac",
    "community_id",
    "app_protocol",
    "service",
    "protocol",
)


def _endpoints(source: Any) -> dict[str, Any]:
    """Flow id, endpoints and protocol of ``source``; flow records add MACs and Community ID.

    Read from the record's dict (``events.base``: every field is an item there; a missing one
    reads None, as ``getattr`` with a default would, without an AttributeError raised and caught).
    """
    if source is None:
        return {}
    fields: dict[str, Any] | None = getattr(source, "__dict__", None)
    if fields is None:  # slotted (asset changes): its attributes, as the dict would hold them
        fields = {name: getattr(source, name, None) for name in _ENDPOINT_FIELDS}
    where: dict[str, Any] = {
        "flow_id": fields.get("flow_id"),
        "src_ip": fields.get("src_ip"),
        "src_port": fields.get("src_port"),
        "dst_ip": fields.get("dst_ip"),
        "dst_port": fields.get("dst_port"),
    }
    event_type = fields.get("event_type")
    if event_type == "flow":
        where["src_mac"] = fields.get("src_mac")
        where["dst_mac"] = fields.get("dst_mac")
        where["community_id"] = fields.get("community_id")
        where["protocol"] = fields.get("app_protocol") or fields.get("service")
    else:
        where["protocol"] = fields.get("protocol") if event_type == "anomaly" else event_type
    return where


class Detector(Protocol):
    """What the engine needs from a detector."""

    name: str
    rule_ids: tuple[str, ...]
    event_types: frozenset[str]
    wants_flows: bool
    wants_changes: bool
    wants_time: bool

    def on_event(self, event: Any, out: Emitter) -> None:
        """A protocol event or anomaly of one of ``event_types``."""

    def on_flow(self, record: Any, out: Emitter) -> None:
        """A flow record (when ``wants_flows``)."""

    def on_changes(self, changes: list[Any], out: Emitter) -> None:
        """Asset changes from the inventory (when ``wants_changes``)."""

    def advance(self, ts: float, out: Emitter) -> None:
        """Capture time moved on to ``ts`` (when ``wants_time``): time-driven checks."""

    def finish(self, out: Emitter) -> None:
        """End of input."""


# Compiled (mypyc) with the shipped detectors; a detector written in plain Python may still derive from it.
@mypyc_attr(allow_interpreted_subclasses=True)
class BaseDetector:
    """Convenience base: no-op hooks; subclasses set the class attributes they need.

    ``create`` returns None when the detector has nothing to do (all its rules disabled, or it
    needs a baseline or zones that were not given), so the engine never calls it.

    Records are dict-backed (``events.base``): their fields are the items of ``record.__dict__``.
    The per-record paths of the shipped detectors and of the inventory take that dict once
    (``fields = event.__dict__``) and read ``fields["ts"]`` rather than ``event.ts``: compiled,
    a dict item costs about 110 instructions and an attribute of a record typed ``Any`` about
    250 (a type lookup before the same dict lookup).  Rarely run code (an alert's evidence) reads
    attributes, which say the same.
    """

    name: ClassVar[str] = ""
    rule_ids: ClassVar[tuple[str, ...]] = ()
    event_types: ClassVar[frozenset[str]] = frozenset()
    # The record directions ``on_event`` looks at ("request", "response"); None: every record.
    directions: ClassVar[frozenset[str] | None] = None
    wants_flows: ClassVar[bool] = False
    wants_changes: ClassVar[bool] = False
    wants_time: ClassVar[bool] = False
    needs_baseline: ClassVar[bool] = False
    needs_zones: ClassVar[bool] = False

    def __init__(self, context: Context) -> None:
        self.context = context
        self.rules = context.rules

    @classmethod
    def create(cls, context: Context) -> BaseDetector | None:
        """The detector, or None when none of its rules can fire in this context."""
        if cls.needs_baseline and context.baseline is None:
            return None
        if cls.needs_zones and context.zones is None:
            return None
        if not any(context.rules.enabled(rule_id) for rule_id in cls.rule_ids):
            return None
        return cls(context)

    def on_event(self, event: Any, out: Emitter) -> None:
        """See ``Detector``."""

    def on_flow(self, record: Any, out: Emitter) -> None:
        """See ``Detector``."""

    def on_changes(self, changes: list[Any], out: Emitter) -> None:
        """See ``Detector``."""

    def advance(self, ts: float, out: Emitter) -> None:
        """See ``Detector``."""

    def finish(self, out: Emitter) -> None:
        """See ``Detector``."""


MAX_REMEMBERED: Final = 200_000


class SeenSet:
    """A capped set of keys already reported (cleared wholesale at the cap: re-reporting is harmless)."""

    __slots__ = ("keys",)

    def __init__(self) -> None:
        self.keys: set[Any] = set()

    def first(self, key: Any) -> bool:
        """True the first time ``key`` is offered."""
        keys = self.keys
        if key in keys:
            return False
        if len(keys) >= MAX_REMEMBERED:
            keys.clear()
        keys.add(key)
        return True
