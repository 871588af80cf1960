"""podctl against a real stack: status, start/stop/restart in order, wait --ready, exit codes."""
from __future__ import annotations

import json

import pytest
import requests

from podvisor.supervisord.render import conf as render
from podvisor.testing import harness
from tests.fixtures.lifecycle import (
    assert_app_stopped_before_its_sidecars,
    marks_for,
    podapp_pod,
    podapp_spec,
    supervisord_log,
)

pytestmark = pytest.mark.e2e
PODS = ("user", "product", "order", "gateway")
EXIT_OK, EXIT_FAIL, EXIT_NOT_RUNNING, EXIT_UNREACHABLE = 0, 1, 3, 4


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def pids(stack, pod: str) -> dict[str, int]:
    """The pod's processes by role; the app's wherever its replica runs (a rolling restart moves it
    to the other slot)."""
    return {"app": stack.pods()[pod]["app_pid"], **{role: stack.pid(f"{pod}-{role}") for role in ("logger", "metrics")}}


def ok(result) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def test_status_prints_a_table_and_json_and_exits_0_when_every_pod_runs(stack):
    result = stack.podctl("status")
    assert result.returncode == EXIT_OK, ok(result)
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE", "LAST", "REASON"]
    assert {row.split()[0] for row in rows} == set(PODS)
    for row in rows:
        name, ready, replicas, status, restarts, age = row.split()[:6]
        assert (ready, replicas, status, restarts) == ("3/3", "1/1", "Running", "0"), row
        assert age[-1] in "smhd" and age[:-1].isdigit()

    as_json = stack.podctl("status", "--json")
    assert as_json.returncode == EXIT_OK, ok(as_json)
    pods = {p["pod"]: p for p in json.loads(as_json.stdout)["pods"]}
    assert set(pods) == set(PODS)
    for name, p in pods.items():
        shown = (p["phase"], p["ready"], p["containers_ready"], p["app_pid"])
        assert shown == ("Running", True, 3, stack.pid(f"{name}-app"))

    one = stack.podctl("status", "user")
    assert one.returncode == EXIT_OK and len(one.stdout.splitlines()) == 2, ok(one)
    unknown = stack.podctl("status", "nosuch")
    assert unknown.returncode == EXIT_FAIL and "nosuch" in unknown.stderr, ok(unknown)


def test_stop_stops_the_app_before_its_sidecars_and_start_brings_the_pod_back_in_order(stack):
    before = pids(stack, "user")
    marks = marks_for(stack, "user")
    stopped = stack.podctl("stop", "user")
    assert stopped.returncode == EXIT_OK and "pod user stopped" in stopped.stdout, ok(stopped)
    assert {r: stack.info(f"user-{r}")["statename"] for r in before} == dict.fromkeys(before, "STOPPED")
    assert_app_stopped_before_its_sidecars(stack, "user", marks)
    snap = stack.pods()["user"]
    shown = (snap["phase"], snap["status"], snap["desired"], snap["app_pid"])
    assert shown == ("Stopped", "Stopped", "stopped", None)
    # the app's shutdown lines were shipped before its logger exited
    shutdown = [e for e in stack.logs(pod="user", limit=50) if "shutting down" in e.get("message", "")]
    assert shutdown, "the app's shutdown line is not in the aggregator"

    status = stack.podctl("status")
    assert status.returncode == EXIT_NOT_RUNNING, ok(status)
    (row,) = [line for line in status.stdout.splitlines() if line.startswith("user ")]
    assert row.split()[1:4] == ["0/3", "0/1", "Stopped"], row
    # a pod stopped on purpose does not hold readiness hostage
    assert requests.get(stack.controller_url + "/ready", timeout=5).status_code == 200
    waited = stack.podctl("wait", "--ready", "--timeout", "5")
    assert waited.returncode == EXIT_OK, ok(waited)
    assert all(stack.pods()[p]["phase"] == "Running" for p in ("product", "order"))

    sup = supervisord_log(stack).mark()
    started = stack.podctl("start", "user")
    assert started.returncode == EXIT_OK and "pod user started" in started.stdout, ok(started)
    assert stack.pods()["user"]["ready"], "podctl start returns once the pod is Ready"
    after = pids(stack, "user")
    assert all(after[r] not in (0, before[r]) for r in before)
    spawned = {r: sup.first(rf"spawned: 'user-{r}' with pid {after[r]}")[0] for r in after}
    assert spawned["logger"] <= spawned["app"] and spawned["metrics"] <= spawned["app"], spawned
    assert requests.get(stack.apps["user"] + "/", timeout=5).ok


