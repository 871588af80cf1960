"""The pod series: `podvisor_pod_ready`, `_restarts_total`, `_sidecar_restarts_total`, `_phase`, `_condition`.

Their one producer is the controller's /metrics (kube-state-metrics style: one `_phase` series per
phase, 1 for the current one), so they exist for every pod even while its metrics sidecar is down,
and Prometheus never holds two copies. Labels: `pod`, `service_name`, `environment`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from podvisor.supervisord.controller.states import Phase

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pod: dict[str, Any], environment: str, **extra: str) -> str:
    pairs = {"pod": pod["pod"], "service_name": pod.get("service") or pod["pod"], "environment": environment,
             **extra}
    return ",".join(f'{k}="{_label(str(v))}"' for k, v in pairs.items())


def render(pods: Iterable[dict[str, Any]], environment: str) -> str:
    """The text exposition of every pod's series, from the controller's pod snapshots."""
    pods = list(pods)
    out = ["# HELP podvisor_pod_ready Whether the pod is Ready (app readiness passing, sidecars running).",
           "# TYPE podvisor_pod_ready gauge"]
    out += [f"podvisor_pod_ready{{{_labels(p, environment)}}} {int(p['ready'])}" for p in pods]
    out += ["# HELP podvisor_pod_restarts_total App restarts of the pod since it was (re)started.",
            "# TYPE podvisor_pod_restarts_total counter"]
    out += [f"podvisor_pod_restarts_total{{{_labels(p, environment)}}} {p['restarts']}" for p in pods]
    out += ["# HELP podvisor_pod_sidecar_restarts_total Sidecar restarts of the pod since it was (re)started.",
            "# TYPE podvisor_pod_sidecar_restarts_total counter"]
    for p in pods:
        for role, n in sorted(p["sidecar_restarts"].items()):
            out.append(f"podvisor_pod_sidecar_restarts_total{{{_labels(p, environment, sidecar=role)}}} {n}")
    out += ["# HELP podvisor_pod_phase The pod's phase: 1 for the current one, 0 for the others.",
            "# TYPE podvisor_pod_phase gauge"]
    for p in pods:
        for phase in Phase:
            out.append(f"podvisor_pod_phase{{{_labels(p, environment, phase=phase.value)}}} "
                       f"{int(p['phase'] == phase.value)}")
    out += ["# HELP podvisor_pod_condition A pod's conditions (Ready, DependenciesReady, ShippingStalled): "
            "1 when true.", "# TYPE podvisor_pod_condition gauge"]
    for p in pods:
        for condition in p.get("conditions", ()):
            out.append(f"podvisor_pod_condition{{{_labels(p, environment, condition=condition['type'])}}} "
                       f"{int(bool(condition['status']))}")
    return "\n".join(out) + "\n"
