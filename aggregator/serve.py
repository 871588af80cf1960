"""Serve the app with waitress until SIGTERM/SIGINT, then shut down in order."""
from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from flask import Flask
from waitress import wasyncore
from waitress.server import BaseWSGIServer, create_server

logger = logging.getLogger(__name__)


class _Shutdown(BaseException):
    """Raised by the signal handler to leave waitress' loop (which only traps SystemExit/^C)."""


def serve(app: Flask, host: str, port: int, threads: int, *,
          on_stopping: Callable[[], None], drain_seconds: float = 10.0) -> None:
    """Run until SIGTERM/SIGINT. Then: stop accepting, call `on_stopping` (ends tail streams),
    let in-flight requests finish and flush (up to `drain_seconds`), stop the worker threads."""
    server = create_server(app, host=host, port=port, threads=threads,
                           ident="podvisor-aggregator", clear_untrusted_proxy_headers=True)
    if hasattr(server, "effective_listen"):  # a name resolving to several addresses
        where = ", ".join(f"http://{h}:{p}" for h, p in server.effective_listen)
    else:
        where = f"http://{server.effective_host}:{server.effective_port}"
    logger.info("listening on %s (threads=%d)", where, threads)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        raise _Shutdown(signal.Signals(signum).name)

    def again(signum: int, _frame: FrameType | None) -> None:
        # supervisord signals each program in its turn, after the pod controller may already have:
        # a second SIGTERM must not cut the drain short.
        logger.info("%s received again: still draining", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            server.run()
        except _Shutdown as exc:
            logger.info("%s received: shutting down", exc)
        for sig in previous:
            signal.signal(sig, again)
        _drain(server, on_stopping, drain_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drain(server: Any, on_stopping: Callable[[], None], drain_seconds: float) -> None:
    socket_map = server.map if hasattr(server, "effective_listen") else server._map
    # Close the listening sockets only; the trigger and client channels stay in the loop so
    # responses still being computed can be written out.
    for listener in [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]:
        wasyncore.dispatcher.close(listener)
    on_stopping()
    dispatcher = server.task_dispatcher
    deadline = time.monotonic() + drain_seconds
    while time.monotonic() < deadline:
        busy = dispatcher.active_count or dispatcher.queue or any(
            getattr(ch, "requests", None) or getattr(ch, "total_outbufs_len", 0)
            for ch in list(socket_map.values()))
        if not busy:
            break
        wasyncore.loop(timeout=0.05, map=socket_map, count=1)
    dispatcher.shutdown(timeout=max(0.0, deadline - time.monotonic()) + 1)
    wasyncore.close_all(socket_map)
