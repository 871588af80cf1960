"""The aggregator waits for a store that is still starting (a fleet's ClickHouse beside it) instead of exiting."""
from __future__ import annotations

import pytest

from podvisor.aggregator.settings import Settings
from podvisor.aggregator.store.base import StoreUnavailable
from podvisor.aggregator.store.open import open_store_waiting


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_an_unreachable_store_is_retried_until_it_answers():
    time, calls, store = FakeTime(), [], object()

    def opener(_settings: Settings):
        calls.append(time.now)
        if time.now < 3:
            raise StoreUnavailable("connection refused")
        return store

    assert open_store_waiting(Settings(store_wait=10), time.clock, time.sleep, opener) is store
    assert len(calls) == 7 and calls[-1] == 3.0


def test_the_last_refusal_is_raised_once_the_wait_is_over():
    time = FakeTime()

    def opener(_settings: Settings):
        raise StoreUnavailable(f"refused at {time.now:g}")

    with pytest.raises(StoreUnavailable, match="refused at 2"):
        open_store_waiting(Settings(store_wait=2), time.clock, time.sleep, opener)
    time.now = 100.0
    with pytest.raises(StoreUnavailable, match="refused at 100"):  # 0 waits not at all
        open_store_waiting(Settings(store_wait=0), time.clock, time.sleep, opener)
