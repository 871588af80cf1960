"""Prometheus metrics of one app, on a registry of its own (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

UNMATCHED = "<unmatched>"


class AppMetrics:
    """HTTP request metrics plus any business counters; each instance owns its registry."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.counters: dict[str, Counter] = {}
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered, by route template and status.",
            ["method", "path", "status"], registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "Time spent answering HTTP requests, by route template.",
            ["method", "path"], registry=self.registry,
        )

    def add_counter(self, name: str, documentation: str) -> Counter:
        """Register a business counter (e.g. ``users_created_total``); later found in ``counters``."""
        counter = Counter(name, documentation, registry=self.registry)
        self.counters[name] = counter
        return counter

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        """Count one answered request; ``path`` must be a route template, never a raw path."""
        self.requests.labels(method, path, str(status)).inc()
        self.duration.labels(method, path).observe(seconds)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition (text or OpenMetrics, per the Accept header) and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
