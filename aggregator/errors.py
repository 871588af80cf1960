"""The one error shape of the API: `{"ok": false, "error": "..."}` with an HTTP status."""
from __future__ import annotations

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    """Raised by views and helpers; rendered as a JSON error with `status`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ParamError(ApiError):
    """A bad query parameter value: 400 naming the parameter."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(400, f"{name}: {reason}")
        self.name = name


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Build the JSON error response."""
    response = jsonify(ok=False, error=message)
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Render ApiError and every werkzeug HTTP error (404, 405, ...) as JSON.

    A blueprint that wants HTML errors (the web UI) registers its own handlers; Flask prefers a
    blueprint's handler for errors raised in its views.
    """

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        headers = {}
        if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return error_response(exc.code or 500, exc.description or exc.name, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error: %s", exc)
        return error_response(500, "internal error")
