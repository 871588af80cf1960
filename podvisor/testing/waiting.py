"""Polling with a deadline: the one `wait_for` of podvisor's tests and of the pytest plugin.

Tests never sleep to synchronise: they poll a predicate until it holds or a deadline passes. When
waiting has become pointless (supervisord or a server under test has died) the wait fails at once
with that process's output instead of running out its timeout.
"""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class Fatal(AssertionError):
    """Raised by a predicate or a `check` when waiting longer cannot help: never retried."""


def wait_for(predicate: Callable[[], T], timeout: float, what: str, *, output: Callable[[], str] = lambda: "",
             procs: Iterable[subprocess.Popen] = (), check: Callable[[], Any] | None = None,
             interval: float = 0.05) -> T:
    """Poll `predicate()` until it returns something truthy, and return that.

    Exceptions from the predicate are retried (the last is reported), except `Fatal`. Fails at once
    when one of `procs` has exited or `check()` raises; on timeout, fails with `what`, the last
    error and `output()` (the logs of the processes under test)."""
    procs = list(procs)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        if check is not None:
            check()
        try:
            value = predicate()
            if value:
                return value
        except Fatal:
            raise
        except Exception as exc:  # noqa: BLE001 - retried; the last one is reported
            last = exc
        died = [p for p in procs if p.poll() is not None]
        if died:
            names = ", ".join(f"{' '.join(map(str, p.args))[:80]!r} (exit {p.returncode})" for p in died)
            raise Fatal(f"{names} exited while waiting for {what} (last error: {last!r})\n{output()}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})\n{output()}")
        time.sleep(interval)
