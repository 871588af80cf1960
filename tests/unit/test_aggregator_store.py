"""The Store: WAL, the writer thread's group commits, readers, health and metrics."""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from podvisor.aggregator.store.schema import SchemaError
from podvisor.aggregator.store.sqlite import QueryTimeout, Store, StoreUnavailable
from podvisor.aggregator.validation import validate
from tests.unit.test_aggregator_fixtures import entry, post, state_of


def rows(entries):
    return validate(entries, 1 << 20, 0).rows


def test_wal_mode_and_query_only_readers(store):
    assert store.query("PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(sqlite3.OperationalError, match="readonly"), store.read() as conn:
        conn.execute("DELETE FROM logs")


def test_group_commit_isolates_a_failing_request(store):
    gate, entered = threading.Event(), threading.Event()

    def hold(conn):
        entered.set()
        gate.wait(10)
        return "held"

    def boom(conn):
        conn.execute("INSERT INTO logs (id, ts, message, body) VALUES ('boom', 0, 'x', '{}')")
        raise RuntimeError("this request fails")

    first = store.writer.submit(hold)
    assert entered.wait(10)
    # These queue up behind `hold` and are committed as one group.
    good1 = store.writer.submit(lambda c: c.executemany(
        "INSERT INTO logs (id, ts, message, body) VALUES (?, 0, 'm', '{}')", [("a",), ("b",)]
    ).rowcount)
    bad = store.writer.submit(boom)
    good2 = store.writer.submit(lambda c: c.execute(
        "INSERT INTO logs (id, ts, message, body) VALUES ('c', 0, 'm', '{}')").rowcount)
    gate.set()
    assert first.result(10) == "held"
    assert good1.result(10) == 2 and good2.result(10) == 1
    with pytest.raises(RuntimeError, match="fails"):
        bad.result(10)
    assert [r[0] for r in store.query("SELECT id FROM logs ORDER BY id")] == ["a", "b", "c"]


def test_insert_counts_duplicates_and_seq_is_monotonic(store):
    assert store.insert(rows([entry(1), entry(2)])).stored == 2
    result = store.insert(rows([entry(2), entry(3)]))
    assert (result.stored, result.duplicates) == (1, 1)
    assert store.last_seq >= 3
    seqs = [r[0] for r in store.query("SELECT seq FROM logs ORDER BY seq")]
    assert seqs == sorted(seqs) and len(seqs) == 3


def test_closed_store_refuses_writes_and_reports_unhealthy(tmp_path: Path):
    db = Store(str(tmp_path / "logs.db"))
    assert db.health() is None
    db.insert(rows([entry(1)]))
    db.close()
    assert db.health() == "store is closed"
    with pytest.raises(StoreUnavailable):
        db.insert(rows([entry(2)]))
    reopened = Store(str(tmp_path / "logs.db"))
    try:
        assert reopened.entry_count == 1
    finally:
        reopened.close()


def test_foreign_or_newer_database_is_refused(tmp_path: Path):
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(SchemaError, match="newer"):
        Store(str(newer))
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(SchemaError, match="not an aggregator store"):
        Store(str(foreign))


def test_health_endpoint(app, client, token):
    post(client, [entry(1)], token)
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json["ok"] is True and reply.json["entries"] == 1
    state_of(app).close()
    reply = client.get("/health")
    assert reply.status_code == 503
    assert reply.json["ok"] is False and "store" in reply.json["error"]


def test_metrics_exposition_parses(client, token):
    post(client, [entry(i, timestamp="2024-01-01T00:00:00Z") for i in range(3)], token)
    client.get("/api/v1/logs?q=line")
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.mimetype == "text/plain"
    families = {f.name: f for f in text_string_to_metric_families(reply.get_data(as_text=True))}
    for name in ("aggregator_ingest_requests", "aggregator_entries_received",
                 "aggregator_entries_stored", "aggregator_entries_duplicate",
                 "aggregator_entries_rejected", "aggregator_ingest_batch_seconds",
                 "aggregator_query_seconds", "aggregator_store_entries", "aggregator_db_size_bytes",
                 "aggregator_tail_subscribers", "aggregator_retention_deleted_entries",
                 "aggregator_oldest_entry_age_seconds", "aggregator_write_queue_depth"):
        assert name in families, name
    assert families["aggregator_store_entries"].samples[0].value == 3
    assert families["aggregator_db_size_bytes"].samples[0].value > 0
    assert families["aggregator_oldest_entry_age_seconds"].samples[0].value > 86400
    assert families["aggregator_ingest_batch_seconds"].type == "histogram"


def test_each_app_has_its_own_registry(tmp_path: Path):
    from podvisor.aggregator.app import create_app
    from tests.unit.test_aggregator_fixtures import make_settings

    apps = [create_app(make_settings(tmp_path / str(i)), start_background=False) for i in range(2)]
    try:
        assert state_of(apps[0]).metrics.registry is not state_of(apps[1]).metrics.registry
    finally:
        for each in apps:
            state_of(each).close()


def test_a_query_in_progress_does_not_hold_up_ingestion(store):
    store.insert(rows([entry(i) for i in range(3)]))
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"
    with store.read(timeout_ms=60_000) as conn:
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (3,)  # snapshot taken
        cursor = conn.execute(endless)
        assert cursor.fetchone() == (1,)  # the statement is running, its snapshot open
        assert store.insert(rows([entry(10)]), timeout=10).stored == 1
        assert conn.execute("SELECT count(*) FROM logs").fetchone() == (3,)  # its snapshot
    assert store.query("SELECT count(*) FROM logs") == [(4,)]


def test_a_runaway_query_is_cut_off_by_the_time_limit(tmp_path: Path):
    db = Store(str(tmp_path / "logs.db"), query_timeout_ms=200)
    try:
        endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
        with pytest.raises(QueryTimeout):
            db.query(endless)
        assert db.health() is None  # the reader connection is usable again
    finally:
        db.close()
