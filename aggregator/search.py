"""Run a LogQuery against the store, mapping timeouts and FTS errors to API errors."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.metrics import Metrics
from podvisor.aggregator.query import LogQuery, service_names
from podvisor.aggregator.store.select import (
    build_select,
    existing_services,
    only_exclusions,
    seq_bounds,
    seq_windows,
)
from podvisor.aggregator.store.sqlite import QueryTimeout, Store, StoreUnavailable


@dataclass(frozen=True)
class Page:
    """Matching (seq, body JSON[, ts]) rows, and the highest seq stored in the same snapshot."""

    rows: list[tuple]
    latest_id: int


def fetch(store: Store, query: LogQuery, *, order: str, after: int | None, limit: int,
          metrics: Metrics | None = None, endpoint: str = "api", with_ts: bool = False) -> Page:
    """One page of entries in seq order; raises ApiError (400 bad search, 503 timeout or no store)."""
    with reading(store, query, metrics, endpoint) as conn:
        latest_row = conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'logs'").fetchone()
        latest = latest_row[0] if latest_row else 0
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


@contextmanager
def reading(store: Store, query: LogQuery, metrics: Metrics | None, endpoint: str
            ) -> Iterator[sqlite3.Connection]:
    """A read snapshot for `query`, timed in `metrics`; the store's failures become ApiErrors
    (400 a search FTS5 refuses, 503 a timeout or no store)."""
    started = time.perf_counter()
    try:
        with store.read() as conn:
            yield conn
    except QueryTimeout:
        if metrics is not None:
            metrics.query_timeouts.labels(endpoint).inc()
        raise ApiError(503, "query timed out", {"Retry-After": "1"}) from None
    except StoreUnavailable as exc:
        raise ApiError(503, f"store unavailable: {exc}") from None
    except sqlite3.OperationalError as exc:
        # The query is built by select.fts_expression, so this is a search FTS5 still refuses: the
        # caller's 400, whatever SQLite's wording ("fts5: syntax error", "unterminated string").
        if query.text is not None:
            raise ApiError(400, f"q: not a valid search: {exc}") from None
        raise
    finally:
        if metrics is not None:
            metrics.query_seconds.labels(endpoint).observe(time.perf_counter() - started)
