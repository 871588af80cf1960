"""The store the settings choose: SQLite at AGGREGATOR_DB, the embedded default for one machine."""
from __future__ import annotations

from podvisor.aggregator.settings import Settings
from podvisor.aggregator.store.base import LogStore
from podvisor.aggregator.store.sqlite import Store


def open_store(settings: Settings) -> LogStore:
    """Open (and create on first start) the configured store; raises OSError, sqlite3.Error,
    SchemaError or StoreUnavailable with the reason it cannot."""
    return Store(settings.db_path, query_timeout_ms=settings.query_timeout_ms)
