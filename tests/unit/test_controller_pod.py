"""PodRunner against a fake supervisord: start ordering, crash backoff, sidecar crashes, probes, memory."""
from __future__ import annotations

from podvisor.supervisord.spec.model import Probe
from tests.fakes.supervisor import make_pod, rig

APP, LOGGER, METRICS = "user-app", "user-logger", "user-metrics"
APP_PORT, METRICS_PORT, LOGGER_PORT = 3000, 3001, 3002


# -- start ordering -----------------------------------------------------------------------------
def test_sidecars_start_first_and_the_app_only_after_both_answer_health():
    r = rig()
    r.prober.answer("/health", LOGGER_PORT, False)  # the logger is up but not serving yet

    r.tick()
    assert [e.name for e in r.sup.calls("start")] == [LOGGER, METRICS]
    for _ in range(5):
        r.clock.advance(1.0)
        r.tick()
    assert r.sup.calls("start", APP) == []
    assert r.snapshot()["phase"] == "Pending" and r.snapshot()["status"] == "PodInitializing"

    r.prober.answer("/health", LOGGER_PORT, True)
    r.clock.advance(1.0)  # the sidecar's /health check is periodic: its next one is due
    r.tick()

    (app_start,) = r.sup.calls("start", APP)
    for name, port in ((LOGGER, LOGGER_PORT), (METRICS, METRICS_PORT)):
        (sidecar_start,) = r.sup.calls("start", name)
        healthy = [e for e in r.sup.calls("probe", f"/health@{port}") if e.detail is True]
        assert healthy and sidecar_start.seq < healthy[0].seq < app_start.seq, name
    assert r.snapshot()["phase"] == "Running" and r.snapshot()["app_pid"] == r.sup.pid_of(APP)


def test_app_waits_while_a_sidecar_cannot_even_be_spawned():
    r = rig()
    r.sup.spawn_errors[LOGGER] = "too many open files"
    for _ in range(6):
        r.tick()
        r.clock.advance(2.0)
    assert r.sup.statename(LOGGER) == "FATAL" and r.sup.statename(METRICS) == "RUNNING"
    assert r.sup.calls("start", APP) == []

    del r.sup.spawn_errors[LOGGER]
    r.clock.advance(10.0)  # past the logger's spawn backoff
    r.tick(2)
    assert r.sup.statename(LOGGER) == "RUNNING" and r.sup.statename(APP) == "RUNNING"
    assert r.sup.calls("start", APP)[0].seq > r.sup.spawns(LOGGER)[0].seq


def test_pods_start_independently():
    r = rig(make_pod("user", 3000), make_pod("product", 3100))
    r.prober.answer("/health", LOGGER_PORT, False)  # only user's logger is unhealthy

    r.tick(3)

    assert r.sup.statename("product-app") == "RUNNING"
    assert r.snapshot("product")["ready"] is True
    assert r.sup.calls("start", APP) == []
    assert r.snapshot("user")["status"] == "PodInitializing"


# -- app crashes: CrashLoopBackOff, the app alone ----------------------------------------------------
def test_app_crash_restarts_only_the_app_with_growing_delays():
    r = rig()
    r.start_pod()
    sidecar_pids = {n: r.sup.pid_of(n) for n in (LOGGER, METRICS)}
    def sidecar_calls():
        return [e for e in r.sup.log if e.name in (LOGGER, METRICS) and e.kind in ("start", "stop")]

    before = sidecar_calls()

    for restarts, delay in enumerate([1.0, 2.0, 4.0, 8.0, 8.0], start=1):
        old_pid = r.sup.pid_of(APP)
        r.sup.crash(APP, 1)
        r.tick()
        snap = r.snapshot()
        assert (snap["status"], snap["restarts"], snap["ready"]) == ("CrashLoopBackOff", restarts, False)
        assert snap["last_reason"] == "Error: exit code 1"
        spawns = len(r.sup.spawns(APP))

        r.clock.advance(delay - 0.25)
        r.tick()
        assert len(r.sup.spawns(APP)) == spawns, f"restart {restarts} came before its {delay}s delay"
        assert r.snapshot()["status"] == "CrashLoopBackOff"

        r.clock.advance(0.25)
        r.tick()
        assert len(r.sup.spawns(APP)) == spawns + 1, f"restart {restarts} did not come after {delay}s"
        assert r.sup.pid_of(APP) not in (0, old_pid)
        assert r.snapshot()["status"] == "Running" and r.snapshot()["phase"] == "Running"

    assert {n: r.sup.pid_of(n) for n in (LOGGER, METRICS)} == sidecar_pids
    assert sidecar_calls() == before
    assert r.snapshot()["sidecar_restarts"] == {"logger": 0, "metrics": 0}


