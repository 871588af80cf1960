"""Pod-level series from the lifecycle controller's `GET /pods/{pod}` answer.

`podvisor_pod_ready` (1/0), `podvisor_pod_restarts_total` (the controller's restart count; it
resets if the controller loses its state, which rate()/increase() treat as a counter reset) and
`podvisor_pod_phase{phase=...}`, one series per phase with 1 for the current one, the way
kube-state-metrics exposes `kube_pod_status_phase`. When the controller cannot be asked, the
series are absent and `podvisor_target_up{target="controller"}` says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .labels import PodLabels

# The controller's phases (Kubernetes' five plus Terminating and Stopped); an unknown phase it
# reports is exposed too, in addition to these.
PHASES = ("Pending", "Running", "Terminating", "Succeeded", "Failed", "Stopped", "Unknown")


@dataclass(frozen=True)
class PodStatus:
    ready: bool
    phase: str
    restarts: int


def parse_pod_status(body: bytes | str | Mapping[str, Any]) -> PodStatus:
    """Read the controller's pod JSON; raise ValueError naming what is missing or wrong."""
    data = json.loads(body) if isinstance(body, (bytes, str)) else body
    if not isinstance(data, Mapping):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    ready, phase, restarts = data.get("ready"), data.get("phase"), data.get("restarts")
    if not isinstance(ready, bool):
        raise ValueError(f"'ready' must be true or false, got {ready!r}")
    if not isinstance(phase, str) or not phase:
        raise ValueError(f"'phase' must be a non-empty string, got {phase!r}")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 0:
        raise ValueError(f"'restarts' must be a non-negative integer, got {restarts!r}")
    return PodStatus(ready=ready, phase=phase, restarts=restarts)


class PodStatusCollector:
    """Collector for one scrape: the pod status fetched for it, or nothing when there is none."""

    def __init__(self, status: PodStatus | None, labels: PodLabels) -> None:
        self._status = status
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        status = self._status
        if status is None:
            return
        names, values = self._labels.names(), self._labels.values()
        ready = GaugeMetricFamily(
            "podvisor_pod_ready",
            "1 if the pod is Ready (app readiness passing, sidecars running).",
            labels=names,
        )
        ready.add_metric(values, 1.0 if status.ready else 0.0)
        restarts = CounterMetricFamily(
            "podvisor_pod_restarts",
            "App restarts in this pod, as counted by the lifecycle controller.",
            labels=names,
        )
        restarts.add_metric(values, status.restarts)
        phase = GaugeMetricFamily(
            "podvisor_pod_phase",
            "The pod's phase: 1 for the current phase, 0 for the others.",
            labels=["phase", *names],
        )
        phases = PHASES if status.phase in PHASES else (*PHASES, status.phase)
        for name in phases:
            phase.add_metric([name, *values], 1.0 if name == status.phase else 0.0)
        yield from (ready, restarts, phase)
