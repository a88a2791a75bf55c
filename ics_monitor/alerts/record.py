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
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import orjson
from mypy_extensions import mypyc_attr

from ics_monitor.events.base import field_template, record_from


class AlertSeverity(IntEnum):
    """How urgent an alert is (1 low .. 4 critical); the name travels beside the number."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


SEVERITY_NAMES: dict[int, str] = {member.value: member.name.lower() for member in AlertSeverity}
# The first frames of an alert kept as evidence (a throttled flood must not grow the record).
MAX_FRAMES: Final = 10


# An ordinary class even when this module is compiled (mypyc): orjson serialises it as a dataclass,
# which it cannot do for a native class (it crashed).  Backed by its ``__dict__`` (no slots), so
# ``new_alert`` can install a filled field template instead of 28 frozen-attribute stores.
@mypyc_attr(native_class=False)
@dataclass(frozen=True, kw_only=True)
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


_ALERT_TEMPLATE: Final = field_template(Alert, event_type="alert")


def new_alert(
    alert_id: str,
    rule_id: str,
    rule_name: str,
    title: str,
    severity: int,
    severity_name: str,
    category: str,
    protocol: str | None,
    tactic: tuple[dict[str, str], ...],
    technique: tuple[dict[str, str], ...],
    explanation: str,
    evidence: dict[str, Any],
    key: str,
    flow_id: str | None,
    src_ip: str | None,
    src_port: int | None,
    dst_ip: str | None,
    dst_port: int | None,
    src_mac: str | None,
    dst_mac: str | None,
    community_id: str | None,
    ts: float,
    last_ts: float,
    count: int,
    frames: tuple[int, ...],
) -> Alert:
    """An ``Alert`` equal to ``Alert(...)`` with these fields, built as the protocol events are.

    A copy of the field template filled in and installed as the instance ``__dict__`` (see
    ``events.base``): the generated frozen ``__init__`` would store each field through
    ``object.__setattr__``, a third of building an alert.  Every field is given (no defaults).
    """
    values = _ALERT_TEMPLATE.copy()
    values["alert_id"] = alert_id
    values["rule_id"] = rule_id
    values["rule_name"] = rule_name
    values["title"] = title
    values["severity"] = severity
    values["severity_name"] = severity_name
    values["category"] = category
    values["protocol"] = protocol
    values["tactic"] = tactic
    values["technique"] = technique
    values["explanation"] = explanation
    values["evidence"] = evidence
    values["key"] = key
    values["flow_id"] = flow_id
    values["src_ip"] = src_ip
    values["src_port"] = src_port
    values["dst_ip"] = dst_ip
    values["dst_port"] = dst_port
    values["src_mac"] = src_mac
    values["dst_mac"] = dst_mac
    values["community_id"] = community_id
    values["ts"] = ts
    values["last_ts"] = last_ts
    values["count"] = count
    values["frames"] = frames
    return record_from(Alert, values)


def make_alert_id(rule_id: str, key: str, ts: float) -> str:
    """Deterministic id: the same capture gives the same ids run after run (blake2b, 16 hex digits)."""
    text = f"{rule_id}|{key}|{ts:.6f}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def updated(alert: Alert, *, last_ts: float, count: int, frames: tuple[int, ...]) -> Alert:
    """A copy of ``alert`` standing for more occurrences (same id).

    As ``dataclasses.replace`` (the class has no ``__post_init__``), without its walk over the
    fields: the field values copied, three replaced, installed as the new record's ``__dict__``.
    """
    values = dict(alert.__dict__)
    values["last_ts"] = last_ts
    values["count"] = count
    values["frames"] = frames[:MAX_FRAMES]
    return record_from(Alert, values)


_WHY: Final = " Why it matters: "


def amended(alert: Alert, evidence: dict[str, Any], sentence: str) -> Alert:
    """A copy of ``alert`` (same id) with ``evidence`` and ``sentence`` added to what happened.

    For what became known after the alert went out: the device's answer to the request it is about
    (``Emitter.outcome``).  The sentence goes at the end of the explanation's first part.
    """
    values = dict(alert.__dict__)
    values["evidence"] = evidence
    what, why, rest = alert.explanation.partition(_WHY)
    values["explanation"] = f"{what} {sentence}{why}{rest}" if why else f"{what} {sentence}"
    return record_from(Alert, values)


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
    # The record's own field dict copied (its keys in field order, as every construction path
    # installs or sets them: ``new_alert``, ``updated``, the dataclass ``__init__``), then the four
    # fields JSON wants otherwise: a fifth of the work of reading 26 attributes of a Python class.
    fields: dict[str, Any] = alert.__dict__
    data = dict(fields)
    data["tactic"] = [dict(item) for item in fields["tactic"]]
    data["technique"] = [dict(item) for item in fields["technique"]]
    data["evidence"] = _jsonable(fields["evidence"])
    data["frames"] = list(fields["frames"])
    return data


_LAST_CONVERTED: list[tuple[Any, dict[str, Any]]] = [(None, {})]


def alert_json(alert: Alert) -> bytes:
    """``alert_to_dict`` as JSON text (keys in field order), as the store and the alerts log keep it.

    Kept, as there, for the same alert object: the second sink reuses the first one's text.
    """
    last = _LAST_JSON[0]
    if last[0] is alert:
        return last[1]
    try:
        # The record itself: orjson writes a dataclass's field dict in order, tuples as arrays and
        # dicts with string keys as they are, which is the converted dict's text, made without the
        # copy (half of what handing an alert to the store cost the analysing process, its writer
        # thread aside).  Evidence holding a set, a key that is not a string or a type orjson
        # refuses goes through the conversion.
        text = orjson.dumps(alert)
    except TypeError:
        text = orjson.dumps(alert_to_dict(alert))
    _LAST_JSON[0] = (alert, text)
    return text


_LAST_JSON: list[tuple[Any, bytes]] = [(None, b"")]


def _jsonable(value: Any) -> Any:
    """Tuples and sets to lists, recursively (evidence is built from event fields)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    return value
