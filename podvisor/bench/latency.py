"""Scenarios 3, 4 and 5 on one stack of the three default pods.

3. Delivery latency: a steady rate of lines into the user pod's log folder; each line's latency is
   from its write (flushed to the file) until the aggregator's live tail (SSE, filtered on the run's
   request id) delivers it, i.e. it is committed and queryable.
4. Sidecar footprint: RSS (largest sample) and CPU of every logger and metrics sidecar over an idle
   window (no log traffic; every metrics sidecar scraped every 15 s as the rendered Prometheus
   config does), split into one slice per run, then of the user pod's sidecars during scenario 3.
5. App overhead: see overhead.py (same stack).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
import uuid

import requests

from podvisor.bench import overhead
from podvisor.bench.context import Bench
from podvisor.bench.loglines import TailClock, steady
from podvisor.bench.report import Goal, ScenarioResult
from podvisor.bench.stacks import DEMO_PODS, Meter, Usage, process_pid
from podvisor.testing.harness import StackHandle

POD = "user"
SCRAPE_INTERVAL = 15.0
IDLE_CPU_GOALS = {"logger": 0.3, "metrics": 0.5}  # % of a core
SETTLE_SECONDS = 2.0  # after Ready: start-up work (first scrapes, the start lines shipped) is not idle


class Scraper:
    """Scrapes every metrics sidecar every `interval` seconds, like the stack's Prometheus would."""

    def __init__(self, urls: list[str], interval: float) -> None:
        self.urls = urls
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-scraper", daemon=True)

    def _loop(self) -> None:
        with requests.Session() as http:
            while True:
                for url in self.urls:
                    try:
                        http.get(
                            url + "/metrics",
                            timeout=10,
                            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                        )
                    except requests.RequestException:
                        pass
                if self._stop.wait(self.interval):
                    return

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `pct`% of the values at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(pct / 100 * len(ordered)))) - 1]


def _sidecar_pids(h: StackHandle, pods: list[str]) -> dict[str, int]:
    return {
        f"{pod}-{kind}": process_pid(h, f"{pod}-{kind}") for pod in pods for kind in ("logger", "metrics")
    }


def _worst(result: ScenarioResult, usage: dict[str, Usage], kind: str, when: str, goals: bool) -> None:
    mine = {name: u for name, u in usage.items() if name.endswith("-" + kind)}
    rss_name, rss = max(mine.items(), key=lambda kv: kv[1].rss_max_bytes)
    cpu_name, cpu = max(mine.items(), key=lambda kv: kv[1].cpu_percent)
    scope = "largest of all pods" if len(mine) > 1 else f"{POD} pod"
    cpu_goal = IDLE_CPU_GOALS[kind] if goals else None
    result.figure(f"{kind} sidecar RSS, {when} ({scope})", "MiB", Goal("<=", 30) if goals else None).add(
        rss.rss_mib
    )
    result.figure(f"{kind} sidecar CPU, {when} ({scope})", "% core", Goal("<=", cpu_goal) if cpu_goal else None).add(
        cpu.cpu_percent
    )


def idle(bench: Bench, h: StackHandle) -> None:
    result, sizes = bench.result(4), bench.sizes
    pids = _sidecar_pids(h, [p.name for p in h.spec.pods])
    time.sleep(SETTLE_SECONDS)
    slice_seconds = sizes.idle_seconds / sizes.runs
    profiled = {f"{POD}-logger": pids[f"{POD}-logger"], f"{POD}-metrics": pids[f"{POD}-metrics"]}
    for i in range(sizes.runs):
        bench.say(f"4 footprint: idle slice {i + 1}/{sizes.runs} ({slice_seconds:.0f} s)")
        with bench.profiled(4, profiled, when=i == sizes.runs - 1):
            meter = Meter(pids).start()
            time.sleep(slice_seconds)  # the measurement window itself
            usage = meter.stop()
        _worst(result, usage, "logger", "idle", goals=True)
        _worst(result, usage, "metrics", "idle", goals=True)
    result.notes.append(
        f"idle: {sizes.idle_seconds:.0f} s in {sizes.runs} slices; no log traffic; every metrics "
        f"sidecar scraped every {SCRAPE_INTERVAL:.0f} s; RSS is the largest sample (every 0.25 s)"
    )


