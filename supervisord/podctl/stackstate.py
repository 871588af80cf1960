"""Is a stack there? Its supervisord, the processes supervisord started, and its ports, as the
kernel sees them: what `podctl up` checks before starting and `podctl down` waits on."""
from __future__ import annotations

import socket
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import psutil

from podvisor.core.procs import nginx_holding
from podvisor.core.supervisor import SupervisorRPC, split_program
from podvisor.supervisord.podctl.client import Target, same_server
from podvisor.supervisord.podctl.errors import Failure
from podvisor.supervisord.spec.model import Stack


def stack_ports(stack: Stack) -> dict[int, str]:
    """Every port of the stack, with what listens on it."""
    ports = {stack.aggregator_port: "aggregator", stack.controller_port: "controller"}
    for pod in stack.pods:
        ports.update({pod.port: f"{pod.name} app", pod.metrics_port: f"{pod.name} metrics",
                      pod.logger_port: f"{pod.name} logger"})
    return ports


def port_busy(host: str, port: int) -> bool:
    """Whether a server could not bind host:port now. SO_REUSEADDR as podvisor's servers bind: a
    connection of the last run in TIME_WAIT does not keep them from starting, so it does not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def busy_ports(stack: Stack) -> list[str]:
    return [f"{port} ({owner})" for port, owner in sorted(stack_ports(stack).items()) if port_busy(stack.host, port)]


def stack_processes(serverurl: str, state_dir: Path) -> list[tuple[int, str]]:
    """(pid, program) of every live process the supervisord at `serverurl` started, and of their
    descendants: supervisord gives each child SUPERVISOR_SERVER_URL, and descendants inherit it,
    also those that left the process group or were re-parented to init; and every nginx holding a
    file of the stack's `state_dir` (see `nginx_holding`)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            env = proc.environ()
            url = env.get("SUPERVISOR_SERVER_URL")
            if url and same_server(url, serverurl) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append((proc.pid, env.get("SUPERVISOR_PROCESS_NAME") or proc.name()))
        except psutil.Error:  # gone, or not ours to read
            continue
    pids = {pid for pid, _name in found}
    return found + [(proc.pid, "nginx") for proc in nginx_holding(str(state_dir)) if proc.pid not in pids]


def supervisord_pid(target: Target) -> int | None:
    """The pid of the supervisord answering on the conf's socket, None when none answers."""
    try:
        return SupervisorRPC(target.serverurl, timeout=5.0).pid()
    except (OSError, xmlrpc.client.Error):
        return None


def pidfile_pid(target: Target, written_since: float = 0.0) -> int | None:
    """The pid in the conf's supervisord pidfile (a daemonized supervisord writes it) when it was
    written at `written_since` or later: a supervisord that was killed leaves its pidfile behind."""
    path = target.state_dir / "supervisord.pid"
    try:
        if path.stat().st_mtime < written_since:
            return None
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def stop_leftovers(left: list[tuple[int, str]], stack: Stack) -> None:
    """Stop what a supervisord that died (SIGKILL, OOM) left running, as its controller would have:
    the apps first, then the rest; each group gets SIGTERM, its stop budget, then SIGKILL."""
    apps = [pid for pid, name in left if (split_program(name) or ("", ""))[1] == "app"]
    rest = [pid for pid, _name in left if pid not in apps]
    budgets = [pod.budget for pod in stack.pods]
    for pids, grace in ((apps, max((b.app_stop_seconds for b in budgets), default=10.0)),
                        (rest, max((b.logger_stopwaitsecs for b in budgets), default=10.0))):
        procs = []
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                proc.terminate()
                procs.append(proc)
            except psutil.Error:
                continue
        _gone, alive = psutil.wait_procs(procs, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass


class Progress:
    """Lines on a stream that say what is being waited for, each printed only when it changes."""

    def __init__(self, err: TextIO):
        self.err = err
        self.last: dict[str, str] = {}

    def show(self, text: str, key: str = "") -> None:
        if self.last.get(key) != text:
            self.last[key] = text
            self.err.write(text + "\n")
            self.err.flush()


def wait_stopped(target: Target, stack: Stack, supervisord_alive: Callable[[], bool], timeout: float,
                 err: TextIO) -> float:
    """Wait until supervisord, every process it started and every port of the stack are gone,
    showing what is left as it changes; the seconds it took, or Failure past `timeout`."""
    progress = Progress(err)
    started = time.monotonic()
    while True:
        procs = stack_processes(target.serverurl, target.state_dir)
        alive = supervisord_alive()
        busy = [] if alive or procs else busy_ports(stack)  # ports matter once everything has exited
        if not alive and not procs and not busy:
            return time.monotonic() - started
        names = sorted({name for _pid, name in procs})
        if procs or alive:
            left = (["supervisord"] if alive else []) + names
            count = len(procs) + alive
            text = f"  waiting for {count} process{'' if count == 1 else 'es'}: {', '.join(left)}"
        else:
            text = f"  every process has exited; waiting for port {', '.join(busy)} to be free"
        progress.show(text)
        if time.monotonic() - started > timeout:
            raise Failure(f"not stopped after {timeout:g}s: {text.strip()}")
        time.sleep(0.1)

