"""Retention of the SQLite store: delete the oldest entries by age and by database size, in small
writer requests; and the worker that runs any store's retention pass on an interval."""
from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable

from podvisor.aggregator.metrics import Metrics
from podvisor.aggregator.store import schema
from podvisor.aggregator.store.base import QueryTimeout, RetentionPass, RetentionReport, StoreUnavailable
from podvisor.aggregator.store.sqlite import Store, used_bytes

logger = logging.getLogger(__name__)

DAY_MS = 86_400_000
# There is no index on ts (schema.py): age finds its rows below the highest seq an entry older than
# the cutoff can have (logs_spans), size deletes in arrival order, the oldest stored first.
_DELETE_OLDER = ("DELETE FROM logs WHERE seq IN "
                 "(SELECT seq FROM logs WHERE seq <= ? AND ts < ? ORDER BY seq LIMIT ?)")
_DELETE_OLDEST = "DELETE FROM logs WHERE seq IN (SELECT seq FROM logs ORDER BY seq LIMIT ?)"


class Retention:
    """One retention pass at a time; every chunk is its own short write so ingest interleaves."""

    def __init__(self, store: Store, *, max_age_days: float, max_bytes: int,
                 chunk_rows: int = 1000, max_rounds: int = 20,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None) -> None:
        self.store = store
        self.max_age_days = max_age_days
        self.max_bytes = max_bytes
        self.chunk_rows = chunk_rows
        self.max_rounds = max_rounds
        self.clock = clock
        self.metrics = metrics
        self.last_used_bytes: int | None = None
        self.cancel = threading.Event()

    def run_once(self) -> RetentionReport:
        """Delete entries older than the age limit, then oldest entries while over the size limit."""
        by_age = self._delete_by_age() if self.max_age_days > 0 else 0
        by_size = self._delete_by_size() if self.max_bytes > 0 else 0
        if by_age or by_size:
            self.store.write(lambda conn: conn.execute(schema.SPANS_PRUNE_SQL).rowcount)
        used = self._used()
        self.last_used_bytes = used
        if by_age or by_size:
            logger.info("retention deleted %d entries by age and %d by size; %d bytes in use",
                        by_age, by_size, used)
        return RetentionReport(by_age, by_size, used)

    def cancel_pass(self) -> None:
        self.cancel.set()

    def _used(self) -> int:
        with self.store.read() as conn:
            return used_bytes(conn)

    def _delete(self, sql: str, params: tuple[int, ...], reason: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            self.store.raise_seq_floor(conn)
            return conn.execute(sql, params).rowcount

        deleted = self.store.write(run)
        if deleted:
            self.store.adjust_count(-deleted)
            if self.metrics is not None:
                self.metrics.retention_deleted.labels(reason).inc(deleted)
        return deleted

    def _delete_by_age(self) -> int:
        cutoff = int(self.clock() * 1000 - self.max_age_days * DAY_MS)
        with self.store.read() as conn:
            bound = conn.execute(schema.SEQ_UNTIL_SQL, schema.until_ranges(cutoff - 1)).fetchone()[0]
        if bound is None:  # no entry is stamped before the cutoff
            return 0
        total = 0
        while True:
            deleted = self._delete(_DELETE_OLDER, (bound, cutoff, self.chunk_rows), "age")
            total += deleted
            if self.cancel.is_set():
                return total
            if deleted < self.chunk_rows:
                # Every entry of these spans' time units was older than the cutoff: all gone now.
                self.store.write(lambda conn: conn.execute(schema.SPANS_PRUNE_BEFORE_SQL, (cutoff,)).rowcount)
                return total

    def _delete_by_size(self) -> int:
        total = 0
        for _ in range(self.max_rounds):
            used = self._used()
            count = self.store.entry_count
            if used <= self.max_bytes or count <= 0 or self.cancel.is_set():
                break
            # Estimate the rows to drop from the average row size, then measure again: freed
            # pages reach the free list unevenly (indexes, FTS segments), so overshoot by 5%.
            target = math.ceil((used - self.max_bytes) / (used / count) * 1.05)
            while target > 0:
                deleted = self._delete(_DELETE_OLDEST, (min(self.chunk_rows, target),), "size")
                total += deleted
                target -= deleted
                if deleted == 0 or self.cancel.is_set():
                    return total
        return total


class RetentionWorker:
    """Runs a store's retention pass every `interval` seconds on a background thread."""

    def __init__(self, retention: RetentionPass, interval: float, metrics: Metrics | None = None) -> None:
        self.retention = retention
        self.interval = interval
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aggregator-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end (a chunk in flight completes) and wait for it."""
        self._stop.set()
        self.retention.cancel_pass()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        metrics = self.metrics
        while not self._stop.wait(self.interval):
            started = time.perf_counter()
            outcome = "ok"
            try:
                self.retention.run_once()
            except (StoreUnavailable, QueryTimeout, sqlite3.Error, OSError) as exc:
                outcome = "error"
                logger.warning("retention pass failed: %s", exc)
            if metrics is not None:
                metrics.retention_runs.labels(outcome).inc()
                metrics.retention_seconds.observe(time.perf_counter() - started)
