"""The ClickHouse log store (base.LogStore) for a fleet: a Distributed table over ReplacingMergeTree
shards, written and read by any number of aggregators at once (AGGREGATOR_STORE=clickhouse+http://...).

Exactly once: an insert first asks which of its ids are stored (a primary-key lookup on the shard
each id hashes to) and writes only the others, in one synchronous Distributed INSERT; a copy that
slips past (two aggregators storing one id at the same moment) lands on the same shard as the
original and is merged away there, and until then every page drops the later copy of an id.

Seqs come from each aggregator's SeqClock (chconfig.py): time-ordered across aggregators, unique
per aggregator. An entry is shown once its seq is `settle` seconds old, so an insert still in flight
on another aggregator cannot slip behind a reader: `last_seq` is the highest seq stored that old
(a poller thread reads it every POLL_SECONDS), pages stop at it, the tail waits for it to move.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from podvisor.aggregator.histogram import LEVEL_GROUPS, Histogram, choose_buckets, time_range
from podvisor.aggregator.query import LogQuery
from podvisor.aggregator.store import chsql
from podvisor.aggregator.store.base import (
    BadSearch,
    InsertResult,
    Page,
    QueryTimeout,
    RetentionPass,
    Row,
    StoreUnavailable,
)
from podvisor.aggregator.store.chconfig import EPOCH_MS, LOW_BITS, ClickHouseUrl, SeqClock, seq_of_ms
from podvisor.aggregator.store.chhttp import BAD_QUERY_CODES, ClickHouseError, Node

if TYPE_CHECKING:
    from podvisor.aggregator.metrics import Metrics

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2
SIZE_EVERY = 25  # polls between two size readings (system.parts of every node)
LOOKUP_CHUNK = 2000
EXISTS_CODES = frozenset({57, 82})  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS: another aggregator won
DATA_CODES = frozenset({6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 131})  # a row ClickHouse cannot read
BIG_QUERY = {"max_query_size": 16 * 1024 * 1024}


class ClickHouseStore:
    """Implements base.LogStore over a ClickHouse cluster (see the module docstring)."""

    def __init__(self, url: ClickHouseUrl, *, query_timeout_ms: int = 2000, insert_timeout: float = 30.0,
                 wall: Callable[[], float] = time.time, poll_seconds: float = POLL_SECONDS) -> None:
        self.url = url
        self.db = url.database
        self.nodes = [Node(address) for address in url.nodes]
        self.node = self.nodes[0]
        self.query_timeout = query_timeout_ms / 1000
        self.insert_timeout = insert_timeout
        self.settle_ms = int(url.settle_seconds * 1000)
        self._wall = wall
        self._clock = SeqClock(url.instance, wall)
        self._changed = threading.Condition()
        self._closed = False
        self._last_seq = 0
        self._count = 0
        self._oldest: int | None = None
        self._size = 0
        self._problem: str | None = None
        self._inflight = 0
        self._taken = 0  # highest seq this aggregator handed out
        self.late_inserts = 0
        self._pending_schema = list(self.nodes)
        self.ensure_schema(first_required=True)
        self.poll()
        self._stop = threading.Event()
        self._poll_seconds = poll_seconds
        self._thread = threading.Thread(target=self._loop, name="clickhouse-poller", daemon=True)
        self._thread.start()

    # -- schema ---------------------------------------------------------------------------------
    def ensure_schema(self, first_required: bool = False) -> None:
        """Create the database and both tables on every node still lacking them (per node: ON CLUSTER
        would need ZooKeeper on 18.16). The first node must succeed when `first_required`."""
        statements = (chsql.create_database(self.db), chsql.create_local(self.db),
                      chsql.create_distributed(self.db, self.url.cluster))
        for node in list(self._pending_schema):
            try:
                for sql in statements:
                    try:
                        node.execute(sql, timeout=30)
                    except ClickHouseError as exc:
                        if exc.code not in EXISTS_CODES:
                            raise
                self._pending_schema.remove(node)
            except (StoreUnavailable, QueryTimeout, ClickHouseError) as exc:
                if first_required and node is self.node:
                    raise StoreUnavailable(f"cannot create the schema on {node.address}: {exc}") from None
                logger.warning("schema not created on %s yet (%s); retrying in the background", node.address, exc)

    # -- writes ---------------------------------------------------------------------------------
    def insert(self, rows: list[Row], timeout: float = 30.0) -> InsertResult:
        """Store the rows whose id is new (see the module docstring)."""
        if not rows:
            return InsertResult(0, 0)
        if self._closed:
            raise StoreUnavailable("store is closed")
        self._inflight += 1
        try:
            fresh: dict[str, Row] = {}
            for row in rows:
                fresh.setdefault(row[0], row)
            ids = list(fresh)
            for start in range(0, len(ids), LOOKUP_CHUNK):
                text = self._call(self.node, chsql.existing_ids(self.db, ids[start:start + LOOKUP_CHUNK]),
                                  timeout=timeout, settings=BIG_QUERY)
                for line in text.splitlines():
                    fresh.pop(chsql.unescape_tsv(line), None)
            new = list(fresh.values())
            if new:
                seqs, taken_at = self._clock.take(len(new))
                self._call(self.node, chsql.insert(self.db), data=chsql.tsv_rows(new, seqs), timeout=timeout,
                           settings={"insert_distributed_sync": 1})
                self._taken = max(self._taken, seqs[-1])
                took = self._wall() - taken_at
                if took * 1000 > self.settle_ms:
                    # Readers may have moved past these seqs already: pages show them, open tails may not.
                    self.late_inserts += len(new)
                    logger.warning("an insert of %d entries took %.1fs, longer than settle=%gs: open tails may "
                                   "have skipped them (they are stored)", len(new), took, self.url.settle_seconds)
            return InsertResult(stored=len(new), duplicates=len(rows) - len(new))
        finally:
            self._inflight -= 1

    def _call(self, node: Node, sql: str, *, data: bytes | None = None, timeout: float,
              settings: dict | None = None) -> str:
        try:
            return node.execute(sql, data=data, timeout=timeout, settings=settings)
        except ClickHouseError as exc:
            if data is not None and exc.code in DATA_CODES:
                raise  # the ingest view retries row by row: the culprit alone is refused
            raise StoreUnavailable(str(exc)) from None
        except QueryTimeout as exc:
            raise StoreUnavailable(str(exc)) from None

    # -- reads ----------------------------------------------------------------------------------
    def page(self, query: LogQuery, *, order: str, after: int | None, limit: int,
             with_ts: bool = False) -> Page:
        """Entries with seq <= last_seq, each id once (its first copy), in seq order after `after`."""
        if self._closed:
            raise StoreUnavailable("store is closed")
        latest = self._last_seq
        rows: list[tuple] = []
        cursor = after
        want = limit
        for _ in range(4):  # only ids stored twice and not merged yet make a second round
            got = self._select(query, order, cursor, want, latest)
            if not got:
                break
            keep = self._first_copies(got)
            rows.extend(keep)
            if len(got) < want or len(rows) >= limit:
                break
            cursor, want = got[-1][0], limit - len(rows)
        rows = rows[:limit]
        if with_ts:
            return Page([(seq, body, ts) for seq, _id, ts, body in rows], latest)
        return Page([(seq, body) for seq, _id, _ts, body in rows], latest)

    def volume(self, query: LogQuery, *, wanted: int, now_ms: int) -> Histogram:
        """Matching entries per bucket and level in one GROUP BY over the cluster (histogram.py)."""
        if self._closed:
            raise StoreUnavailable("store is closed")
        since, until = time_range(query, now_ms, self._oldest)
        buckets = choose_buckets(since, until, wanted)
        counts: list[dict[str, int]] = [{} for _ in range(buckets.count)]
        sql = chsql.volume(self.db, query, since=since, until=until, start=buckets.start_ms, width=buckets.width_ms,
                           visible=self._last_seq)
        try:
            text = self.node.execute(sql, timeout=self.query_timeout, settings=BIG_QUERY)
        except ClickHouseError as exc:
            if query.text is not None and exc.code in BAD_QUERY_CODES:
                raise BadSearch(str(exc)) from None
            raise StoreUnavailable(str(exc)) from None
        for line in text.splitlines():
            index, total, *levels = (int(field) for field in line.split("\t"))
            known = dict(zip(LEVEL_GROUPS, levels, strict=False))
            known["other"] = total - sum(known.values())
            counts[index] = {level: n for level, n in known.items() if n}
        return Histogram(since, until, buckets, counts)

    def _select(self, query: LogQuery, order: str, after: int | None, limit: int, latest: int) -> list[tuple]:
        sql = chsql.select_page(self.db, query, order=order, after=after, limit=limit, visible=latest)
        try:
            text = self.node.execute(sql, timeout=self.query_timeout)
        except ClickHouseError as exc:
            if query.text is not None and exc.code in BAD_QUERY_CODES:
                raise BadSearch(str(exc)) from None
            raise StoreUnavailable(str(exc)) from None
        out = []
        for line in text.splitlines():
            seq, eid, ts, body = line.split("\t")
            out.append((int(seq), chsql.unescape_tsv(eid), int(ts), chsql.unescape_tsv(body)))
        return out

    def _first_copies(self, rows: list[tuple]) -> list[tuple]:
        """`rows` without the later copies of ids stored more than once (not merged yet)."""
        sql = chsql.first_copies(self.db, [row[1] for row in rows])
        try:
            text = self.node.execute(sql, timeout=self.query_timeout, settings=BIG_QUERY)
        except ClickHouseError as exc:
            raise StoreUnavailable(str(exc)) from None
        first = {}
        for line in text.splitlines():
            eid, seq = line.rsplit("\t", 1)
            first[chsql.unescape_tsv(eid)] = int(seq)
        return [row for row in rows if first.get(row[1], row[0]) == row[0]]

    # -- the poller -------------------------------------------------------------------------------
    def visible_seq(self) -> int:
        """Seqs up to this were taken `settle` seconds ago or more."""
        return seq_of_ms(int(self._wall() * 1000) - self.settle_ms)

    def poll(self) -> None:
        """Read the highest settled seq, the count and the oldest time; wake waiting tails."""
        try:
            text = self.node.execute(chsql.state(self.db, self.visible_seq()), timeout=5)
            latest, count, oldest = text.strip().split("\t")
            problem = None
        except (StoreUnavailable, QueryTimeout, ClickHouseError) as exc:
            problem = str(exc)
        with self._changed:
            self._problem = problem
            if problem is None:
                self._count = int(count)
                self._oldest = int(oldest) if int(count) else None
                if int(latest) > self._last_seq:
                    self._last_seq = int(latest)
            self._changed.notify_all()

    def _read_size(self) -> None:
        total = 0
        for node in self.nodes:
            try:
                text = node.execute(chsql.partitions(self.db), timeout=5)
            except (StoreUnavailable, QueryTimeout, ClickHouseError):
                return
            total += sum(int(line.split("\t")[1]) for line in text.splitlines())
        self._size = total

    def partitions(self, node: Node) -> list[tuple[int, int, int]]:
        """(UTC day, bytes, rows) of the node's partitions, oldest first."""
        text = node.execute(chsql.partitions(self.db), timeout=30)
        return [tuple(int(v) for v in line.split("\t")) for line in text.splitlines()]  # type: ignore[misc]

    def _loop(self) -> None:
        rounds = 0
        while not self._stop.wait(self._poll_seconds):
            self.poll()
            if rounds % SIZE_EVERY == 0:
                self._read_size()
                if self._pending_schema:
                    self.ensure_schema()
            rounds += 1

    def wait_visible(self, timeout: float = 30.0) -> None:
        """Block until every seq this aggregator handed out is readable (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        while self._last_seq < self._taken and time.monotonic() < deadline:
            remaining = (self._taken >> LOW_BITS) + EPOCH_MS + self.settle_ms - self._wall() * 1000
            time.sleep(max(0.01, min(remaining / 1000, 0.05)))
            self.poll()

    # -- LogStore ---------------------------------------------------------------------------------
    @property
    def entry_count(self) -> int:
        return self._count

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def wait_for_seq(self, after: int, timeout: float, stop: Callable[[], bool] = lambda: False) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._last_seq > after or self._closed or stop(), timeout)
            return self._last_seq

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def size_bytes(self) -> int:
        return self._size

    def queue_depth(self) -> int:
        return self._inflight

    def accepts_writes(self) -> bool:
        return not self._closed and self._problem is None

    def oldest_ts_ms(self) -> int | None:
        return self._oldest

    def health(self) -> str | None:
        if self._closed:
            return "store is closed"
        return None if self._problem is None else f"ClickHouse: {self._problem}"

    def retention(self, *, max_age_days: float, max_bytes: int, metrics: Metrics | None = None) -> RetentionPass:
        from podvisor.aggregator.store.chretention import ClickHouseRetention

        return ClickHouseRetention(self, max_age_days=max_age_days, max_bytes=max_bytes, metrics=metrics)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.wake()
        for node in self.nodes:
            node.close()

