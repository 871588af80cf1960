"""The sidecar's HTTP face, a plain WSGI app: `GET /metrics` and `GET /health`.

`/metrics` scrapes the upstreams synchronously within the time Prometheus grants
(`X-Prometheus-Scrape-Timeout-Seconds` minus a margin, capped by METRICS_SCRAPE_TIMEOUT) and always
answers 200 while the sidecar itself works: a down app shows as `podvisor_target_up 0`, not as
an error. `/health` answers 200 JSON for startup and liveness probes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from .enricher import Enricher
from .exposition import negotiate

log = logging.getLogger(__name__)

MAX_MARGIN = 0.25  # seconds kept back from Prometheus' timeout for our own work and the network
MIN_TIMEOUT = 0.01
ALLOW = "GET, HEAD, OPTIONS"
StartResponse = Callable[..., Any]


def scrape_timeout(header: str | None, cap: float) -> float:
    """Seconds to spend on upstreams: Prometheus' offer minus a margin (10%, at most 0.25 s), capped."""
    try:
        offered = float(header) if header is not None else math.nan
    except ValueError:
        offered = math.nan
    if not math.isfinite(offered) or offered <= 0:
        return cap
    return max(min(cap, offered - min(MAX_MARGIN, offered * 0.1)), MIN_TIMEOUT)


class MetricsApp:
    """WSGI callable serving one pod's enriched metrics."""

    def __init__(self, enricher: Enricher, max_timeout: float) -> None:
        self.enricher = enricher
        self.max_timeout = max_timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        if path not in ("/metrics", "/health", "/"):
            return _json(
                start_response, "404 Not Found", {"ok": False, "error": f"no such path: {path[:200]}"}, method
            )
        if method == "OPTIONS":
            start_response("204 No Content", [("Allow", ALLOW), ("Content-Length", "0")])
            return []
        if method not in ("GET", "HEAD"):
            return _json(
                start_response,
                "405 Method Not Allowed",
                {"ok": False, "error": f"{method[:20]} is not allowed here: use GET"},
                method,
                [("Allow", ALLOW)],
            )
        if path == "/health":
            labels = self.enricher.labels
            return _json(
                start_response,
                "200 OK",
                {
                    "ok": True,
                    "pod": labels.pod,
                    "service_name": labels.service_name,
                    "environment": labels.environment,
                    "targets": self.enricher.health.targets,
                },
                method,
            )
        if path == "/":
            body = b"podvisor metrics sidecar: /metrics (enriched app metrics), /health\n"
            return _respond(start_response, "200 OK", "text/plain; charset=utf-8", body, method)
        out = negotiate(environ.get("HTTP_ACCEPT"))
        timeout = scrape_timeout(environ.get("HTTP_X_PROMETHEUS_SCRAPE_TIMEOUT_SECONDS"), self.max_timeout)
        try:
            body = self.enricher.render(out, timeout)
        except Exception:
            log.exception("rendering /metrics failed")
            return _respond(
                start_response,
                "500 Internal Server Error",
                "text/plain; charset=utf-8",
                b"metrics sidecar error, see its log\n",
                method,
            )
        return _respond(start_response, "200 OK", out.content_type, body, method)


def _respond(
    start_response: StartResponse,
    status: str,
    content_type: str,
    body: bytes,
    method: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    start_response(status, headers + (extra or []))
    return [] if method == "HEAD" else [body]


def _json(
    start_response: StartResponse,
    status: str,
    data: dict[str, Any],
    method: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps(data).encode("utf-8") + b"\n"
    return _respond(start_response, status, "application/json", body, method, extra)
