"""Batching: entries wait until a batch is full by count or bytes, or the oldest has waited long enough."""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Item:
    """One serialized entry on its way to the aggregator, and what its ack means for the checkpoint."""

    id: str
    key: str  # file identity whose offset advances when this entry is acknowledged
    end: int  # offset just past the line
    payload: bytes  # the entry as JSON
    read_at: float  # monotonic time it was read (lag metric)
    acked: bool = False

    @property
    def size(self) -> int:
        return len(self.payload) + 1  # its comma (or bracket) in the JSON list


def body_size(items: list[Item]) -> int:
    """Bytes of the uncompressed JSON list holding `items`."""
    return 1 + sum(item.size for item in items)


class Batcher:
    """FIFO of entries cut into batches by count, bytes and age."""

    def __init__(self, max_lines: int, max_bytes: int, max_age: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_age = max_age
        self._clock = clock
        self._items: deque[tuple[float, Item]] = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def add(self, item: Item, now: float | None = None) -> None:
        """Queue `item`; `now` (the clock, read once for a whole read) saves a clock call a line."""
        self._items.append((self._clock() if now is None else now, item))
        self._bytes += len(item.payload) + 1

    def due_in(self) -> float | None:
        """Seconds until the oldest entry has waited its max age (0 when it has); None when empty."""
        if not self._items:
            return None
        return max(0.0, self._items[0][0] + self._max_age - self._clock())

    def take(self, force: bool = False) -> list[Item] | None:
        """The next batch if one is due (full, old enough, or `force` and anything queued), else None."""
        if not self._items:
            return None
        count, size, full = 0, 1, False
        for _, item in self._items:
            if count == self._max_lines or (count and size + item.size > self._max_bytes):
                full = True
                break
            count += 1
            size += item.size
        if not full and not force and self._clock() - self._items[0][0] < self._max_age:
            return None
        batch = [self._items.popleft()[1] for _ in range(count)]
        self._bytes -= size - 1
        return batch
