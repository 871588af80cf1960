"""A LogQuery as SQL over the SQLite store: the keyset-paged select and its time-range bounds."""
from __future__ import annotations

import sqlite3
from typing import Any

from podvisor.aggregator.query import LogQuery
from podvisor.aggregator.store import schema


def existing_services(conn: sqlite3.Connection, names: tuple[str, ...]) -> tuple[str, ...]:
    """Keep the names that occur; one name lets the index stream rows in seq order, IN cannot."""
    found = []
    for name in names:
        if conn.execute("SELECT 1 FROM logs WHERE service_name = ? LIMIT 1", (name,)).fetchone():
            found.append(name)
    return tuple(found)


def seq_bounds(conn: sqlite3.Connection, query: LogQuery) -> tuple[int | None, int | None] | None:
    """The seq range holding every entry in the query's time range (schema.logs_spans), as
    (lowest, highest) with None for an open end; None when no stored entry can be in the range."""
    low = high = None
    if query.since_ms is not None:
        low = conn.execute(schema.SEQ_SINCE_SQL, schema.since_ranges(query.since_ms)).fetchone()[0]
        if low is None:
            return None
    if query.until_ms is not None:
        high = conn.execute(schema.SEQ_UNTIL_SQL, schema.until_ranges(query.until_ms)).fetchone()[0]
        if high is None:
            return None
    return low, high


def oldest_ts(conn: sqlite3.Connection, tries: int = 50) -> int | None:
    """The timestamp of the oldest entry, found from the oldest seconds in logs_spans (there is no
    index on ts); None when the store is empty or the first `tries` seconds recorded hold nothing."""
    spans = conn.execute("SELECT bucket, min_seq, max_seq FROM logs_spans WHERE unit = 1000 "
                         "ORDER BY bucket LIMIT ?", (tries,)).fetchall()
    for second, low, high in spans:
        ts = conn.execute("SELECT min(ts) FROM logs WHERE seq BETWEEN ? AND ? AND ts >= ? AND ts < ?",
                          (low, high, second * 1000, second * 1000 + 1000)).fetchone()[0]
        if ts is not None:
            return ts
    return None


def build_select(query: LogQuery, *, services: tuple[str, ...] | None, order: str,
                 after: int | None, limit: int, seq_range: tuple[int | None, int | None] = (None, None),
                 with_ts: bool = False) -> tuple[str, list[Any]]:
    """SQL returning (seq, body) of matching entries in seq order, keyset-paged after `after`
    ((seq, body, ts) `with_ts`: the stored time in epoch ms, so no one parses a body for it).

    `seq_range` (from seq_bounds) narrows the walk to the seqs the time range can hold: the time
    conditions alone cannot stop an index walk in seq order early."""
    where: list[str] = []
    params: list[Any] = []
    if query.text:
        # Drive the join from FTS5: it yields rowids in order (asc or desc) and honours the rowid
        # bound, so ORDER BY ... LIMIT stops early even for a very common word.
        source = "logs_fts CROSS JOIN logs ON logs.seq = logs_fts.rowid"
        key = "logs_fts.rowid"
        where.append("logs_fts MATCH ?")
        params.append(query.text)
    else:
        source, key = "logs", "logs.seq"
    if services is not None:
        _equal_any(where, params, "logs.service_name", services)
    if query.pods:
        _equal_any(where, params, "logs.pod", query.pods)
    if query.levels:
        _equal_any(where, params, "logs.level", query.levels)
        if not set(query.levels) & set(schema.COMMON_LEVELS):
            where.append(schema.NOTABLE_LEVEL_SQL)  # lets SQLite use the partial level index
    if query.request_id is not None:
        _equal_any(where, params, "logs.request_id", (query.request_id,))
    if query.since_ms is not None:
        where.append("logs.ts >= ?")
        params.append(query.since_ms)
    if query.until_ms is not None:
        where.append("logs.ts <= ?")
        params.append(query.until_ms)
    if query.probes != "include":
        # `->` gives JSON text, so only a JSON true counts as marked (not "true" or 1); an entry
        # without the key gives NULL, which IS NOT 'true'.
        where.append("logs.body -> '$.probe' " + ("= 'true'" if query.probes == "only" else "IS NOT 'true'"))
    for name, value in query.fields:
        # ->> matches string values by their text; -> matches numbers, booleans and null by
        # their JSON spelling (status=500, ok=true), so both kinds compare as the user typed them.
        path = f'$."{name}"'
        where.append("(logs.body ->> ? = ? OR logs.body -> ? = ?)")
        params.extend((path, value, path, value))
    low, high = seq_range
    if low is not None:
        where.append(f"{key} >= ?")
        params.append(low)
    if high is not None:
        where.append(f"{key} <= ?")
        params.append(high)
    if after is not None:
        where.append(f"{key} {'<' if order == 'desc' else '>'} ?")
        params.append(after)
    sql = f"SELECT logs.seq, logs.body{', logs.ts' if with_ts else ''} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {key} {'DESC' if order == 'desc' else 'ASC'} LIMIT ?"
    params.append(limit)
    return sql, params


def _equal_any(where: list[str], params: list[Any], column: str, values: tuple[str, ...]) -> None:
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
    params.extend(values)
