"""Spawn a whole podvisor stack under a real supervisord in a temporary directory, for tests.

`StackHandle.start()` renders the spec with ephemeral ports, runs `supervisord -n`, waits until the
aggregator answers and every pod is Ready; `stop()` shuts it down the way an operator would and
fails when any process the stack spawned is still alive.
"""
from __future__ import annotations

import copy
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

from podvisor.core.procs import nginx_holding
from podvisor.core.supervisor import SupervisorRPC
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec import parse as specmod
from podvisor.testing.waiting import Fatal, wait_for

REPO = Path(__file__).resolve().parents[2]  # the checkout (editable installs)
MARKER = "PODVISOR_STACK_ID"
_given_ports: set[int] = set()


def free_port() -> int:
    """An ephemeral loopback port not handed out before in this test session."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port


def free_range(size: int = 16) -> str:
    """A block of `size` consecutive loopback ports free right now, as a spec range ('20100-20115'),
    for the ports a spec leaves to be assigned (below the kernel's ephemeral range, so no outgoing
    connection takes one meanwhile)."""
    rng = random.Random()
    while True:
        start = rng.randrange(20000, 32000 - size)
        block = range(start, start + size)
        if any(port in _given_ports for port in block):
            continue
        try:
            for port in block:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        _given_ports.update(block)
        return f"{block[0]}-{block[-1]}"


def terminate(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM a child process and reap it; SIGKILL if it is still there after `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def bin_dir() -> str:
    """Installed console scripts beside this interpreter, else the checkout's bin/."""
    here = Path(sys.executable).parent
    return str(here) if (here / "podvisor-user").exists() else str(REPO / "bin")


def load_spec_dict(spec: str | Path | dict | None) -> dict:
    """A spec as a dict; from a file, `./x` and `../x` commands become absolute (the test's
    conf is rendered elsewhere, so they can no longer be relative to the spec's folder)."""
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    path = Path(spec or render.DEFAULT_SPEC).resolve()
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    for pod in data.get("pods", {}).values():
        command = pod.get("command") if isinstance(pod, dict) else None
        if isinstance(command, str) and command.startswith(("./", "../")):
            pod["command"] = str(path.parent / command)
    return data


