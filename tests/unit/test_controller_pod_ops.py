"""PodRunner: restart policies, start/stop/restart operations, operators' stops, and freezing."""
from __future__ import annotations

import xmlrpc.client

import pytest

from tests.fakes.supervisor import make_pod, rig

APP, LOGGER, METRICS = "user-app", "user-logger", "user-metrics"
SIDECARS = (LOGGER, METRICS)


def assert_drained_after(r, event) -> None:
    """Both sidecars were stopped by the controller after `event`, and nothing is left running."""
    for name in SIDECARS:
        stops = [e for e in r.sup.calls("stop", name) if e.detail == "SIGTERM"]
        assert len(stops) == 1 and stops[0].seq > event.seq, (name, r.sup.log)
        assert len(r.sup.calls("stopped", name)) == 1
    assert {n: r.sup.statename(n) for n in SIDECARS} == {LOGGER: "STOPPED", METRICS: "STOPPED"}


def assert_nothing_starts(r) -> None:
    starts = len(r.sup.calls("start"))
    for _ in range(5):
        r.clock.advance(10.0)
        r.tick()
    assert len(r.sup.calls("start")) == starts


# -- restart policies ----------------------------------------------------------------------------------
@pytest.mark.parametrize("policy, code, phase, status", [
    ("never", 0, "Succeeded", "Completed"),
    ("never", 1, "Failed", "Error"),
    ("on-failure", 0, "Succeeded", "Completed"),
])
def test_a_pod_that_is_done_ends_and_drains_its_sidecars(policy, code, phase, status):
    r = rig(make_pod(restart_policy=policy))
    r.start_pod()
    r.sup.crash(APP, code)
    (ended,) = r.sup.calls("exit", APP)

    r.tick()

    snap = r.snapshot()
    assert [snap[k] for k in ("phase", "status", "desired", "ready")] == [phase, status, "stopped", False]
    assert snap["last_reason"] == ("Completed" if code == 0 else f"Error: exit code {code}")
    assert snap["restarts"] == 0
    assert_drained_after(r, ended)
    assert_nothing_starts(r)


def test_on_failure_restarts_a_failed_app():
    r = rig(make_pod(restart_policy="on-failure"))
    r.start_pod()
    r.sup.crash(APP, 1)
    r.tick()
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING" and len(r.sup.spawns(APP)) == 2
    assert r.snapshot()["restarts"] == 1 and r.snapshot()["phase"] == "Running"
    assert r.sup.calls("stop") == []


def test_always_restarts_even_an_app_that_exited_zero():
    r = rig(make_pod(restart_policy="always"))
    r.start_pod()
    r.sup.crash(APP, 0)
    r.tick()
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING" and r.snapshot()["restarts"] == 1


def test_max_restarts_exhausted_fails_the_pod():
    r = rig(make_pod(restart_policy="always", max_restarts=2))
    r.start_pod()
    for delay in (1.0, 2.0):
        r.sup.crash(APP, 1)
        r.tick()
        r.clock.advance(delay)
        r.tick()
    assert r.sup.statename(APP) == "RUNNING" and r.snapshot()["restarts"] == 2

    r.sup.crash(APP, 3)
    r.tick()

    snap = r.snapshot()
    assert (snap["phase"], snap["status"], snap["restarts"]) == ("Failed", "BackoffLimitExceeded", 2)
    assert snap["last_reason"] == "Error: exit code 3"
    assert_drained_after(r, r.sup.calls("exit", APP)[-1])
    assert_nothing_starts(r)


# -- operations ------------------------------------------------------------------------------------------
def test_stop_stops_the_app_before_its_sidecars():
    r = rig()
    r.start_pod()
    r.runner.request("stop", "op1")
    assert r.snapshot()["last_op"] is None  # queued for the pod's own thread

    r.tick()

    (app_stopped,) = r.sup.calls("stopped", APP)  # the app has EXITED before any sidecar is signalled
    assert_drained_after(r, app_stopped)
    snap = r.snapshot()
    assert [snap[k] for k in ("phase", "status", "desired")] == ["Stopped", "Stopped", "stopped"]
    assert snap["ready"] is False
    assert snap["last_op"] == {"id": "op1", "action": "stop", "done": True, "ok": True,
                               "message": "pod user stopped"}
    assert_nothing_starts(r)


