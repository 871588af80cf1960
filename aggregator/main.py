"""podvisor-aggregator: settings from the environment, the store, the API under waitress."""
from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import sys

from aggregator import ui
from aggregator.app import create_app
from aggregator.auth import TokenFileError, load_or_create_token
from aggregator.schema import SchemaError
from aggregator.serve import serve
from aggregator.settings import Settings, SettingsError
from aggregator.state import EXTENSION_KEY
from aggregator.store import Store

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
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        configure_logging("INFO")
        logger.error("%s", exc)
        return 2
    configure_logging(settings.log_level)
    try:
        token = load_or_create_token(settings.token_file)
    except TokenFileError as exc:
        logger.error("%s", exc)
        return 2
    except OSError as exc:
        logger.error("AGGREGATOR_TOKEN_FILE %s cannot be created: %s", settings.token_file, exc)
        return 2
    try:
        store = Store(settings.db_path, query_timeout_ms=settings.query_timeout_ms)
    except (sqlite3.Error, SchemaError, OSError) as exc:
        logger.error("AGGREGATOR_DB %s cannot be opened: %s", settings.db_path, exc)
        return 2
    app = create_app(settings, store=store, token=token, blueprints=(ui.bp,))
    state = app.extensions[EXTENSION_KEY]
    logger.info("store %s: %d entries, latest id %d; reads %s the token", settings.db_path,
                store.entry_count, store.last_seq,
                "need" if settings.reads_need_token else "do not need")
    try:
        serve(app, settings.host, settings.port, settings.threads, on_stopping=state.tails.close)
    except OSError as exc:
        logger.error("cannot listen on AGGREGATOR_HOST=%s AGGREGATOR_PORT=%d: %s",
                     settings.host, settings.port, exc)
        return 2
    finally:
        state.close()
        store.close()
    logger.info("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