def test_a_stable_run_resets_the_app_backoff():
    r = rig()
    r.start_pod()
    for delay in (1.0, 2.0):
        r.sup.crash(APP, 1)
        r.tick()
        r.clock.advance(delay)
        r.tick()
    r.clock.advance(30.0)  # reset_after_seconds of stable running
    r.sup.crash(APP, 1)
    r.tick()
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING"
    assert r.snapshot()["restarts"] == 3  # the count is never reset, only the delay


def test_refused_app_spawns_back_off_even_after_a_stable_run():
    r = rig()
    r.start_pod()
    r.clock.advance(60.0)  # a long stable run...
    r.sup.spawn_errors[APP] = "ENOMEM"
    r.sup.crash(APP, 1)  # ...ends, and then supervisord cannot spawn it again
    r.tick()
    crashed_at, retries = r.clock(), []
    for _ in range(48):
        r.clock.advance(0.5)
        before = len(r.sup.calls("start", APP))
        r.tick()
        if len(r.sup.calls("start", APP)) > before:
            retries.append(r.clock() - crashed_at)
    # 1 s after the crash, then 2, 4, 8, 8 s apart: the series grows instead of resetting each time
    assert retries == [1.0, 3.0, 7.0, 15.0, 23.0]
    assert r.sup.statename(APP) == "FATAL"


def test_a_refused_app_spawn_is_retried_not_fatal_to_the_runner():
    r = rig()
    r.sup.spawn_errors[APP] = "ENOMEM"
    r.tick(2)
    assert r.sup.statename(APP) == "FATAL" and len(r.sup.calls("start", APP)) == 1
    del r.sup.spawn_errors[APP]
    r.tick()
    assert len(r.sup.calls("start", APP)) == 1  # waits out its backoff
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING" and r.snapshot()["phase"] == "Running"


# -- sidecar crashes: that sidecar alone ------------------------------------------------------------
def test_sidecar_crash_restarts_only_that_sidecar_and_the_app_keeps_running():
    r = rig()
    r.start_pod()
    app_pid, metrics_pid = r.sup.pid_of(APP), r.sup.pid_of(METRICS)

    r.sup.crash(LOGGER, 1)
    r.tick()
    snap = r.snapshot()
    assert snap["containers_ready"] == 2 and snap["ready"] is False and snap["phase"] == "Running"
    assert r.sup.statename(LOGGER) == "EXITED"  # waiting out its backoff
    r.clock.advance(1.0)
    r.tick(2)

    assert r.sup.statename(LOGGER) == "RUNNING" and len(r.sup.spawns(LOGGER)) == 2
    assert r.sup.pid_of(APP) == app_pid and r.sup.pid_of(METRICS) == metrics_pid
    assert r.sup.calls("stop") == []
    assert len(r.sup.spawns(APP)) == 1 and len(r.sup.spawns(METRICS)) == 1
    snap = r.snapshot()
    assert snap["sidecar_restarts"] == {"logger": 1, "metrics": 0} and snap["restarts"] == 0
    assert snap["containers_ready"] == 3 and snap["ready"] is True


