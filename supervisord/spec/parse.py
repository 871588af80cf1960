"""Reading the pods spec: TOML -> validated `Stack`, and back (`to_dict`) for the resolved copy.

`load(path)` parses and validates; every refusal is a `SpecError` whose message names the pod and
the key (``pod 'user': key 'prot' is unknown``), so the renderer can print one clear line.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from podvisor.core.settings import parse_size as _parse_bytes
from podvisor.supervisord.spec.model import ENV_REF, RESTART_POLICIES, Backoff, Gateway, Pod, Probe, Stack

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


class SpecError(ValueError):
    """A spec value that cannot be used; the message is the one line an operator sees."""


def parse_size(value: Any, where: str) -> int:
    """'256MB', '1GiB', 1048576 -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    try:
        size = _parse_bytes(value) if isinstance(value, str) else 0
    except ValueError:
        size = -1
    if size < 0 or not isinstance(value, str):
        raise SpecError(f"{where}: {value!r} is not a size such as '256MB'")
    if size <= 0:
        raise SpecError(f"{where}: {value!r} must be more than 0 bytes")
    return size


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"{where}: key {key!r} is unknown (expected one of {', '.join(sorted(allowed))})")


def _typed(table: dict, key: str, kind: type | tuple, where: str, default: Any = None) -> Any:
    if key not in table:
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise SpecError(f"{where}: key {key!r} must be {names}, got {value!r}")
    return value


def _port(table: dict, key: str, where: str, default: int | None = None) -> int:
    value = _typed(table, key, int, where, default)
    if value is None:
        raise SpecError(f"{where}: key {key!r} is missing")
    if not 1 <= value <= 65535:
        raise SpecError(f"{where}: key {key!r} must be a port 1-65535, got {value}")
    return value


def _positive(table: dict, key: str, where: str, default: float, integer: bool = False) -> Any:
    value = _typed(table, key, int if integer else (int, float), where, default)
    if value < 0 or (integer and value < 1):
        raise SpecError(f"{where}: key {key!r} must be {'at least 1' if integer else '>= 0'}, got {value}")
    return value


def _probe(table: Any, where: str) -> Probe:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _check_keys(table, {f.name for f in fields(Probe)}, where)
    kinds = [k for k in ("http_get", "tcp_socket", "exec") if table.get(k)]
    if len(kinds) != 1:
        raise SpecError(f"{where}: needs exactly one of http_get, tcp_socket, exec")
    http_get = _typed(table, "http_get", str, where)
    if http_get is not None and not http_get.startswith("/"):
        raise SpecError(f"{where}: key 'http_get' must be a path starting with '/', got {http_get!r}")
    command = _typed(table, "exec", list, where)
    if command is not None and (not command or not all(isinstance(a, str) for a in command)):
        raise SpecError(f"{where}: key 'exec' must be a non-empty list of strings")
    return Probe(
        http_get=http_get,
        tcp_socket=_typed(table, "tcp_socket", bool, where, False),
        exec=tuple(command) if command else None,
        port=_port(table, "port", where) if "port" in table else None,
        initial_delay_seconds=_positive(table, "initial_delay_seconds", where, 0.0),
        period_seconds=_positive(table, "period_seconds", where, 10.0),
        timeout_seconds=_positive(table, "timeout_seconds", where, 1.0),
        success_threshold=_positive(table, "success_threshold", where, 1, integer=True),
        failure_threshold=_positive(table, "failure_threshold", where, 3, integer=True),
    )


def _backoff(table: Any, where: str) -> Backoff:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _check_keys(table, {f.name for f in fields(Backoff)}, where)
    values = {f.name: _positive(table, f.name, where, f.default) for f in fields(Backoff)}
    if values["multiplier"] < 1:
        raise SpecError(f"{where}: key 'multiplier' must be >= 1, got {values['multiplier']}")
    if not 0 <= values["jitter"] < 1:
        raise SpecError(f"{where}: key 'jitter' must be in [0, 1), got {values['jitter']}")
    return Backoff(**values)


