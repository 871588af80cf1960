"""/health and /metrics of the logger, served on a background thread."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from podvisor.core.budget import SERVER_DRAIN_SECONDS
from podvisor.core.hosts import HostCheck
from podvisor.core.httpapi import ReadOnlyApp, json_reply, text_reply
from podvisor.core.serving import Server

log = logging.getLogger(__name__)


class StatusServer:
    """Owns the listening socket and its thread; `port` is the bound one (useful with port 0)."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]],
                 registry: CollectorRegistry) -> None:
        app = ReadOnlyApp("the podvisor logger", {
            "/health": lambda _e: json_reply(200, health()),
            "/metrics": lambda _e: text_reply(200, generate_latest(registry), CONTENT_TYPE_LATEST),
        }, hosts=HostCheck(host))
        self._server = Server(app, host=host, port=port, threads=2, ident="podvisor-logger",
                              drain_seconds=SERVER_DRAIN_SECONDS)
        self.host, self.port = host, self._server.port

    def start(self) -> StatusServer:
        self._server.serve_in_background("logger-http")
        log.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.stop(timeout=SERVER_DRAIN_SECONDS)
