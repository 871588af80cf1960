"""The pod state machine: every legal move is reachable through a container's API, no other move is
possible, and a pod's phase and status follow from its containers."""
from __future__ import annotations

import itertools

import pytest

from podvisor.supervisord.controller import container as container_module
from podvisor.supervisord.controller.container import Container, Policy, Probes
from podvisor.supervisord.controller.probes import Result
from podvisor.supervisord.controller.states import (
    TRANSITIONS,
    IllegalTransition,
    Phase,
    Reason,
    State,
    Termination,
    move,
    pod_phase,
    pod_status,
)
from podvisor.supervisord.spec.model import Backoff, Probe

S = State
ALIVE = {"statename": "RUNNING", "pid": 100}
EXITED = {"statename": "EXITED", "pid": 0, "exitstatus": 3}
STOPPED = {"statename": "STOPPED", "pid": 0, "exitstatus": 0}
STARTUP = Probe(http_get="/health", period_seconds=1, failure_threshold=2)
LEGAL = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}


def test_every_pair_the_table_lists_is_allowed_and_every_other_raises():
    for src, dst in itertools.product(State, State):
        if (src, dst) in LEGAL:
            assert move(src, dst, "c") is dst
        else:
            with pytest.raises(IllegalTransition, match=f"{src.value} -> {dst.value}"):
                move(src, dst, "c")


def make(policy: str = "always", max_restarts: int | None = None, startup: bool = True) -> Container:
    return Container("p-app", Backoff(initial_seconds=1, jitter=0), Probes(startup=STARTUP if startup else None),
                     Policy(policy, max_restarts), rng=lambda: 0.5)


def running(c: Container, now: float = 0.0) -> Container:
    c.observe(ALIVE, now)
    state = c.checks["startup"]
    c.record_probes([("startup", state, Result(True, "ok"))], now)
    return c


def scenarios() -> dict[tuple[State, State], object]:
    """One way to make each legal move happen through the Container's API."""
    return {
        (S.WAITING, S.STARTING): lambda: make().launched(ALIVE, None, 0),
        (S.WAITING, S.BACKOFF): lambda: make().launched(None, OSError("no such file"), 0),
        (S.WAITING, S.EXITED): lambda: make("never").launched(None, OSError("no such file"), 0),
        (S.WAITING, S.STOPPED): lambda: make().stop(),
        (S.WAITING, S.HELD): lambda: make().restore(S.HELD, None, 0),
        (S.STARTING, S.RUNNING): lambda: running(make()),
        (S.STARTING, S.BACKOFF): lambda: _then(make(), lambda c: c.observe(ALIVE, 0), lambda c: c.observe(EXITED, 1)),
        (S.STARTING, S.EXITED): lambda: _then(make("never"), lambda c: c.observe(ALIVE, 0),
                                              lambda c: c.observe(EXITED, 1)),
        (S.STARTING, S.STOPPING): lambda: _then(make(), lambda c: c.observe(ALIVE, 0), lambda c: c.stop()),
        (S.STARTING, S.HELD): lambda: _then(make(), lambda c: c.observe(ALIVE, 0), lambda c: c.observe(STOPPED, 1)),
        (S.STARTING, S.STARTING): lambda: _then(make(), lambda c: c.observe(ALIVE, 0),
                                                lambda c: c.observe({**ALIVE, "pid": 101}, 1)),
        (S.RUNNING, S.BACKOFF): lambda: running(make()).observe(EXITED, 1),
        (S.RUNNING, S.EXITED): lambda: running(make("on-failure", max_restarts=0)).observe(EXITED, 1),
        (S.RUNNING, S.STOPPING): lambda: running(make()).stop(),
        (S.RUNNING, S.HELD): lambda: running(make()).observe(STOPPED, 1),
        (S.RUNNING, S.STARTING): lambda: running(make()).observe({**ALIVE, "pid": 101}, 1),
        (S.BACKOFF, S.STARTING): lambda: _then(running(make()), lambda c: c.observe(EXITED, 1),
                                               lambda c: c.launched(ALIVE, None, 5)),
        (S.BACKOFF, S.BACKOFF): lambda: _then(running(make()), lambda c: c.observe(EXITED, 1),
                                              lambda c: c.launched(None, OSError("gone"), 5)),
        (S.BACKOFF, S.EXITED): lambda: _then(running(make(max_restarts=1)), lambda c: c.observe(EXITED, 1),
                                             lambda c: c.launched(None, OSError("gone"), 5)),
        (S.BACKOFF, S.STOPPED): lambda: _then(running(make()), lambda c: c.observe(EXITED, 1), lambda c: c.stop()),
        (S.STOPPING, S.STOPPED): lambda: _then(running(make()), lambda c: c.stop(), lambda c: c.observe(STOPPED, 2)),
        (S.STOPPED, S.WAITING): lambda: _then(make(), lambda c: c.stop(), lambda c: c.restart_run()),
        (S.EXITED, S.WAITING): lambda: _then(running(make("never")), lambda c: c.observe(EXITED, 1),
                                             lambda c: c.restart_run()),
        (S.EXITED, S.STOPPED): lambda: _then(running(make("never")), lambda c: c.observe(EXITED, 1),
                                             lambda c: c.stop()),
        (S.HELD, S.STARTING): lambda: _then(running(make()), lambda c: c.observe(STOPPED, 1),
                                            lambda c: c.observe(ALIVE, 2)),
        (S.HELD, S.WAITING): lambda: _then(running(make()), lambda c: c.observe(STOPPED, 1),
                                           lambda c: c.restart_run()),
        (S.HELD, S.STOPPED): lambda: _then(running(make()), lambda c: c.observe(STOPPED, 1), lambda c: c.stop()),
    }


