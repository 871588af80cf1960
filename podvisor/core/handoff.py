"""Listening sockets that outlive their apps: handed over a unix socket, passed the systemd way.

The controller binds each pod's listening sockets and keeps them; an app's launcher asks for them
(`request`), receives them with SCM_RIGHTS, and execs the app with them as fd 3, 4, ... and
LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES set, as systemd's socket activation does (nginx reads
the same fds from its NGINX variable). Connections that arrive while no app runs wait in the
kernel's backlog instead of being refused. An app reads them with `inherited_sockets()`.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Mapping, MutableMapping

FIRST_FD = 3  # SD_LISTEN_FDS_START
MAX_FDS = 8
REQUEST_TIMEOUT = 5.0


class HandoffError(RuntimeError):
    """The holder refused or could not be reached; the message says why."""


def request(path: str, pod: str, slot: int, timeout: float = REQUEST_TIMEOUT) -> list[tuple[str, socket.socket]]:
    """Ask the holder at `path` for the sockets of `pod`'s app slot: [(name, socket), ...]."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(path)
            conn.sendall(f"{pod} {slot}\n".encode())
            message, fds, _flags, _addr = socket.recv_fds(conn, 4096, MAX_FDS)
        except OSError as exc:
            raise HandoffError(f"the socket holder at {path} did not answer: {exc}") from exc
    text = message.decode("utf-8", "replace").strip()
    status, _, rest = text.partition(" ")
    if status != "ok":
        for fd in fds:
            os.close(fd)
        raise HandoffError(rest or text or "empty answer")
    names = rest.split(":") if rest else []
    if len(names) != len(fds):
        for fd in fds:
            os.close(fd)
        raise HandoffError(f"the holder sent {len(fds)} sockets for {len(names)} names")
    return [(name, socket.socket(fileno=fd)) for name, fd in zip(names, fds, strict=True)]


def answer(conn: socket.socket, sockets: list[tuple[str, socket.socket]]) -> None:
    """Send `sockets` (with their names) to a launcher; the holder keeps its own copies."""
    names = ":".join(name for name, _ in sockets)
    socket.send_fds(conn, [f"ok {names}\n".encode()], [sock.fileno() for _, sock in sockets])


def refuse(conn: socket.socket, why: str) -> None:
    conn.sendall(f"error {why}\n".encode())


def pass_on(sockets: list[tuple[str, socket.socket]], env: MutableMapping[str, str]) -> None:
    """Make `sockets` this process's fds 3, 4, ..., inheritable across exec, and describe them in
    `env` (LISTEN_FDS, LISTEN_PID of this process, which exec keeps, LISTEN_FDNAMES, NGINX)."""
    for index, (_, sock) in enumerate(sockets):
        target = FIRST_FD + index
        if sock.fileno() != target:
            os.dup2(sock.fileno(), target, inheritable=True)
            sock.close()
        else:
            os.set_inheritable(target, True)
    fds = [FIRST_FD + i for i in range(len(sockets))]
    env["LISTEN_FDS"] = str(len(sockets))
    env["LISTEN_PID"] = str(os.getpid())
    env["LISTEN_FDNAMES"] = ":".join(name for name, _ in sockets)
    env["NGINX"] = "".join(f"{fd};" for fd in fds)  # nginx's own form of the same: "3;4;"


def inherited_sockets(env: Mapping[str, str] | None = None) -> list[tuple[str, socket.socket]]:
    """The listening sockets this process was given the systemd way ([] when none were): each
    with its name from LISTEN_FDNAMES. Ignored unless LISTEN_PID is this process."""
    env = os.environ if env is None else env
    if env.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(env.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    names = env.get("LISTEN_FDNAMES", "").split(":")
    found = []
    for index in range(max(0, min(count, MAX_FDS))):
        fd = FIRST_FD + index
        sock = socket.socket(fileno=fd)
        os.set_inheritable(fd, False)  # ours now: a child of the app does not get it
        found.append((names[index] if index < len(names) and names[index] else f"fd{fd}", sock))
    return found
