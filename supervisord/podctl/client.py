"""podctl's view of a stack: where it is (from stack.conf) and the calls podctl makes to it.

Control goes through supervisord's owner-only unix socket (a REMOTE_COMMUNICATION event to the
controller); status comes from the controller's loopback endpoint; logs from the aggregator.
"""
from __future__ import annotations

import configparser
import json
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlencode

import requests

from podvisor.core.settings import Env
from podvisor.core.supervisor import SupervisorRPC
from podvisor.supervisord.controller.status import expected_ready
from podvisor.supervisord.podctl.output import format_entry
from podvisor.supervisord.render.conf import DEFAULT_CONF


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


def default_conf(env: Env | None = None) -> Path:
    """$PODVISOR_CONF, else ./supervisord/stack.conf, else the installed one."""
    given = (env or Env()).path("PODVISOR_CONF")
    if given is not None:
        return given
    local = Path("supervisord/stack.conf")
    return local if local.exists() else DEFAULT_CONF


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

    def logs(self, pod: str, follow: bool, level: str | None, since: str | None, limit: int,
             out: TextIO) -> int:
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
                return 0
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
        return 0


