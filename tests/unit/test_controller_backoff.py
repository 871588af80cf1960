"""Crash-restart backoff: exponential, capped, jittered within bounds, reset after a stable run."""
from __future__ import annotations

import random

import pytest

from podvisor.supervisord.controller.backoff import BackoffTracker
from podvisor.supervisord.spec.model import Backoff


def tracker(rng=lambda: 0.5, **policy) -> BackoffTracker:
    values = dict(initial_seconds=1.0, max_seconds=30.0, multiplier=2.0, jitter=0.0, reset_after_seconds=60.0)
    values.update(policy)
    return BackoffTracker(Backoff(**values), rng=rng)


def test_delays_grow_exponentially_until_the_cap():
    t = tracker()
    t.started(0.0)
    assert [t.crashed(1.0) for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_multiplier_and_initial_are_honoured():
    t = tracker(initial_seconds=0.5, multiplier=3.0, max_seconds=100.0)
    assert [t.crashed(0.0) for _ in range(4)] == [0.5, 1.5, 4.5, 13.5]


@pytest.mark.parametrize("r, expected", [(0.0, 8.0), (0.5, 10.0), (0.999999, 12.0)])
def test_jitter_spreads_around_the_base_by_the_jitter_fraction(r, expected):
    t = tracker(rng=lambda: r, initial_seconds=10.0, jitter=0.2)
    assert t.crashed(0.0) == pytest.approx(expected, abs=1e-4)


def test_jittered_delays_stay_within_bounds_and_never_pass_the_cap():
    rng = random.Random(7)
    t = tracker(rng=rng.random, jitter=0.5, max_seconds=20.0)
    for n in range(40):
        base = min(20.0, 2.0**n)
        delay = t.crashed(0.0)
        assert base * 0.5 <= delay <= min(20.0, base * 1.5)


def test_a_stable_run_resets_the_series():
    t = tracker(reset_after_seconds=30.0)
    t.started(0.0)
    assert [t.crashed(1.0), t.crashed(2.0), t.crashed(3.0)] == [1.0, 2.0, 4.0]
    t.started(10.0)
    assert t.crashed(39.9) == 8.0  # 29.9 s up: not stable yet
    t.started(40.0)
    assert t.crashed(70.0) == 1.0  # 30 s up: a fresh series
    assert t.crashed(70.0) == 2.0


def test_reset_forgets_every_failure():
    t = tracker()
    for _ in range(5):
        t.crashed(0.0)
    t.reset()
    assert t.failures == 0 and t.started_at is None
    assert t.crashed(0.0) == 1.0


def test_never_negative_even_with_the_widest_jitter():
    t = tracker(rng=lambda: 0.0, jitter=0.999, initial_seconds=0.0)
    assert t.crashed(0.0) == 0.0
    t = tracker(rng=lambda: 0.0, jitter=0.999)
    assert all(t.crashed(0.0) >= 0.0 for _ in range(50))


def test_a_long_crash_loop_stays_at_the_cap():
    # A process that crashes for hours must keep its capped delay, not overflow 2.0**failures.
    t = tracker(max_seconds=30.0)
    delays = [t.crashed(0.0) for _ in range(3000)]
    assert delays[-1] == 30.0
    t = tracker(initial_seconds=0.0)
    assert [t.crashed(0.0) for _ in range(3000)][-1] == 0.0
