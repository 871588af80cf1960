"""Retention in the ClickHouse store: whole UTC days are dropped (ALTER TABLE ... DROP PARTITION on
every node), by age, then oldest first while the cluster holds more than the size limit."""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from podvisor.aggregator.store.base import RetentionReport, StoreUnavailable
from podvisor.aggregator.store.chhttp import ClickHouseError
from podvisor.aggregator.store.chsql import DAY_MS, drop_partition

if TYPE_CHECKING:
    from podvisor.aggregator.metrics import Metrics
    from podvisor.aggregator.store.clickhouse import ClickHouseStore

logger = logging.getLogger(__name__)


class ClickHouseRetention:
    """One pass: drop the days wholly older than `max_age_days`, then the oldest days while over
    `max_bytes` (never today's: a day is the unit, so the size limit is kept to within a day)."""

    def __init__(self, store: ClickHouseStore, *, max_age_days: float, max_bytes: int,
                 clock: Callable[[], float] = time.time, metrics: Metrics | None = None) -> None:
        self.store = store
        self.max_age_days = max_age_days
        self.max_bytes = max_bytes
        self.clock = clock
        self.metrics = metrics
        self.last_used_bytes: int | None = None
        self.cancel = threading.Event()

    def _days(self) -> dict[int, tuple[int, int]]:
        """day -> (bytes, rows) summed over every node."""
        days: dict[int, tuple[int, int]] = {}
        for node in self.store.nodes:
            try:
                for day, size, rows in self.store.partitions(node):
                    old = days.get(day, (0, 0))
                    days[day] = (old[0] + size, old[1] + rows)
            except ClickHouseError as exc:
                raise StoreUnavailable(str(exc)) from None
        return days

    def _drop(self, day: int, rows: int, reason: str) -> int:
        for node in self.store.nodes:
            try:
                node.execute(drop_partition(self.store.db, day), timeout=60)
            except ClickHouseError as exc:
                raise StoreUnavailable(str(exc)) from None
        logger.info("retention dropped day %d (%d entries) by %s", day, rows, reason)
        if self.metrics is not None:
            self.metrics.retention_deleted.labels(reason).inc(rows)
        return rows

    def run_once(self) -> RetentionReport:
        days = self._days()
        now_ms = self.clock() * 1000
        by_age = by_size = 0
        if self.max_age_days > 0:
            cutoff = now_ms - self.max_age_days * DAY_MS
            for day in sorted(days):
                if (day + 1) * DAY_MS > cutoff or self.cancel.is_set():
                    break
                by_age += self._drop(day, days.pop(day)[1], "age")
        today = math.floor(now_ms / DAY_MS)
        if self.max_bytes > 0:
            for day in sorted(days):
                if sum(size for size, _ in days.values()) <= self.max_bytes or day >= today or self.cancel.is_set():
                    break
                by_size += self._drop(day, days.pop(day)[1], "size")
        self.last_used_bytes = sum(size for size, _ in days.values())
        return RetentionReport(by_age, by_size, self.last_used_bytes)

    def cancel_pass(self) -> None:
        self.cancel.set()
