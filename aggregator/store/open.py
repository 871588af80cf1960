"""The store the settings choose: SQLite at AGGREGATOR_DB, the embedded default for one machine, or
the ClickHouse cluster AGGREGATOR_STORE names (a fleet)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from podvisor.aggregator.settings import Settings
from podvisor.aggregator.store.base import LogStore, StoreUnavailable
from podvisor.aggregator.store.sqlite import Store

logger = logging.getLogger(__name__)
RETRY_SECONDS = 0.5


def open_store(settings: Settings) -> LogStore:
    """Open (and create on first start) the configured store; raises OSError, sqlite3.Error,
    SchemaError or StoreUnavailable with the reason it cannot."""
    if settings.store_url is not None:
        from podvisor.aggregator.store.chconfig import parse_url
        from podvisor.aggregator.store.clickhouse import ClickHouseStore

        return ClickHouseStore(parse_url(settings.store_url), query_timeout_ms=settings.query_timeout_ms)
    return Store(settings.db_path, query_timeout_ms=settings.query_timeout_ms)


def store_setting(settings: Settings) -> tuple[str, str]:
    """The setting that names the store, and its value (for error messages)."""
    if settings.store_url is not None:
        return "AGGREGATOR_STORE", settings.store_url
    return "AGGREGATOR_DB", settings.db_path


def open_store_waiting(settings: Settings, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep,
                       opener: Callable[[Settings], LogStore] = open_store) -> LogStore:
    """open_store, retried while the store is unreachable, for up to `settings.store_wait` seconds:
    started together with the aggregator (a fleet's stack.conf runs ClickHouse beside it), a store
    that is still starting is waited for rather than made a crash loop. The last refusal is raised."""
    deadline = clock() + settings.store_wait
    attempts = 0
    while True:
        try:
            return opener(settings)
        except StoreUnavailable as exc:
            attempts += 1
            if clock() + RETRY_SECONDS > deadline:
                raise
            if attempts == 1:
                logger.warning("store %s unreachable (%s): waiting up to %gs for it",
                               store_setting(settings)[1], exc, settings.store_wait)
            sleep(RETRY_SECONDS)
