"""podctl describe rendered from the controller's pod JSON: the full contract, and what an older
controller reports (no events, conditions, ports or depends_on)."""
from __future__ import annotations

import re
import time

from podvisor.supervisord.podctl.client import fill_from_spec
from podvisor.supervisord.podctl.describe import describe
from podvisor.supervisord.spec import parse as specmod
from tests.unit.test_controller_podctl import snapshots

NOW = 1_700_000_000.0


def container(program: str, pid: int | None, port: int, state: str = "Running", **extra) -> dict:
    return {"program": program, "state": state, "ready": state == "Running", "pid": pid, "restarts": 0,
            "last_reason": None, "last_exit_code": None, "restart_delay_seconds": None,
            "restart_in_seconds": None, "probes": {"startup": {"passing": True, "last": "HTTP GET /health: 200"}},
            "port": port, "command": f"/opt/bin/{program}", **extra}


FULL = {
    "pod": "order", "service": "order-service", "desired": "running", "phase": "Running",
    "status": "CrashLoopBackOff", "ready": False, "containers_ready": 2, "containers": 3, "restarts": 2,
    "sidecar_restarts": {"logger": 1, "metrics": 0}, "last_reason": "OOMKilled", "age_seconds": 330,
    "depends_on": ["product", "user"], "ports": {"app": 3003, "metrics": 9103, "logger": 9203},
    "container_states": {
        "app": container("order-app", None, 3003, "BackOff", restarts=2, last_reason="OOMKilled",
                         last_exit_code=-9, restart_delay_seconds=1.0, restart_in_seconds=0.4,
                         probes={"liveness": {"passing": False, "last": "HTTP GET /health: TimeoutError"},
                                 "readiness": {"passing": False, "last": None}}),
        "logger": container("order-logger", 4101, 9203, restarts=1),
        "metrics": container("order-metrics", 4102, 9103),
    },
    "conditions": [{"type": "Ready", "status": False, "reason": "ContainersNotReady", "message": "app: BackOff",
                    "since": NOW - 12},
                   {"type": "ShippingStalled", "status": False, "reason": None, "message": None, "since": None}],
    "events": [
        {"time": NOW - 300, "type": "Normal", "reason": "Started", "container": "app", "message": "pid 4000"},
        {"time": NOW - 14, "type": "Warning", "reason": "OOMKilled", "container": "app",
         "message": "RSS 300 MiB over the limit of 256 MiB"},
        {"time": NOW - 13, "type": "Warning", "reason": "BackOff", "container": "app",
         "message": "restarting in 1.0s"},
    ],
}


def block(text: str, role: str) -> str:
    return re.search(rf"^  {role}:\n((?:    .*\n)+)", text, re.M).group(1)


def test_describe_shows_every_field_of_the_contract():
    text = describe(FULL, now=NOW)
    assert re.search(r"^Name:\s+order$", text, re.M)
    assert re.search(r"^Status:\s+CrashLoopBackOff$", text, re.M)
    assert re.search(r"^Ready:\s+False \(2/3 containers\)$", text, re.M)
    assert re.search(r"^Restarts:\s+2 \(sidecars: logger 1\)$", text, re.M)
    assert re.search(r"^Age:\s+5m$", text, re.M)
    assert re.search(r"^Depends on:\s+product, user$", text, re.M)
    assert re.search(r"^Ports:\s+app 3003, metrics 9103, logger 9203$", text, re.M)
    app = block(text, "app")
    assert re.search(r"State:\s+BackOff$", app, re.M) and re.search(r"PID:\s+-$", app, re.M)
    assert re.search(r"Command:\s+/opt/bin/order-app$", app, re.M) and re.search(r"Port:\s+3003$", app, re.M)
    assert re.search(r"Last state:\s+OOMKilled \(exit code -9\)$", app, re.M)
    assert re.search(r"Backoff:\s+restarting in 0.4s \(delay 1s\)$", app, re.M)
    assert re.search(r"liveness\s+failing\s+HTTP GET /health: TimeoutError$", app, re.M)
    assert re.search(r"readiness\s+failing\s+-$", app, re.M)
    assert re.search(r"PID:\s+4101$", block(text, "logger"), re.M)
    assert text.index("  app:") < text.index("  logger:") < text.index("  metrics:")
    conditions = text.split("Conditions:\n")[1].split("Containers:")[0].splitlines()
    assert conditions[0].split() == ["TYPE", "STATUS", "SINCE", "REASON", "MESSAGE"]
    assert conditions[1].split() == ["Ready", "False", "12s", "ContainersNotReady", "app:", "BackOff"]
    events = text.split("Events:\n")[1].splitlines()
    assert events[0].split() == ["AGE", "TIME", "TYPE", "REASON", "CONTAINER", "MESSAGE"]
    clock = time.strftime("%H:%M:%S", time.localtime(NOW - 14))
    assert events[2].split()[:5] == ["14s", clock, "Warning", "OOMKilled", "app"]
    assert events[2].endswith("RSS 300 MiB over the limit of 256 MiB")
    assert [e.split()[3] for e in events[1:]] == ["Started", "OOMKilled", "BackOff"]  # oldest first, as given


def test_describe_of_an_older_controller_shows_what_is_there():
    user = next(p for p in snapshots() if p["pod"] == "user")  # a real runner's snapshot, made older:
    for missing in ("events", "conditions", "ports", "depends_on"):
        user.pop(missing)
    for state in user["container_states"].values():
        state.pop("port")
        state.pop("command")
    text = describe(user, now=NOW)
    assert "Events:\n  <not reported by the controller>" in text
    assert "Conditions:" not in text and "Depends on:" not in text and "Ports:" not in text
    assert re.search(r"^Last reason:\s+Error: exit code 2$", text, re.M)
    assert re.search(r"Port:\s+-$", block(text, "app"), re.M) and re.search(r"Command:\s+-$", block(text, "app"),
                                                                                re.M)
    bare = describe({"pod": "x"}, now=NOW)
    assert "Containers:\n  <not reported by the controller>" in bare and bare.startswith("Name:")


def test_ports_and_the_app_command_come_from_the_spec_when_the_controller_has_none():
    stack = specmod.from_dict({"pods": {"user": {"command": "podvisor-user", "port": 3000, "metrics_port": 9101,
                                                 "logger_port": 9201}}})
    user = next(p for p in snapshots() if p["pod"] == "user")
    user.pop("ports")
    for state in user["container_states"].values():
        state.pop("port")
        state.pop("command")
    filled = fill_from_spec(user, stack)
    text = describe(filled, now=NOW)
    assert re.search(r"^Ports:\s+app 3000, metrics 9101, logger 9201$", text, re.M)
    assert re.search(r"Command:\s+podvisor-user$", block(text, "app"), re.M)
    assert re.search(r"Port:\s+9201$", block(text, "logger"), re.M)
    # what the controller reports wins over the spec
    assert fill_from_spec({**FULL, "pod": "user"}, stack)["ports"] == FULL["ports"]
    assert fill_from_spec(FULL, stack) == FULL  # a pod the spec does not know: unchanged
    assert "ports" not in user  # the controller's answer is not modified
