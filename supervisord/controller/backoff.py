"""Crash-restart backoff: exponential with jitter, capped, reset after a stable run (CrashLoopBackOff)."""
from __future__ import annotations

import random
from collections.abc import Callable

from podvisor.supervisord.spec.model import Backoff


class BackoffTracker:
    """Counts consecutive crashes of one process and says how long to wait before the next start."""

    def __init__(self, policy: Backoff, rng: Callable[[], float] = random.random):
        self.policy = policy
        self.rng = rng
        self.failures = 0
        self.started_at: float | None = None

    def started(self, now: float) -> None:
        self.started_at = now

    def reset(self) -> None:
        self.failures = 0
        self.started_at = None

    def crashed(self, now: float) -> float:
        """Record a crash at `now`; return the delay in seconds before the next start."""
        p = self.policy
        if self.started_at is not None and now - self.started_at >= p.reset_after_seconds:
            # A run that lasted reset_after_seconds was stable: the next crash starts a fresh series.
            self.failures = 0
        self.started_at = None  # that run is accounted for; a refused spawn that follows is no run
        try:
            base = min(p.max_seconds, p.initial_seconds * p.multiplier**self.failures)
        except OverflowError:  # ~1000 crashes in a row: long since at the cap
            base = p.max_seconds if p.initial_seconds else 0.0
        self.failures += 1
        jittered = base * (1 + p.jitter * (2 * self.rng() - 1))
        return max(0.0, min(p.max_seconds, jittered))
