"""One pod: its app replicas and two sidecars, run the way Kubernetes runs a pod with native sidecars.

`PodRunner.tick()` is one reconcile step against supervisord's view of the pod's programs: the
sidecars are started first and the app's replicas only once both have started (answered /health)
and the pods it depends on are Ready; probes, the memory limit and the restart policy act on each
replica; a sidecar that ends is restarted alone. Every start goes through the controller
(supervisord's autostart/autorestart are off), so "we launched it and it is no longer alive" is
exactly "it ended", however fast it died. A replica lives in a slot (`user-app`, `user-app-1`...);
one more slot than replicas lets a rolling restart start the new process before the old one stops.

Threads: the pod's own thread runs `tick()`; the status endpoint reads `snapshot()`; supervisord's
events call `request()` and `freeze()`. Every write to the pod's state happens under `lock`, and
no I/O (XML-RPC, probes, signals, waits) happens while it is held.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from podvisor.core.procs import kill_tree, pid_alive, tree_rss
from podvisor.core.supervisor import ALIVE as SUPERVISOR_ALIVE
from podvisor.core.supervisor import Supervisor
from podvisor.supervisord.controller import probes
from podvisor.supervisord.controller.container import Container, Policy, Probes
from podvisor.supervisord.controller.reconcile import Reconciler
from podvisor.supervisord.controller.rollout import Rollout
from podvisor.supervisord.controller.states import (
    TERMINAL,
    Phase,
    Reason,
    State,
    Termination,
    combined,
    pod_phase,
    pod_status,
)
from podvisor.supervisord.spec.model import Pod, Probe

log = logging.getLogger(__name__)

SIDECARS = ("logger", "metrics")
# A sidecar has started once it answers /health; one that never does within a minute is restarted.
SIDECAR_HEALTH = Probe(http_get="/health", period_seconds=0.1, timeout_seconds=0.5, failure_threshold=600)
SAVED_STATES = (State.STOPPED, State.EXITED, State.HELD)
EVENTS_KEPT = 50
# How often the logger's /health is read for its shipping progress (a stall shows within this).
SHIPPING_CHECK_SECONDS = 5.0


def _no_reaper(program: str) -> list[int]:
    return []


def _no_deps() -> list[str]:
    return []


def slot_role(slot: int) -> str:
    """The role a slot shows under: `app`, `app-1`, ... (its program's suffix)."""
    return "app" if not slot else f"app-{slot}"


def _no_group_reaper(pgid: int) -> list[int]:
    return []


def _legacy_containers(saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The containers of a pod in an older state file: {desired, phase, restarts, last_reason,
    held_by_operator} (status may be missing), as restore() takes them."""
    stopped = saved.get("desired") == "stopped"
    ended = {"Stopped": State.STOPPED, "Succeeded": State.EXITED, "Failed": State.EXITED}
    app = ended.get(saved.get("phase"), State.STOPPED) if stopped else State.WAITING
    containers = {"app": {"state": app.value, "last_reason": saved.get("last_reason"),
                          "restarts": saved.get("restarts", 0)},
                  **{role: {"state": (State.STOPPED if stopped else State.WAITING).value} for role in SIDECARS}}
    for role in saved.get("held_by_operator") or ():
        if role in containers:
            containers[role]["state"] = State.HELD.value
    return containers


def health_checked(program: str, backoff: Any, port: int | None, command: str = "") -> Container:
    """A container whose start is its /health answering: a sidecar, the aggregator."""
    return Container(program, backoff, Probes(startup=SIDECAR_HEALTH, port=port), command=command)


def app_container(pod: Pod, slot: int) -> Container:
    """A replica's container: probed on its slot's own port where podvisor holds the socket."""
    port = pod.slot_ports[slot] if pod.socket == "held" and slot < len(pod.slot_ports) else pod.port
    return Container(pod.app_programs[slot], pod.backoff,
                     Probes(pod.startup_probe, pod.readiness_probe, pod.liveness_probe, port),
                     Policy(pod.restart_policy, pod.max_restarts), pod.memory_limit_bytes, command=pod.command,
                     port=pod.port)


class PodRunner(Reconciler):
    """The pod's containers plus what is wanted of them (run, or stay stopped)."""

    def __init__(self, pod: Pod, host: str, sup: Supervisor, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, prober: Callable[..., probes.Result] = probes.run,
                 memory: Callable[[int], int] = tree_rss, killer: Callable[[int], None] = kill_tree,
                 reaper: Callable[[str], list[int]] = _no_reaper, alive: Callable[[int], bool] = pid_alive,
                 group_reaper: Callable[[int], list[int]] = _no_group_reaper,
                 pause: Callable[[float], None] | None = None, waiting_for: Callable[[], list[str]] = _no_deps,
                 shipping: Callable[[str, int], dict[str, Any] | None] = probes.fetch_json):
        super().__init__(host, sup, clock=clock, prober=prober, killer=killer)
        self.pod, self.wall, self.memory = pod, wall, memory
        self.reaper = reaper  # kills what an ended app left behind (grandchildren that left its group)
        # ...and what is left in its process group: nginx's workers outlive a SIGKILLed master, with
        # their environment wiped (so the reaper cannot find them), still holding the app's port.
        self.group_reaper = group_reaper
        self.alive = alive  # whether a pid still runs: supervisord answers no questions while shutting down
        self.pause = pause or self._pause  # waits while stopping; tests pass one that moves a fake clock
        self.waiting_for = waiting_for  # the pods of depends_on that are not Ready
        self.shipping = shipping  # reads the logger's /health
        self.programs = pod.programs
        self.wake = threading.Event()  # set by supervisord's events for this pod's programs
        self.retired = threading.Event()  # the pod has left the spec: its thread ends
        self.apps = [app_container(pod, slot) for slot in range(pod.slots)]
        self.active = list(range(pod.replicas))  # the slots that should run; the others are spares
        for slot in range(pod.replicas, pod.slots):
            self.apps[slot].stop()  # a spare: WAITING -> STOPPED until a rollout needs it
        self.sidecars = {role: health_checked(self.programs[role], pod.backoff, port, f"podvisor-{role}")
                         for role, port in (("logger", pod.logger_port), ("metrics", pod.metrics_port))}
        self.pending_ops: list[tuple[str, str]] = []
        self.last_op: dict[str, Any] | None = None
        self.desired = "running"
        self.frozen = False  # supervisord is shutting down: observe, never start
        self.created_at = wall()
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self.blocked_by: list[str] = []  # depends_on pods not Ready while the app waits to start
        self.shipping_state: dict[str, Any] | None = None  # the logger's last /health answer
        self.next_shipping_check = 0.0
        self.rollout: Rollout | None = None
        self.next_pod: Pod | None = None  # the spec a rollout brings the replicas to

    # -- derived ------------------------------------------------------------------------------------
    @property
    def containers(self) -> list[Container]:
        return [*self.apps, *self.sidecars.values()]

    def replaced(self, program: str) -> None:
        """A spare slot's program re-created by supervisord changes nothing: it is not running."""
        with self.lock:
            spares = {self.apps[slot].program for slot in range(len(self.apps)) if slot not in self.active}
        if program not in spares:
            super().replaced(program)

    @property
    def replicas(self) -> list[Container]:
        """The app containers that should run (a rollout's new one included)."""
        return [self.apps[slot] for slot in self.active]

    @property
    def app(self) -> Container:
        """The first replica: what a one-replica pod's status fields (pid, last reason) describe."""
        return self.apps[self.active[0]] if self.active else self.apps[0]

    def _app_state(self) -> tuple[State, Termination | None]:
        replicas = self.replicas
        ended = [c.last for c in replicas if c.last is not None]
        return combined(c.state for c in replicas), (ended[-1] if ended else None)

    def ended_on_purpose(self) -> bool:
        """Stopped, or ended for good, with no app process alive: no restart is coming that clients
        should wait for (the socket holder lets go of the pod's sockets)."""
        with self.lock:
            return self.phase in TERMINAL and not any(c.alive for c in self.apps)

    @property
    def phase(self) -> Phase:
        state, end = self._app_state()
        return pod_phase(state, end, any(c.runs for c in self.replicas),
                         (c.state for c in self.sidecars.values()), self.frozen)

    @property
    def status(self) -> str:
        state, end = self._app_state()
        gave_up = any(c.gave_up for c in self.replicas)
        status = pod_status(self.phase, state, end, gave_up, (c.state for c in self.sidecars.values()))
        return "Degraded" if status == "Running" and self.stalled_for() is not None else status

    @property
    def ready_replicas(self) -> int:
        return sum(c.ready for c in self.replicas)

    @property
    def ready(self) -> bool:
        return (self.phase is Phase.RUNNING and self.ready_replicas >= self.pod.min_ready
                and all(c.ready for c in self.sidecars.values()))

    def is_ready(self) -> bool:
        """Ready, read under the lock (for pods that depend on this one)."""
        with self.lock:
            return self.ready

    def stalled_for(self) -> float | None:
        """Seconds the logger has made no progress while lines wait, when that is past the pod's
        threshold; else None."""
        health = self.shipping_state
        if not health or not self.sidecars["logger"].started:
            return None
        stalled = health.get("stalled_seconds")
        if not isinstance(stalled, int | float):  # a logger without it: the oldest unacknowledged line
            stalled = health.get("lag_seconds") if health.get("inflight_lines") else 0
        return float(stalled) if isinstance(stalled, int | float) and stalled >= self.pod.shipping_stall_seconds \
            else None

    def conditions(self) -> list[dict[str, Any]]:
        ready = self.ready
        out = [{"type": "Ready", "status": ready, "reason": None if ready else self.status,
                "message": f"{self.ready_replicas}/{self.pod.replicas} replicas ready (min_ready "
                           f"{self.pod.min_ready})" if self.pod.replicas > 1 else None}]
        if self.pod.depends_on:
            out.append({"type": "DependenciesReady", "status": not self.blocked_by,
                        "reason": "Waiting" if self.blocked_by else None,
                        "message": f"waiting for {', '.join(self.blocked_by)}" if self.blocked_by else None})
        stalled = self.stalled_for()
        detail = (self.shipping_state or {}).get("aggregator_reachable")
        out.append({"type": "ShippingStalled", "status": stalled is not None,
                    "reason": "NoProgress" if stalled is not None else None,
                    "message": (f"no line acknowledged for {stalled:.0f}s while lines wait"
                                + ("; aggregator unreachable" if detail is False else ""))
                    if stalled is not None else None})
        return out

    def _roles(self) -> list[tuple[str, Container]]:
        return [*((slot_role(slot), c) for slot, c in enumerate(self.apps)), *self.sidecars.items()]

    def _collect_events(self) -> None:
        """Move the containers' events into the pod's list, with the time; a repeat counts up."""
        now = self.wall()
        with self.lock:
            for role, c in self._roles():
                for kind, reason, message in c.take_events():
                    self._record(kind, reason, message, role, now)

    def _record(self, kind: str, reason: str, message: str, container: str, now: float) -> None:
        last = self.events[-1] if self.events else None
        if last and (last["reason"], last["message"], last["container"]) == (reason, message, container):
            last.update(count=last["count"] + 1, time=now)
            return
        self.events.append({"time": now, "type": kind, "reason": reason, "container": container,
                            "message": message, "count": 1})

    # -- operations (podctl) --------------------------------------------------------------------------
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
                if not self.pending_ops or self.rollout is not None:
                    return
                action, op_id = self.pending_ops.pop(0)
                self.last_op = {"id": op_id, "action": action, "done": False}
                self._record("Normal", action.capitalize(), f"podctl {action}", "pod", self.wall())
            ok, message = True, ""
            try:
                if self.frozen:
                    raise RuntimeError("supervisord is shutting down")
                if action == "restart" and self.rollable():
                    self.start_rollout(op_id)  # reported done when the last replica is replaced
                    continue
                if action in ("stop", "restart"):
                    self.stop_pod()
                if action in ("start", "restart"):
                    self._start_run()
                message = f"pod {self.pod.name} {'stopped' if action == 'stop' else action + 'ed'}"
            except Exception as exc:  # reported to podctl through last_op, and logged
                log.exception("pod %s: %s failed", self.pod.name, action)
                ok, message = False, f"{type(exc).__name__}: {exc}"
            self._finish_op(op_id, action, ok, message)

    def _finish_op(self, op_id: str, action: str, ok: bool, message: str) -> None:
        with self.lock:
            self.last_op = {"id": op_id, "action": action, "done": True, "ok": ok, "message": message}

    def rollable(self) -> bool:
        """A restart replaces the replicas one at a time: the pod runs, and its socket is held."""
        with self.lock:
            return (self.desired == "running" and self.phase is Phase.RUNNING and not self.frozen
                    and self.pod.socket == "held")

    def start_rollout(self, op_id: str = "", pod: Pod | None = None, regroup: frozenset[str] = frozenset()) -> None:
        """Replace every replica, one at a time (with `pod`'s spec, taking `regroup`'s programs
        anew from supervisord as their slots are free)."""
        with self.lock:
            self.next_pod = pod
            in_place = self.pod.slots == self.pod.replicas
            self.rollout = Rollout(op_id, list(self.active), regroup, in_place=in_place)
            self._record("Normal", "RollingRestart", f"replacing {len(self.active)} replica(s) one at a time",
                         "pod", self.wall())
        self.wake.set()

    def _start_run(self) -> None:
        """A new run of the pod: containers that are down start again from fresh counts; running
        ones are left as they are (starting a running pod changes nothing)."""
        with self.lock:
            self.desired = "running"
            if self.phase in TERMINAL:
                # An app an operator stopped (`supervisorctl stop x-app`) leaves the pod Stopped
                # with its sidecars still running: those keep their processes.
                for container in [*self.replicas, *self.sidecars.values()]:
                    if not container.alive:
                        container.restart_run()
                self.created_at = self.wall()

    def stop_pod(self) -> None:
        """Apps first (their stop signal to their groups, grace, SIGKILL), what they left behind,
        then the sidecars."""
        with self.lock:
            self.desired = "stopped"
            self.rollout = None
            pids = {c.program: c.pid for c in self.apps}
            alive = [c for c in self.apps if c.stop()]
        budget = self.pod.budget
        for container in alive:
            # supervisord SIGKILLs the app's group after stopwaitsecs = grace_seconds; only once
            # the app has exited are the sidecars signalled, so the logger sees every line it wrote.
            self.sup.stop(container.program, False)
        if alive and not self._wait_until(lambda: not self._running(alive), budget.app_stop_seconds):
            log.error("pod %s: app still running %.0fs after it was told to stop", self.pod.name,
                      budget.app_stop_seconds)
        for container in alive:
            self._reap(container, pids[container.program])
        with self.lock:
            for container in alive:
                container.gone()
        self._drain_sidecars()

    def _drain_sidecars(self) -> None:
        """Stop the sidecars (the logger ships what is left first) and wait until they have exited."""
        with self.lock:
            alive = [c for c in self.sidecars.values() if c.stop()]
        for container in alive:
            self.sup.stop(container.program, False)
        seconds = self.pod.budget.pod_stop_seconds
        if alive and not self._wait_until(lambda: not self._running(alive), seconds):
            log.error("pod %s: sidecars still running %.0fs after they were told to stop", self.pod.name, seconds)
        with self.lock:
            for container in alive:
                container.gone()
        self._collect_events()

    def _running(self, containers: list[Container]) -> bool:
        infos = self.sup.all_info()
        return any(infos.get(c.program, {}).get("statename") in SUPERVISOR_ALIVE for c in containers)

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

    def stop_sidecar(self, program: str) -> None:
        """Stop one sidecar alone, the app left running (apply re-creates a sidecar whose rendered
        settings changed). The logger gets SIGHUP: drain and exit without waiting for the app to
        stop (on SIGTERM it would wait for the app, which is not stopping, its whole budget)."""
        container = next(c for c in self.sidecars.values() if c.program == program)
        with self.lock:
            alive = container.stop()
        if alive:
            if container is self.sidecars["logger"]:
                self.sup.signal(program, "HUP")
            else:
                self.sup.stop(program, False)
            seconds = self.pod.budget.pod_stop_seconds
            if not self._wait_until(lambda: not self._running([container]), seconds):
                log.error("pod %s: %s still running %.0fs after it was told to stop", self.pod.name, program,
                          seconds)
                self.sup.stop(program, True)  # supervisord's SIGTERM, then SIGKILL at its stopwaitsecs
        with self.lock:
            container.gone()
        self._collect_events()

    def reload(self, pod: Pod) -> None:
        """The app re-reads its config on its reload signal (nginx: HUP); its processes stay."""
        signame = pod.reload_signal or "HUP"
        for container in self.replicas:
            if container.alive:
                self.sup.signal(container.program, signame)
        with self.lock:
            self.pod = pod
            self._record("Normal", "Reloaded", f"SIG{signame}: the app re-reads its configuration", "app",
                         self.wall())

    def freeze(self) -> None:
        """supervisord is shutting down: it stops every program itself (the shutdown driver orders it)."""
        with self.lock:
            self.frozen = True
            self.rollout = None
            for container in self.containers:
                if container.alive or container.state in (State.WAITING, State.BACKOFF):
                    container.stop()
        self.wake.set()

    def restore(self, saved: dict[str, Any]) -> None:
        """After a controller restart under the same supervisord: operators' stops, ended pods,
        restart counts and which slots are active come back, through the containers' own moves."""
        with self.lock:
            self.desired = saved.get("desired", "running")
            active = saved.get("active")
            if isinstance(active, list) and active and all(isinstance(s, int) and 0 <= s < len(self.apps)
                                                           for s in active):
                for slot in range(len(self.apps)):  # spares were STOPPED at init; make the saved ones so
                    container = self.apps[slot]
                    if slot in active and container.state is State.STOPPED:
                        container.restart_run()
                    elif slot not in active and container.state is not State.STOPPED:
                        container.stop()
                self.active = list(active)
            containers = saved.get("containers")
            if containers is None:  # written by a controller that saved the pod's phase instead
                containers = _legacy_containers(saved)
            roles = dict(self._roles())
            for role, state in (containers or {}).items():
                container = roles.get(role)
                if container is None or container.state is not State.WAITING:
                    continue
                try:
                    target = State(state.get("state"))
                except ValueError:
                    continue
                container.restore(target if target in SAVED_STATES else State.WAITING,
                                  Termination.parse(state.get("last_reason")), int(state.get("restarts", 0)))

    def saved(self) -> dict[str, Any]:
        """What restore() needs, taken under the lock."""
        with self.lock:
            return {"desired": self.desired, "active": list(self.active), "containers": {
                role: {"state": c.state.value, "last_reason": str(c.last) if c.last else None, "restarts": c.restarts}
                for role, c in self._roles()}}

    # -- the reconcile step --------------------------------------------------------------------------
    def tick(self) -> float:
        """One reconcile step; returns how long the pod thread may sleep before the next."""
        self._run_ops()
        if self.frozen:
            self._watch_while_frozen()
            return 0.5
        if self.desired != "running":
            return 1.0
        now = self.clock()
        pids = {c.program: c.pid for c in self.apps}
        ended = self.observe(self.containers, self.sup.all_info(), now)
        for container in self.apps:
            if container.program in ended:
                # An app's exit ends its container: whatever it left running (even outside its process
                # group) is killed now, as a pid namespace would be, before any restart.
                self._reap(container, pids[container.program])
        self.probe(self.containers, now)
        self._advance_rollout(now)
        if self._end_if_exited():
            return 1.0
        self._check_memory()
        self._check_shipping(now)
        starting = any(c.start_due(now) for c in self.replicas)
        blocked = self.waiting_for() if starting else []
        with self.lock:
            if blocked != self.blocked_by and blocked:
                self._record("Normal", "Waiting", f"app waits for {', '.join(blocked)} to be Ready", "app",
                             self.wall())
            self.blocked_by = blocked
            due = [c for c in self.sidecars.values() if c.start_due(now)]
            # Native-sidecar ordering: the app is spawned only once its sidecars have started, and
            # (compose's service_healthy) once the pods it depends on are Ready.
            if all(c.started for c in self.sidecars.values()) and not blocked:
                due += [c for c in self.replicas if c.start_due(now)]
        self.start(due)
        self._collect_events()
        if self._end_if_exited():  # a refused spawn can end the app for good (policy never, max_restarts)
            return 1.0
        return self.next_wait(self.containers, now, longest=0.25 if blocked or self.rollout else 0.5)

    def _advance_rollout(self, now: float) -> None:
        """One step of a rolling restart: start a replacement, or stop the old one it is Ready to
        take over from, or take the next."""
        stop: Container | None = None
        regroup: list[str] = []
        finished: tuple[str, bool, str] | None = None
        with self.lock:
            r = self.rollout
            if r is None:
                return
            if r.stopping is not None:
                old = self.apps[r.stopping]
                if old.alive:
                    return
                if old.program in r.regroup:
                    regroup.append(old.program)
                if r.in_place:  # the slot that was stopped starts again, anew
                    self._renew(r.stopping)
                    r.new, r.started_at = r.stopping, now
                r.stopping = None
            elif r.new is not None:
                new = self.apps[r.new]
                if new.ready:
                    old_slot = r.old.pop(0)
                    if not r.in_place:
                        self.active.remove(old_slot)
                        stop = self.apps[old_slot]
                        r.stopping = old_slot
                    r.replaced.append((old_slot, r.new))
                    self._record("Normal", "Replaced", f"{slot_role(r.new)} is Ready: {slot_role(old_slot)} stops",
                                 "pod", self.wall())
                    r.new = None
                elif now - r.started_at > r.deadline_seconds or new.state in (State.EXITED, State.HELD):
                    finished = (r.op_id, False, f"{slot_role(r.new)} did not become Ready: the rollout stopped, "
                                                "the old replicas keep serving")
                    if not r.in_place:
                        self.active.remove(r.new)
                        stop = new
            elif not r.old:
                finished = (r.op_id, True, f"pod {self.pod.name} restarted: {len(r.replaced)} replica(s) replaced")
            elif r.in_place:
                r.stopping = r.old[0]
                stop = self.apps[r.stopping]
            else:
                spare = next((s for s in range(len(self.apps)) if s not in self.active), None)
                if spare is None:
                    finished = (r.op_id, False, "no free slot for the new replica")
                else:
                    if self.apps[spare].program in r.regroup:
                        regroup.append(self.apps[spare].program)
                    self._renew(spare)
                    self.active.append(spare)
                    r.new, r.started_at = spare, now
            if finished is not None:
                self.rollout = None
                if self.next_pod is not None and finished[1]:
                    self.pod, self.next_pod = self.next_pod, None
        if stop is not None:
            with self.lock:
                must_signal = stop.stop()
            if must_signal:
                self.sup.stop(stop.program, False)
        for program in regroup:  # its section changed: supervisord takes the new one (it is stopped)
            self.sup.remove_group(program)
            self.sup.add_group(program)
        if finished is not None:
            self._finish_op(finished[0], "restart", finished[1], finished[2])

    def _renew(self, slot: int) -> None:
        """The slot gets a fresh container (the rollout's spec) and waits to start. Under the lock."""
        pod = self.next_pod or self.pod
        old = self.apps[slot]
        if old.state is not State.WAITING:
            old.restart_run()
        self.apps[slot] = app_container(pod, slot)

    def _check_shipping(self, now: float) -> None:
        """Read the logger's progress every few seconds (a stall is a condition, not a restart)."""
        if now < self.next_shipping_check or not self.sidecars["logger"].started:
            return
        self.next_shipping_check = now + min(SHIPPING_CHECK_SECONDS, self.pod.shipping_stall_seconds / 4)
        health = self.shipping(self.host, self.pod.logger_port)
        with self.lock:
            was = self.stalled_for() is not None
            self.shipping_state = health
            stalled = self.stalled_for()
            if stalled is not None and not was:
                self._record("Warning", "ShippingStalled", f"no line acknowledged for {stalled:.0f}s while lines "
                             "wait", "logger", self.wall())
            elif was and stalled is None:
                self._record("Normal", "ShippingResumed", "", "logger", self.wall())

    def _end_if_exited(self) -> bool:
        """When every replica has ended for good, the pod ends: its sidecars are drained at once."""
        if not self.replicas or any(c.state is not State.EXITED for c in self.replicas):
            return False
        self._collect_events()
        with self.lock:
            self.desired = "stopped"
        log.info("pod %s: app ended (%s); draining sidecars", self.pod.name, self.app.last)
        self._drain_sidecars()
        log.info("pod %s: %s", self.pod.name, self.phase.value)
        return True

    def _check_memory(self) -> None:
        for container in self.replicas:
            if not container.memory_limit or not container.pid or container.state is State.STOPPING:
                continue
            rss = self.memory(container.pid)
            with self.lock:
                reason = container.check_memory(rss)
            if reason is not None:
                self.kill(container, reason)

    def _watch_while_frozen(self) -> None:
        """While supervisord shuts down, still leave no orphan behind an app that has ended.

        supervisord refuses XML-RPC in its SHUTDOWN state, so the apps' pids are watched directly."""
        for container in self.apps:
            with self.lock:
                pid = container.pid if container.state is State.STOPPING else None
            if pid is None:
                continue
            if not pid or not self.alive(pid):
                with self.lock:
                    container.gone()
                self._reap(container, pid)

    def _reap(self, container: Container, pid: int) -> None:
        """Kill what an ended app left: processes named after its program, and its process group
        (supervisord makes every program a group leader, so the group id is the app's pid)."""
        self.reaper(container.program)
        if pid:
            self.group_reaper(pid)

    # -- what the status endpoint and metrics show ---------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            now = self.clock()
            phase = self.phase
            pod, app = self.pod, self.app
            held = [role for role, c in self._roles() if c.state is State.HELD]
            last = app.last
            replicas = self.replicas
            states = {}
            for role, c in self._roles():
                states[role] = {**c.snapshot(now), "active": c in replicas or role in SIDECARS}
            return {
                "pod": pod.name, "service": pod.service, "desired": self.desired,
                "phase": phase.value, "status": self.status,
                "ready": self.ready,
                "containers_ready": self.ready_replicas + sum(c.ready for c in self.sidecars.values()),
                "containers": pod.replicas + len(SIDECARS),
                "replicas": pod.replicas, "ready_replicas": self.ready_replicas, "min_ready": pod.min_ready,
                "restarts": sum(c.restarts for c in self.apps),
                "last_reason": str(last) if last and last.reason is not Reason.STOPPED_OUTSIDE else None,
                "last_exit_code": last.exit_code if last else None,
                "restart_delay_seconds": app.delay,
                "restart_in_seconds": app.waiting_for(now),
                "sidecar_restarts": {role: c.restarts for role, c in self.sidecars.items()},
                "sidecar_last_reason": {role: str(c.last) if c.last else None for role, c in self.sidecars.items()},
                "held_by_operator": held, "created_at": self.created_at,
                "age_seconds": max(0.0, self.wall() - self.created_at), "app_pid": app.pid or None,
                "probes": app.snapshot(now)["probes"],
                "container_states": states,
                "last_op": dict(self.last_op) if self.last_op else None,
                "ports": {"app": pod.port, "metrics": pod.metrics_port, "logger": pod.logger_port,
                          **({"slots": list(pod.slot_ports)} if pod.socket == "held" else {})},
                "socket": pod.socket,
                "depends_on": list(pod.depends_on),
                "conditions": self.conditions(),
                "events": [dict(e) for e in self.events],
                "rollout": {"replaced": len(self.rollout.replaced), "remaining": len(self.rollout.old)}
                if self.rollout else None,
            }
