"""One pod's lifecycle: sidecars first and last, probes, restart policy with backoff, memory limit.

`PodRunner.tick()` is one reconcile step against supervisord's view of the pod's programs. Every
start goes through the controller (supervisord's autostart/autorestart are off), so "we launched it
and it is no longer alive" is exactly "it ended", however fast it died.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from supervisord.controller import probes
from supervisord.controller.backoff import BackoffTracker
from supervisord.controller.keeper import Keeper
from supervisord.rpc import ALIVE, Supervisor
from supervisord.spec import Pod

log = logging.getLogger(__name__)

SIDECARS = ("logger", "metrics")
TERMINAL = ("Succeeded", "Failed", "Stopped")


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 when it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its process group and every descendant (those that left the group too)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        children = []
    for target in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass


class PodRunner:
    """Desired state plus what was observed; all mutation happens on the pod's own thread."""

    def __init__(self, pod: Pod, host: str, sup: Supervisor, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, prober: Callable[..., probes.Result] = probes.run,
                 memory: Callable[[int], int] = tree_rss, killer: Callable[[int], None] = kill_tree):
        self.pod, self.host, self.sup = pod, host, sup
        self.clock, self.wall, self.prober, self.memory, self.killer = clock, wall, prober, memory, killer
        self.programs = pod.programs
        self.wake = threading.Event()
        self.lock = threading.Lock()  # guards the fields the status endpoint reads
        self.pending_ops: list[tuple[str, str]] = []
        self.last_op: dict[str, Any] | None = None
        self.frozen = False  # supervisord is shutting down: observe, never start
        self.app_backoff = BackoffTracker(pod.backoff)
        ports = {"logger": pod.logger_port, "metrics": pod.metrics_port}
        self.sidecars = {role: Keeper(self.programs[role], sup, pod.backoff, host, ports[role], prober)
                         for role in SIDECARS}
        self._reset_epoch("running")

    # -- epochs and operations -------------------------------------------------------------
    def _reset_epoch(self, desired: str) -> None:
        self.desired = desired
        self.phase = "Pending" if desired == "running" else "Stopped"
        self.status = "PodInitializing" if desired == "running" else "Stopped"
        self.restarts = 0
        self.last_reason: str | None = None
        self.created_at = self.wall()
        self.app_launched = False  # started by us (or adopted) and not yet seen ending
        self.app_ready = False
        self.app_next_start = 0.0
        self.kill_reason: str | None = None
        self.app_pid = 0
        self.probe_states: dict[str, probes.ProbeState] = {}
        self.app_backoff.reset()
        for keeper in self.sidecars.values():
            keeper.reset()

    def request(self, action: str, op_id: str = "") -> None:
        """Queue start/stop/restart; it runs on the pod thread at its next tick."""
        if action not in ("start", "stop", "restart"):
            raise ValueError(f"unknown pod action {action!r}")
        with self.lock:
            self.pending_ops.append((action, op_id))
        self.wake.set()

    def _run_ops(self) -> None:
        while True:
            with self.lock:
                if not self.pending_ops:
                    return
                action, op_id = self.pending_ops.pop(0)
                self.last_op = {"id": op_id, "action": action, "done": False}
            ok, message = True, ""
            try:
                if action in ("stop", "restart"):
                    self.stop_pod("Stopped")
                if action in ("start", "restart"):
                    with self.lock:
                        self._reset_epoch("running")
                message = f"pod {self.pod.name} {action}ed" if action != "stop" else f"pod {self.pod.name} stopped"
            except Exception as exc:  # reported to podctl through last_op, and logged
                log.exception("pod %s: %s failed", self.pod.name, action)
                ok, message = False, f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.last_op = {"id": op_id, "action": action, "done": True, "ok": ok, "message": message}

    def stop_pod(self, final_phase: str) -> None:
        """App first (SIGTERM, grace, SIGKILL by supervisord), then the sidecars, which drain."""
        with self.lock:
            self.desired = "stopped"
            self.phase, self.status = "Terminating", "Terminating"
            self.app_launched = False
        self.sup.stop(self.programs["app"], True)
        for role in SIDECARS:
            self.sup.stop(self.programs[role], False)
        deadline = self.clock() + self.pod.grace_seconds + 15
        while self.clock() < deadline:
            infos = self.sup.all_info()
            if not any(infos[self.programs[r]]["statename"] in ALIVE for r in SIDECARS):
                break
            time.sleep(0.05)
        with self.lock:
            self.phase = self.status = final_phase if final_phase != "Stopped" else "Stopped"
            if final_phase in ("Succeeded", "Failed"):
                self.status = "Completed" if final_phase == "Succeeded" else self.status
            self.app_ready = False
            for keeper in self.sidecars.values():
                keeper.launched = keeper.ready = False

    # -- the reconcile step ----------------------------------------------------------------
    def tick(self) -> float:
        """One reconcile step; returns how long the pod thread may sleep before the next."""
        self._run_ops()
        if self.frozen or self.desired != "running":
            return 1.0
        now = self.clock()
        infos = self.sup.all_info()
        for role, keeper in self.sidecars.items():
            keeper.keep(infos[keeper.name], now)
        self._keep_app(infos[self.programs["app"]], now)
        with self.lock:
            self._update_status()
        waits = [0.5] + [s.next_at - now for s in self.probe_states.values()]
        starts = [self.app_next_start] + [k.next_start for k in self.sidecars.values()]
        waits += [t - now for t in starts if t > now]
        return max(0.02, min(waits))

    def _keep_app(self, info: dict, now: float) -> None:
        state = info["statename"]
        if state in ALIVE:
            if not self.app_launched or info["pid"] != self.app_pid:
                self._app_started(info["pid"], now)
            self._probe_app(now)
            self._check_memory()
            return
        if self.app_launched:
            self._app_ended(info, now)
            return
        if self.phase in TERMINAL or self.app_next_start == float("inf"):
            return
        if all(k.ready for k in self.sidecars.values()) and now >= self.app_next_start:
            # Native-sidecar ordering: the app is spawned only once its sidecars answer /health.
            self._start_app(now)

    def _start_app(self, now: float) -> None:
        try:
            self.sup.start(self.programs["app"], False)
        except Exception as exc:  # retried with backoff and logged, never dropped
            log.error("pod %s: cannot start app: %s", self.pod.name, exc)
            self.app_next_start = now + self.app_backoff.crashed(now)
            return
        self.app_backoff.started(now)
        self.app_launched = True
        info = self.sup.all_info()[self.programs["app"]]
        if info["statename"] in ALIVE:
            self._app_started(info["pid"], now)

    def _app_started(self, pid: int, now: float) -> None:
        self.app_launched = True
        self.app_pid = pid
        self.kill_reason = None
        self.phase = "Running"
        self.probe_states = {}
        for kind in ("startup", "readiness", "liveness"):
            probe = getattr(self.pod, f"{kind}_probe")
            if probe is not None:
                self.probe_states[kind] = probes.ProbeState(probe, now)
        log.info("pod %s: app running with pid %s", self.pod.name, pid)

    def _probe_app(self, now: float) -> None:
        startup = self.probe_states.get("startup")
        kinds = ("startup",) if startup is not None and not startup.passing else ("readiness", "liveness")
        for kind in kinds:
            state = self.probe_states.get(kind)
            if state is None or not state.due(now):
                continue
            result = self.prober(state.probe, self.host, self.pod.port)
            state.record(result, self.clock())
            if kind in ("startup", "liveness") and state.failed and self.kill_reason is None:
                self._kill_app(f"{kind.capitalize()} probe failed: {result.message}")
                return

    def _check_memory(self) -> None:
        limit = self.pod.memory_limit_bytes
        if limit and self.kill_reason is None and self.app_pid:
            rss = self.memory(self.app_pid)
            if rss > limit:
                log.warning("pod %s: app uses %d bytes, over its limit of %d", self.pod.name, rss, limit)
                self._kill_app("OOMKilled")

    def _kill_app(self, reason: str) -> None:
        log.warning("pod %s: killing app pid %s: %s", self.pod.name, self.app_pid, reason)
        self.kill_reason = reason
        self.killer(self.app_pid)

    def _app_ended(self, info: dict, now: float) -> None:
        self.app_launched = self.app_ready = False
        self.probe_states = {}
        code = info.get("exitstatus", 0)
        if self.kill_reason:
            reason, failed = self.kill_reason, True
        elif info["statename"] == "FATAL":
            reason, failed = f"Error: could not start: {info.get('spawnerr') or 'spawn error'}", True
        elif info["statename"] == "STOPPED":
            log.warning("pod %s: app was stopped from outside podvisor; leaving it stopped", self.pod.name)
            self.phase, self.status, self.app_next_start = "Stopped", "Stopped", float("inf")
            return
        else:
            failed = code != 0
            reason = f"Error: exit code {code}" if failed else "Completed"
        self.last_reason = reason
        self.status = "OOMKilled" if reason == "OOMKilled" else ("Error" if failed else "Completed")
        policy = self.pod.restart_policy
        gave_up = self.pod.max_restarts is not None and self.restarts >= self.pod.max_restarts
        if policy == "never" or (policy == "on-failure" and not failed) or gave_up:
            final = "Failed" if failed else "Succeeded"
            log.info("pod %s: app ended (%s); pod %s, draining sidecars", self.pod.name, reason, final)
            self.stop_pod(final)
            with self.lock:
                self.status = "Completed" if final == "Succeeded" else ("BackoffLimitExceeded" if gave_up else "Error")
                self.last_reason = reason
            return
        delay = self.app_backoff.crashed(now)
        self.restarts += 1
        self.app_next_start = now + delay
        log.warning("pod %s: app ended (%s); restart %d in %.2fs", self.pod.name, reason, self.restarts, delay)

    def _update_status(self) -> None:
        if self.phase in TERMINAL or self.phase == "Terminating":
            return
        readiness = self.probe_states.get("readiness")
        startup = self.probe_states.get("startup")
        started = startup is None or startup.passing
        self.app_ready = self.app_launched and started and (readiness.passing if readiness else True)
        if self.app_launched:
            self.phase, self.status = "Running", "Running"
        elif self.restarts and self.app_next_start > self.clock():
            # An OOM kill stays the visible status until the restart (kubectl shows OOMKilled too).
            self.status = "OOMKilled" if self.last_reason == "OOMKilled" else "CrashLoopBackOff"
        elif not all(k.ready for k in self.sidecars.values()):
            self.status = "PodInitializing"

    # -- what the status endpoint and metrics show ----------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            ready_count = int(self.app_ready) + sum(k.ready for k in self.sidecars.values())
            pod_ready = self.phase == "Running" and ready_count == len(self.programs)
            return {
                "pod": self.pod.name, "service": self.pod.service, "desired": self.desired,
                "phase": self.phase, "status": self.status, "ready": pod_ready,
                "containers_ready": ready_count, "containers": len(self.programs),
                "restarts": self.restarts,
                "sidecar_restarts": {role: k.restarts for role, k in self.sidecars.items()},
                "last_reason": self.last_reason, "created_at": self.created_at,
                "age_seconds": max(0.0, self.wall() - self.created_at), "app_pid": self.app_pid or None,
                "probes": {k: {"passing": s.passing, "last": s.last.message if s.last else None}
                           for k, s in self.probe_states.items()},
                "last_op": dict(self.last_op) if self.last_op else None,
            }
