"""Where the app's pid comes from, asked again on every scrape (the app restarts under us).

A pid source is any callable returning the pid or None when the app is not running or its pid is
unknown: supervisord's XML-RPC (`getProcessInfo(program)["pid"]`, 0 meaning not running) or a
pidfile. Failures are logged once per change, not once per scrape.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import psutil
from supervisor import childutils

log = logging.getLogger(__name__)

PidSource = Callable[[], "int | None"]


class _LogOnChange:
    """Log a failure when it first appears or changes, and the recovery, not every scrape."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._last: str | None = None

    def failed(self, message: str) -> None:
        if message != self._last:
            log.warning("%s: %s", self._what, message)
        self._last = message

    def ok(self) -> None:
        if self._last is not None:
            log.info("%s: resolved again", self._what)
        self._last = None


class _Question:
    """One XML-RPC question, asked on a daemon thread so a hung supervisord never blocks exit."""

    def __init__(self, ask: Callable[[], int]) -> None:
        self.answered = threading.Event()
        self.pid: int | None = None
        self.error: Exception | None = None
        threading.Thread(target=self._run, args=(ask,), name="podvisor-pid", daemon=True).start()

    def _run(self, ask: Callable[[], int]) -> None:
        try:
            self.pid = ask()
        except Exception as exc:  # xmlrpc Fault, socket errors, a malformed answer: all mean "unknown"
            self.error = exc
        finally:
            self.answered.set()


class SupervisorPidSource:
    """The pid supervisord reports for `program`, or None when not running or unreachable.

    supervisor's XML-RPC transport has no timeout, and a busy supervisord would hold a scrape
    forever. So each question is waited for `timeout` seconds at most; while one is unanswered,
    later scrapes wait on it instead of piling up new ones.
    """

    def __init__(
        self,
        program: str,
        env: Mapping[str, str],
        rpc: Callable[[], Any] | None = None,
        timeout: float = 1.0,
    ) -> None:
        self.program = program
        self.timeout = timeout
        self._env = dict(env)
        self._rpc = rpc or (lambda: childutils.getRPCInterface(self._env))
        self._log = _LogOnChange(f"app pid via supervisord program {program!r}")
        self._lock = threading.Lock()
        self._asking: _Question | None = None

    def _ask(self) -> int:
        return int(self._rpc().supervisor.getProcessInfo(self.program)["pid"])

    def __call__(self) -> int | None:
        with self._lock:
            if self._asking is None or self._asking.answered.is_set():
                self._asking = _Question(self._ask)
            question = self._asking
        if not question.answered.wait(self.timeout):
            self._log.failed(f"supervisord did not answer within {self.timeout:g}s")
            return None
        if question.error is not None:
            self._log.failed(f"{type(question.error).__name__}: {question.error}")
            return None
        self._log.ok()
        return question.pid or None


class PidfilePidSource:
    """The pid in a pidfile, if that process exists and is not younger than the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._log = _LogOnChange(f"app pid from {self.path}")

    def __call__(self) -> int | None:
        try:
            with open(self.path, encoding="ascii") as f:
                pid = int(f.read().strip())
            mtime = os.stat(self.path).st_mtime
            # A process created after the pidfile was written is a reused pid, not our app.
            if pid <= 0 or psutil.Process(pid).create_time() > mtime + 1.0:
                raise ValueError(f"pid {pid} is not the process that wrote the file")
        except (OSError, ValueError, psutil.Error) as exc:
            self._log.failed(f"{type(exc).__name__}: {exc}")
            return None
        self._log.ok()
        return pid


def no_pid() -> int | None:
    """Pid source for a sidecar configured without one: process metrics are absent."""
    return None
