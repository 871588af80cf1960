"""Start, stop and restart a pod from the web UI, the way `podctl` does: a REMOTE_COMMUNICATION
event of type `podvisor` sent through supervisord (`ACTION POD OP_ID`, docs/interfaces.md), which
the controller runs on the pod's thread and reports in that pod's `last_op`.

supervisord gives each child the URL of its socket (SUPERVISOR_SERVER_URL), so the aggregator it
runs can send the event; an aggregator started elsewhere has none, and says so.
"""
from __future__ import annotations

import uuid
import xmlrpc.client
from collections.abc import Callable

from podvisor.aggregator.errors import ApiError
from podvisor.core.supervisor import SupervisorConfig, SupervisorRPC

ACTIONS = ("start", "stop", "restart")
RPC_TIMEOUT = 5.0  # sending the event is one short call; the action itself runs in the controller


class PodActions:
    """Sends pod actions to the controller through supervisord."""

    def __init__(self, supervisor: SupervisorConfig,
                 rpc: Callable[[SupervisorConfig], SupervisorRPC] = lambda c: SupervisorRPC(c, RPC_TIMEOUT)) -> None:
        self.supervisor = supervisor
        self._rpc = rpc(supervisor) if supervisor.serverurl else None

    def send(self, action: str, pod: str, known: list[str] | None) -> str:
        """Send `action` for `pod` (one of the pods the controller listed, `known`) and return the
        operation id to look for in the pod's `last_op`; ApiError when it cannot be sent."""
        if action not in ACTIONS:
            raise ApiError(404, f"no pod action {action[:40]!r} (use {', '.join(ACTIONS[:-1])} or {ACTIONS[-1]})")
        if known is None:
            raise ApiError(503, "the controller has not answered yet: its pods are unknown", {"Retry-After": "5"})
        if pod not in known:  # the name goes into a space-separated command: only listed ones
            raise ApiError(404, f"no pod named {pod[:100]!r} (pods: {', '.join(sorted(known))})")
        if self._rpc is None:
            raise ApiError(503, "pod actions need supervisord: SUPERVISOR_SERVER_URL is not set "
                                "(supervisord sets it for the programs it runs)")
        op_id = uuid.uuid4().hex[:12]
        try:
            self._rpc.send_remote("podvisor", f"{action} {pod} {op_id}")
        except (OSError, xmlrpc.client.Error) as exc:
            raise ApiError(503, f"cannot reach supervisord at {self.supervisor.serverurl}: {exc}") from None
        return op_id
