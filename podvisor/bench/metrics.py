"""Scenario 6: scrape-and-enrich through the metrics sidecar vs scraping the app directly.

A stack of fixture pods, one per size: the app is fixture_app.py (metrics_scrape.py's series in a
real prometheus_client exposition server), beside the real logger and metrics sidecars under
supervisord, so a scrape through the sidecar does everything it does in production (the app's
series enriched, the pod's process metrics, the logger's self-metrics, the pod status). Each run
times `scrapes` scrapes per case and keeps their median; the goal is judged on OpenMetrics, which
is what Prometheus asks for.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

import requests

from podvisor.bench import metrics_scrape
from podvisor.bench.context import Bench
from podvisor.bench.report import Goal
from podvisor.sidecars.metrics.exposition import OPENMETRICS, TEXT
from podvisor.sidecars.metrics.rewrite import rewrite
from podvisor.testing.harness import REPO

GOALS_MS = {1000: 50.0, 10000: 300.0}
RATIO_GOALS = {10000: 1.15}  # scrape through the sidecar / straight from the app


def fixture_spec(series: tuple[int, ...]) -> dict:
    """One pod per series count; the harness fills in the ports and the state directory."""
    probe = {"tcp_socket": True, "period_seconds": 0.2, "failure_threshold": 300}
    return {
        "stack": {},
        "pods": {
            f"series{count}": {
                "service": f"fixture-{count}",
                "command": f"{sys.executable} -m podvisor.bench.fixture_app",
                "port": 1,
                "metrics_port": 1,
                "logger_port": 1,
                "env": {"BENCH_SERIES": str(count), "PYTHONPATH": str(REPO)},
                "socket": "app",  # prometheus_client's own server binds the port
                "probes": {"startup": probe, "readiness": {"tcp_socket": True, "period_seconds": 2}},
            }
            for count in series
        },
    }


def _median_ms(fn: Callable[[], object], scrapes: int) -> float:
    samples = []
    for _ in range(scrapes):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _scrape(http: requests.Session, url: str, accept: str) -> bytes:
    response = http.get(
        url,
        timeout=30,
        headers={
            "Accept": accept,
            "Accept-Encoding": "identity",
            "X-Prometheus-Scrape-Timeout-Seconds": "10",
        },
    )
    response.raise_for_status()
    return response.content


def run(bench: Bench) -> None:
    sizes, result = bench.sizes, bench.result(6)
    bench.say("6 metrics: starting the fixture pods")
    with bench.stacks.running(data=fixture_spec(sizes.series)) as h, requests.Session() as http:
        for count in sizes.series:
            pod, label = f"series{count}", f"{count:,} series"
            app_url, sidecar_url = h.apps[pod] + "/metrics", h.metrics[pod] + "/metrics"
            goal = Goal("<=", GOALS_MS[count]) if count in GOALS_MS else None
            body = _scrape(http, app_url, TEXT.accept).decode()
            via_om = f"via sidecar, {label} (OpenMetrics)"
            direct_om = f"app directly, {label} (OpenMetrics)"
            cases = {
                via_om: (partial(_scrape, http, sidecar_url, OPENMETRICS.accept), goal),
                f"via sidecar, {label} (text)": (partial(_scrape, http, sidecar_url, TEXT.accept), None),
                direct_om: (partial(_scrape, http, app_url, OPENMETRICS.accept), None),
                f"enrichment alone, {label}": (
                    partial(rewrite, body, metrics_scrape.LABELS, openmetrics=False),
                    None,
                ),
            }
            for fn, _goal in cases.values():
                fn()  # warm-up: connections, first-call paths
            for i in range(sizes.runs):
                bench.say(f"6 metrics: {label}, run {i + 1}/{sizes.runs}")
                sidecar = {f"{pod}-metrics": h.pid(f"{pod}-metrics")}
                with bench.profiled(6, sidecar, when=i == sizes.runs - 1 and count == max(sizes.series)):
                    got = {name: _median_ms(fn, sizes.scrapes) for name, (fn, _g) in cases.items()}
                for name, value in got.items():
                    result.figure(name, "ms", cases[name][1]).add(value)
                ratio_goal = Goal("<=", RATIO_GOALS[count]) if count in RATIO_GOALS else None
                result.figure(f"sidecar / direct, {label} (OpenMetrics)", "x", ratio_goal).add(
                    got[via_om] / got[direct_om]
                )
            result.notes.append(
                f"{label}: the fixture app exposes {metrics_scrape.count_series(body):,} sample lines"
            )
    result.notes.append(
        f"median of {sizes.scrapes} scrapes a run, keep-alive, no compression; fixture pods under "
        "supervisord (supervisord/bench/fixture_app.py); 'enrichment alone' is the sidecar's line "
        "rewriter on the app's text body, in the benchmark's process"
    )