class StackHandle:
    """One running stack: its URLs, its supervisord, its state directory."""

    def __init__(self, root: Path, spec: str | Path | dict | None = None, environment: str | None = None,
                 *, own_ports: bool = True, exec_prefix: list[str] | None = None,
                 call: Callable[[Callable[[], Any]], Any] | None = None):
        """`own_ports=False` keeps the spec's ports (a host of its own, a network namespace);
        `exec_prefix` runs supervisord under it (`ip netns exec NAME`); `call(fn)` runs the
        harness' HTTP checks where the stack's loopback is (netns.call)."""
        self.root = Path(root)
        data = load_spec_dict(spec)
        state = self.root / "state"
        if len(str(state / "supervisor.sock")) > 90:  # unix socket paths stop at ~100 bytes
            state = Path(tempfile.mkdtemp(prefix="pv-"))
        self.state_dir = state
        self.exec_prefix = list(exec_prefix or [])
        self.call = call or (lambda fn: fn())
        data.setdefault("stack", {}).update(state_dir=str(state))
        if own_ports:
            data["stack"].update(aggregator_port=free_port(), controller_port=free_port(), app_ports=free_range(),
                                 metrics_ports=free_range(), logger_ports=free_range())
        if environment:
            data["stack"]["environment"] = environment
        for pod in data["pods"].values() if own_ports else ():
            pod.update(port=free_port(), metrics_port=free_port(), logger_port=free_port())
        self.spec = specmod.from_dict(data)
        self.spec_dict = data
        self.conf = self.root / "stack.conf"
        self.stack_id = uuid.uuid4().hex
        self.proc: subprocess.Popen | None = None
        # tests stop and start programs waiting for supervisord (a logger drains for up to its budget)
        self.rpc = SupervisorRPC(f"unix://{state}/supervisor.sock", timeout=120.0)
        host = self.spec.host
        self.aggregator_url = f"http://{host}:{self.spec.aggregator_port}"
        self.controller_url = f"http://{host}:{self.spec.controller_port}"
        self.apps = {p.name: f"http://{host}:{p.port}" for p in self.spec.pods}
        self.metrics = {p.name: f"http://{host}:{p.metrics_port}" for p in self.spec.pods}
        self.loggers = {p.name: f"http://{host}:{p.logger_port}" for p in self.spec.pods}

    # -- lifecycle -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env[MARKER] = self.stack_id  # inherited by every descendant: how stop() finds leftovers
        env["PODVISOR_CONF"] = str(self.conf)
        return env

    def render(self) -> StackHandle:
        """Write stack.conf, stack.pods.json and the state directory without starting anything (for a
        test that starts supervisord its own way, e.g. `podctl up`; `stop()` stops it all the same)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        render.write_files(render.render_files(self.spec, self.conf, bin_dir()))
        render.make_state_dirs(self.spec, self.root)
        return self

    def start(self, timeout: float = 60.0, wait_ready: bool = True, argv: list[str] | None = None) -> StackHandle:
        """Render and run supervisord in the foreground (`argv` replaces the command, e.g. a unit's ExecStart)."""
        self.render()
        self.proc = subprocess.Popen(
            argv or [*self.exec_prefix, sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self.conf)],
            env=self.env(), stdout=open(self.root / "supervisord.out", "wb"), stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_ready(timeout)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _check_alive(self) -> None:
        if self.proc is not None and not self.alive():
            raise Fatal(f"supervisord exited with {self.proc.returncode}\n{self.output()}")

    def wait_for(self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
        """Poll `predicate` until truthy (its value is returned); fail at once if supervisord has died,
        and on timeout, with the stack's output."""
        return wait_for(predicate, timeout, what, output=self.output, check=self._check_alive, interval=interval)

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            try:  # like supervisorctl: also wakes supervisord's 1 s poll loop for its first spawns
                self.rpc.state()
            except (OSError, xmlrpc.client.Error):
                return False  # its socket is not there yet
            if self.call(lambda: requests.get(self.aggregator_url + "/health", timeout=1)).status_code != 200:
                return False
            return self.call(lambda: requests.get(self.controller_url + "/ready", timeout=1)).status_code == 200
        self.wait_for(ready, timeout, "every pod Ready")

    def pods(self) -> dict[str, dict]:
        resp = requests.get(self.controller_url + "/pods", timeout=5)
        resp.raise_for_status()
        return {p["pod"]: p for p in resp.json()["pods"]}

    def info(self, program: str) -> dict:
        return self.rpc.info(program)

    def pid(self, program: str) -> int:
        return self.rpc.info(program)["pid"]

    def descendants(self) -> list[psutil.Process]:
        """Every live process of this stack (see `stack_processes`)."""
        return stack_processes(self.stack_id, self.state_dir)

    def stop(self, timeout: float = 60.0, check: bool = True) -> None:
        """SIGTERM to supervisord (ordered shutdown), then fail if anything of ours survived. A
        supervisord the harness did not start (`podctl up -d`) is found through its socket."""
        if self.proc is None:
            self._stop_adopted(timeout)
        elif self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._kill_leftovers()
                raise AssertionError(f"supervisord did not stop within {timeout}s\n{self.output()}") from None
        leftovers = wait_for_gone(self.descendants, 5.0)
        if leftovers:
            names = [f"{p.pid} {' '.join(p.cmdline()[:3])}" for p in leftovers]
            self._kill_leftovers()
            if check:
                raise AssertionError(f"processes left behind after stop: {names}\n{self.output()}")

    def _stop_adopted(self, timeout: float) -> None:
        try:
            pid = SupervisorRPC(self.rpc.serverurl, timeout=2.0).pid()
            supervisord = psutil.Process(pid)
        except (OSError, xmlrpc.client.Error, psutil.Error):
            return  # none answers: the leftover check below still runs
        supervisord.send_signal(signal.SIGTERM)
        try:
            supervisord.wait(timeout)
        except psutil.TimeoutExpired:
            supervisord.kill()
            self._kill_leftovers()
            raise AssertionError(f"supervisord did not stop within {timeout}s\n{self.output()}") from None

    def _kill_leftovers(self) -> None:
        for proc in self.descendants():
            try:
                proc.kill()
            except psutil.Error:
                pass

    # -- helpers for tests -----------------------------------------------------------------
    def podctl(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "podvisor.supervisord.podctl.main", "-c", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env())

    def token(self) -> str:
        return (self.state_dir / "aggregator" / "token").read_text().strip()

    def auth(self) -> dict[str, str]:
        """The Authorization header for the aggregator (reads need it in the VM profile)."""
        try:
            return {"Authorization": f"Bearer {self.token()}"}
        except OSError:
            return {}

    def logs(self, **params: Any) -> list[dict]:
        resp = requests.get(self.aggregator_url + "/logs", params=params, headers=self.auth(), timeout=5)
        resp.raise_for_status()
        return resp.json()

    def ingest(self, *entries: dict[str, Any]) -> None:
        """Store `entries` through POST /logs with the token; every one must be stored."""
        resp = requests.post(self.aggregator_url + "/logs", json=list(entries), headers=self.auth(), timeout=10)
        assert resp.status_code == 202 and resp.json()["stored"] == len(entries), resp.text

    def pod_dir(self, pod: str) -> Path:
        return self.state_dir / "pods" / pod

    def prometheus_config(self, directory: str | Path, scrape_interval: str = "1s") -> Path:
        """Write prometheus.yml (this stack's ephemeral ports), the rules and their promtool tests
        into `directory`; return the prometheus.yml path."""
        from podvisor.supervisord.prometheus.stack import write_stack
        written = write_stack(directory, self.spec, scrape_interval)
        return next(path for path in written if path.name == "prometheus.yml")

    def output(self, lines: int = 60) -> str:
        """The tail of supervisord's, the controller's and every process's log, for failure messages."""
        files = [self.root / "supervisord.out", self.state_dir / "supervisord.log", self.state_dir / "controller.log",
                 self.state_dir / "aggregator" / "aggregator.log"]
        for pod in self.spec.pods:
            logs = self.pod_dir(pod.name) / "logs"
            files += [logs / "app.stderr.log", logs / "sidecars" / "logger.log", logs / "sidecars" / "metrics.log"]
            if pod.gateway is not None:
                files.append(logs / "error.log")
        out = []
        for f in files:
            try:
                text = f.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"--- {f} ---\n" + "\n".join(text))
        return "\n".join(out)


def stack_processes(stack_id: str, state_dir: Path) -> list[psutil.Process]:
    """Every live process whose environment carries MARKER=`stack_id` (supervisord's whole tree,
    orphans too), and every nginx holding a file of `state_dir` (see `nginx_holding`)."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(MARKER) == stack_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    pids = {proc.pid for proc in found}
    return found + [proc for proc in nginx_holding(str(state_dir)) if proc.pid not in pids]


def wait_for_gone(find: Callable[[], list[psutil.Process]], timeout: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while True:
        left = find()
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
