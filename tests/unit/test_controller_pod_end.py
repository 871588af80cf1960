"""PodRunner when an app cannot start or is killed: reasons, counts, policies, orphans, stop deadlines."""
from __future__ import annotations

import threading

import pytest

from podvisor.supervisord.controller import probes
from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.spec.model import Probe
from tests.fakes.supervisor import make_pod, rig

APP, LOGGER, METRICS = "user-app", "user-logger", "user-metrics"
APP_PORT, METRICS_PORT, LOGGER_PORT = 3000, 3001, 3002
LIVENESS = Probe(http_get="/live", period_seconds=1.0, failure_threshold=1)


# -- refused spawns -------------------------------------------------------------------------------
def test_a_refused_app_spawn_is_counted_with_its_reason_and_backs_off():
    r = rig()
    r.sup.spawn_errors[APP] = "ENOMEM"
    r.tick(2)
    snap = r.snapshot()
    assert (snap["restarts"], snap["status"], snap["phase"]) == (1, "CrashLoopBackOff", "Pending")
    assert snap["last_reason"].startswith("StartError: ") and "SPAWN_ERROR" in snap["last_reason"]
    assert snap["restart_delay_seconds"] == 1.0 and snap["restart_in_seconds"] == 1.0

    r.clock.advance(1.0)
    r.tick()  # refused again: the count and the delay grow
    snap = r.snapshot()
    assert (snap["restarts"], snap["restart_delay_seconds"]) == (2, 2.0)


def test_a_refused_app_spawn_under_never_fails_the_pod_and_drains_its_sidecars():
    r = rig(make_pod(restart_policy="never"))
    r.sup.spawn_errors[APP] = "ENOENT"
    r.tick(2)
    snap = r.snapshot()
    assert (snap["phase"], snap["status"], snap["restarts"]) == ("Failed", "StartError", 0)
    assert snap["last_reason"].startswith("StartError: ")
    assert all(r.sup.statename(n) == "STOPPED" for n in (LOGGER, METRICS))


def test_refused_spawns_give_up_at_max_restarts():
    r = rig(make_pod(max_restarts=2))
    r.sup.spawn_errors[APP] = "ENOMEM"
    r.tick(2)
    for delay in (1.0, 2.0):
        r.clock.advance(delay)
        r.tick()
    snap = r.snapshot()
    assert (snap["phase"], snap["status"], snap["restarts"]) == ("Failed", "BackoffLimitExceeded", 2)
    assert len(r.sup.calls("start", APP)) == 3


def test_a_refused_sidecar_spawn_is_counted_and_shown_as_init_crash_loop():
    r = rig()
    r.sup.spawn_errors[LOGGER] = "EMFILE"
    r.tick()
    snap = r.snapshot()
    assert snap["status"] == "Init:CrashLoopBackOff" and snap["phase"] == "Pending"
    assert snap["sidecar_restarts"] == {"logger": 1, "metrics": 0}
    assert snap["sidecar_last_reason"]["logger"].startswith("StartError: ")
    assert r.sup.calls("start", APP) == []


# -- kills under every policy ----------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["never", "on-failure"])
def test_an_oom_kill_is_oomkilled_under_every_policy(policy):
    r = rig(make_pod(restart_policy=policy, memory_limit_bytes=1000))
    r.start_pod()
    r.memory.rss[r.sup.pid_of(APP)] = 5000
    r.tick(2)
    snap = r.snapshot()
    assert (snap["status"], snap["last_reason"]) == ("OOMKilled", "OOMKilled")
    if policy == "never":
        assert snap["phase"] == "Failed" and snap["restarts"] == 0
    else:
        assert snap["phase"] == "Running" and snap["restarts"] == 1  # a kill is a failure: restarted
        r.clock.advance(1.0)
        r.tick()
        assert r.sup.statename(APP) == "RUNNING" and r.snapshot()["last_reason"] == "OOMKilled"


