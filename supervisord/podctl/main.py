"""podctl: see and steer pods, like kubectl for a podvisor stack.

Exit codes follow supervisorctl: 0 ok, 1 failed or timed out (an unknown pod), 2 usage or an
unreadable conf, 3 a pod is not running, 4 supervisord, the controller or the aggregator cannot be
reached (podvisor.supervisord.podctl.errors).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, TextIO

from podvisor.core.settings import Env
from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.podctl import completion, describe, lifecycle, logs, status, top
from podvisor.supervisord.podctl.apply import apply
from podvisor.supervisord.podctl.client import Client, Target, fill_from_spec
from podvisor.supervisord.podctl.errors import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    PodctlError,
    UsageError,
)
from podvisor.supervisord.podctl.output import use_colour
from podvisor.supervisord.podctl.settings import Settings
from podvisor.supervisord.spec.model import Stack


class Parser(argparse.ArgumentParser):
    """argparse with podctl's error style: one line on stderr naming the command, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="podctl", description="See and steer podvisor pods.")
    parser.add_argument("-c", "--conf", type=Path, default=None, help="stack.conf (default: $PODVISOR_CONF, "
                        "./supervisord/stack.conf)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    st = sub.add_parser("status", help="pods as a table like kubectl get pods (exit 3 if one is not Running)")
    completion.with_pods(st.add_argument("pods", nargs="*", metavar="POD", help="only these pods (default: all)"))
    st.add_argument("-o", "--output", choices=("table", "wide", "json"), default="table",
                    help="wide: also ports and pids (app/metrics/logger) and the Ready condition; json: "
                    "the controller's full pod status")
    st.add_argument("--json", action="store_true", help="the same as -o json")
    st.add_argument("-w", "--watch", action="store_true", help="then print a row each time a pod changes, "
                    "until Ctrl-C")
    helps = {"start": "start a pod: sidecars first, the app once they answer; waits until Ready",
             "stop": "stop a pod: the app first, its sidecars once it has exited",
             "restart": "stop, then start, in those orders; waits until Ready"}
    for action, text in helps.items():
        p = sub.add_parser(action, help=text)
        completion.with_pods(p.add_argument("pod", nargs="?", help="the pod's name"))
        p.add_argument("--all", action="store_true", help="every pod")
        p.add_argument("--timeout", type=positive, default=120.0, help="seconds (default 120)")
        p.add_argument("--no-wait", action="store_true", help="do not wait for Ready after a start")
    w = sub.add_parser("wait", help="wait until every pod is Ready (exit 1 on timeout or a Failed pod)")
    w.add_argument("--ready", action="store_true", required=True)
    w.add_argument("--timeout", type=positive, default=60.0, help="seconds (default 60)")
    lg = sub.add_parser("logs", help="pods' logs from the aggregator (default: every pod)")
    completion.with_pods(lg.add_argument("pods", nargs="*", metavar="POD", help="these pods (default: all)"))
    lg.add_argument("-f", "--follow", action="store_true", help="then every new line, until Ctrl-C")
    lg.add_argument("--since", type=logs.since_arg, help="ISO 8601 time, epoch seconds, or a duration back "
                    "from now: 10m, 2h, 1d")
    count = lg.add_mutually_exclusive_group()
    count.add_argument("--tail", type=logs.count_arg(0), default=100, metavar="N",
                       help="the last N lines first (default 100; 0 with -f: only new ones)")
    count.add_argument("--limit", type=logs.count_arg(1), dest="tail", help=argparse.SUPPRESS)  # the old name
    lg.add_argument("--level", type=logs.levels_arg, help="only these levels, comma-separated (error,critical)")
    lg.add_argument("--grep", metavar="TEXT", help="full-text search of the message (the aggregator's q)")
    lg.add_argument("--probes", action="store_true", help="also health probe and metrics scrape requests")
    upp = sub.add_parser("up", help="start the stack; in the foreground: logs until Ctrl-C stops it in order")
    upp.add_argument("-d", "--detach", action="store_true", help="run supervisord in the background and "
                     "return once every pod is Ready")
    upp.add_argument("--timeout", type=positive, default=120.0, help="seconds to wait for Ready (default 120)")
    dn = sub.add_parser("down", help="stop the stack in order; returns once every process has exited and "
                        "its ports are free")
    dn.add_argument("--timeout", type=positive, default=None,
                    help="seconds (default: the longest stop the pods' grace periods allow)")
    ds = sub.add_parser("describe", help="one pod in detail: containers, probes, restarts, events")
    completion.with_pods(ds.add_argument("pod", help="the pod's name"))
    tp = sub.add_parser("top", help="CPU (%% of a core) and memory of every container's process tree")
    completion.with_pods(tp.add_argument("pods", nargs="*", metavar="POD", help="only these pods (default: all)"))
    tp.add_argument("--interval", type=positive, default=1.0, help="seconds to measure CPU over (default 1)")
    tp.add_argument("-o", "--output", choices=("table", "json"), default="table")
    cp = sub.add_parser("completion", help="print the shell completion script: "
                        "source <(podctl completion bash)")
    cp.add_argument("shell", choices=completion.SHELLS)
    ap = sub.add_parser("apply", help="bring the running stack to its (changed) pods spec, like kubectl apply")
    ap.add_argument("-f", "--filename", type=Path, help="the pods spec (default: the one the conf was rendered from)")
    ap.add_argument("--timeout", type=positive, default=120.0, help="seconds (default 120)")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the created and changed pods to be Ready")
    return parser


def run(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if args.command == "completion":
        out.write(completion.script(args.shell))
        return EXIT_OK
    if args.command in ("start", "stop", "restart") and bool(args.pod) == args.all:
        raise UsageError(f"{args.command}: name one pod or give --all")
    target = Target.from_conf(args.conf or settings.conf)
    client = Client(target)
    if args.command == "status":
        fmt = "json" if args.json else args.output
        if args.watch:
            if fmt == "json":
                raise UsageError("status: -w prints rows as pods change; it cannot be watched as JSON")
            return status.watch(client, args.pods, fmt == "wide", out, _stack(target))
        return status.run(client, args.pods, fmt, out, _stack(target))
    if args.command in ("start", "stop", "restart"):
        ok, messages = client.control(args.command, "--all" if args.all else args.pod, args.timeout,
                                      not args.no_wait)
        for m in messages:
            out.write(m + "\n")
        return EXIT_OK if ok else EXIT_FAIL
    if args.command == "wait":
        ok, waiting = client.wait_ready(None, time.monotonic() + args.timeout)
        if ok:
            out.write(f"all {sum(expected_ready(p) for p in client.pods())} pods ready\n")
            return EXIT_OK
        out.write(f"not ready after {args.timeout:g}s: {waiting}\n")
        return EXIT_FAIL
    if args.command == "logs":
        flt = logs.LogFilter(tuple(dict.fromkeys(args.pods)), args.level or (), args.since, args.grep, args.probes)
        return logs.run(target, flt, args.tail, args.follow, out, use_colour(out, settings.no_color))
    if args.command == "up":
        if args.detach:
            return lifecycle.up_detached(target, target.stack(), args.timeout, err)
        return lifecycle.up(target, target.stack(), args.timeout, out, err, use_colour(out, settings.no_color))
    if args.command == "down":
        return lifecycle.down(target, target.stack(), args.timeout, err)
    if args.command == "describe":
        out.write(describe.describe(fill_from_spec(client.pod(args.pod), _stack(target))))
        return EXIT_OK
    if args.command == "apply":
        return apply(client, args.conf or settings.conf, args.filename, args.timeout, not args.no_wait, out)
    pods = status.selected(client, args.pods, None)
    usages = top.sample(pods, args.interval)
    out.write(top.as_json(usages, args.interval) if args.output == "json" else top.table(usages))
    return EXIT_OK


def _stack(target: Target) -> Stack | None:
    """The stack's spec when the conf has one podctl can read; describe and -o wide fill in from it."""
    try:
        return target.stack()
    except PodctlError:
        return None


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env(Env())
    parser = build_parser()
    if settings.completing:
        completion.complete(parser)  # answers the shell and exits
    args = parser.parse_args(argv)
    try:
        return run(args, settings)
    except PodctlError as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # `podctl logs | head`: the reader has gone. Point stdout at /dev/null so the flush at exit
        # does not complain about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # a socket error no call site expected
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
