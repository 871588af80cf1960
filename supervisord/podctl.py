"""podctl: see and steer pods, like kubectl for a podvisor stack.

Control goes through supervisord's owner-only unix socket (a REMOTE_COMMUNICATION event to the
controller); status comes from the controller's loopback endpoint; logs from the aggregator.
Exit codes follow supervisorctl: 0 ok, 1 failed or timed out, 2 usage, 3 a pod is not running,
4 supervisord (or the controller) cannot be reached.
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests

from supervisord.controller.status import expected_ready
from supervisord.rpc import SupervisorRPC

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


class Unreachable(Exception):
    """supervisord or the controller did not answer."""


@dataclass(frozen=True)
class Target:
    serverurl: str
    controller_url: str
    aggregator_url: str
    state_dir: Path

    @classmethod
    def from_conf(cls, path: Path) -> Target:
        parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
        if not parser.read(path):
            raise FileNotFoundError(f"cannot read {path}")
        here = str(path.resolve().parent)

        def get(section: str, key: str) -> str:
            try:
                return parser.get(section, key).replace("%(here)s", here).replace("%%", "%")
            except (configparser.NoSectionError, configparser.NoOptionError):
                raise ValueError(f"{path}: [{section}] {key} is missing (render it with podvisor-render)") \
                    from None

        return cls(get("supervisorctl", "serverurl"), get("podvisor", "controller_url"),
                   get("podvisor", "aggregator_url"), Path(get("podvisor", "state_dir")))


def default_conf() -> Path:
    if os.environ.get("PODVISOR_CONF"):
        return Path(os.environ["PODVISOR_CONF"])
    local = Path("supervisord/stack.conf")
    return local if local.exists() else Path(__file__).resolve().parent / "stack.conf"


def age(seconds: float) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def reason(pod: dict) -> str:
    """The app's last reason, else the latest sidecar's (`logger: Error: exit code 1`), else nothing."""
    if pod.get("last_reason"):
        return pod["last_reason"]
    for role, why in sorted((pod.get("sidecar_last_reason") or {}).items()):
        if why:
            return f"{role}: {why}"
    return ""


def table(pods: list[dict]) -> str:
    """`kubectl get pods` style; RESTARTS counts the app's restarts (sidecars' in brackets when any)."""
    rows = [("POD", "READY", "STATUS", "RESTARTS", "AGE", "LAST REASON")]
    for p in pods:
        restarts = str(p["restarts"])
        sidecars = sum((p.get("sidecar_restarts") or {}).values())
        if sidecars:
            restarts += f" (+{sidecars} sidecar)"
        rows.append((p["pod"], f'{p["containers_ready"]}/{p["containers"]}', p["status"], restarts,
                     age(p["age_seconds"]), reason(p)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "".join(line + "\n" for line in lines)


class Client:
    def __init__(self, target: Target, timeout: float = 5.0):
        self.target = target
        self.timeout = timeout
        self.rpc = SupervisorRPC(target.serverurl)

    def pods(self) -> list[dict]:
        try:
            resp = requests.get(self.target.controller_url + "/pods", timeout=self.timeout)
            resp.raise_for_status()
        except requests.RequestException as exc:
            self.check_supervisord()
            raise Unreachable(f"the podvisor controller at {self.target.controller_url} did not answer: "
                              f"{exc}") from exc
        return resp.json()["pods"]

    def check_supervisord(self) -> None:
        try:
            self.rpc.state()
        except (OSError, xmlrpc.client.Error) as exc:
            raise Unreachable(f"cannot reach supervisord at {self.target.serverurl}: {exc}") from exc

    def control(self, action: str, target: str, timeout: float, wait: bool = True) -> tuple[bool, list[str]]:
        """Send start/stop/restart to the controller and wait until it is done; start and restart
        also wait (unless `wait` is false) until the pods are Ready, like `supervisorctl start`."""
        names = [p["pod"] for p in self.pods()]
        wanted = names if target == "--all" else [target]
        if target != "--all" and target not in names:
            return False, [f"no pod named {target!r} (pods: {', '.join(names)})"]
        op_id = uuid.uuid4().hex[:12]
        try:
            self.rpc.send_remote("podvisor", f"{action} {target} {op_id}")
        except (OSError, xmlrpc.client.Error) as exc:
            raise Unreachable(f"cannot reach supervisord at {self.target.serverurl}: {exc}") from exc
        deadline = time.monotonic() + timeout
        while True:
            ops = {p["pod"]: p.get("last_op") or {} for p in self.pods()}
            done = {n: ops[n] for n in wanted if ops.get(n, {}).get("id") == op_id and ops[n].get("done")}
            if len(done) == len(wanted):
                break
            if time.monotonic() > deadline:
                late = [n for n in wanted if n not in done]
                return False, [f"timed out after {timeout:.0f}s waiting for: {', '.join(late)}"]
            time.sleep(0.1)
        messages = [done[n]["message"] for n in wanted]
        if not all(o.get("ok") for o in done.values()) or action == "stop" or not wait:
            return all(o.get("ok") for o in done.values()), messages
        ok, waiting = self.wait_ready(wanted, deadline)
        if not ok:
            messages.append(f"timed out after {timeout:.0f}s; not ready: {waiting}")
        return ok, messages

    def wait_ready(self, names: list[str] | None, deadline: float) -> tuple[bool, str]:
        """Poll until every named pod (default: every pod expected to serve) is Ready (or, for a job,
        Succeeded), one Failed for good, or the deadline passes; returns (ok, what is not ready)."""
        while True:
            try:
                everything = self.pods()
            except Unreachable:
                # Right after `supervisord -c ...` the controller is not listening yet: keep asking
                # until the deadline, then report it unreachable (exit 4).
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            pods = [p for p in everything if (p["pod"] in names if names is not None else expected_ready(p))]
            failed = [f'{p["pod"]} ({p["status"]})' for p in pods if p["phase"] == "Failed"]
            if failed:
                return False, ", ".join(failed)
            waiting = [f'{p["pod"]} ({p["status"]} {p["containers_ready"]}/{p["containers"]})'
                       for p in pods if not p["ready"] and p["phase"] != "Succeeded"]
            if not waiting:
                return True, ""
            if time.monotonic() > deadline:
                return False, ", ".join(waiting)
            time.sleep(0.2)

    def token(self) -> str | None:
        try:
            return (self.target.state_dir / "aggregator" / "token").read_text().strip()
        except OSError:
            return None

    def logs(self, pod: str, follow: bool, level: str | None, since: str | None, limit: int, out) -> int:
        params = {"pod": pod, "limit": limit, "order": "asc"}
        if level:
            params["level"] = level
        if since:
            params["since"] = since
        headers = {"Authorization": f"Bearer {t}"} if (t := self.token()) else {}
        base = self.target.aggregator_url
        try:
            if not follow:
                resp = requests.get(f"{base}/logs?{urlencode(params)}", headers=headers, timeout=self.timeout)
                resp.raise_for_status()
                for entry in resp.json():
                    out.write(format_entry(entry))
                return EXIT_OK
            params.pop("order")
            with requests.get(f"{base}/api/v1/tail?{urlencode(params)}", headers=headers, stream=True,
                              timeout=(self.timeout, None)) as resp:
                resp.raise_for_status()
                for line in resp.iter_lines(decode_unicode=True):
                    if line and line.startswith("data:"):
                        out.write(format_entry(json.loads(line[5:])))
                        out.flush()
        except requests.RequestException as exc:
            raise Unreachable(f"the aggregator at {base} did not answer: {exc}") from exc
        return EXIT_OK


def format_entry(entry: dict) -> str:
    level = str(entry.get("level", "-")).upper()
    return f'{entry.get("timestamp", "-")} {level:5} [{entry.get("pod", "-")}] {entry.get("message", "")}\n'


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
    return client.logs(args.pod, args.follow, args.level, args.since, args.limit, out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except Unreachable as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except (FileNotFoundError, ValueError) as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except OSError as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
