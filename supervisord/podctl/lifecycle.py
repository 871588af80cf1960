"""podctl up and down: the stack's supervisord started and stopped, waiting until it really is.

`up` refuses to start a second stack for a conf, or one whose ports are taken, then runs
supervisord (in the foreground as podctl's child, or daemonized with -d) and shows the pods coming
up until every one is Ready. In the foreground it then streams every pod's logs until Ctrl-C, which
sends supervisord SIGTERM: the controller stops every app before its sidecars, the aggregator last.
`down` asks supervisord to shut down the same way and returns only once every process of the stack
has exited and its ports are free, so `podctl down && podctl up -d` always works.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TextIO

from podvisor.core.procs import pid_alive
from podvisor.core.supervisor import SupervisorRPC
from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.podctl.client import Client, Target, readiness
from podvisor.supervisord.podctl.errors import Failure, Unreachable
from podvisor.supervisord.podctl.logs import Aggregator, LogFilter
from podvisor.supervisord.podctl.output import LinePrinter
from podvisor.supervisord.podctl.stackstate import (
    Progress,
    busy_ports,
    pidfile_pid,
    stack_processes,
    stop_leftovers,
    supervisord_pid,
    wait_stopped,
)
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec.model import Stack

SUPERVISORD = [sys.executable, "-m", "supervisor.supervisord"]
RETRY_SECONDS = 0.5  # between attempts to reach a restarting aggregator


def preflight(target: Target, stack: Stack) -> None:
    """Refuse a second stack for the conf, or one whose ports another program holds."""
    pid = supervisord_pid(target)
    if pid is not None:
        raise Failure(f"a stack is already running for {target.conf} (supervisord pid {pid}); "
                      "podctl down stops it")
    busy = busy_ports(stack)
    if busy:
        raise Failure(f"cannot start: port {', '.join(busy)} is in use by another program")
    # supervisord refuses a conf whose log folders are missing (after `git clean -fdX var/`, say).
    render.make_state_dirs(stack, target.conf.parent)


def _last_line(log: IO[bytes]) -> str:
    log.seek(0)
    lines = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def wait_ready(client: Client, timeout: float, err: TextIO, died: Callable[[], str | None]) -> bool:
    """Show each pod's STATUS and READY count as they change until every pod is Ready; False
    (after saying why) at the deadline or when a pod failed for good."""
    progress = Progress(err)
    started = time.monotonic()
    while True:
        problem = died()
        if problem:
            raise Failure(problem)
        try:
            pods = client.pods()
        except Unreachable:
            pods, ok, waiting = None, None, "the controller (not answering yet)"
        if pods is not None:
            width = max(len(p["pod"]) for p in pods)
            for p in pods:
                progress.show(f"  {p['pod']:<{width}}  {p['status']:<16} {p['containers_ready']}/{p['containers']}",
                              p["pod"])
            ok, waiting = readiness(pods)
            if ok:
                counted = sum(expected_ready(p) for p in pods)  # not pods stopped on purpose
                err.write(f"all {counted} pods ready ({time.monotonic() - started:.1f}s)\n")
                err.flush()
                return True
        if ok is False or time.monotonic() - started > timeout:
            err.write(f"not ready{'' if ok is False else f' after {timeout:g}s'}: {waiting}\n")
            err.flush()
            return False
        time.sleep(0.2)


def up_detached(target: Target, stack: Stack, timeout: float, err: TextIO) -> int:
    """`up -d`: supervisord daemonized; returns once every pod is Ready (0), else 1."""
    preflight(target, stack)
    launched = time.time() - 1.0  # file times can lag the clock by a tick
    with tempfile.TemporaryFile() as log:
        # The daemon forks and its first process exits; errors before that (a bad conf, a socket
        # in use) come back here with a non-zero exit.
        code = subprocess.run([*SUPERVISORD, "-c", str(target.conf)], stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT).returncode
        if code:
            raise Failure(f"supervisord did not start (exit {code}): {_last_line(log)}")

    def died() -> str | None:
        pid = pidfile_pid(target, written_since=launched)
        if pid is not None and not pid_alive(pid):
            return f"supervisord (pid {pid}) has exited; see {target.state_dir / 'supervisord.log'}"
        return None
    err.write(f"started supervisord for {target.conf}\n")
    if wait_ready(Client(target), timeout, err, died):
        return 0
    err.write("the stack keeps running: podctl status shows it, podctl down stops it\n")
    return 1


class Interrupts:
    """Ctrl-C, SIGTERM and SIGHUP while `up` runs: the first stops the stack (KeyboardInterrupt in
    the main thread); later ones only say that it is stopping, since the ordered stop must finish."""

    KINDS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, err: TextIO):
        self.err = err
        self.told = False

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        before = {kind: signal.signal(kind, self._first) for kind in self.KINDS}
        try:
            yield self
        finally:
            for kind, old in before.items():
                signal.signal(kind, old)

    def stopping(self) -> None:
        for kind in self.KINDS:
            signal.signal(kind, self._later)

    def _first(self, _signum: int, _frame: object) -> None:
        self.stopping()
        raise KeyboardInterrupt

    def _later(self, _signum: int, _frame: object) -> None:
        if not self.told:
            self.told = True
            self.err.write("  already stopping: every process gets its grace period, then SIGKILL\n")
            self.err.flush()


def stream(target: Target, stack: Stack, since: float, out: TextIO, colour: bool,
           alive: Callable[[], bool]) -> None:
    """Every pod's lines of this run (probes left out), until supervisord has exited; reconnects
    when the aggregator restarts, from the last line shown."""
    printer = LinePrinter(out, [pod.name for pod in stack.pods], colour)
    flt = LogFilter(since=since)
    last = 0  # from the first entry of this run: `since` narrows the walk to it
    while alive():
        try:
            for seq, entry in Aggregator(target.aggregator_url, target.token()).follow(flt, last):
                printer.write(entry)
                last = seq
        except Unreachable:
            pass
        if alive():
            time.sleep(RETRY_SECONDS)


def up(target: Target, stack: Stack, timeout: float, out: TextIO, err: TextIO, colour: bool) -> int:
    """`up`: supervisord in the foreground as podctl's child, logs until Ctrl-C, then the ordered stop."""
    preflight(target, stack)
    since = time.time()
    log = tempfile.TemporaryFile()
    # Its own process group: Ctrl-C on the terminal reaches podctl alone, which then stops the
    # stack in order (SIGTERM), and shows it doing so.
    proc = subprocess.Popen([*SUPERVISORD, "-n", "-s", "-c", str(target.conf)], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, process_group=0)
    err.write(f"started supervisord (pid {proc.pid}) for {target.conf}; Ctrl-C stops the stack\n")
    failure: Failure | None = None

    def died() -> str | None:
        code = proc.poll()
        return None if code is None else f"supervisord exited with {code}: {_last_line(log)}"
    with Interrupts(err).installed() as interrupts:
        try:
            if wait_ready(Client(target), timeout, err, died):
                err.write("logs of every pod follow (probe and scrape requests left out)\n")
            else:
                err.write("logs follow\n")
            err.flush()
            stream(target, stack, since, out, colour, lambda: proc.poll() is None)
        except KeyboardInterrupt:
            pass
        except Failure as exc:
            failure = exc
        interrupts.stopping()
        try:
            code = _stop(proc, target, stack, err)
        finally:
            log.close()
    if failure is not None:
        raise failure
    return code


