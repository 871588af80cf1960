"""The single writer thread: owns the write connection and group-commits queued write requests."""
from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)

WriteFn = Callable[[sqlite3.Connection], Any]
_STOP = object()


class WriterClosed(RuntimeError):
    """The writer is shutting down or has failed: no more writes are accepted."""


class WriterBusy(RuntimeError):
    """The write queue is full (back-pressure): the caller should answer 503."""


class Writer:
    """A thread that runs write functions in batches, one transaction per batch.

    A failing function rolls its batch back and the batch is retried request by request, so it
    fails alone; the futures resolve only after COMMIT, so an acknowledged write is durable. After
    every commit the `changed` condition is notified with the new highest seq, which wakes tail streams.
    """

    def __init__(self, conn: sqlite3.Connection, *, max_batch: int = 64, queue_size: int = 1024,
                 last_seq: int = 0, after_commit: Callable[[], None] = lambda: None,
                 max_weight: int = 20_000) -> None:
        self._conn = conn
        self._max_weight = max_weight
        self._after_commit = after_commit
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._max_batch = max_batch
        self._closing = False
        self._submit_lock = threading.Lock()
        self.failure: BaseException | None = None
        self.changed = threading.Condition()
        self.last_seq = last_seq
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="aggregator-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the thread runs and has not failed."""
        return self._thread.is_alive() and self.failure is None and not self._closing

    def queue_depth(self) -> int:
        """Write requests waiting for the thread."""
        return self._queue.qsize()

    def submit(self, fn: WriteFn, *, weight: int = 1, block_seconds: float = 5.0) -> Future:
        """Queue `fn(conn)`; the future holds its result after commit (or its exception).

        `weight` (rows written) bounds the size of a group commit."""
        future: Future = Future()
        with self._submit_lock:
            if self._closing or self.failure is not None:
                raise WriterClosed("store is closed")
            try:
                self._queue.put((fn, future, weight), timeout=block_seconds)
            except queue.Full:
                raise WriterBusy("write queue is full") from None
        return future

    def close(self, timeout: float = 30.0) -> None:
        """Stop accepting writes, run everything already queued, stop the thread."""
        with self._submit_lock:
            if self._closing:
                return
            self._closing = True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("writer thread did not stop within %.0fs", timeout)
        with self.changed:
            self.changed.notify_all()

    def _run(self) -> None:
        batch: list[Any] = []
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                weight = first[2]
                stop = False
                # Group commit: whatever else is queued joins this transaction, up to a bound,
                # since one transaction of many rows costs far less per row than many small ones.
                while len(batch) < self._max_batch and weight < self._max_weight:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                    weight += item[2]
                self._commit_batch([(fn, future) for fn, future, _weight in batch])
                if stop:
                    return
        except BaseException as exc:  # a failing writer must not leave callers waiting forever
            self.failure = exc
            logger.exception("writer thread failed: %s", exc)
            for item in batch:
                if not item[1].done():
                    item[1].set_exception(WriterClosed(f"writer failed: {exc}"))
            self._fail_pending(exc)

    def _commit_batch(self, batch: list[tuple[WriteFn, Future]]) -> None:
        live = [(fn, future) for fn, future in batch if future.set_running_or_notify_cancel()]
        if live:
            self._attempt(live)

    def _attempt(self, batch: list[tuple[WriteFn, Future]]) -> None:
        # No SAVEPOINT per request: FTS5 flushes its pending index data at every savepoint, which
        # cut ingest to a third. A failing request instead rolls the batch back and every request
        # of it is retried alone, so the others still commit.
        conn = self._conn
        started = time.monotonic()
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [fn(conn) for fn, _future in batch]
            last = conn.execute("SELECT max(seq) FROM logs").fetchone()
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) > 1:
                logger.info("batch of %d write requests failed (%s); retrying one by one",
                            len(batch), exc)
                for item in batch:
                    self._attempt([item])
                return
            logger.warning("write request failed: %s", exc)
            batch[0][1].set_exception(exc)
            return
        self.commits += 1
        self._after_commit()
        for (_fn, future), result in zip(batch, results, strict=True):
            future.set_result(result)
        new_seq = last[0] if last and last[0] is not None else 0
        if new_seq > self.last_seq:  # retention may have deleted the newest rows: never go back
            with self.changed:
                self.last_seq = new_seq
                self.changed.notify_all()
        logger.debug("committed %d request(s) in %.1f ms", len(batch),
                     (time.monotonic() - started) * 1000)

    def _fail_pending(self, exc: BaseException) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP and not item[1].done():
                item[1].set_exception(WriterClosed(f"writer failed: {exc}"))
