"""Dedup and throttling: one alert per (rule, key) and window, then counts.

The first occurrence of a (rule id, key) goes out at once.  Later occurrences within the rule's
window (capture seconds since the first) are only counted: ``last_ts``, ``count`` and the first few
frames grow.  When the window has passed (an occurrence after it, ``flush(now)`` or the end of
input), an update of the alert goes out if it stood for more than one occurrence: the same
``alert_id`` with the final count, which stores upsert.  A window of 0 turns throttling off for the
rule.  The table of open groups is capped; the oldest group is closed (and its update emitted) when
the cap is hit, so a storm of distinct keys costs bounded memory.  ``flush(now)`` finds the ended
windows through a heap of window ends, not by walking every open group: a long replay with many
alerting keys flushes every few capture seconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Final

from ics_monitor.alerts.record import MAX_FRAMES, Alert, updated

# Open (rule, key) groups.  Each holds its first alert (with its explanation and evidence) and
# came to 1.9 KB measured (20,000 DNP3 restart alerts of distinct keys, tracemalloc); 20k bounds
# the table near 40 MB even when every key is distinct (a scan), and a real network has far fewer
# alerting keys at a time.
MAX_GROUPS: Final = 20_000


class _Group:
    __slots__ = ("alert", "count", "end", "frames", "last_ts", "seq")

    def __init__(self, alert: Alert, window: float, seq: int) -> None:
        self.seq = seq  # creation order: the table's order, kept by flushes
        self.alert = alert
        self.count = 1
        self.last_ts = alert.ts
        self.end = alert.ts + window
        self.frames = list(alert.frames)


class Throttle:
    """Holds the open groups; ``offer`` returns what to emit now."""

    def __init__(self, max_groups: int = MAX_GROUPS) -> None:
        self.max_groups = max_groups
        self._groups: dict[tuple[str, str], _Group] = {}
        # (window end, seq, group key) per group created; entries of groups closed otherwise are
        # skipped when they come up (their seq no longer matches), and dropped in bulk if they pile up.
        self._ends: list[tuple[float, int, tuple[str, str]]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._groups)

    def offer(self, alert: Alert, window: float) -> list[Alert]:
        """Account one occurrence; return the alerts to emit now (maybe none)."""
        if window <= 0:
            return [alert]
        group_key = (alert.rule_id, alert.key)
        group = self._groups.get(group_key)
        out: list[Alert] = []
        if group is not None:
            if alert.ts <= group.end:
                group.count += 1
                group.last_ts = max(group.last_ts, alert.last_ts)
                if len(group.frames) < MAX_FRAMES:
                    group.frames.extend(alert.frames[: MAX_FRAMES - len(group.frames)])
                return out
            del self._groups[group_key]
            self._close(group, out)
        elif len(self._groups) >= self.max_groups:
            oldest = next(iter(self._groups))
            self._close(self._groups.pop(oldest), out)
        self._seq += 1
        group = self._groups[group_key] = _Group(alert, window, self._seq)
        ends = self._ends
        heapq.heappush(ends, (group.end, group.seq, group_key))
        if len(ends) > 2 * self.max_groups + 1024:
            self._ends = [(g.end, g.seq, key) for key, g in self._groups.items()]
            heapq.heapify(self._ends)
        out.append(alert)
        return out

    def absorb(self, rule_id: str, key: str, ts: float, last_ts: float, frames: Iterable[int]) -> bool:
        """Count an occurrence in its open window, as ``offer`` would, without an alert built for it.

        False when (rule id, key) has no open group or its window has passed: build the alert and
        ``offer`` it then.  A storm of one alert key costs a dict lookup per occurrence.
        """
        group = self._groups.get((rule_id, key))
        if group is None or ts > group.end:
            return False
        group.count += 1
        group.last_ts = max(group.last_ts, last_ts)
        room = MAX_FRAMES - len(group.frames)
        if room > 0:
            group.frames.extend(tuple(frames)[:room])
        return True

    def open_alert(self, rule_id: str, key: str, ts: float) -> Alert | None:
        """The alert of (rule id, key)'s group when its window is open at ``ts``, else None."""
        group = self._groups.get((rule_id, key))
        if group is None or ts > group.end:
            return None
        return group.alert

    def stretch(self, rule_id: str, key: str, last_ts: float, frames: Iterable[int]) -> None:
        """More of what an open group's alert is about, seen up to ``last_ts``: not an occurrence.

        ``last_ts`` and the frames grow; the count does not (``Emitter.widen``).
        """
        group = self._groups.get((rule_id, key))
        if group is None:
            return
        group.last_ts = max(group.last_ts, last_ts)
        room = MAX_FRAMES - len(group.frames)
        if room > 0:
            group.frames.extend(frame for frame in tuple(frames)[:room] if frame not in group.frames)

    def amend(self, alert: Alert, replacement: Alert, window: float) -> Alert | None:
        """Put ``replacement`` (the same alert, more evidence) in the place of ``alert``; what to emit.

        In an open group: the group's alert becomes the replacement (its update at the close
        carries it) and the replacement goes out now with the group's counts so far.  A rule
        without throttling: the replacement as it is.  A group already closed (its update with the
        final count is out) or replaced: None, so no copy with an older count follows it.
        """
        if window <= 0:
            return replacement
        group = self._groups.get((alert.rule_id, alert.key))
        if group is None or group.alert is not alert:
            return None
        group.alert = replacement
        if (
            group.count == 1
            and group.last_ts == replacement.last_ts
            and group.frames == list(replacement.frames)
        ):
            return replacement
        return updated(replacement, last_ts=group.last_ts, count=group.count, frames=tuple(group.frames))

    def flush(self, now: float | None = None) -> list[Alert]:
        """Close the groups whose window ended before ``now`` (all when ``now`` is None)."""
        out: list[Alert] = []
        if now is None:
            groups = list(self._groups.values())
            self._groups.clear()
            self._ends.clear()
        else:
            ends = self._ends
            table = self._groups
            groups = []
            while ends and ends[0][0] < now:
                _, seq, key = heapq.heappop(ends)
                group = table.get(key)
                if group is not None and group.seq == seq:
                    groups.append(table.pop(key))
            if len(groups) > 1:
                groups.sort(key=_creation)  # the table's order, as a walk over it would give
        for group in groups:
            self._close(group, out)
        return out

    @staticmethod
    def _close(group: _Group, out: list[Alert]) -> None:
        if group.count > 1:
            out.append(
                updated(group.alert, last_ts=group.last_ts, count=group.count, frames=tuple(group.frames))
            )


def _creation(group: _Group) -> int:
    return group.seq
