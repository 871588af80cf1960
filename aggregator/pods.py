"""The pods overview: poll the controller's /pods and every metrics sidecar in the background,
keep a short history per pod, and derive request rate, error ratio and p95 latency from it.

Rates are computed the way Prometheus' rate() and histogram_quantile() would over one scrape
interval: deltas of the cumulative counters (a counter that went down means the app restarted, so
the new value is the delta), and a p95 interpolated linearly inside the histogram bucket holding it.
Probe and scrape traffic (/health, /ready, /metrics) is left out: it is not the service's load.

An app without request metrics of its own (nginx, the gateway) is read from what its logging
sidecar counts in its access log, `podvisor_logger_http_requests_total{route,status_class}` and
`podvisor_logger_http_request_duration_seconds`; a pod that has both is read from the app's only,
so nothing is counted twice.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

logger = logging.getLogger(__name__)

Fetch = Callable[[str, float], str]
IGNORED_PATHS = frozenset({"/health", "/healthz", "/ready", "/readyz", "/metrics"})
REQUESTS = "http_requests_total"
DURATION_BUCKET = "http_request_duration_seconds_bucket"
LOGGER_REQUESTS = "podvisor_logger_http_requests_total"  # the access log's, counted by the logger
LOGGER_DURATION_BUCKET = "podvisor_logger_http_request_duration_seconds_bucket"
TARGET_UP = "podvisor_target_up"
NO_CONTROLLER = "AGGREGATOR_CONTROLLER_URL is not set: no pod status"
_CONTROLLER_FIELDS = ("service", "desired", "phase", "status", "ready", "containers_ready",
                      "containers", "restarts", "sidecar_restarts", "last_reason", "age_seconds",
                      "replicas", "ready_replicas", "ports", "last_op")
_REPLICA_FIELDS = ("program", "state", "ready", "pid", "restarts", "last_reason")
OP_POLL_SECONDS = 0.25  # how often the controller is asked while a pod action sent from here runs
OP_WATCH_SECONDS = 300.0  # ...at most


def http_get(url: str, timeout: float) -> str:
    """GET `url` and return the body as text; raise OSError (or ValueError) on failure."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain, application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own URLs
        return response.read(8 * 1024 * 1024).decode("utf-8", "replace")


def metrics_endpoint(url: str) -> str:
    """A sidecar base URL (`http://127.0.0.1:9101`) gets `/metrics`; a URL with a path is kept."""
    return url.rstrip("/") + "/metrics" if urlsplit(url).path in ("", "/") else url


@dataclass(frozen=True)
class Sample:
    """One scrape of one pod's metrics sidecar: cumulative figures, summed over routes."""

    at: float
    requests: float
    errors: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending
    app_up: bool | None
    source: str = "app"  # whose counters these are: "app", or "logger" (from the access log)


@dataclass(frozen=True)
class Point:
    """Figures over the interval between two samples."""

    at: float
    request_rate: float
    error_ratio: float | None
    p95_ms: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"t": round(self.at, 3), "request_rate": _round(self.request_rate),
                "error_ratio": _round(self.error_ratio), "p95_ms": _round(self.p95_ms)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class _Figures:
    """Requests, 5xx and latency buckets summed over routes, from one source's families."""

    def __init__(self) -> None:
        self.seen = False
        self.requests = self.errors = 0.0
        self.buckets: dict[float, float] = {}

    def count(self, value: float, error: bool) -> None:
        self.seen = True
        self.requests += value
        self.errors += value if error else 0.0

    def bucket(self, le: str | None, value: float) -> None:
        bound = float(le or "nan")
        if not math.isnan(bound):
            self.buckets[bound] = self.buckets.get(bound, 0.0) + value


def parse_sample(text: str, at: float) -> Sample:
    """Read the request counter, the duration histogram and the app's up gauge from a scrape."""
    app, logger = _Figures(), _Figures()
    app_up = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == REQUESTS and labels.get("path") not in IGNORED_PATHS:
                app.count(sample.value, labels.get("status", "").startswith("5"))
            elif sample.name == DURATION_BUCKET and labels.get("path") not in IGNORED_PATHS:
                app.bucket(labels.get("le"), sample.value)
            elif sample.name == LOGGER_REQUESTS:  # the logger leaves probes out already
                logger.count(sample.value, labels.get("status_class") == "5xx")
            elif sample.name == LOGGER_DURATION_BUCKET:
                logger.bucket(labels.get("le"), sample.value)
            elif sample.name == TARGET_UP and labels.get("target") == "app":
                app_up = sample.value == 1.0
    source, figures = ("logger", logger) if logger.seen and not app.seen else ("app", app)
    return Sample(at, figures.requests, figures.errors, tuple(sorted(figures.buckets.items())), app_up, source)


