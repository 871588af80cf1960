"""Watching the app's state in supervisord, so the logger outlives the app's last line on shutdown."""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from podvisor.core.procs import leftovers
from podvisor.core.supervisor import ALIVE, SupervisorRPC

log = logging.getLogger(__name__)

UNREACHABLE_LIMIT = 3  # consecutive failed RPCs after which supervisord (and so the app) is taken as gone


def rpc_state(rpc: SupervisorRPC, program: str) -> Callable[[], str]:
    """A function returning the program's supervisord state name; for several (an app's replicas,
    comma-separated) an alive one's, else the last one's: the app writes while any replica runs."""
    programs = [p for p in program.split(",") if p]

    def state() -> str:
        name = "UNKNOWN"
        for each in programs:
            name = str(rpc.info(each).get("statename", "UNKNOWN"))
            if name in ALIVE:
                return name
        return name

    return state


class AppWatcher:
    """Polls the app's state on its own thread (an RPC may block); running() never blocks."""

    def __init__(self, program: str, state: Callable[[], str], interval: float = 0.25,
                 serverurl: str = "") -> None:
        self._program = program
        self._serverurl = serverurl  # finds the app's processes while supervisord refuses XML-RPC
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
                name = _classify(exc, failures, self._program, self._serverurl)
                if "SHUTDOWN_STATE" not in str(getattr(exc, "faultString", "")):
                    log.warning("asking supervisord for %s failed (%s)", self._program, exc)
            if name not in ALIVE and name != "?":
                log.info("app %s is %s: draining the last lines", self._program, name)
                self._stopped.set()
                return
            self._quit.wait(self._interval)


def _classify(exc: Any, failures: int, program: str = "", serverurl: str = "") -> str:
    fault = str(getattr(exc, "faultString", ""))
    if "BAD_NAME" in fault:
        return "UNKNOWN"
    if "SHUTDOWN_STATE" in fault:
        # supervisord answers nothing while it shuts down: look at the processes themselves.
        alive = any(leftovers(serverurl, each) for each in program.split(",") if each)
        return "RUNNING" if alive else "STOPPED"
    return "UNKNOWN" if failures >= UNREACHABLE_LIMIT else "?"
