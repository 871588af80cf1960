"""Stacks for the benchmark and what we measure of their processes (CPU seconds, resident memory).

Stacks come from the e2e harness (`StackHandle`: ephemeral ports, a temporary state directory,
real supervisord) and are always stopped, with a check that nothing of theirs survived.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from podvisor.testing.harness import StackHandle, load_spec_dict

MIB = 1024 * 1024


# The three demo pods, without the gateway: scenarios 3-5 and 8 keep measuring what they always did.
DEMO_PODS = ["user", "product", "order"]


def spec(pods: list[str] | None = None) -> dict:
    """The committed pods spec, reduced to `pods` (all of them when None)."""
    data = load_spec_dict(None)
    if pods is not None:
        data["pods"] = {name: data["pods"][name] for name in pods}
    return data


class BenchStack(StackHandle):
    """A harness stack whose processes also inherit `extra_env`: settings the rendered conf leaves
    unset (supervisord passes its own environment on to every program)."""

    def __init__(self, root: Path, data: dict, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(root, data)
        self.extra_env = dict(extra_env or {})

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}


class Stacks:
    """Hands out stacks under one work directory and stops them all, whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0

    def new(self, pods: list[str] | None = None, data: dict | None = None,
            extra_env: dict[str, str] | None = None) -> StackHandle:
        """A stack (not started) of the committed spec's `pods`, or of the spec `data`."""
        self.count += 1
        data = data if data is not None else spec(pods)
        return BenchStack(self.workdir / f"stack{self.count}", data, extra_env)

    @contextmanager
    def running(self, pods: list[str] | None = None, data: dict | None = None,
                extra_env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[StackHandle]:
        handle = self.new(pods, data, extra_env)
        try:
            handle.start(timeout)
            yield handle
        finally:
            handle.stop()


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


@dataclass
class Usage:
    """A process over a window: CPU seconds used, the window's length, the largest RSS seen."""

    cpu_seconds: float
    wall_seconds: float
    rss_max_bytes: int

    @property
    def cpu_percent(self) -> float:
        """Percent of one core."""
        return 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def rss_mib(self) -> float:
        return self.rss_max_bytes / MIB


class Meter:
    """CPU and RSS of named processes between start() and stop(); RSS is sampled every `interval`."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.interval = interval
        self._cpu0: dict[str, float] = {}
        self._rss: dict[str, int] = {}
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                self._rss[name] = max(self._rss.get(name, 0), proc.memory_info().rss)
            except psutil.Error:
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> Meter:
        self._cpu0 = {name: cpu_seconds(p) for name, p in self.procs.items()}
        self._t0 = time.monotonic()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="bench-meter", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, Usage]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._sample()
        wall = time.monotonic() - self._t0
        return {
            name: Usage(cpu_seconds(p) - self._cpu0[name], wall, self._rss.get(name, 0))
            for name, p in self.procs.items()
        }


def stored_count(handle: StackHandle, request_id: str) -> int:
    """Entries stored with this request id, read from the aggregator's SQLite file read-only."""
    db = handle.state_dir / "aggregator" / "logs.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute("SELECT count(*) FROM logs WHERE request_id = ?", (request_id,)).fetchone()[0]
    finally:
        conn.close()


def stored_bytes(handle: StackHandle) -> int:
    """Bytes of the store's pages in use, as a reader sees the database: what the file holds after
    a checkpoint (the WAL's pages counted once, whatever the checkpointer has copied so far; free
    pages not counted). The files' sizes are no measure: the WAL is truncated while it runs."""
    db = handle.state_dir / "aggregator" / "logs.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        page_size, pages, free = (conn.execute(f"PRAGMA {name}").fetchone()[0]
                                  for name in ("page_size", "page_count", "freelist_count"))
        return (pages - free) * page_size
    finally:
        conn.close()


def health(handle: StackHandle) -> dict:
    """The aggregator's /health: entries stored, database size."""
    return requests.get(handle.aggregator_url + "/health", timeout=10).json()


def entries(handle: StackHandle) -> int:
    """Entries stored in all (cheap: the aggregator's /health)."""
    return health(handle)["entries"]


def wait_stored(
    handle: StackHandle,
    request_id: str,
    expected: int,
    base: int,
    timeout: float,
    on_poll: Callable[[int], None] = lambda _n: None,
) -> float:
    """Wait until `expected` entries with `request_id` are stored; return the time.monotonic() when
    they were seen (the start of the query that saw them).

    Polls the cheap total count (/health) until it could be complete, then the exact count;
    `on_poll(stored so far)` about once a second, for a progress line.
    """
    deadline = time.monotonic() + timeout
    reported = 0.0
    while time.monotonic() < deadline:
        seen = time.monotonic()
        stored = entries(handle) - base
        if stored >= expected:
            break
        if seen - reported >= 1.0:
            on_poll(stored)
            reported = seen
        time.sleep(0.02)
    have = 0
    while time.monotonic() < deadline:
        have = stored_count(handle, request_id)
        if have >= expected:
            return seen
        time.sleep(0.05)
        seen = time.monotonic()
    raise RuntimeError(
        f"only {have} of {expected} lines ({request_id}) stored after {timeout:.0f}s\n{handle.output(20)}"
    )


def wait_pods_ready(handle: StackHandle, timeout: float = 60.0) -> None:
    def ready() -> bool:
        return requests.get(handle.controller_url + "/ready", timeout=2).status_code == 200

    handle.wait_for(ready, timeout, "every pod Ready")


def process_pid(handle: StackHandle, program: str) -> int:
    pid = handle.pid(program)
    if not pid:
        raise RuntimeError(f"{program} is not running\n{handle.output(20)}")
    return pid
