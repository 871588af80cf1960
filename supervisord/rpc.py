"""A thread-safe handle on supervisord's XML-RPC interface over its unix socket."""
from __future__ import annotations

import http.client
import threading
import xmlrpc.client
from typing import Any, Protocol

from supervisor.xmlrpc import SupervisorTransport

# supervisord's process states that mean "a process is there, or about to be".
ALIVE = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})


class Supervisor(Protocol):
    def all_info(self) -> dict[str, dict[str, Any]]: ...
    def start(self, name: str, wait: bool = True) -> None: ...
    def stop(self, name: str, wait: bool = True) -> None: ...
    def state(self) -> str: ...
    def pid(self) -> int: ...


class SupervisorRPC:
    """supervisord at `serverurl` (``unix:///path/to/supervisor.sock``); one connection per thread."""

    def __init__(self, serverurl: str, username: str = "", password: str = ""):
        self.serverurl = serverurl
        self.username = username
        self.password = password
        self._local = threading.local()

    @property
    def proxy(self) -> Any:
        proxy = getattr(self._local, "proxy", None)
        if proxy is None:
            transport = SupervisorTransport(self.username, self.password, self.serverurl)
            proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)
            self._local.proxy = proxy
        return proxy.supervisor

    def _call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call. A failed connection is dropped (http.client cannot reuse it: the next
        call would fail with CannotSendRequest) and reported as a ConnectionError, an OSError."""
        try:
            return getattr(self.proxy, method)(*args)
        except xmlrpc.client.Fault:
            raise
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as exc:
            self._local.proxy = None
            if isinstance(exc, OSError):
                raise
            raise ConnectionError(f"supervisord at {self.serverurl}: {exc!r}") from exc

    def all_info(self) -> dict[str, dict[str, Any]]:
        return {info["name"]: info for info in self._call("getAllProcessInfo")}

    def info(self, name: str) -> dict[str, Any]:
        return self._call("getProcessInfo", name)

    def start(self, name: str, wait: bool = True) -> None:
        try:
            self._call("startProcess", name, wait)
        except xmlrpc.client.Fault as fault:
            if "ALREADY_STARTED" not in fault.faultString:
                raise

    def stop(self, name: str, wait: bool = True) -> None:
        try:
            self._call("stopProcess", name, wait)
        except xmlrpc.client.Fault as fault:
            if "NOT_RUNNING" not in fault.faultString:
                raise

    def state(self) -> str:
        return self._call("getState")["statename"]

    def pid(self) -> int:
        return self._call("getPID")

    def send_remote(self, kind: str, data: str) -> None:
        self._call("sendRemoteCommEvent", kind, data)
