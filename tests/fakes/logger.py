"""Fakes for tests and benchmarks: a clock, a waiter and an in-memory aggregator transport.

They live with the other test fakes (tests/fakes/) so every test suite, and the contract test,
can build a Pipeline without sockets or sleeps.
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from podvisor.sidecars.logger.sender import Cancelled, Response, TransportError
from podvisor.sidecars.logger.settings import Settings


def settings_for(root: Path, **overrides: Any) -> Settings:
    """Settings for a logger whose log, state and token live under `root` (directories not created)."""
    values: dict[str, Any] = dict(
        pod="user", service_name="user-service", environment="test", log_dir=root / "logs",
        state_dir=root / "state", aggregator_url="http://aggregator.invalid", credential_file=root / "token",
        rotated_idle_seconds=0.0, checkpoint_interval=0.0, flush_interval=0.0)
    values.update(overrides)
    return Settings(**values)


class FakeClock:
    """A settable clock; call it to read the time."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeWaiter:
    """Records the delays asked for; advances `clock` by them; cancels after `cancel_after` waits."""

    def __init__(self, clock: FakeClock | None = None, cancel_after: int | None = None) -> None:
        self.delays: list[float] = []
        self._clock = clock
        self._cancel_after = cancel_after

    def wait(self, seconds: float) -> None:
        if self._cancel_after is not None and len(self.delays) >= self._cancel_after:
            raise Cancelled()
        self.delays.append(seconds)
        if self._clock is not None:
            self._clock.advance(seconds)


Reply = Response | Exception | Callable[[list[dict[str, Any]]], Response]


class RecordingTransport:
    """An aggregator in memory: stores entries by id (duplicates ignored, as the real store does).

    `replies` is consumed first, one per request: a Response to answer with (nothing stored unless
    2xx), an exception to raise, or a function of the decoded entries. `stored_then` is called
    with the stored entries after a successful store, before the ack returns (raise there to model
    a logger crash between delivery and acknowledgement).
    """

    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies: list[Reply] = list(replies or [])
        self.store: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.deliveries = 0
        self.stored_then: Callable[[list[dict[str, Any]]], None] | None = None

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
        entries = json.loads(raw)
        self.requests.append({"url": url, "headers": dict(headers), "entries": entries, "bytes": len(raw)})
        if self.replies:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            if callable(reply):
                reply = reply(entries)
            return reply
        stored = duplicates = 0
        for entry in entries:
            if entry["id"] in self.store:
                duplicates += 1
            else:
                self.store[entry["id"]] = entry
                stored += 1
        self.deliveries += len(entries)
        if self.stored_then is not None:
            self.stored_then(entries)
        return Response(202, json.dumps({"ok": True, "received": len(entries), "stored": stored,
                                         "duplicates": duplicates, "rejected": 0, "errors": []}).encode())


def unreachable() -> TransportError:
    """The exception a transport raises when nothing listens."""
    return TransportError("connection refused")