_POD_KEYS = {
    "service", "command", "port", "metrics_port", "logger_port", "restart_policy", "max_restarts",
    "memory_limit", "grace_seconds", "env", "probes", "backoff", "logger_env", "depends_on", "stderr_level",
    "metrics_path", "shipping_stall_seconds", "stop_signal", "reload_signal", "metrics_adapter", "gateway",
    "replicas", "min_ready", "socket", "slot_ports",
}
SOCKETS = ("held", "app")
SIGNALS = ("TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2")
ADAPTERS = ("prometheus", "nginx")
NGINX_STATUS_PATH = "/nginx_status"  # stub_status, loopback only, on the gateway's own port
GATEWAY_HEALTH_PATH = "/healthz"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PORT_KEYS = {"port": "app_ports", "metrics_port": "metrics_ports", "logger_port": "logger_ports"}
# Set by the renderer from the spec itself: a pod's logger_env may not override them.
LOGGER_RENDERED = frozenset({"LOGGER_LOG_DIR", "LOGGER_STATE_DIR", "LOGGER_AGGREGATOR_URL",
                             "LOGGER_CREDENTIAL_FILE", "LOGGER_HOST", "LOGGER_PORT", "LOGGER_APP_PROGRAM",
                             "LOGGER_GRACE_SECONDS", "LOGGER_STDERR_LEVEL", "LOGGER_PROBE_PATHS",
                             "LOGGER_ROUTE_PREFIXES", "LOGGER_CA_FILE"})


def _pod(name: str, table: Any) -> dict[str, Any]:
    """A pod's fields, with None for the ports the spec leaves to be assigned."""
    where = f"pod {name!r}"
    if not _NAME.match(name):
        raise SpecError(f"{where}: name must be lowercase letters, digits and '-', starting with a letter")
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _check_keys(table, _POD_KEYS, where)
    gateway = _gateway(table["gateway"], f"{where} gateway") if "gateway" in table else None
    command = _typed(table, "command", str, where)
    if gateway is not None:
        if command is not None:
            raise SpecError(f"{where}: a gateway pod's command is nginx, rendered from the spec: leave 'command' out")
        command = gateway.binary
    if not command or not command.strip():
        raise SpecError(f"{where}: key 'command' is missing")
    policy = _typed(table, "restart_policy", str, where, "always")
    if policy not in RESTART_POLICIES:
        raise SpecError(f"{where}: key 'restart_policy' must be one of {', '.join(RESTART_POLICIES)}, got {policy!r}")
    env = _typed(table, "env", dict, where, {})
    for key, value in env.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key) or not isinstance(value, str | int | float):
            raise SpecError(f"{where}: env {key!r} must be a NAME = string pair")
    probes = _typed(table, "probes", dict, where, {})
    _check_keys(probes, {"startup", "readiness", "liveness"}, f"{where} probes")
    if gateway is not None and not probes:  # nginx answers its own health location
        probes = {"startup": {"http_get": GATEWAY_HEALTH_PATH, "period_seconds": 0.2, "failure_threshold": 150},
                  "readiness": {"http_get": GATEWAY_HEALTH_PATH, "period_seconds": 2}}
    max_restarts = _typed(table, "max_restarts", int, where)
    if max_restarts is not None and max_restarts < 0:
        raise SpecError(f"{where}: key 'max_restarts' must be >= 0, got {max_restarts}")
    memory = table.get("memory_limit")
    return dict(
        name=name,
        service=_typed(table, "service", str, where, f"{name}-service"),
        command=command.strip(),
        port=_port(table, "port", where) if "port" in table else None,
        metrics_port=_port(table, "metrics_port", where) if "metrics_port" in table else None,
        logger_port=_port(table, "logger_port", where) if "logger_port" in table else None,
        restart_policy=policy,
        max_restarts=max_restarts,
        memory_limit_bytes=None if memory is None else parse_size(memory, f"{where}: key 'memory_limit'"),
        grace_seconds=_positive(table, "grace_seconds", where, 20.0),
        env={k: str(v) for k, v in env.items()},
        startup_probe=_probe(probes["startup"], f"{where} probes.startup") if "startup" in probes else None,
        readiness_probe=_probe(probes["readiness"], f"{where} probes.readiness") if "readiness" in probes else None,
        liveness_probe=_probe(probes["liveness"], f"{where} probes.liveness") if "liveness" in probes else None,
        backoff=_backoff(table["backoff"], f"{where} backoff") if "backoff" in table else Backoff(),
        logger_env=_logger_env(table, where),
        depends_on=tuple(_names(table, "depends_on", where)),
        stderr_level=_level(table, where),
        metrics_path=_metrics_path(table, where),
        shipping_stall_seconds=_positive(table, "shipping_stall_seconds", where, 60.0),
        stop_signal=_signal(table, "stop_signal", where, "QUIT" if gateway else "TERM"),
        reload_signal=_signal(table, "reload_signal", where, "HUP" if gateway else None),
        metrics_adapter=_choice(table, "metrics_adapter", where, ADAPTERS, "nginx" if gateway else "prometheus"),
        gateway=gateway,
        **_replicas(table, where),
    ) | ({"metrics_path": NGINX_STATUS_PATH} if gateway is not None and "metrics_path" not in table else {})


