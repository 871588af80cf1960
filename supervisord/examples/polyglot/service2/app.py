#!/usr/bin/env python3
"""service2: the polyglot example's Flask service, written as a service of its own would be.

It follows podvisor's app contract and knows nothing of the sidecars: APP_HOST:APP_PORT
(127.0.0.1:8002), one JSON object per line to APP_LOG_FILE (stdout when unset), /ping, /hello,
/health and /metrics (prometheus_client), an X-Request-ID kept or made. It is served by waitress
through podvisor's one serving helper, which on SIGTERM stops accepting and lets in-flight
requests finish within APP_DRAIN_SECONDS (plain waitress would drop them).
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from podvisor.core.handoff import inherited_sockets
from podvisor.core.serving import Server, serve_until_signalled

ROUTES = ("/ping", "/hello", "/health", "/metrics")


def log_line(out, level: str, message: str, **fields: object) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    out.write(json.dumps({"timestamp": stamp, "level": level, "message": message, "logger": "service2",
                          **fields}) + "\n")
    out.flush()


def create_app(out) -> Flask:
    app = Flask(__name__)
    registry = CollectorRegistry()
    requests_total = Counter("http_requests", "HTTP requests answered, by method, route and status.",
                             ["method", "path", "status"], registry=registry)
    duration = Histogram("http_request_duration_seconds", "Time to answer an HTTP request, by route.", ["path"],
                         registry=registry)

    @app.before_request
    def start() -> None:
        given = request.headers.get("X-Request-ID", "")
        keep = 0 < len(given) <= 128 and given.isascii() and given.isprintable() and " " not in given
        g.request_id = given if keep else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.started
        route = request.path if request.path in ROUTES else "other"
        requests_total.labels(request.method, route, str(response.status_code)).inc()
        duration.labels(route).observe(elapsed)
        response.headers["X-Request-ID"] = g.request_id
        level = "error" if response.status_code >= 500 else "warning" if response.status_code >= 400 else "info"
        log_line(out, level, f"{request.method} {request.path} {response.status_code}", request_id=g.request_id,
                 method=request.method, path=request.path, status=response.status_code,
                 duration_ms=round(elapsed * 1000, 3))
        return response

    @app.get("/ping")
    def ping() -> Response:
        return Response('{"service":"2","status":"ok"}', mimetype="application/json")

    @app.get("/hello")
    def hello() -> Response:
        return Response('{"message":"Hello from Service 2"}', mimetype="application/json")

    @app.get("/health")
    def health() -> Response:
        return Response('{"service":"2","status":"healthy"}', mimetype="application/json")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    @app.errorhandler(404)
    @app.errorhandler(405)
    def error(exc) -> Response:  # JSON, never an HTML page
        body = json.dumps({"ok": False, "error": f"{exc.name}: {request.method} {request.path}"})
        return Response(body, status=exc.code, mimetype="application/json")

    return app


def main() -> int:
    path = os.environ.get("APP_LOG_FILE")
    out = open(path, "a", encoding="utf-8") if path else sys.stdout  # noqa: SIM115 (for the process' life)
    host, port = os.environ.get("APP_HOST", "127.0.0.1"), int(os.environ.get("APP_PORT", "8002"))
    drain = float(os.environ.get("APP_DRAIN_SECONDS", "10"))
    # the sockets podvisor holds for the pod (LISTEN_FDS, as systemd passes them), else its own port
    inherited = [sock for _name, sock in inherited_sockets()]
    server = Server(create_app(out), host=host, port=port, threads=4, ident="service2", drain_seconds=drain,
                    sockets=inherited or None)
    log_line(out, "info", f"service 2 listening on {host}:{server.port}")
    reason = serve_until_signalled(server)
    log_line(out, "info", f"stopped ({reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
