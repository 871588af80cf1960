"""Shared fixtures and helpers for the aggregator's unit tests (no sockets: Flask test_client)."""
from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from podvisor.aggregator.app import create_app
from podvisor.aggregator.settings import Settings
from podvisor.aggregator.state import EXTENSION_KEY, AggregatorState
from podvisor.aggregator.store.sqlite import Store
from podvisor.aggregator.validation import validate


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "db_path": str(tmp_path / "var" / "logs.db"),
        "token_file": str(tmp_path / "var" / "token"),
        "retention_days": 0,
        "retention_bytes": 0,
        "tail_heartbeat": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def state_of(app: Flask) -> AggregatorState:
    return app.extensions[EXTENSION_KEY]


def token_of(app: Flask) -> str:
    return Path(state_of(app).settings.token_file).read_text().strip()


def entry(i: int, **fields: Any) -> dict[str, Any]:
    base = {
        "id": f"user:abc:{i}",
        "timestamp": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "level": "info",
        "message": f"line number {i}",
        "service_name": "user-service",
        "pod": "user",
    }
    base.update(fields)
    return base


def post(client: FlaskClient, body: Any, token: str | None, *, gzipped: bool = False,
         headers: dict[str, str] | None = None, path: str = "/logs") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if gzipped:
        data = gzip.compress(data)
        all_headers["Content-Encoding"] = "gzip"
    all_headers.update(headers or {})
    return client.post(path, data=data, headers=all_headers)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    application = create_app(make_settings(tmp_path), start_background=False)
    yield application
    state_of(application).close()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token(app: Flask) -> str:
    return token_of(app)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A bare store (no app) in tmp_path."""
    db = Store(str(tmp_path / "logs.db"))
    yield db
    db.close()


def insert_entries(store: Store, entries: list[dict]) -> None:
    """Validate `entries` as ingest does (all must be valid) and store them."""
    batch = validate(entries, 1 << 20, 0)
    assert not batch.errors, batch.errors
    store.insert(batch.rows)
