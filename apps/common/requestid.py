"""X-Request-ID: accept a sane one from the caller, otherwise make one, and stamp it on log lines."""

from __future__ import annotations

import logging
import re
import uuid

from flask import g, has_request_context

HEADER = "X-Request-ID"
MAX_LENGTH = 128

# Visible ASCII only: an id ends up in headers and log lines, so no spaces, controls or non-ASCII.
_VALID = re.compile(rf"[\x21-\x7e]{{1,{MAX_LENGTH}}}")


def new_request_id() -> str:
    """A fresh id: uuid4 as 32 hex characters."""
    return uuid.uuid4().hex


def accept_request_id(value: str | None) -> str:
    """The caller's id when it is printable ASCII of at most 128 characters, otherwise a new one."""
    if value is not None and _VALID.fullmatch(value):
        return value
    return new_request_id()


def current_request_id() -> str | None:
    """The id of the request being served on this thread, if any."""
    if has_request_context():
        return g.get("request_id")
    return None


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while a request is served (domain events included)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = current_request_id()
            if request_id is not None:
                record.request_id = request_id
        return True