def _then(c: Container, *steps) -> Container:
    for step in steps:
        step(c)
    return c


def test_every_legal_move_is_made_by_some_operation_of_a_container(monkeypatch):
    """Walk the table: each scenario's last move is the one it is named for, and together they
    cover every move the table allows."""
    made: list[tuple[State, State]] = []

    def recording(current: State, target: State, what: str) -> State:
        made.append((current, target))
        return move(current, target, what)

    monkeypatch.setattr(container_module, "move", recording)
    cases = scenarios()
    assert set(cases) == LEGAL, f"no scenario for {sorted(LEGAL - set(cases))}"
    for pair, run in cases.items():
        made.clear()
        run()
        assert pair in made, f"{pair[0].value} -> {pair[1].value}: the scenario made {made}"


def test_an_illegal_move_through_the_api_raises():
    c = make()
    with pytest.raises(IllegalTransition, match="p-app: Waiting -> Running"):
        c.to(S.RUNNING)
    assert c.state is S.WAITING, "a refused move leaves the state as it was"


def test_a_startup_probe_that_fails_its_threshold_asks_for_a_kill_once():
    c = make()
    c.observe(ALIVE, 0)
    state = c.checks["startup"]
    assert c.record_probes([("startup", state, Result(False, "refused"))], 0) is None
    kill = c.record_probes([("startup", state, Result(False, "refused"))], 1)
    assert kill == Termination(Reason.STARTUP_PROBE, "refused")
    assert c.record_probes([("startup", state, Result(False, "refused"))], 2) is None, "already being killed"
    c.observe({**EXITED, "exitstatus": -1}, 3)
    assert c.state is S.BACKOFF and str(c.last) == "Startup probe failed: refused"


PHASES = [
    # app state, app end, ran, sidecars, frozen -> phase, status
    (S.WAITING, None, False, (S.STARTING, S.RUNNING), False, Phase.PENDING, "PodInitializing"),
    (S.WAITING, None, False, (S.BACKOFF, S.RUNNING), False, Phase.PENDING, "Init:CrashLoopBackOff"),
    (S.STARTING, None, True, (S.RUNNING, S.RUNNING), False, Phase.RUNNING, "Running"),
    (S.BACKOFF, Termination(Reason.ERROR, "exit code 3", 3), True, (S.RUNNING, S.RUNNING), False,
     Phase.RUNNING, "CrashLoopBackOff"),
    (S.BACKOFF, Termination(Reason.OOM_KILLED), True, (S.RUNNING, S.RUNNING), False, Phase.RUNNING, "OOMKilled"),
    (S.BACKOFF, Termination(Reason.START_ERROR, "x"), False, (S.RUNNING, S.RUNNING), False,
     Phase.PENDING, "CrashLoopBackOff"),
    (S.EXITED, Termination(Reason.COMPLETED, "", 0), True, (S.STOPPING, S.STOPPED), False,
     Phase.TERMINATING, "Terminating"),
    (S.EXITED, Termination(Reason.COMPLETED, "", 0), True, (S.STOPPED, S.STOPPED), False,
     Phase.SUCCEEDED, "Completed"),
    (S.EXITED, Termination(Reason.OOM_KILLED), True, (S.STOPPED, S.STOPPED), False, Phase.FAILED, "OOMKilled"),
    (S.STOPPED, None, True, (S.STOPPED, S.STOPPED), False, Phase.STOPPED, "Stopped"),
    (S.HELD, Termination(Reason.STOPPED_OUTSIDE), True, (S.RUNNING, S.RUNNING), False, Phase.STOPPED, "Stopped"),
    (S.RUNNING, None, True, (S.RUNNING, S.RUNNING), True, Phase.TERMINATING, "Terminating"),
]


@pytest.mark.parametrize(("app", "end", "ran", "sidecars", "frozen", "phase", "status"), PHASES)
def test_the_pod_phase_and_status_are_computed_from_its_containers(app, end, ran, sidecars, frozen, phase, status):
    assert pod_phase(app, end, ran, sidecars, frozen) is phase
    assert pod_status(phase, app, end, False, sidecars) == status


def test_a_pod_that_used_up_its_restarts_shows_backoff_limit_exceeded():
    c = running(make("always", max_restarts=0))
    c.observe(EXITED, 1)
    assert c.state is S.EXITED and c.gave_up
    phase = pod_phase(c.state, c.last, True, (S.STOPPED, S.STOPPED), False)
    assert phase is Phase.FAILED
    assert pod_status(phase, c.state, c.last, c.gave_up, (S.STOPPED, S.STOPPED)) == "BackoffLimitExceeded"
