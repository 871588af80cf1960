"""podvisor-aggregator: settings from the environment, the store, the API under waitress."""
from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys
from pathlib import Path

from podvisor.aggregator.app import create_app
from podvisor.aggregator.auth import TokenFileError, load_or_create_token
from podvisor.aggregator.credentials import mint, write_credential
from podvisor.aggregator.settings import Settings
from podvisor.aggregator.state import EXTENSION_KEY
from podvisor.aggregator.store.base import StoreUnavailable
from podvisor.aggregator.store.open import open_store_waiting, store_setting
from podvisor.aggregator.store.schema import SchemaError
from podvisor.aggregator.views import ui
from podvisor.core.budget import SERVER_DRAIN_SECONDS
from podvisor.core.serving import Server, serve_until_signalled
from podvisor.core.settings import Env, SettingsError, exit_bad_setting

logger = logging.getLogger("aggregator")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the traceback, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str) -> None:
    """JSON lines on stderr (supervisord captures them into aggregator.log)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    """Run the aggregator until SIGTERM; 0 on clean shutdown, 2 on bad configuration."""
    parser = argparse.ArgumentParser(
        prog="podvisor-aggregator",
        description="Central log store of podvisor. Configured by AGGREGATOR_* environment "
                    "variables (see docs/interfaces.md).")
    parser.parse_args(argv)
    prog = "podvisor-aggregator"
    try:
        settings = Settings.from_env(Env())
    except SettingsError as exc:
        return exit_bad_setting(prog, exc)
    configure_logging(settings.log_level)
    try:
        token = load_or_create_token(settings.token_file)
    except TokenFileError as exc:
        return exit_bad_setting(prog, SettingsError("AGGREGATOR_TOKEN_FILE", settings.token_file, str(exc)))
    except OSError as exc:
        return exit_bad_setting(prog, SettingsError("AGGREGATOR_TOKEN_FILE", settings.token_file,
                                                    f"cannot be created: {exc}"))
    try:
        for pod, service, path in settings.logger_credentials:
            if write_credential(Path(path), mint(token, pod, service)):
                logger.info("wrote the logger credential of pod %s to %s", pod, path)
    except (OSError, ValueError) as exc:
        return exit_bad_setting(prog, SettingsError("AGGREGATOR_LOGGER_CREDENTIALS", None,
                                                    f"cannot write a credential: {exc}"))
    try:
        store = open_store_waiting(settings)
    except (sqlite3.Error, SchemaError, OSError, StoreUnavailable) as exc:
        return exit_bad_setting(prog, SettingsError(*store_setting(settings), f"cannot be opened: {exc}"))
    app = create_app(settings, store=store, token=token, blueprints=(ui.bp,))
    state = app.extensions[EXTENSION_KEY]
    logger.info("store %s: %d entries, latest id %d; reads %s the token", store_setting(settings)[1],
                store.entry_count, store.last_seq,
                "need" if settings.reads_need_token else "do not need")
    try:
        try:
            server = Server(app, host=settings.host, port=settings.port, threads=settings.threads,
                            ident=prog, drain_seconds=SERVER_DRAIN_SECONDS, on_stopping=state.tails.close,
                            clear_untrusted_proxy_headers=True, max_request_body_size=2 * settings.max_body_bytes,
                            # Read one request ahead: a client that hangs up on a live tail is seen
                            # at once (environ["waitress.client_disconnected"]) and its slot freed.
                            # (The price: a client that half-closes its side after sending gets no
                            # answer, which browsers, curl and the loggers never do.)
                            channel_request_lookahead=1)
        except OSError as exc:
            return exit_bad_setting(prog, SettingsError("AGGREGATOR_PORT", str(settings.port),
                                                        f"cannot listen on {settings.host}: {exc}"))
        logger.info("listening on http://%s:%d (threads=%d)", settings.host, server.port, settings.threads)
        serve_until_signalled(server)
    finally:
        state.close()
        store.close()
    logger.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