def test_a_liveness_kill_under_never_fails_the_pod_with_the_probe_as_reason():
    r = rig(make_pod(restart_policy="never", liveness_probe=LIVENESS))
    r.prober.answer("/live", APP_PORT, False)
    r.start_pod()
    r.tick(2)
    snap = r.snapshot()
    assert (snap["phase"], snap["status"]) == ("Failed", "Error")
    assert snap["last_reason"] == "Liveness probe failed: /live on 3000: 503"


def test_an_app_killed_by_a_signal_says_so():
    r = rig()
    r.start_pod()
    r.sup.kill(r.sup.pid_of(APP))  # exit status -1, as supervisord reports a signal death
    r.tick()
    snap = r.snapshot()
    assert snap["last_reason"] == "Error: killed by a signal" and snap["last_exit_code"] == -1
    assert snap["status"] == "CrashLoopBackOff" and snap["app_pid"] is None


# -- pids and orphans ---------------------------------------------------------------------------------
def test_app_pid_is_cleared_once_the_pod_is_stopped():
    r = rig()
    r.start_pod()
    assert r.snapshot()["app_pid"] == r.sup.pid_of(APP)
    r.runner.request("stop", "op1")
    r.tick()
    assert r.snapshot()["app_pid"] is None and r.snapshot()["probes"] == {}


def test_what_an_ended_app_left_behind_is_reaped_before_the_restart():
    r = rig()
    r.start_pod()
    r.reaper.left[APP] = [7001, 7002]
    r.sup.crash(APP, 1)
    r.tick()
    (reap,) = r.sup.calls("reap", APP)
    assert reap.detail == [7001, 7002] and reap.seq > r.sup.calls("exit", APP)[0].seq
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.spawns(APP)[-1].seq > reap.seq


def test_a_completed_pod_reaps_the_app_tree_before_its_sidecars_are_stopped():
    r = rig(make_pod(restart_policy="never"))
    r.start_pod()
    r.sup.crash(APP, 0)
    r.tick()
    reaps = r.sup.calls("reap", APP)
    sidecar_stops = [e for e in r.sup.calls("stop") if e.name in (LOGGER, METRICS)]
    assert reaps and all(reaps[0].seq < e.seq for e in sidecar_stops)
    assert r.snapshot()["phase"] == "Succeeded" and r.snapshot()["status"] == "Completed"


def test_a_stop_reaps_after_the_app_exited_and_before_the_sidecars_are_signalled():
    r = rig()
    r.start_pod()
    r.runner.request("stop", "op1")
    r.tick()
    kinds = [(e.kind, e.name) for e in r.sup.log if e.kind in ("stopped", "reap", "stop")]
    assert kinds[:3] == [("stop", APP), ("stopped", APP), ("reap", APP)]
    assert {("stop", LOGGER), ("stop", METRICS)} <= set(kinds[3:])


def test_a_frozen_runner_still_reaps_behind_an_app_that_supervisord_stopped():
    r = rig()
    r.start_pod()
    r.runner.freeze()
    assert r.snapshot()["phase"] == "Terminating"
    r.tick()
    assert r.sup.calls("reap") == []  # the app still runs
    r.sup.stop(APP, True)  # supervisord's own shutdown
    r.tick()
    assert len(r.sup.calls("reap", APP)) == 1 and r.snapshot()["app_pid"] is None
    r.tick(3)
    assert len(r.sup.calls("reap", APP)) == 1
    assert len(r.sup.spawns(APP)) == 1


# -- stop deadlines ------------------------------------------------------------------------------
def test_a_sidecar_that_never_exits_bounds_the_stop_by_the_grace_deadline(caplog):
    r = rig()
    r.start_pod()
    r.sup.stuck.add(LOGGER)
    started = r.clock()
    r.runner.request("stop", "op1")
    r.tick()
    waited = r.clock() - started
    deadline = r.runner.pod.budget.pod_stop_seconds  # from grace_seconds 5 (podvisor.core.budget)
    assert deadline <= waited <= deadline + 0.5
    assert "sidecars still running" in caplog.text
    assert r.snapshot()["last_op"]["done"] is True and r.snapshot()["phase"] == "Stopped"


