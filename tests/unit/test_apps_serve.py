"""main() really serves, and shuts down gracefully. The only app tests that open (loopback) sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from podvisor.core.serving import Server
from podvisor.testing.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 20.0


def log_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


@pytest.mark.parametrize(("module", "service", "signum"), [
    ("podvisor.apps.user", "user-service", signal.SIGTERM),
    ("podvisor.apps.order", "order-service", signal.SIGINT),
])
def test_main_serves_on_port_0_and_exits_0_on_signal(
    tmp_path: Path, module: str, service: str, signum: signal.Signals
) -> None:
    log_file = tmp_path / "logs" / "app.log"
    env = {**os.environ, "APP_PORT": "0", "APP_DB": str(tmp_path / "data" / "app.db"),
           "APP_LOG_FILE": str(log_file), "APP_THREADS": "2", "PYTHONPATH": str(REPO)}
    out_file = tmp_path / "process.out"

    def output() -> str:
        app_log = log_file.read_text() if log_file.exists() else ""
        return f"stdout/stderr:\n{out_file.read_text()}\napp.log:\n{app_log}"

    with out_file.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", module], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        def started() -> dict | None:
            return next((line for line in log_lines(log_file) if " listening on " in line["message"]), None)

        startup = wait_for(started, DEADLINE, "the startup line", output=output, procs=[proc])
        port = startup["port"]
        assert port > 0 and startup["message"] == f"{service} listening on 127.0.0.1:{port}"
        response = requests.get(f"http://127.0.0.1:{port}/health", headers={"X-Request-ID": "probe-1"},
                                timeout=5)
        assert response.status_code == 200 and response.json()["status"] == "healthy"
        assert response.headers["X-Request-ID"] == "probe-1"

        proc.send_signal(signum)
        assert proc.wait(timeout=DEADLINE) == 0, output()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=DEADLINE)
    messages = [line["message"] for line in log_lines(log_file)]
    assert "GET /health 200" in messages
    name = signal.Signals(signum).name
    assert messages[-2:] == [f"received {name}, shutting down", "shutdown complete"]


def test_graceful_server_finishes_in_flight_requests_then_stops_accepting() -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_app(environ, start_response):
        entered.set()
        release.wait(DEADLINE)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"finished"]

    server = Server(slow_app, host="127.0.0.1", port=0, threads=2, ident="test", drain_seconds=DEADLINE)
    port = server.port
    assert server.addresses[0] == ("127.0.0.1", port)
    serving = server.serve_in_background("test-server")
    results: dict = {}
    client = threading.Thread(target=lambda: results.update(
        response=requests.get(f"http://127.0.0.1:{port}/", timeout=DEADLINE)))
    try:
        client.start()
        assert entered.wait(DEADLINE), "the request never reached the app"
        server.request_stop("SIGTERM")

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused, DEADLINE, "the listening socket to close")
        assert serving.is_alive(), "the server stopped before its in-flight request finished"
    finally:
        release.set()
        client.join(DEADLINE)
        serving.join(DEADLINE)
    assert not serving.is_alive()
    assert results["response"].status_code == 200 and results["response"].text == "finished"


def test_a_connection_accepted_before_the_stop_is_answered_though_its_request_comes_after() -> None:
    """A rolling restart stops a replica while connections keep coming: one the server accepted
    just before its stop, whose request arrives a moment later, is served, not dropped as idle."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = Server(app, host="127.0.0.1", port=0, threads=1, ident="test", drain_seconds=DEADLINE)
    port = server.port
    serving = server.serve_in_background("test-server")
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as early:
        wait_for(lambda: len(server._map) > 1, DEADLINE, "the server to accept the connection")
        server.request_stop("SIGTERM")
        wait_for(lambda: not server._listeners[0].accepting, DEADLINE, "the drain to start")
        early.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := early.recv(4096):
            answer += chunk
    serving.join(DEADLINE)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), answer
