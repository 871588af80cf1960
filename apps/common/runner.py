"""``main()`` of every service: settings, logging, the app, the server, signals, exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Mapping, Sequence

from flask import Flask

from podvisor.apps.common.jsonlog import configure_logging
from podvisor.apps.common.requestid import RequestIdFilter
from podvisor.apps.common.settings import Settings, load_settings
from podvisor.core.handoff import inherited_sockets
from podvisor.core.serving import Server, serve_until_signalled
from podvisor.core.settings import Env, SettingsError, exit_bad_setting

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STARTUP_FAILED = 1

ENVIRONMENT_HELP = """\
environment:
  APP_HOST              address to bind (default 127.0.0.1)
  APP_PORT              port to bind, 0 for any free port (logged at startup)
  APP_DB                SQLite database file (default var/pods/<pod>/data/<pod>.db)
  APP_LOG_FILE          JSON-lines log file (default var/pods/<pod>/logs/app.log)
  APP_THREADS           waitress worker threads (default 8)
  APP_DRAIN_SECONDS     on SIGTERM, finish in-flight requests within this (the pod's stop budget)
  USER_SERVICE_URL      order only: user service base URL (default http://127.0.0.1:3000)
  PRODUCT_SERVICE_URL   order only: product service base URL (default http://127.0.0.1:3002)
  APP_UPSTREAM_TIMEOUT  order only: seconds per upstream call (default 5)
"""


def run_service(
    pod: str, service: str, create_app: Callable[[Settings], Flask],
    argv: Sequence[str] | None, environ: Mapping[str, str],
) -> int:
    """Run one service until SIGTERM/SIGINT; 0 after a clean shutdown, 2 on bad configuration."""
    parser = argparse.ArgumentParser(
        prog=f"podvisor-{pod}", description=f"Run the {service} (configured by environment variables).",
        epilog=ENVIRONMENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    try:
        settings = load_settings(pod, Env(environ))
    except SettingsError as exc:
        return exit_bad_setting(f"podvisor-{pod}", exc)
    try:
        handler = configure_logging(settings.log_file)
    except OSError as exc:
        return exit_bad_setting(f"podvisor-{pod}", SettingsError("APP_LOG_FILE", str(settings.log_file),
                                                                 f"cannot open: {exc}"))
    handler.addFilter(RequestIdFilter())
    try:
        return _serve(pod, service, create_app, settings)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _serve(pod: str, service: str, create_app: Callable[[Settings], Flask], settings: Settings) -> int:
    try:
        app = create_app(settings)
    except Exception as exc:  # the database could not be created or opened: say so and exit
        log.exception("%s cannot start: database %s unusable", service, settings.db_path)
        return _fail(pod, EXIT_STARTUP_FAILED, f"cannot start: APP_DB {settings.db_path}: {exc}")
    try:
        # The sockets podvisor holds for the pod (podvisor-launch passes them the systemd way), else our own.
        inherited = [sock for _, sock in inherited_sockets()]
        server = Server(app, host=settings.host, port=settings.port, threads=settings.threads, ident=service,
                        drain_seconds=settings.drain_seconds, sockets=inherited)
    except OSError as exc:
        log.error("%s cannot listen on %s:%d: %s", service, settings.host, settings.port, exc)
        return _fail(pod, EXIT_STARTUP_FAILED, f"cannot listen on APP_HOST/APP_PORT "
                                               f"{settings.host}:{settings.port}: {exc}")
    host, port = server.addresses[0]
    listening = ", ".join(_address(h, p) for h, p in server.addresses)
    log.info("%s listening on %s", service, listening,
             extra={"host": host, "port": port, "threads": settings.threads,
                    "drain_seconds": settings.drain_seconds})
    serve_until_signalled(server)
    log.info("shutdown complete")
    return EXIT_OK


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fail(pod: str, code: int, message: str) -> int:
    # One line on stderr: supervisord keeps it in app.stderr.log, a shell shows it to the operator.
    sys.stderr.write(f"podvisor-{pod}: {message}\n")
    sys.stderr.flush()
    return code