def test_an_app_that_never_exits_bounds_its_wait_then_the_sidecars_are_stopped(caplog):
    r = rig()
    r.start_pod()
    r.sup.stuck.add(APP)  # SIGTERM'd but never gone (supervisord's SIGKILL would come later)
    started = r.clock()
    r.runner.request("stop", "op1")
    r.tick()
    waited = r.clock() - started
    deadline = r.runner.pod.budget.app_stop_seconds  # the grace, then supervisord's SIGKILL
    assert deadline <= waited <= deadline + 0.5
    assert "app still running" in caplog.text
    (app_stop,) = r.sup.calls("stop", APP)
    assert all(e.seq > app_stop.seq for e in r.sup.calls("stop") if e.name != APP)  # sidecars after the app
    assert [r.sup.statename(n) for n in (LOGGER, METRICS)] == ["STOPPED", "STOPPED"]
    assert r.snapshot()["last_op"]["done"] is True


def test_stopping_waits_for_no_time_when_the_sidecars_exit_at_once():
    r = rig()
    r.start_pod()
    started = r.clock()
    r.runner.request("stop", "op1")
    r.tick()
    assert r.clock() == started


# -- operators' stops and /ready ----------------------------------------------------------------------
def test_an_operator_stop_is_shown_and_excluded_from_ready():
    r = rig(make_pod("user", 3000), make_pod("product", 3100))
    r.start_pod()
    r.sup.operator_stop(APP)
    r.sup.operator_stop("product-metrics")
    r.tick()
    user, product = r.snapshot("user"), r.snapshot("product")
    assert user["held_by_operator"] == ["app"] and product["held_by_operator"] == ["metrics"]
    assert not user["ready"] and not product["ready"]
    assert not expected_ready(user) and not expected_ready(product)

    r.runners["user"].request("start", "op1")  # podctl start takes the pod back
    r.tick(2)
    assert r.snapshot("user")["held_by_operator"] == [] and r.snapshot("user")["ready"]


@pytest.mark.parametrize("phase, held, counted", [
    ("Running", [], True), ("Pending", [], True), ("Terminating", [], True), ("Failed", [], True),
    ("Stopped", [], False), ("Succeeded", [], False), ("Running", ["metrics"], False),
])
def test_which_pods_count_for_ready(phase, held, counted):
    assert expected_ready({"phase": phase, "held_by_operator": held}) is counted


# -- probes -------------------------------------------------------------------------------------------
def test_due_probes_run_concurrently_so_a_slow_one_cannot_delay_liveness():
    pod = make_pod(readiness_probe=Probe(http_get="/ready", period_seconds=1.0),
                   liveness_probe=Probe(http_get="/live", period_seconds=1.0))
    r = rig(pod)
    r.start_pod()
    readiness_asked = threading.Event()

    def prober(probe, host, port):
        if probe.http_get == "/ready":
            readiness_asked.set()
            return probes.Result(True, "ready")
        # liveness runs first; sequentially, readiness would not have been asked yet
        return probes.Result(readiness_asked.wait(5.0), "live")

    r.runner.prober = prober
    r.tick()
    assert r.snapshot()["probes"]["liveness"] == {"passing": True, "last": "live"}


def test_probe_periods_run_start_to_start():
    r = rig(make_pod(liveness_probe=Probe(http_get="/live", period_seconds=1.0, failure_threshold=3)))
    r.start_pod()
    calls = []

    def slow(probe, host, port):
        calls.append(r.clock())
        r.clock.advance(0.4)  # each probe takes 0.4 s
        return probes.Result(True, "ok")

    r.runner.prober = slow
    r.tick()
    r.clock.advance(0.6)  # 1.0 s after the first probe started
    r.tick()
    assert len(calls) == 2 and calls[1] - calls[0] == pytest.approx(1.0)


def test_a_probe_that_raises_is_a_failure_with_the_reason():
    r = rig(make_pod(liveness_probe=LIVENESS))
    r.start_pod()

    def broken(probe, host, port):
        raise RuntimeError("boom")

    r.runner.prober = broken
    r.tick(2)
    assert r.snapshot()["last_reason"] == "Liveness probe failed: probe error: RuntimeError: boom"
