"""One scrape of the sidecar: fetch every upstream at once, enrich, add the sidecar's own families.

Upstreams (the app and the logger) are fetched concurrently and waited for until the
scrape deadline only; a late answer is abandoned, counted as a timeout, and its series are absent
from this answer. Nothing is cached between scrapes. The sidecar's own families are built fresh for
each scrape in a dedicated registry without default collectors, so no family appears twice: the
app's own `process_*`/`python_*` pass through as the app's, ours are under `podvisor_`.

The `podvisor_` namespace belongs to podvisor: app families under `podvisor_target_`,
`podvisor_pod_` or `podvisor_logger_` are dropped, and only `podvisor_logger_*` families are taken
from the logger (its `process_*` would collide with the app's). An app read by the `nginx` adapter
answers stub_status, not Prometheus: its families are built here (nginx.py) instead of rewritten.
The pod's lifecycle series (`podvisor_pod_ready`, `_phase`, `_restarts_total`) have one producer,
the controller's /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client.registry import Collector, CollectorRegistry

from . import nginx
from .exposition import FamilyList, Format, assemble, encode, enrich, format_of
from .labels import PodLabels
from .rewrite import Keep
from .scraper import Fetch, Outcome, ScrapeError, TargetHealth

log = logging.getLogger(__name__)

RESERVED_PREFIXES = ("podvisor_target_", "podvisor_pod_", "podvisor_logger_")
LOGGER_PREFIX = "podvisor_logger_"
ADAPTERS = ("prometheus", "nginx")  # how the app's metrics are read: its own exposition, or stub_status
T = TypeVar("T")


def app_keep(name: str) -> bool:
    return not name.startswith(RESERVED_PREFIXES)


def logger_keep(name: str) -> bool:
    return name.startswith(LOGGER_PREFIX)


@dataclass(frozen=True)
class Upstreams:
    """URLs the sidecar fetches on each scrape; both optional (an app may serve no metrics)."""

    app: str | None = None
    logger: str | None = None
    adapter: str = "prometheus"  # one of ADAPTERS: what the app's URL answers


class Enricher:
    """Builds the sidecar's answer to one scrape."""

    def __init__(
        self,
        labels: PodLabels,
        upstreams: Upstreams,
        fetch: Fetch,
        collectors: Sequence[Collector] = (),
        workers: int = 8,
    ) -> None:
        self.labels = labels
        self.upstreams = upstreams
        self._fetch = fetch
        self._collectors = list(collectors)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="podvisor-scrape")
        self._expositions: list[tuple[str, str, Keep]] = []
        if upstreams.app:
            self._expositions.append(("app", upstreams.app, app_keep))
        if upstreams.logger:
            self._expositions.append(("logger", upstreams.logger, logger_keep))
        self.health = TargetHealth([name for name, _, _ in self._expositions], labels)
        self._was_up: dict[str, bool] = {}
        self._reserved_seen: frozenset[str] = frozenset()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def render(self, out: Format, timeout: float) -> bytes:
        """Scrape every upstream within `timeout` seconds and return the answer in format `out`."""
        start = time.monotonic()
        deadline = start + timeout
        expositions = [
            (name, self._pool.submit(self._exposition, name, url, out, keep, deadline))
            for name, url, keep in self._expositions
        ]
        # Local collectors (process tree, limits) run here while the upstreams answer.
        local = [family for collector in self._collectors for family in collector.collect()]

        parts: list[str] = []
        outcomes: list[Outcome] = []
        for target, job in expositions:
            text, outcome = self._wait(target, job, start, deadline)
            outcomes.append(outcome)
            if text:
                parts.append(text)
        for outcome in outcomes:
            self._account(outcome)

        registry = CollectorRegistry(auto_describe=False)
        registry.register(FamilyList(local))
        registry.register(self.health.collector(outcomes))
        parts.append(encode(registry, out))
        return assemble(parts, out)

    def _wait(
        self, target: str, job: Future[tuple[T | None, Outcome]], start: float, deadline: float
    ) -> tuple[T | None, Outcome]:
        try:
            return job.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            job.cancel()  # if it is still queued; a running fetch ends on its own socket timeout
            return None, Outcome(
                target, time.monotonic() - start, "timeout", "no answer before the scrape deadline"
            )

    def _account(self, outcome: Outcome) -> None:
        self.health.record(outcome)
        was_up = self._was_up.get(outcome.target)
        if outcome.up and was_up is False:
            log.info("target %s is up again", outcome.target)
        elif not outcome.up and was_up is not False:
            log.warning("target %s is down (%s): %s", outcome.target, outcome.reason, outcome.detail)
        self._was_up[outcome.target] = outcome.up

    def _timed(self, target: str, deadline: float, work: Callable[[float], T]) -> tuple[T | None, Outcome]:
        start = time.monotonic()
        try:
            remaining = deadline - start
            if remaining <= 0:
                raise ScrapeError("timeout", "no time left before the scrape deadline")
            value = work(remaining)
        except ScrapeError as exc:
            return None, Outcome(target, time.monotonic() - start, exc.reason, str(exc))
        except ValueError as exc:  # RewriteError, UnicodeDecodeError, JSON and shape errors
            return None, Outcome(target, time.monotonic() - start, "parse", str(exc))
        return value, Outcome(target, time.monotonic() - start)

    def _exposition(
        self, target: str, url: str, out: Format, keep: Keep, deadline: float
    ) -> tuple[str | None, Outcome]:
        dropped: set[str] = set()

        def counted(name: str) -> bool:
            if keep(name):
                return True
            dropped.add(name)
            return False

        def work(remaining: float) -> str:
            response = self._fetch(url, out.accept, remaining)
            if response.status != 200:
                raise ScrapeError("http_status", f"GET {url}: HTTP {response.status}")
            body = response.body.decode("utf-8")
            if target == "app" and self.upstreams.adapter == "nginx":
                return encode(FamilyList(nginx.families(nginx.parse_stub_status(body), self.labels)), out)
            text = enrich(body, format_of(response.content_type), out, self.labels, counted)
            if target == "app":
                self._report_reserved(frozenset(dropped))
            return text

        return self._timed(target, deadline, work)

    def _report_reserved(self, names: frozenset[str]) -> None:
        """Say once (per change) that the app exposes families in our namespace, which are left out."""
        if names != self._reserved_seen:
            self._reserved_seen = names
            if names:
                log.warning(
                    "the app exposes %d famil%s under podvisor_'s reserved prefixes, left out: %s",
                    len(names),
                    "y" if len(names) == 1 else "ies",
                    ", ".join(sorted(names)[:10]),
                )
