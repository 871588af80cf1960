"""The store the settings choose: SQLite at AGGREGATOR_DB, the embedded default for one machine, or
the ClickHouse cluster AGGREGATOR_STORE names (a fleet)."""
from __future__ import annotations

from podvisor.aggregator.settings import Settings
from podvisor.aggregator.store.base import LogStore
from podvisor.aggregator.store.sqlite import Store


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
