"""Benchmark: scraping an app directly vs through the metrics sidecar, and the two enrichers.

Starts a real prometheus_client exposition server on 127.0.0.1:0 exposing about N series (counters
with four labels, histograms with the default 15 buckets, the `_created` series prometheus_client
adds) in its own process, as an app runs beside its sidecar in a pod; starts the metrics sidecar
in-process on port 0 in front of it, and times:

- direct / via sidecar, in both exposition formats (Prometheus asks for OpenMetrics), both without
  compression (loopback; the sidecar asks its upstreams for identity encoding too);
- the enrichment alone on the app's text body: the line rewriter the sidecar uses, and
  prometheus_client's `text_string_to_metric_families` parse + `generate_latest` re-encode.

    python -m podvisor.bench.metrics_scrape [--series 1000 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import requests
import waitress
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from waitress import wasyncore

from podvisor.sidecars.metrics.exposition import OPENMETRICS, TEXT, FamilyList, encode
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.main import build_app
from podvisor.sidecars.metrics.rewrite import rewrite
from podvisor.sidecars.metrics.settings import Settings

LABELS = PodLabels(service_name="bench-service", environment="production", pod="bench")
METHODS = ("GET", "POST", "PUT", "DELETE")
STATUSES = ("200", "201", "404", "500", "503")
HISTOGRAM_LINES = 18  # 15 buckets + _count + _sum + _created


def build_registry(series: int) -> CollectorRegistry:
    """A registry with about `series` sample lines: half counters, half histograms."""
    registry = CollectorRegistry()
    requests_total = Counter(
        "bench_http_requests",
        "HTTP requests by method, route, status and handler.",
        ["method", "route", "status", "handler"],
        registry=registry,
    )
    latency = Histogram(
        "bench_http_request_duration_seconds", "HTTP request latency.", ["method", "route"], registry=registry
    )
    for i in range(series // 4):  # two lines each: _total and _created
        route = f"/api/v1/items/{i}" if i % 50 else f'/api/v1/search?q="{i}"\\x'  # some need escaping
        requests_total.labels(METHODS[i % 4], route, STATUSES[i % 5], f"handler_{i % 7}").inc(i)
    for i in range(max(series // 2 // HISTOGRAM_LINES, 1)):
        child = latency.labels(METHODS[i % 4], f"/api/v1/orders/{i}")
        for k in range(20):
            child.observe((i * 7 + k) % 100 / 37.0)
    return registry


def count_series(text: str) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def _stats(samples: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}


def _time(fn: Callable[[], object], runs: int) -> dict[str, float]:
    fn()  # warm-up: connections, caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return _stats(samples)


def _serve_app_forever(series: int) -> None:
    """Child process: expose `series` series, print the port, serve until stdin closes."""
    httpd, _thread = start_http_server(0, addr="127.0.0.1", registry=build_registry(series))
    print(httpd.server_port, flush=True)
    sys.stdin.read()
    httpd.shutdown()


@contextmanager
def serve_app(series: int) -> Iterator[str]:
    """Run the exposition server in a child process; yield its /metrics URL."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            __spec__.name if __spec__ else "podvisor.bench.metrics_scrape",
            "--serve-app",
            str(series),
        ],
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = child.stdout.readline().strip() if child.stdout else ""
        if not port.isdigit():
            raise RuntimeError(f"benchmark app did not start (exit code {child.poll()})")
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        child.terminate()
        child.communicate(timeout=10)


@contextmanager
def serve_sidecar(target_url: str) -> Iterator[str]:
    settings = Settings(pod=LABELS.pod, service_name=LABELS.service_name, target_url=target_url, port=0)
    app = build_app(settings, pid_source=os.getpid)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    stop = threading.Event()

    def serve() -> None:
        # waitress has no cross-thread stop: run its loop in slices, then close it from this thread
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)

    thread = threading.Thread(target=serve, name="bench-sidecar", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/metrics"
    finally:
        stop.set()
        thread.join(10)
        app.enricher.close()


def parse_and_reencode(body: str) -> str:
    """The alternative enricher: prometheus_client's parser and encoder."""
    families = []
    for family in text_string_to_metric_families(body):
        family.samples = [s._replace(labels=LABELS.merged_into(s.labels)) for s in family.samples]
        families.append(family)
    return encode(FamilyList(families), TEXT)


def measure(series_counts: tuple[int, ...] = (1000, 10000), runs: int = 7) -> dict:
    """Time each case `runs` times per series count; {count: {"series": n, "cases": {case: stats}}}."""
    results: dict = {}
    for count in series_counts:
        cases: dict[str, dict[str, float]] = {}
        with serve_app(count) as app_url, serve_sidecar(app_url) as sidecar_url, requests.Session() as http:
            body = http.get(app_url, headers={"Accept": TEXT.accept}, timeout=30).text
            for fmt in (TEXT, OPENMETRICS):
                headers = {
                    "Accept": fmt.accept,
                    "Accept-Encoding": "identity",
                    "X-Prometheus-Scrape-Timeout-Seconds": "10",
                }
                for name, url in (("direct", app_url), ("sidecar", sidecar_url)):

                    def scrape(url: str = url, headers: dict[str, str] = headers) -> bytes:
                        response = http.get(url, headers=headers, timeout=30)
                        response.raise_for_status()
                        return response.content

                    cases[f"{name} ({fmt.name})"] = _time(scrape, runs)
        cases["enrich: line rewriter"] = _time(partial(rewrite, body, LABELS, openmetrics=False), runs)
        cases["enrich: parse + re-encode"] = _time(partial(parse_and_reencode, body), runs)
        results[count] = {"series": count_series(body), "cases": cases}
    return results


def format_table(results: dict) -> str:
    lines = [f"{'series':>7}  {'case':<28}{'median ms':>10}{'min ms':>10}{'max ms':>10}"]
    for result in results.values():
        for case, s in result["cases"].items():
            lines.append(
                f"{result['series']:>7}  {case:<28}{s['median_ms']:>10.1f}{s['min_ms']:>10.1f}"
                f"{s['max_ms']:>10.1f}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--serve-app", type=int, metavar="SERIES", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_app:
        _serve_app_forever(args.serve_app)
        return 0
    print(format_table(measure(tuple(args.series), args.runs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
