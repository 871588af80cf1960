"""The SQLite log store (base.LogStore): one writer thread for all writes, one query-only connection
per reader thread."""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from podvisor.aggregator.query import LogQuery, service_names
from podvisor.aggregator.store import schema
from podvisor.aggregator.store.base import (  # noqa: F401 - InsertResult & co. are imported from here too
    BadSearch,
    InsertResult,
    Page,
    QueryTimeout,
    RetentionPass,
    StoreUnavailable,
)
from podvisor.aggregator.store.checkpointer import Checkpointer
from podvisor.aggregator.store.select import (
    build_select,
    existing_services,
    oldest_ts,
    only_exclusions,
    seq_bounds,
    seq_windows,
)
from podvisor.aggregator.store.writer import WriteFn, Writer, WriterBusy, WriterClosed

if TYPE_CHECKING:
    from podvisor.aggregator.histogram import Histogram
    from podvisor.aggregator.metrics import Metrics

logger = logging.getLogger(__name__)

# The progress handler runs every this many SQLite VM instructions (~tens of microseconds): fine
# enough for a prompt timeout, coarse enough to cost well under 1% of query time.
PROGRESS_STEPS = 1000


class Store:
    """The SQLite log store (WAL): writes go through the writer thread, reads never block it."""

    def __init__(self, path: str, *, query_timeout_ms: int = 2000,
                 clock: Callable[[], float] = time.monotonic, max_batch: int = 64) -> None:
        self.path = path
        self.query_timeout_ms = query_timeout_ms
        self._clock = clock
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            schema.configure_writer(conn)
            schema.apply(conn)
            self._count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
            last = conn.execute(schema.LATEST_SEQ_SQL).fetchone()[0]
            floor = conn.execute(schema.SEQ_FLOOR_SQL).fetchone()
        except BaseException:
            conn.close()
            raise
        self._count_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        self._write_conn = conn
        self._checkpointer = Checkpointer(path)
        # Rows are numbered above this (retention raises it when it deletes the newest rows).
        self._seq_floor = floor[0] if floor else 0
        self.writer = Writer(conn, max_batch=max_batch, last_seq=last, after_commit=self._checkpointer.kick)

    # -- writes -------------------------------------------------------------------------------

    def write(self, fn: WriteFn, timeout: float = 30.0, weight: int = 1) -> Any:
        """Run `fn(conn)` on the writer thread inside a transaction and return its result."""
        try:
            future = self.writer.submit(fn, weight=weight)
        except (WriterClosed, WriterBusy) as exc:
            raise StoreUnavailable(str(exc)) from None
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise StoreUnavailable(f"write not committed within {timeout:.0f}s") from None
        except WriterClosed as exc:
            raise StoreUnavailable(str(exc)) from None
        except sqlite3.OperationalError as exc:  # disk full, I/O error, locked by a foreign process
            raise StoreUnavailable(f"write failed: {exc}") from exc

    def insert(self, rows: list[schema.Row], timeout: float = 30.0) -> InsertResult:
        """Insert rows; a row whose id is already stored is skipped and counted as duplicate."""
        if not rows:
            return InsertResult(0, 0)

        def run(conn: sqlite3.Connection) -> int:
            before = conn.execute(schema.MAX_SEQ_SQL).fetchone()[0]
            if before < self._seq_floor:  # the newest rows were deleted: number above them
                before = self._seq_floor
                stored = conn.executemany(schema.INSERT_NUMBERED_SQL,
                                          [(before + n, *row) for n, row in enumerate(rows, 1)]).rowcount
            else:
                stored = conn.executemany(schema.INSERT_SQL, rows).rowcount
            if stored:
                # The only writer, inside its transaction: seq > before is exactly this insert.
                conn.execute(schema.INDEX_NEW_SQL, (before,))
                schema.index_spans(conn, before)
            return stored

        stored = self.write(run, timeout, weight=len(rows))
        self.adjust_count(stored)
        return InsertResult(stored=stored, duplicates=len(rows) - stored)

    def raise_seq_floor(self, conn: sqlite3.Connection) -> None:
        """Before deleting entries (on the writer thread, in the deleting transaction): remember the
        highest seq, so new rows are never given a seq a reader has seen."""
        conn.execute(schema.RAISE_SEQ_FLOOR_SQL)
        self._seq_floor = max(self._seq_floor, conn.execute(schema.SEQ_FLOOR_SQL).fetchone()[0])

    def adjust_count(self, delta: int) -> None:
        """Track the number of stored entries without a count(*) per scrape."""
        with self._count_lock:
            self._count += delta

    @property
    def entry_count(self) -> int:
        """Entries stored (kept up to date by insert and retention)."""
        return self._count

    @property
    def last_seq(self) -> int:
        """Highest seq committed so far."""
        return self.writer.last_seq

    def wait_for_seq(self, after: int, timeout: float,
                     stop: Callable[[], bool] = lambda: False) -> int:
        """Block until an entry with seq > `after` is committed, the timeout passes, `stop()`
        turns true (checked when woken by wake()) or the store closes; return the last seq."""
        writer = self.writer
        with writer.changed:
            writer.changed.wait_for(lambda: writer.last_seq > after or self._closed or stop(), timeout)
            return writer.last_seq

    def wake(self) -> None:
        """Wake every wait_for_seq() so it re-checks its stop condition."""
        with self.writer.changed:
            self.writer.changed.notify_all()

    # -- reads --------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreUnavailable("store is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            schema.configure_reader(conn)
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def read(self, timeout_ms: int | None = None) -> Iterator[sqlite3.Connection]:
        """A read transaction (one consistent snapshot) on this thread's connection, time-limited.

        Raises QueryTimeout when the time limit interrupts a statement.
        """
        conn = self._reader()
        limit = (timeout_ms or self.query_timeout_ms) / 1000
        clock = self._clock
        deadline = clock() + limit
        conn.set_progress_handler(lambda: 1 if clock() > deadline else 0, PROGRESS_STEPS)
        try:
            conn.execute("BEGIN")
            yield conn
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc):
                raise QueryTimeout(f"query timed out after {limit * 1000:.0f} ms") from None
            raise
        finally:
            conn.set_progress_handler(None, 0)
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = (),
              timeout_ms: int | None = None) -> list[tuple]:
        """Run one SELECT and return all rows."""
        with self.read(timeout_ms) as conn:
            return conn.execute(sql, params).fetchall()

    def page(self, query: LogQuery, *, order: str, after: int | None, limit: int,
             with_ts: bool = False) -> Page:
        """One page of matching entries in seq order, in one read snapshot with its latest seq."""
        try:
            with self.read() as conn:
                latest = conn.execute(schema.LATEST_SEQ_SQL).fetchone()[0]
                services = None
                if query.service is not None:
                    services = existing_services(conn, service_names(query.service))
                    if not services:
                        return Page([], latest)
                seq_range = seq_bounds(conn, query)
                if seq_range is None:
                    return Page([], latest)
                if not only_exclusions(query):
                    sql, params = build_select(query, services=services, order=order, after=after,
                                               limit=limit, seq_range=seq_range, with_ts=with_ts)
                    return Page(conn.execute(sql, params).fetchall(), latest)
                # Walked in windows of seqs from the page's start, each leaving out the excluded
                # entries of its own window (select.exclusion_conditions), until the page is full.
                low, high = seq_range
                low = max(low or 1, after + 1 if after is not None and order == "asc" else 1)
                high = min(high or latest, after - 1 if after is not None and order == "desc" else latest)
                rows: list[tuple] = []
                for window in seq_windows(low, high, order):
                    sql, params = build_select(query, services=services, order=order, after=None,
                                               limit=limit - len(rows), seq_range=window, with_ts=with_ts)
                    rows += conn.execute(sql, params).fetchall()
                    if len(rows) >= limit:
                        break
                return Page(rows, latest)
        except sqlite3.OperationalError as exc:
            # The search is built by fts_expression, so this is one FTS5 still refuses ("fts5:
            # syntax error", "unterminated string"): the caller's, whatever SQLite's wording.
            if query.text is not None:
                raise BadSearch(str(exc)) from None
            raise

    def volume(self, query: LogQuery, *, wanted: int, now_ms: int) -> Histogram:
        """The matching entries per time bucket and level, in one read snapshot."""
        from podvisor.aggregator.store.histogram import volume  # it builds on select, as this module does

        try:
            with self.read() as conn:
                return volume(conn, query, wanted=wanted, now_ms=now_ms)
        except sqlite3.OperationalError as exc:
            if query.text is not None:
                raise BadSearch(str(exc)) from None
            raise

    def oldest_ts_ms(self) -> int | None:
        try:
            with self.read(timeout_ms=1000) as conn:
                return oldest_ts(conn)
        except (sqlite3.Error, QueryTimeout, StoreUnavailable):
            return None

    # -- state --------------------------------------------------------------------------------

    def size_bytes(self) -> int:
        """Bytes on disk: the database file plus its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.path + suffix).st_size
            except FileNotFoundError:
                pass
        return total

    def queue_depth(self) -> int:
        return self.writer.queue_depth()

    def accepts_writes(self) -> bool:
        return self.writer.alive

    def retention(self, *, max_age_days: float, max_bytes: int, metrics: Metrics | None = None) -> RetentionPass:
        from podvisor.aggregator.store.retention import Retention  # it builds on this module

        return Retention(self, max_age_days=max_age_days, max_bytes=max_bytes, metrics=metrics)

    def health(self) -> str | None:
        """None when the store can read and write; otherwise the reason it cannot."""
        if self._closed:
            return "store is closed"
        if self.writer.failure is not None:
            return f"writer failed: {self.writer.failure}"
        if not self.writer.alive:
            return "writer thread is not running"
        try:
            self.query("SELECT seq FROM logs ORDER BY seq DESC LIMIT 1", timeout_ms=1000)
        except (sqlite3.Error, QueryTimeout, StoreUnavailable) as exc:
            return f"read failed: {exc}"
        return None

    def close(self) -> None:
        """Drain the write queue, then close every connection."""
        if self._closed:
            return
        self.writer.close()
        self._checkpointer.close()
        self._closed = True
        with self.writer.changed:
            self.writer.changed.notify_all()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            try:
                conn.close()
            except sqlite3.Error:  # pragma: no cover - closing a connection busy in another thread
                logger.warning("reader connection still busy at close")
        try:
            self._write_conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        self._write_conn.close()
        logger.info("store closed: %s", self.path)


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the database holding data: pages in use (free-list pages excluded) times page size."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size
