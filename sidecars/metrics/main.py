"""`podvisor-metrics`: the metrics sidecar process (settings, wiring, waitress, signals)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence

from podvisor.core.budget import SERVER_DRAIN_SECONDS
from podvisor.core.serving import Server, serve_until_signalled
from podvisor.core.settings import Env, SettingsError, exit_bad_setting
from podvisor.core.supervisor import SupervisorRPC

from .app import MetricsApp
from .enricher import Enricher, Replica, Running, Upstreams
from .labels import PodLabels
from .pids import PidfilePidSource, PidSource, SupervisorPidSource, SupervisorRunningSource, no_pid
from .process import ProcessTreeCollector
from .scraper import HttpFetch
from .settings import Settings

log = logging.getLogger(__name__)


def pid_source_for(settings: Settings) -> PidSource:
    """supervisord's word on the app's pid when we can ask it, else the pidfile, else none."""
    if settings.app_program and settings.supervisor.serverurl:
        return SupervisorPidSource(settings.app_program, SupervisorRPC(settings.supervisor, timeout=1.0))
    if settings.app_pidfile:
        return PidfilePidSource(settings.app_pidfile)
    if settings.app_program:
        log.warning("METRICS_APP_PROGRAM is set but SUPERVISOR_SERVER_URL is not: no process metrics")
    return no_pid


def running_source_for(settings: Settings) -> Running:
    """The pid of each running replica, from one getAllProcessInfo of supervisord per scrape."""
    if not settings.supervisor.serverurl:
        log.warning("METRICS_APP_PROGRAM names several programs but SUPERVISOR_SERVER_URL is not set: "
                    "no replica is scraped")
        return lambda: None
    return SupervisorRunningSource(settings.replica_programs, SupervisorRPC(settings.supervisor, timeout=1.0))


def build_app(settings: Settings, pid_source: PidSource | None = None) -> MetricsApp:
    """Wire the sidecar from its settings (tests pass their own pid source)."""
    labels = PodLabels(service_name=settings.service_name, environment=settings.environment, pod=settings.pod)
    limit = settings.memory_limit_bytes
    replicas = tuple(Replica(str(slot), program, url) for slot, (program, url)
                     in enumerate(zip(settings.replica_programs, settings.replica_urls, strict=True)))
    upstreams = Upstreams(app=settings.target_url, logger=settings.logger_url, adapter=settings.adapter,
                          replicas=replicas)
    if replicas:  # each running replica's process tree, with its replica label
        enricher = Enricher(labels, upstreams, HttpFetch(), running=running_source_for(settings),
                            replica_collector=lambda pid, of: ProcessTreeCollector(lambda: pid, of, limit))
    else:
        process = ProcessTreeCollector(pid_source or pid_source_for(settings), labels, limit)
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
    try:
        settings = Settings.from_env(Env(env))
    except SettingsError as exc:
        return exit_bad_setting("podvisor-metrics", exc)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = build_app(settings)
    try:
        server = Server(app, host=settings.host, port=settings.port, threads=settings.threads,
                        ident="podvisor-metrics", drain_seconds=SERVER_DRAIN_SECONDS,
                        clear_untrusted_proxy_headers=True)
    except OSError as exc:
        app.enricher.close()
        return exit_bad_setting("podvisor-metrics", SettingsError(
            "METRICS_PORT", str(settings.port), f"cannot listen on {settings.host}: {exc}"))
    log.info("podvisor-metrics for pod %s listening on http://%s:%s (app %s, read as %s)", settings.pod,
             settings.host, server.port, settings.target_url or "serves no metrics", settings.adapter)
    try:
        serve_until_signalled(server)
    finally:
        app.enricher.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
