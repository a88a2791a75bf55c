"""How often a run's processes let Python's cyclic garbage collector walk the heap.

A run allocates records, tuples and dicts per packet and per record; reference counting frees
them.  None of them sits in a reference cycle: over a whole replay of a million records the
collector freed nothing but startup's few hundred objects.  Yet each collection of the youngest
generation walks every object allocated since the previous one that is still alive: the
analysis's growing state (assets, conversations, alert keys) and the batches in flight.  At a
threshold of 50,000 that was 16 collections in one replay and 0.68 s of the analysing process
on the Modbus every-function bench line (6% of it; 0.27 s, 4.6%, on S7), measured with
``gc.callbacks``.

The collector stays on but runs after a million net allocations rather than fifty thousand: a
cycle made by a future change, or by an exception's traceback, is still freed, only later.  Young
cyclic garbage waits at most a million allocations; a cycle that was still alive at a young
collection has moved to an older generation and waits for that one's turn (every tenth young
collection, and CPython's full collections), as it did at the old threshold, twenty times sooner.
``tests/unit/core/test_collector.py`` holds the premise (no cycle per record) on every protocol.
What startup loaded (modules, rules, a baseline) is frozen, so no collection walks it.  While a
baseline is built and at the end of a run the collector is paused (``collector_paused``): what
is built, or the run's state, all still alive, would be walked for nothing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from typing import Final

# Net allocations of tracked objects between collections of the youngest generation; the older
# generations keep CPython's ratios (one per ten of the younger).
YOUNG_THRESHOLD: Final = 1_000_000


def tune_collector() -> None:
    """Freeze what is loaded so far and set this process's collection thresholds.

    Every process of a run calls it: the CLI's, and each shard worker (a fork server's child
    starts at CPython's default, a collection every 700 allocations).
    """
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 10, 10)


# False in the command-line process (``cli.app.main``): it exits once its command is done, so the
# collector stays off after a run's end (``cli.app._analyse`` passes it as ``resume``).
resume_after_run = True


@contextlib.contextmanager
def collector_paused(*, freeze: bool = False, resume: bool = True) -> Iterator[None]:
    """No collection until the block is left: while it only allocates what stays alive.

    The end of a run: the run's whole state is still alive (assets, conversations, detector
    tables), nearly all of it allocated since the last collection, and what the end allocates
    (every asset's dict, the summary) started a collection of the youngest generation that
    walked all of it to free nothing, 0.27 s of the S7 bench line's 7.9 s (``gc.callbacks``).
    Building a baseline: millions of lists and dicts, none in a cycle, walked by every
    collection they trigger (a third to a half of loading 5,000 conversations).

    Left, the collector is as it was before; ``freeze``: what was built is frozen first
    (``gc.freeze``), so no later collection walks it either; ``resume`` False: it stays off (a
    process about to exit has nothing to gain from that walk).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled and resume:
            gc.enable()
