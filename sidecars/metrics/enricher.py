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
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from . import nginx
from .exposition import FamilyList, Format, assemble, encode, enrich, format_of, merge
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
class Replica:
    """One app process of a pod that runs several (replicas, and the spare a rolling restart starts)."""

    name: str  # its `replica` label: the slot number
    program: str  # its supervisord program
    url: str | None = None  # its own /metrics, on its slot's port; None: the app serves none


@dataclass(frozen=True)
class Upstreams:
    """URLs the sidecar fetches on each scrape; both optional (an app may serve no metrics)."""

    app: str | None = None
    logger: str | None = None
    adapter: str = "prometheus"  # one of ADAPTERS: what the app's URL answers
    # A pod with several app processes on one shared socket: each running one is scraped on its own
    # port instead of `app` (the shared port picks one at random, or none answers while none runs).
    replicas: tuple[Replica, ...] = ()


Running = Callable[[], "dict[str, int] | None"]  # pid of each running program; None: cannot tell
ReplicaCollector = Callable[[int, PodLabels], Collector]  # a running replica's process series


def one_per_name(families: Iterable[Metric]) -> list[Metric]:
    """Families of the same name (each replica's process tree yields its own) as one, their samples
    together: an exposition holds a family once."""
    merged: dict[str, Metric] = {}
    for family in families:
        first = merged.setdefault(family.name, family)
        if first is not family:
            first.samples.extend(family.samples)
    return list(merged.values())


class Enricher:
    """Builds the sidecar's answer to one scrape."""

    def __init__(
        self,
        labels: PodLabels,
        upstreams: Upstreams,
        fetch: Fetch,
        collectors: Sequence[Collector] = (),
        workers: int = 8,
        running: Running | None = None,
        replica_collector: ReplicaCollector | None = None,
    ) -> None:
        self.labels = labels
        self.upstreams = upstreams
        self._fetch = fetch
        self._collectors = list(collectors)
        self._running = running or (lambda: None)
        self._replica_collector = replica_collector
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="podvisor-scrape")
        targets = []
        if upstreams.app or any(replica.url for replica in upstreams.replicas):
            targets.append("app")
        if upstreams.logger:
            targets.append("logger")
        self.health = TargetHealth(targets, labels)
        self._was_up: dict[tuple[str, str | None], bool] = {}
        self._reserved_seen: frozenset[str] = frozenset()

    def _targets(self) -> tuple[list[tuple[str, str, Keep, PodLabels]], list[Collector], list[Outcome]]:
        """This scrape's expositions (target, url, keep, labels), the running replicas' process
        collectors, and the outcome of an app none of whose replicas runs."""
        expositions, collectors, missing = [], [], []
        if self.upstreams.replicas:
            running = self._running() or {}
            for replica in self.upstreams.replicas:
                pid = running.get(replica.program)
                if not pid:
                    continue
                labels = self.labels.of_replica(replica.name)
                if replica.url:
                    expositions.append(("app", replica.url, app_keep, labels))
                if self._replica_collector is not None:
                    collectors.append(self._replica_collector(pid, labels))
            if not expositions and "app" in self.health.targets:
                # Not scraped at all: the shared port would hold the request in the kernel's backlog.
                missing.append(Outcome("app", 0.0, "connection", "no replica of the app is running"))
        elif self.upstreams.app:
            expositions.append(("app", self.upstreams.app, app_keep, self.labels))
        if self.upstreams.logger:
            expositions.append(("logger", self.upstreams.logger, logger_keep, self.labels))
        return expositions, collectors, missing

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def render(self, out: Format, timeout: float) -> bytes:
        """Scrape every upstream within `timeout` seconds and return the answer in format `out`."""
        start = time.monotonic()
        deadline = start + timeout
        targets, replica_collectors, outcomes = self._targets()
        expositions = [
            (name, labels, self._pool.submit(self._exposition, name, url, out, keep, labels, deadline))
            for name, url, keep, labels in targets
        ]
        # Local collectors (process trees, limits) run here while the upstreams answer.
        local = one_per_name(family for collector in self._collectors + replica_collectors
                             for family in collector.collect())

        apps: list[str] = []
        parts: list[str] = []
        for target, labels, job in expositions:
            text, outcome = self._wait(target, labels, job, start, deadline)
            outcomes.append(outcome)
            if text:
                (apps if target == "app" else parts).append(text)
        parts.insert(0, merge(apps))  # replicas' families, one block each
        for outcome in outcomes:
            self._account(outcome)

        registry = CollectorRegistry(auto_describe=False)
        registry.register(FamilyList(local))
        registry.register(self.health.collector(outcomes))
        parts.append(encode(registry, out))
        return assemble(parts, out)

    def _wait(
        self, target: str, labels: PodLabels, job: Future[tuple[T | None, Outcome]], start: float, deadline: float
    ) -> tuple[T | None, Outcome]:
        try:
            return job.result(timeout=max(deadline - time.monotonic(), 0.0))
        except FutureTimeout:
            job.cancel()  # if it is still queued; a running fetch ends on its own socket timeout
            return None, Outcome(target, time.monotonic() - start, "timeout", "no answer before the scrape deadline",
                                 labels.replica)

    def _account(self, outcome: Outcome) -> None:
        self.health.record(outcome)
        key = (outcome.target, outcome.replica)
        what = outcome.target if outcome.replica is None else f"{outcome.target} (replica {outcome.replica})"
        was_up = self._was_up.get(key)
        if outcome.up and was_up is False:
            log.info("target %s is up again", what)
        elif not outcome.up and was_up is not False:
            log.warning("target %s is down (%s): %s", what, outcome.reason, outcome.detail)
        self._was_up[key] = outcome.up

    def _timed(
        self, target: str, replica: str | None, deadline: float, work: Callable[[float], T]
    ) -> tuple[T | None, Outcome]:
        start = time.monotonic()
        try:
            remaining = deadline - start
            if remaining <= 0:
                raise ScrapeError("timeout", "no time left before the scrape deadline")
            value = work(remaining)
        except ScrapeError as exc:
            return None, Outcome(target, time.monotonic() - start, exc.reason, str(exc), replica)
        except ValueError as exc:  # RewriteError, UnicodeDecodeError, JSON and shape errors
            return None, Outcome(target, time.monotonic() - start, "parse", str(exc), replica)
        return value, Outcome(target, time.monotonic() - start, replica=replica)

    def _exposition(
        self, target: str, url: str, out: Format, keep: Keep, labels: PodLabels, deadline: float
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
                return encode(FamilyList(nginx.families(nginx.parse_stub_status(body), labels)), out)
            text = enrich(body, format_of(response.content_type), out, labels, counted)
            if target == "app":
                self._report_reserved(frozenset(dropped))
            return text

        return self._timed(target, labels.replica, deadline, work)

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
