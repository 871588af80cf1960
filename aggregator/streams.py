"""Slots for live tail streams: each holds a server thread, so their number is capped."""
from __future__ import annotations

import threading
from collections.abc import Callable


class TailLimiter:
    """Caps concurrent streams (each holds a server thread) and tells them when to stop."""

    def __init__(self, max_streams: int, wake: Callable[[], None] = lambda: None) -> None:
        self.max_streams = max_streams
        self._active = 0
        self._lock = threading.Lock()
        self._wake = wake
        self.closed = False

    @property
    def active(self) -> int:
        """Open streams."""
        return self._active

    def acquire(self) -> Callable[[], None] | None:
        """Take a slot; return its one-shot release function, or None when all are taken."""
        with self._lock:
            if self.closed or self._active >= self.max_streams:
                return None
            self._active += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._active -= 1

        return release

    def close(self) -> None:
        """End every stream promptly (shutdown)."""
        self.closed = True
        self._wake()
