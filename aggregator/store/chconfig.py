"""AGGREGATOR_STORE for ClickHouse, and the seq clock the aggregators of one cluster share.

    clickhouse+http://HOST:PORT[,HOST:PORT...]/DATABASE?cluster=NAME[&instance=N][&settle=SECONDS]

The first node is the one this aggregator writes to and reads from (its Distributed table spreads
the rows); the schema is created on every node listed (per node: ON CLUSTER needs ZooKeeper on
18.16), so list them all. `instance` (0-31) must differ between the aggregators writing into one
cluster: it is part of every seq they hand out. `settle` (default 1 s) is how long after its seq was
taken an entry may still become visible: readers see entries once they are that old.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from podvisor.aggregator.store.chsql import identifier

SCHEME = "clickhouse+http"
INSTANCE_BITS = 5
COUNTER_BITS = 7
LOW_BITS = INSTANCE_BITS + COUNTER_BITS
EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: seqs stay below 2**53 (exact in JavaScript) until 2089


@dataclass(frozen=True)
class ClickHouseUrl:
    nodes: tuple[str, ...]
    database: str
    cluster: str
    instance: int = 0
    settle_seconds: float = 1.0


def is_clickhouse(url: str) -> bool:
    return url.lower().startswith(SCHEME + "://")


def parse_url(text: str) -> ClickHouseUrl:
    """Read the URL above; ValueError naming what is wrong."""
    parts = urlsplit(text.strip())
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"must start with {SCHEME}://")
    nodes = tuple(node.strip() for node in parts.netloc.split(",") if node.strip())
    if not nodes or parts.netloc.count("@"):
        raise ValueError("must name HOST:PORT of at least one ClickHouse node (no user@)")
    for node in nodes:
        host, sep, port = node.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"node {node!r} is not HOST:PORT (ClickHouse's HTTP port, 8123 by default)")
    database = parts.path.strip("/")
    try:
        identifier(database)
    except ValueError:
        raise ValueError(f"the path must be the database name, got {database!r}") from None
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(params) - {"cluster", "instance", "settle"}
    if unknown:
        raise ValueError(f"unknown parameter {sorted(unknown)[0]!r} (cluster, instance, settle)")
    cluster = params.get("cluster", "")
    try:
        identifier(cluster)
    except ValueError:
        raise ValueError("cluster=NAME is required: the remote_servers cluster of the shards") from None
    instance = params.get("instance", "0")
    if not instance.isdigit() or int(instance) >= 1 << INSTANCE_BITS:
        raise ValueError(f"instance must be 0-{(1 << INSTANCE_BITS) - 1}, got {instance!r}")
    try:
        settle = float(params.get("settle", "1"))
    except ValueError:
        settle = -1.0
    if not 0 <= settle <= 60:
        raise ValueError(f"settle must be seconds between 0 and 60, got {params.get('settle')!r}")
    return ClickHouseUrl(nodes, database, cluster, int(instance), settle)


def seq_of_ms(ms: int) -> int:
    """The highest seq an entry whose seq was taken at epoch ms `ms` can have."""
    return ((max(ms - EPOCH_MS, 0) + 1) << LOW_BITS) - 1


class SeqClock:
    """Hands out seqs: (ms since 2020 << 7 | counter) << 5 | instance, strictly increasing here.

    Across aggregators they follow the wall clock (to within its skew): an entry with seq s was
    taken at about s >> 12 ms, which is how readers know that anything older has settled.
    """

    def __init__(self, instance: int, wall: Callable[[], float] = time.time) -> None:
        self._instance = instance
        self._wall = wall
        self._tick = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> tuple[list[int], float]:
        """`count` consecutive seqs and the wall time they were taken at."""
        with self._lock:
            now = self._wall()
            floor = max(int(now * 1000) - EPOCH_MS, 0) << COUNTER_BITS
            first = max(self._tick + 1, floor)
            self._tick = first + count - 1
        return [((first + i) << INSTANCE_BITS) | self._instance for i in range(count)], now
