"""Protocol anomalies from the decoders and dissectors, turned into alerts by class and severity.

Every anomaly event carries a stable code and a severity from ``core.anomalies``.  The rules in
``rules/anomalies.yaml`` list the codes they cover (``codes``) or a code prefix with a minimum
anomaly severity (``prefixes`` + ``min_severity``, minus ``exclude_codes``): CRC errors, orphan
responses, evasion signs (overlapping fragments/segments with different bytes), monitor overload
(caps hit), internal dissector errors and, for everything else in an ICS protocol at or above the
minimum severity, "malformed protocol data".  A rule may ask for ``min_count`` occurrences of a
code between two hosts within ``window`` seconds before it fires.  The decision per code is made once
and cached.
"""

from __future__ import annotations

from typing import Any, Final

from ics_monitor.core.bounded import BoundedDict
from ics_monitor.detect.api import BaseDetector, Context, Emitter

_SEVERITIES: Final = {"info": 1, "low": 2, "medium": 3, "high": 4}
# Rules matched by explicit code lists first, then the prefix rule (the catch-all for malformed data).
EXPLICIT_RULES: Final[tuple[str, ...]] = ("ICS-2002", "ICS-2003", "ICS-2004", "ICS-2005", "ICS-2006")
PREFIX_RULE: Final = "ICS-2001"
MAX_CACHED_CODES: Final = 4096
MAX_KEYS = 50_000
MALFORMED: Final = PREFIX_RULE
# Codes one ICS-2001 alert names (its count goes on past them).
MAX_CODES_NAMED: Final = 16


class AnomalyAlerts(BaseDetector):
    """Maps anomaly codes to rules; fires per (rule, code, source and destination).

    ICS-2001 (malformed data) fires per source and destination, naming every code.
    """

    name = "anomaly_alerts"
    rule_ids = (PREFIX_RULE, *EXPLICIT_RULES)
    event_types = frozenset({"anomaly"})

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        rules = context.rules
        self._codes: dict[str, str] = {}
        for rule_id in EXPLICIT_RULES:
            if rules.enabled(rule_id):
                for code in rules.param(rule_id, "codes"):
                    self._codes.setdefault(str(code), rule_id)
        self._prefixes: tuple[str, ...] = ()
        self._excluded: frozenset[str] = frozenset()
        self._min_severity = 99
        if rules.enabled(PREFIX_RULE):
            self._prefixes = tuple(str(p) for p in rules.param(PREFIX_RULE, "prefixes"))
            self._min_severity = _SEVERITIES[str(rules.param(PREFIX_RULE, "min_severity"))]
            self._excluded = frozenset(str(c) for c in rules.param(PREFIX_RULE, "exclude_codes"))
        # Per rule: occurrences of one code in one flow needed within ``window`` seconds to fire.
        self._min_counts: dict[str, tuple[int, float]] = {}
        for rule_id in self.rule_ids:
            if rules.enabled(rule_id):
                params = rules.get(rule_id).params
                self._min_counts[rule_id] = (int(params.get("min_count", 1)), float(params.get("window", 0)))
        self._counts: BoundedDict = BoundedDict(MAX_KEYS)
        # ICS-2001 host pair -> the anomaly codes its open alert names
        self._named: BoundedDict = BoundedDict(MAX_KEYS)
        self._decided: dict[tuple[str, str], str | None] = {}

    def _rule_for(self, code: str, severity: str) -> str | None:
        decided = self._decided.get((code, severity), "")
        if decided != "":
            return decided
        rule_id = self._codes.get(code)
        if (
            rule_id is None
            and code.startswith(self._prefixes)
            and code not in self._excluded
            and _SEVERITIES.get(severity, 0) >= self._min_severity
        ):
            rule_id = PREFIX_RULE
        if len(self._decided) < MAX_CACHED_CODES:
            self._decided[(code, severity)] = rule_id
        return rule_id

    def on_event(self, event: Any, out: Emitter) -> None:
        """Fire the rule covering this anomaly code, if any."""
        rule_id = self._rule_for(event.code, event.severity)
        if rule_id is None:
            return
        # Per host pair, not per flow: a fuzzer opening a connection per message is one alert.
        where = f"{event.src_ip}>{event.dst_ip}"
        min_count, window = self._min_counts[rule_id]
        count = 1
        if min_count > 1:
            # Some codes (orphan responses) also occur once in healthy traffic, around a timeout
            # or at the start of a capture: only a repeat within the window is worth an alert.
            key = (event.code, where)
            state = self._counts.get(key)
            if state is None or event.ts - state[0] > window:
                state = self._counts[key] = [event.ts, 0]
            state[1] += 1
            count = state[1]
            if count < min_count:
                return
        evidence = {
            "code": event.code,
            "anomaly_severity": event.severity,
            "detail": event.detail,
            "direction": event.direction,
            "occurrences": count,
        }
        frames = (event.frame,) if event.frame else ()
        if rule_id != MALFORMED:
            out.fire(
                rule_id, f"{event.code}:{where}", ts=event.ts, frames=frames, source=event, evidence=evidence
            )
            return
        # Malformed data: one alert per host pair naming every kind of fault (a function-code
        # sweep or a fuzzer trips a handful of codes at once), widened as new ones come.
        codes: list[str] | None = self._named.get(where)
        if codes is None or out.open_alert(rule_id, where, event.ts) is None:
            codes = self._named[where] = []
        new = event.code not in codes
        if new and len(codes) < MAX_CODES_NAMED:
            codes.append(event.code)
        evidence["codes"] = list(codes)
        fields = {"codes": ", ".join(codes)}
        if new and len(codes) > 1:
            out.widen(
                rule_id, where, ts=event.ts, frames=frames, source=event, evidence=evidence, fields=fields
            )
            return
        out.fire(rule_id, where, ts=event.ts, frames=frames, source=event, evidence=evidence, fields=fields)
