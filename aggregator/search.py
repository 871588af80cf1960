"""Run a LogQuery against the store, mapping its errors to the API's (400 bad search, 503)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.metrics import Metrics
from podvisor.aggregator.query import LogQuery
from podvisor.aggregator.store.base import BadSearch, LogStore, Page, QueryTimeout, StoreUnavailable


def fetch(store: LogStore, query: LogQuery, *, order: str, after: int | None, limit: int,
          metrics: Metrics | None = None, endpoint: str = "api", with_ts: bool = False) -> Page:
    """One page of entries in seq order; raises ApiError (400 bad search, 503 timeout or no store)."""
    with api_errors(metrics, endpoint):
        return store.page(query, order=order, after=after, limit=limit, with_ts=with_ts)


@contextmanager
def api_errors(metrics: Metrics | None, endpoint: str) -> Iterator[None]:
    """A store read, timed in `metrics`; the store's failures become ApiErrors (400 a search the
    store refuses, 503 a timeout or no store)."""
    started = time.perf_counter()
    try:
        yield
    except QueryTimeout:
        if metrics is not None:
            metrics.query_timeouts.labels(endpoint).inc()
        raise ApiError(503, "query timed out", {"Retry-After": "1"}) from None
    except StoreUnavailable as exc:
        raise ApiError(503, f"store unavailable: {exc}", {"Retry-After": "1"}) from None
    except BadSearch as exc:
        raise ApiError(400, f"q: not a valid search: {exc}") from None
    finally:
        if metrics is not None:
            metrics.query_seconds.labels(endpoint).observe(time.perf_counter() - started)
