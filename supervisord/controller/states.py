"""Pod and container states, the reasons a container ends, and the legal moves between states.

This module depends on nothing. A container (an app, a sidecar, the aggregator) is always in one
`State`; it changes state only through `move()`, which refuses a move the table does not list, as
supervisor's own `_assertInState` does. A pod's phase and its kubectl-style status are not stored:
`pod_phase()` and `pod_status()` compute them from the pod's containers.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    """Where one container is in its lifecycle."""

    WAITING = "Waiting"  # not started in this run of the pod; starts when its turn comes
    STARTING = "Starting"  # its process runs; its startup check has not passed yet
    RUNNING = "Running"  # its process runs and has started (startup probe or /health passed)
    BACKOFF = "BackOff"  # it ended; it is started again at its next start time
    STOPPING = "Stopping"  # it has been told to stop
    STOPPED = "Stopped"  # stopped by podvisor: the pod was stopped, or drained after its app ended
    EXITED = "Exited"  # ended for good under the pod's restart policy (the app only)
    HELD = "Held"  # stopped outside podvisor (supervisorctl stop): left stopped until the pod starts


S = State
# The legal moves. Each line: from -> the states it may go to, and why.
TRANSITIONS: dict[State, frozenset[State]] = {
    # launched; its spawn was refused (retried, or the pod ends); pod stopped before it started;
    # restored as stopped by an operator or ended, after a controller restart
    S.WAITING: frozenset({S.STARTING, S.BACKOFF, S.EXITED, S.STOPPED, S.HELD}),
    # started; ended and restarts; ended for good; told to stop; stopped from outside; a new pid
    # (started again behind our back, e.g. by an operator)
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.EXITED, S.STOPPING, S.HELD, S.STARTING}),
    S.RUNNING: frozenset({S.BACKOFF, S.EXITED, S.STOPPING, S.HELD, S.STARTING}),
    # relaunched; its spawn refused again; given up; pod stopped meanwhile; an operator started it
    S.BACKOFF: frozenset({S.STARTING, S.BACKOFF, S.EXITED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    # the pod is started again
    S.STOPPED: frozenset({S.WAITING}),
    # the pod is started again; the pod is stopped after it ended
    S.EXITED: frozenset({S.WAITING, S.STOPPED}),
    # an operator started it again (adopted); the pod is started again; the pod is stopped
    S.HELD: frozenset({S.STARTING, S.WAITING, S.STOPPED}),
}
ALIVE = frozenset({S.STARTING, S.RUNNING, S.STOPPING})  # a process of ours runs
DOWN = frozenset({S.STOPPED, S.EXITED, S.HELD})  # stays down until the pod is (re)started


def combined(states: Iterable[State]) -> State:
    """The state the pod's replicas show together: running if any runs, then the most hopeful of
    the rest; ended (EXITED) only when every one has."""
    states = tuple(states)
    for candidate in (S.RUNNING, S.STARTING, S.STOPPING, S.BACKOFF, S.WAITING):
        if candidate in states:
            return candidate
    if states and all(s is S.EXITED for s in states):
        return S.EXITED
    return S.HELD if S.HELD in states else S.STOPPED


class IllegalTransition(RuntimeError):
    """A move the table does not allow: a bug in the caller, never an operator's mistake."""


def move(current: State, target: State, what: str) -> State:
    """Check `current -> target` against the table; returns `target` or raises IllegalTransition."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(f"{what}: {current.value} -> {target.value} is not a legal move")
    return target


class Reason(StrEnum):
    """Why a container last ended, in kubectl's words."""

    COMPLETED = "Completed"  # exit 0
    ERROR = "Error"  # non-zero exit or killed by a signal
    OOM_KILLED = "OOMKilled"  # over the pod's memory_limit
    START_ERROR = "StartError"  # supervisord could not spawn it
    STARTUP_PROBE = "Startup probe failed"
    LIVENESS_PROBE = "Liveness probe failed"
    STOPPED_OUTSIDE = "Stopped outside podvisor"


@dataclass(frozen=True)
class Termination:
    """One end of a container: the reason, the detail, the exit code when there was one."""

    reason: Reason
    detail: str = ""
    exit_code: int | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not Reason.COMPLETED

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}" if self.detail else self.reason.value

    @classmethod
    def parse(cls, text: str | None) -> Termination | None:
        """The inverse of str(), for a restored state file."""
        if not text:
            return None
        for reason in Reason:
            if text == reason.value or text.startswith(reason.value + ": "):
                return cls(reason, text[len(reason.value) + 2:])
        return cls(Reason.ERROR, text)


class Phase(StrEnum):
    """A pod's phase: Kubernetes' five plus Stopped (podctl stop) and Terminating."""

    PENDING = "Pending"
    RUNNING = "Running"
    TERMINATING = "Terminating"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    UNKNOWN = "Unknown"


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.STOPPED})
# Stopped on purpose or completed: such a pod is not expected to serve (no alert, not waited for).
QUIET = (Phase.STOPPED, Phase.SUCCEEDED)


def pod_phase(app: State, app_end: Termination | None, ran: bool, sidecars: Iterable[State],
              frozen: bool) -> Phase:
    """The phase of a pod from its containers. `ran`: the app has run in this run of the pod;
    `frozen`: supervisord is shutting down and stops everything itself."""
    sidecars = tuple(sidecars)
    settled = all(s not in ALIVE for s in sidecars)
    if app is S.EXITED:
        if not settled:
            return Phase.TERMINATING
        return Phase.FAILED if app_end is not None and app_end.failed else Phase.SUCCEEDED
    if app is S.STOPPED:
        return Phase.STOPPED if settled else Phase.TERMINATING
    if app is S.HELD:
        return Phase.STOPPED
    if frozen or app is S.STOPPING:
        return Phase.TERMINATING
    if app in (S.STARTING, S.RUNNING) or (app is S.BACKOFF and ran):
        return Phase.RUNNING
    return Phase.PENDING


def pod_status(phase: Phase, app: State, app_end: Termination | None, gave_up: bool,
               sidecars: Iterable[State]) -> str:
    """kubectl's STATUS column for the pod."""
    if phase is Phase.SUCCEEDED:
        return "Completed"
    if phase is Phase.FAILED:
        if gave_up:
            return "BackoffLimitExceeded"
        return terminated_status(app_end)
    if phase in (Phase.STOPPED, Phase.TERMINATING):
        return phase.value
    if app in (S.STARTING, S.RUNNING):
        return "Running"
    if app is S.BACKOFF:
        # An OOM kill stays the visible status until the restart (kubectl shows OOMKilled too).
        return "OOMKilled" if app_end is not None and app_end.reason is Reason.OOM_KILLED else "CrashLoopBackOff"
    return "Init:CrashLoopBackOff" if any(s is S.BACKOFF for s in sidecars) else "PodInitializing"


def terminated_status(end: Termination | None) -> str:
    """kubectl's STATUS for a container that terminated: OOMKilled, StartError, Error or Completed."""
    if end is None:
        return "Error"
    if end.reason in (Reason.OOM_KILLED, Reason.START_ERROR, Reason.COMPLETED):
        return end.reason.value
    return "Error"
