"""podctl top: CPU and memory per container, from each container's process tree.

A container is its process (the pid the controller reports) and all its descendants, as the
controller counts them for the memory limit. CPU is the user+system time the tree used over a
short interval, as a percentage of one core (200% is two cores busy), like `top` and psutil's
cpu_percent; memory is the tree's resident set.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psutil

from podvisor.supervisord.podctl.describe import SIDECAR_ORDER
from podvisor.supervisord.podctl.output import app_slots


@dataclass
class Usage:
    pod: str
    container: str
    pid: int | None
    pids: list[int] = field(default_factory=list)  # the tree at the end of the interval
    cpu_percent: float | None = None
    memory_bytes: int | None = None


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(proc: psutil.Process) -> float | None:
    try:
        times = proc.cpu_times()
        return times.user + times.system
    except psutil.Error:
        return None


def sample(pods: list[dict], interval: float, clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> list[Usage]:
    """Measure every container of `pods` (the controller's pod JSON) over one shared interval."""
    usages = []
    for pod in pods:
        states = pod.get("container_states") or {}
        roles = [role for role, state in app_slots(pod) if state.get("active", True) or state.get("pid")]
        for role in roles + [r for r in SIDECAR_ORDER if r in states]:
            usages.append(Usage(pod["pod"], role, (states[role] or {}).get("pid") or None))
    before: dict[tuple[int, float], float] = {}
    for usage in usages:
        for proc in tree(usage.pid) if usage.pid else ():
            used = _cpu(proc)
            if used is not None:
                before[proc.pid, proc.create_time()] = used  # create_time: a reused pid is another process
    start = clock()
    sleep(interval)
    elapsed = max(clock() - start, 1e-9)
    for usage in usages:
        if not usage.pid:
            continue
        procs = tree(usage.pid)
        if not procs:
            usage.pid = None  # it ended during the interval
            continue
        cpu, rss = 0.0, 0
        for proc in procs:
            try:
                key = proc.pid, proc.create_time()
                used = _cpu(proc)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
            if used is not None:
                # A process born during the interval used all its CPU time within it.
                cpu += used - before.get(key, 0.0)
            usage.pids.append(proc.pid)
        usage.cpu_percent = round(100.0 * cpu / elapsed, 1)
        usage.memory_bytes = rss
    return usages


def mebibytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.1f}Mi"


def table(usages: list[Usage]) -> str:
    rows = [("POD", "CONTAINER", "PID", "PROCS", "CPU%", "MEMORY")]
    for u in usages:
        running = u.pid is not None
        rows.append((u.pod, u.container, str(u.pid) if running else "-", str(len(u.pids)) if running else "-",
                     f"{u.cpu_percent:.1f}" if u.cpu_percent is not None else "-", mebibytes(u.memory_bytes)))
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, sizes, strict=True)).rstrip() + "\n" for r in rows)


def as_json(usages: list[Usage], interval: float) -> str:
    return json.dumps({"interval_seconds": interval, "containers": [asdict(u) for u in usages]}, indent=2) + "\n"
