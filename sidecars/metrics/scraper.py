"""Fetching upstream targets (app, logger) and accounting for how each fetch went.

An upstream answer is taken fresh on every scrape of the sidecar; nothing is cached. Each target's
outcome becomes `podvisor_target_up`, `podvisor_target_scrape_duration_seconds` and, on failure,
one increment of `podvisor_target_scrape_errors_total{reason=...}` (timeout, connection,
http_status, parse). Every reason of every configured target is exposed from the start at 0, so
`increase()` sees the first error.
"""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .labels import PodLabels

REASONS = ("timeout", "connection", "http_status", "parse")


class ScrapeError(Exception):
    """A failed fetch, with one of REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes


class Fetch(Protocol):
    """GET `url` within `timeout` seconds; raise ScrapeError("timeout"|"connection") on failure."""

    def __call__(self, url: str, accept: str, timeout: float) -> Response: ...


class HttpFetch:
    """GET with the standard library's http.client, one keep-alive connection per thread and
    target (requests cost the sidecar 5 MiB of memory, and read a 1 MB exposition in 10 KiB steps)."""

    def __init__(self, user_agent: str = "podvisor-metrics") -> None:
        self._local = threading.local()
        self._user_agent = user_agent

    def __call__(self, url: str, accept: str, timeout: float) -> Response:
        headers = {
            "Accept": accept,
            "Accept-Encoding": "identity",  # loopback: compression only costs CPU
            "User-Agent": self._user_agent,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:.3f}",
        }
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = (parts.scheme, parts.hostname, parts.port)
        for attempt in (1, 2):
            conn, reused = self._connection(key, timeout)
            try:
                conn.request("GET", target, headers=headers)
                reply = conn.getresponse()
                body = reply.read()
            except TimeoutError as exc:
                self._drop(key)
                raise ScrapeError("timeout", f"GET {url}: timed out") from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop(key)
                if reused and attempt == 1:
                    continue  # the target closed the idle connection: once more on a new one
                raise ScrapeError("connection", f"GET {url}: {exc or type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop(key)
                raise ScrapeError("connection", f"GET {url}: {exc or type(exc).__name__}") from exc
            if reply.will_close:
                self._drop(key)
            return Response(reply.status, reply.getheader("Content-Type", ""), body)
        raise ScrapeError("connection", f"GET {url}: closed twice")  # pragma: no cover

    def _connection(self, key: tuple, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(key)
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        scheme, host, port = key
        if scheme == "https":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conns[key] = conn
        return conn, False

    def _drop(self, key: tuple) -> None:
        conn = getattr(self._local, "conns", {}).pop(key, None)
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Outcome:
    """How one fetch of one target went."""

    target: str
    duration: float
    reason: str | None = None  # None: success
    detail: str = field(default="", compare=False)
    replica: str | None = None  # the app replica fetched, for a pod with several

    @property
    def up(self) -> bool:
        return self.reason is None


class TargetHealth:
    """Per-target error counters that live as long as the sidecar (thread-safe)."""

    def __init__(self, targets: Sequence[str], labels: PodLabels) -> None:
        self.targets = list(targets)
        self.labels = labels
        self._lock = threading.Lock()
        self._errors = {(t, r): 0 for t in self.targets for r in REASONS}

    def record(self, outcome: Outcome) -> None:
        if outcome.reason is not None:
            with self._lock:
                self._errors[(outcome.target, outcome.reason)] += 1

    def errors(self, target: str, reason: str) -> int:
        with self._lock:
            return self._errors[(target, reason)]

    def collector(self, outcomes: Sequence[Outcome]) -> ScrapeReport:
        """A collector for one scrape of the sidecar: these outcomes plus the counters so far."""
        return ScrapeReport(self, outcomes)


class ScrapeReport:
    """Collector: up and duration of this scrape's outcomes, errors since start."""

    def __init__(self, health: TargetHealth, outcomes: Sequence[Outcome]) -> None:
        self._health = health
        self._outcomes = list(outcomes)

    def collect(self) -> Iterator[Metric]:
        pod = self._health.labels
        ours = pod.values()
        up = GaugeMetricFamily("podvisor_target_up", "1 if the sidecar's last fetch of the target succeeded, else 0.")
        duration = GaugeMetricFamily(
            "podvisor_target_scrape_duration_seconds",
            "Seconds the sidecar's last fetch of the target took, failed ones included.",
        )
        for outcome in self._outcomes:
            # one series per replica fetched, for a pod with several
            labels = {"target": outcome.target, **dict((pod if outcome.replica is None
                                                         else pod.of_replica(outcome.replica)).items())}
            up.add_sample("podvisor_target_up", labels, 1.0 if outcome.up else 0.0)
            duration.add_sample("podvisor_target_scrape_duration_seconds", labels, outcome.duration)
        errors = CounterMetricFamily(
            "podvisor_target_scrape_errors",
            "Failed fetches of the target since the sidecar started, by reason.",
            labels=["target", "reason", *self._health.labels.names()],
        )
        for target in self._health.targets:
            for reason in REASONS:
                errors.add_metric([target, reason, *ours], self._health.errors(target, reason))
        yield from (up, duration, errors)
