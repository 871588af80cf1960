"""A fixture pod's app for scenario 6: exposes about BENCH_SERIES series on APP_HOST:APP_PORT.

The series are metrics_scrape.py's (counters with four labels, histograms); every path answers
them, /health included, so the pod's probes pass. Runs until SIGTERM.

    APP_PORT=3000 BENCH_SERIES=10000 python -m podvisor.bench.fixture_app
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from prometheus_client import start_http_server

from podvisor.bench.metrics_scrape import build_registry


def main(argv: list[str] | None = None) -> int:
    try:
        port = int(os.environ["APP_PORT"])
        series = int(os.environ.get("BENCH_SERIES", "1000"))
    except (KeyError, ValueError) as exc:
        print(f"fixture_app: APP_PORT and BENCH_SERIES must be integers: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    httpd, _thread = start_http_server(
        port, addr=os.environ.get("APP_HOST", "127.0.0.1"), registry=build_registry(series)
    )
    print(f"fixture app: {series} series on port {port}", flush=True)
    stop.wait()
    httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