def _default_socket(table: dict) -> str:
    """podvisor holds the socket of the apps it knows take one (its own, served from LISTEN_FDS, and
    a gateway's nginx, which reads NGINX); any other app binds its own port until its spec says
    `socket = "held"`: an app that does not read LISTEN_FDS would find its port taken and crash."""
    if table.get("gateway") is not None:
        return "held"
    command = table.get("command")
    if isinstance(command, str) and command.strip().split()[0].startswith("podvisor-"):
        return "held"
    return "app"


def _replicas(table: dict, where: str) -> dict[str, Any]:
    replicas = _positive(table, "replicas", where, 1, integer=True)
    min_ready = _positive(table, "min_ready", where, 1, integer=True)
    if min_ready > replicas:
        raise SpecError(f"{where}: key 'min_ready' ({min_ready}) must not exceed 'replicas' ({replicas})")
    socket = _choice(table, "socket", where, SOCKETS, _default_socket(table))
    probes = table.get("probes") if isinstance(table.get("probes"), dict) else {}
    if socket == "held" and any(isinstance(p, dict) and p.get("tcp_socket") for p in probes.values()):
        raise SpecError(f"{where}: a tcp_socket probe always connects to a socket podvisor holds (the kernel "
                        "accepts for it): use http_get, or socket = \"app\"")
    if socket == "app" and replicas > 1:
        raise SpecError(f"{where}: replicas need socket = \"held\": several processes cannot bind one port")
    slots = replicas + (1 if socket == "held" else 0)
    ports = _typed(table, "slot_ports", list, where, None)
    if ports is not None and socket != "held":
        raise SpecError(f"{where}: key 'slot_ports' needs socket = \"held\"")
    if ports is not None and (len(ports) != slots or not all(type(p) is int and 1 <= p <= 65535 for p in ports)):
        raise SpecError(f"{where}: key 'slot_ports' must be {slots} ports (replicas + 1), got {ports!r}")
    return {"replicas": replicas, "min_ready": min_ready, "socket": socket,
            "slot_ports": tuple(ports) if ports is not None else (None,) * slots if socket == "held" else ()}


def _signal(table: dict, key: str, where: str, default: str | None) -> str | None:
    value = _typed(table, key, str, where, default)
    if value is None:
        return None
    name = value.upper().removeprefix("SIG")
    if name not in SIGNALS:
        raise SpecError(f"{where}: key {key!r} must be one of {', '.join(SIGNALS)}, got {value!r}")
    return name


