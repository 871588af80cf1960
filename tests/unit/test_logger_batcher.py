"""Batching: cut by count, bytes and age of the oldest entry; order kept; byte accounting exact."""
import json

import pytest

from podvisor.sidecars.logger.batcher import Batcher, Item, body_size
from tests.fakes.logger import FakeClock


def _item(n, size=10):
    payload = json.dumps({"id": f"p:k:{n}", "message": "x" * size}).encode()
    return Item(f"p:k:{n}", "k", n + 1, payload, 0.0)


def _batcher(clock=None, lines=1000, size=1 << 20, age=60.0):
    return Batcher(max_lines=lines, max_bytes=size, max_age=age, clock=clock or FakeClock())


def _ids(batch):
    return [item.id for item in batch]


def test_body_size_is_the_exact_length_of_the_json_list():
    items = [_item(n, size=n * 7) for n in range(5)]
    body = b"[" + b",".join(item.payload for item in items) + b"]"
    assert body_size(items) == len(body)
    assert json.loads(body)[4]["id"] == "p:k:4"


def test_empty_batcher_has_nothing_even_when_forced():
    batcher = _batcher()
    assert batcher.take() is None and batcher.take(force=True) is None
    assert len(batcher) == 0 and batcher.bytes == 0


def test_batch_cut_by_count():
    batcher = _batcher(lines=3)
    for n in range(7):
        batcher.add(_item(n))
    assert _ids(batcher.take()) == ["p:k:0", "p:k:1", "p:k:2"]
    assert _ids(batcher.take()) == ["p:k:3", "p:k:4", "p:k:5"]
    assert batcher.take() is None  # one left, not full, not old
    assert _ids(batcher.take(force=True)) == ["p:k:6"]
    assert len(batcher) == 0 and batcher.bytes == 0


def test_batch_cut_by_bytes_never_exceeds_the_limit():
    items = [_item(n, size=100) for n in range(9)]
    limit = body_size(items[:2]) + 5
    batcher = _batcher(size=limit)
    for item in items:
        batcher.add(item)
    batches = []
    while (batch := batcher.take(force=True)) is not None:
        batches.append(batch)
    assert [len(b) for b in batches] == [2, 2, 2, 2, 1]
    assert all(body_size(b) <= limit for b in batches)
    assert [i.id for b in batches for i in b] == [i.id for i in items]  # order kept across cuts


def test_a_batch_exactly_at_the_byte_limit_is_full():
    items = [_item(n) for n in range(3)]
    batcher = _batcher(size=body_size(items[:2]))
    for item in items:
        batcher.add(item)
    assert _ids(batcher.take()) == ["p:k:0", "p:k:1"]  # full now, no waiting for the age


def test_an_entry_bigger_than_the_byte_limit_goes_alone():
    batcher = _batcher(size=50)
    batcher.add(_item(0, size=500))
    batcher.add(_item(1))
    assert _ids(batcher.take()) == ["p:k:0"]
    assert batcher.take() is None
    assert _ids(batcher.take(force=True)) == ["p:k:1"]


def test_batch_cut_by_age_of_the_oldest_entry():
    clock = FakeClock(start=0.0)  # exact sums: 0.1 + 0.1 == 0.2
    batcher = _batcher(clock, age=0.2)
    batcher.add(_item(0))
    clock.advance(0.1)
    batcher.add(_item(1))
    assert batcher.take() is None
    clock.advance(0.1)  # the oldest has waited exactly max_age
    assert _ids(batcher.take()) == ["p:k:0", "p:k:1"]


def test_age_zero_ships_at_once():
    batcher = _batcher(age=0.0)
    batcher.add(_item(0))
    assert _ids(batcher.take()) == ["p:k:0"]


@pytest.mark.parametrize("taken", [0, 1, 2, 3])
def test_bytes_track_what_is_queued(taken):
    items = [_item(n, size=n) for n in range(4)]
    batcher = _batcher(lines=max(taken, 1))
    for item in items:
        batcher.add(item)
    assert batcher.bytes == sum(item.size for item in items)
    if taken:
        assert len(batcher.take()) == taken
    assert batcher.bytes == sum(item.size for item in items[taken:])
    assert len(batcher) == 4 - taken