def test_restart_all_rolls_every_pods_app_and_returns_when_ready(stack):
    """The demo pods' sockets are held by podvisor: a restart starts a new app process beside the
    old one and stops the old one once the new one is Ready; the sidecars keep running."""
    before = {pod: pids(stack, pod) for pod in PODS}
    result = stack.podctl("restart", "--all", "--timeout", "90")
    assert result.returncode == EXIT_OK, ok(result)
    assert sorted(line.split(":")[0] for line in result.stdout.split("\n")[:len(PODS)]) == [
        f"pod {p} restarted" for p in sorted(PODS)]
    pods = stack.pods()
    for pod in PODS:
        assert pods[pod]["ready"] and pods[pod]["restarts"] == 0
        after = pids(stack, pod)
        assert after["app"] != before[pod]["app"], (pod, before[pod], after)
        if pods[pod]["socket"] != "held":  # the gateway binds its own port: stopped and started in order
            continue
        assert {r: after[r] for r in ("logger", "metrics")} == {r: before[pod][r] for r in ("logger", "metrics")}
        assert [e for e in pods[pod]["events"] if e["reason"] == "Replaced"], pods[pod]["events"]
    assert stack.podctl("status").returncode == EXIT_OK


def test_restart_of_a_pod_that_binds_its_own_port_stops_it_in_order_then_starts_it(podvisor_factory):
    spec = podapp_spec(own=podapp_pod())  # the fixture app, socket = "app" (the default for an app of yours)
    stack = podvisor_factory(spec)
    before = {role: stack.pid(f"own-{role}") for role in ("app", "logger", "metrics")}
    marks = marks_for(stack, "own")
    result = stack.podctl("restart", "own", "--timeout", "60")
    assert result.returncode == EXIT_OK and result.stdout.strip() == "pod own restarted", ok(result)
    assert_app_stopped_before_its_sidecars(stack, "own", marks)
    after = {role: stack.pid(f"own-{role}") for role in ("app", "logger", "metrics")}
    assert all(after[r] not in (0, before[r]) for r in after), (before, after)


def test_control_of_an_unknown_pod_fails_with_a_message(stack):
    result = stack.podctl("stop", "nosuch")
    assert result.returncode == EXIT_FAIL and "no pod named 'nosuch'" in result.stdout, ok(result)


def test_logs_reads_the_pods_lines_from_the_aggregator(stack):
    requests.get(stack.apps["order"] + "/", headers={"X-Request-ID": "podctl-logs"}, timeout=5)
    stack.wait_for(lambda: stack.logs(request_id="podctl-logs"), 15, "the line shipped")
    result = stack.podctl("logs", "order", "--limit", "1000")  # --limit: the old name of --tail
    assert result.returncode == EXIT_OK, ok(result)
    lines = result.stdout.splitlines()
    assert lines and all(line.startswith("order ") for line in lines)
    assert any("GET / 200" in line for line in lines)


def test_wait_ready_times_out_with_exit_1_then_succeeds_once_the_pod_is_ready(podvisor_factory):
    gate = podapp_pod(env={"FIXTURE_GATE": "closed"})
    gate["probes"]["readiness"] = {"http_get": "/ready", "period_seconds": 0.2}
    stack = podvisor_factory(podapp_spec(gate=gate, open=podapp_pod()), start=False)
    stack.start(wait_ready=False)
    stack.wait_for(lambda: stack.pods()["gate"]["phase"] == "Running" and stack.pods()["open"]["ready"], 30,
                   "both apps running")

    timed_out = stack.podctl("wait", "--ready", "--timeout", "1")
    assert timed_out.returncode == EXIT_FAIL, ok(timed_out)
    assert "not ready after 1s: gate (Running 2/3)" in timed_out.stdout, ok(timed_out)
    assert requests.get(stack.controller_url + "/ready", timeout=5).status_code == 503
    status = stack.podctl("status")
    assert status.returncode == EXIT_OK, ok(status)  # running, just not ready
    assert any(line.startswith("gate ") and "2/3" in line for line in status.stdout.splitlines())

    requests.get(stack.apps["gate"] + "/gate/open", timeout=5).raise_for_status()
    ready = stack.podctl("wait", "--ready", "--timeout", "30")
    assert ready.returncode == EXIT_OK and ready.stdout.strip() == "all 2 pods ready", ok(ready)


def test_every_command_exits_4_when_supervisord_cannot_be_reached(podvisor_factory):
    stack = podvisor_factory(start=False)
    stack.root.mkdir(parents=True, exist_ok=True)
    render.write_files(render.render_files(stack.spec, stack.conf, harness.bin_dir()))  # a conf, nobody home
    commands = (["status"], ["status", "--json"], ["stop", "user"], ["restart", "--all"],
                ["wait", "--ready", "--timeout", "1"])
    for args in commands:
        result = stack.podctl(*args, timeout=30)
        assert result.returncode == EXIT_UNREACHABLE, (args, ok(result))
        assert "cannot reach supervisord" in result.stderr, (args, ok(result))


def test_wait_ready_right_after_supervisord_starts_waits_for_the_controller(podvisor_factory):
    # `supervisord -c stack.conf && podctl wait --ready`: the controller is not listening yet.
    stack = podvisor_factory(start=False)
    stack.start(wait_ready=False)
    waited = stack.podctl("wait", "--ready", "--timeout", "60")
    assert waited.returncode == EXIT_OK, ok(waited)
    assert all(p["ready"] for p in stack.pods().values())