def _stop(proc: subprocess.Popen, target: Target, stack: Stack, err: TextIO) -> int:
    if proc.poll() is None:
        # The signal first: after a SIGHUP (the terminal closed) writing may fail, and the stack
        # must stop all the same.
        proc.send_signal(signal.SIGTERM)
        err.write("\nstopping the stack: apps first, then their sidecars, then the aggregator\n")
        err.flush()
    else:
        err.write(f"supervisord has exited ({proc.returncode})\n")
    took = wait_stopped(target, stack, lambda: proc.poll() is None, stack.budget.systemd_timeout_seconds, err)
    err.write(f"stack stopped ({took:.1f}s)\n")
    err.flush()
    return 0


def down(target: Target, stack: Stack, timeout: float | None, err: TextIO) -> int:
    """`down`: supervisord's ordered shutdown; returns once every process has exited and every port
    of the stack is free. Nothing running is not an error (0)."""
    pid = supervisord_pid(target)
    if pid is None:
        left = stack_processes(target.serverurl, target.state_dir)
        if not left:
            err.write(f"no stack is running for {target.conf}\n")
            return 0
        err.write(f"the supervisord of {target.conf} has gone, but {len(left)} processes it started still run: "
                  "stopping them, the apps first\n")
        stop_leftovers(left, stack)
        took = wait_stopped(target, stack, lambda: False, 10.0, err)
        err.write(f"stack stopped ({took:.1f}s)\n")
        return 0
    err.write(f"stopping the stack of {target.conf} (supervisord pid {pid}): apps first, then their "
              "sidecars, then the aggregator\n")
    err.flush()
    try:
        SupervisorRPC(target.serverurl, timeout=10.0).call("shutdown")
    except (OSError, xmlrpc.client.Error):
        pass  # already shutting down, or it closed the socket on its way: the wait below tells
    took = wait_stopped(target, stack, lambda: pid_alive(pid),
                        timeout if timeout is not None else stack.budget.systemd_timeout_seconds, err)
    err.write(f"stack stopped ({took:.1f}s)\n")
    return 0
