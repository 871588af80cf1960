"""The pods spec as data: a stack of pods, each with its command, ports, probes, backoff and grace.

Built from TOML by `podvisor.supervisord.spec.parse`; read by the renderer, the controller and the
Prometheus config. Frozen: the stack a process runs with never changes under it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from podvisor.core.budget import DEFAULT_GRACE_SECONDS, StackBudget, StopBudget
from podvisor.core.supervisor import ROLES, program_name

RESTART_POLICIES = ("always", "on-failure", "never")
# {user.url} / {user.port} in a pod's env: another pod's address, filled in by the renderer.
ENV_REF = re.compile(r"\{([a-z][a-z0-9-]*)\.(url|port)\}")


@dataclass(frozen=True)
class Probe:
    """A Kubernetes-style probe: exactly one of http_get, tcp_socket, exec."""

    http_get: str | None = None
    tcp_socket: bool = False
    exec: tuple[str, ...] | None = None
    port: int | None = None
    initial_delay_seconds: float = 0.0
    period_seconds: float = 10.0
    timeout_seconds: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @property
    def kind(self) -> str:
        return "http_get" if self.http_get else "tcp_socket" if self.tcp_socket else "exec"


@dataclass(frozen=True)
class Backoff:
    """Crash-restart delays: initial * multiplier**n, capped, +-jitter, reset after a stable run."""

    initial_seconds: float = 0.5
    max_seconds: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    reset_after_seconds: float = 30.0


@dataclass(frozen=True)
class Gateway:
    """nginx as the pod's app, its config rendered from the spec: URL prefixes routed to pods."""

    routes: tuple[tuple[str, str], ...] = ()  # (prefix, pod name or http://host:port), in order
    connect_timeout_seconds: float = 2.0
    read_timeout_seconds: float = 30.0
    binary: str = "nginx"


@dataclass(frozen=True)
class Pod:
    name: str
    service: str
    command: str
    port: int
    metrics_port: int
    logger_port: int
    restart_policy: str = "always"
    max_restarts: int | None = None
    memory_limit_bytes: int | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    env: dict[str, str] = field(default_factory=dict)
    startup_probe: Probe | None = None
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    backoff: Backoff = Backoff()
    logger_env: dict[str, str] = field(default_factory=dict)  # tuning knobs of the logging sidecar
    depends_on: tuple[str, ...] = ()  # pods whose readiness this pod's app waits for
    stderr_level: str = "WARNING"  # the level of a stderr line that does not say its own
    metrics_path: str | None = "/metrics"  # None: the app serves no Prometheus metrics
    shipping_stall_seconds: float = 60.0  # no acknowledged line for this long while lines wait: degraded
    stop_signal: str = "TERM"  # docker's STOPSIGNAL: nginx stops gracefully on QUIT
    reload_signal: str | None = None  # the app re-reads its config on it (nginx: HUP)
    metrics_adapter: str = "prometheus"  # how the metrics sidecar reads the app: prometheus or nginx
    gateway: Gateway | None = None
    replicas: int = 1  # app processes on the pod's one socket
    min_ready: int = 1  # Ready needs this many ready replicas
    socket: str = "held"  # held: podvisor binds the port and passes it on; app: the app binds it itself
    slot_ports: tuple[int, ...] = ()  # each app slot's own port (probes, scrapes), when the socket is held

    @property
    def slots(self) -> int:
        """App processes there can be: the replicas, plus one a rolling restart starts before it
        stops an old one (only where the socket is held: two processes cannot bind one port)."""
        return self.replicas + (1 if self.socket == "held" else 0)

    @property
    def app_programs(self) -> tuple[str, ...]:
        return tuple(program_name(self.name, "app", slot) for slot in range(self.slots))

    @property
    def all_programs(self) -> tuple[str, ...]:
        """Every supervisord program of the pod: its app slots and its sidecars."""
        return (*self.app_programs, self.programs["logger"], self.programs["metrics"])

    @property
    def probe_paths(self) -> tuple[str, ...]:
        """Requests that are probes or scrapes, not traffic: marked so logs can hide them."""
        paths = [p.http_get for p in (self.startup_probe, self.readiness_probe, self.liveness_probe)
                 if p is not None and p.http_get]
        if self.metrics_path:
            paths.append(self.metrics_path)
        return tuple(dict.fromkeys(paths))

    @property
    def programs(self) -> dict[str, str]:
        """supervisord program names by role."""
        return {role: program_name(self.name, role) for role in ROLES}

    @property
    def budget(self) -> StopBudget:
        """Every stop deadline of this pod, derived from its grace period."""
        return StopBudget(self.grace_seconds)


@dataclass(frozen=True)
class Stack:
    pods: tuple[Pod, ...]
    environment: str = "production"
    state_dir: str = "../var"
    host: str = "127.0.0.1"
    aggregator_port: int = 8080
    controller_port: int = 9100
    log_max_bytes: int = 10 * 1024**2
    log_backups: int = 5
    read_auth: str = "auto"  # aggregator reads: auto (open on loopback), always, never
    # A fleet (docs/scaling-out.md): the aggregator's store (AGGREGATOR_STORE, a ClickHouse cluster),
    # where the loggers ship (a store host's TLS endpoint) and the CA they verify it with, and the
    # fleet's master token (every aggregator of the fleet holds the same, so any one takes any logger).
    store: str | None = None
    ingest_url: str | None = None
    ca_file: str | None = None
    token_file: str | None = None
    # Where the ports a pod does not name are taken from (lowest free first).
    app_ports: tuple[int, int] = (3000, 3999)
    metrics_ports: tuple[int, int] = (9101, 9199)
    logger_ports: tuple[int, int] = (9201, 9299)

    @property
    def budget(self) -> StackBudget:
        return StackBudget(tuple(pod.budget for pod in self.pods))

    def pod(self, name: str) -> Pod:
        for pod in self.pods:
            if pod.name == name:
                return pod
        raise KeyError(name)
