"""The loop wiring it all: scan -> read -> decode/enrich -> batch -> ship -> ack -> checkpoint.

Exactly-once, by construction: an identity's offset moves only when the aggregator acknowledged
every entry before it (batches ship in order through one sender), the checkpoint is written after
that, and identity changes (a new file, a new generation, a copy taking over a key) are written
before any entry carrying their key leaves. A SIGKILL anywhere therefore re-sends at most entries
the store already has, under the same ids, which it ignores.
Memory stays bounded: reading pauses while LOGGER_MAX_INFLIGHT_BYTES of entries await their ack,
but scanning goes on (spooling rotated files, keeping fds) so rotation cannot outrun an outage.
"""
from __future__ import annotations

import json
import logging
import queue
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from podvisor.core import jsonsafe

from .batcher import Batcher, Item
from .checkpoint import CheckpointStore
from .deadletter import DeadLetter
from .enrich import Enricher
from .lines import RawLine, common_fields, decode_text, fit
from .metrics import LoggerMetrics
from .routes import RouteCounter
from .sender import BatchResult, Cancelled, EventWaiter, Sender, Transport, Waiter
from .settings import Settings
from .spool import Spool
from .tailer import RECHECK, Tail, Tailer
from .watch import DirectoryWatch, Wakeup

log = logging.getLogger(__name__)
_UNSET = msgspec.UNSET

READ_PER_STEP = 4 * 1024 * 1024  # bytes per iteration, so scans and acks keep their pace under load


