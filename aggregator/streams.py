"""Slots for live tail streams: each holds a server thread, so their number is capped in total and
per client (a session, the master token, or all anonymous readers together), so no one reader can
take every slot."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable


class TailsExhausted(Exception):
    """No slot: `per_client` says whether this client's own cap (not the total) was the limit."""

    def __init__(self, message: str, per_client: bool) -> None:
        super().__init__(message)
        self.per_client = per_client


class TailLimiter:
    """Caps concurrent streams and tells them when to stop."""

    def __init__(self, max_streams: int, wake: Callable[[], None] = lambda: None,
                 max_per_client: int | None = None) -> None:
        self.max_streams = max_streams
        self.max_per_client = max_streams if max_per_client is None else max_per_client
        self._by_client: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._wake = wake
        self.closed = False

    @property
    def active(self) -> int:
        """Open streams."""
        return sum(self._by_client.values())

    def acquire(self, client: str) -> Callable[[], None]:
        """Take a slot for `client`; return its one-shot release function. Raises TailsExhausted."""
        with self._lock:
            if self.closed:
                raise TailsExhausted("the aggregator is shutting down", per_client=False)
            if self._by_client[client] >= self.max_per_client:
                raise TailsExhausted(f"this client already has {self.max_per_client} live tail streams "
                                     f"(AGGREGATOR_TAIL_MAX_PER_CLIENT); close one first", per_client=True)
            if sum(self._by_client.values()) >= self.max_streams:
                raise TailsExhausted(f"too many live tail streams (limit {self.max_streams})", per_client=False)
            self._by_client[client] += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._by_client[client] -= 1
                    if not self._by_client[client]:
                        del self._by_client[client]

        return release

    def close(self) -> None:
        """End every stream promptly (shutdown)."""
        self.closed = True
        self._wake()
