"""A dict that forgets its oldest entries past a limit: the state tables of detectors and baselines."""

from __future__ import annotations

from itertools import islice
from typing import Any

from mypy_extensions import mypyc_attr


# An ordinary class even when this module is compiled (mypyc): a native subclass of dict deletes
# through ``super().__delitem__`` called with the key as its argument tuple, so deleting a tuple key
# raised TypeError (eviction failed, and was retried on every insertion after).
@mypyc_attr(native_class=False)
class BoundedDict(dict[Any, Any]):
    """A dict that forgets its oldest entries past ``limit`` (state per key in rate detectors)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        # The limit first: unpickling a dict subclass sets its items before its attributes.
        return (self.__class__, (self.limit,), None, None, iter(self.items()))

    def __setitem__(self, key: Any, value: Any) -> None:
        # The size first: most dicts are below their limit, and then the key needs no lookup.
        if len(self) >= self.limit and key not in self:
            # Insertion order: drop the oldest eighth in one go so the cost is amortised (taking
            # only those keys, not a list of all of them).
            for old in list(islice(self, max(1, self.limit // 8))):
                del self[old]
        super().__setitem__(key, value)
