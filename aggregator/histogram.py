"""The volume histogram: a time range cut into buckets of a round width, and the matching entries
counted per bucket and level by the store (`LogStore.volume`; SQLite's SQL is in store/histogram.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from podvisor.aggregator.search import api_errors

if TYPE_CHECKING:
    from podvisor.aggregator.metrics import Metrics
    from podvisor.aggregator.query import LogQuery
    from podvisor.aggregator.store.base import LogStore

# Levels are stored lower-cased; the usual spellings count as their level, any other (or none)
# as `other`, so the answer has a handful of series whatever the apps write.
LEVEL_GROUPS = ("debug", "info", "warning", "error", "critical", "other")
LEVEL_SPELLINGS = (("debug",), ("info",), ("warning", "warn"), ("error",), ("critical", "fatal"))  # all but other
DEFAULT_BUCKETS = 60
MAX_BUCKETS = 1000
SECOND, MINUTE, HOUR, DAY = 1000, 60_000, 3_600_000, 86_400_000
# Widths a reader can add up at a glance; past the last, whole days.
ROUND_WIDTHS_MS = (SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
                   MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
                   HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY)
EMPTY_STORE_SPAN_MS = HOUR  # the range shown when nothing is stored and no `since` is given


@dataclass(frozen=True)
class Buckets:
    """`count` buckets of `width_ms` from `start_ms` (a multiple of the width, at or before the
    range's start), the last one holding the range's end."""

    start_ms: int
    width_ms: int
    count: int

    def starts(self) -> list[int]:
        return [self.start_ms + i * self.width_ms for i in range(self.count)]


def _aligned(since_ms: int, until_ms: int, width_ms: int) -> Buckets:
    start = since_ms // width_ms * width_ms  # floor division: aligned below for negative times too
    return Buckets(start, width_ms, (until_ms - start) // width_ms + 1)


def choose_buckets(since_ms: int, until_ms: int, wanted: int) -> Buckets:
    """The narrowest round width that covers [since_ms, until_ms] in at most `wanted` aligned
    buckets (at least one second: stored times are milliseconds, but nobody reads a 3 ms bar)."""
    if wanted < 1 or until_ms < since_ms:
        raise ValueError("need at least one bucket and since <= until")
    for width in ROUND_WIDTHS_MS:
        buckets = _aligned(since_ms, until_ms, width)
        if buckets.count <= wanted:
            return buckets
    days = max(1, math.ceil((until_ms - since_ms + 1) / wanted / DAY))
    while (buckets := _aligned(since_ms, until_ms, days * DAY)).count > wanted:
        days += 1
    return buckets


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket (index into `buckets.starts()`) and level group, and the range counted."""

    since_ms: int
    until_ms: int
    buckets: Buckets
    counts: list[dict[str, int]]

    @property
    def total(self) -> int:
        return sum(sum(bucket.values()) for bucket in self.counts)


def count(store: LogStore, query: LogQuery, *, wanted: int, now_ms: int, metrics: Metrics | None = None,
          endpoint: str = "api_histogram") -> Histogram:
    """Count the entries matching `query` in its time range, by bucket and level. The range is the
    query's since/until; an open start is the oldest stored entry, an open end `now_ms`. Raises
    ApiError (400 bad search, 503 timeout or no store)."""
    with api_errors(metrics, endpoint):
        return store.volume(query, wanted=wanted, now_ms=now_ms)


def time_range(query: LogQuery, now_ms: int, oldest_ms: int | None) -> tuple[int, int]:
    """The range a histogram covers: the query's since/until, an open end now (or since, if later),
    an open start the oldest stored entry (an hour back when the store is empty)."""
    until = query.until_ms
    if until is None:
        until = now_ms if query.since_ms is None else max(now_ms, query.since_ms)
    since = query.since_ms
    if since is None:
        since = min(oldest_ms, until) if oldest_ms is not None else until - EMPTY_STORE_SPAN_MS
    return since, until
