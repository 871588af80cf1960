"""Where the app's pid comes from, asked again on every scrape (the app restarts under us).

A pid source is any callable returning the pid or None when the app is not running or its pid is
unknown: supervisord's XML-RPC (`getProcessInfo(program)["pid"]`, 0 meaning not running) or a
pidfile. Failures are logged once per change, not once per scrape.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import psutil

from podvisor.core.supervisor import SupervisorRPC

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


class SupervisorPidSource:
    """The pid supervisord reports for `program`, or None when not running or unreachable.

    The client's timeout bounds each question, so a busy supervisord costs a scrape at most that
    long and leaves the process series absent for it."""

    def __init__(self, program: str, rpc: SupervisorRPC) -> None:
        self.program = program
        self._rpc = rpc
        self._log = _LogOnChange(f"app pid via supervisord program {program!r}")

    def __call__(self) -> int | None:
        try:
            pid = int(self._rpc.info(self.program)["pid"])
        except Exception as exc:  # xmlrpc Fault, socket errors, a malformed answer: all mean "unknown"
            self._log.failed(f"{type(exc).__name__}: {exc}")
            return None
        self._log.ok()
        return pid or None


class SupervisorRunningSource:
    """{program: pid} of those of `programs` supervisord reports RUNNING, from one getAllProcessInfo;
    None when supervisord does not answer. A replica STARTING or STOPPING is left out: its port,
    held by podvisor, may queue a scrape that nobody accepts until the scrape's deadline."""

    def __init__(self, programs: tuple[str, ...], rpc: SupervisorRPC) -> None:
        self.programs = frozenset(programs)
        self._rpc = rpc
        self._log = _LogOnChange(f"replica pids via supervisord programs {', '.join(sorted(programs))}")

    def __call__(self) -> dict[str, int] | None:
        try:
            infos = self._rpc.all_info()
            running = {name: int(info["pid"]) for name, info in infos.items()
                       if name in self.programs and info.get("statename") == "RUNNING" and int(info["pid"]) > 0}
        except Exception as exc:  # xmlrpc Fault, socket errors, a malformed answer: all mean "unknown"
            self._log.failed(f"{type(exc).__name__}: {exc}")
            return None
        self._log.ok()
        return running


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
