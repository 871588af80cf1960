"""No refused request (issue 16): podvisor holds each pod's listening socket, so an app's restart makes
requests slower, never refused; replicas share the socket; restarts roll one replica at a time.

The load is the replaced system's own script, scaled down: rounds of five concurrent requests, each
on a new connection (as curl makes them), 0.1 s apart, every answer counted.
"""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.lifecycle import podapp_pod, podapp_spec
from tests.fixtures.load import CONCURRENT, Load

pytestmark = pytest.mark.e2e


def listen_fds(pid: int) -> dict[str, str]:
    env = psutil.Process(pid).environ()
    return {k: env.get(k, "") for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")}


PROBES = {"startup": {"http_get": "/health", "period_seconds": 0.1, "failure_threshold": 100},
          "readiness": {"http_get": "/health", "period_seconds": 0.2}}


@pytest.fixture
def stack(podvisor_factory):
    spec = podapp_spec(one=podapp_pod(socket="held", probes=PROBES),
                       two=podapp_pod(socket="held", replicas=2, probes=PROBES))
    return podvisor_factory(spec)


def test_the_app_gets_its_socket_from_podvisor_the_systemd_way(stack):
    pid = stack.pid("one-app")
    assert listen_fds(pid) == {"LISTEN_FDS": "2", "LISTEN_PID": str(pid), "LISTEN_FDNAMES": "http:replica"}
    pod = stack.pods()["one"]
    assert pod["socket"] == "held" and len(pod["ports"]["slots"]) == 2
    assert requests.get(stack.apps["one"] + "/", timeout=5).ok
    # the controller holds the port too: it outlives the app
    controller = next(p for p in stack.descendants() if "podvisor-controller" in " ".join(p.cmdline()))
    ports = {c.laddr.port for c in controller.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}
    assert stack.spec.pod("one").port in ports


def test_kill_9_of_a_single_replica_app_refuses_no_request(stack):
    load = Load(stack.apps["one"] + "/").start()
    load.after_round()
    old = stack.pid("one-app")
    os.kill(old, signal.SIGKILL)  # between two rounds: no request is in flight
    stack.wait_for(lambda: stack.pid("one-app") not in (0, old), 30, "the app restarted")
    for _ in range(10):
        load.after_round()
    load.stop()
    assert not load.failed, f"{len(load.failed)} of {load.ok + len(load.failed)} failed: {load.failed[:5]}"
    assert load.ok >= 50


@pytest.mark.parametrize("pod", ["one", "two"])
def test_a_rolling_restart_fails_no_request(stack, pod):
    before = {c["program"]: c["pid"] for c in stack.pods()[pod]["container_states"].values() if c["pid"]}
    load = Load(stack.apps[pod] + "/").start()
    load.after_round()
    proc = stack.podctl("restart", pod, "--timeout", "60")
    load.after_round()
    load.stop()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not load.failed, f"{len(load.failed)} of {load.ok + len(load.failed)} failed: {load.failed[:5]}"
    after = {c["program"]: c["pid"] for c in stack.pods()[pod]["container_states"].values() if c["pid"]}
    apps_before = {pid for name, pid in before.items() if "-app" in name}
    apps_after = {pid for name, pid in after.items() if "-app" in name}
    assert apps_before and not apps_before & apps_after, (before, after)
    assert len(apps_after) == stack.spec.pod(pod).replicas
    assert before[f"{pod}-logger"] == after[f"{pod}-logger"], "the sidecars are not restarted"


def test_a_replica_that_fails_its_liveness_probe_is_replaced_while_the_other_serves(podvisor_factory):
    probes = {"startup": {"http_get": "/health", "period_seconds": 0.1, "failure_threshold": 100},
              "liveness": {"http_get": "/health", "period_seconds": 0.3, "timeout_seconds": 0.5,
                           "failure_threshold": 2}}
    stack = podvisor_factory(podapp_spec(two=podapp_pod(socket="held", replicas=2, probes=probes)))
    states = stack.pods()["two"]["container_states"]
    slot_port = states["app"]["own_port"]  # this replica alone (the shared port reaches either)
    old = stack.pid("two-app")
    load = Load(stack.apps["two"] + "/").start()
    load.after_round()
    requests.get(f"http://127.0.0.1:{slot_port}/hang", timeout=5)  # this replica's /health hangs from now on
    stack.wait_for(lambda: stack.pid("two-app") not in (0, old), 30, "the hung replica replaced")
    load.after_round()
    load.stop()
    assert stack.pods()["two"]["container_states"]["app"]["last_reason"].startswith("Liveness probe failed")
    # requests the hung process had taken when it was killed fail; every other one is answered
    assert load.ok > 0 and len(load.failed) <= CONCURRENT, load.failed


def test_apply_of_a_changed_command_rolls_the_pod_and_fails_no_request(stack, tmp_path: Path):
    data = json.loads(json.dumps(stack.spec_dict))
    data["pods"]["one"]["env"] = {"CHANGED": "yes"}
    spec = tmp_path / "pods.json"
    spec.write_text(json.dumps(data))
    old = stack.pid("one-app")
    logger = stack.pid("one-logger")
    load = Load(stack.apps["one"] + "/").start()
    load.after_round()
    proc = stack.podctl("apply", "-f", str(spec), "--timeout", "90")
    load.after_round()
    load.stop()
    assert proc.returncode == 0 and "pod/one configured" in proc.stdout, proc.stdout + proc.stderr
    assert not load.failed, load.failed[:5]
    new = stack.pods()["one"]["app_pid"]
    assert new not in (None, old) and psutil.Process(new).environ().get("CHANGED") == "yes"
    assert stack.pid("one-logger") == logger, "a changed app command rolls the app only"


def test_a_pod_stopped_on_purpose_refuses_connections_and_serves_again_when_started(stack):
    """Held sockets are for restarts: a pod stopped on purpose lets go of them, so a client is refused
    at once (as by a stopped server) instead of waiting in a backlog nothing accepts from."""
    stopped = stack.podctl("stop", "one", "--timeout", "30")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    def refused() -> bool:
        try:
            requests.get(stack.apps["one"] + "/", timeout=2)
        except requests.ConnectionError as exc:
            return "refused" in str(exc).lower()
        return False
    stack.wait_for(refused, 10, "the stopped pod's port refusing connections")
    started = stack.podctl("start", "one", "--timeout", "30")
    assert started.returncode == 0, started.stdout + started.stderr
    assert requests.get(stack.apps["one"] + "/", timeout=5).ok
    assert listen_fds(stack.pid("one-app"))["LISTEN_FDS"] == "2"


def test_status_describe_and_top_show_each_replica(stack):
    two = stack.pods()["two"]
    pids = [s["pid"] for role, s in two["container_states"].items() if role.startswith("app") and s["pid"]]
    assert len(pids) == 2, two["container_states"]
    status = stack.podctl("status", "two", "-o", "wide")
    assert status.returncode == 0, status.stdout + status.stderr
    header, row = status.stdout.splitlines()
    assert row.split()[header.split().index("REPLICAS")] == "2/2"
    assert ",".join(map(str, sorted(pids))) in ",".join(sorted(row.split()[header.split().index("PIDS")]
                                                           .split("/")[0].split(",")))
    described = stack.podctl("describe", "two")
    assert described.returncode == 0, described.stderr
    text = described.stdout
    assert "Replicas:       2 wanted, 2 ready (Ready needs 1)" in text, text
    assert "Socket:         held by podvisor" in text and "(replica 1)" in text and "Own port:" in text
    assert all(f"PID:        {pid}" in text for pid in pids), text
    top = stack.podctl("top", "two")
    assert top.returncode == 0, top.stderr
    rows = [line.split() for line in top.stdout.splitlines()[1:]]
    assert sorted(int(r[2]) for r in rows if r[1].startswith("app")) == sorted(pids), top.stdout
    one = stack.podctl("describe", "one").stdout
    assert "Replicas:       1 wanted, 1 ready" in one and "(replica" in one  # a spare slot beside it


def test_each_replicas_lines_are_shipped_exactly_once_across_a_rolling_restart(stack):
    """Every answered request's line reaches the aggregator once, from the log file of the replica
    that served it (app.log, app-1.log, app-2.log: each slot writes its own)."""
    tag = f"roll-{os.getpid()}-{time.monotonic_ns()}"
    load = Load(stack.apps["two"] + "/", tag=tag).start()
    load.after_round()
    restarted = stack.podctl("restart", "two", "--timeout", "60")
    load.after_round()
    load.stop()
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert not load.failed and len(load.answered) >= 10, load.failed[:5]

    def shipped() -> list[dict] | None:
        entries = [e for e in stack.logs(pod="two", limit=1000)
                   if (e.get("request_id") or "").startswith(tag)]
        return entries if {e["request_id"] for e in entries} >= set(load.answered) else None
    entries = stack.wait_for(shipped, 30, "every answered request's line in the aggregator")
    ids = [e["request_id"] for e in entries]
    assert len(ids) == len(set(ids)), "a line shipped twice"
    sources = {e["source"] for e in entries}
    assert len(sources) >= 2 and sources <= {"app.log", "app-1.log", "app-2.log"}, sources
