"""Browser sessions: the cookie holds a random id known only to this process, never the token.

A session is created by POST /api/v1/session with the token, lives SESSION_SECONDS at most, and
is revoked by DELETE /api/v1/session (logout) or by a restart of the aggregator (sessions are kept in
memory only: signing in again is the price of never writing them to disk). Its CSRF value is an
HMAC of the id, so it is worthless without the cookie and dies with the session.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000  # past it the oldest go first: signing in is bounded even by a token holder


class Sessions:
    """Live session ids and their expiry; thread-safe."""

    def __init__(self, key: bytes, lifetime: float = SESSION_SECONDS,
                 clock: Callable[[], float] = time.monotonic, max_sessions: int = MAX_SESSIONS) -> None:
        self._key = key
        self._lifetime = lifetime
        self._clock = clock
        self._max = max_sessions
        self._expiry: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def create(self) -> str:
        """A new session id (256 random bits)."""
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._expiry[sid] = self._clock() + self._lifetime
            while len(self._expiry) > self._max:
                self._expiry.popitem(last=False)
        return sid

    def valid(self, sid: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(sid)
            if expiry is None:
                return False
            if expiry <= self._clock():
                del self._expiry[sid]
                return False
            return True

    def revoke(self, sid: str) -> None:
        with self._lock:
            self._expiry.pop(sid, None)

    def csrf(self, sid: str) -> str:
        """The X-CSRF-Token value that goes with session `sid`."""
        digest = hmac.new(self._key, f"csrf:{sid}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")
