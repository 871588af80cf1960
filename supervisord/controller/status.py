"""Pod status over HTTP on loopback (read-only JSON and Prometheus metrics).

State-changing requests do not come this way: they arrive as REMOTE_COMMUNICATION events through
supervisord's owner-only unix socket, so whoever may control supervisord may control pods.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)
PHASES = ("Pending", "Running", "Succeeded", "Failed", "Stopped", "Terminating")


def expected_ready(pod: dict) -> bool:
    """Whether a pod counts for "every pod Ready": not one stopped on purpose (podctl stop, or an
    operator's `supervisorctl stop` of one of its programs), nor one that completed. A Failed pod
    counts: it should be serving and is not."""
    return pod["phase"] not in ("Stopped", "Succeeded") and not pod.get("held_by_operator")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(pods: list[dict]) -> str:
    """kube-state-metrics style: one phase series per phase, 1 for the current one."""
    out = [
        "# HELP podvisor_pod_ready Whether the pod is Ready (app readiness passing, sidecars running).",
        "# TYPE podvisor_pod_ready gauge",
    ]
    out += [f'podvisor_pod_ready{{pod="{_label(p["pod"])}"}} {int(p["ready"])}' for p in pods]
    out += ["# HELP podvisor_pod_restarts_total App restarts of the pod since it was (re)started.",
            "# TYPE podvisor_pod_restarts_total counter"]
    out += [f'podvisor_pod_restarts_total{{pod="{_label(p["pod"])}"}} {p["restarts"]}' for p in pods]
    out += ["# HELP podvisor_pod_sidecar_restarts_total Sidecar restarts of the pod.",
            "# TYPE podvisor_pod_sidecar_restarts_total counter"]
    for p in pods:
        pod = _label(p["pod"])
        for role, n in sorted(p["sidecar_restarts"].items()):
            out.append(f'podvisor_pod_sidecar_restarts_total{{pod="{pod}",sidecar="{role}"}} {n}')
    out += ["# HELP podvisor_pod_phase The pod's current phase.", "# TYPE podvisor_pod_phase gauge"]
    for p in pods:
        pod = _label(p["pod"])
        for phase in PHASES:
            out.append(f'podvisor_pod_phase{{pod="{pod}",phase="{phase}"}} {int(p["phase"] == phase)}')
    return "\n".join(out) + "\n"


def make_server(host: str, port: int, pods: Callable[[], list[dict]]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "podvisor-controller"

        def _send(self, status: int, body: str, ctype: str = "application/json") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0].rstrip("/") or "/"
            current = pods()
            if path == "/pods":
                self._send(200, json.dumps({"ok": True, "pods": current}))
            elif path.startswith("/pods/"):
                name = path[len("/pods/"):]
                match = [p for p in current if p["pod"] == name]
                if match:
                    self._send(200, json.dumps(match[0]))
                else:
                    self._send(404, json.dumps({"ok": False, "error": f"no pod named {name!r}"}))
            elif path == "/metrics":
                self._send(200, render_metrics(current), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/health":
                self._send(200, json.dumps({"status": "healthy"}))
            elif path == "/ready":
                ready = all(p["ready"] for p in current if expected_ready(p))
                self._send(200 if ready else 503, json.dumps({"ready": ready}))
            else:
                self._send(404, json.dumps({"ok": False, "error": f"no route {path!r}"}))

        def do_POST(self) -> None:  # noqa: N802
            self._send(405, json.dumps({"ok": False, "error": "read-only: control pods with podctl"}))

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("status http: " + fmt, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def serve_in_background(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="status-http", daemon=True)
    thread.start()
    return thread