# -- probes -----------------------------------------------------------------------------------------
def test_liveness_failures_kill_the_app_at_the_threshold_and_record_why():
    r = rig(make_pod(liveness_probe=Probe(http_get="/live", period_seconds=2.0, failure_threshold=3)))
    r.prober.answer("/live", APP_PORT, False)
    r.start_pod()
    pid = r.sup.pid_of(APP)
    r.tick()  # probes start on the tick after the spawn: failure 1
    r.clock.advance(1.5)
    r.tick()
    assert r.prober.asked("/live", APP_PORT) == 1  # not due before its period
    r.clock.advance(0.5)
    r.tick()  # failure 2
    assert r.sup.calls("kill") == []

    r.clock.advance(2.0)
    r.tick()  # failure 3
    assert [e.detail for e in r.sup.calls("kill")] == [pid]

    r.tick()
    snap = r.snapshot()
    assert snap["last_reason"] == "Liveness probe failed: /live on 3000: 503"
    assert snap["restarts"] == 1 and snap["status"] == "CrashLoopBackOff"
    r.prober.answer("/live", APP_PORT, True)
    r.clock.advance(1.0)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING" and r.sup.pid_of(APP) != pid
    assert len(r.sup.calls("kill")) == 1


def test_a_liveness_success_between_failures_resets_the_count():
    r = rig(make_pod(liveness_probe=Probe(http_get="/live", period_seconds=1.0, failure_threshold=2)))
    r.prober.script("/live", APP_PORT, False, True, False, True, False)
    r.start_pod()
    r.tick()
    for _ in range(4):
        r.clock.advance(1.0)
        r.tick()
    assert r.sup.calls("kill") == []


def test_startup_probe_gates_readiness_and_liveness():
    pod = make_pod(startup_probe=Probe(http_get="/startup", period_seconds=1.0, failure_threshold=10),
                   readiness_probe=Probe(http_get="/ready", period_seconds=1.0),
                   liveness_probe=Probe(http_get="/live", period_seconds=1.0, failure_threshold=1))
    r = rig(pod)
    r.prober.script("/startup", APP_PORT, False, False, True)
    r.start_pod()
    r.tick()
    r.clock.advance(1.0)
    r.tick()
    assert r.prober.asked("/ready", APP_PORT) == 0 and r.prober.asked("/live", APP_PORT) == 0
    snap = r.snapshot()
    assert (snap["containers_ready"], snap["ready"], snap["phase"]) == (2, False, "Running")

    r.clock.advance(1.0)
    r.tick()  # startup passes
    assert r.snapshot()["probes"]["startup"]["passing"] is True
    r.tick()
    assert r.prober.asked("/ready", APP_PORT) == 1 and r.prober.asked("/live", APP_PORT) == 1
    assert r.prober.asked("/startup", APP_PORT) == 3  # never probed again once passed
    assert r.snapshot()["ready"] is True and r.snapshot()["containers_ready"] == 3


def test_a_running_pod_sleeps_until_its_next_probe_not_on_a_passed_startup_probe():
    # A passed startup probe is never due again; its stale time must not make the thread spin.
    pod = make_pod(startup_probe=Probe(http_get="/startup", period_seconds=0.1, failure_threshold=10),
                   readiness_probe=Probe(http_get="/ready", period_seconds=2.0),
                   liveness_probe=Probe(http_get="/live", period_seconds=2.0))
    r = rig(pod)
    r.start_pod()
    for _ in range(3):
        r.clock.advance(0.1)
        r.tick()
    assert r.snapshot()["probes"]["startup"]["passing"] is True
    r.clock.advance(5.0)  # the startup probe's next time is long past
    assert r.runner.tick() >= 0.5


def test_startup_probe_failure_threshold_kills_the_app():
    r = rig(make_pod(startup_probe=Probe(http_get="/startup", period_seconds=1.0, failure_threshold=2)))
    r.prober.answer("/startup", APP_PORT, False)
    r.start_pod()
    pid = r.sup.pid_of(APP)
    r.tick()
    r.clock.advance(1.0)
    r.tick()
    assert [e.detail for e in r.sup.calls("kill")] == [pid]
    r.tick()
    assert r.snapshot()["last_reason"].startswith("Startup probe failed: ")


