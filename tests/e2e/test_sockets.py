"""No refused request (issue 16): podvisor holds each pod's listening socket, so an app's restart makes
requests slower, never refused; replicas share the socket; restarts roll one replica at a time.

The load is the replaced system's own script, scaled down: rounds of five concurrent requests, each
on a new connection (as curl makes them), 0.1 s apart, every answer counted.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests

from tests.fixtures.lifecycle import podapp_pod, podapp_spec

pytestmark = pytest.mark.e2e
CONCURRENT = 5
PACE = 0.1


@dataclass
class Load:
    """Rounds of CONCURRENT requests on fresh connections until stopped; the test acts between rounds."""

    url: str
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    slowest: float = 0.0
    rounds: int = 0

    def __post_init__(self) -> None:
        self.stopped = threading.Event()
        self.between = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.pool = ThreadPoolExecutor(CONCURRENT)

    def _one(self) -> None:
        began = time.monotonic()
        try:
            resp = requests.get(self.url, headers={"Connection": "close"}, timeout=30)
            outcome = None if resp.status_code < 500 else f"HTTP {resp.status_code}"
        except requests.RequestException as exc:
            outcome = type(exc).__name__ + (": refused" if "refused" in str(exc).lower() else "")
        took = time.monotonic() - began
        with self.between:
            self.slowest = max(self.slowest, took)
            if outcome is None:
                self.ok += 1
            else:
                self.failed.append(outcome)

    def _run(self) -> None:
        while not self.stopped.is_set():
            for future in [self.pool.submit(self._one) for _ in range(CONCURRENT)]:
                future.result()
            with self.between:
                self.rounds += 1
                self.between.notify_all()
            self.stopped.wait(PACE)

    def start(self) -> Load:
        self.thread.start()
        return self

    def after_round(self) -> None:
        """Return right after a round has finished: no request is in flight (the 0.1 s pause)."""
        with self.between:
            target = self.rounds + 1
            self.between.wait_for(lambda: self.rounds >= target, timeout=30)

    def stop(self) -> Load:
        self.stopped.set()
        self.thread.join(60)
        self.pool.shutdown()
        print(f"\n{self.url}: {self.ok} answered, {len(self.failed)} failed, slowest {self.slowest * 1000:.0f} ms")
        return self


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
    slot_port = states["app"]["port"]
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
