"""Records whose ``__dict__`` is a given dict (``events.base``, ``shard``): the pure-Python build.

The compiled build (``make compiled``) puts ``_records.c``'s extension beside this file, which
Python then imports instead: the same function in one C call, without the two wrapper calls here
(``object.__new__`` and ``object.__setattr__``, each building an argument tuple).  Every record a
run makes goes through it, twice in a multi-core run (the worker builds it, the parent rebuilds it
from the pipe).  ``rebuilt`` takes a whole batch off the workers' pipe (``shard.unmarshalled``).
"""

from __future__ import annotations

from typing import Any, TypeVar

Record = TypeVar("Record")


def record(cls: type[Record], fields: dict[str, Any]) -> Record:
    """An instance of ``cls`` whose ``__dict__`` is ``fields`` (no ``__init__`` run)."""
    instance: Record = object.__new__(cls)
    object.__setattr__(instance, "__dict__", fields)
    return instance


def rebuilt(classes: list[Any], items: list[Any]) -> list[Any]:
    """A batch as ``shard.marshalled`` wrote it, as the parent's (order, index, kind, record) tuples.

    ``classes``: per class number, (class, field names, a dict of every field: the template).
    ``items``: (order, index, kind, number, payload); number < 0: payload is the item's record as
    it is; else a record of that class from payload, its field values in field order (the
    template copied, its values set: the keys keep field order) or its whole field dict.
    """
    batch: list[Any] = []
    for item in items:
        if type(item) is not tuple or len(item) != 5:
            raise ValueError("rebuilt(): an item is not a 5-tuple")
        number: int = item[3]
        payload = item[4]
        if number < 0:
            batch.append((item[0], item[1], item[2], payload))
            continue
        known = classes[number]
        if type(payload) is tuple:
            names = known[1]
            if len(payload) != len(names):
                raise ValueError("rebuilt(): a record's values do not match its fields")
            fields: dict[str, Any] = known[2].copy()
            for position in range(len(names)):
                fields[names[position]] = payload[position]
        elif type(payload) is dict:
            fields = payload
        else:
            raise TypeError("rebuilt(): a record is neither a tuple nor a dict")
        batch.append((item[0], item[1], item[2], record(known[0], fields)))
    return batch
