"""Reading the pods spec: TOML -> validated `Stack`, and back (`to_dict`) for the resolved copy.

`load(path)` parses and validates; every refusal is a `SpecError` whose message names the pod and
the key (``pod 'user': key 'prot' is unknown``), so the renderer can print one clear line.
"""
from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from podvisor.core.settings import parse_size as _parse_bytes
from podvisor.supervisord.spec.model import ENV_REF, RESTART_POLICIES, Backoff, Pod, Probe, Stack

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
    "memory_limit", "grace_seconds", "env", "probes", "backoff", "logger_env",
}
# Set by the renderer from the spec itself: a pod's logger_env may not override them.
LOGGER_RENDERED = frozenset({"LOGGER_LOG_DIR", "LOGGER_STATE_DIR", "LOGGER_AGGREGATOR_URL",
                             "LOGGER_CREDENTIAL_FILE", "LOGGER_HOST", "LOGGER_PORT", "LOGGER_APP_PROGRAM",
                             "LOGGER_GRACE_SECONDS"})


def _pod(name: str, table: Any) -> Pod:
    where = f"pod {name!r}"
    if not _NAME.match(name):
        raise SpecError(f"{where}: name must be lowercase letters, digits and '-', starting with a letter")
    if not isinstance(table, dict):
        raise SpecError(f"{where}: must be a table")
    _check_keys(table, _POD_KEYS, where)
    command = _typed(table, "command", str, where)
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
    max_restarts = _typed(table, "max_restarts", int, where)
    if max_restarts is not None and max_restarts < 0:
        raise SpecError(f"{where}: key 'max_restarts' must be >= 0, got {max_restarts}")
    memory = table.get("memory_limit")
    return Pod(
        name=name,
        service=_typed(table, "service", str, where, f"{name}-service"),
        command=command.strip(),
        port=_port(table, "port", where),
        metrics_port=_port(table, "metrics_port", where),
        logger_port=_port(table, "logger_port", where),
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
    )


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
               "log_backups", "read_auth"}


def from_dict(data: dict) -> Stack:
    """Validate an already parsed spec."""
    _check_keys(data, {"stack", "pods"}, "spec")
    stack = _typed(data, "stack", dict, "spec", {})
    _check_keys(stack, _STACK_KEYS, "stack")
    pods_table = _typed(data, "pods", dict, "spec", {})
    if not pods_table:
        raise SpecError("spec: no pods defined (add a [pods.NAME] table)")
    pods = tuple(_pod(name, table) for name, table in pods_table.items())
    backups = _typed(stack, "log_backups", int, "stack", 5)
    if backups < 1:
        raise SpecError(f"stack: key 'log_backups' must be at least 1, got {backups}")
    result = Stack(
        pods=pods,
        environment=_typed(stack, "environment", str, "stack", "production"),
        state_dir=_typed(stack, "state_dir", str, "stack", "../var"),
        host=_typed(stack, "host", str, "stack", "127.0.0.1"),
        aggregator_port=_port(stack, "aggregator_port", "stack", 8080),
        controller_port=_port(stack, "controller_port", "stack", 9100),
        log_max_bytes=parse_size(stack.get("log_max_bytes", "10MB"), "stack: key 'log_max_bytes'"),
        log_backups=backups,
        read_auth=_typed(stack, "read_auth", str, "stack", "auto"),
    )
    if result.read_auth not in ("auto", "always", "never"):
        raise SpecError(f"stack: key 'read_auth' must be auto, always or never, got {result.read_auth!r}")
    _check_ports(result)
    _check_env_refs(result)
    return result


def _check_env_refs(stack: Stack) -> None:
    names = {pod.name for pod in stack.pods}
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
    for port, owner, key in claims:
        if port in seen:
            raise SpecError(f"{owner}: key {key!r} port {port} clashes with {seen[port]}")
        seen[port] = f"{owner} {key}"


def load(path: str | Path) -> Stack:
    """Read and validate a pods spec file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise SpecError(f"spec {path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"spec {path}: not valid TOML: {exc}") from exc
    return from_dict(data)


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
        for kind in ("startup", "readiness", "liveness"):
            p = getattr(pod, f"{kind}_probe")
            if p is not None:
                d["probes"][kind] = probe(p)
        pods[pod.name] = d
    stack_d = {f.name: getattr(stack, f.name) for f in dataclasses.fields(Stack) if f.name != "pods"}
    return {"stack": stack_d, "pods": pods}
