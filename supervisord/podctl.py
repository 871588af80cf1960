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
import socket
import sys
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests

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
                raise ValueError(f"{path}: [{section}] {key} is missing (render it with podvisor-render)") from None

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


def table(pods: list[dict]) -> str:
    rows = [("POD", "READY", "STATUS", "RESTARTS", "AGE", "LAST REASON")]
    for p in pods:
        rows.append((p["pod"], f'{p["containers_ready"]}/{p["containers"]}', p["status"], str(p["restarts"]),
                     age(p["age_seconds"]), p["last_reason"] or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "   " + r[-1]
                     for r in rows).rstrip() + "\n"


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
            raise Unreachable(f"the podvisor controller at {self.target.controller_url} did not answer: {exc}") from exc
        return resp.json()["pods"]

    def check_supervisord(self) -> None:
        try:
            self.rpc.state()
        except (OSError, xmlrpc.client.Error) as exc:
            raise Unreachable(f"cannot reach supervisord at {self.target.serverurl}: {exc}") from exc

    def control(self, action: str, target: str, timeout: float) -> tuple[bool, list[str]]:
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
                return all(o.get("ok") for o in done.values()), [done[n]["message"] for n in wanted]
            if time.monotonic() > deadline:
                late = [n for n in wanted if n not in done]
                return False, [f"timed out after {timeout:.0f}s waiting for: {', '.join(late)}"]
            time.sleep(0.1)

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
    return f'{entry.get("timestamp", "-")} {str(entry.get("level", "-")).upper():5} [{entry.get("pod", "-")}] ' \
           f'{entry.get("message", "")}\n'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podctl", description="See and steer podvisor pods.")
    parser.add_argument("-c", "--conf", type=Path, default=None, help="stack.conf (default: $PODVISOR_CONF, "
                        "./supervisord/stack.conf)")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("status", help="a table of pods, like kubectl get pods")
    st.add_argument("--json", action="store_true")
    for action in ("start", "stop", "restart"):
        p = sub.add_parser(action, help=f"{action} a pod (app after sidecars; sidecars after app on stop)")
        p.add_argument("pod", help="pod name or --all")
        p.add_argument("--timeout", type=float, default=120.0)
    w = sub.add_parser("wait", help="wait until every pod is Ready")
    w.add_argument("--ready", action="store_true", required=True)
    w.add_argument("--timeout", type=float, default=60.0)
    lg = sub.add_parser("logs", help="a pod's logs from the aggregator")
    lg.add_argument("pod")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("--level")
    lg.add_argument("--since", help="ISO 8601 time or epoch seconds")
    lg.add_argument("--limit", type=int, default=100)
    return parser


def run(args: argparse.Namespace, out=sys.stdout) -> int:
    client = Client(Target.from_conf(args.conf or default_conf()))
    if args.command == "status":
        pods = client.pods()
        out.write(json.dumps({"pods": pods}, indent=2) + "\n" if args.json else table(pods))
        return EXIT_OK if all(p["phase"] == "Running" for p in pods) else EXIT_NOT_RUNNING
    if args.command in ("start", "stop", "restart"):
        ok, messages = client.control(args.command, args.pod, args.timeout)
        for m in messages:
            out.write(m + "\n")
        return EXIT_OK if ok else EXIT_FAIL
    if args.command == "wait":
        deadline = time.monotonic() + args.timeout
        while True:
            pods = [p for p in client.pods() if p["desired"] == "running"]
            waiting = [p["pod"] for p in pods if not p["ready"]]
            if not waiting:
                out.write(f"all {len(pods)} pods ready\n")
                return EXIT_OK
            if time.monotonic() > deadline:
                out.write(f"timed out after {args.timeout:.0f}s; not ready: {', '.join(waiting)}\n")
                return EXIT_FAIL
            time.sleep(0.2)
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
    except socket.error as exc:
        print(f"podctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
