"""podctl's view of a stack: where it is (from stack.conf) and the calls podctl makes to it.

Control goes through supervisord's owner-only unix socket (a REMOTE_COMMUNICATION event to the
controller); status comes from the controller's loopback endpoint; logs from the aggregator.
"""
from __future__ import annotations

import configparser
import json
import os
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import requests

from podvisor.core.supervisor import SupervisorRPC
from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.podctl.errors import Failure, Unreachable, UsageError
from podvisor.supervisord.spec import parse as specmod
from podvisor.supervisord.spec.model import Stack


@dataclass(frozen=True)
class Target:
    serverurl: str
    controller_url: str
    aggregator_url: str
    state_dir: Path
    conf: Path | None = None
    spec_path: Path | None = None  # the resolved pods JSON the renderer wrote beside the conf

    @classmethod
    def from_conf(cls, path: Path) -> Target:
        """Read the conf's [supervisorctl] and [podvisor] sections; UsageError (exit 2) when the
        file is missing, unreadable or not a conf podvisor-render wrote."""
        parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
        try:
            if not parser.read(path):
                raise UsageError(f"cannot read {path}")
        except configparser.Error as exc:
            first = str(exc).splitlines()[0].rstrip(".")
            raise UsageError(f"{path} is not a stack conf ({first}): give the stack.conf podvisor-render "
                             "wrote") from None
        except UnicodeDecodeError:
            raise UsageError(f"{path} is not a stack conf (not text)") from None
        here = str(path.resolve().parent)

        def get(section: str, key: str) -> str:
            try:
                return parser.get(section, key).replace("%(here)s", here).replace("%%", "%")
            except (configparser.NoSectionError, configparser.NoOptionError):
                raise UsageError(f"{path}: [{section}] {key} is missing (render it with podvisor-render)") \
                    from None

        spec = parser.get("podvisor", "spec", fallback=None)
        return cls(get("supervisorctl", "serverurl"), get("podvisor", "controller_url"),
                   get("podvisor", "aggregator_url"), Path(get("podvisor", "state_dir")), path,
                   Path(spec.replace("%(here)s", here)) if spec else None)

    def stack(self) -> Stack:
        """The resolved spec the stack runs (its pods, ports and stop budgets)."""
        if self.spec_path is None:
            raise UsageError(f"{self.conf}: [podvisor] spec is missing (render it with podvisor-render)")
        try:
            return specmod.from_dict(json.loads(self.spec_path.read_text()))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the stack's pods from {self.spec_path}: {exc}") from None

    def token(self) -> str | None:
        """The aggregator's bearer token, when this user may read it (reads may need it)."""
        try:
            return (self.state_dir / "aggregator" / "token").read_text().strip()
        except OSError:
            return None


def same_server(url: str, other: str) -> bool:
    """Whether two supervisord server URLs name the same socket (`a/b/../var` and `a/var` do)."""
    def key(u: str) -> str:
        return os.path.realpath(u[len("unix://"):]) if u.startswith("unix://") else u.rstrip("/")
    return key(url) == key(other)


class Client:
    def __init__(self, target: Target, timeout: float = 5.0):
        self.target = target
        self.timeout = timeout
        self.rpc = SupervisorRPC(target.serverurl)

    def pods(self) -> list[dict]:
        return self.status()["pods"]

    def status(self) -> dict:
        """The controller's /pods answer: every pod, and the latest apply."""
        try:
            resp = requests.get(self.target.controller_url + "/pods", timeout=self.timeout)
            resp.raise_for_status()
        except requests.RequestException as exc:
            self.check_supervisord()
            raise Unreachable(f"the podvisor controller at {self.target.controller_url} did not answer: "
                              f"{exc}") from exc
        return resp.json()

    def pod(self, name: str) -> dict:
        """One pod's status; Failure (exit 1) naming the pods there are when it has none of that name."""
        pods = self.pods()
        for pod in pods:
            if pod["pod"] == name:
                return pod
        raise Failure(f"no pod named {name!r} (pods: {', '.join(sorted(p['pod'] for p in pods))})")

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
            ok, waiting = readiness(everything, names)
            if ok is not None:
                return ok, waiting
            if time.monotonic() > deadline:
                return False, waiting
            time.sleep(0.2)


def readiness(everything: list[dict], names: list[str] | None = None) -> tuple[bool | None, str]:
    """(True, "") when every named pod (default: every pod expected to serve) is Ready or, for a job,
    Succeeded; (False, which) when one Failed for good; (None, what is not ready yet) otherwise."""
    pods = [p for p in everything if (p["pod"] in names if names is not None else expected_ready(p))]
    failed = [f'{p["pod"]} ({p["status"]})' for p in pods if p["phase"] == "Failed"]
    if failed:
        return False, ", ".join(failed)
    waiting = [f'{p["pod"]} ({p["status"]} {p["containers_ready"]}/{p["containers"]})'
               for p in pods if not p["ready"] and p["phase"] != "Succeeded"]
    return (None, ", ".join(waiting)) if waiting else (True, "")


def fill_from_spec(pod: dict, stack: Stack | None) -> dict:
    """The controller's pod, with `ports` and the app's `command` taken from the stack's spec where
    the controller does not report them (a controller older than those fields)."""
    if stack is None:
        return pod
    try:
        spec = stack.pod(pod["pod"])
    except KeyError:
        return pod
    pod = dict(pod)
    pod.setdefault("ports", {"app": spec.port, "metrics": spec.metrics_port, "logger": spec.logger_port})
    states = pod.get("container_states")
    if isinstance(states, dict) and isinstance(states.get("app"), dict):
        pod["container_states"] = {**states, "app": {"command": spec.command, **states["app"]}}
    return pod
