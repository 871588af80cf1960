"""Rolling restarts with a fake supervisord and a fake clock: a new replica is Ready before an old one
is told to stop, the sidecars are not touched, and a replica that never gets Ready stops the rollout."""
from __future__ import annotations

from podvisor.supervisord.controller.states import State
from podvisor.supervisord.spec.model import Probe
from tests.fakes.supervisor import make_pod, rig

READY = Probe(http_get="/health", period_seconds=0.1, failure_threshold=3)


def held(replicas: int = 1):
    return rig(make_pod(socket="held", replicas=replicas, readiness_probe=READY))


def running(r) -> set[str]:
    return {c.program for c in r.runner.apps if r.sup.statename(c.program) == "RUNNING"}


def roll(r, ticks: int = 40, check=None) -> None:
    for _ in range(ticks):
        r.clock.advance(0.1)
        r.tick()
        if check is not None:
            check()
        if r.runner.rollout is None:
            return


def test_a_pod_starts_its_replicas_and_keeps_the_spare_slot_stopped():
    r = held(replicas=2)
    r.start_pod()
    r.clock.advance(0.2)
    r.tick(2)
    assert running(r) == {"user-app", "user-app-1"}
    assert r.sup.statename("user-app-2") == "STOPPED" and r.runner.apps[2].state is State.STOPPED
    snap = r.snapshot()
    assert (snap["replicas"], snap["ready_replicas"], snap["containers"]) == (2, 2, 4) and snap["ready"]


def test_restart_of_one_replica_starts_the_new_process_before_the_old_one_stops():
    r = held()
    r.start_pod()
    r.clock.advance(0.2)
    r.tick(2)
    sidecars = {n: r.sup.pid_of(n) for n in ("user-logger", "user-metrics")}
    old = r.sup.pid_of("user-app")
    mark = len(r.sup.log)
    r.runner.request("restart", "op1")

    def never_without_a_serving_process() -> None:
        assert running(r), "no app process at all during the rollout"

    roll(r, check=never_without_a_serving_process)
    calls = [(e.kind, e.name) for e in r.sup.log[mark:] if e.kind in ("start", "stop")]
    assert calls == [("start", "user-app-1"), ("stop", "user-app")], calls
    assert running(r) == {"user-app-1"} and r.runner.active == [1]
    assert {n: r.sup.pid_of(n) for n in sidecars} == sidecars, "a rolling restart leaves the sidecars alone"
    assert r.sup.pid_of("user-app") == 0 and old
    op = r.snapshot()["last_op"]
    assert op["id"] == "op1" and op["done"] and op["ok"], op
    reasons = [e["reason"] for e in r.snapshot()["events"]]
    assert "RollingRestart" in reasons and "Replaced" in reasons


def test_two_replicas_are_replaced_one_at_a_time_never_fewer_than_two_ready():
    r = held(replicas=2)
    r.start_pod()
    r.clock.advance(0.2)
    r.tick(2)
    r.runner.request("restart", "op2")

    def two_ready() -> None:
        assert r.runner.ready_replicas >= 2, [c.state for c in r.runner.apps]

    roll(r, ticks=80, check=two_ready)
    assert r.runner.rollout is None and r.snapshot()["last_op"]["ok"]
    assert sorted(r.runner.active) == [0, 2] and running(r) == {"user-app", "user-app-2"}
    assert r.sup.statename("user-app-1") == "STOPPED"


def test_a_new_replica_that_never_gets_ready_stops_the_rollout_and_the_old_one_keeps_serving():
    r = held()
    r.start_pod()
    r.clock.advance(0.2)
    r.tick(2)
    spare_port = r.runner.pod.slot_ports[1]
    r.prober.answer("/health", spare_port, False)
    r.runner.request("restart", "op3")
    for _ in range(30):
        r.clock.advance(5)
        r.tick()
        if r.runner.rollout is None:
            break
    op = r.snapshot()["last_op"]
    assert op["done"] and not op["ok"] and "did not become Ready" in op["message"], op
    assert running(r) == {"user-app"} and r.runner.active == [0]
    assert r.snapshot()["ready"]
