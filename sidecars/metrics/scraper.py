"""Fetching upstream targets (app, logger) and accounting for how each fetch went.

An upstream answer is taken fresh on every scrape of the sidecar; nothing is cached. Each target's
outcome becomes `podvisor_target_up`, `podvisor_target_scrape_duration_seconds` and, on failure,
one increment of `podvisor_target_scrape_errors_total{reason=...}` (timeout, connection,
http_status, parse). Every reason of every configured target is exposed from the start at 0, so
`increase()` sees the first error.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import requests
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
    """Fetch over HTTP with requests, one keep-alive session per thread (sessions are not shared)."""

    def __init__(self, user_agent: str = "podvisor-metrics") -> None:
        self._local = threading.local()
        self._user_agent = user_agent

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # never route loopback scrapes through an HTTP proxy
        return session

    def __call__(self, url: str, accept: str, timeout: float) -> Response:
        headers = {
            "Accept": accept,
            "Accept-Encoding": "identity",  # loopback: compression only costs CPU
            "User-Agent": self._user_agent,
            "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:.3f}",
        }
        try:
            r = self._session().get(url, headers=headers, timeout=(timeout, timeout))
            return Response(r.status_code, r.headers.get("Content-Type", ""), r.content)
        except requests.Timeout as exc:
            raise ScrapeError("timeout", str(exc)) from exc
        except requests.RequestException as exc:
            # A read timeout surfaces as a ConnectionError wrapping urllib3's ReadTimeoutError.
            reason = "timeout" if "timed out" in str(exc).lower() else "connection"
            raise ScrapeError(reason, str(exc)) from exc


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
