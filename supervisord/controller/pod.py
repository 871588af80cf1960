"""One pod's lifecycle: sidecars first and last, probes, restart policy with backoff, memory limit.

`PodRunner.tick()` is one reconcile step against supervisord's view of the pod's programs. Every
start goes through the controller (supervisord's autostart/autorestart are off), so "we launched it
and it is no longer alive" is exactly "it ended", however fast it died.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from supervisord.controller import probes
from supervisord.controller.backoff import BackoffTracker
from supervisord.controller.keeper import Keeper, exit_reason
from supervisord.controller.procs import kill_tree, pid_alive, tree_rss
from supervisord.rpc import ALIVE, Supervisor
from supervisord.spec import Pod

log = logging.getLogger(__name__)

SIDECARS = ("logger", "metrics")
TERMINAL = ("Succeeded", "Failed", "Stopped")
# How long past its grace period a pod may take to stop before we report it and move on
# (supervisord has SIGKILLed the app by then; the logger gets grace + 10 s to drain).
STOP_SLACK_SECONDS = 15.0


def _no_reaper(program: str) -> list[int]:
    return []


class PodRunner:
    """Desired state plus what was observed; all mutation happens on the pod's own thread."""

    def __init__(self, pod: Pod, host: str, sup: Supervisor, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, prober: Callable[..., probes.Result] = probes.run,
                 memory: Callable[[int], int] = tree_rss, killer: Callable[[int], None] = kill_tree,
                 reaper: Callable[[str], list[int]] = _no_reaper, alive: Callable[[int], bool] = pid_alive,
                 pause: Callable[[float], None] | None = None):
        self.pod, self.host, self.sup = pod, host, sup
        self.clock, self.wall, self.prober, self.memory, self.killer = clock, wall, prober, memory, killer
        self.reaper = reaper  # kills what an ended app left behind (grandchildren that left its group)
        self.alive = alive  # whether a pid still runs: supervisord answers no questions while shutting down
        self.pause = pause or self._pause  # waits while stopping; tests pass one that moves a fake clock
        self.programs = pod.programs
        self.wake = threading.Event()  # set by supervisord's events for this pod's programs
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
        self.last_exit_code: int | None = None
        self.restart_delay: float | None = None  # the backoff chosen for the latest restart
        self.created_at = self.wall()
        self.app_launched = False  # started by us (or adopted) and not yet seen ending
        self.app_ready = False
        self.app_held = False  # stopped from outside podvisor: left stopped until the pod is (re)started
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
                if self.frozen:
                    raise RuntimeError("supervisord is shutting down")
                if action in ("stop", "restart"):
                    self.stop_pod("Stopped")
                if action in ("start", "restart"):
                    with self.lock:
                        self._reset_epoch("running")
                message = f"pod {self.pod.name} {'stopped' if action == 'stop' else action + 'ed'}"
            except Exception as exc:  # reported to podctl through last_op, and logged
                log.exception("pod %s: %s failed", self.pod.name, action)
                ok, message = False, f"{type(exc).__name__}: {exc}"
            with self.lock:
                self.last_op = {"id": op_id, "action": action, "done": True, "ok": ok, "message": message}

    def stop_pod(self, final_phase: str) -> None:
        """App first (SIGTERM to its group, grace, SIGKILL), what it left behind, then the sidecars."""
        with self.lock:
            self.desired = "stopped"
            self.phase, self.status = "Terminating", "Terminating"
            self.app_launched = False
        # stopProcess with wait returns once the app has exited (supervisord SIGKILLs its group after
        # stopwaitsecs = grace_seconds): only then are the sidecars signalled, so the logger sees
        # every line the app wrote, its shutdown lines included.
        self.sup.stop(self.programs["app"], True)
        self.reaper(self.programs["app"])
        for role in SIDECARS:
            self.sup.stop(self.programs[role], False)

        def sidecars_down() -> bool:
            infos = self.sup.all_info()
            return not any(infos[self.programs[r]]["statename"] in ALIVE for r in SIDECARS)

        if not self._wait_until(sidecars_down, self.pod.grace_seconds + STOP_SLACK_SECONDS):
            log.error("pod %s: sidecars still running %.0fs after they were told to stop", self.pod.name,
                      self.pod.grace_seconds + STOP_SLACK_SECONDS)
        with self.lock:
            self.phase = final_phase
            self.status = {"Succeeded": "Completed", "Failed": "Error"}.get(final_phase, final_phase)
            self.app_ready = False
            self.app_pid = 0
            self.probe_states = {}
            for keeper in self.sidecars.values():
                keeper.launched = keeper.ready = False

    def _wait_until(self, done: Callable[[], bool], seconds: float) -> bool:
        deadline = self.clock() + seconds
        while not done():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return False
            self.pause(min(remaining, 0.25))
        return True

    def _pause(self, seconds: float) -> None:
        """Until a state event of this pod's programs arrives, or `seconds` (events can be dropped)."""
        self.wake.wait(seconds)
        self.wake.clear()

    def hold(self, role: str) -> None:
        """Leave stopped a program an operator stopped outside podvisor (also after a controller restart)."""
        if role == "app":
            self.app_held, self.app_next_start = True, float("inf")
            if self.desired == "running":
                self.phase = self.status = "Stopped"
        else:
            keeper = self.sidecars[role]
            keeper.held, keeper.next_start = True, float("inf")

    def freeze(self) -> None:
        """supervisord is shutting down: it stops every program itself, in priority order."""
        with self.lock:
            self.frozen = True
            if self.phase not in TERMINAL:
                self.phase = self.status = "Terminating"
        self.wake.set()

    # -- the reconcile step ----------------------------------------------------------------
    def tick(self) -> float:
        """One reconcile step; returns how long the pod thread may sleep before the next."""
        self._run_ops()
        if self.frozen:
            self._watch_app_end()
            return 0.5
        if self.desired != "running":
            return 1.0
        now = self.clock()
        infos = self.sup.all_info()
        for keeper in self.sidecars.values():
            keeper.keep(infos[keeper.name], now)
        self._keep_app(infos[self.programs["app"]], now)
        with self.lock:
            self._update_status()
        waits = [0.5] + [s.next_at - now for s in self._active_probes()]
        starts = [self.app_next_start] + [k.next_start for k in self.sidecars.values()]
        waits += [t - now for t in starts if t > now]
        return max(0.02, min(waits))

    def _watch_app_end(self) -> None:
        """While supervisord shuts down, still leave no orphan behind an app that has ended.

        supervisord refuses XML-RPC in its SHUTDOWN state, so the app's pid is watched directly."""
        if not self.app_launched:
            return
        if not self.app_pid or not self.alive(self.app_pid):
            with self.lock:
                self.app_launched = self.app_ready = False
                self.app_pid = 0
            self.reaper(self.programs["app"])

    def _keep_app(self, info: dict, now: float) -> None:
        state = info["statename"]
        if state in ALIVE:
            self.app_held = False
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
        except Exception as exc:  # a refused spawn is a failed start: counted, backed off, reported
            log.error("pod %s: cannot start app: %s", self.pod.name, exc)
            self._after_app(f"StartError: {exc}", True, now)
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

    def _active_kinds(self) -> tuple[str, ...]:
        """The startup probe alone until it passes, then liveness and readiness (Kubernetes' order)."""
        startup = self.probe_states.get("startup")
        return ("startup",) if startup is not None and not startup.passing else ("liveness", "readiness")

    def _active_probes(self) -> list[probes.ProbeState]:
        """Probe states that will run: a passed startup probe is never due again, and waiting for
        its stale next_at would spin the pod thread (a reconcile, an RPC and a /proc scan per 20 ms)."""
        if not self.app_launched:
            return []
        return [s for kind in self._active_kinds() if (s := self.probe_states.get(kind)) is not None]

    def _probe_app(self, now: float) -> None:
        due = [(kind, state) for kind in self._active_kinds()
               if (state := self.probe_states.get(kind)) is not None and state.due(now)]
        if not due:
            return
        results = self._run_probes([state.probe for _, state in due])
        for (kind, state), result in zip(due, results, strict=True):
            # Periods run start to start, like the kubelet's: a slow probe does not stretch them.
            state.record(result, now)
            if kind in ("startup", "liveness") and state.failed and self.kill_reason is None:
                self._kill_app(f"{kind.capitalize()} probe failed: {result.message}")
                return

    def _run_probes(self, due: list) -> list[probes.Result]:
        """Probes that are due together run concurrently, so a hung readiness probe cannot delay liveness."""
        results: list[probes.Result | None] = [None] * len(due)

        def run(i: int) -> None:
            try:
                results[i] = self.prober(due[i], self.host, self.pod.port)
            except Exception as exc:  # a probe that raises has failed, with the reason
                results[i] = probes.Result(False, f"probe error: {type(exc).__name__}: {exc}")

        others = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(1, len(due))]
        for t in others:
            t.start()
        run(0)
        for t in others:
            t.join()
        return [r or probes.Result(False, "probe gave no result") for r in results]

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
        self.app_pid = 0
        # The app's exit ends its container: whatever it left running (even outside its process
        # group) is killed now, as a pid namespace would be, before any restart.
        self.reaper(self.programs["app"])
        if info["statename"] == "STOPPED" and not self.kill_reason:
            log.warning("pod %s: app was stopped from outside podvisor; leaving it stopped", self.pod.name)
            self.hold("app")
            return
        self.last_exit_code = info.get("exitstatus")
        if self.kill_reason:
            reason, failed = self.kill_reason, True
        else:
            reason = exit_reason(info)
            failed = reason != "Completed"
        self._after_app(reason, failed, now)

    def _after_app(self, reason: str, failed: bool, now: float) -> None:
        """The app ended or could not start: restart it with backoff, or end the pod, per its policy."""
        self.last_reason = reason
        self.status = self._terminated_status(reason, failed)
        policy = self.pod.restart_policy
        gave_up = self.pod.max_restarts is not None and self.restarts >= self.pod.max_restarts
        if policy == "never" or (policy == "on-failure" and not failed) or gave_up:
            final = "Failed" if failed else "Succeeded"
            log.info("pod %s: app ended (%s); pod %s, draining sidecars", self.pod.name, reason, final)
            self.stop_pod(final)
            with self.lock:
                self.status = "BackoffLimitExceeded" if gave_up else self._terminated_status(reason, failed)
                self.last_reason = reason
            return
        delay = self.app_backoff.crashed(now)
        self.restarts += 1
        self.restart_delay = delay
        self.app_next_start = now + delay
        log.warning("pod %s: app ended (%s); restart %d in %.2fs", self.pod.name, reason, self.restarts,
                    delay)

    @staticmethod
    def _terminated_status(reason: str, failed: bool) -> str:
        """kubectl's STATUS for a terminated app: OOMKilled, StartError, Error or Completed."""
        if reason in ("OOMKilled",) or reason.startswith("StartError"):
            return reason.split(":", 1)[0]
        return "Error" if failed else "Completed"

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
            waiting = any(not k.held and k.next_start > self.clock() for k in self.sidecars.values())
            self.status = "Init:CrashLoopBackOff" if waiting else "PodInitializing"

    # -- what the status endpoint and metrics show ----------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            ready_count = int(self.app_ready) + sum(k.ready for k in self.sidecars.values())
            pod_ready = self.phase == "Running" and ready_count == len(self.programs)
            held = (["app"] if self.app_held else []) + [r for r, k in self.sidecars.items() if k.held]
            waiting = (not self.app_launched and self.phase not in TERMINAL
                       and self.app_next_start > self.clock())
            return {
                "pod": self.pod.name, "service": self.pod.service, "desired": self.desired,
                "phase": self.phase, "status": self.status, "ready": pod_ready,
                "containers_ready": ready_count, "containers": len(self.programs),
                "restarts": self.restarts, "last_reason": self.last_reason,
                "last_exit_code": self.last_exit_code,
                "restart_delay_seconds": self.restart_delay,
                "restart_in_seconds": max(0.0, self.app_next_start - self.clock()) if waiting else None,
                "sidecar_restarts": {role: k.restarts for role, k in self.sidecars.items()},
                "sidecar_last_reason": {role: k.last_reason for role, k in self.sidecars.items()},
                "held_by_operator": held, "created_at": self.created_at,
                "age_seconds": max(0.0, self.wall() - self.created_at), "app_pid": self.app_pid or None,
                "probes": {k: {"passing": s.passing, "last": s.last.message if s.last else None}
                           for k, s in self.probe_states.items()},
                "last_op": dict(self.last_op) if self.last_op else None,
            }
