"""What a changed pods spec means for a running stack: which pods are created, configured, deleted.

`podctl apply` renders the new spec and asks the controller to apply it; `supervisorctl update`
applies the rendered conf in supervisord's own way. Either way the controller compares the spec it
runs with the new one, and with what supervisord reports as changed programs (a changed rendered
section, e.g. a new environment), and acts per pod: unchanged pods keep their processes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from podvisor.supervisord.spec.model import Pod, Stack

CREATED, CONFIGURED, RELOADED, DELETED, UNCHANGED = "created", "configured", "reloaded", "deleted", "unchanged"
# What an app re-reads on its reload signal: a change of only these reloads it instead of a restart.
RELOADABLE = ("gateway",)
# Stack settings that apply only when the whole stack is started again.
RESTART_ONLY = ("state_dir", "host", "aggregator_port", "controller_port", "environment", "read_auth",
                "log_max_bytes", "log_backups")


@dataclass(frozen=True)
class PodChange:
    pod: str
    action: str  # created, configured, reloaded, deleted or unchanged
    programs: tuple[str, ...] = ()  # the pod's supervisord programs whose rendered section changed

    def __str__(self) -> str:
        return f"pod/{self.pod} {self.action}"


def restart_only_changes(old: Stack, new: Stack) -> list[str]:
    """The stack settings that differ and cannot be applied to a running stack."""
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]


def plan(old: Stack, new: Stack, changed_programs: set[str] | frozenset[str] = frozenset()) -> list[PodChange]:
    """Every pod of either spec, in the new spec's order, then the deleted ones."""
    before = {pod.name: pod for pod in old.pods}
    changes = []
    for pod in new.pods:
        programs = tuple(p for p in pod.all_programs if p in changed_programs)
        if pod.name not in before:
            changes.append(PodChange(pod.name, CREATED, pod.all_programs))
        elif before[pod.name] != pod and reloadable(before[pod.name], pod) and not set(pod.app_programs) & {*programs}:
            # the app reloads; a sidecar whose rendered section follows the change is re-created
            changes.append(PodChange(pod.name, RELOADED, programs))
        elif before[pod.name] != pod or programs:
            changes.append(PodChange(pod.name, CONFIGURED, programs))
        else:
            changes.append(PodChange(pod.name, UNCHANGED))
    names = {pod.name for pod in new.pods}
    changes += [PodChange(pod.name, DELETED, pod.all_programs) for pod in old.pods if pod.name not in names]
    return changes


def reloadable(old: Pod, new: Pod) -> bool:
    """Whether `new` differs from `old` only in what the app re-reads on its reload signal."""
    if new.reload_signal is None or old.reload_signal != new.reload_signal:
        return False
    keep = {name: getattr(old, name) for name in RELOADABLE}
    return dataclasses.replace(new, **keep) == old


def rollable(old: Pod, new: Pod, changed_programs: tuple[str, ...] | frozenset[str]) -> bool:
    """Whether a changed pod can be brought to its new spec by a rolling restart of its app, its
    sidecars and sockets untouched: podvisor holds its socket, and only app programs changed."""
    same = ("port", "metrics_port", "logger_port", "slot_ports", "replicas", "socket", "service", "gateway")
    return (old.socket == new.socket == "held" and all(getattr(old, f) == getattr(new, f) for f in same)
            and set(changed_programs) <= set(new.app_programs))


def with_pods_of(old: Stack, new: Stack) -> Stack:
    """The running stack's settings with the new spec's pods (what apply can change)."""
    return dataclasses.replace(old, pods=new.pods, app_ports=new.app_ports, metrics_ports=new.metrics_ports,
                               logger_ports=new.logger_ports)
