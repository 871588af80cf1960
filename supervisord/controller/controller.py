"""The controller: one thread per pod plus one for the aggregator, fed by supervisord's events."""
from __future__ import annotations

import json
import logging
import os
import threading
import time
import xmlrpc.client
from pathlib import Path

from podvisor.core.procs import Reaper
from podvisor.core.supervisor import Supervisor, split_program
from podvisor.supervisord.controller import changes
from podvisor.supervisord.controller.events import Event
from podvisor.supervisord.controller.pod import PodRunner, health_checked
from podvisor.supervisord.controller.reconcile import SoloRunner
from podvisor.supervisord.controller.rollout import PROGRESS_DEADLINE_SECONDS
from podvisor.supervisord.controller.shutdown import ShutdownDriver
from podvisor.supervisord.controller.sockets import SocketHolder
from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec import parse as specmod
from podvisor.supervisord.spec.model import Backoff, Pod, Stack

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, stack: Stack, state_dir: Path, sup: Supervisor, serverurl: str = "",
                 spec_path: Path | None = None, holder: SocketHolder | None = None):
        """`serverurl` is supervisord's SUPERVISOR_SERVER_URL: with it, what an ended app left behind
        is found and killed (without it, e.g. in unit tests, nothing is reaped). `spec_path`: the
        resolved spec, read again when a changed spec is applied."""
        self.stack, self.state_dir, self.sup, self.spec_path = stack, state_dir, sup, spec_path
        self.holder = holder  # the pods' listening sockets (None: nothing is held, e.g. unit tests)
        self.reaper = Reaper(serverurl)
        # Replaced whole, never changed in place, so other threads iterate a consistent dict.
        self.runners: dict[str, PodRunner] = {pod.name: self._runner(pod) for pod in stack.pods}
        self.aggregator = SoloRunner(health_checked("aggregator", Backoff(), stack.aggregator_port,
                                                    "podvisor-aggregator"), stack.host, sup)
        self.changing = threading.Lock()  # one apply or update at a time
        self.last_apply: dict | None = None
        self._groups_changed: set[str] = set()  # programs supervisord added anew (supervisorctl update)
        self._own_group_events: dict[str, int] = {}  # group events our own apply causes, to ignore
        self._events_lock = threading.Lock()
        self._threads_started = False
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

    def _runner(self, pod: Pod) -> PodRunner:
        return PodRunner(pod, self.stack.host, self.sup, reaper=self.reaper, group_reaper=self.reaper.group,
                         waiting_for=lambda: self.not_ready(pod.depends_on))

    def not_ready(self, names: tuple[str, ...]) -> list[str]:
        """Of these pods, those that are not Ready (or do not exist)."""
        runners = self.runners
        return [name for name in names if name not in runners or not runners[name].is_ready()]

    def handle(self, event: Event) -> None:
        """Called on the event-loop thread: never blocks, only dispatches."""
        if event.name == "SUPERVISOR_STATE_CHANGE_STOPPING":
            log.info("supervisord is shutting down: no more starts or restarts")
            self.freeze()
        elif event.name == "REMOTE_COMMUNICATION" and event.payload_headers.get("type") == "podvisor":
            self.command(event.data)
        elif event.name in ("PROCESS_GROUP_ADDED", "PROCESS_GROUP_REMOVED"):
            self.group_changed(event.name, event.payload_headers.get("groupname", ""))
        elif event.name.startswith("PROCESS_STATE"):
            owner = split_program(event.payload_headers.get("processname", ""))
            if owner is not None and owner[0] in self.runners:
                self.runners[owner[0]].wake.set()

    def command(self, data: str) -> None:
        """'stop user op-17' / 'restart --all op-18' / 'apply op-19'."""
        words = data.split()
        if words[:1] == ["apply"]:
            op_id = words[1] if len(words) > 1 else ""
            threading.Thread(target=self.apply, args=(op_id,), name="apply", daemon=True).start()
            return
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
            if self.holder is not None and runner.pod.socket == "held" and runner.ended_on_purpose():
                self.holder.release(runner.pod.name)
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
        # Runs until the pod leaves the spec or the process exits: a frozen runner still reaps orphans.
        while not runner.retired.is_set():
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
        threads += [self._thread(r) for r in self.runners.values()]
        for t in threads:
            t.start()
        self._threads_started = True
        return threads

    def _thread(self, runner: PodRunner) -> threading.Thread:
        return threading.Thread(target=self.run_pod, args=(runner,), name=f"pod-{runner.pod.name}", daemon=True)

    def _adopt(self, runner: PodRunner) -> None:
        self.runners = {**self.runners, runner.pod.name: runner}
        if self._threads_started:
            self._thread(runner).start()

    def _retire(self, name: str) -> None:
        runner = self.runners.get(name)
        if runner is not None:
            self.runners = {n: r for n, r in self.runners.items() if n != name}
            runner.retired.set()
            runner.wake.set()

    # -- a changed spec -------------------------------------------------------------------------------
    def apply(self, op_id: str) -> None:
        """`podctl apply`: the conf and the spec have been rendered anew; bring the stack to them,
        pod by pod in the spec's order, leaving unchanged pods alone."""
        with self.changing:
            self.last_apply = {"id": op_id, "done": False}
            try:
                done = self._apply()
                self.last_apply = {"id": op_id, "done": True, "ok": True, "changes": [str(c) for c in done]}
            except Exception as exc:  # reported to podctl, and logged
                log.exception("apply failed")
                self.last_apply = {"id": op_id, "done": True, "ok": False, "message": f"{type(exc).__name__}: {exc}"}

    def _apply(self) -> list[changes.PodChange]:
        new = self._read_spec()
        refused = changes.restart_only_changes(self.stack, new)
        if refused:
            raise ValueError(f"stack settings {', '.join(refused)} changed: they apply when the stack is "
                             "started again (podctl down && podctl up -d)")
        _added, changed, _removed = self.sup.reload_config()
        plan = changes.plan(self.stack, new, set(changed))
        if self.holder is not None:  # new pods' sockets before their apps start
            self.holder.configure(new.host, [*self.stack.pods, *(p for p in new.pods if p not in self.stack.pods)])
        for change in plan:
            if change.action == changes.UNCHANGED:
                continue
            if change.action == changes.CONFIGURED and changes.rollable(self.stack.pod(change.pod),
                                                                          new.pod(change.pod), change.programs):
                self._roll(self.runners[change.pod], new.pod(change.pod), change.programs)
                log.info("apply: %s (rolling restart)", change)
                continue
            if change.action == changes.RELOADED:
                runner = self.runners[change.pod]
                # A sidecar whose rendered settings follow what changed (the logger's route prefixes)
                # is re-created first, so it counts by the new routes once the app reloads.
                for program in change.programs:
                    runner.stop_sidecar(program)
                    self._replace_program(program)
                    runner.replaced(program)
                runner.reload(new.pod(change.pod))
                log.info("apply: %s", change)
                continue
            if change.action in (changes.DELETED, changes.CONFIGURED):
                self.runners[change.pod].stop_pod()
                self._retire(change.pod)
            for program in change.programs:  # supervisord takes a changed section by removing and adding
                if change.action != changes.CREATED:
                    self._own(program, 1)
                    self.sup.remove_group(program)
                if change.action != changes.DELETED:
                    self._own(program, 1)
                    self.sup.add_group(program)
            if change.action != changes.DELETED:
                self._adopt(self._runner(new.pod(change.pod)))
            log.info("apply: %s", change)
        if "aggregator" in changed:  # its rendered section names every pod's metrics sidecar
            self._replace_aggregator()
        if self.holder is not None:  # the sockets of pods gone are closed once their apps have stopped
            self.holder.configure(new.host, new.pods)
        self.stack = changes.with_pods_of(self.stack, new)
        return plan

    def _roll(self, runner: PodRunner, pod: Pod, programs: tuple[str, ...]) -> None:
        """Replace the pod's replicas one at a time with the new spec, and wait until done."""
        for program in programs:
            self._own(program, 2)  # removed and added again as its slot comes free
        runner.start_rollout(pod=pod, regroup=frozenset(programs))
        deadline = time.monotonic() + pod.slots * (PROGRESS_DEADLINE_SECONDS + pod.budget.app_stop_seconds)
        while runner.rollout is not None and time.monotonic() < deadline:
            time.sleep(0.1)  # the pod's own thread advances the rollout; this one waits for it

    def _replace_program(self, program: str) -> None:
        """supervisord takes a changed section of a stopped program by removing and adding it."""
        self._own(program, 2)
        self.sup.remove_group(program)
        self.sup.add_group(program)

    def _own(self, program: str, count: int) -> None:
        with self._events_lock:
            self._own_group_events[program] = self._own_group_events.get(program, 0) + count

    def _replace_aggregator(self) -> None:
        self.sup.stop("aggregator", True, timeout=self.stack.budget.aggregator_stopwaitsecs + 5)
        self._own("aggregator", 2)
        self.sup.remove_group("aggregator")
        self.sup.add_group("aggregator")
        self.aggregator.replaced("aggregator")

    def _read_spec(self) -> Stack:
        if self.spec_path is None:
            raise ValueError("the controller was started without its spec file")
        return specmod.from_dict(json.loads(self.spec_path.read_text()))

    def group_changed(self, event: str, program: str) -> None:
        """supervisord added or removed a program: `supervisorctl update` after the conf was
        rendered anew (or our own apply, whose events are counted and ignored)."""
        with self._events_lock:
            if self._own_group_events.get(program):
                self._own_group_events[program] -= 1
                return
            if event == "PROCESS_GROUP_ADDED":
                self._groups_changed.add(program)
        threading.Thread(target=self.sync, name="sync", daemon=True).start()

    def sync(self) -> None:
        """After `supervisorctl update`: follow the spec beside the conf; programs supervisord
        created anew start as new containers; the aggregator is never left stopped."""
        with self.changing:
            with self._events_lock:
                fresh, self._groups_changed = self._groups_changed, set()
            try:
                new = self._read_spec()
            except (OSError, ValueError) as exc:
                log.error("supervisord's programs changed, but the spec %s cannot be read: %s", self.spec_path, exc)
                return
            for change in changes.plan(self.stack, new):
                if change.action in (changes.DELETED, changes.CONFIGURED):
                    self._retire(change.pod)
                if change.action in (changes.CREATED, changes.CONFIGURED):
                    runner = self._runner(new.pod(change.pod))
                    self._adopt(runner)
                    fresh -= set(runner.pod.all_programs)  # a new runner starts everything anew anyway
                if change.action != changes.UNCHANGED:
                    log.info("supervisorctl update: %s", change)
            refused = changes.restart_only_changes(self.stack, new)
            if refused:
                log.warning("stack settings %s changed: they apply when the stack is started again", refused)
            self.stack = changes.with_pods_of(self.stack, new)
            for program in fresh:
                target = self.aggregator if program == "aggregator" else None
                owner = split_program(program)
                if owner is not None and owner[0] in self.runners:
                    target = self.runners[owner[0]]
                if target is not None:
                    target.replaced(program)
