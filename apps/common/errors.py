"""JSON errors: ``{"ok": false, "error": "..."}`` for every failure, never an HTML page."""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status; extra keyword fields go into the JSON body."""

    def __init__(self, status: int, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields


def error_response(status: int, message: str, **fields: Any) -> tuple[Response, int]:
    """The JSON body every error uses."""
    return jsonify({"ok": False, "error": message, **fields}), status


def register_error_handlers(app: Flask) -> None:
    """Answer API errors, HTTP errors (404, 405, 413, 415...), database outages and bugs as JSON."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Response, int]:
        return error_response(error.status, error.message, **error.fields)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        # A description passed to abort() is specific; the class default is a paragraph of prose.
        custom = error.description != type(error).description
        message = error.description if custom and error.description else error.name
        response, status = error_response(error.code or 500, message)
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value  # e.g. Allow on 405
        response.status_code = status
        return response

    @app.errorhandler(sqlite3.DatabaseError)
    def _database_error(error: sqlite3.DatabaseError) -> tuple[Response, int]:
        if isinstance(error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.InterfaceError):
            log.exception("unhandled database error")
            return error_response(500, "internal server error")
        # Locked past busy_timeout, file gone, disk full, not a database: the service is unavailable.
        log.exception("database unavailable")
        return error_response(503, "database unavailable", reason=str(error))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled exception")
        return error_response(500, "internal server error")
