"""Ingest and query benchmark: `python -m podvisor.bench.ingest_load --lines 1000000`.

Drives the real WSGI app in-process (Flask test client, no sockets: the figures are the store's
and the API's, not the loopback TCP stack's) with concurrent clients posting batches like the
logging sidecars do, then times filtered pages and full-text queries over the stored lines.
The machine's load average is printed beside the ingest rate: on a shared machine the rate is
what this process got, and the lines per CPU-second show what it costs.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

from podvisor.aggregator.app import create_app
from podvisor.aggregator.settings import Settings
from podvisor.aggregator.state import EXTENSION_KEY
from podvisor.aggregator.timestamps import ms_to_iso

SERVICES = ("user", "product", "order")
LEVELS = ("info",) * 16 + ("warning",) * 3 + ("error",)
WORDS = ("cache", "database", "timeout", "retry", "payment", "inventory", "session", "token",
         "checkout", "shipment", "invoice", "refund", "customer", "catalog", "discount", "search")
MESSAGES = (
    "{method} {path} {status} {ms}ms",
    "order {n} created for user {m}",
    "payment {word} declined: card expired",
    "{word} lookup took {ms}ms ({word2} miss)",
    "connection to {word} pool exhausted, retrying in {ms}ms",
    "user {m} logged in from 10.0.{n}.{ms}",
)


def make_batches(lines: int, batch: int, seed: int = 7) -> list[bytes]:
    """Pre-serialised JSON batches shaped like the logging sidecar's entries."""
    rnd = random.Random(seed)
    start_ms = int(time.time() * 1000) - lines  # one entry per millisecond, ending now
    batches, entries = [], []
    for i in range(lines):
        service = SERVICES[i % 3]
        template = rnd.choice(MESSAGES)
        message = template.format(
            method=rnd.choice(("GET", "POST", "PUT")), path=f"/api/{service}s/{rnd.randint(1, 999)}",
            status=rnd.choice((200, 200, 200, 201, 404, 500)), ms=rnd.randint(1, 900),
            n=rnd.randint(1, 99999), m=rnd.randint(1, 5000), word=rnd.choice(WORDS),
            word2=rnd.choice(WORDS))
        entries.append({
            "id": f"{service}:f{i // 100000:04x}:{i * 160}",
            "timestamp": ms_to_iso(start_ms + i),
            "level": rnd.choice(LEVELS),
            "message": message,
            "logger": f"{service}.app",
            "service_name": f"{service}-service",
            "environment": "production",
            "pod": service,
            "host": "bench-host",
            "source": "app.log",
            "request_id": f"req-{rnd.getrandbits(48):012x}",
        })
        if len(entries) == batch:
            batches.append(json.dumps(entries).encode())
            entries = []
    if entries:
        batches.append(json.dumps(entries).encode())
    return batches


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m podvisor.bench.ingest_load", description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="entries per ingest request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingest clients")
    parser.add_argument("--queries", type=int, default=200, help="runs per query kind")
    parser.add_argument("--db", help="database path (default: a temporary directory, removed)")
    parser.add_argument("--store", help="AGGREGATOR_STORE: a ClickHouse store (clickhouse+http://...) instead "
                                        "of SQLite")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="aggregator-bench-")
    db = args.db or f"{workdir}/logs.db"
    settings = Settings(db_path=db, token_file=f"{workdir}/token", read_auth="never",
                        retention_days=0, retention_bytes=0, query_timeout_ms=10_000, store_url=args.store)
    app = create_app(settings, start_background=False)
    state = app.extensions[EXTENSION_KEY]
    token = open(settings.token_file, encoding="utf-8").read().strip()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    try:
        print(f"generating {args.lines} lines ...", file=sys.stderr)
        generated_at = time.time()  # the lines are stamped one per millisecond up to about now
        batches = make_batches(args.lines, args.batch)
        print("ingesting ...", file=sys.stderr, flush=True)  # podvisor-bench profiles from here on
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()

        def client(mine: list[bytes]) -> None:
            http = app.test_client()
            local = []
            for body in mine:
                started = time.perf_counter()
                reply = http.post("/api/v1/ingest", data=body, headers=headers)
                local.append((time.perf_counter() - started) * 1000)
                if reply.status_code != 202 or reply.json["rejected"]:
                    failures.append(reply.get_data(as_text=True)[:200])
            with lock:
                latencies.extend(local)

        threads = [threading.Thread(target=client, args=(batches[i::args.clients],))
                   for i in range(args.clients)]
        load_before = os.getloadavg()[0]
        started, cpu_started = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        if failures:
            print(f"{len(failures)} ingest failures, first: {failures[0]}", file=sys.stderr)
            return 1
        ingest_seconds = elapsed
        wait_visible = getattr(state.store, "wait_visible", None)
        if wait_visible is not None:  # the ClickHouse store shows entries once settled
            wait_visible(60)
        stored = state.store.entry_count
        elapsed = ingest_seconds
        print(f"ingest: {args.lines} lines in {elapsed:.1f}s = {args.lines / elapsed:,.0f} lines/s "
              f"(batch {args.batch}, {args.clients} clients, {'ClickHouse' if args.store else 'SQLite, FTS on'}); "
              f"batch latency "
              f"p50 {percentile(latencies, 50):.0f} ms p99 {percentile(latencies, 99):.0f} ms; "
              f"{stored} stored, db {state.store.size_bytes() / 1e6:.0f} MB; "
              f"{args.lines / cpu:,.0f} lines per CPU-second of this process "
              f"({os.cpu_count()} CPUs, load average {load_before:.1f} -> {os.getloadavg()[0]:.1f})")

        http = app.test_client()
        rnd = random.Random(11)
        now = generated_at
        covered = args.lines / 1000  # seconds the lines cover (one per millisecond, ending now)

        def get(params: dict[str, str]) -> None:
            reply = http.get("/api/v1/logs?" + urlencode(params))
            if reply.status_code != 200:
                raise RuntimeError(reply.get_data(as_text=True))

        def filtered() -> None:
            params = {"limit": "100"}
            choice = rnd.random()
            if choice < 0.3:
                params["service"] = rnd.choice(SERVICES)
            elif choice < 0.5:
                params["pod"] = rnd.choice(SERVICES)
                params["level"] = "error"
            elif choice < 0.7:
                params["level"] = rnd.choice(("warning", "error"))
                params["since"] = str(now - rnd.uniform(0, covered))
            elif choice < 0.85:
                params["service"] = rnd.choice(SERVICES)
                params["until"] = str(now - rnd.uniform(0, covered))
            else:
                params["field.logger"] = f"{rnd.choice(SERVICES)}.app"
            get(params)

        def fulltext() -> None:
            choice = rnd.random()
            if choice < 0.4:
                q = rnd.choice(WORDS)
            elif choice < 0.6:
                q = f"{rnd.choice(WORDS)} {rnd.choice(('declined', 'miss', 'exhausted'))}"
            elif choice < 0.8:
                q = f'"card expired" {rnd.choice(WORDS)}'
            else:
                q = rnd.choice(("retry*", "GET", "order created", "timeout*"))
            params = {"q": q, "limit": "100"}
            if rnd.random() < 0.3:
                params["service"] = rnd.choice(SERVICES)
            get(params)

        for name, fn in (("filtered page", filtered), ("full-text query", fulltext)):
            runs = timed(fn, args.queries)
            print(f"{name}: p50 {percentile(runs, 50):.1f} ms, p99 {percentile(runs, 99):.1f} ms, "
                  f"mean {statistics.fmean(runs):.1f} ms over {args.queries} queries "
                  f"of {stored} lines")
    finally:
        state.close()
        shutil.rmtree(workdir, ignore_errors=True)  # the token (and the database unless --db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
