"""One container's lifecycle, the same for an app, a sidecar and the aggregator.

A `Container` is pure bookkeeping: it is told what supervisord sees (`observe`), what its probes
answered (`record_probes`) and how a start went (`launched`), and it moves through the states of
`states.py` accordingly. It does no I/O itself: the pod runner asks it what to do (`start_due`,
`due_probes`) and does that outside its lock. Restarts back off (CrashLoopBackOff) under the
container's restart policy; sidecars and the aggregator always restart.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podvisor.core.supervisor import ALIVE as SUPERVISOR_ALIVE
from podvisor.supervisord.controller.backoff import BackoffTracker
from podvisor.supervisord.controller.probes import ProbeState, Result
from podvisor.supervisord.controller.states import DOWN, Reason, State, Termination, move
from podvisor.supervisord.spec.model import Backoff, Probe

log = logging.getLogger(__name__)
S = State


def termination_of(info: dict[str, Any]) -> Termination:
    """Why a program that was running is not any more, from supervisord's process info."""
    code = info.get("exitstatus", 0)
    if info["statename"] == "FATAL":
        return Termination(Reason.START_ERROR, info.get("spawnerr") or "spawn error")
    if code == -1:  # supervisord's exit status for a process killed by a signal
        return Termination(Reason.ERROR, "killed by a signal", code)
    if code == 0:
        return Termination(Reason.COMPLETED, "", 0)
    return Termination(Reason.ERROR, f"exit code {code}", code)


@dataclass(frozen=True)
class Probes:
    """A container's checks. The startup check gates RUNNING (a sidecar's is its /health)."""

    startup: Probe | None = None
    readiness: Probe | None = None
    liveness: Probe | None = None
    port: int | None = None  # where they knock, unless a probe names its own port


@dataclass(frozen=True)
class Policy:
    """When an ended container is started again: `always`, `on-failure` or `never`; at most
    `max_restarts` times (None: no limit)."""

    restart: str = "always"
    max_restarts: int | None = None


