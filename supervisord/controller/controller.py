"""The controller: one thread per pod plus one for the aggregator, fed by supervisord's events."""
from __future__ import annotations

import json
import logging
import os
import threading
import xmlrpc.client
from pathlib import Path

from podvisor.core.procs import Reaper
from podvisor.core.supervisor import Supervisor, split_program
from podvisor.supervisord.controller.events import Event
from podvisor.supervisord.controller.pod import PodRunner, health_checked
from podvisor.supervisord.controller.reconcile import SoloRunner
from podvisor.supervisord.controller.shutdown import ShutdownDriver
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec.model import Backoff, Stack

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, stack: Stack, state_dir: Path, sup: Supervisor, serverurl: str = ""):
        """`serverurl` is supervisord's SUPERVISOR_SERVER_URL: with it, what an ended app left behind
        is found and killed (without it, e.g. in unit tests, nothing is reaped)."""
        self.stack, self.state_dir, self.sup = stack, state_dir, sup
        reaper = Reaper(serverurl)
        self.runners = {pod.name: PodRunner(pod, stack.host, sup, reaper=reaper) for pod in stack.pods}
        self.aggregator = SoloRunner(health_checked("aggregator", Backoff(), stack.aggregator_port), stack.host, sup)
        self.stopping = threading.Event()
        self.shutdown = ShutdownDriver(stack, serverurl, sup.state)
        self.state_file = state_dir / "controller" / "state.json"
        self._save_lock = threading.Lock()
        self._saved = ""
        self._supervisord_pid: int | None = None

    def prepare(self) -> None:
        """Recreate state folders removed while supervisord ran (it checked them at start)."""
        for d in render.state_dirs(self.stack, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)

    def restore(self) -> None:
        """After a controller restart under the same supervisord, keep operators' stops and counts."""
        try:
            saved = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return
        if not isinstance(saved, dict) or saved.get("supervisord_pid") != self.supervisord_pid:
            return  # a fresh supervisord: every pod starts
        for name, pod in saved.get("pods", {}).items():
            runner = self.runners.get(name)
            if runner is not None and isinstance(pod, dict):
                runner.restore(pod)

    @property
    def supervisord_pid(self) -> int:
        if self._supervisord_pid is None:
            self._supervisord_pid = self.sup.pid()
        return self._supervisord_pid

    def save(self) -> None:
        """Persist what must survive a controller restart; written only when it changed."""
        data = json.dumps({"supervisord_pid": self.supervisord_pid,
                           "pods": {name: runner.saved() for name, runner in self.runners.items()}}, sort_keys=True)
        with self._save_lock:
            if data == self._saved:
                return
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(data)
            os.replace(tmp, self.state_file)
            self._saved = data

    def pods(self) -> list[dict]:
        return [r.snapshot() for r in self.runners.values()]

    def handle(self, event: Event) -> None:
        """Called on the event-loop thread: never blocks, only dispatches."""
        if event.name == "SUPERVISOR_STATE_CHANGE_STOPPING":
            log.info("supervisord is shutting down: no more starts or restarts")
            self.freeze()
        elif event.name == "REMOTE_COMMUNICATION" and event.payload_headers.get("type") == "podvisor":
            self.command(event.data)
        elif event.name.startswith("PROCESS_STATE"):
            owner = split_program(event.payload_headers.get("processname", ""))
            if owner is not None and owner[0] in self.runners:
                self.runners[owner[0]].wake.set()

    def command(self, data: str) -> None:
        """'stop user op-17' / 'restart --all op-18'."""
        words = data.split()
        if len(words) < 2:
            log.error("podvisor command %r: expected 'ACTION POD|--all [OP_ID]'", data)
            return
        action, target = words[0], words[1]
        op_id = words[2] if len(words) > 2 else ""
        targets = list(self.runners) if target == "--all" else [target]
        for name in targets:
            runner = self.runners.get(name)
            if runner is None:
                log.error("podvisor command %r: no pod named %r", data, name)
                continue
            try:
                runner.request(action, op_id)
            except ValueError as exc:
                log.error("podvisor command %r: %s", data, exc)

    def freeze(self) -> None:
        """supervisord stops everything now; the pod threads only watch (and reap) from here, and
        the shutdown driver stops all pods at once in the pod order (see shutdown.py)."""
        for runner in self.runners.values():
            runner.freeze()
        self.stopping.set()
        self.shutdown.start()

    def step(self, runner: PodRunner) -> float:
        """One reconcile step of a pod that never raises; returns how long to wait for the next."""
        try:
            wait = runner.tick()
            self.save()
            return wait
        except xmlrpc.client.Fault as fault:
            if "SHUTDOWN_STATE" not in fault.faultString:
                log.exception("pod %s: reconcile step failed", runner.pod.name)
                return 1.0
            # supervisord is shutting down and its STOPPING event has not reached us (yet, or it was
            # dropped from a full buffer): stop starting things now.
            log.info("pod %s: supervisord is shutting down", runner.pod.name)
            self.freeze()
            return 0.1
        except Exception:  # supervisord busy or a bug: log it and keep reconciling
            log.exception("pod %s: reconcile step failed", runner.pod.name)
            return 1.0

    def run_pod(self, runner: PodRunner) -> None:
        # Runs until the process exits (daemon thread): a frozen runner still reaps orphans.
        while True:
            wait = self.step(runner)
            runner.wake.wait(wait)
            runner.wake.clear()

    def run_aggregator(self) -> None:
        while not self.stopping.is_set():
            try:
                wait = self.aggregator.tick()
            except Exception:
                log.exception("aggregator reconcile step failed")
                wait = 1.0
            self.stopping.wait(wait)

    def start_threads(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.run_aggregator, name="aggregator", daemon=True)]
        threads += [threading.Thread(target=self.run_pod, args=(r,), name=f"pod-{n}", daemon=True)
                    for n, r in self.runners.items()]
        for t in threads:
            t.start()
        return threads
