"""The SQLite schema of the log store and the pragmas of its connections."""
from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

# `seq` is the rowid. AUTOINCREMENT guarantees it is never reused, even after retention has deleted
# every row: tail clients resume from it (Last-Event-ID) and cursors point at it, so a reused value
# would silently skip new entries.
#
# Pages are ordered by seq, so the per-column indexes are single-column: SQLite stores every index
# as (column, rowid), which makes `WHERE pod = ? ORDER BY seq DESC LIMIT n` stop after n rows, and a
# (column, ts) index would force a sort of every row of that pod instead. Time ranges use logs_ts.
#
# The FTS5 table is external-content (the text lives once, in logs.message). New rows are indexed
# by Store.insert with one INSERT ... SELECT of the rows it just added, in the same transaction: an
# AFTER INSERT trigger does the same row by row at less than half the speed. Deletes (retention,
# or anyone with the sqlite3 shell) are kept in sync by the trigger below.
#
# logs_minutes keeps, per minute of `ts`, the lowest and highest seq of the entries stamped in it
# (maintained by Store.insert like the FTS index). It turns a time range into a seq range that
# holds every matching entry, late arrivals included: entries with ts <= until all have
# seq <= max(max_seq) of the minutes up to until's. A page filtered by pod and `until` an hour ago
# then starts its walk of the pod index at that seq instead of scanning an hour of newer entries.
# Deleted entries may leave a minute's figures wider than the entries left: still a valid bound.
DDL = """
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    service_name TEXT,
    pod TEXT,
    level TEXT,
    request_id TEXT,
    message TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts);
CREATE INDEX IF NOT EXISTS logs_request_id ON logs(request_id) WHERE request_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS logs_service ON logs(service_name);
CREATE INDEX IF NOT EXISTS logs_pod ON logs(pod);
CREATE INDEX IF NOT EXISTS logs_level ON logs(level);
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(
    message, content='logs', content_rowid='seq'
);
CREATE TABLE IF NOT EXISTS logs_minutes (
    minute INTEGER PRIMARY KEY,
    min_seq INTEGER NOT NULL,
    max_seq INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS logs_fts_delete AFTER DELETE ON logs BEGIN
    INSERT INTO logs_fts(logs_fts, rowid, message) VALUES ('delete', old.seq, old.message);
END;
"""

INSERT_SQL = (
    "INSERT INTO logs (id, ts, service_name, pod, level, request_id, message, body) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO NOTHING"
)

MAX_SEQ_SQL = "SELECT coalesce(max(seq), 0) FROM logs"
INDEX_NEW_SQL = "INSERT INTO logs_fts(rowid, message) SELECT seq, message FROM logs WHERE seq > ?"
# `ts / 60000` truncates; the queries use the same expression, and any monotonic bucketing works.
MINUTES_NEW_SQL = (
    "INSERT INTO logs_minutes (minute, min_seq, max_seq) "
    "SELECT ts / 60000, min(seq), max(seq) FROM logs WHERE seq > ? GROUP BY ts / 60000 "
    "ON CONFLICT(minute) DO UPDATE SET min_seq = min(min_seq, excluded.min_seq), "
    "max_seq = max(max_seq, excluded.max_seq)"
)
MINUTES_PRUNE_SQL = (
    "DELETE FROM logs_minutes WHERE max_seq < coalesce((SELECT min(seq) FROM logs), 1 << 62)"
)
SEQ_UNTIL_SQL = "SELECT max(max_seq) FROM logs_minutes WHERE minute <= ? / 60000"
SEQ_SINCE_SQL = "SELECT min(min_seq) FROM logs_minutes WHERE minute >= ? / 60000"

# Row tuple order matching INSERT_SQL.
Row = tuple[str, int, str | None, str | None, str | None, str | None, str, str]


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
    had_minutes = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'logs_minutes'").fetchone() is not None
    # A version 1 store gains logs_minutes: index the minutes of the entries it already holds.
    backfill = "" if had_minutes else MINUTES_NEW_SQL.replace("?", "0") + ";"
    conn.executescript("BEGIN;" + DDL + backfill + f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
