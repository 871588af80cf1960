"""The aggregator's Prometheus metrics, on a registry of its own (one per app, none at import)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from podvisor.aggregator.store.base import LogStore

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters and histograms the views and workers update; scrape-time gauges via StoreCollector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.ingest_requests = Counter("aggregator_ingest_requests_total",
                                       "Ingest requests by HTTP status.", ["status"], registry=r)
        self.entries_received = Counter("aggregator_entries_received_total",
                                        "Log entries received in ingest bodies.", registry=r)
        self.entries_stored = Counter("aggregator_entries_stored_total",
                                      "Log entries newly stored.", registry=r)
        self.entries_duplicate = Counter("aggregator_entries_duplicate_total",
                                         "Log entries whose id was already stored (ignored).",
                                         registry=r)
        self.entries_rejected = Counter("aggregator_entries_rejected_total",
                                        "Log entries refused by validation.", registry=r)
        self.entries_failed = Counter("aggregator_entries_failed_total",
                                      "Log entries refused because handling them raised an unexpected "
                                      "error (also counted as rejected).", registry=r)
        self.ingest_seconds = Histogram("aggregator_ingest_batch_seconds",
                                        "Time to validate and commit one ingest request.",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.query_seconds = Histogram("aggregator_query_seconds", "Time to answer a log query.",
                                       ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r)
        self.query_timeouts = Counter("aggregator_query_timeouts_total",
                                      "Queries interrupted by the query time limit.", ["endpoint"],
                                      registry=r)
        self.retention_deleted = Counter("aggregator_retention_deleted_entries_total",
                                         "Entries deleted by retention.", ["reason"], registry=r)
        self.retention_runs = Counter("aggregator_retention_runs_total",
                                      "Retention passes, by outcome.", ["outcome"], registry=r)
        self.retention_seconds = Histogram("aggregator_retention_run_seconds",
                                           "Duration of one retention pass.",
                                           buckets=_LATENCY_BUCKETS, registry=r)

    def count_ingest(self, status: int, *, received: int, stored: int, duplicates: int, rejected: int,
                     failed: int, started: float) -> None:
        """One answered ingest request, whatever its API (POST /logs, OTLP, _bulk): its entries by
        outcome and its time since `started` (time.perf_counter())."""
        self.ingest_requests.labels(str(status)).inc()
        self.entries_received.inc(received)
        self.entries_stored.inc(stored)
        self.entries_duplicate.inc(duplicates)
        self.entries_rejected.inc(rejected)
        self.entries_failed.inc(failed)
        self.ingest_seconds.observe(time.perf_counter() - started)


class StoreCollector:
    """Gauges read fresh at every scrape: stored entries, sizes, oldest entry age, tail streams."""

    def __init__(self, store: LogStore, tail_count: Callable[[], int],
                 used_bytes: Callable[[], int | None], clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._tail_count = tail_count
        self._used_bytes = used_bytes
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        store = self._store
        yield GaugeMetricFamily("aggregator_store_entries", "Log entries currently stored.",
                                value=store.entry_count)
        yield GaugeMetricFamily("aggregator_db_size_bytes",
                                "Size on disk of the SQLite database and its WAL.",
                                value=store.size_bytes())
        used = self._used_bytes()
        if used is not None:
            yield GaugeMetricFamily("aggregator_db_used_bytes",
                                    "Database pages in use at the last retention pass, in bytes.",
                                    value=used)
        yield GaugeMetricFamily("aggregator_write_queue_depth",
                                "Write requests waiting for the writer thread.",
                                value=store.queue_depth())
        yield GaugeMetricFamily("aggregator_tail_subscribers", "Open live-tail streams.",
                                value=self._tail_count())
        yield GaugeMetricFamily("aggregator_store_up", "1 when the store accepts writes.",
                                value=1 if store.accepts_writes() else 0)
        oldest = store.oldest_ts_ms()
        if oldest is not None:
            age = max(0.0, self._clock() - oldest / 1000)
            yield GaugeMetricFamily("aggregator_oldest_entry_age_seconds",
                                    "Age of the oldest stored entry by its timestamp.", value=age)