class InlineWorker:
    """Ships on the caller's thread: deterministic, for tests (an exception is a crash mid-send)."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._done: list[BatchResult] = []

    def ready(self) -> bool:
        return True

    def submit(self, batch: list[Item]) -> None:
        try:
            self._done.append(self._sender.send(batch))
        except Cancelled as exc:
            if exc.result is not None:
                self._done.append(exc.result)

    def results(self) -> list[BatchResult]:
        done, self._done = self._done, []
        return done

    def stop(self) -> None:
        pass


class ThreadWorker:
    """Ships on `threads` background threads: that many batches in flight at once, so the logger
    reads and encodes the next batches while the aggregator stores the previous ones. Batches may
    be acknowledged out of order; the pipeline moves offsets over the acknowledged prefix only."""

    def __init__(self, sender: Sender, waiter: Waiter, threads: int = 1) -> None:
        self._sender = sender
        self._waiter = waiter
        self._todo: queue.Queue[list[Item] | None] = queue.Queue()
        self._done: queue.Queue[BatchResult] = queue.Queue()
        self._outstanding = 0
        # One more batch than threads may wait, so a thread never idles while the loop encodes.
        self._depth = threads + 1
        self._stopping = threading.Event()
        self.wakeup: Callable[[], None] = lambda: None  # called after each result (the loop's wait ends)
        self._threads = [threading.Thread(target=self._run, name=f"logger-sender-{n}", daemon=True)
                         for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def ready(self) -> bool:
        return self._outstanding < self._depth

    def in_flight(self) -> int:
        return self._outstanding

    def submit(self, batch: list[Item]) -> None:
        self._outstanding += 1
        self._todo.put(batch)

    def results(self) -> list[BatchResult]:
        done = []
        while True:
            try:
                done.append(self._done.get_nowait())
            except queue.Empty:
                break
        self._outstanding -= sum(1 for r in done if not r.partial)
        return done

    def stop(self) -> None:
        self._stopping.set()
        if isinstance(self._waiter, EventWaiter):
            self._waiter.cancel()
        for _thread in self._threads:
            self._todo.put(None)  # wakes a thread blocked on the queue: it sees _stopping and ends

    def _run(self) -> None:
        while True:
            batch = self._todo.get()  # blocks (no polling at rest)
            if batch is None or self._stopping.is_set():
                return
            while True:
                try:
                    self._done.put(self._sender.send(batch))
                    self.wakeup()
                    break
                except Cancelled as exc:
                    if exc.result is not None:
                        exc.result.partial = True
                        self._done.put(exc.result)
                    return
                except Exception:  # a bug must not lose the batch: log it and try the same batch again
                    log.exception("unexpected error while shipping; retrying the same batch")
                    try:
                        self._waiter.wait(1.0)
                    except Cancelled:
                        return


class Pipeline:
    """One logger: owns the tailer, batcher, sender, checkpoint; step() is one poll iteration."""

    def __init__(self, settings: Settings, transport: Transport, *, metrics: LoggerMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 waiter: Waiter | None = None, rng: Callable[[], float] = random.random,
                 hostname: str | None = None, threaded: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.metrics = metrics or LoggerMetrics()
        self._clock = clock
        self._wall = wall
        # When shipping last moved: an acknowledged batch, or a moment with nothing waiting.
        self._progress = (clock(), wall())
        self._sleep = sleep
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = CheckpointStore(settings.state_dir / "checkpoint.json", wall)
        loaded = self.store.load()
        if loaded.status != "ok":
            self.metrics.checkpoint_recoveries.labels(loaded.status).inc()
        self.registry = loaded.registry
        self.deadletter = DeadLetter(settings.state_dir / "dead-letter.jsonl", wall)
        self.spool = Spool(settings.state_dir / "spool", settings.spool_max_bytes)
        self.tailer = Tailer(settings.log_dir, self.registry, self.spool, self.deadletter, self.metrics,
                             max_line_bytes=settings.max_line_bytes,
                             rotated_idle=settings.rotated_idle_seconds, clock=clock, wall=wall)
        self.enricher = Enricher(settings.pod, settings.service_name, settings.environment,
                                 hostname or socket.gethostname(), wall, settings.probe_paths)
        self._stderr_level = settings.stderr_level.lower()
        self.routes = RouteCounter(self.metrics, settings.route_prefixes, self.enricher.is_probe)
        self.batcher = Batcher(settings.batch_lines, settings.batch_bytes, settings.flush_interval, clock)
        self.waiter = waiter or EventWaiter()
        self.sender = Sender(transport, settings.aggregator_url, settings.credential_file, self.deadletter,
                             self.metrics, self.waiter, rng, timeout=settings.request_timeout,
                             backoff_initial=settings.backoff_initial, backoff_max=settings.backoff_max)
        self.worker = (ThreadWorker(self.sender, self.waiter, settings.max_inflight_batches) if threaded
                       else InlineWorker(self.sender))
        self.wakeup = Wakeup()  # run() sleeps on it: file events, acknowledgements, stop
        self.sleeps = 0  # times run() went to sleep with nothing to do
        self.last_sleep = 0.0  # for how long it went to sleep the last time, at most
        if isinstance(self.worker, ThreadWorker):
            self.worker.wakeup = self.wakeup.set
        self._inflight: deque[Item] = deque()  # read but not acknowledged, oldest first
        self._inflight_bytes = 0
        self._dirty = False
        self._saved_at = clock()
        self._scanned_at = clock()
        self._save_failing = False
        self.state = "running"
        self._health: dict[str, Any] = {}
        self._update_gauges()

    # -- the loop ---------------------------------------------------------------------------------
    def step(self, draining: bool = False, rescan: bool = True) -> bool:
        """One iteration; True if it did work (call again at once), False if idle (sleep a poll).
        Without `rescan` (woken by a write soon after a scan) only the open files' sizes are read."""
        did = self._apply_results()
        if rescan or draining or not self.tailer.refresh():
            self.tailer.scan(force=draining)
            self._scanned_at = self._clock()
        if self.registry.changed and not self._try_save():
            return did  # new keys must be durable before entries carrying them leave
        room = self.settings.max_inflight_bytes - self._inflight_bytes
        lines = self.tailer.read(min(room, READ_PER_STEP)) if room > 0 else []
        lines += self.tailer.flush_partials(force=draining)
        self._add(lines)
        did = self._dispatch(force=draining) or bool(lines) or did
        # Idle (everything read is acknowledged): save at once, so a kill now re-sends nothing and a
        # file rewritten while the logger is down is never suspected of holding unconfirmed lines.
        due = not self._inflight or self._clock() - self._saved_at >= self.settings.checkpoint_interval
        if (self._dirty or self.tailer.dirty) and due:
            self._try_save()
        self._update_gauges()
        return did

    def run(self, stop: threading.Event) -> None:
        """Step until `stop` is set (whoever sets it calls wakeup.set() too). With nothing to do, sleep
        until a file event in the log directory, an acknowledgement or the next batch's flush time,
        rescanning every LOGGER_RESCAN_INTERVAL anyway (LOGGER_POLL_INTERVAL while entries await their
        acknowledgement, so /health stays current); without file events (no inotify), poll every
        LOGGER_POLL_INTERVAL, or LOGGER_IDLE_POLL_INTERVAL once nothing has come for a second."""
        watch = DirectoryWatch(self.settings.log_dir, self.wakeup)
        idle_since = None
        woken = False  # the last sleep ended by a wake-up, not by its timeout
        try:
            while not stop.is_set():
                # A write needs only the open files read: the directory is listed again when a file
                # came, went or was renamed, every LOGGER_POLL_INTERVAL under load, and after every
                # sleep that no event ended.
                rescan = (not woken or not watch.active or watch.entries_changed or self.tailer.unidentified
                          or self._clock() - self._scanned_at >= self.settings.poll_interval)
                watch.entries_changed = False  # an event during this step sets it again
                if self.step(rescan=rescan):
                    idle_since, woken = None, True
                    continue
                now = self._clock()
                idle_since = now if idle_since is None else idle_since
                watch.ensure()
                if watch.active and not self._inflight:
                    timeout = self.settings.rescan_interval
                elif watch.active:  # acknowledgements to await: keep polling meanwhile (/health)
                    timeout = self.settings.poll_interval
                elif now - idle_since >= 1.0:
                    timeout = self.settings.idle_poll_interval
                else:
                    timeout = self.settings.poll_interval
                # An unidentified file is looked at again when it grows (a file event), and after
                # RECHECK if it holds bytes; empty ones (an unused stdout) must not keep us polling.
                if self.tailer.recheck_wanted or (self.tailer.unidentified and not watch.active):
                    timeout = min(timeout, RECHECK)
                flush_in = self.batcher.due_in()
                if flush_in is not None:
                    timeout = min(timeout, flush_in)
                self.sleeps += 1
                self.last_sleep = max(timeout, 0.001)
                woken = self.wakeup.wait(self.last_sleep)
        finally:
            watch.close()

    def shutdown(self, deadline: float, app_running: Callable[[], bool] | None = None) -> int:
        """Drain before exit (see main.py); 0 when nothing is left unshipped that could be shipped."""
        self.state = "waiting-for-app"
        poll = self.settings.poll_interval
        while app_running is not None and self._clock() < deadline and app_running():
            if not self.step():
                self._sleep(poll)
        self.state = "draining"
        if isinstance(self.waiter, EventWaiter):
            self.waiter.wake()  # retry now, not at the end of a backoff
        attempts = self.sender.attempts
        while self._clock() < deadline:
            did = self.step(draining=True)
            if self.finished():
                self._final_save()
                log.info("shutdown: every line read was acknowledged by the aggregator")
                return 0
            if self.sender.reachable is False and self.sender.attempts > attempts:
                self._final_save()
                log.warning("shutdown: aggregator unreachable; %s remain unshipped; nothing is lost: "
                            "they are still in the files and ship on the next start", self._remaining())
                return 0
            if not did:
                self._sleep(min(poll, 0.05))
        self._final_save()
        log.error("shutdown: grace period of %.1f s over; %s remain unshipped; they are still in the files "
                  "and ship on the next start", self.settings.grace_seconds, self._remaining())
        return 1

    def finished(self) -> bool:
        """Everything read, no rotated partial line held, every entry acknowledged."""
        return (not self._inflight and self.tailer.unread_bytes() == 0
                and not self.tailer.pending_rotated_partials())

    def close(self) -> None:
        """Stop the sender and release files (no save: shutdown() and step() do that)."""
        self.worker.stop()
        self.tailer.close()

    def health(self) -> dict[str, Any]:
        """A snapshot for /health, safe to read from another thread."""
        return dict(self._health, state=self.state)

    def save(self) -> None:
        """Write the checkpoint now."""
        self.store.save(self.registry)
        for ident in self.registry.identities.values():
            ident.durable = ident.offset
        self.registry.changed = self._dirty = self.tailer.dirty = False
        self._saved_at = self._clock()
        self.metrics.checkpoint_saves.inc()

    # -- internals --------------------------------------------------------------------------------
    def _add(self, lines: list[tuple[Tail, RawLine]]) -> None:
        now = self._clock()
        truncated = 0
        limit = self.settings.max_entry_bytes
        batcher_add, inflight_add, observe = self.batcher.add, self._inflight.append, self.routes.observe
        enricher, pod = self.enricher, self.settings.pod
        added = 0
        for tail, raw in lines:
            entry_id = f"{pod}:{tail.ident.key}:{raw.offset}"  # enrich.entry_id, inlined: once a line
            fields = None if raw.truncated else common_fields(raw.data)
            spliced = None
            if fields is not None:  # the common case: read in C, our fields appended to its text
                if fields.request_time is not _UNSET:
                    observe({"request_time": fields.request_time, "status": fields.status,
                             "path": fields.path, "method": fields.method})
                try:
                    spliced = enricher.splice_common(fields, raw.data.decode(), tail.source, entry_id)
                except UnicodeDecodeError:
                    fields = None
            if spliced is None:
                record, text = decode_text(raw, tail.stderr, stderr_level=self._stderr_level)
                if fields is None:
                    observe(record)
                spliced = enricher.splice(record, text, tail.source, entry_id)
            if spliced is not None:  # one append, no re-encoding
                payload = _encode(spliced)
            else:
                record = self.enricher.enrich(record, tail.source, tail.ident.key, raw.offset)
                try:
                    payload = _dumps(record)
                except ValueError:  # a number out of float range: strict JSON keeps it as its text
                    record = decode_text(raw, tail.stderr, exact=True, stderr_level=self._stderr_level)[0]
                    record = self.enricher.enrich(record, tail.source, tail.ident.key, raw.offset)
                    payload = _dumps(record)
            # Escaping non-ASCII can triple the size the aggregator measures: check precisely only then.
            if len(payload) > limit or (3 * len(payload) > limit and not payload.isascii()):
                # Rare (long lines): from the exact reading, so whatever fit() keeps encodes strictly.
                exact = decode_text(raw, tail.stderr, exact=True, stderr_level=self._stderr_level)[0]
                record = self.enricher.enrich(exact, tail.source,
                                              tail.ident.key, raw.offset)
                fitted = fit(record, limit, raw.data.decode("utf-8", errors="replace"), raw.length)
                if fitted is not record:
                    record, payload = fitted, _dumps(fitted)
                    truncated += not raw.truncated
            item = Item(entry_id, tail.ident.key, raw.end, payload, now)
            batcher_add(item, now)
            inflight_add(item)
            added += len(payload) + 1
            truncated += raw.truncated
        self._inflight_bytes += added
        self.metrics.lines_read.inc(len(lines))
        self.metrics.lines_truncated.inc(truncated)

    def _dispatch(self, force: bool) -> bool:
        did = False
        while self.worker.ready():
            batch = self.batcher.take(force)
            if batch is None:
                break
            self.worker.submit(batch)
            did = True
        return self._apply_results() or did

    def _apply_results(self) -> bool:
        results = self.worker.results()
        if any(result.done for result in results):
            self._progress = (self._clock(), self._wall())
        for result in results:
            for item in result.done:
                item.acked = True
                self._inflight_bytes -= item.size
            self._dirty = True
        # Batches are acknowledged in any order: an offset moves only over the acknowledged prefix
        # of what was read, so the checkpoint never passes a line still on its way.
        inflight, identities = self._inflight, self.registry.identities
        while inflight and inflight[0].acked:
            item = inflight.popleft()
            ident = identities.get(item.key)
            if ident is not None and item.end > ident.offset:
                ident.offset = item.end
        return bool(results)

    def _try_save(self) -> bool:
        try:
            self.save()
        except OSError as exc:
            # Once per streak (this is retried every step): e.g. disk full. Until it works, no entry
            # of a new file leaves; a restart re-sends what was acknowledged since the last write.
            if not self._save_failing:
                log.error("could not write checkpoint %s: %s (retrying; entries of new files wait for it)",
                          self.store.path, exc)
            self._save_failing = True
            return False
        if self._save_failing:
            log.info("checkpoint %s written again", self.store.path)
            self._save_failing = False
        return True

    def _final_save(self) -> None:
        self._apply_results()
        self._try_save()
        self._update_gauges()

    def _remaining(self) -> str:
        return (f"{len(self._inflight)} lines read but unacknowledged and {self.tailer.unread_bytes()} "
                f"bytes not yet read")

    def _update_gauges(self) -> None:
        now = self._clock()
        lag_seconds = now - self._inflight[0].read_at if self._inflight else 0.0
        lag_bytes = self.tailer.unshipped_bytes()
        # Waiting: read and not acknowledged, or not read yet; a live file's unfinished last line
        # is not waiting for the aggregator (its writer has not finished it), so it cannot stall.
        waiting_bytes = lag_bytes - self.tailer.held_partial_bytes()
        if not self._inflight and waiting_bytes <= 0:
            self._progress = (now, self._wall())
        stalled = now - self._progress[0] if self._inflight or waiting_bytes > 0 else 0.0
        m = self.metrics
        m.inflight_bytes.set(self._inflight_bytes)
        m.lag_bytes.set(lag_bytes)
        m.lag_seconds.set(lag_seconds)
        m.files.set(len(self.tailer.tails))
        self._health = {"ok": True, "pod": self.settings.pod, "files": len(self.tailer.tails),
                        "inflight_lines": len(self._inflight), "inflight_bytes": self._inflight_bytes,
                        "lag_bytes": lag_bytes, "lag_seconds": round(lag_seconds, 3),
                        "spool_bytes": self.spool.used, "aggregator_reachable": self.sender.reachable,
                        "waiting_lines": len(self._inflight), "waiting_bytes": max(0, waiting_bytes),
                        "stalled_seconds": round(stalled, 3), "last_progress_at": round(self._progress[1], 3),
                        "symlinks_refused": sorted(self.tailer.symlinks)}


def _dumps(record: dict[str, Any]) -> bytes:
    """Strict compact JSON; ValueError for a non-finite number (never sent as Infinity)."""
    try:
        return jsonsafe.dumps(record).encode()
    except UnicodeEncodeError:  # a lone surrogate from a \\ud800 escape: escaped output stays valid
        return json.dumps(record, separators=(",", ":"), allow_nan=False).encode()


def _encode(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # cannot happen for text decoded with errors="replace"; be safe
        return text.encode("utf-8", "replace")