def _choice(table: dict, key: str, where: str, choices: tuple[str, ...], default: str) -> str:
    value = _typed(table, key, str, where, default)
    if value not in choices:
        raise SpecError(f"{where}: key {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _gateway(table: Any, where: str) -> Gateway:
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _check_keys(table, {"routes", "connect_timeout_seconds", "read_timeout_seconds", "binary"}, where)
    routes = _typed(table, "routes", dict, where, {})
    if not routes:
        raise SpecError(f"{where}: key 'routes' must name at least one prefix = pod")
    for prefix, target in routes.items():
        if not (prefix.startswith("/") and prefix.endswith("/")) or any(c in prefix for c in ' ;{}"\'\\$'):
            raise SpecError(f"{where}: route {prefix!r} must be a path prefix like '/user/'")
        if not isinstance(target, str) or not (_NAME.match(target) or target.startswith(("http://", "https://"))):
            raise SpecError(f"{where}: route {prefix!r} must name a pod or an http:// URL, got {target!r}")
        if any(c in target for c in ' ;{}"\'\\$'):
            raise SpecError(f"{where}: route {prefix!r} target {target!r} has characters nginx would misread")
    binary = _typed(table, "binary", str, where, "nginx")
    return Gateway(routes=tuple(routes.items()),
                   connect_timeout_seconds=_positive(table, "connect_timeout_seconds", where, 2.0),
                   read_timeout_seconds=_positive(table, "read_timeout_seconds", where, 30.0), binary=binary)


def _names(table: dict, key: str, where: str) -> list[str]:
    names = _typed(table, key, list, where, [])
    if not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise SpecError(f"{where}: key {key!r} must be a list of pod names, got {names!r}")
    return names


def _level(table: dict, where: str) -> str:
    level = _typed(table, "stderr_level", str, where, "WARNING").upper()
    if level not in LEVELS:
        raise SpecError(f"{where}: key 'stderr_level' must be one of {', '.join(LEVELS)}, got {level!r}")
    return level


def _metrics_path(table: dict, where: str) -> str | None:
    """The app's Prometheus path; false (or "") when the app serves none."""
    value = _typed(table, "metrics_path", (str, bool), where, "/metrics")
    if value is True:
        return "/metrics"
    if not value:
        return None
    if not value.startswith("/"):
        raise SpecError(f"{where}: key 'metrics_path' must be a path starting with '/' or false, got {value!r}")
    return value


def _logger_env(table: dict, where: str) -> dict[str, str]:
    env = _typed(table, "logger_env", dict, where, {})
    for key, value in env.items():
        if not re.match(r"^LOGGER_[A-Z0-9_]+$", key) or not isinstance(value, str | int | float):
            raise SpecError(f"{where}: logger_env {key!r} must be a LOGGER_NAME = value pair")
        if key in LOGGER_RENDERED:
            raise SpecError(f"{where}: logger_env {key!r} is set from the spec itself and cannot be "
                            "overridden")
    return {k: str(v) for k, v in env.items()}


_STACK_KEYS = {"environment", "state_dir", "host", "aggregator_port", "controller_port", "log_max_bytes",
               "log_backups", "read_auth", "store", "ingest_url", "ca_file", "token_file", *PORT_KEYS.values()}


def _range(stack: dict, key: str, default: tuple[int, int]) -> tuple[int, int]:
    """'3000-3999' -> (3000, 3999): where ports the spec leaves out are taken from."""
    value = _typed(stack, key, str, "stack", None)
    if value is None:
        return default
    low, sep, high = value.partition("-")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()) or not 1 <= int(low) <= int(high) <= 65535:
        raise SpecError(f"stack: key {key!r} must be a port range such as '3000-3999', got {value!r}")
    return int(low), int(high)


def _assign_ports(pods: list[dict[str, Any]], ranges: dict[str, tuple[int, int]], taken: set[int],
                  previous: Stack | None = None) -> None:
    """Give every pod the ports the spec leaves out. A pod that ran before keeps the ports it had
    (`previous`, the resolved spec of the running stack) while they are free, so adding a pod never
    moves another's; the rest get the lowest free port of their range, pod by pod in spec order."""
    taken = taken | {pod[key] for pod in pods for key in PORT_KEYS if pod[key] is not None}
    taken |= {port for pod in pods for port in pod["slot_ports"] if port is not None}
    before = {pod.name: pod for pod in previous.pods} if previous is not None else {}

    def take(pod: dict[str, Any], range_key: str, sticky: int | None) -> int:
        low, high = ranges[range_key]
        if sticky is not None and sticky not in taken and low <= sticky <= high:
            taken.add(sticky)
            return sticky
        free = next((p for p in range(low, high + 1) if p not in taken), None)
        if free is None:
            raise SpecError(f"pod {pod['name']!r}: no free port left in stack {range_key} {low}-{high}")
        taken.add(free)
        return free

    for pod in pods:
        old = before.get(pod["name"])
        for key, range_key in PORT_KEYS.items():
            if pod[key] is None:
                pod[key] = take(pod, range_key, getattr(old, key) if old else None)
        old_slots = old.slot_ports if old is not None and len(old.slot_ports) == len(pod["slot_ports"]) else ()
        pod["slot_ports"] = tuple(
            port if port is not None else take(pod, "app_ports", old_slots[i] if old_slots else None)
            for i, port in enumerate(pod["slot_ports"]))


