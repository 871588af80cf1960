"""What the aggregator needs of a log store: the `LogStore` protocol and the types its methods share.

The views, the tail, the metrics and retention reach the store through this protocol only, so a
store is chosen by one setting: SQLite (sqlite.py, the embedded default for one machine) or a
store for a fleet that implements the same methods. What every store guarantees:

- `insert` is idempotent by entry id: an id stored before (by this aggregator or another one
  writing into the same store) is counted as a duplicate, never stored twice, so a shipper's retry
  after a lost answer costs nothing (the delivery guarantee of DESIGN.md);
- every stored entry gets a `seq`, an integer cursor that grows with commit order as one reader
  sees it: `page(after=seq)` continues a listing, `last_seq` and `wait_for_seq` drive the live tail;
- reads are time-limited (`QueryTimeout`), and a store that cannot serve says so (`StoreUnavailable`)
  instead of hanging: the API answers 503 with Retry-After, and shippers retry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from podvisor.aggregator.histogram import Histogram
    from podvisor.aggregator.metrics import Metrics
    from podvisor.aggregator.query import LogQuery

# One validated entry, as validation.py builds it: (id, ts in epoch ms, service_name, level, pod,
# request_id, message, the entry's JSON text as stored and served).
Row = tuple[str, int, str | None, str | None, str | None, str | None, str, str]


class StoreUnavailable(RuntimeError):
    """The store cannot serve now (closed, failed, overloaded): answer 503."""


class QueryTimeout(RuntimeError):
    """A read ran past the query time limit and was interrupted."""


class BadSearch(ValueError):
    """The store refused the query's full-text search: the caller's 400."""


@dataclass(frozen=True)
class InsertResult:
    """Outcome of one insert request."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class Page:
    """Matching (seq, body JSON[, ts ms]) rows in seq order, and the highest seq stored when read."""

    rows: list[tuple]
    latest_id: int


@dataclass(frozen=True)
class RetentionReport:
    deleted_by_age: int
    deleted_by_size: int
    used_bytes: int


class RetentionPass(Protocol):
    """One store's retention: what a RetentionWorker runs every interval."""

    def run_once(self) -> RetentionReport: ...

    def cancel_pass(self) -> None:
        """Make a running pass stop at its next chunk (shutdown)."""


class LogStore(Protocol):
    """A log store as the aggregator uses it (see the module docstring for the guarantees)."""

    def insert(self, rows: list[Row], timeout: float = 30.0) -> InsertResult:
        """Store the rows whose id is new; raise StoreUnavailable when nothing could be stored."""

    def page(self, query: LogQuery, *, order: str, after: int | None, limit: int,
             with_ts: bool = False) -> Page:
        """Up to `limit` entries matching `query`, in seq order `order` ("asc"/"desc"), after the
        cursor `after`; raise QueryTimeout, StoreUnavailable or BadSearch."""

    def volume(self, query: LogQuery, *, wanted: int, now_ms: int) -> Histogram:
        """The entries matching `query` counted per time bucket (at most `wanted`, of a round width:
        histogram.choose_buckets) and level group, over the query's range (histogram.time_range);
        raise QueryTimeout, StoreUnavailable or BadSearch."""

    @property
    def entry_count(self) -> int:
        """Entries stored (may lag a moment behind inserts from other aggregators)."""

    @property
    def last_seq(self) -> int:
        """The highest seq committed so far, as far as this aggregator knows."""

    def wait_for_seq(self, after: int, timeout: float, stop: Callable[[], bool] = lambda: False) -> int:
        """Block until an entry with seq > `after` is committed, `timeout` passes, `stop()` turns
        true (checked when woken by wake()) or the store closes; return the last seq."""

    def wake(self) -> None:
        """Wake every wait_for_seq() so it re-checks its stop condition."""

    def size_bytes(self) -> int:
        """Bytes the store takes on disk (0 when it cannot tell)."""

    def queue_depth(self) -> int:
        """Writes accepted and not committed yet."""

    def accepts_writes(self) -> bool:
        """Whether a write would be tried now (the aggregator_store_up gauge)."""

    def oldest_ts_ms(self) -> int | None:
        """The timestamp of the oldest stored entry; None when empty or not known within a second."""

    def health(self) -> str | None:
        """None when the store can read and write; otherwise the reason it cannot."""

    def retention(self, *, max_age_days: float, max_bytes: int, metrics: Metrics | None = None) -> RetentionPass:
        """The store's retention, deleting by age and then by size (0 turns a limit off)."""

    def close(self) -> None:
        """Commit what was accepted, then release every connection."""
