"""Scenario 7: the aggregator's ingest rate with full-text indexing on, and query latency.

Runs the aggregator's own benchmark (podvisor/bench/ingest_load.py) once per run in its own process:
it drives the real WSGI app in-process (no sockets) with 4 clients posting batches of 1,000
entries shaped like the logger's, then times filtered pages and full-text queries over the stored
lines. This scenario only reads its figures from what it prints.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from podvisor.bench.context import Bench
from podvisor.bench.report import Goal
from podvisor.testing.harness import REPO

_INGEST = re.compile(r"^ingest: (\d+) lines in [\d.]+s = ([\d,.]+) lines/s", re.MULTILINE)
_QUERY = re.compile(r"^(filtered page|full-text query): p50 ([\d.]+) ms, p99 ([\d.]+) ms", re.MULTILINE)


def parse(text: str) -> dict[str, float]:
    """The figures in aggregator.benchmark's output; ValueError naming what is missing."""
    ingest = _INGEST.search(text)
    queries = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in _QUERY.finditer(text)}
    if not ingest or set(queries) != {"filtered page", "full-text query"}:
        raise ValueError(
            f"aggregator.benchmark printed no ingest/query figures (format changed?):\n{text[-1500:]}"
        )
    return {
        "lines": float(ingest.group(1)),
        "rate": float(ingest.group(2).replace(",", "")),
        "filtered_p50": queries["filtered page"][0],
        "filtered_p99": queries["filtered page"][1],
        "fts_p50": queries["full-text query"][0],
        "fts_p99": queries["full-text query"][1],
    }


def run(bench: Bench) -> None:
    sizes, result = bench.sizes, bench.result(7)
    lines = f"{sizes.aggregator_lines:,} lines"
    for i in range(sizes.runs):
        bench.say(
            f"7 aggregator run {i + 1}/{sizes.runs}: ingest {lines}, {sizes.aggregator_queries} queries each"
        )
        db_dir = bench.workdir / f"aggregator{i}"
        db_dir.mkdir()
        argv = [sys.executable, "-m", "podvisor.bench.ingest_load", "--lines", str(sizes.aggregator_lines),
                "--queries", str(sizes.aggregator_queries), "--db", str(db_dir / "logs.db")]  # fmt: skip
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
            assert proc.stderr is not None
            before = []  # its own lines up to the start of ingest: generating the lines is not profiled
            for line in proc.stderr:
                before.append(line)
                if line.startswith("ingesting"):
                    break
            with bench.profiled(7, {"ingest_load": proc.pid}, when=i == sizes.runs - 1):
                try:
                    stdout, stderr = proc.communicate(timeout=300 + sizes.aggregator_lines / 1000)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    stdout, stderr = proc.communicate()
            stderr = "".join(before) + stderr
        done = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        if done.returncode != 0:
            raise RuntimeError(
                f"aggregator.benchmark exited {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"
            )
        shutil.rmtree(db_dir, ignore_errors=True)  # ~2 GB a million lines: not kept across runs
        got = parse(done.stdout)
        result.figure("ingest, FTS on", "lines/s", Goal(">=", 75_000)).add(got["rate"])
        result.figure(f"filtered page over {lines}, p50", "ms").add(got["filtered_p50"])
        result.figure(f"filtered page over {lines}, p99", "ms", Goal("<=", 50)).add(got["filtered_p99"])
        result.figure(f"full-text query over {lines}, p50", "ms").add(got["fts_p50"])
        result.figure(f"full-text query over {lines}, p99", "ms", Goal("<=", 150)).add(got["fts_p99"])
    result.notes.append(
        f"podvisor/bench/ingest_load.py: in-process WSGI app, 4 clients, batches of 1,000, {lines} a run; "
        f"{sizes.aggregator_queries} queries of each kind; a fresh database each run"
    )