class Container:
    """The state of one supervisord program as podvisor runs it."""

    def __init__(self, program: str, backoff: Backoff, probes: Probes = Probes(), policy: Policy = Policy(),
                 memory_limit: int | None = None, rng: Callable[[], float] | None = None, command: str = "",
                 port: int | None = None) -> None:
        self.program = program
        self.command = command  # for describe: what supervisord runs
        self.port = port or probes.port  # where it serves (its probes may use a port of its own)
        self.probes = probes
        self.policy = policy
        self.memory_limit = memory_limit
        self.backoff = BackoffTracker(backoff, rng) if rng else BackoffTracker(backoff)
        self.reset()

    def reset(self) -> None:
        """A new run of the pod: everything counted from zero."""
        self.state = S.WAITING
        self.pid = 0
        self.restarts = 0
        self.runs = 0  # processes launched or adopted in this run of the pod
        self.next_start = 0.0
        self.delay: float | None = None  # the backoff chosen for the latest restart
        self.last: Termination | None = None
        self.kill_reason: Termination | None = None  # set when podvisor kills it (probe, OOM)
        self.checks: dict[str, ProbeState] = {}
        self.backoff.reset()
        self.events: list[tuple[str, str, str]] = []  # (type, reason, message), taken by the runner

    def to(self, target: State) -> None:
        self.state = move(self.state, target, self.program)

    def _event(self, kind: str, reason: str, message: str = "") -> None:
        self.events.append((kind, reason, message))

    def take_events(self) -> list[tuple[str, str, str]]:
        taken, self.events = self.events, []
        return taken

    # -- what it is ----------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.state in (S.STARTING, S.RUNNING, S.STOPPING)

    @property
    def started(self) -> bool:
        return self.state is S.RUNNING

    @property
    def ready(self) -> bool:
        readiness = self.checks.get("readiness")
        return self.started and (readiness is None or readiness.passing)

    @property
    def gave_up(self) -> bool:
        """Ended for good although its policy would restart it: max_restarts used up."""
        return (self.state is S.EXITED and self.last is not None and self._wants_restart(self.last)
                and not self._may_restart())

    def waiting_for(self, now: float) -> float | None:
        """Seconds until its pending restart, or None."""
        return max(0.0, self.next_start - now) if self.state is S.BACKOFF else None

    # -- what supervisord says -----------------------------------------------------------------------
    def observe(self, info: dict[str, Any], now: float) -> Termination | None:
        """Take in supervisord's view of the program; returns the termination when it has just ended."""
        if info["statename"] in SUPERVISOR_ALIVE:
            if self.state in (S.WAITING, S.BACKOFF, S.HELD) or (self.alive and info["pid"] != self.pid):
                self._adopt(info["pid"], now)  # # WAITING/BACKOFF/HELD -> STARTING: ours or an operator's
            return None
        if not self.alive:
            return None
        if self.state is S.STOPPING:
            self.to(S.STOPPED)  # STOPPING -> STOPPED
            self._event("Normal", "Stopped")
            self.pid = 0
            return None
        self.pid = 0
        self.checks = {}
        if info["statename"] == "STOPPED" and self.kill_reason is None:
            log.warning("%s was stopped from outside podvisor; leaving it stopped", self.program)
            self.last = Termination(Reason.STOPPED_OUTSIDE)
            self.to(S.HELD)  # STARTING/RUNNING -> HELD
            self._event("Normal", "Stopped", "stopped outside podvisor: left stopped")
            return self.last
        end = self.kill_reason or termination_of(info)
        self.kill_reason = None
        self._ended(end, now)
        return end

    def _adopt(self, pid: int, now: float) -> None:
        self.to(S.STARTING)
        self.pid = pid
        self.runs += 1
        if pid:
            self._event("Normal", "Started" if self.runs == 1 else "Restarted", f"pid {pid}")
        self.kill_reason = None
        self.backoff.started(now)
        self.checks = {kind: ProbeState(probe, now) for kind in ("startup", "readiness", "liveness")
                       if (probe := getattr(self.probes, kind)) is not None}
        if "startup" not in self.checks:
            self.to(S.RUNNING)  # STARTING -> RUNNING: nothing to wait for

    def _ended(self, end: Termination, now: float) -> None:
        """The process ended (or could not be spawned): restart it with backoff, or end for good."""
        self.last = end
        if self._wants_restart(end) and self._may_restart():
            self.delay = self.backoff.crashed(now)
            self.restarts += 1
            self.next_start = now + self.delay
            self.to(S.BACKOFF)  # STARTING/RUNNING/WAITING/BACKOFF -> BACKOFF
            log.warning("%s ended (%s); restart %d in %.2fs", self.program, end, self.restarts, self.delay)
            self._event("Warning", "BackOff", f"{end}; restart {self.restarts} in {self.delay:.1f}s")
        else:
            self.to(S.EXITED)  # -> EXITED: the pod ends
            log.info("%s ended (%s) for good", self.program, end)
            self._event("Warning" if end.failed else "Normal", "Failed" if end.failed else "Completed", str(end))

    def _wants_restart(self, end: Termination) -> bool:
        return self.policy.restart == "always" or (self.policy.restart == "on-failure" and end.failed)

    def _may_restart(self) -> bool:
        return self.policy.max_restarts is None or self.restarts < self.policy.max_restarts

    # -- starting ------------------------------------------------------------------------------------
    def start_due(self, now: float) -> bool:
        return self.state is S.WAITING or (self.state is S.BACKOFF and now >= self.next_start)

    def launched(self, info: dict[str, Any] | None, error: Exception | None, now: float) -> None:
        """How a start went: `error` when supervisord refused the spawn (counted and backed off like a
        crash), else supervisord's info right after it (the process may already be gone)."""
        if error is not None:
            log.error("cannot start %s: %s", self.program, error)
            self._ended(Termination(Reason.START_ERROR, str(error)), now)
            return
        if info is not None and info["statename"] in SUPERVISOR_ALIVE:
            self._adopt(info["pid"], now)
        elif info is not None:
            self._adopt(0, now)  # it ran and is already gone: the next observe() sees it end

    # -- probes and limits ---------------------------------------------------------------------------
    def active_checks(self) -> list[tuple[str, ProbeState]]:
        """The startup probe alone until it passes, then liveness and readiness (Kubernetes' order)."""
        if not self.alive or self.state is S.STOPPING:
            return []
        startup = self.checks.get("startup")
        kinds = ("startup",) if startup is not None and not startup.passing else ("liveness", "readiness")
        return [(kind, state) for kind in kinds if (state := self.checks.get(kind)) is not None]

    def due_probes(self, now: float) -> list[tuple[str, ProbeState]]:
        return [(kind, state) for kind, state in self.active_checks() if state.due(now)]

    def record_probes(self, results: list[tuple[str, ProbeState, Result]], now: float) -> Termination | None:
        """Record what the probes answered; returns why to kill the process, if it must be killed."""
        for kind, state, result in results:
            # Periods run start to start, like the kubelet's: a slow probe does not stretch them.
            state.record(result, now)
            if not result.ok and (kind != "startup" or state.failures > 1):  # a startup probe may fail once
                self._event("Warning", "ProbeFailed", f"{kind} probe: {result.message}")
            if kind == "startup" and state.passing and self.state is S.STARTING:
                self.to(S.RUNNING)  # STARTING -> RUNNING
            if kind in ("startup", "liveness") and state.failed and self.kill_reason is None:
                reason = Reason.STARTUP_PROBE if kind == "startup" else Reason.LIVENESS_PROBE
                self.kill_reason = Termination(reason, result.message)
                self._event("Warning", "Killed", str(self.kill_reason))
                return self.kill_reason
        return None

    def check_memory(self, rss: int) -> Termination | None:
        if self.memory_limit and self.kill_reason is None and rss > self.memory_limit:
            log.warning("%s uses %d bytes, over its limit of %d", self.program, rss, self.memory_limit)
            self.kill_reason = Termination(Reason.OOM_KILLED)
            self._event("Warning", "OOMKilled", f"{rss} bytes resident, over the limit of {self.memory_limit}")
            return self.kill_reason
        return None

    def next_wake(self, now: float) -> float | None:
        """When this container next needs a look (a probe or a restart), or None."""
        times = [state.next_at for _, state in self.active_checks()]
        if self.state is S.BACKOFF:
            times.append(self.next_start)
        return min(times) if times else None

    # -- stopping ------------------------------------------------------------------------------------
    def stop(self) -> bool:
        """Podvisor stops it; True when a process must be signalled."""
        if self.alive:
            if self.state is not S.STOPPING:
                self.to(S.STOPPING)  # STARTING/RUNNING -> STOPPING
            return True
        if self.state in (S.WAITING, S.BACKOFF, S.HELD, S.EXITED):
            self.to(S.STOPPED)  # not running: stopped at once
        return False

    def gone(self) -> None:
        """Its process has exited after stop()."""
        if self.state is S.STOPPING:
            self.to(S.STOPPED)  # STOPPING -> STOPPED
            self._event("Normal", "Stopped")
        self.pid = 0
        self.checks = {}

    def restart_run(self) -> None:
        """The pod starts again: back to WAITING with fresh counts."""
        if self.state is not S.WAITING:
            self.to(S.WAITING)
        self.reset()

    def replaced(self) -> None:
        """supervisord removed the program and added it anew (`supervisorctl update` of a changed
        conf): whatever ran is gone and the new program has never run, so it starts as new."""
        if self.alive and self.state is not S.STOPPING:
            self.to(S.STOPPING)  # STARTING/RUNNING -> STOPPING
        if self.state in (S.STOPPING, S.WAITING, S.BACKOFF):
            self.to(S.STOPPED)  # -> STOPPED: its process went with the old program
        self.restart_run()  # STOPPED/EXITED/HELD -> WAITING

    def restore(self, state: State, last: Termination | None, restarts: int) -> None:
        """After a controller restart under the same supervisord: back to what was saved, through
        the same moves (only states that outlast a process are saved)."""
        self.restarts = restarts
        self.last = last
        if state in DOWN:
            self.to(state)  # WAITING -> STOPPED/EXITED/HELD

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "program": self.program, "state": self.state.value, "ready": self.ready, "pid": self.pid or None,
            "port": self.port, "command": self.command,
            **({"own_port": self.probes.port} if self.probes.port != self.port else {}),
            "restarts": self.restarts, "last_reason": str(self.last) if self.last else None,
            "last_exit_code": self.last.exit_code if self.last else None,
            "restart_delay_seconds": self.delay, "restart_in_seconds": self.waiting_for(now),
            "probes": {k: {"passing": s.passing, "last": s.last.message if s.last else None}
                       for k, s in self.checks.items()},
        }
