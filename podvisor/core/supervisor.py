"""The one client of supervisord's XML-RPC interface, and podvisor's program-name convention.

Every podvisor process that asks supervisord something (the controller, podctl, the logger waiting
for its app, the metrics sidecar resolving its app's pid, the test harness) uses `SupervisorRPC`.
supervisor's own transport has no timeout, so a busy or wedged supervisord would hang its callers;
this one puts a timeout on every socket operation.
"""
from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
import xmlrpc.client
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

# supervisord's process states that mean "a process is there, or about to be".
ALIVE = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})
ROLES = ("app", "logger", "metrics")
DEFAULT_TIMEOUT = 10.0


def program_name(pod: str, role: str, slot: int = 0) -> str:
    """supervisord's program for a pod's container: `user-app`, `user-logger`, `user-metrics`; an
    app's further slots (replicas, and the one a rolling restart starts first) are `user-app-1`..."""
    if role not in ROLES:
        raise ValueError(f"unknown container role {role!r} (expected one of {', '.join(ROLES)})")
    if slot and role != "app":
        raise ValueError(f"only the app has slots, not the {role}")
    return f"{pod}-{role}" if not slot else f"{pod}-{role}-{slot}"


def split_program(program: str) -> tuple[str, str] | None:
    """`user-app` -> ('user', 'app'), `user-app-2` -> ('user', 'app'); None for a program that is
    not a pod's (the aggregator)."""
    head, _, last = program.rpartition("-")
    if last.isdigit():
        head, _, last = head.rpartition("-")
        if last != "app":
            return None
    return (head, last) if head and last in ROLES else None


class Supervisor(Protocol):
    """What the controller needs of supervisord (tests pass a fake)."""

    def all_info(self) -> dict[str, dict[str, Any]]: ...
    def start(self, name: str, wait: bool = True) -> None: ...
    def stop(self, name: str, wait: bool = True) -> None: ...
    def state(self) -> str: ...
    def pid(self) -> int: ...


@dataclass(frozen=True)
class SupervisorConfig:
    """How to reach supervisord: what it puts in its children's environment."""

    serverurl: str = ""
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Any) -> SupervisorConfig:
        """From an `Env` (podvisor.core.settings) or a plain mapping."""
        get = env.optional if hasattr(env, "optional") else (lambda n: (env.get(n) or "").strip() or None)
        return cls(get("SUPERVISOR_SERVER_URL") or "", get("SUPERVISOR_USERNAME") or "",
                   get("SUPERVISOR_PASSWORD") or "")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _Transport(xmlrpc.client.Transport):
    """xmlrpc over supervisord's unix socket or inet port, with a timeout and optional basic auth."""

    def __init__(self, config: SupervisorConfig, timeout: float) -> None:
        headers = []
        if config.username:
            pair = f"{config.username}:{config.password}".encode()
            headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode()))
        super().__init__(headers=headers)
        self.config, self.timeout = config, timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection and self._connection[1] is not None:
            return self._connection[1]
        url = urlsplit(self.config.serverurl)
        if url.scheme == "unix":
            # normpath as supervisord does when it binds: a conf rendered below the repository names
            # it `%(here)s/../../../var/...`, and a unix socket path stops at about 100 bytes.
            path = os.path.normpath(url.netloc + url.path)
            conn: http.client.HTTPConnection = _UnixConnection(path, self.timeout)
        else:
            conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 9001, timeout=self.timeout)
        self._connection = host, conn
        return conn


class SupervisorRPC:
    """supervisord at `config.serverurl` (``unix:///path/to/supervisor.sock``); one connection per thread."""

    def __init__(self, config: SupervisorConfig | str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = SupervisorConfig(config) if isinstance(config, str) else config
        self.timeout = timeout
        self._local = threading.local()

    @property
    def serverurl(self) -> str:
        return self.config.serverurl

    @classmethod
    def from_env(cls, env: Mapping[str, str] | Any, timeout: float = DEFAULT_TIMEOUT) -> SupervisorRPC:
        return cls(SupervisorConfig.from_env(env), timeout)

    def _proxy(self, timeout: float | None) -> Any:
        if timeout is not None:  # a call that waits longer than usual gets a connection of its own
            return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=_Transport(self.config, timeout)).supervisor
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            transport = _Transport(self.config, self.timeout)
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            self._local.proxy = proxy
        return proxy.supervisor

    def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """One XML-RPC call. A failed connection is dropped (http.client cannot reuse it: the next
        call would fail with CannotSendRequest) and reported as a ConnectionError, an OSError."""
        try:
            return getattr(self._proxy(timeout), method)(*args)
        except xmlrpc.client.Fault:
            raise
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            self._local.proxy = None
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"supervisord at {self.serverurl}: {exc!r}") from exc

    def all_info(self) -> dict[str, dict[str, Any]]:
        return {info["name"]: info for info in self.call("getAllProcessInfo")}

    def info(self, name: str) -> dict[str, Any]:
        return self.call("getProcessInfo", name)

    def start(self, name: str, wait: bool = True, timeout: float | None = None) -> None:
        """`wait`: until supervisord has it RUNNING (its startsecs); `timeout` for that wait."""
        try:
            self.call("startProcess", name, wait, timeout=timeout if wait else None)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def stop(self, name: str, wait: bool = True, timeout: float | None = None) -> None:
        """`wait`: until it has exited (SIGKILL after its stopwaitsecs); pass a `timeout` longer than that."""
        try:
            self.call("stopProcess", name, wait, timeout=timeout if wait else None)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def signal(self, name: str, signame: str) -> None:
        self.call("signalProcess", name, signame)

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read the conf: the (added, changed, removed) groups; nothing changes until they are
        added or removed (every podvisor program is a group of its own)."""
        [[added, changed, removed]] = self.call("reloadConfig")
        return list(added), list(changed), list(removed)

    def add_group(self, name: str) -> None:
        try:
            self.call("addProcessGroup", name)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_ADDED" not in fault.faultString:
                raise

    def remove_group(self, name: str) -> None:
        try:
            self.call("removeProcessGroup", name)
        except xmlrpc.client.Fault as fault:
            if "BAD_NAME" not in fault.faultString:
                raise

    def state(self) -> str:
        return self.call("getState")["statename"]

    def pid(self) -> int:
        return self.call("getPID")

    def send_remote(self, kind: str, data: str) -> None:
        self.call("sendRemoteCommEvent", kind, data)
