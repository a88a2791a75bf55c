"""An alert's explanation: a rule's three templates (what, why, check) filled with the alert's fields.

Compiled (``ics_monitor.compiled``): every alert that leaves the throttle is explained, and an
alert-heavy capture (a sweep of every function from thousands of hosts) explains one alert per
twenty packets.  The templates are ``str.format`` strings; ``names`` are the fields they name
(``detect.rules`` finds them once, at load), so only those are converted; None gives them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class _Blank(dict[str, Any]):
    """Format mapping that renders a field the detector did not pass as ``?``."""

    def __missing__(self, key: str) -> str:
        return "?"


def explanation(what: str, why: str, check: str, names: frozenset[str] | None, fields: dict[str, Any]) -> str:
    """What happened, why it matters, what to check: the three templates filled in."""
    values = _Blank()
    if names is None:
        for key, value in fields.items():
            values[key] = as_text(value)
    else:
        for key in names:
            if key in fields:
                values[key] = as_text(fields[key])
    filled_what: str = what.format_map(values)
    filled_why: str = why.format_map(values)
    filled_check: str = check.format_map(values)
    return f"{filled_what.strip()} Why it matters: {filled_why.strip()} What to check: {filled_check.strip()}"


def as_text(value: Any) -> Any:
    """A value as explanations read it, never a Python repr.

    Lists read ``a, b, c`` (at most 16 items; mappings among them separated by ``;``), mappings
    ``key value, key value`` (``exception code 4``), other values as they are.
    """
    if isinstance(value, (str, int, float)) or value is None:
        return value  # most values: before the Mapping check, an ABC's (slow) instance check
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if not items:
            return "none"
        separator = ", "
        for item in items:
            if isinstance(item, (dict, Mapping)):
                separator = "; "
                break
        text = separator.join([str(as_text(item)) for item in items[:16]])
        return text + separator + "..." if len(items) > 16 else text
    if isinstance(value, (dict, Mapping)):
        pairs = [(key, item) for key, item in value.items() if item is not None and item != ""]
        if not pairs:
            return "none"
        text = ", ".join([f"{str(key).replace('_', ' ')} {as_text(item)}" for key, item in pairs[:16]])
        return text + ", ..." if len(pairs) > 16 else text
    return value
