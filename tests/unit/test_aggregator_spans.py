"""Time ranges through logs_spans: the seq bounds never lose an entry, late or early arrivals included."""
from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from podvisor.aggregator.query import LogQuery
from podvisor.aggregator.search import fetch
from podvisor.aggregator.store import schema
from podvisor.aggregator.store.select import build_select, seq_bounds
from podvisor.aggregator.store.sqlite import Store
from podvisor.aggregator.timestamps import ms_to_iso
from podvisor.aggregator.validation import validate
from tests.unit.test_aggregator_fixtures import entry

BASE = 1_714_557_600_000  # 2024-05-01T10:00:00Z


def insert(store: Store, stamps: list[int], start: int = 0) -> None:
    entries = [entry(start + i, timestamp=ms_to_iso(ms), pod=random.Random(i).choice(["a", "b"]))
               for i, ms in enumerate(stamps)]
    batch = validate(entries, 1 << 20, 0)
    assert not batch.errors
    store.insert(batch.rows)


def brute_force(store: Store, query: LogQuery) -> list[int]:
    sql = "SELECT seq FROM logs WHERE 1"
    params: list[int | str] = []
    if query.since_ms is not None:
        sql += " AND ts >= ?"
        params.append(query.since_ms)
    if query.until_ms is not None:
        sql += " AND ts <= ?"
        params.append(query.until_ms)
    if query.pods:
        sql += " AND pod = ?"
        params.append(query.pods[0])
    return [row[0] for row in store.query(sql + " ORDER BY seq DESC", params)]


def test_time_filtered_pages_match_a_full_scan_whatever_the_arrival_order(store):
    rnd = random.Random(5)
    # Mostly in order, with bursts of late entries (a shipper catching up hours later), entries
    # from the future, and a few before 1970 (negative epoch milliseconds).
    stamps = [BASE + i * 37 for i in range(3000)]
    stamps += [BASE + rnd.randrange(0, 3 * 3_600_000) for _ in range(500)]
    stamps += [BASE + 5 * 86_400_000 + rnd.randrange(0, 90_000) for _ in range(50)]
    stamps += [-rnd.randrange(1, 7_200_000) for _ in range(50)]
    rnd.shuffle(stamps)
    for i in range(0, len(stamps), 400):
        insert(store, stamps[i:i + 400], start=i)
    edges = [BASE + rnd.randrange(-3_600_000, 4 * 3_600_000) for _ in range(24)]
    edges += [0, -1, -1000, -60_001, BASE, BASE + 999, BASE + 1000, BASE + 59_999, BASE + 3_600_000]
    for since in [None, *edges[::3]]:
        for until in [None, *edges[1::3]]:
            if since is not None and until is not None and since > until:
                continue
            for pod in (None, "a"):
                query = LogQuery(since_ms=since, until_ms=until, pods=(pod,) if pod else ())
                expected = brute_force(store, query)
                page = fetch(store, query, order="desc", after=None, limit=10_000)
                assert [seq for seq, _body in page.rows] == expected, (since, until, pod)


def test_bounds_are_tight_for_entries_in_time_order(store):
    insert(store, [BASE + i * 100 for i in range(6000)])  # 10 per second over 10 minutes
    with store.read() as conn:
        low, high = seq_bounds(conn, LogQuery(since_ms=BASE + 300_000, until_ms=BASE + 310_000))
    # Entries 3001..3101 hold those 10 seconds: the bounds are within a second's entries of them.
    assert 3001 - 10 <= low <= 3001 and 3101 <= high <= 3101 + 10
    with store.read() as conn:
        assert seq_bounds(conn, LogQuery(until_ms=BASE - 1)) is None  # nothing that old
        assert seq_bounds(conn, LogQuery(since_ms=BASE + 3_600_000)) is None


def test_a_version_1_store_gains_its_spans_on_open(tmp_path: Path):
    path = str(tmp_path / "old.db")
    first = Store(path)
    insert(first, [BASE + i * 1000 for i in range(100)])
    first.close()
    with sqlite3.connect(path) as conn:  # what the previous aggregator release left behind
        conn.execute("DROP TABLE logs_spans")
        conn.execute("PRAGMA user_version=1")
    reopened = Store(path)
    try:
        page = fetch(reopened, LogQuery(until_ms=BASE + 9_999), order="desc", after=None, limit=50)
        assert [seq for seq, _ in page.rows] == list(range(10, 0, -1))
        assert reopened.query("PRAGMA user_version") == [(schema.SCHEMA_VERSION,)]
    finally:
        reopened.close()


def test_a_version_2_store_drops_the_indexes_version_3_does_without(tmp_path: Path):
    path = str(tmp_path / "v2.db")
    with sqlite3.connect(path) as conn:  # version 2's table and indexes, as a previous release made them
        conn.executescript(schema.DDL.replace("seq INTEGER PRIMARY KEY,", "seq INTEGER PRIMARY KEY AUTOINCREMENT,")
                           + "CREATE INDEX logs_ts ON logs(ts); CREATE INDEX logs_level ON logs(level);"
                           + "PRAGMA user_version=2;")
    store = Store(path)
    try:
        insert(store, [BASE + i for i in range(3)])
        names = {row[0] for row in store.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "logs_ts" not in names and "logs_level" not in names and "logs_level_notable" in names
        assert store.query("PRAGMA user_version") == [(schema.SCHEMA_VERSION,)]
        assert [seq for seq, _ in fetch(store, LogQuery(), order="asc", after=None, limit=9).rows] == [1, 2, 3]
    finally:
        store.close()


def test_a_filter_on_notable_levels_uses_the_partial_index_and_common_levels_walk_seq(store):
    insert(store, [BASE + i for i in range(3)])
    for levels, uses_index in ((("error",), True), (("error", "warning"), True), (("info",), False),
                               (("info", "error"), False)):
        sql, params = build_select(LogQuery(levels=levels), services=None, order="desc", after=None, limit=5)
        plan = " ".join(row[3] for row in store.query("EXPLAIN QUERY PLAN " + sql, params))
        assert ("logs_level_notable" in plan) is uses_index, (levels, plan)


def test_times_before_1970_fall_in_the_right_spans(store):
    insert(store, [BASE, -86_400_000, BASE + 1])
    insert(store, [-500], start=10)  # the newest entry, half a second before the epoch
    for until in (-1, -500, -499):
        page = fetch(store, LogQuery(until_ms=until), order="desc", after=None, limit=10)
        assert [seq for seq, _ in page.rows] == [4, 2], until
    page = fetch(store, LogQuery(since_ms=-500, until_ms=-1), order="desc", after=None, limit=10)
    assert [seq for seq, _ in page.rows] == [4]
