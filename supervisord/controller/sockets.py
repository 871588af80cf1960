"""The pods' listening sockets, bound and kept by the controller so they outlive every app process.

Each pod whose spec says `socket = "held"` gets a shared socket on its port (every replica accepts
on it; the kernel spreads connections) and one private socket per app slot (its probes and scrapes
reach that one process). Launchers ask for them over a unix socket (podvisor.core.handoff). When
the controller itself restarts while apps run, the ports are still bound by the apps' inherited
copies: the holder takes a copy back from one of them (pidfd_getfd) instead of failing to bind.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil

from podvisor.core import handoff
from podvisor.supervisord.spec.model import Pod

log = logging.getLogger(__name__)
BACKLOG = 1024  # connections that wait while no app process accepts (a restart)
_SYS_PIDFD_GETFD = 438


def _listening_inode(host: str, port: int) -> int | None:
    """The inode of the listening TCP socket on (host, port), from /proc/net/tcp."""
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    want = f"{int.from_bytes(packed, 'little'):08X}:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields[1] == want and fields[3] == "0A":  # 0A: LISTEN
            return int(fields[9])
    return None


def _copy_from(pid: int, fd: int) -> int:
    """A duplicate of another process's fd (pidfd_getfd, Linux 5.6+, same user or root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        new = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if new < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return new
    finally:
        os.close(pidfd)


def recover(host: str, port: int, processes: Iterable[psutil.Process]) -> socket.socket | None:
    """The listening socket on (host, port) that one of `processes` holds, copied; None if none does."""
    inode = _listening_inode(host, port)
    if inode is None:
        return None
    for proc in processes:
        try:
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == f"socket:[{inode}]":
                    return socket.socket(fileno=_copy_from(proc.pid, int(fd)))
        except OSError:
            continue
    return None


class SocketHolder:
    """Binds, keeps and hands out the listening sockets of the pods that hold theirs."""

    def __init__(self, path: Path, processes: Callable[[str], list[psutil.Process]] = lambda program: []):
        self.path = path
        self.processes = processes  # live processes of a program (to recover a socket they hold)
        self.lock = threading.Lock()
        self._by_address: dict[tuple[str, int], socket.socket] = {}
        self._pods: dict[str, tuple[tuple[str, int], list[tuple[str, int]]]] = {}  # pod -> shared, slots
        self._programs: dict[str, list[str]] = {}  # pod -> its app programs
        self._server: socket.socket | None = None

    # -- which sockets exist ---------------------------------------------------------------------------
    def configure(self, host: str, pods: Iterable[Pod]) -> None:
        """Hold the sockets of these pods (binding what is new) and close those of pods gone."""
        wanted: dict[str, tuple[tuple[str, int], list[tuple[str, int]]]] = {}
        pods_list = list(pods)
        for pod in pods_list:
            if pod.socket == "held":
                wanted[pod.name] = ((host, pod.port), [(host, port) for port in pod.slot_ports])
        needed = {addr for shared, slots in wanted.values() for addr in (shared, *slots)}
        with self.lock:
            for addr in list(self._by_address):
                if addr not in needed:
                    self._by_address.pop(addr).close()
            self._pods = wanted
            self._programs = {pod.name: list(pod.app_programs) for pod in pods_list}
        for name in wanted:
            try:
                self._hold(name)
            except OSError:  # the pod's launcher is refused (its app cannot start), the rest go on
                with self.lock:
                    self._pods.pop(name, None)

    def _hold(self, pod: str) -> None:
        """Bind the pod's sockets that are not held (new, or released while it was stopped)."""
        with self.lock:
            shared, slots = self._pods[pod]
            missing = [addr for addr in (shared, *slots) if addr not in self._by_address]
            programs = self._programs.get(pod, [])
        for addr in missing:
            try:
                sock = self._bind(addr, programs)
            except OSError as exc:
                log.error("pod %s: cannot hold its listening socket %s:%d: %s", pod, *addr, exc)
                raise
            with self.lock:
                if addr in self._by_address:  # bound meanwhile by another thread
                    sock.close()
                else:
                    self._by_address[addr] = sock

    def release(self, pod: str) -> None:
        """Close a pod's sockets once its apps have ended on purpose (stopped, or ended for good):
        clients are refused, as by a stopped server, instead of waiting in a backlog nothing will
        accept from. They are bound again when one of the pod's launchers asks for them."""
        with self.lock:
            entry = self._pods.get(pod)
            addrs = (entry[0], *entry[1]) if entry else ()
            released = [self._by_address.pop(addr) for addr in addrs if addr in self._by_address]
        for sock in released:
            sock.close()
        if released:
            log.info("pod %s: its apps have ended: listening sockets closed until it starts again", pod)

    def _bind(self, addr: tuple[str, int], programs: list[str]) -> socket.socket:
        sock = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            # Still bound by the apps that inherited it from a controller that is gone: take it back.
            procs = [p for program in programs for p in self.processes(program)]
            recovered = recover(addr[0], addr[1], procs)
            if recovered is None:
                raise
            log.info("took back the listening socket %s:%d from a running app", *addr)
            return recovered
        sock.listen(BACKLOG)
        return sock

    def sockets_for(self, pod: str, slot: int) -> list[tuple[str, socket.socket]]:
        """[("http", shared), ("replica", the slot's own)], bound again if they were released;
        KeyError when the pod holds none, OSError when they cannot be bound."""
        with self.lock:
            shared, slots = self._pods[pod]
            if not 0 <= slot < len(slots):
                raise KeyError(f"pod {pod!r} has no app slot {slot}")
        self._hold(pod)
        with self.lock:
            return [("http", self._by_address[shared]), ("replica", self._by_address[slots[slot]])]

    # -- handing them out ------------------------------------------------------------------------------
    def start(self) -> None:
        """Serve launchers on the unix socket at `path` (owner only) from a daemon thread."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)
        try:
            server.bind(str(self.path))
        finally:
            os.umask(old)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._serve, name="socket-holder", daemon=True).start()

    def _serve(self) -> None:
        assert self._server is not None
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(handoff.REQUEST_TIMEOUT)
                try:
                    self._answer(conn)
                except OSError as exc:
                    log.warning("a launcher's request failed: %s", exc)

    def _answer(self, conn: socket.socket) -> None:
        line = conn.recv(256).decode("utf-8", "replace").strip()
        pod, _, slot = line.partition(" ")
        try:
            sockets = self.sockets_for(pod, int(slot))
        except (KeyError, ValueError) as exc:
            handoff.refuse(conn, f"no sockets for {line!r}: {exc}")
            return
        except OSError as exc:  # released while the pod was stopped, and the port is taken meanwhile
            handoff.refuse(conn, f"cannot bind the sockets of {line!r}: {exc}")
            return
        handoff.answer(conn, sockets)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        with self.lock:
            for sock in self._by_address.values():
                sock.close()
            self._by_address.clear()
