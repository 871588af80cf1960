"""Serve a WSGI app with waitress and shut down gracefully: stop accepting, drain, then exit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server

log = logging.getLogger(__name__)

DRAIN_SECONDS = 15.0  # below supervisord's stopwaitsecs (grace_seconds = 20) so we exit before SIGKILL


class GracefulServer:
    """A waitress server whose main loop we run, so a stop request can drain in-flight requests.

    waitress' own ``run()`` stops its loop at once on KeyboardInterrupt/SystemExit, which leaves
    responses of requests still being served unsent; here the loop keeps running until every
    connection has been answered (or the drain deadline passes).
    """

    def __init__(
        self, app: Callable, *, host: str, port: int, threads: int, ident: str,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        # Our own socket map: it lets us find the listeners and the open connections later.
        self._map: dict = {}
        self._server = create_server(app, map=self._map, host=host, port=port, threads=threads, ident=ident)
        self._listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
        self._adj = self._listeners[0].adj
        self._drain_seconds = drain_seconds
        self._stop_reason: str | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually bound; port 0 was replaced by the kernel's choice."""
        return [(listener.effective_host, int(listener.effective_port)) for listener in self._listeners]

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from a signal handler or another thread (no locks, no logging)."""
        self._stop_reason = reason
        self._listeners[0].pull_trigger()  # wakes the poll() the main loop may be blocked in

    def serve(self) -> str:
        """Serve until :meth:`request_stop`, drain, release everything; returns the stop reason."""
        while self._stop_reason is None:
            self._poll(self._adj.asyncore_loop_timeout)
        reason = self._stop_reason
        log.info("received %s, shutting down", reason)
        self._drain()
        return reason

    def _poll(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self._map, use_poll=True, count=1)

    def _drain(self) -> None:
        for listener in self._listeners:
            # The base close() only: BaseWSGIServer.close() would also close the trigger we still need.
            wasyncore.dispatcher.close(listener)
        deadline = time.monotonic() + self._drain_seconds
        while True:
            channels = [d for d in self._map.values() if isinstance(d, HTTPChannel)]
            remaining = deadline - time.monotonic()
            if not channels or remaining <= 0:
                break
            for channel in channels:
                # Idle keep-alive connections are closed; busy ones finish their requests first.
                if not channel.requests and channel.request is None and not channel.total_outbufs_len:
                    channel.will_close = True
            self._poll(min(remaining, 0.5))
        if channels:
            log.warning("%d connection(s) still open after %.0f s, closing them", len(channels),
                        self._drain_seconds)
        dispatcher = self._listeners[0].task_dispatcher
        dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        wasyncore.close_all(self._map)
