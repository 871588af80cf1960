"""Serving a WSGI app with waitress, and stopping it gracefully: stop accepting, drain, exit.

Every podvisor HTTP process (the apps, the aggregator, the sidecars, the controller) serves through
`Server`, which also sets the connection limits and timeouts deliberately (CHANNEL_TIMEOUT,
connection_limit) and answers waitress' own errors (bad request, header or body too large) in JSON.
waitress' own `run()` leaves its loop at once on SystemExit or ^C, dropping responses still being
computed; here the loop keeps running after a stop request until every connection has been
answered or the drain budget (from podvisor.core.budget) is spent.
"""
from __future__ import annotations

import json
import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import ErrorTask

log = logging.getLogger(__name__)

# Connections: a probe or a shipper must always get in. waitress' defaults (100 connections, idle
# or half-sent ones kept 120 s, checked every 30 s) let 100 slow clients take every slot.
CHANNEL_TIMEOUT = 15  # seconds a connection may sit idle or half-sent before it is closed
CLEANUP_INTERVAL = 2  # seconds between those checks
MAX_CONNECTIONS = 1000
FRESH_SECONDS = 1.0  # a connection quiet for less is not idle yet when a drain starts (see _drain)
FD_RESERVE = 64  # descriptors kept for files, sqlite, outgoing connections
# waitress buffers a body (to disk past 1 MiB) before the app sees it, up to 1 GiB by default.
# Well above the apps' own 1 MiB limit: an oversized body is still the app's 413 (with its headers,
# such as X-Request-ID), and waitress refuses only absurd ones, before buffering them.
MAX_BODY_BYTES = 8 * 1024 * 1024


def connection_limit(soft_fd_limit: int | None = None) -> int:
    """Connections to accept at once: well above what probes and shippers need, within the
    process's descriptor limit (RLIMIT_NOFILE; supervisord's minfds raises it to 4096)."""
    if soft_fd_limit is None:
        soft_fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft_fd_limit == resource.RLIM_INFINITY:
            soft_fd_limit = MAX_CONNECTIONS + FD_RESERVE
    return max(32, min(MAX_CONNECTIONS, soft_fd_limit - FD_RESERVE))


class JsonErrorTask(ErrorTask):
    """waitress' own error answers (bad request, header or body too large, a crash before the app
    answered) as JSON with a clear message, like every other podvisor error."""

    def execute(self) -> None:
        error = self.request.error
        detail = str(error.body).strip()
        message = f"{error.reason}: {detail}" if detail else error.reason
        body = json.dumps({"ok": False, "error": message}).encode() + b"\n"
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonChannel(HTTPChannel):
    error_task_class = JsonErrorTask


class Server:
    """A waitress server whose main loop we run, so a stop request can drain in-flight requests."""

    def __init__(self, app: Callable, *, host: str, port: int, threads: int, ident: str,
                 drain_seconds: float, on_stopping: Callable[[], None] = lambda: None,
                 **adjustments: Any) -> None:
        self._map: dict = {}  # our own socket map: it lets us find the listeners and connections
        adjustments = {"connection_limit": connection_limit(), "channel_timeout": CHANNEL_TIMEOUT,
                       "cleanup_interval": CLEANUP_INTERVAL, "max_request_body_size": MAX_BODY_BYTES,
                       **adjustments}
        # Sockets handed over (podvisor.core.handoff) replace host and port: waitress takes one or the other.
        sockets = adjustments.pop("sockets", None)
        listen = {"sockets": sockets} if sockets else {"host": host, "port": port}
        self._server = create_server(app, map=self._map, threads=threads, ident=ident, **listen, **adjustments)
        self._listeners = [d for d in self._map.values() if isinstance(d, BaseWSGIServer)]
        for listener in self._listeners:
            listener.channel_class = JsonChannel
        self._adj = self._listeners[0].adj
        self.drain_seconds = drain_seconds
        self._on_stopping = on_stopping
        self._stop_reason: str | None = None
        self.stopped = threading.Event()

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """The (host, port) pairs actually bound; port 0 was replaced by the kernel's choice."""
        return [(listener.effective_host, int(listener.effective_port)) for listener in self._listeners]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def request_stop(self, reason: str) -> None:
        """Ask the loop to stop; safe from a signal handler or another thread (no locks, no logging)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._listeners[0].pull_trigger()  # wakes the poll() the main loop may be blocked in

    def serve(self) -> str:
        """Serve until :meth:`request_stop`, drain, release everything; returns the stop reason."""
        try:
            while self._stop_reason is None:
                self._poll(self._adj.asyncore_loop_timeout)
            reason = self._stop_reason
            log.info("received %s, shutting down", reason)
            self._drain()
            return reason
        finally:
            self.stopped.set()

    def serve_in_background(self, name: str) -> threading.Thread:
        thread = threading.Thread(target=self.serve, name=name, daemon=True)
        thread.start()
        return thread

    def stop(self, timeout: float | None = None) -> None:
        """Request a stop from another thread and wait until the drain is over."""
        self.request_stop("stop")
        self.stopped.wait(timeout)

    def _poll(self, timeout: float) -> None:
        wasyncore.loop(timeout=timeout, map=self._map, use_poll=True, count=1)

    def _drain(self) -> None:
        for listener in self._listeners:
            # The base close() only: BaseWSGIServer.close() would also close the trigger we still need.
            wasyncore.dispatcher.close(listener)
        self._on_stopping()
        deadline = time.monotonic() + self.drain_seconds
        fresh = min(FRESH_SECONDS, self.drain_seconds / 2)
        while True:
            channels = [d for d in self._map.values() if isinstance(d, HTTPChannel)]
            remaining = deadline - time.monotonic()
            if not channels or remaining <= 0:
                break
            now = time.time()  # waitress' clock for last_activity
            for channel in channels:
                # Idle keep-alive connections are closed; busy ones finish their requests first. A
                # connection is idle only after a moment without traffic: one accepted just before
                # the stop (its request still on the way, or not read yet) is served, not dropped,
                # and a client that sends on a kept-alive connection right now is answered too.
                idle = not channel.requests and channel.request is None and not channel.total_outbufs_len
                if idle and now - channel.last_activity >= fresh:
                    channel.will_close = True
            self._poll(min(remaining, 0.05))
        if channels:
            log.warning("%d connection(s) still busy after the drain budget of %.1f s; closing them",
                        len(channels), self.drain_seconds)
        dispatcher = self._listeners[0].task_dispatcher
        dispatcher.shutdown(cancel_pending=True, timeout=max(0.1, deadline - time.monotonic()))
        wasyncore.close_all(self._map)


def serve_until_signalled(server: Server) -> str:
    """Serve in the foreground until SIGTERM or SIGINT, then drain; a repeated signal while draining
    changes nothing (supervisord signals each program in its turn, after the pod controller may
    already have). Returns the signal's name. Afterwards SIGTERM stays ignored: the process is
    exiting, and a late one must not turn its clean exit into a kill."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        server.request_stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return server.serve()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, previous[signal.SIGINT])
