"""Scenario 11: the ClickHouse store beside SQLite, the same lines and queries on each.

Runs podvisor.bench.ingest_load (the in-process WSGI app, 4 clients posting batches of 1,000) once
against SQLite and once against a ClickHouse cluster of two shards of Debian's clickhouse-server
started for the run on loopback, then prints both stores' ingest rate and query p50/p99 (filtered
pages, full-text queries) over the same lines. Figures only: nothing is asserted.
"""
from __future__ import annotations

import subprocess
import sys

from podvisor.bench.aggregator import parse
from podvisor.bench.context import Bench
from podvisor.bench.report import Goal
from podvisor.testing.clickhouse import ClickHouseCluster
from podvisor.testing.harness import REPO


def _load(bench: Bench, name: str, extra: list[str]) -> dict[str, float]:
    sizes = bench.sizes
    argv = [sys.executable, "-m", "podvisor.bench.ingest_load", "--lines", str(sizes.aggregator_lines),
            "--queries", str(sizes.aggregator_queries), *extra]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600 + sizes.aggregator_lines / 500)
    if done.returncode != 0:
        raise RuntimeError(f"ingest_load on {name} exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}")
    bench.say(f"11 {name}: {done.stdout.splitlines()[0][:160]}", detail=True)
    return parse(done.stdout)


def run(bench: Bench) -> None:
    sizes, result = bench.sizes, bench.result(11)
    lines = f"{sizes.aggregator_lines:,} lines"
    cluster = ClickHouseCluster(bench.workdir / "clickhouse", shards=2).start()
    try:
        for i in range(sizes.runs):
            bench.say(f"11 stores run {i + 1}/{sizes.runs}: {lines} into SQLite, then into ClickHouse")
            runs = {"SQLite": _load(bench, "SQLite", ["--db", str(bench.workdir / f"stores{i}.db")]),
                    "ClickHouse": _load(bench, "ClickHouse", ["--store", cluster.store_url(f"bench{i}")])}
            for store, got in runs.items():
                # Goals for the fleet store only (SQLite's are scenario 7's): what a two-core store host
                # should give a fleet of a few hosts.
                fleet = store == "ClickHouse"
                result.figure(f"{store}: ingest", "lines/s", Goal(">=", 10_000) if fleet else None).add(got["rate"])
                result.figure(f"{store}: filtered page over {lines}, p99", "ms",
                              Goal("<=", 500) if fleet else None).add(got["filtered_p99"])
                result.figure(f"{store}: full-text query over {lines}, p99", "ms",
                              Goal("<=", 1000) if fleet else None).add(got["fts_p99"])
            (bench.workdir / f"stores{i}.db").unlink(missing_ok=True)
            cluster.query(f"DROP DATABASE IF EXISTS bench{i}", 0)
            cluster.query(f"DROP DATABASE IF EXISTS bench{i}", 1)
    finally:
        cluster.stop()
    result.notes.append(f"the same {lines} and queries on SQLite (FTS5) and on ClickHouse 18.16, two shards on "
                        "this machine behind one Distributed table, both stores fed by the in-process WSGI app")
