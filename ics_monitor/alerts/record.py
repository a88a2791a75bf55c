"""The alert record: what a detector found, explained, with its evidence and ATT&CK mapping.

An alert is a frozen record like the protocol events (``event_type: alert``), made only when a rule
fires, so it may be richer than a per-PDU record.  Throttling (``alerts.throttle``) emits the first
occurrence of a (rule, key) at once and, later, an update of the same alert (same ``alert_id``,
larger ``count``, later ``last_ts``): stores upsert by ``alert_id``.

``alert_to_dict`` is the JSON form sinks write and ``alert.schema.json`` describes; nothing here
does I/O.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

from mypy_extensions import mypyc_attr


class AlertSeverity(IntEnum):
    """How urgent an alert is (1 low .. 4 critical); the name travels beside the number."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


SEVERITY_NAMES: dict[int, str] = {member.value: member.name.lower() for member in AlertSeverity}
# The first frames of an alert kept as evidence (a throttled flood must not grow the record).
MAX_FRAMES = 10


# An ordinary class even when this module is compiled (mypyc): orjson serialises it as a dataclass,
# which it cannot do for a native class (it crashed).
@mypyc_attr(native_class=False)
@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One alert (or an update of one: same ``alert_id``, new ``count``/``last_ts``/``frames``).

    ``tactic``: ``({id, name}, ...)``; ``technique``: ``({id, name, id_v19, name_v19}, ...)``.
    ``ts`` is the capture time of the first occurrence, ``last_ts`` of the latest; ``count`` how many
    occurrences the record stands for.  ``key`` is the dedup key within the rule (e.g. the client and
    server); ``evidence`` holds the protocol fields that triggered the rule and any figures behind
    it (counts, thresholds, learned ranges).
    """

    event_type: str = "alert"
    alert_id: str
    rule_id: str
    rule_name: str
    title: str
    severity: int
    severity_name: str
    category: str
    protocol: str | None
    tactic: tuple[dict[str, str], ...]
    technique: tuple[dict[str, str], ...]
    explanation: str
    evidence: dict[str, Any]
    key: str
    flow_id: str | None = None
    src_ip: str | None = None
    src_port: int | None = None
    dst_ip: str | None = None
    dst_port: int | None = None
    src_mac: str | None = None
    dst_mac: str | None = None
    community_id: str | None = None
    ts: float
    last_ts: float
    count: int = 1
    frames: tuple[int, ...] = ()


def make_alert_id(rule_id: str, key: str, ts: float) -> str:
    """Deterministic id: the same capture gives the same ids run after run (blake2b, 16 hex digits)."""
    text = f"{rule_id}|{key}|{ts:.6f}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def updated(alert: Alert, *, last_ts: float, count: int, frames: tuple[int, ...]) -> Alert:
    """A copy of ``alert`` standing for more occurrences (same id)."""
    return replace(alert, last_ts=last_ts, count=count, frames=frames[:MAX_FRAMES])


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    """The JSON object of an alert (lists for tuples), as sinks write it.

    Every sink converts each alert in turn (the store, the alerts log, Elasticsearch ...): the last
    conversion is kept and returned again for the same alert object.  Callers only read it.
    """
    last = _LAST_CONVERTED[0]
    if last[0] is alert:
        return last[1]
    data = _converted(alert)
    # One item store: a reader in another thread sees the old pair or the new one, never a mix.
    _LAST_CONVERTED[0] = (alert, data)
    return data


def _converted(alert: Alert) -> dict[str, Any]:
    return {
        "event_type": alert.event_type,
        "alert_id": alert.alert_id,
        "rule_id": alert.rule_id,
        "rule_name": alert.rule_name,
        "title": alert.title,
        "severity": alert.severity,
        "severity_name": alert.severity_name,
        "category": alert.category,
        "protocol": alert.protocol,
        "tactic": [dict(item) for item in alert.tactic],
        "technique": [dict(item) for item in alert.technique],
        "explanation": alert.explanation,
        "evidence": _jsonable(alert.evidence),
        "key": alert.key,
        "flow_id": alert.flow_id,
        "src_ip": alert.src_ip,
        "src_port": alert.src_port,
        "dst_ip": alert.dst_ip,
        "dst_port": alert.dst_port,
        "src_mac": alert.src_mac,
        "dst_mac": alert.dst_mac,
        "community_id": alert.community_id,
        "ts": alert.ts,
        "last_ts": alert.last_ts,
        "count": alert.count,
        "frames": list(alert.frames),
    }


_LAST_CONVERTED: list[tuple[Any, dict[str, Any]]] = [(None, {})]


def _jsonable(value: Any) -> Any:
    """Tuples and sets to lists, recursively (evidence is built from event fields)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    return value