def from_dict(data: dict, previous: Stack | None = None) -> Stack:
    """Validate an already parsed spec; `previous` (the running stack's) keeps assigned ports stable."""
    _check_keys(data, {"stack", "pods"}, "spec")
    stack = _typed(data, "stack", dict, "spec", {})
    _check_keys(stack, _STACK_KEYS, "stack")
    pods_table = _typed(data, "pods", dict, "spec", {})
    if not pods_table:
        raise SpecError("spec: no pods defined (add a [pods.NAME] table)")
    fields = [_pod(name, table) for name, table in pods_table.items()]
    ranges = {key: _range(stack, key, getattr(Stack, key)) for key in PORT_KEYS.values()}
    aggregator_port = _port(stack, "aggregator_port", "stack", 8080)
    controller_port = _port(stack, "controller_port", "stack", 9100)
    _assign_ports(fields, ranges, {aggregator_port, controller_port}, previous)
    pods = tuple(Pod(**f) for f in fields)
    backups = _typed(stack, "log_backups", int, "stack", 5)
    if backups < 1:
        raise SpecError(f"stack: key 'log_backups' must be at least 1, got {backups}")
    result = Stack(
        pods=pods,
        environment=_typed(stack, "environment", str, "stack", "production"),
        state_dir=_typed(stack, "state_dir", str, "stack", "../var"),
        host=_typed(stack, "host", str, "stack", "127.0.0.1"),
        aggregator_port=aggregator_port,
        controller_port=controller_port,
        log_max_bytes=parse_size(stack.get("log_max_bytes", "10MB"), "stack: key 'log_max_bytes'"),
        log_backups=backups,
        read_auth=_typed(stack, "read_auth", str, "stack", "auto"),
        store=_typed(stack, "store", str, "stack"),
        ingest_url=_typed(stack, "ingest_url", str, "stack"),
        ca_file=_typed(stack, "ca_file", str, "stack"),
        token_file=_typed(stack, "token_file", str, "stack"),
        **ranges,
    )
    if result.ingest_url is not None and not result.ingest_url.startswith(("http://", "https://")):
        raise SpecError(f"stack: key 'ingest_url' must be an http(s):// URL, got {result.ingest_url!r}")
    if result.ca_file is not None and not (result.ingest_url or "").startswith("https://"):
        raise SpecError("stack: key 'ca_file' needs an https:// 'ingest_url'")
    if result.read_auth not in ("auto", "always", "never"):
        raise SpecError(f"stack: key 'read_auth' must be auto, always or never, got {result.read_auth!r}")
    _check_ports(result)
    _check_env_refs(result)
    _check_depends_on(result)
    return result


def _check_depends_on(stack: Stack) -> None:
    """Every pod named exists, and no pod waits for itself through others (a cycle never starts)."""
    graph = {pod.name: pod.depends_on for pod in stack.pods}
    for name, deps in graph.items():
        for dep in deps:
            if dep not in graph:
                raise SpecError(f"pod {name!r}: key 'depends_on' names unknown pod {dep!r}")
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join((*path[path.index(name):], name))
            raise SpecError(f"pod {path[0]!r}: key 'depends_on' makes a cycle: {cycle}")
        state[name] = "visiting"
        for dep in graph[name]:
            visit(dep, (*path, name))
        state[name] = "done"

    for name in graph:
        visit(name, ())


