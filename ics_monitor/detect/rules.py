"""Rules: ids, texts, severities, ATT&CK mapping, thresholds and enablement, loaded from ``rules/*.yaml``.

Detectors name their rules by id (``ICS-1001``) and read every threshold from the rule's ``params``;
nothing tunable lives in code.  Each YAML file holds one component's rules, and rule ids stay inside
that component's range (``RANGES``, documented in ``rules/README.md``).  Loading validates
everything (unique ids and names, ranges, severities 1-4, known ATT&CK ids, explanation templates
that format, and parameters of the kind the shipped rules give them: a count a whole number, a
time or ratio a number, 0 or more; a switch true or false; a list a list) so a bad edit fails at
start-up (or a live reload keeps the rules in force) with one clear message, not at the first
alert or inside a detector.

``what`` is a ``str.format`` template filled with the fields a detector passes (``{src_ip}``,
``{function}`` ...); ``why`` and ``check`` are plain text.  No I/O beyond reading the rule files.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ics_monitor.alerts.attack import tactic_refs, technique_refs
from ics_monitor.alerts.explain import explanation
from ics_monitor.core.yamlfile import load_yaml

# Rule-id ranges per rules file (file stem -> inclusive range); rules/README.md lists the same.
RANGES: dict[str, tuple[int, int]] = {
    "s7comm": (1000, 1099),
    "s7comm_plus": (1100, 1199),
    "dnp3": (1200, 1299),
    "modbus": (1300, 1399),
    "anomalies": (2000, 2099),
    "recon": (3000, 3099),
    "availability": (4000, 4099),
    "baseline": (5000, 5099),
    "policy": (6000, 6099),
    "network": (7000, 7099),
}

_RULE_ID = re.compile(r"^ICS-(\d{4})$")
_NAME = re.compile(r"^[a-z0-9_]+$")
_REQUIRED = ("id", "name", "title", "severity", "category", "tactics", "techniques", "what", "why", "check")
_KNOWN = {*_REQUIRED, "enabled", "protocol", "throttle", "params"}
DEFAULT_THROTTLE = 300.0


class RuleError(ValueError):
    """A rules file is malformed (configuration error: reported once, at load)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule as loaded (ATT&CK references resolved)."""

    rule_id: str
    name: str
    title: str
    severity: int
    category: str
    tactics: tuple[dict[str, str], ...]
    techniques: tuple[dict[str, str], ...]
    what: str
    why: str
    check: str
    enabled: bool = True
    protocol: str | None = None
    throttle: float = DEFAULT_THROTTLE
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    # The fields the three templates name (None: give them every field); see ``explain``.
    names: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", _template_names((self.what, self.why, self.check)))

    def explain(self, fields: dict[str, Any]) -> str:
        """What happened, why it matters, what to check: the three templates filled in.

        Only the fields the templates name are converted (an alert's fields are many more).
        """
        return explanation(self.what, self.why, self.check, self.names, fields)


_FIELD_ROOT = re.compile(r"[^.\[]*")


def _template_names(templates: Iterable[str]) -> frozenset[str] | None:
    """The field names ``str.format`` looks up in the templates (``{a.b}``, ``{a[0]}``: ``a``).

    None when a template cannot be parsed or nests fields in a format spec.
    """
    names: set[str] = set()
    try:
        for template in templates:
            for _, name, spec, _ in string.Formatter().parse(template):
                if name is None:
                    continue
                if spec and "{" in spec:
                    return None
                match = _FIELD_ROOT.match(name)
                names.add(match.group() if match is not None else name)
    except ValueError:
        return None  # a broken template: the load-time check reports it
    return frozenset(names)


def _rule_from(entry: Any, source: str, defaults: dict[str, Any]) -> Rule:
    if not isinstance(entry, dict):
        raise RuleError(f"{source}: every rule must be a mapping, got {entry!r}")
    label = f"{source}: rule {entry.get('id', '?')}"
    missing = [key for key in _REQUIRED if key not in entry]
    if missing:
        raise RuleError(f"{label}: missing {', '.join(missing)}")
    unknown = sorted(set(entry) - _KNOWN)
    if unknown:
        raise RuleError(f"{label}: unknown keys {', '.join(unknown)}")
    rule_id = str(entry["id"])
    match = _RULE_ID.match(rule_id)
    if match is None:
        raise RuleError(f"{label}: id must look like ICS-1234")
    stem = Path(source).stem
    if stem in RANGES:
        low, high = RANGES[stem]
        if not low <= int(match.group(1)) <= high:
            raise RuleError(f"{label}: id outside the {stem} range ICS-{low}..ICS-{high}")
    if not _NAME.match(str(entry["name"])):
        raise RuleError(f"{label}: name must be snake_case")
    severity = entry["severity"]
    if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 4:
        raise RuleError(f"{label}: severity must be 1 (low) .. 4 (critical)")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{label}: enabled must be true or false, not {enabled!r}")
    protocol = entry.get("protocol")
    if protocol is not None and not isinstance(protocol, str):
        raise RuleError(f"{label}: protocol must be a protocol name, not {protocol!r}")
    params = {**defaults.get("params", {}), **(entry.get("params") or {})}
    try:
        tactics = tactic_refs(list(entry["tactics"]))
        techniques = technique_refs(list(entry["techniques"]))
    except ValueError as error:
        raise RuleError(f"{label}: {error}") from None
    if not tactics or not techniques:
        raise RuleError(f"{label}: needs at least one tactic and one technique")
    throttle = entry.get("throttle", defaults.get("throttle", DEFAULT_THROTTLE))
    if isinstance(throttle, bool) or not isinstance(throttle, (int, float)) or not 0 <= throttle < math.inf:
        raise RuleError(f"{label}: throttle must be a number of seconds, 0 or more, not {throttle!r}")
    throttle = float(throttle)
    rule = Rule(
        rule_id=rule_id,
        name=str(entry["name"]),
        title=str(entry["title"]),
        severity=severity,
        category=str(entry["category"]),
        tactics=tactics,
        techniques=techniques,
        what=str(entry["what"]),
        why=str(entry["why"]),
        check=str(entry["check"]),
        enabled=enabled,
        protocol=protocol,
        throttle=throttle,
        params=params,
        source=source,
    )
    try:
        rule.explain({})
    except (ValueError, IndexError, AttributeError) as error:
        raise RuleError(f"{label}: 'what' template does not format: {error}") from None
    return rule


def _count(name: str) -> bool:
    """Whether a parameter is a count (a whole number), not a time, factor or ratio."""
    return name.startswith(("min_", "max_")) and not name.endswith("_seconds")


def _param_problem(name: str, value: Any, shipped: Any) -> str | None:
    """What ``value`` should be, given the shipped value of parameter ``name``; None if fine."""
    if isinstance(shipped, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(shipped, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "a number"
        if isinstance(shipped, int) and _count(name) and not isinstance(value, int):
            return "a whole number"
        if not 0 <= value < math.inf:
            return "a number, 0 or more"
        return None
    if isinstance(shipped, str):
        return None if isinstance(value, str) else "text"
    if isinstance(shipped, list):
        if not isinstance(value, list):
            return "a list"
        if shipped:
            for item in value:
                problem = _param_problem(name, item, shipped[0])
                if problem is not None:
                    return f"a list, each item {problem}"
        return None
    if isinstance(shipped, dict):
        return None if isinstance(value, dict) else "a mapping"
    return None


def check_params(rules: Iterable[Rule], shipped: RuleSet) -> None:
    """Every parameter a shipped rule has, present and of its kind (``RuleError`` naming the first).

    Detectors read parameters without converting them (compiled, a count must be an int): a
    rules directory copied from an older release, or edited by hand, is checked against the
    shipped rules here, once, instead of failing inside a detector.
    """
    for rule in rules:
        reference = shipped.by_id.get(rule.rule_id)
        if reference is None:
            continue
        for name, default in reference.params.items():
            if name not in rule.params:
                raise RuleError(f"{rule.source}: rule {rule.rule_id} lacks parameter {name!r}")
            problem = _param_problem(name, rule.params[name], default)
            if problem is not None:
                raise RuleError(
                    f"{rule.source}: rule {rule.rule_id} parameter {name!r} must be {problem}, "
                    f"not {rule.params[name]!r}"
                )


def default_directory() -> Path:
    """The shipped rules: package data when installed so, else ``rules/`` at the repo root."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "rules", here.parents[2] / "rules"):
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    raise RuleError(f"no rules directory found beside the package ({here.parents[2] / 'rules'})")


class RuleSet:
    """All rules by id; detectors ask it whether a rule is on and for its parameters."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules: dict[str, Rule] = {}
        names: dict[str, str] = {}
        for rule in rules:
            if rule.rule_id in self._rules:
                raise RuleError(f"rule {rule.rule_id} defined twice ({rule.source})")
            if rule.name in names:
                raise RuleError(f"rule name {rule.name!r} used by {names[rule.name]} and {rule.rule_id}")
            self._rules[rule.rule_id] = rule
            names[rule.name] = rule.rule_id

    @classmethod
    def load(cls, directory: Path | None = None) -> RuleSet:
        """Read every ``*.yaml`` of ``directory`` (default: the shipped rules)."""
        directory = default_directory() if directory is None else Path(directory)
        if not directory.is_dir():
            raise RuleError(f"rules directory {directory} does not exist")
        rules: list[Rule] = []
        for path in sorted(directory.glob("*.yaml")):
            try:
                document = load_yaml(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as error:
                raise RuleError(f"{path.name}: not valid YAML: {error}") from None
            if not isinstance(document, dict) or not isinstance(document.get("rules"), list):
                raise RuleError(f"{path.name}: expected a mapping with a 'rules' list")
            defaults = document.get("defaults") or {}
            rules.extend(_rule_from(entry, path.name, defaults) for entry in document["rules"])
        if not rules:
            raise RuleError(f"no rules in {directory}")
        loaded = cls(rules)
        try:
            shipped = default_directory()
        except RuleError:  # installed without the shipped rules: nothing to compare with
            shipped = directory
        if directory.resolve() != shipped.resolve():
            check_params(loaded, cls.load(shipped))
        else:
            check_params(loaded, loaded)  # the shipped rules themselves: no value of a wrong kind
        return loaded

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules.values())

    def __len__(self) -> int:
        return len(self._rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._rules

    @property
    def by_id(self) -> Mapping[str, Rule]:
        """Every rule by id (not to be changed: ``configured`` makes a changed copy)."""
        return self._rules

    def get(self, rule_id: str) -> Rule:
        """The rule ``rule_id``; a detector naming an unknown rule is a programming error."""
        try:
            return self._rules[rule_id]
        except KeyError:
            raise KeyError(f"rule {rule_id} is not defined in the rules files") from None

    def enabled(self, rule_id: str) -> bool:
        """Whether ``rule_id`` is defined and switched on."""
        rule = self._rules.get(rule_id)
        return rule is not None and rule.enabled

    def param(self, rule_id: str, name: str) -> Any:
        """A rule parameter; a missing one is a configuration error naming the file."""
        rule = self.get(rule_id)
        if name not in rule.params:
            raise RuleError(f"{rule.source}: rule {rule_id} lacks parameter {name!r}")
        return rule.params[name]

    def configured(self, rule_id: str, *, enabled: bool | None = None, **params: Any) -> RuleSet:
        """A copy with one rule switched and/or some of its parameters changed (tests, tuning)."""
        rule = self.get(rule_id)
        changed = replace(
            rule,
            enabled=rule.enabled if enabled is None else enabled,
            params={**rule.params, **params},
        )
        return RuleSet(changed if r.rule_id == rule_id else r for r in self._rules.values())
