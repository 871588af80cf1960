"""podvisor-logger: the logging sidecar's entry point.

On SIGTERM (or SIGINT), within LOGGER_GRACE_SECONDS in total:
1. if LOGGER_APP_PROGRAM is set and SUPERVISOR_SERVER_URL is in the environment, keep tailing until
   supervisord reports the app no longer STARTING/RUNNING/BACKOFF/STOPPING (its shutdown lines included);
2. read every file to its end, flush the partial last lines of rotated-away files (not the live
   file's: its writer may still finish it), ship everything and write the checkpoint;
3. exit 0 when everything was acknowledged, or when the aggregator is unreachable (stopping the retry
   early: nothing is lost, the checkpoint holds only what was acknowledged and the rest ships on the
   next start); exit 1 when the deadline passes first, after saving the checkpoint and logging how
   many lines remain.
SIGHUP is the same stop without step 1: the logger alone is being re-created (the controller does
that when `podctl apply` changed only its settings, e.g. a gateway's routes) while the app keeps
running, so waiting for the app to stop would only spend the whole budget.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable

from podvisor.core.settings import Env, SettingsError, exit_bad_setting
from podvisor.core.supervisor import SupervisorRPC

from .metrics import LoggerMetrics
from .pipeline import Pipeline
from .sender import HttpTransport
from .server import StatusServer
from .settings import Settings

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Run the logging sidecar until SIGTERM; returns the exit status."""
    argparse.ArgumentParser(prog="podvisor-logger",
                            description="Tail a pod's logs and ship them exactly once.").parse_args(argv)
    try:
        settings = Settings.from_env(Env())
    except SettingsError as exc:
        return exit_bad_setting("podvisor-logger", exc)
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    stop = threading.Event()
    wakers: list[Callable[[], None]] = []  # the pipeline's loop sleeps until woken
    term_at: list[float] = []
    alone: list[bool] = []  # SIGHUP: stopped without the app

    def on_signal(signum: int, _frame: object) -> None:
        if not term_at:
            term_at.append(time.monotonic())
        if signum == signal.SIGHUP:
            alone.append(True)
        stop.set()
        for wake in wakers:
            wake()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    metrics = LoggerMetrics()
    try:
        pipeline = Pipeline(settings, HttpTransport(settings.ca_file), metrics=metrics)
    except OSError as exc:
        return exit_bad_setting("podvisor-logger", SettingsError("LOGGER_STATE_DIR", str(settings.state_dir),
                                                                 f"cannot use it: {exc}"))
    wakers.append(pipeline.wakeup.set)
    try:
        server = StatusServer(settings.host, settings.port, pipeline.health, metrics.registry).start()
    except OSError as exc:
        pipeline.close()
        return exit_bad_setting("podvisor-logger", SettingsError("LOGGER_PORT", str(settings.port),
                                                                 f"cannot listen on {settings.host}: {exc}"))
    log.info("tailing %s for pod %s, shipping to %s", settings.log_dir, settings.pod, settings.aggregator_url)
    watcher = None
    try:
        pipeline.run(stop)
        deadline = (term_at[0] if term_at else time.monotonic()) + settings.grace_seconds
        app_running = None
        if alone:
            log.info("stopping alone (SIGHUP): the app keeps running; draining what it wrote so far")
        elif settings.app_program and settings.supervisor.serverurl:
            log.info("stopping: waiting for %s to stop before the last drain", settings.app_program)
            from .appstate import AppWatcher, rpc_state  # only at shutdown: psutil costs 2.5 MiB at rest

            rpc = SupervisorRPC(settings.supervisor, timeout=2.0)
            watcher = AppWatcher(settings.app_program, rpc_state(rpc, settings.app_program),
                                 serverurl=settings.supervisor.serverurl).start()
            app_running = watcher.running
        status = pipeline.shutdown(deadline, app_running)
    finally:
        if watcher is not None:
            watcher.close()
        pipeline.close()
        server.stop()
        # Done: a later SIGTERM (supervisord signals in its turn what the pod controller already
        # stopped) must not kill the exiting interpreter, which resets Python handlers to default.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    return status


if __name__ == "__main__":
    sys.exit(main())
