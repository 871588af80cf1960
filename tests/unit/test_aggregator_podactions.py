"""POST /api/v1/pods/POD/ACTION (start, stop, restart) and what the pods overview shows of them,
with a fake supervisord and a fake controller (no sockets)."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from podvisor.aggregator.app import create_app
from podvisor.aggregator.credentials import mint
from podvisor.aggregator.podactions import PodActions
from podvisor.aggregator.pods import OP_POLL_SECONDS, PodsMonitor, app_replicas
from podvisor.core.supervisor import SupervisorConfig
from podvisor.testing.waiting import wait_for
from tests.unit.test_aggregator_fixtures import make_settings, state_of, token_of

CONTROLLER = "http://127.0.0.1:9100"
SOCKET = SupervisorConfig("unix:///tmp/pv-test/supervisor.sock")


class FakeRPC:
    """What PodActions asks of supervisord: one remote communication event per action."""

    def __init__(self, config: SupervisorConfig) -> None:
        self.config = config
        self.sent: list[tuple[str, str]] = []
        self.failure: Exception | None = None

    def send_remote(self, kind: str, data: str) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append((kind, data))


class FakeController:
    def __init__(self) -> None:
        self.pods = [pod("user"), pod("order")]
        self.now = 100.0

    def fetch(self, url: str, timeout: float) -> str:
        assert url == CONTROLLER + "/pods"
        return json.dumps({"ok": True, "pods": self.pods})

    def monotonic(self) -> float:
        return self.now


def pod(name: str, **extra: object) -> dict:
    status = {"pod": name, "service": f"{name}-service", "desired": "running", "phase": "Running",
              "status": "Running", "ready": True, "containers_ready": 4, "containers": 4, "restarts": 1,
              "replicas": 2, "ready_replicas": 2, "age_seconds": 30.0, "last_op": None,
              "ports": {"app": 3000, "metrics": 9101, "logger": 9201, "slots": [20100, 20101, 20102]},
              "container_states": {
                  "app": {"program": f"{name}-app", "state": "Running", "ready": True, "pid": 101, "port": 3000,
                          "own_port": 20100, "restarts": 1, "last_reason": "Error: exit code 3", "active": True},
                  "app-1": {"program": f"{name}-app-1", "state": "Running", "ready": True, "pid": 102,
                            "port": 3000, "own_port": 20101, "restarts": 0, "last_reason": None, "active": True},
                  "app-2": {"program": f"{name}-app-2", "state": "Waiting", "ready": False, "pid": None,
                            "port": 3000, "own_port": 20102, "restarts": 0, "last_reason": None, "active": False},
                  "logger": {"program": f"{name}-logger", "state": "Running", "pid": 103, "active": True},
              }}
    status.update(extra)
    return status


@pytest.fixture
def controller() -> FakeController:
    return FakeController()


@pytest.fixture
def rpc() -> FakeRPC:
    return FakeRPC(SOCKET)


@pytest.fixture
def monitor(controller: FakeController) -> PodsMonitor:
    return PodsMonitor(CONTROLLER, (), fetch=controller.fetch, monotonic=controller.monotonic)


@pytest.fixture
def app(tmp_path: Path, monitor: PodsMonitor, rpc: FakeRPC) -> Iterator[Flask]:
    application = create_app(make_settings(tmp_path), pods=monitor, start_background=False,
                             actions=PodActions(SOCKET, rpc=lambda config: rpc))
    monitor.poll_once()
    yield application
    state_of(application).close()


def bearer(app: Flask) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(app)}"}


def error(reply, status: int, fragment: str) -> None:
    assert reply.status_code == status, (reply.status_code, reply.get_data(as_text=True)[:300])
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json["ok"] is False and fragment in reply.json["error"], reply.json


def test_an_action_goes_to_the_controller_through_supervisord(app, rpc):
    reply = app.test_client().post("/api/v1/pods/user/restart", headers=bearer(app))
    assert reply.status_code == 202, reply.json
    op_id = reply.json["op_id"]
    assert reply.json == {"ok": True, "pod": "user", "action": "restart", "op_id": op_id}
    assert len(op_id) == 12 and rpc.sent == [("podvisor", f"restart user {op_id}")]


def test_actions_need_the_token_or_a_session_even_when_reads_are_open(app, rpc):
    client = app.test_client()
    assert client.get("/api/v1/pods").status_code == 200  # reads are open on loopback...
    error(client.post("/api/v1/pods/user/stop"), 401, "missing or invalid bearer token")  # ...actions not
    error(client.post("/api/v1/pods/user/stop", headers={"Authorization": "Bearer wrong"}), 401, "bearer")
    logger = mint(token_of(app), "user", "user-service")
    error(client.post("/api/v1/pods/user/stop", headers={"Authorization": f"Bearer {logger}"}), 403,
          "may only ship logs")
    assert rpc.sent == []


def test_a_session_must_send_its_csrf_token(app, rpc):
    client = app.test_client()
    login = client.post("/api/v1/session", json={"token": token_of(app)})
    csrf = login.json["csrf_token"]
    error(client.post("/api/v1/pods/user/stop"), 403, "X-CSRF-Token")
    error(client.post("/api/v1/pods/user/stop", headers={"X-CSRF-Token": csrf[:-2] + "xx"}), 403, "X-CSRF-Token")
    other = app.test_client()
    other_csrf = other.post("/api/v1/session", json={"token": token_of(app)}).json["csrf_token"]
    error(client.post("/api/v1/pods/user/stop", headers={"X-CSRF-Token": other_csrf}), 403,
          "X-CSRF-Token")  # another session's value
    assert rpc.sent == []
    ok = client.post("/api/v1/pods/user/stop", headers={"X-CSRF-Token": csrf, "Origin": "http://localhost",
                                                        "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 202 and rpc.sent == [("podvisor", f"stop user {ok.json['op_id']}")]


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://localhost:1"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-site"},
])
def test_cross_origin_requests_are_refused_even_with_the_token_and_csrf(app, rpc, headers):
    client = app.test_client()
    csrf = client.post("/api/v1/session", json={"token": token_of(app)}).json["csrf_token"]
    reply = client.post("/api/v1/pods/user/restart", headers={**headers, "X-CSRF-Token": csrf, **bearer(app)})
    error(reply, 403, "cross-site request refused")
    assert rpc.sent == []


def test_a_foreign_host_is_refused(app, rpc):
    reply = app.test_client().post("/api/v1/pods/user/restart", headers={**bearer(app), "Host": "evil.example"})
    error(reply, 421, "DNS rebinding")
    assert rpc.sent == []


@pytest.mark.parametrize(("path", "status", "fragment"), [
    ("/api/v1/pods/nobody/restart", 404, "no pod named 'nobody' (pods: order, user)"),
    ("/api/v1/pods/user%20--all/restart", 404, "no pod named 'user --all'"),
    ("/api/v1/pods/user/reboot", 404, "no pod action 'reboot'"),
])
def test_unknown_pods_and_actions_are_404(app, rpc, path, status, fragment):
    error(app.test_client().post(path, headers=bearer(app)), status, fragment)
    assert rpc.sent == []


def test_a_get_is_405_json(app):
    reply = app.test_client().get("/api/v1/pods/user/restart")
    error(reply, 405, "")
    assert "POST" in reply.headers["Allow"]


def test_without_supervisord_or_controller_answers_503(tmp_path: Path, controller, rpc):
    app = create_app(make_settings(tmp_path), start_background=False,
                     pods=PodsMonitor(CONTROLLER, (), fetch=controller.fetch),
                     actions=PodActions(SupervisorConfig()))
    try:
        client = app.test_client()
        error(client.post("/api/v1/pods/user/start", headers=bearer(app)), 503, "controller has not answered")
        state_of(app).pods.poll_once()
        error(client.post("/api/v1/pods/user/start", headers=bearer(app)), 503, "SUPERVISOR_SERVER_URL is not set")
    finally:
        state_of(app).close()


def test_an_unreachable_supervisord_is_503(app, rpc):
    rpc.failure = ConnectionRefusedError(111, "Connection refused")
    error(app.test_client().post("/api/v1/pods/user/start", headers=bearer(app)), 503,
          "cannot reach supervisord at unix:///tmp/pv-test/supervisor.sock")


def test_the_overview_shows_replicas_ports_age_and_the_last_action(app, controller):
    controller.now += 4.5  # the answer was read 4.5 s ago: the age is as of now
    data = app.test_client().get("/api/v1/pods").json
    user = next(p for p in data["pods"] if p["pod"] == "user")
    assert user["age_seconds"] == 34.5 and user["replicas"] == 2 and user["ready_replicas"] == 2
    assert user["ports"] == {"app": 3000, "metrics": 9101, "logger": 9201, "slots": [20100, 20101, 20102]}
    assert [(r["slot"], r["pid"], r["port"], r["restarts"]) for r in user["app_replicas"]] == [
        ("app", 101, 20100, 1), ("app-1", 102, 20101, 0)]  # the idle slot app-2 is not a replica
    assert user["app_replicas"][0]["last_reason"] == "Error: exit code 3"
    assert "container_states" not in user


def test_app_replicas_of_a_pod_without_a_held_socket_show_the_pods_port():
    status = {"container_states": {"app": {"program": "x-app", "pid": 7, "port": 8080, "active": True},
                                   "metrics": {"pid": 8, "active": True}}}
    assert app_replicas(status) == [{"slot": "app", "program": "x-app", "state": None, "ready": None, "pid": 7,
                                     "restarts": None, "last_reason": None, "port": 8080}]
    assert app_replicas({"container_states": None}) == []


def test_an_action_is_watched_until_done_and_ready(app, controller, monitor):
    reply = app.test_client().post("/api/v1/pods/order/restart", headers=bearer(app))
    op_id = reply.json["op_id"]
    assert monitor._watched  # the poll loop now asks every OP_POLL_SECONDS
    assert OP_POLL_SECONDS < monitor.interval
    controller.pods[1] = pod("order", last_op={"id": op_id, "action": "restart", "done": False})
    monitor.poll_controller()
    assert op_id in monitor._watched
    controller.pods[1] = pod("order", ready=False, last_op={"id": op_id, "action": "restart", "done": True, "ok": True})
    monitor.poll_controller()
    assert op_id in monitor._watched  # done, but not Ready yet
    controller.pods[1] = pod("order", last_op={"id": op_id, "action": "restart", "done": True, "ok": True})
    monitor.poll_controller()
    assert not monitor._watched
    stopped = app.test_client().post("/api/v1/pods/order/stop", headers=bearer(app)).json["op_id"]
    controller.pods[1] = pod("order", ready=False, last_op={"id": stopped, "action": "stop", "done": True,
                                                            "ok": True})
    monitor.poll_controller()
    assert not monitor._watched  # a stop is over once done


def test_the_poll_loop_asks_the_controller_often_while_an_action_runs(controller):
    asked: list[float] = []

    def fetch(url: str, timeout: float) -> str:
        asked.append(time.monotonic())
        return controller.fetch(url, timeout)

    monitor = PodsMonitor(CONTROLLER, (), interval=60, fetch=fetch)
    monitor.start()
    try:
        wait_for(lambda: len(asked) >= 1, 10, "the first poll")
        monitor.watch("user", "op1", "restart")  # never reported done: watched until its deadline
        wait_for(lambda: len(asked) >= 4, 10, "three quick polls of the controller", interval=0.01)
    finally:
        monitor.stop()
    assert not monitor._thread.is_alive()
    assert asked[3] - asked[1] < 2 * OP_POLL_SECONDS + 1.0, "not every 60 s interval"
