"""`podvisor-metrics`: the metrics sidecar process (settings, wiring, waitress, signals)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from types import FrameType

import waitress

from .app import MetricsApp
from .enricher import Enricher, Upstreams
from .labels import PodLabels
from .pids import PidfilePidSource, PidSource, SupervisorPidSource, no_pid
from .process import ProcessTreeCollector
from .scraper import HttpFetch
from .settings import Settings, SettingsError, load_settings

log = logging.getLogger("sidecars.metrics")


def pid_source_for(settings: Settings) -> PidSource:
    """supervisord's word on the app's pid when we can ask it, else the pidfile, else none."""
    if settings.app_program and settings.supervisor_url:
        return SupervisorPidSource(settings.app_program, settings.supervisor_env)
    if settings.app_pidfile:
        return PidfilePidSource(settings.app_pidfile)
    if settings.app_program:
        log.warning("METRICS_APP_PROGRAM is set but SUPERVISOR_SERVER_URL is not: no process metrics")
    return no_pid


def build_app(settings: Settings, pid_source: PidSource | None = None) -> MetricsApp:
    """Wire the sidecar from its settings (tests pass their own pid source)."""
    labels = PodLabels(service_name=settings.service_name, environment=settings.environment, pod=settings.pod)
    process = ProcessTreeCollector(
        pid_source or pid_source_for(settings), labels, settings.memory_limit_bytes
    )
    upstreams = Upstreams(
        app=settings.target_url, logger=settings.logger_url, controller=settings.controller_url
    )
    enricher = Enricher(labels, upstreams, HttpFetch(), collectors=[process])
    return MetricsApp(enricher, max_timeout=settings.scrape_timeout)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="podvisor-metrics",
        description=(
            "Metrics sidecar: serves the pod's app metrics enriched with pod labels, plus process, "
            "pod and logger metrics. Configured from the environment (see docs/interfaces.md)."
        ),
    )
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(os.environ if env is None else env)
    except SettingsError as exc:
        print(f"podvisor-metrics: {exc}", file=sys.stderr)
        return 2

    app = build_app(settings)
    try:
        server = waitress.create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=settings.threads,
            ident="podvisor-metrics",
            clear_untrusted_proxy_headers=True,
        )
    except OSError as exc:
        print(
            f"podvisor-metrics: METRICS_PORT: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        app.enricher.close()
        return 2

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        raise SystemExit(0)  # waitress' run() catches it and shuts its workers down

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "podvisor-metrics for pod %s listening on http://%s:%s (app %s)",
        settings.pod,
        server.effective_host,
        server.effective_port,
        settings.target_url,
    )
    try:
        server.run()
    finally:
        app.enricher.close()
        server.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
