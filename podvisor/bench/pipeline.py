"""Scenarios 1 and 2: log pipeline throughput, podvisor's logger vs the seed's one-POST-per-line.

One pod (user) and the aggregator. Each run appends N lines of about 200 bytes to a file in the
pod's log folder as fast as possible and times from the first write until the store holds all of
them; the naive shipper (bench-only, `naive.py`) does the same with fewer lines from a file outside
the pod's folder, against the same aggregator, in the same run; the ratio compares the two rates.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil

from podvisor.bench.context import Bench, child
from podvisor.bench.loglines import burst
from podvisor.bench.report import Goal
from podvisor.bench.stacks import cpu_seconds, entries, process_pid, stored_bytes, wait_stored
from podvisor.testing.harness import REPO, StackHandle

POD = "user"
# The default size retention (1 GiB) holds fewer lines than a full run appends: it would delete
# lines of the run being timed. Retention is not what this scenario measures.
NO_RETENTION = {"AGGREGATOR_RETENTION_BYTES": "0"}


def pipe(
    h: StackHandle, path: Path, lines: int, cpu_pids: dict[str, int], bench: Bench, label: str
) -> tuple[float, dict[str, float]]:
    """Write `lines` to `path`, wait until all are stored: (lines/s, CPU seconds per process)."""
    run = f"{label}-{uuid.uuid4().hex[:10]}"
    procs = {name: psutil.Process(pid) for name, pid in cpu_pids.items()}
    base = entries(h)
    cpu0 = {name: cpu_seconds(p) for name, p in procs.items()}
    started = time.monotonic()
    writer = threading.Thread(target=burst, args=(path, run, lines), name="bench-writer")
    writer.start()
    try:
        timeout = 120 + lines / (20 if label == "naive" else 500)
        done = wait_stored(h, run, lines, base, timeout,
                           lambda n: bench.say(f"{label}: {n:,}/{lines:,} lines stored", detail=True))
    finally:
        writer.join()
    cpu = {name: cpu_seconds(p) - cpu0[name] for name, p in procs.items()}
    return lines / (done - started), cpu


def run(bench: Bench) -> None:
    sizes = bench.sizes
    r1, r2 = bench.result(1), bench.result(2)
    bench.say("1/2: starting a one-pod stack")
    with bench.stacks.running([POD], extra_env=NO_RETENTION) as h:
        logger, aggregator = process_pid(h, f"{POD}-logger"), process_pid(h, "aggregator")
        token = h.state_dir / "aggregator" / "token"
        for i in range(sizes.runs):
            naive_rate = None
            if bench.wants(2):
                bench.say(f"2 baseline run {i + 1}/{sizes.runs}: {sizes.naive_lines:,} lines, one POST each")
                folder = bench.workdir / f"naive{i}"
                folder.mkdir()
                path = folder / "naive.log"
                argv = [sys.executable, "-m", "podvisor.bench.naive", "--file", str(path),
                        "--url", h.aggregator_url, "--token-file", str(token), "--pod", "naive"]
                with child(argv, folder / "naive.out", stdout=subprocess.PIPE, cwd=REPO) as proc:
                    if proc.stdout is None or proc.stdout.readline().strip() != b"ready":
                        raise RuntimeError(
                            f"naive shipper did not start: {(folder / 'naive.out').read_text()}"
                        )
                    pids = {"naive": proc.pid, "aggregator": aggregator}
                    naive_rate, cpu = pipe(h, path, sizes.naive_lines, pids, bench, "naive")
                per_m = 1e6 / sizes.naive_lines
                r2.figure("naive shipper: end to end", "lines/s").add(naive_rate)
                r2.figure("naive shipper: CPU per million lines", "s").add(cpu["naive"] * per_m)
                r2.figure("naive: aggregator CPU per million lines", "s").add(cpu["aggregator"] * per_m)
            bench.say(f"1 throughput run {i + 1}/{sizes.runs}: {sizes.pipeline_lines:,} lines")
            path = h.pod_dir(POD) / "logs" / f"bench{i}.log"
            size0 = stored_bytes(h)
            pids = {"logger": logger, "aggregator": aggregator}
            with bench.profiled(1, pids, when=i == sizes.runs - 1):
                rate, cpu = pipe(h, path, sizes.pipeline_lines, pids, bench, "podvisor")
            per_m = 1e6 / sizes.pipeline_lines
            r1.figure("end to end, write to queryable", "lines/s", Goal(">=", 50_000)).add(rate)
            r1.figure("logger CPU per million lines", "s", Goal("<=", 6)).add(cpu["logger"] * per_m)
            r1.figure("aggregator CPU per million lines", "s", Goal("<=", 13)).add(cpu["aggregator"] * per_m)
            growth = stored_bytes(h) - size0
            r1.figure("store growth per line (after checkpoint)", "bytes").add(growth / sizes.pipeline_lines)
            if naive_rate is not None:
                r2.figure("podvisor: end to end (same run)", "lines/s").add(rate)
                r2.figure("podvisor / naive throughput", "x").add(rate / naive_rate)
    r1.notes.append(
        f"{sizes.pipeline_lines:,} lines of ~200 bytes appended to {POD}'s log folder as fast as "
        "possible; timed from the first write until all are in the store (SQLite, read-only count); "
        "the aggregator's size retention is off in this stack (AGGREGATOR_RETENTION_BYTES=0); store growth "
        "is the database's pages in use (as after a checkpoint: WAL content counted once, free pages not)"
    )
    r2.notes.append(
        f"naive = bench-only shipper (supervisord/bench/naive.py): one POST per line, no batching, "
        f"no gzip, keep-alive; {sizes.naive_lines:,} lines a run against the same aggregator"
    )
