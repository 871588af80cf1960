"""Pod semantics end to end (issue 3), through the pytest plugin and a real supervisord.

The demo stack shows ordered start, an app's crash restarts with backoff, and sidecar crashes; small
stacks of tests/fixtures/podapp.py show liveness, the memory limit, completion without orphans, and
a stack stopped under load that loses no line.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from podvisor.testing.harness import wait_for_gone
from tests.fixtures.lifecycle import (
    FAST_STARTUP,
    Poller,
    iso_stamp,
    missing_ids,
    podapp_pod,
    podapp_spec,
    sidecar_log,
    supervisord_log,
)

pytestmark = pytest.mark.e2e
PODS = ("user", "product", "order", "gateway")


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def sidecar_pids(stack, pod: str) -> dict[str, int]:
    return {role: stack.pid(f"{pod}-{role}") for role in ("logger", "metrics")}


# -- the demo stack: start order, crashes ---------------------------------------------------------
def test_sidecars_are_running_and_serving_before_the_apps_first_log_line(stack):
    sup = supervisord_log(stack)
    for pod in PODS:
        logger_up = sidecar_log(stack, pod, "logger").first(r"health and metrics on http")
        metrics_up = sidecar_log(stack, pod, "metrics").first(r"listening on http")
        assert logger_up and metrics_up, stack.output()
        if pod != "gateway":  # nginx's own log has whole seconds only: its spawn order is checked below
            first_line = json.loads((stack.pod_dir(pod) / "logs" / "app.log").read_text().splitlines()[0])
            app_first = iso_stamp(first_line["timestamp"])
            assert logger_up[0] < app_first and metrics_up[0] < app_first, (logger_up, metrics_up, first_line)
        spawns = {role: sup.first(rf"spawned: '{pod}-{role}' with pid (\d+)")
                  for role in ("logger", "metrics", "app")}
        assert spawns["logger"][0] <= spawns["app"][0] and spawns["metrics"][0] <= spawns["app"][0], spawns
        # the sidecars serving then are the ones running now: never restarted in between
        first_pids = {role: int(spawns[role][1].rsplit(" ", 1)[1]) for role in ("logger", "metrics")}
        assert sidecar_pids(stack, pod) == first_pids
        assert stack.pods()[pod]["sidecar_restarts"] == {"logger": 0, "metrics": 0}


def test_kill_9_of_an_app_restarts_only_the_app_with_backoff(stack):
    pod, app = "product", "product-app"
    sidecars = sidecar_pids(stack, pod)
    before = stack.pods()[pod]["restarts"]
    policy = stack.spec.pod(pod).backoff
    delays = []
    for n in (1, 2):
        old = stack.pid(app)
        sup = supervisord_log(stack).mark()
        os.kill(old, signal.SIGKILL)

        def restarted(old=old, n=n):
            p = stack.pods()[pod]
            back = p["restarts"] == before + n and p["app_pid"] not in (None, old) and p["ready"]
            return p if back else None
        snap = stack.wait_for(restarted, 30, f"{app} restarted after kill -9 number {n}")
        assert snap["last_reason"] == "Error: killed by a signal" and snap["last_exit_code"] == -1
        delays.append(snap["restart_delay_seconds"])
        exited = sup.first(rf"exited: {app} \(terminated by SIGKILL")
        spawned = sup.first(rf"spawned: '{app}' with pid {snap['app_pid']}")
        assert exited and spawned, stack.output()
        # the restart waited out its backoff (supervisord's own clock, millisecond lines)
        assert spawned[0] - exited[0] >= delays[-1] - 0.01, (exited, spawned, delays)
    # exponential with jitter: the second delay is drawn around initial * multiplier
    low, high = 1 - policy.jitter, 1 + policy.jitter
    assert policy.initial_seconds * low <= delays[0] <= policy.initial_seconds * high, delays
    expected = policy.initial_seconds * policy.multiplier
    assert expected * low <= delays[1] <= expected * high, delays
    assert sidecar_pids(stack, pod) == sidecars, "a crashing app took a sidecar down"

    status = stack.podctl("status", "--json")
    assert status.returncode == 0, status.stderr
    shown = {p["pod"]: p for p in json.loads(status.stdout)["pods"]}[pod]
    assert (shown["restarts"], shown["last_reason"]) == (before + 2, "Error: killed by a signal")
    assert shown["sidecar_restarts"] == {"logger": 0, "metrics": 0}
    table = stack.podctl("status").stdout
    row = next(line for line in table.splitlines() if line.startswith(pod + " "))
    assert row.split()[1:5] == ["3/3", "1/1", "Running", str(before + 2)]
    assert row.endswith("Error: killed by a signal")


@pytest.mark.parametrize("role", ["logger", "metrics"])
def test_kill_9_of_a_sidecar_restarts_it_alone_while_the_app_keeps_serving(stack, role):
    pod, program = "user", f"user-{role}"
    app_pid, before = stack.pid("user-app"), stack.pods()[pod]
    poller = Poller(stack.apps[pod] + "/", prefix=f"sidecar-{role}").start()
    try:
        stack.wait_for(lambda: len(poller.ok) >= 10, 15, "the client getting answers")
        old = stack.pid(program)
        os.kill(old, signal.SIGKILL)

        def back():
            p = stack.pods()[pod]
            restarted = p["sidecar_restarts"][role] == before["sidecar_restarts"][role] + 1
            return restarted and p["ready"] and stack.pid(program) not in (0, old)
        stack.wait_for(back, 30, f"{program} restarted and the pod Ready again")
        served = len(poller.ok)
        stack.wait_for(lambda: len(poller.ok) >= served + 10, 15, "answers after the restart")
    finally:
        poller.stop()
    assert not poller.failures, f"the app failed while {role} was down: {poller.failures[:5]}"
    assert stack.pid("user-app") == app_pid
    after = stack.pods()[pod]
    assert after["restarts"] == before["restarts"] and after["app_pid"] == app_pid
    assert after["sidecar_last_reason"][role] == "Error: killed by a signal"
    # what the app wrote while its logger was down is shipped by the new one, none lost
    stack.wait_for(lambda: not missing_ids(stack, pod, poller.ok), 30,
                   f"all {len(poller.ok)} request ids in the aggregator")


def test_pod_status_is_served_as_json_and_as_prometheus_metrics(stack):
    pods = stack.pods()
    assert set(pods) == set(PODS)
    assert requests.get(stack.controller_url + "/ready", timeout=5).status_code == 200
    one = requests.get(stack.controller_url + "/pods/product", timeout=5).json()
    assert one["pod"] == "product" and one["phase"] == "Running"
    missing = requests.get(stack.controller_url + "/pods/nosuch", timeout=5)
    assert missing.status_code == 404 and "nosuch" in missing.json()["error"]
    text = requests.get(stack.controller_url + "/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    pods = stack.pods()  # the same moment as the page, as near as two requests get
    ready = {s.labels["pod"]: s.value for s in families["podvisor_pod_ready"].samples}
    assert ready == {name: float(p["ready"]) for name, p in pods.items()}
    restarts = {s.labels["pod"]: s.value for s in families["podvisor_pod_restarts"].samples}
    assert restarts == {name: float(p["restarts"]) for name, p in pods.items()}
    assert restarts["product"] >= 2  # the kills above
    samples = families["podvisor_pod_phase"].samples
    phases = {(s.labels["pod"], s.labels["phase"]) for s in samples if s.value == 1}
    assert phases == {(name, "Running") for name in PODS}


# -- fixture pods: liveness, memory, completion ------------------------------------------------------
def test_a_hung_app_is_restarted_by_liveness_within_period_times_threshold(podvisor_factory):
    liveness = {"http_get": "/health", "period_seconds": 0.5, "timeout_seconds": 0.5, "failure_threshold": 3}
    pod = podapp_pod(probes={"startup": FAST_STARTUP, "liveness": liveness})
    stack = podvisor_factory(podapp_spec(hung=pod))
    pid, sidecars = stack.pid("hung-app"), sidecar_pids(stack, "hung")
    hung_at = time.monotonic()
    requests.get(stack.apps["hung"] + "/hang", timeout=5).raise_for_status()
    with pytest.raises(requests.Timeout):
        requests.get(stack.apps["hung"] + "/health", timeout=0.3)
    assert alive(pid), "hung, not dead: the process must still be there"

    def restarted():
        p = stack.pods()["hung"]
        return p if p["restarts"] == 1 else None
    # period x threshold, plus one probe timeout and slack for a loaded machine
    budget = liveness["period_seconds"] * liveness["failure_threshold"] + liveness["timeout_seconds"] + 3.0
    snap = stack.wait_for(restarted, budget, "the liveness probe to kill the hung app")
    took = time.monotonic() - hung_at
    print(f"\nliveness: hung app killed {took:.2f}s after it hung (period x threshold = "
          f"{liveness['period_seconds'] * liveness['failure_threshold']:.1f}s)")
    assert snap["last_reason"].startswith("Liveness probe failed: HTTP GET /health: "), snap
    assert not alive(pid)
    stack.wait_for(lambda: stack.pods()["hung"]["ready"], 20, "the restarted app Ready")
    assert requests.get(stack.apps["hung"] + "/health", timeout=5).ok
    assert stack.pid("hung-app") != pid and sidecar_pids(stack, "hung") == sidecars


def test_an_app_over_its_memory_limit_is_restarted_as_oomkilled(podvisor_factory):
    stack = podvisor_factory(podapp_spec(hog=podapp_pod(memory_limit="64MB")))
    pid, sidecars = stack.pid("hog-app"), sidecar_pids(stack, "hog")
    assert psutil.Process(pid).memory_info().rss < 64 * 1024**2
    try:
        requests.get(stack.apps["hog"] + "/alloc?mb=96", timeout=10)
    except requests.ConnectionError:
        pass  # killed before it could answer: fine, that is the point

    def restarted():
        p = stack.pods()["hog"]
        return p if p["restarts"] == 1 and p["app_pid"] not in (None, pid) else None
    snap = stack.wait_for(restarted, 20, "the app killed over its memory limit and restarted")
    assert snap["last_reason"] == "OOMKilled" and snap["status"] in ("OOMKilled", "Running"), snap
    assert not alive(pid)
    stack.wait_for(lambda: stack.pods()["hog"]["ready"], 20, "the restarted app Ready")
    assert requests.get(stack.apps["hog"] + "/", timeout=5).text == "hello from hog-service"
    assert sidecar_pids(stack, "hog") == sidecars
    table = stack.podctl("status").stdout
    assert any(line.startswith("hog ") and line.endswith("OOMKilled") for line in table.splitlines()), table


def test_a_pod_whose_app_exits_0_under_never_succeeds_drains_and_leaves_no_orphan(podvisor_factory):
    stack = podvisor_factory(podapp_spec(job=podapp_pod(restart_policy="never"), other=podapp_pod()))
    other = {n: stack.pid(f"other-{n}") for n in ("app", "logger", "metrics")}
    app_pid = stack.pid("job-app")
    grandchild = int(requests.get(stack.apps["job"] + "/spawn", timeout=5).text)
    assert alive(grandchild) and os.getpgid(grandchild) != app_pid, "the grandchild has left the app's group"
    try:
        requests.get(stack.apps["job"] + "/exit?code=0", headers={"X-Request-ID": "job-last"}, timeout=5)
    except requests.ConnectionError:
        pass  # it may exit before the answer is out

    snap = stack.wait_for(lambda: (p := stack.pods()["job"])["phase"] == "Succeeded" and p, 30,
                          "the job pod Succeeded")
    assert (snap["status"], snap["restarts"], snap["ready"], snap["app_pid"]) == ("Completed", 0, False, None)
    assert (snap["last_reason"], snap["last_exit_code"]) == ("Completed", 0)
    states = {n: stack.info(f"job-{n}")["statename"] for n in ("app", "logger", "metrics")}
    assert states == {"app": "EXITED", "logger": "STOPPED", "metrics": "STOPPED"}
    assert not alive(grandchild), "the app's grandchild outlived the pod"
    # the logger drained before it stopped: the job's last lines are stored
    messages = [e["message"] for e in stack.logs(pod="job", limit=1000)]
    assert "exiting with code 0" in messages, messages[-5:]
    # the other pod never noticed
    assert {n: stack.pid(f"other-{n}") for n in other} == other
    assert stack.pods()["other"]["ready"] and stack.pods()["other"]["restarts"] == 0
    assert requests.get(stack.controller_url + "/ready", timeout=5).status_code == 200  # Succeeded is done
    status = stack.podctl("status")
    assert status.returncode == 3, status.stdout + status.stderr  # the job is not running
    assert any(line.startswith("job ") and "Completed" in line for line in status.stdout.splitlines())


# -- a stop under load ---------------------------------------------------------------------------------
def test_stopping_the_stack_while_requests_are_logged_loses_no_line(podvisor_factory, tmp_path):
    from podvisor.testing.harness import load_spec_dict
    spec = load_spec_dict(None)
    for pod in ("order", "gateway"):
        del spec["pods"][pod]  # two pods are enough, and stop faster
    stack = podvisor_factory(spec)
    pollers = {pod: Poller(stack.apps[pod] + "/", prefix=f"stop-{pod}", pace=0.005).start()
               for pod in ("user", "product")}
    try:
        stack.wait_for(lambda: all(len(p.ok) >= 20 for p in pollers.values()), 20, "requests flowing")
        shutdown_at = time.time()
        supervisorctl = [sys.executable, "-m", "supervisor.supervisorctl", "-c", str(stack.conf)]
        ctl = subprocess.run([*supervisorctl, "shutdown"], capture_output=True, text=True, timeout=30,
                             env=stack.env())
        assert ctl.returncode == 0, ctl.stdout + ctl.stderr
        stack.proc.wait(60)
    finally:
        for p in pollers.values():
            p.stop()
    assert stack.proc.returncode == 0, stack.output()
    assert not wait_for_gone(stack.descendants, 5), "processes outlived supervisord"
    log = (stack.state_dir / "supervisord.log").read_text()
    for pod in pollers:
        assert re.search(rf"(stopped|exited): {pod}-logger \(exit status 0", log), \
            "a logger could not ship everything in time"
    during = sum(1 for p in pollers.values() for t in p.ok_at if t >= shutdown_at)
    answered = sum(len(p.ok) for p in pollers.values())
    print(f"\nstop under load: {answered} requests answered, {during} of them after the shutdown began")
    assert during > 0, "no request was answered while the stack stopped: the test proved nothing"

    stack.start()  # the same state directory
    for pod, poller in pollers.items():
        stack.wait_for(lambda pod=pod, poller=poller: not missing_ids(stack, pod, poller.ok), 30,
                       f"every answered {pod} request id in the aggregator after the restart")