def _check_env_refs(stack: Stack) -> None:
    names = {pod.name for pod in stack.pods}
    for pod in stack.pods:
        for prefix, target in pod.gateway.routes if pod.gateway else ():
            if not target.startswith(("http://", "https://")) and target not in names:
                raise SpecError(f"pod {pod.name!r} gateway: route {prefix!r} names unknown pod {target!r}")
    for pod in stack.pods:
        for key, value in pod.env.items():
            for ref in ENV_REF.finditer(value):
                if ref.group(1) not in names:
                    raise SpecError(f"pod {pod.name!r}: env {key!r} refers to unknown pod {ref.group(1)!r}")


def _check_ports(stack: Stack) -> None:
    seen: dict[int, str] = {}
    claims = [(stack.aggregator_port, "stack", "aggregator_port"), (stack.controller_port, "stack", "controller_port")]
    for pod in stack.pods:
        claims += [(pod.port, f"pod {pod.name!r}", "port"), (pod.metrics_port, f"pod {pod.name!r}", "metrics_port"),
                   (pod.logger_port, f"pod {pod.name!r}", "logger_port")]
        claims += [(port, f"pod {pod.name!r}", "slot_ports") for port in pod.slot_ports]
    for port, owner, key in claims:
        if port in seen:
            raise SpecError(f"{owner}: key {key!r} port {port} clashes with {seen[port]}")
        seen[port] = f"{owner} {key}"


def load(path: str | Path, previous: Stack | None = None) -> Stack:
    """Read and validate a pods spec file: TOML, or the same as JSON (a `.json` file)."""
    try:
        with open(path, "rb") as fh:
            data = json.load(fh) if str(path).endswith(".json") else tomllib.load(fh)
    except OSError as exc:
        raise SpecError(f"spec {path}: cannot read: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise SpecError(f"spec {path}: not valid {'JSON' if str(path).endswith('.json') else 'TOML'}: {exc}") \
            from exc
    if not isinstance(data, dict):
        raise SpecError(f"spec {path}: must be a table of [stack] and [pods.NAME]")
    return from_dict(data, previous)


def to_dict(stack: Stack) -> dict:
    """The spec as the TOML-shaped dict `spec.from_dict` reads back (sizes in bytes)."""
    def probe(p: Probe) -> dict:
        d = {k: v for k, v in dataclasses.asdict(p).items() if v not in (None, False)}
        if p.exec:
            d["exec"] = list(p.exec)
        return d

    pods = {}
    for pod in stack.pods:
        d = {
            "service": pod.service, "command": pod.command, "port": pod.port,
            "metrics_port": pod.metrics_port, "logger_port": pod.logger_port,
            "restart_policy": pod.restart_policy, "grace_seconds": pod.grace_seconds,
            "env": dict(pod.env), "backoff": dataclasses.asdict(pod.backoff), "probes": {},
        }
        if pod.max_restarts is not None:
            d["max_restarts"] = pod.max_restarts
        if pod.memory_limit_bytes is not None:
            d["memory_limit"] = pod.memory_limit_bytes
        if pod.logger_env:
            d["logger_env"] = dict(pod.logger_env)
        if pod.depends_on:
            d["depends_on"] = list(pod.depends_on)
        d["stderr_level"] = pod.stderr_level
        d["metrics_path"] = pod.metrics_path or False
        d["shipping_stall_seconds"] = pod.shipping_stall_seconds
        d["metrics_adapter"] = pod.metrics_adapter
        d["replicas"], d["min_ready"], d["socket"] = pod.replicas, pod.min_ready, pod.socket
        if pod.slot_ports:
            d["slot_ports"] = list(pod.slot_ports)
        d["stop_signal"] = pod.stop_signal
        if pod.reload_signal:
            d["reload_signal"] = pod.reload_signal
        if pod.gateway is not None:
            del d["command"]
            d["gateway"] = {**dataclasses.asdict(pod.gateway), "routes": dict(pod.gateway.routes)}
        for kind in ("startup", "readiness", "liveness"):
            p = getattr(pod, f"{kind}_probe")
            if p is not None:
                d["probes"][kind] = probe(p)
        pods[pod.name] = d
    stack_d = {f.name: getattr(stack, f.name) for f in dataclasses.fields(Stack)
               if f.name != "pods" and getattr(stack, f.name) is not None}
    for key in PORT_KEYS.values():
        stack_d[key] = "{}-{}".format(*stack_d[key])
    return {"stack": stack_d, "pods": pods}