def _delta(new: float, old: float) -> float:
    return new if new < old else new - old  # a reset (app restart) counts from zero


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative (upper bound, count) buckets, as Prometheus computes it."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # in the +Inf bucket: the highest finite bound is all we know
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def point_between(old: Sample, new: Sample) -> Point | None:
    """Rate, error ratio and p95 over the interval from `old` to `new`; None for a bad interval."""
    seconds = new.at - old.at
    if seconds <= 0 or old.source != new.source:  # counters of two sources do not subtract
        return None
    requests = _delta(new.requests, old.requests)
    errors = min(_delta(new.errors, old.errors), requests)
    previous = dict(old.buckets)
    reset = new.requests < old.requests
    deltas = [(bound, count if reset else _delta(count, previous.get(bound, 0.0)))
              for bound, count in new.buckets]
    p95 = histogram_quantile(0.95, deltas)
    return Point(new.at, requests / seconds, errors / requests if requests else None,
                 None if p95 is None else p95 * 1000)


class PodsMonitor:
    """Polls on its own thread every `interval` seconds; `snapshot()` is what /api/v1/pods returns."""

    def __init__(self, controller_url: str | None, metrics_urls: tuple[tuple[str, str], ...], *,
                 interval: float = 5.0, history: int = 60, timeout: float = 2.0,
                 fetch: Fetch = http_get, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.controller_url = controller_url
        self.metrics_urls = tuple((pod, metrics_endpoint(url)) for pod, url in metrics_urls)
        self.interval = interval
        self.timeout = timeout
        self._fetch = fetch
        self._clock = clock  # stamps the samples
        self._monotonic = monotonic  # schedules the polls, times the pods' ages
        self._lock = threading.Lock()
        self._samples: dict[str, deque[Sample]] = {
            pod: deque(maxlen=history + 1) for pod, _url in self.metrics_urls}
        self._scrape_errors: dict[str, str | None] = {pod: None for pod, _url in self.metrics_urls}
        self._pods: list[dict[str, Any]] = []
        self._controller_error: str | None = None if controller_url else NO_CONTROLLER
        self._updated_at: float | None = None
        self._controller_read_at: float | None = None  # monotonic time of the last good answer
        self._watched: dict[str, tuple[str, str, float]] = {}  # op id -> (pod, action, deadline)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        """Whether there is anything to poll."""
        return bool(self.controller_url or self.metrics_urls)

    def start(self) -> None:
        """Poll now and then every `interval` seconds until stop()."""
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="aggregator-pods", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout)

    def watch(self, pod: str, op_id: str, action: str) -> None:
        """Ask the controller every OP_POLL_SECONDS, not every `interval`, until the action `op_id`
        sent to `pod` is done and, unless it stopped the pod, the pod is Ready again: the pods page
        then shows the new processes at once."""
        with self._lock:
            self._watched[op_id] = (pod, action, self._monotonic() + OP_WATCH_SECONDS)
        self._wake.set()

    def pod_names(self) -> list[str] | None:
        """The pods the controller listed last; None when it never answered."""
        with self._lock:
            return None if self._controller_read_at is None else [p["pod"] for p in self._pods]

    def _loop(self) -> None:
        next_full = 0.0
        while not self._stop.is_set():
            full = self._monotonic() >= next_full
            try:
                if full:
                    self.poll_once()
                else:
                    self.poll_controller()
            except Exception:  # noqa: BLE001 - the overview must keep polling whatever one reply held
                logger.exception("pods poll failed")
            if full:
                next_full = self._monotonic() + self.interval
            wait = max(0.0, next_full - self._monotonic())
            with self._lock:
                if self._watched:
                    wait = min(wait, OP_POLL_SECONDS)
            self._wake.wait(wait)
            self._wake.clear()

    def poll_once(self) -> None:
        """Fetch the controller's pod list and scrape every metrics sidecar once."""
        self.poll_controller()
        scraped: dict[str, Sample | str] = {}
        for pod, url in self.metrics_urls:
            try:
                scraped[pod] = parse_sample(self._fetch(url, self.timeout), self._clock())
            except (OSError, ValueError) as exc:
                scraped[pod] = f"{url}: {exc}"
        with self._lock:
            for pod, outcome in scraped.items():
                if isinstance(outcome, Sample):
                    self._samples[pod].append(outcome)
                    self._scrape_errors[pod] = None
                else:
                    self._scrape_errors[pod] = outcome
            self._updated_at = self._clock()

    def poll_controller(self) -> None:
        """Fetch the controller's pod list only (what a pod action changes)."""
        pods, controller_error = self._poll_controller()
        with self._lock:
            if pods is not None:
                self._pods = pods
                self._controller_read_at = self._monotonic()
                self._settle_watched()
            self._controller_error = controller_error
            self._updated_at = self._clock()

    def _settle_watched(self) -> None:
        """Stop watching the actions that are over (called with the lock held)."""
        by_name = {p["pod"]: p for p in self._pods}
        now = self._monotonic()
        for op_id, (pod, action, deadline) in list(self._watched.items()):
            status = by_name.get(pod) or {}
            last = status.get("last_op") or {}
            done = last.get("id") == op_id and last.get("done")
            over = done and (action == "stop" or not last.get("ok") or status.get("ready"))
            if over or not status or now > deadline:
                del self._watched[op_id]

    def _poll_controller(self) -> tuple[list[dict[str, Any]] | None, str | None]:
        if not self.controller_url:
            return None, NO_CONTROLLER
        url = self.controller_url + "/pods"
        try:
            document = json.loads(self._fetch(url, self.timeout))
            pods = document["pods"]
            if not isinstance(pods, list) or not all(isinstance(p, dict) and "pod" in p for p in pods):
                raise ValueError("no list of pods in the reply")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{url}: {exc}"
        return pods, None

    def snapshot(self) -> dict[str, Any]:
        """Every known pod (the controller's and the scraped ones) with its status and figures."""
        with self._lock:
            controller = {p["pod"]: p for p in self._pods}
            names = list(controller) + [pod for pod, _url in self.metrics_urls
                                        if pod not in controller]
            since_read = 0.0 if self._controller_read_at is None else self._monotonic() - self._controller_read_at
            pods = []
            for name in sorted(names):
                row: dict[str, Any] = {"pod": name}
                status = controller.get(name)
                row.update({key: status.get(key) for key in _CONTROLLER_FIELDS} if status
                           else dict.fromkeys(_CONTROLLER_FIELDS))
                if isinstance(row["age_seconds"], int | float):
                    row["age_seconds"] = round(row["age_seconds"] + since_read, 1)  # as of now
                row["app_replicas"] = app_replicas(status) if status else []
                row["metrics"] = self._metrics_of(name)
                pods.append(row)
            return {"ok": True, "updated_at": self._updated_at, "interval_seconds": self.interval,
                    "controller_url": self.controller_url, "controller_error": self._controller_error,
                    "pods": pods}

    def _metrics_of(self, pod: str) -> dict[str, Any] | None:
        samples = self._samples.get(pod)
        if samples is None:
            return None  # no metrics sidecar configured for this pod
        points = [point for old, new in zip(samples, list(samples)[1:], strict=False)
                  if (point := point_between(old, new)) is not None]
        latest = points[-1].as_dict() if points else {}
        return {
            "error": self._scrape_errors.get(pod),
            "app_up": samples[-1].app_up if samples else None,
            "request_rate": latest.get("request_rate"),
            "error_ratio": latest.get("error_ratio"),
            "p95_ms": latest.get("p95_ms"),
            "history": [point.as_dict() for point in points],
        }


def app_replicas(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The app processes a pod runs now, from the controller's `container_states`: each active
    slot (`app`, `app-1`...; a rolling restart's new one included) with its own port (the slot's,
    where podvisor holds the socket) and restart count."""
    states = status.get("container_states")
    if not isinstance(states, dict):
        return []
    replicas = []
    for slot, state in states.items():
        if not (slot == "app" or slot.startswith("app-")) or not isinstance(state, dict) or not state.get("active"):
            continue
        replicas.append({"slot": slot, **{key: state.get(key) for key in _REPLICA_FIELDS},
                         "port": state.get("own_port") or state.get("port")})
    return replicas
