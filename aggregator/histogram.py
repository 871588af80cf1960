"""The volume histogram: a time range cut into buckets of a round width, and the matching entries
counted per bucket and level (the SQL is in store/histogram.py)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from podvisor.aggregator.metrics import Metrics
from podvisor.aggregator.query import LogQuery, service_names
from podvisor.aggregator.search import reading
from podvisor.aggregator.store.histogram import LEVEL_GROUPS, OLDEST_TS_SQL, build_count
from podvisor.aggregator.store.select import existing_services, seq_bounds
from podvisor.aggregator.store.sqlite import Store

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


def count(store: Store, query: LogQuery, *, wanted: int, now_ms: int, metrics: Metrics | None = None,
          endpoint: str = "api_histogram") -> Histogram:
    """Count the entries matching `query` in its time range, by bucket and level. The range is the
    query's since/until; an open start is the oldest stored entry, an open end `now_ms`. Raises
    ApiError (400 bad search, 503 timeout or no store)."""
    with reading(store, query, metrics, endpoint) as conn:
        until = query.until_ms
        if until is None:
            until = now_ms if query.since_ms is None else max(now_ms, query.since_ms)
        since = query.since_ms
        if since is None:
            oldest = conn.execute(OLDEST_TS_SQL).fetchone()[0]
            since = min(oldest, until) if oldest is not None else until - EMPTY_STORE_SPAN_MS
        buckets = choose_buckets(since, until, wanted)
        counts: list[dict[str, int]] = [{} for _ in range(buckets.count)]
        services = None
        if query.service is not None:
            services = existing_services(conn, service_names(query.service))
            if not services:
                return Histogram(since, until, buckets, counts)
        for index, start in enumerate(buckets.starts()):
            # The bucket's part of the range: the first and last buckets may be cut by it.
            part = dataclasses.replace(query, since_ms=max(since, start),
                                       until_ms=min(until, start + buckets.width_ms - 1))
            seq_range = seq_bounds(conn, part)
            if seq_range is None:
                continue  # nothing stored in this bucket's time at all
            sql, params = build_count(part, services=services, seq_range=seq_range)
            total, *levels = conn.execute(sql, params).fetchone()
            if total:
                known = dict(zip(LEVEL_GROUPS, (n or 0 for n in levels), strict=False))
                known["other"] = total - sum(known.values())
                counts[index] = {level: n for level, n in known.items() if n}
    return Histogram(since, until, buckets, counts)
