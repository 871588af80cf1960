"""Every store implements base.LogStore: the same methods, with the same parameters."""
from __future__ import annotations

import inspect

import pytest

from podvisor.aggregator.store.base import LogStore
from podvisor.aggregator.store.clickhouse import ClickHouseStore
from podvisor.aggregator.store.sqlite import Store

STORES = [Store, ClickHouseStore]
MEMBERS = sorted(name for name in vars(LogStore) if not name.startswith("_"))


def test_the_protocol_names_what_the_aggregator_uses() -> None:
    assert {"insert", "page", "last_seq", "wait_for_seq", "retention", "health", "close"} <= set(MEMBERS)


@pytest.mark.parametrize("store", STORES, ids=lambda s: s.__module__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("name", MEMBERS)
def test_the_store_implements_the_member_with_its_parameters(store: type, name: str) -> None:
    wanted, got = getattr(LogStore, name), getattr(store, name, None)
    assert got is not None, f"{store.__name__} lacks {name}"
    if isinstance(wanted, property):
        assert isinstance(got, property), f"{store.__name__}.{name} must be a property"
        return
    want = [(p.name, p.kind) for p in inspect.signature(wanted).parameters.values()]
    have = [(p.name, p.kind) for p in inspect.signature(got).parameters.values()]
    assert have[:len(want)] == want, f"{store.__name__}.{name}{inspect.signature(got)} != {inspect.signature(wanted)}"
    extra = inspect.signature(got).parameters.values()
    assert all(p.default is not inspect.Parameter.empty for p in list(extra)[len(want):]), "extra params need defaults"
