"""Per-request instrumentation: request id in and out, one access log line, request metrics."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from podvisor.apps.common.metrics import UNMATCHED, AppMetrics
from podvisor.apps.common.requestid import HEADER, accept_request_id

# Anything else (a client can send any token as a method) is counted as "other" to bound cardinality.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def install(app: Flask, metrics: AppMetrics, access_log: logging.Logger) -> None:
    """Register the hooks on ``app``: they run for every request, error responses included."""

    @app.before_request
    def _start() -> None:
        g.request_id = accept_request_id(request.headers.get(HEADER))
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("request_started", time.perf_counter())
        request_id = g.get("request_id") or accept_request_id(None)
        response.headers[HEADER] = request_id
        method = request.method if request.method in KNOWN_METHODS else "other"
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        metrics.observe_request(method, route, response.status_code, elapsed)
        status = response.status_code
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        access_log.log(
            level, "%s %s %d", request.method, request.path, status,
            extra={
                "request_id": request_id,
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
            },
        )
        return response
