"""Resource metrics of the app's whole process tree, under `podvisor_pod_`.

The tree is the app pid plus `children(recursive=True)`, resolved afresh on every scrape. Sums
cover the tree; the fd limit and start time are the main process's, so a restart shows in
`changes(podvisor_pod_start_time_seconds[...])`.

CPU time is a counter over a changing set of processes. Bounded cardinality rules out a `pid`
label, so we expose the tree sum and include each live process's reaped children (`children_user`,
`children_system`): a child's CPU time moves to its parent's account when the parent waits for it,
keeping the sum monotonic. What still makes it drop (an un-reaped or re-parented child exiting, an
app restart) is a counter reset, which `rate()` and `increase()` handle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psutil
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .labels import PodLabels
from .pids import PidSource


@dataclass(frozen=True)
class TreeUsage:
    """Resource usage of one process tree at one instant."""

    cpu_seconds: float
    resident_bytes: int
    virtual_bytes: int
    open_fds: int
    max_fds: int | None
    threads: int
    start_time: float
    processes: int


def tree_usage(pid: int) -> TreeUsage | None:
    """Measure the tree rooted at `pid`; None when `pid` does not exist (any more)."""
    try:
        root = psutil.Process(pid)
        with root.oneshot():
            if root.status() == psutil.STATUS_ZOMBIE:  # exited, not yet reaped: not running
                return None
            start_time = root.create_time()
            max_fds = _fd_limit(root)
            children = root.children(recursive=True)
    except psutil.Error:
        return None
    cpu = 0.0
    rss = vms = fds = threads = count = 0
    for proc in [root, *children]:
        try:
            with proc.oneshot():
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                times = proc.cpu_times()
                memory = proc.memory_info()
                proc_fds = proc.num_fds()
                proc_threads = proc.num_threads()
        except psutil.Error:  # exited (or became a zombie) while we looked: not part of the tree now
            if proc is root:
                return None
            continue
        cpu += times.user + times.system + times.children_user + times.children_system
        rss += memory.rss
        vms += memory.vms
        fds += proc_fds
        threads += proc_threads
        count += 1
    return TreeUsage(cpu, rss, vms, fds, max_fds, threads, start_time, count)


def _fd_limit(proc: psutil.Process) -> int | None:
    try:
        soft, _hard = proc.rlimit(psutil.RLIMIT_NOFILE)
    except (AttributeError, psutil.Error, OSError):  # no prlimit on this platform, or not allowed
        return None
    return None if soft == psutil.RLIM_INFINITY else soft


class ProcessTreeCollector:
    """Collector: the app tree's resources (absent while the pid is unknown) and the memory limit."""

    def __init__(
        self, pid_source: PidSource, labels: PodLabels, memory_limit_bytes: int | None = None
    ) -> None:
        self._pid_source = pid_source
        self._labels = labels
        self._memory_limit = memory_limit_bytes

    def collect(self) -> Iterator[Metric]:
        names, values = self._labels.names(), self._labels.values()

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=names)
            family.add_metric(values, value)
            return family

        if self._memory_limit is not None:
            yield gauge(
                "podvisor_pod_memory_limit_bytes",
                "Memory limit of the pod's app from the pods spec; the controller restarts the app above it.",
                self._memory_limit,
            )
        pid = self._pid_source()
        usage = tree_usage(pid) if pid else None
        if usage is None:
            return
        cpu = CounterMetricFamily(
            "podvisor_pod_cpu_seconds",
            "User and system CPU seconds of the app's process tree, reaped children included.",
            labels=names,
        )
        cpu.add_metric(values, usage.cpu_seconds)
        yield cpu
        yield gauge(
            "podvisor_pod_resident_memory_bytes",
            "Resident memory of the app's process tree.",
            usage.resident_bytes,
        )
        yield gauge(
            "podvisor_pod_virtual_memory_bytes",
            "Virtual memory of the app's process tree.",
            usage.virtual_bytes,
        )
        yield gauge(
            "podvisor_pod_open_fds", "Open file descriptors of the app's process tree.", usage.open_fds
        )
        if usage.max_fds is not None:
            yield gauge(
                "podvisor_pod_max_fds",
                "Soft open file descriptor limit of the app's main process.",
                usage.max_fds,
            )
        yield gauge("podvisor_pod_threads", "Threads of the app's process tree.", usage.threads)
        yield gauge(
            "podvisor_pod_start_time_seconds",
            "Start time of the app's main process since the Unix epoch; it changes on restart.",
            usage.start_time,
        )
        yield gauge("podvisor_pod_processes", "Processes in the app's process tree.", usage.processes)