def test_readiness_drives_ready_without_killing():
    r = rig(make_pod(readiness_probe=Probe(http_get="/ready", period_seconds=1.0, failure_threshold=2)))
    r.start_pod()
    assert r.snapshot()["ready"] is False  # running, readiness not yet probed
    r.tick()
    assert r.snapshot()["ready"] is True and r.snapshot()["containers_ready"] == 3
    pid = r.sup.pid_of(APP)

    r.prober.answer("/ready", APP_PORT, False)
    r.clock.advance(1.0)
    r.tick()
    assert r.snapshot()["ready"] is True  # one failure is below the threshold
    r.clock.advance(1.0)
    r.tick()
    snap = r.snapshot()
    assert (snap["ready"], snap["containers_ready"], snap["phase"]) == (False, 2, "Running")
    assert snap["probes"]["readiness"] == {"passing": False, "last": "/ready on 3000: 503"}

    r.prober.answer("/ready", APP_PORT, True)
    r.clock.advance(1.0)
    r.tick()
    assert r.snapshot()["ready"] is True
    assert r.sup.calls("kill") == [] and r.sup.pid_of(APP) == pid


# -- memory limit ---------------------------------------------------------------------------------
def test_over_the_memory_limit_the_app_is_killed_as_oomkilled_and_restarted():
    r = rig(make_pod(memory_limit_bytes=1000))
    r.start_pod()
    pid = r.sup.pid_of(APP)
    r.memory.rss[pid] = 1000
    r.tick()
    assert r.sup.calls("kill") == []  # at the limit is not over it

    r.memory.rss[pid] = 1001
    r.tick()
    assert [e.detail for e in r.sup.calls("kill")] == [pid]
    r.tick()
    snap = r.snapshot()
    assert (snap["last_reason"], snap["status"], snap["restarts"]) == ("OOMKilled", "OOMKilled", 1)
    r.clock.advance(0.75)
    r.tick()
    assert r.snapshot()["status"] == "OOMKilled"

    r.clock.advance(0.25)
    r.tick()
    assert r.sup.statename(APP) == "RUNNING" and r.sup.pid_of(APP) != pid
    assert r.snapshot()["status"] == "Running" and r.snapshot()["last_reason"] == "OOMKilled"
    assert len(r.sup.calls("kill")) == 1


# -- the snapshot ------------------------------------------------------------------------------------
SNAPSHOT_KEYS = {
    "pod", "service", "desired", "phase", "status", "ready", "containers_ready", "containers", "restarts",
    "last_reason", "last_exit_code", "restart_delay_seconds", "restart_in_seconds", "sidecar_restarts",
    "sidecar_last_reason", "held_by_operator", "created_at", "age_seconds", "app_pid", "probes", "last_op",
    "container_states", "ports", "depends_on", "conditions", "events", "replicas", "ready_replicas", "min_ready",
    "socket", "rollout",
}


def test_the_snapshot_keeps_its_keys_and_shows_each_containers_state():
    r = rig()
    r.start_pod()
    r.sup.crash(METRICS, 1)
    r.tick()
    snap = r.snapshot()
    assert set(snap) == SNAPSHOT_KEYS
    states = snap["container_states"]
    assert {role: s["state"] for role, s in states.items()} == {"app": "Running", "logger": "Running",
                                                                 "metrics": "BackOff"}
    assert states["app"]["pid"] == r.sup.pid_of(APP) == snap["app_pid"]
    assert states["metrics"]["restarts"] == 1 == snap["sidecar_restarts"]["metrics"]
    assert states["metrics"]["last_reason"] == "Error: exit code 1" == snap["sidecar_last_reason"]["metrics"]
    assert r.runner.app.state.value == "Running" and r.runner.sidecars["metrics"].state.value == "BackOff"
