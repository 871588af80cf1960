"""The whole stack through the pytest plugin: three pods and the aggregator under a real supervisord."""
from __future__ import annotations

import uuid

import pytest
import requests

from podvisor.testing.harness import wait_for

pytestmark = pytest.mark.e2e
SERVICES = {"user": "user-service", "product": "product-service", "order": "order-service"}


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def rid() -> str:
    return "t-" + uuid.uuid4().hex


@pytest.mark.parametrize("pod", list(SERVICES))
def test_hello_is_logged_enriched_and_counted_with_pod_labels(stack, pod):
    request_id = rid()
    resp = requests.get(stack.apps[pod] + "/", headers={"X-Request-ID": request_id}, timeout=5)
    assert resp.status_code == 200 and resp.text == f"Hello from {SERVICES[pod]}"
    assert resp.headers["X-Request-ID"] == request_id

    def shipped():
        return [e for e in stack.logs(request_id=request_id) if e.get("path") == "/"]
    (entry,) = stack.wait_for(shipped, 10, f"{pod} access line in the aggregator")
    assert entry["service_name"] == SERVICES[pod]
    assert entry["environment"] == "production"
    assert entry["pod"] == pod and entry["host"] and entry["source"] == "app.log"
    assert entry["method"] == "GET" and entry["status"] == 200 and "duration_ms" in entry
    assert entry["timestamp"].endswith("Z")

    text = requests.get(stack.metrics[pod] + "/metrics", timeout=5).text
    lines = [ln for ln in text.splitlines() if ln.startswith("http_requests_total{")]
    assert any(f'service_name="{SERVICES[pod]}"' in ln and 'environment="production"' in ln
               and f'pod="{pod}"' in ln and 'path="/"' in ln for ln in lines), text[:2000]


def test_order_spanning_three_services_is_followed_by_its_request_id(stack):
    request_id = rid()
    users = requests.get(stack.apps["user"] + "/users", timeout=5).json()["users"]
    products = requests.get(stack.apps["product"] + "/products", timeout=5).json()["products"]
    laptop = next(p for p in products if p["name"] == "Laptop")
    resp = requests.post(stack.apps["order"] + "/orders", json={"user_id": users[0]["id"], "product_id": laptop["id"],
                         "quantity": 2}, headers={"X-Request-ID": request_id}, timeout=10)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert order["total"] == pytest.approx(laptop["price"] * 2)
    after = requests.get(f'{stack.apps["product"]}/products/{laptop["id"]}', timeout=5).json()
    assert after["stock"] == laptop["stock"] - 2

    def across_pods():
        pods = {e["pod"] for e in stack.logs(request_id=request_id)}
        return pods if pods >= {"user", "product", "order"} else None
    stack.wait_for(across_pods, 10, "the order's request id in all three pods' logs")


def test_aggregator_restart_keeps_stored_logs(stack):
    request_id = rid()
    requests.get(stack.apps["user"] + "/", headers={"X-Request-ID": request_id}, timeout=5)
    stack.wait_for(lambda: stack.logs(request_id=request_id), 10, "line stored before restart")
    old_pid = stack.pid("aggregator")
    stack.rpc.stop("aggregator")
    stack.rpc.start("aggregator")
    wait_for(lambda: requests.get(stack.aggregator_url + "/health", timeout=1).ok, 15, "aggregator back")
    assert stack.pid("aggregator") != old_pid
    assert stack.logs(request_id=request_id), "stored line lost across the aggregator restart"


def test_metrics_sidecar_pages_are_valid_and_the_controller_reports_ready(stack):
    pods = stack.pods()
    assert set(pods) == {*SERVICES, "gateway"}
    assert all(p["ready"] and p["containers_ready"] == 3 for p in pods.values()), pods
    status = stack.podctl("status")
    assert status.returncode == 0, status.stderr
    for pod in (*SERVICES, "gateway"):
        assert pod in status.stdout and "3/3" in status.stdout


def test_teardown_leaves_no_process(podvisor_factory):
    handle = podvisor_factory()
    assert handle.descendants(), "the stack should be running"
    handle.stop()
    assert not handle.descendants()
    assert not handle.alive()
