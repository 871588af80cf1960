"""The gateway pod: nginx as a pod's app, in front of the demo pods, under a real supervisord.

The default stack's `gateway` routes /user/, /product/ and /order/ with the prefix stripped; a
second, small stack puts a gateway with a 2 s read timeout in front of the steerable fixture app
(tests/fixtures/podapp.py, `/slow?seconds=S`) for the timeout, the down upstream and the graceful stop.
"""
from __future__ import annotations

import copy
import json
import os
import re
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from podvisor.testing.harness import StackHandle
from tests.fixtures.lifecycle import FAST_BACKOFF, podapp_pod, supervisord_log
from tests.fixtures.load import Load

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


def rid() -> str:
    return "gw-" + uuid.uuid4().hex


def sidecar_sample(stack: StackHandle, pod: str, name: str, **labels: str) -> float | None:
    text = requests.get(stack.metrics[pod] + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_routes_answer_through_the_gateway_with_the_prefix_stripped(stack):
    gateway = stack.apps["gateway"]
    direct = requests.get(stack.apps["user"] + "/users/1", timeout=5)
    via = requests.get(gateway + "/user/users/1", timeout=5)
    assert via.status_code == 200 and via.json() == direct.json()
    assert requests.get(gateway + "/product/products/2", timeout=5).json()["name"] == "Wireless Mouse"
    hello = requests.get(gateway + "/order/", timeout=5)
    assert hello.status_code == 200 and hello.text == "Hello from order-service"
    # a request without an id gets one from nginx; one that has an id keeps it: one header either way
    assert re.fullmatch(r"[0-9a-f]{32}", hello.headers["X-Request-ID"]), hello.headers
    given = requests.get(gateway + "/user/", headers={"X-Request-ID": "gw-given-1"}, timeout=5)
    assert given.headers["X-Request-ID"] == "gw-given-1"
    # the apps' own errors pass through; a path no route takes is the gateway's JSON 404
    missing_user = requests.get(gateway + "/user/users/999", timeout=5)
    assert missing_user.status_code == 404 and missing_user.json()["ok"] is False
    for path in ("/", "/nope/users/1", "/userx"):
        unknown = requests.get(gateway + path, timeout=5)
        assert unknown.status_code == 404 and unknown.headers["Content-Type"] == "application/json", path
        assert unknown.json() == {"ok": False, "error": "no route: the gateway routes /user/, /product/, /order/"}
    assert requests.get(gateway + "/healthz", timeout=5).json() == {"status": "healthy"}
    # nginx's own refusal of a body over the apps' 1 MiB limit is JSON too
    too_big = requests.post(gateway + "/user/users", data=b"x" * (2 * 1024 * 1024),
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert too_big.status_code == 413 and too_big.json() == {"ok": False, "error": "request body over 1 MiB"}


def test_one_request_id_is_found_in_the_gateways_access_line_and_every_pod_it_reached(stack):
    request_id = rid()
    resp = requests.post(stack.apps["gateway"] + "/order/orders", json={"user_id": 1, "product_id": 3, "quantity": 1},
                         headers={"X-Request-ID": request_id}, timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.headers["X-Request-ID"] == request_id

    def everywhere() -> list[dict] | None:
        entries = stack.logs(request_id=request_id)
        return entries if {e["pod"] for e in entries} >= {"gateway", "order", "user", "product"} else None
    entries = stack.wait_for(everywhere, 15, "the order's request id in the gateway's and all three pods' logs")
    (access,) = [e for e in entries if e["pod"] == "gateway"]
    assert (access["source"], access["logger"], access["level"]) == ("access.log", "nginx.access", "info")
    assert (access["method"], access["path"], access["status"]) == ("POST", "/order/orders", 201)
    assert access["service_name"] == "gateway" and access["client"] == "127.0.0.1"
    assert access["upstream"] == f"127.0.0.1:{stack.spec.pod('order').port}" and access["request_time"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["timestamp"]), access["timestamp"]
    # the order app saw the path without the gateway's prefix, and passed the id on to user and product
    assert any(e["pod"] == "order" and e.get("path") == "/orders" for e in entries), entries
    # the access line is counted per route by the gateway's logger, re-exposed by its metrics sidecar
    stack.wait_for(lambda: sidecar_sample(stack, "gateway", "podvisor_logger_http_requests_total",
                                          route="/order/", status_class="2xx"), 10, "the /order/ request counted")
    # nginx's plain-text error log is shipped too, one entry per line at nginx's level
    notices = stack.wait_for(lambda: [e for e in stack.logs(pod="gateway", limit=1000)
                                      if e.get("logger") == "nginx.error" and e.get("nginx_level") == "notice"],
                             10, "nginx's startup notices in the aggregator")
    assert notices[0]["level"] == "info" and notices[0]["source"] == "error.log"


def test_kill_9_of_the_nginx_master_restarts_it_under_backoff_while_the_other_pods_serve(stack):
    before = stack.pods()["gateway"]
    master = stack.pid("gateway-app")
    workers = psutil.Process(master).children()
    assert workers, "nginx runs worker processes"
    sidecars = {role: stack.pid(f"gateway-{role}") for role in ("logger", "metrics")}
    sup = supervisord_log(stack).mark()
    os.kill(master, signal.SIGKILL)
    assert requests.get(stack.apps["user"] + "/", timeout=5).text == "Hello from user-service"

    def restarted() -> dict | None:
        p = stack.pods()["gateway"]
        return p if p["restarts"] == before["restarts"] + 1 and p["app_pid"] not in (None, master) and p["ready"] \
            else None
    snap = stack.wait_for(restarted, 20, "nginx restarted after kill -9 of its master")
    assert snap["last_reason"] == "Error: killed by a signal"
    exited = sup.first(r"exited: gateway-app \(terminated by SIGKILL")
    spawned = sup.first(rf"spawned: 'gateway-app' with pid {snap['app_pid']}")
    assert exited and spawned, stack.output()
    assert spawned[0] - exited[0] >= snap["restart_delay_seconds"] - 0.01, (exited, spawned, snap)
    # the orphaned workers of the killed master (still holding the port) were killed with its group
    assert not [w.pid for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    assert requests.get(stack.apps["gateway"] + "/product/", timeout=5).text == "Hello from product-service"
    assert {role: stack.pid(f"gateway-{role}") for role in sidecars} == sidecars
    assert all(p["ready"] for p in stack.pods().values())


def test_apply_with_a_changed_route_reloads_nginx_without_a_new_master(stack, tmp_path):
    gateway = stack.apps["gateway"]
    master, metrics = stack.pid("gateway-app"), stack.pid("gateway-metrics")
    data = copy.deepcopy(stack.spec_dict)
    data["pods"]["gateway"]["gateway"]["routes"]["/catalog/"] = "product"
    spec = tmp_path / "pods.json"
    spec.write_text(json.dumps(data))
    applied = stack.podctl("apply", "-f", str(spec), "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr + stack.output()
    assert "pod/gateway reloaded" in applied.stdout and "pod/user unchanged" in applied.stdout, applied.stdout

    # nginx takes the new config in its new workers (HUP is asynchronous): poll for the new route
    stack.wait_for(lambda: requests.get(gateway + "/catalog/products/1", timeout=5).status_code == 200, 10,
                   "the new route answering")
    assert requests.get(gateway + "/catalog/products/1", timeout=5).json()["name"] == "Laptop"
    assert requests.get(gateway + "/user/", timeout=5).text == "Hello from user-service"
    assert stack.pid("gateway-app") == master, "a reload, not a restart: the same nginx master"
    assert stack.pid("gateway-metrics") == metrics
    pod = stack.pods()["gateway"]
    assert pod["ready"], pod
    assert any(e["reason"] == "Reloaded" for e in pod["events"]), pod["events"]
    # the logger was re-created with the new prefixes: the new route is counted as itself
    stack.wait_for(lambda: sidecar_sample(stack, "gateway", "podvisor_logger_http_requests_total",
                                          route="/catalog/", status_class="2xx"), 10, "/catalog/ counted")

    restored = stack.podctl("apply", "-f", str(_write(tmp_path / "back.json", stack.spec_dict)), "--timeout", "60")
    assert restored.returncode == 0 and "pod/gateway reloaded" in restored.stdout, restored.stdout + restored.stderr
    stack.wait_for(lambda: requests.get(gateway + "/catalog/", timeout=5).status_code == 404, 10,
                   "the route gone again")
    assert stack.pid("gateway-app") == master


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


# -- a gateway in front of a slow app: timeouts, a down upstream, a graceful stop ---------------------
@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHandle]:
    spec = {"pods": {
        "slow": podapp_pod(),
        "edge": {"grace_seconds": 10, "backoff": dict(FAST_BACKOFF),
                 "gateway": {"routes": {"/slow/": "slow"}, "read_timeout_seconds": 2, "connect_timeout_seconds": 1}},
    }}
    handle = StackHandle(tmp_path_factory.mktemp("edge"), spec)
    try:
        yield handle.start(60)
    finally:
        handle.stop()


def test_an_upstream_timeout_is_a_json_504(edge):
    resp = requests.get(edge.apps["edge"] + "/slow/slow?seconds=4", timeout=10)
    assert resp.status_code == 504 and resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"ok": False, "error": "upstream timed out"}
    assert requests.get(edge.apps["edge"] + "/slow/", timeout=5).text == "hello from slow-service"


def test_a_down_upstream_is_a_json_502_and_nginxs_error_is_shipped_at_error_level(edge):
    edge.rpc.stop("slow-app")  # as `supervisorctl stop slow-app`: left stopped by the controller
    try:
        resp = requests.get(edge.apps["edge"] + "/slow/", headers={"X-Request-ID": "gw-down-1"}, timeout=10)
        assert resp.status_code == 502 and resp.json() == {"ok": False, "error": "upstream unavailable"}
        assert resp.headers["X-Request-ID"] == "gw-down-1"

        def refused() -> list[dict]:
            return [e for e in edge.logs(pod="edge", level="error", limit=1000)
                    if e.get("logger") == "nginx.error" and "connect() failed" in e["message"]]
        (entry, *_) = edge.wait_for(refused, 10, "nginx's connect() error in the aggregator")
        assert entry["nginx_level"] == "error" and entry["request"] == "GET /slow/ HTTP/1.1"
        assert entry["timestamp"].endswith("Z") and entry["client"] == "127.0.0.1"
        access = edge.wait_for(lambda: edge.logs(request_id="gw-down-1"), 10, "the 502's access line")
        assert access[0]["status"] == 502 and access[0]["level"] == "error"
    finally:
        started = edge.podctl("start", "slow", "--timeout", "30")
        assert started.returncode == 0, started.stdout + started.stderr


def test_nginx_inherits_the_held_socket_and_a_rolling_restart_fails_no_request(edge):
    master = edge.pid("edge-app")
    error_log = (edge.pod_dir("edge") / "logs" / "error.log").read_text()
    assert 'using inherited sockets from "3;4;"' in error_log, error_log[-2000:]  # NGINX, set by the launcher
    pod = edge.pods()["edge"]
    assert pod["socket"] == "held", pod
    load = Load(edge.apps["edge"] + "/slow/").start()
    load.after_round()
    restarted = edge.podctl("restart", "edge", "--timeout", "60")
    load.after_round()
    load.stop()
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert not load.failed, f"{len(load.failed)} of {load.ok + len(load.failed)} failed: {load.failed[:5]}"
    new = edge.pods()["edge"]["app_pid"]
    assert new not in (None, master) and not psutil.pid_exists(master)
    # the new master (slot 1) writes its own access log, shipped under its own file identity
    logs = edge.pod_dir("edge") / "logs"
    assert (logs / "access-1.log").exists() or (logs / "access.log").stat().st_size, sorted(os.listdir(logs))
    assert requests.get(edge.apps["edge"] + "/slow/", timeout=5).text == "hello from slow-service"


def test_a_stop_during_a_slow_request_lets_it_finish(edge):
    """Last of the module: it leaves the gateway stopped. SIGQUIT is nginx's graceful stop."""
    request_id = rid()
    answer: dict[str, requests.Response] = {}

    def ask() -> None:
        answer["r"] = requests.get(edge.apps["edge"] + "/slow/slow?seconds=1.5", timeout=10,
                                   headers={"X-Request-ID": request_id})

    client = threading.Thread(target=ask)
    client.start()
    app_log = edge.pod_dir("slow") / "logs" / "app.log"
    edge.wait_for(lambda: f'"slow request started", "logger": "podapp", "request_id": "{request_id}"'
                  in app_log.read_text(), 10, "the slow request in flight at the app")
    stopped = edge.podctl("stop", "edge", "--timeout", "30")
    client.join(15)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert answer["r"].status_code == 200 and answer["r"].text == "slow done"
    error_log = (edge.pod_dir("edge") / "logs" / "error.log").read_text()
    assert "gracefully shutting down" in error_log and "signal 3 (SIGQUIT) received" in error_log, error_log[-2000:]
    # the pod stopped in order: the logger shipped the request's access line before it exited
    (access,) = [e for e in edge.logs(request_id=request_id) if e["pod"] == "edge"]
    assert access["status"] == 200 and access["request_time"] >= 1.0
    assert edge.pods()["edge"]["phase"] == "Stopped"
