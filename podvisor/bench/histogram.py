"""Time the logs page's volume histogram (GET /api/v1/histogram's query) on a store of ~1M entries.

    python -m podvisor.bench.histogram                     # 1,000,000 entries over 24 h, in a temp dir
    python -m podvisor.bench.histogram --rows 200000 --db /tmp/h.db   # keep (and reuse) the store

The store is filled through Store.insert (FTS index and time spans as the aggregator builds them)
with lines shaped like the demo stack's: three pods, 40% probe and scrape access lines. Each
query runs `--runs` times on a warm cache; the median and the slowest are printed.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from podvisor.aggregator.histogram import count
from podvisor.aggregator.query import LogQuery, parse_search
from podvisor.aggregator.search import fetch
from podvisor.aggregator.store.schema import Row
from podvisor.aggregator.store.sqlite import Store
from podvisor.aggregator.timestamps import ms_to_iso

BATCH = 5000
SPAN_MS = 24 * 3600 * 1000
PODS = ("user", "product", "order")
MESSAGES = (("GET /health 200", True), ("GET /metrics 200", True), ("GET /users 200", False),
            ("POST /orders 201", False), ("order created", False), ("stock reserved for product", False),
            ("payment declined: card expired", False), ("slow query on catalog", False))
LEVELS = ("info",) * 16 + ("warning", "warning", "error", "debug")


def rows(total: int, end_ms: int, seed: int = 7) -> list[list[Row]]:
    """`total` entries spread evenly over the 24 h before `end_ms`, arriving a little out of order."""
    rnd = random.Random(seed)
    batches, batch = [], []
    for i in range(total):
        ts = end_ms - SPAN_MS + i * SPAN_MS // total + rnd.randint(-2000, 0)
        pod = rnd.choice(PODS)
        message, probe = rnd.choice(MESSAGES[:2]) if rnd.random() < 0.4 else rnd.choice(MESSAGES[2:])
        level = rnd.choice(LEVELS)
        rid = None if probe else f"r{rnd.getrandbits(40):x}"
        body = {"id": f"{pod}:bench:{i}", "timestamp": ms_to_iso(ts), "level": level, "message": message,
                "service_name": f"{pod}-service", "pod": pod, "request_id": rid, "logger": "access",
                "environment": "bench", "host": "bench-host", "source": "app.log"}
        if probe:
            body["probe"] = True
        batch.append((body["id"], ts, body["service_name"], pod, level, rid, message,
                      json.dumps(body, separators=(",", ":"))))
        if len(batch) == BATCH:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches


def timed(label: str, runs: int, fn) -> float:
    fn()  # warm the cache
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        took.append((time.perf_counter() - started) * 1000)
    print(f"{label:<58} median {statistics.median(took):8.1f} ms  max {max(took):8.1f} ms  ({result})")
    return statistics.median(took)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podvisor.bench.histogram", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="store to fill (when empty) and query")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pv-hist-") as tmp:
        path = args.db or Path(tmp) / "logs.db"
        store = Store(str(path), query_timeout_ms=60_000)
        try:
            if store.entry_count == 0:
                end_ms = int(time.time() * 1000)
                started = time.perf_counter()
                for batch in rows(args.rows, end_ms):
                    store.insert(batch, timeout=120)
                print(f"filled {store.entry_count:,} entries in {time.perf_counter() - started:.0f} s "
                      f"({store.size_bytes() / 2**20:.0f} MiB)")
            newest = store.query("SELECT max(ts) FROM logs")[0][0]
            now = newest + 1
            print(f"{store.entry_count:,} entries; each figure: one histogram of 60 buckets")
            cases = {
                "all time, every entry": LogQuery(),
                "all time, probes left out (the UI's default)": LogQuery(probes="exclude"),
                "all time, pod=order": LogQuery(pods=("order",)),
                "all time, level=error": LogQuery(levels=("error",)),
                "all time, q=order": LogQuery(text=parse_search("order")),
                "all time, q=-health (exclusion only)": LogQuery(text=parse_search("-health")),
                "all time, q=GET -health -metrics": LogQuery(text=parse_search("GET -health -metrics")),
                "last hour, probes left out": LogQuery(since_ms=now - 3_600_000, probes="exclude"),
                "last 15 minutes, every entry": LogQuery(since_ms=now - 900_000),
            }
            for label, query in cases.items():
                timed(label, args.runs,
                      lambda q=query: count(store, q, wanted=60, now_ms=now).total)
            for q in ("-health", "-GET -order -stock -payment -slow"):
                page = LogQuery(text=parse_search(q))
                timed(f"a logs page (100, newest first), q={q}", args.runs,
                      lambda p=page: len(fetch(store, p, order="desc", after=None, limit=100).rows))
        finally:
            store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
