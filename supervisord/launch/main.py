"""podvisor-launch: start an app with the listening sockets podvisor holds for its pod.

    podvisor-launch POD SLOT -- COMMAND [ARG ...]

supervisord runs this as the app's command where the spec says `socket = "held"`. It asks the
controller (PODVISOR_HANDOFF, a unix socket) for the pod's shared socket and the slot's own, makes
them fds 3 and 4 with LISTEN_FDS=2, LISTEN_FDNAMES=http:replica (and NGINX="3;4;"), and execs the
command, which keeps this process's pid (so LISTEN_PID holds and supervisord's pid is the app's).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from podvisor.core.handoff import HandoffError, pass_on, request
from podvisor.core.settings import Env, SettingsError, exit_bad_setting

PROG = "podvisor-launch"
EX_TEMPFAIL = 75  # the holder did not answer: supervisord and the controller retry with backoff
WAIT_SECONDS = 10.0  # the controller may be starting (or restarting) when the app is started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("pod")
    parser.add_argument("slot", type=int)
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    try:
        path = str(Env().path("PODVISOR_HANDOFF", required=True))
    except SettingsError as exc:
        return exit_bad_setting(PROG, exc)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        try:
            sockets = request(path, args.pod, args.slot)
            break
        except HandoffError as exc:
            if time.monotonic() > deadline or "no sockets for" in str(exc):
                sys.stderr.write(f"{PROG}: pod {args.pod} slot {args.slot}: {exc}\n")
                return EX_TEMPFAIL
            time.sleep(0.1)  # the controller binds the sockets as it starts: ask again
    env = dict(os.environ)
    pass_on(sockets, env)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        sys.stderr.write(f"{PROG}: cannot run {command[0]}: {exc.strerror}\n")
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main())
