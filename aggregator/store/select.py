"""A LogQuery as SQL over the SQLite store: the keyset-paged select, its time-range bounds, and
the FTS5 expression of its search."""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from podvisor.aggregator.query import LogQuery, Term, TextSearch
from podvisor.aggregator.store import schema


def fts_string(term: Term) -> str:
    """A term as an FTS5 string (a `"` in it doubled): whatever it holds, FTS5 reads tokens, never
    an operator (NEAR, OR, NOT, column filters, ^); a prefix term gets its `*` outside the quotes."""
    return '"' + term.text.replace('"', '""') + '"' + ("*" if term.prefix else "")


def fts_expression(search: TextSearch) -> str | None:
    """The MATCH expression: every included term, and NOT any excluded one. None when nothing is
    included: FTS5's NOT is binary only, so `excluded_match` is then left out by the caller."""
    if not search.include:
        return None
    wanted = " AND ".join(fts_string(term) for term in search.include)
    if not search.exclude:
        return wanted
    return f"({wanted}) NOT ({excluded_match(search)})"


def excluded_match(search: TextSearch) -> str:
    """A MATCH expression for the entries holding any excluded term."""
    return " OR ".join(fts_string(term) for term in search.exclude)


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


def matching(query: LogQuery, services: tuple[str, ...] | None, seq_range: tuple[int | None, int | None], *,
             ts_indexed: bool = True) -> tuple[str, str, list[str], list[Any]]:
    """(FROM clause, seq key column, WHERE conditions, their parameters) of the entries matching
    `query` within `seq_range`: the base of every read of entries (pages, counts)."""
    where: list[str] = []
    params: list[Any] = []
    match = fts_expression(query.text) if query.text else None
    if match is not None:
        # Drive the join from FTS5: it yields rowids in order (asc or desc) and honours the rowid
        # bound, so ORDER BY ... LIMIT stops early even for a very common word.
        source = "logs_fts CROSS JOIN logs ON logs.seq = logs_fts.rowid"
        key = "logs_fts.rowid"
        where.append("logs_fts MATCH ?")
        params.append(match)
    else:
        source, key = "logs", "logs.seq"
    if query.text and match is None:
        exclusion_conditions(query.text, seq_range, where, params)
    filter_conditions(query, services, where, params, ts_indexed=ts_indexed)
    seq_conditions(key, seq_range, where, params)
    return source, key, where, params


def build_select(query: LogQuery, *, services: tuple[str, ...] | None, order: str,
                 after: int | None, limit: int, seq_range: tuple[int | None, int | None] = (None, None),
                 with_ts: bool = False) -> tuple[str, list[Any]]:
    """SQL returning (seq, body) of matching entries in seq order, keyset-paged after `after`
    ((seq, body, ts) `with_ts`: the stored time in epoch ms, so no one parses a body for it).

    `seq_range` (from seq_bounds) narrows the walk to the seqs the time range can hold: the time
    conditions alone cannot stop an index walk in seq order early."""
    source, key, where, params = matching(query, services, seq_range)
    if after is not None:
        where.append(f"{key} {'<' if order == 'desc' else '>'} ?")
        params.append(after)
    sql = f"SELECT logs.seq, logs.body{', logs.ts' if with_ts else ''} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {key} {'DESC' if order == 'desc' else 'ASC'} LIMIT ?"
    params.append(limit)
    return sql, params


def filter_conditions(query: LogQuery, services: tuple[str, ...] | None, where: list[str],
                      params: list[Any], *, ts_indexed: bool = True) -> None:
    """Append the conditions on `logs` of every filter but the search and the seq bounds.
    `ts_indexed=False` keeps the planner off any index on ts (a version 2 store's logs_ts: a scan
    of a seq range is cheaper than looking every row of a long time range up by its index entry)."""
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
    ts = "logs.ts" if ts_indexed else "+logs.ts"  # unary + : the term cannot use an index
    if query.since_ms is not None:
        where.append(f"{ts} >= ?")
        params.append(query.since_ms)
    if query.until_ms is not None:
        where.append(f"{ts} <= ?")
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


def only_exclusions(query: LogQuery) -> bool:
    """Whether the search only leaves words out: no MATCH can drive it (see exclusion_conditions)."""
    return query.text is not None and not query.text.include


def exclusion_conditions(search: TextSearch, seq_range: tuple[int | None, int | None], where: list[str],
                         params: list[Any]) -> None:
    """For a search of exclusions only (FTS5's NOT is binary: no MATCH says "not x" alone): leave
    out the seqs the index matches within `seq_range`. That set costs every match in the range,
    so callers walk such a query in windows of seqs (seq_windows); a lookup per row instead (a
    correlated NOT EXISTS) costs a fresh FTS5 query each, ~0.1 ms a term: 0.4 s for a page of
    100 kept among 1,000 rows with five excluded words, where windows took 1 ms."""
    inner = ["logs_fts MATCH ?"]
    params.append(excluded_match(search))
    seq_conditions("rowid", seq_range, inner, params)
    where.append(f"logs.seq NOT IN (SELECT rowid FROM logs_fts WHERE {' AND '.join(inner)})")


def seq_conditions(key: str, seq_range: tuple[int | None, int | None], where: list[str],
                   params: list[Any]) -> None:
    """`key` within (lowest, highest) seq; None is an open end."""
    low, high = seq_range
    if low is not None:
        where.append(f"{key} >= ?")
        params.append(low)
    if high is not None:
        where.append(f"{key} <= ?")
        params.append(high)


def seq_windows(low: int, high: int, order: str, first: int = 4096) -> Iterator[tuple[int, int]]:
    """[low, high] cut into windows of doubling size, from the top down (`desc`) or the bottom
    up: a page found in the first window costs that window alone, and a sparse match reaches
    the end of the range in a few dozen steps."""
    size = first
    while low <= high:
        if order == "desc":
            yield max(low, high - size + 1), high
            high -= size
        else:
            yield low, min(high, low + size - 1)
            low += size
        size *= 2


def _equal_any(where: list[str], params: list[Any], column: str, values: tuple[str, ...]) -> None:
    if len(values) == 1:
        where.append(f"{column} = ?")
    else:
        where.append(f"{column} IN ({', '.join('?' * len(values))})")
    params.extend(values)
