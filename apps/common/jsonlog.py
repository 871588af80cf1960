"""JSON-lines logging: one object per line, appended to the app's log file."""

from __future__ import annotations

import json
import logging
import logging.handlers
from datetime import UTC, datetime
from pathlib import Path

# Attributes every LogRecord has; anything else on a record came from ``extra=`` or a filter
# and is written as a field of its own.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def format_timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, e.g. ``2026-11-23T09:40:00.123Z``."""
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp, level, message, logger, then extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": format_timestamp(record.created),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines, so a traceback can never split the line.
        return json.dumps(entry, ensure_ascii=False, default=str)


def open_log_handler(path: Path) -> logging.Handler:
    """A handler appending JSON lines to ``path`` (parent folders created).

    WatchedFileHandler reopens the file when logrotate moved it away (``create`` mode);
    StreamHandler.emit writes each line with a single write() followed by flush().
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    return handler


def configure_logging(path: Path, level: int = logging.INFO) -> logging.Handler:
    """Send every logger (ours, waitress') to ``path`` as JSON lines; returns the handler to remove."""
    handler = open_log_handler(path)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler
