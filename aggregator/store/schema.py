"""The SQLite schema of the log store and the pragmas of its connections."""
from __future__ import annotations

import sqlite3

from podvisor.aggregator.store import base

SCHEMA_VERSION = 3

# The schema is shaped by the ingest rate: every index is paid on every insert (measured with
# 500,000 entries in groups of 8,000: 59-62k rows/s for version 2's schema, 88k for this one; see
# docs/performance.md). So there is no index on ts (time ranges go through logs_spans), and `level`
# is indexed only for the levels worth looking for (not info or debug, the bulk of every log: a
# query for those finds them by walking seq, they are everywhere).
#
# `seq` is the rowid. It is never reused, even after retention has deleted the newest rows: tail
# clients resume from it (Last-Event-ID) and cursors point at it, so a reused value would silently
# skip new entries. Retention records the highest seq it deletes in logs_meta ('seq_floor') and
# Store.insert numbers new rows above it when the table's own maximum is lower; AUTOINCREMENT did
# this with an update of sqlite_sequence per row (version 2 stores keep it: SQLite cannot drop it).
#
# Pages are ordered by seq, so the per-column indexes are single-column: SQLite stores every index
# as (column, rowid), which makes `WHERE pod = ? ORDER BY seq DESC LIMIT n` stop after n rows, and a
# (column, ts) index would force a sort of every row of that pod instead.
#
# The FTS5 table is external-content (the text lives once, in logs.message). New rows are indexed
# by Store.insert with one INSERT ... SELECT of the rows it just added, in the same transaction: an
# AFTER INSERT trigger does the same row by row at less than half the speed. Deletes (retention,
# or anyone with the sqlite3 shell) are kept in sync by the trigger below.
#
# logs_spans keeps, per second, per minute and per hour of `ts`, the lowest and highest seq of the
# entries stamped in it (maintained by Store.insert like the FTS index). It turns a time range into
# a seq range that holds every matching entry, late arrivals included: every entry with ts <= until
# has a seq <= the highest max_seq of the spans up to until, which three short range reads find
# (the hours before until's hour, the minutes before its minute in that hour, the seconds up to it
# in that minute). A page filtered by pod and `until` an hour ago then starts its walk of the pod
# index one second's worth of entries from the answer instead of scanning an hour of newer ones.
# Deleted entries may leave a span's figures wider than the entries left: still a valid bound.
DDL = """
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    service_name TEXT,
    pod TEXT,
    level TEXT,
    request_id TEXT,
    message TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_request_id ON logs(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_service ON logs(service_name);
CREATE INDEX IF NOT EXISTS logs_pod ON logs(pod);
CREATE INDEX IF NOT EXISTS logs_level_notable ON logs(level) WHERE level NOT IN ('info', 'debug');
CREATE TABLE IF NOT EXISTS logs_meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
    message, content='logs', content_rowid='seq'
);
CREATE TABLE IF NOT EXISTS logs_spans (
    unit INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL,
    PRIMARY KEY (unit, bucket)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
"""

INSERT_SQL = (
    "INSERT INTO logs (id, ts, service_name, pod, level, request_id, message, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING"
)

MAX_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM logs"
# The partial index's condition, added verbatim to a level filter that only asks for notable levels
# (SQLite uses a partial index only when the query's WHERE holds the index's own condition).
COMMON_LEVELS = ("info", "debug")
NOTABLE_LEVEL_SQL = "level NOT IN ('info', 'debug')"
SEQ_FLOOR_SQL = "SELECT value FROM logs_meta WHERE name = 'seq_floor'"
RAISE_SEQ_FLOOR_SQL = (
    "INSERT INTO logs_meta (name, value) VALUES ('seq_floor', (SELECT coalesce(max(seq), 0) FROM logs)) "
    "ON CONFLICT(name) DO UPDATE SET value = max(value, excluded.value)"
)
INSERT_NUMBERED_SQL = (
    "INSERT INTO logs (seq, id, ts, service_name, pod, level, request_id, message, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING"
)
INDEX_NEW_SQL = "INSERT INTO logs_fts(rowid, message) SELECT seq, message FROM logs WHERE seq > ?"
SPAN_UNITS = (1000, 60_000, 3_600_000)  # ms in a second, a minute, an hour


def _floor_div(unit: int) -> str:
    # SQLite's integer division truncates; floor keeps the spans of negative times aligned too.
    return f"(CASE WHEN ts >= 0 THEN ts / {unit} ELSE (ts - {unit - 1}) / {unit} END)"


# The seconds that entries with seq > ? fall in; Store.insert rolls them up to minutes and hours.
SECONDS_NEW_SQL = (f"SELECT {_floor_div(1000)} AS second, min(seq), max(seq) FROM logs "
                   "WHERE seq > ? GROUP BY second")
SPANS_UPSERT_SQL = (
    "INSERT INTO logs_spans (unit, bucket, min_seq, max_seq) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(unit, bucket) DO UPDATE SET min_seq = min(min_seq, excluded.min_seq), "
    "max_seq = max(max_seq, excluded.max_seq)"
)
# Spans of time units that end at or before the age cutoff: age retention deleted all their entries.
SPANS_PRUNE_BEFORE_SQL = "DELETE FROM logs_spans WHERE (bucket + 1) * unit <= ?"
LATEST_SEQ_SQL = ("SELECT max(coalesce((SELECT max(seq) FROM logs), 0), "
                  "coalesce((SELECT value FROM logs_meta WHERE name = 'seq_floor'), 0))")
