"""The detection engine: routes records to the detectors that want them and collects their alerts.

Built once per run from the rules (and, for enforcing, a baseline; for the network policy, zones);
detectors whose rules are all disabled, or that need a baseline or zones not given, are not built.
``observe`` / ``observe_flow`` / ``observe_changes`` return the alerts the record caused (usually
none); ``advance`` runs time-driven checks and closes throttling windows; ``finish`` flushes the
throttled summaries at the end of input.  Capture time drives everything: the engine ticks
``advance`` itself whenever a record's time crosses the next second, so a replay behaves like live
traffic.  Per record the cost is one dict lookup plus the hooks of the detectors interested in its
type and direction.

Containment: a detector that raises on a record loses that record, not the run.  Its first failure
becomes an ``internal.detector_error`` anomaly in ``anomalies`` (the pipeline drains them as
events); later ones are only counted in ``failures``.  ``strict`` re-raises instead (tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

from ics_monitor.alerts.record import Alert
from ics_monitor.alerts.throttle import Throttle
from ics_monitor.core.anomalies import severity_name
from ics_monitor.detect.anomalies import AnomalyAlerts
from ics_monitor.detect.api import BaseDetector, Context, Emitter
from ics_monitor.detect.availability import (
    CommandsBlocked,
    ConnectionFlood,
    Dnp3SequenceAnomaly,
    ErrorStorm,
    RequestFlood,
    SessionDisplaced,
    SessionExhaustion,
    StoppedAnswering,
    WriteSweep,
)
from ics_monitor.detect.commands import (
    Dnp3Commands,
    ModbusCommands,
    S7Commands,
    S7PlusDownload,
    S7PlusOperatingState,
    S7PlusUpload,
)
from ics_monitor.detect.deviation import BaselineDeviation, IdentityChange
from ics_monitor.detect.network import ArpWatch
from ics_monitor.detect.policy import ZonePolicy
from ics_monitor.detect.recon import (
    DeviceIdEnumeration,
    Dnp3AddressSweep,
    Dnp3AttributeRead,
    IcmpSweep,
    ModbusFunctionSweep,
    ModbusUnitSweep,
    OtPortMisuse,
    OtPortScan,
    OtUdpScan,
    S7SzlEnumeration,
    S7TsapSweep,
)
from ics_monitor.detect.response_time import ResponseTimeDrift
from ics_monitor.detect.rules import RuleSet
from ics_monitor.detect.zones import Zones
from ics_monitor.events.base import AnomalyEvent, failure_anomaly
from ics_monitor.inventory.baseline import Baseline

DETECTOR_ERROR: Final = "internal.detector_error"

# Every shipped detector, in the order they see a record.
DETECTORS: tuple[type[BaseDetector], ...] = (
    S7Commands,
    S7PlusDownload,
    S7PlusOperatingState,
    S7PlusUpload,
    Dnp3Commands,
    ModbusCommands,
    AnomalyAlerts,
    ModbusUnitSweep,
    ModbusFunctionSweep,
    DeviceIdEnumeration,
    S7SzlEnumeration,
    S7TsapSweep,
    Dnp3AttributeRead,
    Dnp3AddressSweep,
    OtPortScan,
    OtUdpScan,
    IcmpSweep,
    OtPortMisuse,
    ErrorStorm,
    RequestFlood,
    StoppedAnswering,
    CommandsBlocked,
    Dnp3SequenceAnomaly,
    ConnectionFlood,
    SessionExhaustion,
    SessionDisplaced,
    WriteSweep,
    BaselineDeviation,
    ResponseTimeDrift,
    IdentityChange,
    ZonePolicy,
    ArpWatch,
)
# Capture seconds between time-driven checks, and between closings of throttling windows.
TICK_SECONDS: Final = 1.0
FLUSH_SECONDS: Final = 10.0

# Record directions with hooks of their own (see ``BaseDetector.directions``); the last entry
# (None) stands for every other record, which only direction-blind detectors see.
_DIRECTIONS: tuple[str | None, ...] = ("request", "response", None)


class DetectionEngine:
    """Runs the detectors over events, flow records and asset changes."""

    def __init__(
        self,
        rules: RuleSet,
        baseline: Baseline | None = None,
        zones: Zones | None = None,
        *,
        detectors: Sequence[type[BaseDetector]] = DETECTORS,
        strict: bool = False,
    ) -> None:
        self.rules = rules
        self.strict = strict
        # Where a detector's first failure is reported (``Analysis`` puts its own list here), and
        # how often each failed.
        self.anomalies: list[AnomalyEvent] = []
        self.failures: Counter[str] = Counter()
        self.baseline = baseline
        self.zones = zones
        context = Context(rules, baseline, zones)
        self.detectors: list[BaseDetector] = []
        for cls in detectors:
            detector = cls.create(context)
            if detector is not None:
                self.detectors.append(detector)
        self.emitter = Emitter(rules, Throttle())
        # Per event type: the detectors that see requests, responses, and any other record.  The
        # detectors, not their bound ``on_event``: compiled, ``detector.on_event(...)`` on a
        # ``BaseDetector`` is a direct (vtable) call, where calling a bound method goes through
        # the generic call protocol and parses its arguments on every record, for every detector.
        self._by_type: dict[str, tuple[list[BaseDetector], list[BaseDetector], list[BaseDetector]]] = {}
        for detector in self.detectors:
            for event_type in detector.event_types:
                lists = self._by_type.setdefault(event_type, ([], [], []))
                directions = detector.directions
                for position, direction in enumerate(_DIRECTIONS):
                    if directions is None or direction in directions:
                        lists[position].append(detector)
        # The detector told when a shard worker already checked a response's read values.
        self._deviation: BaselineDeviation | None = next(
            (d for d in self.detectors if isinstance(d, BaselineDeviation)), None
        )
        # Detectors, not bound methods, as for records (``_by_type``): direct calls, compiled.
        self._flow_detectors = [d for d in self.detectors if d.wants_flows]
        self._change_detectors = [d for d in self.detectors if d.wants_changes]
        self._time_detectors = [d for d in self.detectors if d.wants_time]
        self._next_tick: float | None = None
        self._next_flush: float | None = None
        self.alerts_emitted = 0

    @property
    def names(self) -> list[str]:
        """Names of the detectors that run."""
        return [detector.name for detector in self.detectors]

    def _drain(self) -> list[Alert]:
        out = self.emitter.out
        if not out:
            return []
        alerts = out[:]
        out.clear()
        self.alerts_emitted += len(alerts)
        return alerts

    def _clock(self, ts: float) -> None:
        next_tick = self._next_tick
        if next_tick is None:
            self._next_tick = ts + TICK_SECONDS
            self._next_flush = ts + FLUSH_SECONDS
        elif ts >= next_tick:
            self._tick(ts)

    def _tick(self, ts: float) -> None:
        self._next_tick = ts + TICK_SECONDS
        emitter = self.emitter
        for detector in self._time_detectors:
            try:
                detector.advance(ts, emitter)
            except Exception as exc:
                self._contain(detector.advance, exc, None, ts)
        if self._next_flush is not None and ts >= self._next_flush:
            self._next_flush = ts + FLUSH_SECONDS
            emitter.out.extend(emitter.throttle.flush(ts))

    def observe(self, event: Any, passed: bool = False) -> list[Alert]:
        """A protocol event or anomaly; other records (ARP, COTP ...) pass unless a detector wants them.

        ``passed``: a record a shard worker checked against this engine's baseline and found
        nothing in (``deviation.WorkerCheck``).
        """
        if passed:
            return self._observe_passed(event)
        fields: dict[str, Any] = event.__dict__  # see api.BaseDetector
        ts = fields["ts"]
        next_tick = self._next_tick
        if next_tick is None or ts >= next_tick:
            self._clock(ts)
        emitter = self.emitter
        lists = self._by_type.get(fields["event_type"])
        if lists is not None:
            direction = fields.get("direction")
            detectors = (
                lists[0] if direction == "request" else lists[1] if direction == "response" else lists[2]
            )
            for detector in detectors:
                try:
                    detector.on_event(event, emitter)
                except Exception as exc:
                    self._contain(detector.on_event, exc, event)
        return self._drain() if emitter.out else []

    def _observe_passed(self, event: Any) -> list[Alert]:
        deviation = self._deviation
        if deviation is None:
            return self.observe(event)
        deviation.passed = True
        try:
            return self.observe(event)
        finally:
            deviation.passed = False

    def observe_flow(self, record: Any) -> list[Alert]:
        """A flow record (at the flow's end or active timeout)."""
        self._clock(record.ts_end)
        emitter = self.emitter
        for detector in self._flow_detectors:
            try:
                detector.on_flow(record, emitter)
            except Exception as exc:
                self._contain(detector.on_flow, exc, record)
        return self._drain()

    def observe_changes(self, changes: list[Any]) -> list[Alert]:
        """Asset changes from the inventory."""
        if not changes:
            return []
        emitter = self.emitter
        for detector in self._change_detectors:
            try:
                detector.on_changes(changes, emitter)
            except Exception as exc:
                self._contain(detector.on_changes, exc, changes[-1])
        return self._drain()

    def advance(self, ts: float) -> list[Alert]:
        """Capture (or wall-clock, when live) time moved on: time-driven checks, throttle windows."""
        if self._next_tick is None:
            self._clock(ts)
        self._tick(ts)
        return self._drain()

    def finish(self) -> list[Alert]:
        """End of input: let detectors conclude, and emit every pending throttled update."""
        emitter = self.emitter
        for detector in self.detectors:
            try:
                detector.finish(emitter)
            except Exception as exc:
                self._contain(detector.finish, exc, None, self._next_tick or 0.0)
        emitter.out.extend(emitter.throttle.flush())
        return self._drain()

    def _contain(self, hook: Callable[..., None], exc: Exception, record: Any, ts: float = 0.0) -> None:
        """A detector raised on ``record`` (None: on a clock tick or at the end): count, report once."""
        if self.strict:
            raise exc
        owner = getattr(hook, "__self__", None)
        name = owner.name if isinstance(owner, BaseDetector) else getattr(hook, "__qualname__", "detector")
        self.failures[name] += 1
        if self.failures[name] > 1:
            return
        what = (
            f" on a {getattr(record, 'event_type', None) or type(record).__name__} record"
            if record is not None
            else ""
        )
        self.anomalies.append(
            failure_anomaly(
                DETECTOR_ERROR,
                severity_name(DETECTOR_ERROR),
                f"{name}: {type(exc).__name__}: {exc}{what}; the detector skips such records "
                "(later failures are counted, not reported)",
                record,
                ts,
            )
        )
