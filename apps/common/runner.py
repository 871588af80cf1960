"""``main()`` of every service: settings, logging, the app, the server, signals, exit code."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

from flask import Flask

from apps.common.jsonlog import configure_logging
from apps.common.requestid import RequestIdFilter
from apps.common.server import GracefulServer
from apps.common.settings import ConfigError, Settings, load_settings

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_STARTUP_FAILED = 1
EXIT_BAD_CONFIG = 2

ENVIRONMENT_HELP = """\
environment:
  APP_HOST              address to bind (default 127.0.0.1)
  APP_PORT              port to bind, 0 for any free port (logged at startup)
  APP_DB                SQLite database file (default var/pods/<pod>/data/<pod>.db)
  APP_LOG_FILE          JSON-lines log file (default var/pods/<pod>/logs/app.log)
  APP_THREADS           waitress worker threads (default 8)
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
        settings = load_settings(pod, environ)
    except ConfigError as exc:
        return _fail(pod, EXIT_BAD_CONFIG, f"configuration error: {exc}")
    try:
        handler = configure_logging(settings.log_file)
    except OSError as exc:
        return _fail(pod, EXIT_BAD_CONFIG, f"configuration error: APP_LOG_FILE: cannot open: {exc}")
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
        server = GracefulServer(
            app, host=settings.host, port=settings.port, threads=settings.threads, ident=service
        )
    except OSError as exc:
        log.error("%s cannot listen on %s:%d: %s", service, settings.host, settings.port, exc)
        return _fail(pod, EXIT_STARTUP_FAILED, f"cannot listen on APP_HOST/APP_PORT "
                                               f"{settings.host}:{settings.port}: {exc}")
    previous = {
        signum: signal.signal(signum, lambda num, _frame: server.request_stop(signal.Signals(num).name))
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        host, port = server.addresses[0]
        listening = ", ".join(_address(h, p) for h, p in server.addresses)
        log.info("%s listening on %s", service, listening,
                 extra={"host": host, "port": port, "threads": settings.threads})
        server.serve()
        log.info("shutdown complete")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_OK


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _fail(pod: str, code: int, message: str) -> int:
    # One line on stderr: supervisord keeps it in app.stderr.log, a shell shows it to the operator.
    sys.stderr.write(f"podvisor-{pod}: {message}\n")
    sys.stderr.flush()
    return code