SPANS_PRUNE_SQL = (
    "DELETE FROM logs_spans WHERE max_seq < coalesce((SELECT min(seq) FROM logs), 1 << 62)"
)
_SPAN_RANGE = ("SELECT {agg}(min_seq) AS lo, {agg}(max_seq) AS hi FROM logs_spans "
               "WHERE unit = {unit} AND bucket BETWEEN ? AND ?")
# Highest seq an entry with ts <= until can have: params (second range, minute range, hour range).
SEQ_UNTIL_SQL = "SELECT max(hi) FROM (" + " UNION ALL ".join(
    _SPAN_RANGE.format(agg="max", unit=unit) for unit in SPAN_UNITS) + ")"
# Lowest seq an entry with ts >= since can have.
SEQ_SINCE_SQL = "SELECT min(lo) FROM (" + " UNION ALL ".join(
    _SPAN_RANGE.format(agg="min", unit=unit) for unit in SPAN_UNITS) + ")"
MIN_BUCKET, MAX_BUCKET = -(1 << 62), 1 << 62


def span_rows(seconds: list[tuple[int, int, int]]) -> list[tuple[int, int, int, int]]:
    """SPANS_UPSERT_SQL rows for (second, min seq, max seq) triples: the seconds themselves and
    the minutes and hours holding them (floor division keeps them aligned)."""
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    for second, low, high in seconds:
        for unit, bucket in ((1000, second), (60_000, second // 60), (3_600_000, second // 3600)):
            known = spans.get((unit, bucket))
            spans[(unit, bucket)] = (low, high) if known is None else (
                min(known[0], low), max(known[1], high))
    return [(unit, bucket, low, high) for (unit, bucket), (low, high) in spans.items()]


def index_spans(conn: sqlite3.Connection, after_seq: int) -> None:
    """Record the spans of the entries with seq > after_seq (inside the caller's transaction)."""
    seconds = conn.execute(SECONDS_NEW_SQL, (after_seq,)).fetchall()
    conn.executemany(SPANS_UPSERT_SQL, span_rows(seconds))


def until_ranges(until_ms: int) -> tuple[int, ...]:
    """SEQ_UNTIL_SQL's parameters: the seconds of until's minute up to its second, the minutes
    of its hour before its minute, every hour before its hour."""
    second, minute, hour = (until_ms // unit for unit in SPAN_UNITS)
    return (minute * 60, second, hour * 60, minute - 1, MIN_BUCKET, hour - 1)


def since_ranges(since_ms: int) -> tuple[int, ...]:
    """SEQ_SINCE_SQL's parameters: mirror image of until_ranges."""
    second, minute, hour = (since_ms // unit for unit in SPAN_UNITS)
    return (second, minute * 60 + 59, minute + 1, hour * 60 + 59, hour + 1, MAX_BUCKET)


# base.Row, in the order of INSERT_SQL's columns.
Row = base.Row


class SchemaError(RuntimeError):
    """The database file belongs to a newer aggregator or is not ours."""


def configure_writer(conn: sqlite3.Connection) -> None:
    """Pragmas for the single write connection."""
    # 16 KiB pages (only takes effect when the file is created): ~35% smaller database and ~10%
    # faster ingest than 4 KiB here, fewer page splits in the randomly ordered id/request_id indexes.
    conn.execute("PRAGMA page_size=16384")
    conn.execute("PRAGMA journal_mode=WAL")
    # synchronous=NORMAL in WAL mode fsyncs only at checkpoints, not at every commit. A commit
    # that is acknowledged survives a process crash (it is in the WAL file); only an OS crash or
    # power loss can lose the last transactions, and the shippers re-send anything unacknowledged
    # idempotently. FULL would fsync per group commit and cap ingest at the disk's fsync rate.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-131072")  # 128 MiB: keeps the random request_id/id index pages hot
    conn.execute("PRAGMA busy_timeout=5000")
    # The Checkpointer thread checkpoints after every commit; this is only the backstop should it
    # fall behind (the writer then checkpoints itself once the WAL passes ~80 MiB).
    conn.execute("PRAGMA wal_autocheckpoint=20000")
    conn.execute("PRAGMA journal_size_limit=67108864")


def configure_reader(conn: sqlite3.Connection) -> None:
    """Pragmas for a reader connection: it can never write."""
    conn.execute("PRAGMA query_only=1")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-16384")  # 16 MiB per reader thread
    conn.execute("PRAGMA mmap_size=268435456")


def apply(conn: sqlite3.Connection) -> None:
    """Create or check the schema (idempotent); raise SchemaError for a foreign or newer file."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(f"database schema version {version} is newer than this aggregator's "
                          f"{SCHEMA_VERSION}")
    if version == 0:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables - {"sqlite_sequence"} and "logs" not in tables:
            raise SchemaError("database file holds other tables and no `logs`: not an aggregator store")
    had_spans = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'logs_spans'").fetchone() is not None
    conn.executescript("BEGIN;" + DDL)  # leaves the transaction open: one commit for it all
    try:
        if not had_spans:
            # A version 1 store gains logs_spans: index the times of the entries it holds (and
            # drop logs_minutes, which a short-lived development build of version 2 kept instead).
            index_spans(conn, 0)
            conn.execute("DROP TABLE IF EXISTS logs_minutes")
        if 0 < version < 3:
            # Version 3 indexes less (see above); an AUTOINCREMENT table stays one.
            conn.execute("DROP INDEX IF EXISTS logs_ts")
            conn.execute("DROP INDEX IF EXISTS logs_level")
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
