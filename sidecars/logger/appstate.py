"""Watching the app's state in supervisord, so the logger outlives the app's last line on shutdown."""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from supervisord.controller.procs import leftovers

log = logging.getLogger(__name__)

# supervisord states in which the app may still write lines.
ALIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})
UNREACHABLE_LIMIT = 3  # consecutive failed RPCs after which supervisord (and so the app) is taken as gone


def rpc_state(env: Mapping[str, str], program: str) -> Callable[[], str]:
    """A function returning the program's supervisord state name, over SUPERVISOR_SERVER_URL."""
    from supervisor import childutils

    def state() -> str:
        info = childutils.getRPCInterface(dict(env)).supervisor.getProcessInfo(program)
        return str(info.get("statename", "UNKNOWN"))

    return state


class AppWatcher:
    """Polls the app's state on its own thread (an RPC may block); running() never blocks."""

    def __init__(self, program: str, state: Callable[[], str], interval: float = 0.25) -> None:
        self._program = program
        self._state = state
        self._interval = interval
        self._stopped = threading.Event()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, name="logger-appwatch", daemon=True)

    def start(self) -> AppWatcher:
        self._thread.start()
        return self

    def running(self) -> bool:
        return not self._stopped.is_set()

    def close(self) -> None:
        self._quit.set()

    def _run(self) -> None:
        failures = 0
        while not self._quit.is_set():
            try:
                name = self._state()
                failures = 0
            except Exception as exc:  # xmlrpc Fault (BAD_NAME), socket errors, ...
                failures += 1
                name = _classify(exc, failures, self._program)
                if "SHUTDOWN_STATE" not in str(getattr(exc, "faultString", "")):
                    log.warning("asking supervisord for %s failed (%s)", self._program, exc)
            if name not in ALIVE_STATES and name != "?":
                log.info("app %s is %s: draining the last lines", self._program, name)
                self._stopped.set()
                return
            self._quit.wait(self._interval)


def _classify(exc: Any, failures: int, program: str = "") -> str:
    fault = str(getattr(exc, "faultString", ""))
    if "BAD_NAME" in fault:
        return "UNKNOWN"
    if "SHUTDOWN_STATE" in fault:
        # supervisord answers nothing while it shuts down: look at the processes themselves.
        return "RUNNING" if program_alive(program) else "STOPPED"
    return "UNKNOWN" if failures >= UNREACHABLE_LIMIT else "?"


def program_alive(program: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether a live process was started as `program` by our supervisord (found as the pod
    controller finds what an app left behind: by the SUPERVISOR_* variables children inherit)."""
    server = (env if env is not None else os.environ).get("SUPERVISOR_SERVER_URL", "")
    return bool(leftovers(server, program))
