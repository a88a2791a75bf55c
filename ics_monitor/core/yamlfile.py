"""YAML documents (rules, zones, settings) read with libyaml's parser when PyYAML has it.

PyYAML's wheels bundle libyaml; its pure-Python parser is the fallback.  The shipped rules took
0.15 s to read with the pure-Python one, at the start of every run; libyaml reads them in 0.02 s.
Both are the safe loaders: plain YAML types only.
"""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """The one YAML document in ``text`` (None when empty); ``yaml.YAMLError`` when it is not YAML."""
    return yaml.load(text, Loader=SafeLoader)
