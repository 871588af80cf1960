"""podctl: see and steer pods, like kubectl for a podvisor stack.

Exit codes follow supervisorctl: 0 ok, 1 failed or timed out, 2 usage, 3 a pod is not running,
4 supervisord (or the controller) cannot be reached.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.podctl.apply import apply
from podvisor.supervisord.podctl.client import Client, Target, Unreachable, default_conf
from podvisor.supervisord.podctl.output import table
from podvisor.supervisord.spec.parse import SpecError

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_UNREACHABLE = 0, 1, 2, 3, 4




def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podctl", description="See and steer podvisor pods.")
    parser.add_argument("-c", "--conf", type=Path, default=None, help="stack.conf (default: $PODVISOR_CONF, "
                        "./supervisord/stack.conf)")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="pods as a table like kubectl get pods (exit 3 if one is not Running)")
    st.add_argument("pods", nargs="*", metavar="POD", help="only these pods (default: all)")
    st.add_argument("--json", action="store_true", help="the controller's full pod status as JSON")
    helps = {"start": "start a pod: sidecars first, the app once they answer; waits until Ready",
             "stop": "stop a pod: the app first, its sidecars once it has exited",
             "restart": "stop, then start, in those orders; waits until Ready"}
    for action, text in helps.items():
        p = sub.add_parser(action, help=text)
        p.add_argument("pod", nargs="?", help="the pod's name")
        p.add_argument("--all", action="store_true", help="every pod")
        p.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
        p.add_argument("--no-wait", action="store_true", help="do not wait for Ready after a start")
    w = sub.add_parser("wait", help="wait until every pod is Ready (exit 1 on timeout or a Failed pod)")
    w.add_argument("--ready", action="store_true", required=True)
    w.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    lg = sub.add_parser("logs", help="a pod's logs from the aggregator")
    lg.add_argument("pod")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--level")
    lg.add_argument("--since", help="ISO 8601 time or epoch seconds")
    lg.add_argument("--limit", type=int, default=100)
    ap = sub.add_parser("apply", help="bring the running stack to its (changed) pods spec, like kubectl apply")
    ap.add_argument("-f", "--filename", type=Path, help="the pods spec (default: the one the conf was rendered from)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds (default 120)")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the created and changed pods to be Ready")
    return parser


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    if args.command in ("start", "stop", "restart") and bool(args.pod) == args.all:
        print(f"podctl {args.command}: name one pod or give --all", file=sys.stderr)
        return EXIT_USAGE
    client = Client(Target.from_conf(args.conf or default_conf()))
    if args.command == "status":
        pods = client.pods()
        unknown = [name for name in args.pods if name not in {p["pod"] for p in pods}]
        if unknown:
            print(f"podctl: no pod named {', '.join(map(repr, unknown))}", file=sys.stderr)
            return EXIT_FAIL
        if args.pods:
            pods = [p for p in pods if p["pod"] in args.pods]
        out.write(json.dumps({"pods": pods}, indent=2) + "\n" if args.json else table(pods))
        return EXIT_OK if all(p["phase"] == "Running" for p in pods) else EXIT_NOT_RUNNING
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
    if args.command == "apply":
        return apply(client, args.conf or default_conf(), args.filename, args.timeout, not args.no_wait, out)
    return client.logs(args.pod, args.follow, args.level, args.since, args.limit, out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except Unreachable as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (FileNotFoundError, ValueError, SpecError) as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
