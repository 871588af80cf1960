"""The polyglot example (supervisord/examples/polyglot): nginx, a Go service and a Flask service as pods.

The polyglot commands of docs/gateway.md are run as written, one by one, in a copy of the example whose spec
has ephemeral ports (the `curl` lines get those ports); the Go service's pod is then run under the
test harness through its probes, a `kill -9`, the shipping of its lines and a graceful stop.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest
import requests

from podvisor.testing.harness import MARKER, REPO, free_port, free_range, stack_processes, wait_for_gone
from podvisor.testing.waiting import wait_for

pytestmark = pytest.mark.e2e
EXAMPLE = Path("supervisord/examples/polyglot")
DOC = REPO / "docs" / "gateway.md"
SEED = {"gateway": 8080, "service1": 8001, "service2": 8002, "aggregator": 8090, "controller": 9190}


def doc_commands() -> list[tuple[str, str]]:
    """(command, its comment) for each line of the polyglot block in docs/gateway.md."""
    block = DOC.read_text().split("<!-- polyglot:begin -->")[1].split("<!-- polyglot:end -->")[0]
    commands = []
    for line in block.splitlines():
        if not line.strip() or line.startswith("```"):
            continue
        match = re.match(r"^(.*?)\s+#\s(.*)$", line)
        command, comment = (match.group(1), match.group(2)) if match else (line, "")
        commands.append((command.strip(), comment.strip()))
    return commands


def env(stack_id: str, root: Path) -> dict[str, str]:
    result = dict(os.environ)
    result["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), result.get("PATH", "")])
    result[MARKER] = stack_id  # inherited by supervisord and every process it starts
    if not any(result.get(name) for name in ("GOCACHE", "XDG_CACHE_HOME", "HOME")):
        result["GOCACHE"] = str(root / "gocache")  # go build needs a cache folder
    return result


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's polyglot example (spec and sources) in a temporary root, with
    the Go service built there by the doc's own command."""
    root = tmp_path_factory.mktemp("polyglot")
    def skip(folder: str, names: list[str]) -> set[str]:
        """Not what a build or a render left in the repository's copy: the binary, stack.*."""
        left = {name for name in names if name.startswith("stack.")}
        return left | ({"service1"} if Path(folder).name == "service1" else set())
    shutil.copytree(REPO / EXAMPLE, root / EXAMPLE, ignore=skip)
    build, _ = doc_commands()[0]
    assert "go build" in build, build
    done = subprocess.run(["bash", "-c", build], cwd=root, env=env("build", root), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{build}\n{done.stdout}{done.stderr}"
    assert (root / EXAMPLE / "service1" / "service1").is_file()
    return root


def test_the_doc_commands_bring_up_the_polyglot_stack_and_the_four_seed_urls_answer(example):
    ports = {name: free_port() for name in SEED}
    spec = example / EXAMPLE / "pods.toml"
    text = spec.read_text()
    for old, new in ((f"aggregator_port = {SEED['aggregator']}", f"aggregator_port = {ports['aggregator']}"),
                     (f"controller_port = {SEED['controller']}", f"controller_port = {ports['controller']}"),
                     ('metrics_ports = "9111-9119"', f'metrics_ports = "{free_range()}"'),
                     ('logger_ports = "9211-9219"', f'logger_ports = "{free_range()}"'),
                     *((f"port = {SEED[pod]}\n", f"port = {ports[pod]}\n")
                       for pod in ("gateway", "service1", "service2"))):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    spec.write_text(text)
    stack_id = uuid.uuid4().hex
    state = example / "var" / "polyglot"
    answers = {}
    try:
        for command, comment in doc_commands():
            command = command.replace(f"localhost:{SEED['gateway']}", f"localhost:{ports['gateway']}")
            done = subprocess.run(["bash", "-c", command], cwd=example, env=env(stack_id, example), capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}\n{logs(state)}"
            if command.startswith("curl "):
                assert done.stdout == comment, (command, done.stdout)
                answers[command.split("/", 1)[1]] = done.stdout
            if command.endswith(" status"):
                rows = {line.split()[0]: line.split() for line in done.stdout.splitlines()[1:]}
                assert set(rows) == {"gateway", "service1", "service2"}, done.stdout
                assert all(row[1:4] == ["3/3", "1/1", "Running"] for row in rows.values()), done.stdout
        assert answers == {"service1/ping": '{"service":"1","status":"ok"}',
                           "service1/hello": '{"message":"Hello from Service 1"}',
                           "service2/ping": '{"service":"2","status":"ok"}',
                           "service2/hello": '{"message":"Hello from Service 2"}'}
        # the last command shut the stack down: it goes, leaving nothing behind
        left = wait_for_gone(lambda: stack_processes(stack_id, state), 30)
        assert not left, f"left behind: {[p.cmdline()[:3] for p in left]}\n{logs(state)}"
    finally:
        for proc in stack_processes(stack_id, state):
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.Error:
                pass


def logs(state: Path) -> str:
    files = [state / "supervisord.log", state / "controller.log", *sorted(state.glob("pods/*/logs/*.log")),
             *sorted(state.glob("pods/*/logs/sidecars/*.log"))]
    return "\n".join(f"--- {f} ---\n{f.read_text(errors='replace')[-2000:]}" for f in files if f.is_file())


def test_the_go_services_pod_is_probed_restarted_after_kill_9_and_ships_its_lines(example, podvisor_factory):
    stack = podvisor_factory(example / EXAMPLE / "pods.toml")
    pod = stack.pods()["service1"]
    assert pod["ready"] and pod["probes"]["startup"]["passing"] and pod["probes"]["readiness"]["passing"], pod
    gateway = stack.apps["gateway"]
    request_id = "poly-" + uuid.uuid4().hex
    hello = requests.get(gateway + "/service1/hello", headers={"X-Request-ID": request_id}, timeout=5)
    assert hello.json() == {"message": "Hello from Service 1"} and hello.headers["X-Request-ID"] == request_id

    def followed() -> list[dict] | None:
        entries = stack.logs(request_id=request_id)
        return entries if {e["pod"] for e in entries} == {"gateway", "service1"} else None
    entries = stack.wait_for(followed, 10, "the request id in the gateway's and the Go service's lines")
    (line,) = [e for e in entries if e["pod"] == "service1"]
    assert (line["method"], line["path"], line["status"], line["source"]) == ("GET", "/hello", 200, "app.log")
    assert line["logger"] == "service1" and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
    # its probes reach it, and are marked as probes in its shipped lines
    probes = stack.wait_for(lambda: [e for e in stack.logs(pod="service1", limit=1000)
                                     if e.get("path") == "/health" and e.get("probe") is True], 10,
                            "a probe of the Go service in the aggregator")
    assert probes[0]["status"] == 200
    # the hand-written /metrics passes through its metrics sidecar with the pod labels
    text = requests.get(stack.metrics["service1"] + "/metrics", timeout=5).text
    assert re.search(r'^http_requests_total\{method="GET",path="/hello",status="200",service_name="service1",'
                     r'environment="production",pod="service1",replica="0"\} 1$', text, re.M), text[:3000]
    assert 'http_request_duration_seconds_bucket{path="/hello",le="+Inf",service_name="service1"' in text
    assert re.search(r'^podvisor_target_up\{[^}]*target="app"[^}]*\} 1\.0$', text, re.M), text[:3000]
    promtool = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                              timeout=60)
    assert promtool.returncode == 0 and not (promtool.stdout + promtool.stderr).strip(), promtool.stdout

    # kill -9: only the app restarts (backoff), its sidecars keep their pids, it serves again
    old = stack.pid("service1-app")
    sidecars = {role: stack.pid(f"service1-{role}") for role in ("logger", "metrics")}
    os.kill(old, signal.SIGKILL)

    def restarted() -> dict | None:
        p = stack.pods()["service1"]
        return p if p["restarts"] == 1 and p["app_pid"] not in (None, old) and p["ready"] else None
    snap = stack.wait_for(restarted, 20, "the Go service restarted after kill -9")
    assert snap["last_reason"] == "Error: killed by a signal"
    assert {role: stack.pid(f"service1-{role}") for role in sidecars} == sidecars
    assert requests.get(gateway + "/service1/ping", timeout=5).text == '{"service":"1","status":"ok"}'
    # each start says once for every socket it serves that it listens there: count the pod's own port
    listening = f"service 1 listening on {urlsplit(stack.apps['service1']).netloc}"
    starts = stack.wait_for(lambda: len([e for e in stack.logs(pod="service1", limit=1000)
                                         if e["message"] == listening]) == 2 or None, 10,
                            "both starts of the Go service shipped")
    assert starts

    # a stop is SIGTERM: it drains and says so, and the logger ships those last lines before it exits
    stopped = stack.podctl("stop", "service1")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    messages = [e["message"] for e in stack.logs(pod="service1", limit=1000)]
    assert "received SIGTERM, shutting down" in messages and messages[-1] == "shutdown complete", messages[-5:]
    wait_for(lambda: requests.get(gateway + "/service1/ping", timeout=5).status_code == 502, 10,
             "the gateway answering 502 for the stopped service")


def test_the_go_service_takes_its_socket_the_systemd_way(example, tmp_path):
    """LISTEN_FDS=1 and LISTEN_PID=its pid: it serves on fd 3 instead of binding APP_PORT."""
    binary = example / EXAMPLE / "service1" / "service1"
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(16)
        port = listening.getsockname()[1]
        # bash moves the socket to fd 3 and sets LISTEN_PID to its own pid, which exec keeps
        launcher = 'exec 3<&"$1"; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0"'
        proc = subprocess.Popen(["bash", "-c", launcher, str(binary), str(listening.fileno())],
                                pass_fds=(listening.fileno(),), env={**os.environ, "APP_PORT": "1",
                                                                      "APP_LOG_FILE": str(tmp_path / "app.log")})
    try:
        answer = wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/ping", timeout=2), 10,
                          "the Go service answering on the passed socket", procs=[proc])
        assert answer.text == '{"service":"1","status":"ok"}'
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    lines = [json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines()]
    assert lines[0]["message"] == f"service 1 listening on 127.0.0.1:{port}"
    assert lines[-1]["message"] == "shutdown complete"
