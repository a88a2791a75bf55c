"""A record whose ``__dict__`` is a given dict (``events.base``): the pure-Python build.

The compiled build (``make compiled``) puts ``_records.c``'s extension beside this file, which
Python then imports instead: the same function in one C call, without the two wrapper calls here
(``object.__new__`` and ``object.__setattr__``, each building an argument tuple).  Every record a
run makes goes through it, twice in a multi-core run (the worker builds it, the parent rebuilds it
from the pipe).
"""

from __future__ import annotations

from typing import Any, TypeVar

Record = TypeVar("Record")


def record(cls: type[Record], fields: dict[str, Any]) -> Record:
    """An instance of ``cls`` whose ``__dict__`` is ``fields`` (no ``__init__`` run)."""
    instance: Record = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    return instance