def test_start_after_stop_starts_sidecars_then_the_app_with_restarts_reset():
    r = rig()
    r.start_pod()
    r.sup.crash(APP, 1)
    r.tick()
    assert r.snapshot()["restarts"] == 1
    r.runner.request("stop", "op1")
    r.tick()
    mark = len(r.sup.log)

    r.runner.request("start", "op2")
    r.tick(2)

    starts = [e for e in r.sup.log[mark:] if e.kind == "start"]
    assert [e.name for e in starts] == [LOGGER, METRICS, APP]
    assert all(isinstance(e.detail, int) for e in starts)  # each spawned a process
    snap = r.snapshot()
    assert [snap[k] for k in ("phase", "status", "desired")] == ["Running", "Running", "running"]
    assert snap["restarts"] == 0
    assert snap["ready"] is True
    assert snap["last_op"] == {"id": "op2", "action": "start", "done": True, "ok": True,
                               "message": "pod user started"}


def test_restart_stops_in_order_then_starts_in_order_with_new_pids():
    r = rig()
    r.start_pod()
    old = {n: r.sup.pid_of(n) for n in (APP, *SIDECARS)}
    mark = len(r.sup.log)

    r.runner.request("restart", "op3")
    r.tick(2)

    calls = [(e.kind, e.name) for e in r.sup.log[mark:] if e.kind in ("start", "stop")]
    assert calls == [("stop", APP), ("stop", LOGGER), ("stop", METRICS),
                     ("start", LOGGER), ("start", METRICS), ("start", APP)]
    assert all(r.sup.pid_of(n) not in (0, old[n]) for n in old)
    assert r.snapshot()["last_op"]["id"] == "op3" and r.snapshot()["last_op"]["ok"] is True
    assert r.snapshot()["phase"] == "Running"


def test_start_on_a_running_pod_adopts_it_without_touching_a_process():
    r = rig()
    r.start_pod()
    pids, mark = {n: r.sup.pid_of(n) for n in (APP, *SIDECARS)}, len(r.sup.log)
    r.runner.request("start", "op4")
    r.tick(2)
    assert [e for e in r.sup.log[mark:] if e.kind in ("start", "stop")] == []
    assert {n: r.sup.pid_of(n) for n in pids} == pids
    assert r.snapshot()["phase"] == "Running" and r.snapshot()["ready"] is True


def test_a_failed_operation_is_reported_in_last_op():
    r = rig()
    r.start_pod()

    def refuse(name, wait=True):
        raise xmlrpc.client.Fault(2, "SHUTDOWN_STATE")

    r.sup.stop = refuse
    r.runner.request("stop", "op5")
    r.tick()
    op = r.snapshot()["last_op"]
    assert (op["id"], op["done"], op["ok"]) == ("op5", True, False)
    assert "SHUTDOWN_STATE" in op["message"]


def test_an_unknown_action_is_a_value_error_naming_it():
    r = rig()
    with pytest.raises(ValueError, match="'reboot'"):
        r.runner.request("reboot", "op6")
    assert r.runner.pending_ops == []


# -- operators' stops and supervisord's shutdown -----------------------------------------------------------
def test_an_app_stopped_from_outside_is_left_stopped():
    r = rig()
    r.start_pod()
    r.sup.operator_stop(APP)
    r.tick()
    assert r.snapshot()["phase"] == "Stopped" and r.snapshot()["status"] == "Stopped"
    assert_nothing_starts(r)
    assert r.sup.calls("stop") == []  # its sidecars keep running
    assert all(r.sup.statename(n) == "RUNNING" for n in SIDECARS)


def test_podctl_start_takes_back_an_app_stopped_from_outside_keeping_its_sidecars():
    r = rig()
    r.start_pod()
    sidecars = {n: r.sup.pid_of(n) for n in SIDECARS}
    r.sup.operator_stop(APP)
    r.tick()
    r.runner.request("start", "op-back")
    r.tick(2)
    assert r.runner.last_op["ok"], r.runner.last_op
    assert r.sup.statename(APP) == "RUNNING" and r.snapshot()["phase"] == "Running"
    assert {n: r.sup.pid_of(n) for n in SIDECARS} == sidecars  # the running sidecars were left alone


def test_a_sidecar_stopped_from_outside_is_left_stopped_and_the_app_keeps_running():
    r = rig()
    r.start_pod()
    app_pid = r.sup.pid_of(APP)
    r.sup.operator_stop(METRICS)
    r.tick()
    assert_nothing_starts(r)
    assert r.sup.statename(METRICS) == "STOPPED" and r.sup.pid_of(APP) == app_pid
    snap = r.snapshot()
    assert snap["sidecar_restarts"] == {"logger": 0, "metrics": 0}
    assert (snap["phase"], snap["containers_ready"], snap["ready"]) == ("Running", 2, False)


def test_a_frozen_runner_starts_nothing():
    r = rig()
    r.runner.frozen = True
    r.tick(3)
    assert r.sup.calls("start") == []


def test_a_frozen_runner_does_not_restart_a_crashed_app():
    r = rig()
    r.start_pod()
    r.runner.frozen = True
    r.sup.crash(APP, 1)
    r.sup.crash(LOGGER, 1)
    assert_nothing_starts(r)
