"""supervisord's own shutdown, made parallel across pods and prompt.

supervisord stops programs one priority group at a time, and every program is its own group: it
signals one program, then waits in a poll loop with a 1 s timeout before it looks at the next. With
eleven programs that is 8-10 s even though every process exits in a fraction of a second, and the
pods stop one after another instead of together.

While supervisord is STOPPING this driver keeps the same order per pod, but for all pods at once:
every app gets its stop signal (SIGTERM, or the pod's stop_signal: nginx stops gracefully on
SIGQUIT), to its process group as stopasgroup does, together; every sidecar gets
SIGTERM once all apps have exited (so each logger still ships its app's last lines); the aggregator
once the loggers have exited. supervisord still signals each program in its turn, finds it already
gone, and keeps its grace deadlines and SIGKILLs as the backstop. XML-RPC is refused during shutdown,
so processes are found as procs.leftovers finds them; and because any request on supervisord's
socket wakes its poll loop, the driver pings it every `nudge` seconds so it walks through the
already-stopped programs without waiting a second for each.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

import psutil

from podvisor.core.procs import leftovers
from podvisor.supervisord.spec.model import Stack

log = logging.getLogger(__name__)


class ShutdownDriver:
    def __init__(self, stack: Stack, serverurl: str, ping: Callable[[], object], nudge: float = 0.05):
        self.stack, self.serverurl, self.ping, self.nudge = stack, serverurl, ping, nudge
        self.started = threading.Event()

    def start(self) -> None:
        """Idempotent; runs on daemon threads until the controller itself is stopped (last)."""
        if self.started.is_set() or not self.serverurl:
            return
        self.started.set()
        threading.Thread(target=self._run, name="shutdown", daemon=True).start()
        threading.Thread(target=self._nudge, name="shutdown-nudge", daemon=True).start()

    def _nudge(self) -> None:
        while True:
            try:
                self.ping()
            except Exception:  # noqa: BLE001 - refused (SHUTDOWN_STATE) is the expected answer
                pass
            time.sleep(self.nudge)

    def _run(self) -> None:
        began = time.monotonic()
        pods, budget = self.stack.pods, self.stack.budget
        apps = {program: getattr(signal, f"SIG{p.stop_signal}") for p in pods for program in p.app_programs}
        sidecars = [p.programs[role] for p in pods for role in ("logger", "metrics")]
        self._stop(apps, group=True, within=max(p.budget.app_stop_seconds for p in pods))
        self._stop(sidecars, group=False, within=max(p.budget.pod_stop_seconds for p in pods))
        self._stop(["aggregator"], group=False, within=budget.aggregator_stopwaitsecs)
        log.info("shutdown: every pod and the aggregator stopped in %.2fs", time.monotonic() - began)

    def _stop(self, programs: Iterable[str] | dict[str, int], group: bool, within: float) -> None:
        """Signal every live top process of `programs` at once (SIGTERM, or the app's own stop
        signal); wait until none is left or `within`."""
        signals = programs if isinstance(programs, dict) else dict.fromkeys(programs, signal.SIGTERM)
        procs = [(p, signals[name]) for name in signals for p in self._tops(name)]
        for proc, signum in procs:
            try:
                os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
            except (OSError, psutil.Error):
                pass
        procs = [proc for proc, _ in procs]
        _, alive = psutil.wait_procs(procs, timeout=within)
        if alive:  # supervisord SIGKILLs them at its own stopwaitsecs; say why we moved on
            log.warning("shutdown: still running after %.0fs: %s", within,
                        ", ".join(f"{p.pid}" for p in alive))

    def _tops(self, program: str) -> list[psutil.Process]:
        """The program's own process (supervisord's child), not the descendants it started."""
        parent = os.getppid()  # the controller is supervisord's child too
        return [p for p in leftovers(self.serverurl, program) if _ppid(p) == parent]


def _ppid(proc: psutil.Process) -> int:
    try:
        return proc.ppid()
    except psutil.Error:
        return -1