def delivery(bench: Bench, h: StackHandle, index: int) -> None:
    sizes = bench.sizes
    run = f"latency-{uuid.uuid4().hex[:10]}"
    path = h.pod_dir(POD) / "logs" / f"latency{index}.log"
    written_at: dict[int, float] = {}

    def note(first: int, count: int, at: float) -> None:
        for seq in range(first, first + count):
            written_at[seq] = at

    clock = TailClock(h.aggregator_url, run, h.auth()).start()
    logger = process_pid(h, f"{POD}-logger")
    meter = Meter({"logger": logger, "metrics": process_pid(h, f"{POD}-metrics")})
    try:
        with bench.profiled(3, {"logger": logger, "aggregator": process_pid(h, "aggregator")},
                            when=index == sizes.runs - 1):
            meter.start()
            written = steady(path, run, sizes.latency_rate, sizes.latency_seconds, note)
            usage = meter.stop()
        deadline = time.monotonic() + 30
        while len(clock.arrived) < written and time.monotonic() < deadline and not clock.error:
            time.sleep(0.05)
    finally:
        clock.close()
    if len(clock.arrived) < written:
        raise RuntimeError(
            f"only {len(clock.arrived)} of {written} lines came through the live tail within 30 s"
            f" (tail error: {clock.error})"
        )
    latencies = [(clock.arrived[seq] - written_at[seq]) * 1000 for seq in written_at]
    r3 = bench.result(3)
    r3.figure("write to queryable, p50", "ms").add(percentile(latencies, 50))
    r3.figure("write to queryable, p95", "ms", Goal("<=", 150)).add(percentile(latencies, 95))
    r3.figure("write to queryable, p99", "ms").add(percentile(latencies, 99))
    r3.figure("write to queryable, mean", "ms").add(statistics.fmean(latencies))
    r4 = bench.result(4)
    load = f"{sizes.latency_rate:,} lines/s"
    r4.figure(f"logger sidecar RSS, {load} ({POD} pod)", "MiB").add(usage["logger"].rss_mib)
    r4.figure(f"logger sidecar CPU, {load} ({POD} pod)", "% core").add(usage["logger"].cpu_percent)
    r4.figure(f"metrics sidecar RSS, {load} ({POD} pod)", "MiB").add(usage["metrics"].rss_mib)
    r4.figure(f"metrics sidecar CPU, {load} ({POD} pod)", "% core").add(usage["metrics"].cpu_percent)


def latency_runs(bench: Bench, h: StackHandle) -> None:
    sizes = bench.sizes
    for i in range(sizes.runs):
        rate = f"{sizes.latency_rate:,} lines/s for {sizes.latency_seconds:g} s"
        bench.say(f"3 latency run {i + 1}/{sizes.runs}: {rate}")
        delivery(bench, h, i)
    bench.result(3).notes.append(
        f"{sizes.latency_rate:,} lines/s for {sizes.latency_seconds:g} s a run, written in 10 ms ticks; "
        "latency = write (flushed) to arrival on the aggregator's live tail (SSE)"
    )


def run(bench: Bench) -> None:
    bench.say("3-5: starting the three-pod stack")
    with bench.stacks.running(DEMO_PODS) as h:
        scraper = Scraper(list(h.metrics.values()), SCRAPE_INTERVAL).start()
        try:
            if bench.wants(4):
                bench.attempt([4], lambda: idle(bench, h))
            if bench.wants(3) or bench.wants(4):
                bench.attempt([3, 4], lambda: latency_runs(bench, h))
            if bench.wants(5):
                bench.attempt([5], lambda: overhead.run(bench, h))
        finally:
            scraper.stop()
