"""Kubernetes-style probes (http_get, tcp_socket, exec) and their threshold bookkeeping."""
from __future__ import annotations

import http.client
import json
import socket
import subprocess
from dataclasses import dataclass
from typing import Any

from podvisor.supervisord.spec.model import Probe


@dataclass(frozen=True)
class Result:
    ok: bool
    message: str


def run(probe: Probe, host: str, port: int) -> Result:
    """Run a probe once, bounded by its timeout_seconds."""
    port = probe.port or port
    timeout = probe.timeout_seconds or 1.0
    if probe.http_get:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", probe.http_get, headers={"User-Agent": "podvisor-probe"})
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return Result(False, f"HTTP GET {probe.http_get}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
        # Kubernetes counts 200-399 as success.
        return Result(200 <= status < 400, f"HTTP GET {probe.http_get}: {status}")
    if probe.tcp_socket:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as exc:
            return Result(False, f"TCP {host}:{port}: {exc}")
        return Result(True, f"TCP {host}:{port}: connected")
    try:
        proc = subprocess.run(list(probe.exec or ()), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Result(False, f"exec {probe.exec[0]}: timed out after {timeout}s")
    except OSError as exc:
        return Result(False, f"exec {probe.exec[0]}: {exc}")
    return Result(proc.returncode == 0, f"exec {probe.exec[0]}: exit {proc.returncode}")


def fetch_json(host: str, port: int, path: str = "/health", timeout: float = 1.0) -> dict[str, Any] | None:
    """GET a JSON object (a sidecar's /health); None when it does not answer one in time."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": "podvisor-probe"})
        resp = conn.getresponse()
        data = json.loads(resp.read()) if resp.status == 200 else None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    return data if isinstance(data, dict) else None


class ProbeState:
    """When a probe is due and whether it currently passes, by success/failure thresholds."""

    def __init__(self, probe: Probe, started_at: float):
        self.probe = probe
        self.next_at = started_at + probe.initial_delay_seconds
        self.successes = 0
        self.failures = 0
        self.passing = False
        self.last: Result | None = None

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def record(self, result: Result, now: float) -> None:
        self.last = result
        self.next_at = now + self.probe.period_seconds
        if result.ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= self.probe.success_threshold:
                self.passing = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= self.probe.failure_threshold:
                self.passing = False

    @property
    def failed(self) -> bool:
        """The failure threshold has been reached (liveness: kill; startup: kill)."""
        return self.failures >= self.probe.failure_threshold
