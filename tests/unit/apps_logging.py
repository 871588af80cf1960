"""Shared by the apps' unit tests: log to a file the way the apps' main() does, and read it back."""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from podvisor.apps.common.jsonlog import open_log_handler
from podvisor.apps.common.requestid import RequestIdFilter

ReadLog = Callable[[], list[dict]]


@contextmanager
def captured_log(log_file: Path) -> Iterator[ReadLog]:
    """Attach the apps' JSON file handler to the root logger; yields a reader of the parsed lines."""
    handler = open_log_handler(log_file)
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in log_file.read_text().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
