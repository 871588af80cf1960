"""The I/O half of running containers: ask supervisord, run probes, start and kill processes.

`Containers` (container.py) decide; a `Reconciler` does what they decided, outside the lock that
guards them, and hands the outcome back under it. The pod runner and the aggregator's runner are
both Reconcilers, so an app, a sidecar and the aggregator are started, probed and restarted by the
same code.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from podvisor.core.procs import kill_tree
from podvisor.core.supervisor import ALIVE as SUPERVISOR_ALIVE
from podvisor.core.supervisor import Supervisor
from podvisor.supervisord.controller import probes
from podvisor.supervisord.controller.container import Container
from podvisor.supervisord.controller.states import State, Termination
from podvisor.supervisord.spec.model import Probe

log = logging.getLogger(__name__)


class Reconciler:
    """Base of the runners: supervisord, a clock, a prober and the lock over their containers."""

    def __init__(self, host: str, sup: Supervisor, *, clock: Callable[[], float] = time.monotonic,
                 prober: Callable[..., probes.Result] = probes.run,
                 killer: Callable[[int], None] = kill_tree) -> None:
        self.host, self.sup, self.clock, self.prober, self.killer = host, sup, clock, prober, killer
        self.lock = threading.Lock()  # guards every container's state

    def observe(self, containers: Iterable[Container], infos: dict[str, dict[str, Any]],
                now: float) -> dict[str, Termination]:
        """Tell each container what supervisord sees; returns those that just ended, by program."""
        ended = {}
        with self.lock:
            for container in containers:
                info = infos.get(container.program)
                if info is None:  # removed from supervisord (supervisorctl update): nothing to see
                    continue
                end = container.observe(info, now)
                if end is not None:
                    ended[container.program] = end
        return ended

    def start(self, due: list[Container]) -> None:
        """Spawn each container (without waiting) and record how it went."""
        for container in due:
            error: Exception | None = None
            try:
                self.sup.start(container.program, False)
            except Exception as exc:  # a refused spawn is a failed start: counted, backed off, reported
                error = exc
            info = None if error else self.sup.all_info().get(container.program)
            with self.lock:
                container.launched(info, error, self.clock())
            if error is None:
                log.info("%s running with pid %s", container.program, container.pid)

    def probe(self, containers: list[Container], now: float) -> None:
        """Run every due probe of these containers at once; kill what failed startup or liveness."""
        with self.lock:
            due = [(c, kind, state) for c in containers for kind, state in c.due_probes(now)]
        if not due:
            return
        results = self.run_probes([(state.probe, c.probes.port) for c, _, state in due])
        kills = []
        with self.lock:
            for container in containers:
                mine = [(kind, state, result) for (c, kind, state), result in zip(due, results, strict=True)
                        if c is container]
                if mine and (reason := container.record_probes(mine, now)) is not None:
                    kills.append((container, reason))
        for container, reason in kills:
            self.kill(container, reason)

    def run_probes(self, due: list[tuple[Probe, int | None]]) -> list[probes.Result]:
        """Probes that are due together run concurrently, so a hung readiness probe cannot delay liveness."""
        results: list[probes.Result | None] = [None] * len(due)

        def run(i: int) -> None:
            probe, port = due[i]
            try:
                results[i] = self.prober(probe, self.host, port)
            except Exception as exc:  # a probe that raises has failed, with the reason
                results[i] = probes.Result(False, f"probe error: {type(exc).__name__}: {exc}")

        others = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, len(due))]
        for t in others:
            t.start()
        run(0)
        for t in others:
            t.join()
        return [r or probes.Result(False, "probe gave no result") for r in results]

    def replaced(self, program: str) -> None:
        """supervisord created `program` anew (`supervisorctl update`, apply): a container that ran,
        stopped or was held starts as new. One that never started (supervisord's own start-up, where
        every program is added) is left alone, and so is a process already running again."""
        info = self.sup.all_info().get(program, {})
        if info.get("statename") in SUPERVISOR_ALIVE:
            return
        with self.lock:
            for container in self.containers:
                if container.program == program and container.state is not State.WAITING:
                    container.replaced()

    @property
    def containers(self) -> list[Container]:
        return []

    def kill(self, container: Container, reason: Termination) -> None:
        log.warning("killing %s pid %s: %s", container.program, container.pid, reason)
        if container.pid:
            self.killer(container.pid)

    def next_wait(self, containers: Iterable[Container], now: float, longest: float = 0.5) -> float:
        """How long the runner may sleep: until the next probe or restart is due, at most `longest`."""
        with self.lock:
            wakes = [t - now for c in containers if (t := c.next_wake(now)) is not None]
        return max(0.02, min([longest, *wakes]))


class SoloRunner(Reconciler):
    """One container kept running on its own: the aggregator (restartPolicy Always)."""

    def __init__(self, container: Container, host: str, sup: Supervisor, **kwargs: Any) -> None:
        super().__init__(host, sup, **kwargs)
        self.container = container

    @property
    def containers(self) -> list[Container]:
        return [self.container]

    def tick(self) -> float:
        now = self.clock()
        self.observe([self.container], self.sup.all_info(), now)
        self.probe([self.container], now)
        with self.lock:
            due = [self.container] if self.container.start_due(now) else []
        self.start(due)
        return self.next_wait([self.container], now)
