"""YAML documents (rules, zones, settings, baselines) read with libyaml's parser when PyYAML has it.

PyYAML's wheels bundle libyaml; its pure-Python parser is the fallback.  The shipped rules took
0.15 s to read with the pure-Python one, at the start of every run; libyaml reads them in 0.02 s.
Both are the safe loaders (plain YAML types only), with one change to YAML 1.1's implicit types:
a plain scalar holding a colon is never a number.  YAML 1.1 reads ``10:20:30:40:50:51`` as the
base-60 integer 2,488,057,851 and ``1:30.5`` as the float 90.5; in these files such a scalar is a
MAC address, an IPv6 address or a time of day written without quotes by an analyst, and must stay
the text it is (a MAC read as a number was refused by the compiled baseline loader and taken as a
number by the interpreted one).  Quoted scalars and explicit ``!!int`` tags are untouched.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


class _NoColon:
    """A resolver pattern that never matches text with a colon (YAML 1.1's base-60 numbers)."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def match(self, value: str) -> re.Match[str] | None:
        return None if ":" in value else self.pattern.match(value)


class SafeLoader(_Base):  # type: ignore[valid-type,misc]  # CSafeLoader or SafeLoader, as PyYAML has
    """The safe loader, reading base-60 looking scalars as text (see the module's docstring)."""


SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, _NoColon(pattern) if tag in _NUMBER_TAGS else pattern) for tag, pattern in resolvers]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """The one YAML document in ``text`` (None when empty); ``yaml.YAMLError`` when it is not YAML."""
    return yaml.load(text, Loader=SafeLoader)
