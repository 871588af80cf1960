"""A LogQuery's volume as SQL over the SQLite store: the matching entries of one time bucket,
counted per level (aggregator/histogram.py runs it once per bucket)."""
from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from podvisor.aggregator.histogram import LEVEL_GROUPS, LEVEL_SPELLINGS, Histogram, choose_buckets, time_range
from podvisor.aggregator.query import LogQuery, service_names
from podvisor.aggregator.store.select import existing_services, matching, oldest_ts, seq_bounds

_LEVEL_SUMS = ", ".join("sum(logs.level IN (" + ", ".join(f"'{name}'" for name in names) + "))"
                       for names in LEVEL_SPELLINGS)


def build_count(query: LogQuery, *, services: tuple[str, ...] | None,
                seq_range: tuple[int | None, int | None]) -> tuple[str, list[Any]]:
    """SQL returning one row: how many entries match `query` (its since/until being one bucket),
    then how many of them are debug, info, warning, error and critical (the rest is `other`).

    One statement per bucket, not one GROUP BY over the range: a GROUP BY of a long range sorts
    every row in a temporary b-tree, which cost twice the scan itself on a million rows. The rows
    are walked by seq within `seq_range` (seq_bounds of the bucket), not by time: stored
    in arrival order, a bucket's entries sit in one stretch of the table, read in order, where
    the index would look each row up apart. A filtered query uses its filter's index (pod,
    level...) within the same seq bounds, a search the FTS index."""
    source, _key, where, params = matching(query, services, seq_range, ts_indexed=False)
    sql = f"SELECT count(*), {_LEVEL_SUMS} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params



def volume(conn: sqlite3.Connection, query: LogQuery, *, wanted: int, now_ms: int) -> Histogram:
    """The histogram of `query` in one read snapshot: one count per bucket (build_count)."""
    since, until = time_range(query, now_ms, oldest_ts(conn))
    buckets = choose_buckets(since, until, wanted)
    counts: list[dict[str, int]] = [{} for _ in range(buckets.count)]
    services = None
    if query.service is not None:
        services = existing_services(conn, service_names(query.service))
        if not services:
            return Histogram(since, until, buckets, counts)
    for index, start in enumerate(buckets.starts()):
        # The bucket's part of the range: the first and last buckets may be cut by it.
        part = dataclasses.replace(query, since_ms=max(since, start), until_ms=min(until, start + buckets.width_ms - 1))
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
