"""The stop budget end to end: an app is told its drain time, derived from its pod's grace_seconds.

A pod with grace_seconds = 5 runs the real order service, whose upstream (a server in this test)
answers slowly, so a POST /orders is in flight when the pod is stopped.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from podvisor.core.budget import StopBudget
from tests.fixtures.lifecycle import FAST_STARTUP, supervisord_log

pytestmark = pytest.mark.e2e
GRACE = 5.0


class SlowUpstream:
    """The user and product services as the order service calls them; GET /users/1 takes `delay`."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.asked = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                upstream.asked.set()
                time.sleep(upstream.delay)  # the slow part of the request under test
                self._json({"id": 1, "username": "slow_user", "email": "s@example.com"})

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self._json({"ok": True, "product": {"id": 1, "name": "Laptop", "price": 10.0, "stock": 5}})

            def _json(self, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[SlowUpstream]:
    server = SlowUpstream()
    yield server
    server.close()


@pytest.fixture
def order_pod(podvisor_factory, upstream):
    spec = {"stack": {"environment": "test"}, "pods": {"order": {
        "command": "podvisor-order", "grace_seconds": GRACE,
        "env": {"USER_SERVICE_URL": upstream.url, "PRODUCT_SERVICE_URL": upstream.url, "APP_UPSTREAM_TIMEOUT": "30"},
        "probes": {"startup": dict(FAST_STARTUP)},
    }}}
    return podvisor_factory(spec)


def order_in_flight(stack, upstream: SlowUpstream, delay: float) -> dict:
    """Start POST /orders on a thread; return once the app is waiting on its slow upstream."""
    upstream.delay = delay
    outcome: dict = {}

    def post() -> None:
        try:
            resp = requests.post(stack.apps["order"] + "/orders", json={"user_id": 1, "product_id": 1, "quantity": 1},
                                 headers={"X-Request-ID": "in-flight-order"}, timeout=60)
            outcome["status"] = resp.status_code
        except requests.RequestException as exc:
            outcome["error"] = repr(exc)

    threading.Thread(target=post, daemon=True).start()
    stack.wait_for(upstream.asked.is_set, 10, "the order request to reach its upstream")
    return outcome


def stop_app(stack) -> tuple[float, str]:
    """podctl stop; (seconds from the stop until supervisord saw the app end, how it ended)."""
    log = supervisord_log(stack).mark()
    began = time.time()
    proc = stack.podctl("stop", "order", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stamp, line = stack.wait_for(lambda: log.first(r"stopped: order-app \("), 10, "the app's end in supervisord.log")
    return stamp - began, line


def test_the_app_is_told_its_drain_budget(order_pod):
    env = (order_pod.root / "stack.conf").read_text()
    assert f'APP_DRAIN_SECONDS="{StopBudget(GRACE).app_drain_seconds:g}"' in env
    assert f"stopwaitsecs={StopBudget(GRACE).app_stopwaitsecs}\n" in env


def test_a_slow_request_in_flight_finishes_and_the_app_exits_cleanly_within_the_grace(order_pod, upstream):
    outcome = order_in_flight(order_pod, upstream, delay=3.0)
    took, line = stop_app(order_pod)
    assert outcome.get("status") == 201, f"the in-flight order did not finish: {outcome}\n{order_pod.output()}"
    assert "exit status 0" in line, f"the app did not exit cleanly: {line}\n{order_pod.output()}"
    assert took < GRACE, f"the app took {took:.1f}s, over its grace of {GRACE}s"
    assert order_pod.info("order-app")["exitstatus"] == 0


def test_a_request_longer_than_the_grace_is_cut_by_the_app_itself_not_by_sigkill(order_pod, upstream):
    """The app stops its drain at its budget and exits 0 before supervisord would SIGKILL it; a
    fixed drain longer than the grace (15 s before the budget) ended in SIGKILL mid-drain."""
    outcome = order_in_flight(order_pod, upstream, delay=30.0)
    took, line = stop_app(order_pod)
    assert "exit status 0" in line, f"the app was killed instead of ending its drain: {line}\n{order_pod.output()}"
    assert StopBudget(GRACE).app_drain_seconds - 0.5 <= took < GRACE, took
    stderr = (order_pod.pod_dir("order") / "logs" / "app.log").read_text()
    assert "still busy after the drain budget" in stderr
    order_pod.wait_for(lambda: "error" in outcome or "status" in outcome, 10, "the client to see the cut")
