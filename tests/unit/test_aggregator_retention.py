"""Retention by age and by size: oldest first, FTS kept in sync, figures in /metrics."""
from __future__ import annotations

import threading
from pathlib import Path

from podvisor.aggregator.metrics import Metrics
from podvisor.aggregator.store.retention import Retention, RetentionWorker
from podvisor.aggregator.store.sqlite import Store, used_bytes
from podvisor.aggregator.timestamps import iso_to_ms
from podvisor.testing.waiting import wait_for
from tests.unit.test_aggregator_fixtures import entry, insert_entries

NOW = iso_to_ms("2024-05-20T00:00:00Z") / 1000


def stored_ids(store: Store) -> list[str]:
    return [row[0] for row in store.query("SELECT id FROM logs ORDER BY seq")]


def test_age_retention_deletes_only_entries_older_than_the_limit(store):
    old = [entry(i, timestamp=f"2024-05-0{1 + i % 5}T00:00:00Z", message=f"ancient {i}")
           for i in range(2500)]
    new = [entry(10_000 + i, timestamp="2024-05-19T12:00:00Z", message=f"recent {i}")
           for i in range(10)]
    insert_entries(store, new[:5] + old + new[5:])
    metrics = Metrics()
    retention = Retention(store, max_age_days=7, max_bytes=0, chunk_rows=400,
                          clock=lambda: NOW, metrics=metrics)
    report = retention.run_once()
    assert report.deleted_by_age == 2500 and report.deleted_by_size == 0
    assert stored_ids(store) == [e["id"] for e in new]
    assert store.entry_count == 10
    # The FTS index lost the deleted rows too.
    assert store.query("SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'ancient'") == [(0,)]
    assert store.query("SELECT count(*) FROM logs_fts WHERE logs_fts MATCH 'recent'") == [(10,)]
    assert metrics.retention_deleted.labels("age")._value.get() == 2500
    assert retention.run_once().deleted_by_age == 0


def test_size_retention_deletes_the_oldest_stored_first_until_under_the_limit(store):
    filler = "lorem ipsum dolor sit amet " * 40
    # Insertion order differs from time order: size retention goes by arrival (there is no index
    # on ts to find the oldest timestamps cheaply; the first stored are the first to go).
    entries = [entry(i, timestamp=f"2024-05-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z",
                     message=f"{filler} {i}") for i in range(3000)]
    arrival = entries[1500:] + entries[:1500]
    insert_entries(store, arrival)
    with store.read() as conn:
        before = used_bytes(conn)
    limit = before // 2
    retention = Retention(store, max_age_days=0, max_bytes=limit, chunk_rows=250,
                          clock=lambda: NOW)
    report = retention.run_once()
    assert report.deleted_by_size > 0
    assert report.used_bytes <= limit
    remaining = [int(i.rsplit(":", 1)[1]) for i in stored_ids(store)]
    assert len(remaining) == 3000 - report.deleted_by_size == store.entry_count
    # Exactly the last stored survive.
    assert remaining == [int(e["id"].rsplit(":", 1)[1]) for e in arrival[-len(remaining):]]


def test_retention_worker_runs_on_its_interval_and_stops(store):
    insert_entries(store, [entry(1, timestamp="2020-01-01T00:00:00Z")])
    metrics = Metrics()
    retention = Retention(store, max_age_days=1, max_bytes=0, clock=lambda: NOW, metrics=metrics)
    worker = RetentionWorker(retention, interval=0.01, metrics=metrics)
    worker.start()
    try:
        wait_for(lambda: store.entry_count == 0, 5, "the retention worker to delete the old entry", interval=0.01)
    finally:
        worker.stop()
    assert metrics.retention_runs.labels("ok")._value.get() >= 1


class _PausingStore(Store):
    """Runs `after_write` once, on the caller's thread, right after one write committed."""

    after_write = None

    def write(self, fn, timeout=30.0, weight=1):
        result = super().write(fn, timeout, weight)
        hook, self.after_write = self.after_write, None
        if hook is not None:
            hook()
        return result


def test_ingest_is_not_blocked_by_a_retention_pass_in_progress(tmp_path: Path):
    store = _PausingStore(str(tmp_path / "logs.db"))
    try:
        insert_entries(store, [entry(i, timestamp="2024-05-01T00:00:00Z") for i in range(2000)])
        done = threading.Event()

        def ingest_meanwhile() -> None:
            # Called after the first chunk of 100 deletions, while 1,900 old entries remain.
            fresh = entry(90_000, timestamp="2024-05-19T12:00:00Z")
            worker = threading.Thread(target=lambda: (insert_entries(store, [fresh]), done.set()))
            worker.start()
            worker.join(10)

        store.after_write = ingest_meanwhile
        retention = Retention(store, max_age_days=7, max_bytes=0, chunk_rows=100, clock=lambda: NOW)
        report = retention.run_once()
        assert done.is_set(), "an insert waited for the whole retention pass"
        assert report.deleted_by_age == 2000
        assert stored_ids(store) == [entry(90_000)["id"]]
    finally:
        store.close()


def test_a_seq_is_never_given_twice_even_after_retention_deleted_the_newest(tmp_path: Path):
    path = str(tmp_path / "logs.db")
    store = Store(path)
    try:
        insert_entries(store, [entry(i, timestamp="2024-05-01T00:00:00Z") for i in range(5)])
        insert_entries(store, [entry(9, timestamp="2024-05-19T23:00:00Z")])  # the newest, seq 6
        assert Retention(store, max_age_days=7, max_bytes=0, clock=lambda: NOW).run_once().deleted_by_age == 5
        assert store.last_seq == 6
        retention = Retention(store, max_age_days=0.01, max_bytes=0, clock=lambda: NOW)
        assert retention.run_once().deleted_by_age == 1 and store.entry_count == 0
    finally:
        store.close()
    reopened = Store(path)  # the floor outlives a restart
    try:
        assert reopened.last_seq == 6
        insert_entries(reopened, [entry(10), entry(11)])
        assert reopened.query("SELECT seq FROM logs ORDER BY seq") == [(7,), (8,)]
        assert reopened.last_seq == 8
    finally:
        reopened.close()


def test_the_oldest_entry_is_found_without_an_index_on_time(store):
    assert store.oldest_ts_ms() is None
    insert_entries(store, [entry(1, timestamp="2024-05-02T00:00:00.250Z"),
                           entry(2, timestamp="2024-05-01T12:00:00.750Z"),  # a late arrival, older
                           entry(3, timestamp="2024-05-03T00:00:00Z")])
    assert store.oldest_ts_ms() == iso_to_ms("2024-05-01T12:00:00.750Z")
    Retention(store, max_age_days=18, max_bytes=0, clock=lambda: NOW).run_once()  # cutoff 2024-05-02
    assert store.entry_count == 2 and store.oldest_ts_ms() == iso_to_ms("2024-05-02T00:00:00.250Z")
