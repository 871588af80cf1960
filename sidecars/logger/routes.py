"""Request rate, errors and latency per route, counted from an access log the logger ships anyway.

An app that serves no Prometheus metrics of its own (nginx) still writes one JSON line per request.
Lines with a numeric `request_time` (seconds, nginx's name) and an integer `status` are counted in
`podvisor_logger_http_requests_total{route,status_class}` and observed in
`podvisor_logger_http_request_duration_seconds{route}`. `route` is the longest of the pod's route
prefixes (LOGGER_ROUTE_PREFIXES, rendered from a gateway's routes) that starts the line's `path`, or
`other`; `status_class` is `2xx`...`5xx`. Probes and scrapes are not the service's load: left out.
Counting happens when a line is read, once per logger process (Prometheus counters start again at
a restart, which rate() handles). The metrics sidecar passes these families on with the pod labels.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .metrics import LoggerMetrics

OTHER = "other"


def route_of(path: str, prefixes: Sequence[str]) -> str:
    """The longest prefix `path` starts with (prefixes sorted longest first), else 'other'."""
    for prefix in prefixes:
        if path.startswith(prefix):
            return prefix
    return OTHER


def _no_probe(record: dict[str, Any]) -> bool:
    return False


class RouteCounter:
    """Counts access-log lines into the logger's per-route families; `observe(record)` every line."""

    def __init__(self, metrics: LoggerMetrics, prefixes: Sequence[str] = (),
                 is_probe: Callable[[dict[str, Any]], bool] = _no_probe) -> None:
        self._prefixes = tuple(sorted(set(prefixes), key=len, reverse=True))
        self._is_probe = is_probe
        self.requests = metrics.http_requests
        self.duration = metrics.http_request_duration

    def observe(self, record: dict[str, Any]) -> bool:
        """Count `record` when it is an access-log request line; True if it was counted."""
        seconds = record.get("request_time")
        if seconds is None:  # the common case, a line of any other kind: one dict lookup
            return False
        status = record.get("status")
        if type(status) is not int or not 100 <= status <= 599 or type(seconds) not in (int, float):
            return False
        if seconds < 0 or self._is_probe(record):
            return False
        path = record.get("path")
        route = route_of(path, self._prefixes) if isinstance(path, str) else OTHER
        self.requests.labels(route, f"{status // 100}xx").inc()
        self.duration.labels(route).observe(seconds)
        return True
