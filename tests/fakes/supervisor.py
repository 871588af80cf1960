"""Fakes for the lifecycle controller's seams: supervisord, clocks, prober, memory and killer.

`FakeSupervisor` models supervisord's process states for podvisor's programs (startsecs=0,
startretries=0, autorestart=false) at the level of `SupervisorRPC`: that class swallows the
ALREADY_STARTED and NOT_RUNNING faults, so here those calls change nothing; a spawn error is raised
as the SPAWN_ERROR fault startProcess raises, and leaves the program FATAL (no retries left).
Every call and every process ending goes into one ordered log, so tests can assert order.
"""
from __future__ import annotations

import itertools
import xmlrpc.client
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from podvisor.supervisord.controller import probes
from podvisor.supervisord.controller.pod import PodRunner
from podvisor.supervisord.spec.model import Backoff, Pod, Probe

# supervisor.states: names and codes, and RUNNING_STATES (the ones stopProcess accepts).
STATE_CODES = {"STOPPED": 0, "STARTING": 10, "RUNNING": 20, "BACKOFF": 30, "STOPPING": 40, "EXITED": 100,
               "FATAL": 200}
RUNNING_STATES = ("STARTING", "RUNNING", "BACKOFF")


class FakeClock:
    """A clock that moves only when a test says so."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Entry:
    seq: int
    t: float
    kind: str  # start, stop: calls; stopped, exit, operator-stop: process endings; kill, probe
    name: str
    detail: Any = None


class FakeSupervisor:
    """In-memory supervisord: processes, pids, exit statuses, and a log of what happened when."""

    def __init__(self, names: Iterable[str], clock: FakeClock, supervisord_pid: int = 4242):
        self.clock = clock
        self.supervisord_pid = supervisord_pid
        self.supervisord_state = "RUNNING"
        self.procs = {n: {"name": n, "group": n, "statename": "STOPPED", "pid": 0, "exitstatus": 0,
                          "spawnerr": ""} for n in names}
        self.spawn_errors: dict[str, str] = {}  # name -> spawnerr for the next starts
        self.stuck: set[str] = set()  # names that stay STOPPING when told to stop (never exit)
        self.log: list[Entry] = []
        self._seq = itertools.count()
        self._pids = itertools.count(5000)

    # -- the Supervisor protocol ---------------------------------------------------------------
    def all_info(self) -> dict[str, dict[str, Any]]:
        for name, proc in self.procs.items():
            if proc["statename"] == "STOPPING" and name not in self.stuck:  # SIGTERM'd: it has exited by now
                self._stopped(name)
        return {name: {**proc, "state": STATE_CODES[proc["statename"]]} for name, proc in self.procs.items()}

    def start(self, name: str, wait: bool = True) -> None:
        proc = self._proc(name)
        if proc["statename"] in RUNNING_STATES:
            self.note("start", name, "ALREADY_STARTED")  # SupervisorRPC swallows the fault
            return
        if name in self.spawn_errors:
            # STARTING -> BACKOFF (spawn failed) -> FATAL (startretries=0); startProcess raises.
            proc.update(statename="FATAL", pid=0, spawnerr=self.spawn_errors[name])
            self.note("start", name, "SPAWN_ERROR")
            raise xmlrpc.client.Fault(50, f"SPAWN_ERROR: {name}")
        # STOPPED/EXITED/FATAL -> STARTING -> RUNNING at once (startsecs=0).
        pid = next(self._pids)
        proc.update(statename="RUNNING", pid=pid, exitstatus=0, spawnerr="")
        self.note("start", name, pid)

    def stop(self, name: str, wait: bool = True) -> None:
        proc = self._proc(name)
        if proc["statename"] not in RUNNING_STATES:
            self.note("stop", name, "NOT_RUNNING")  # SupervisorRPC swallows the fault
            return
        # RUNNING -> STOPPING; with wait the call returns once STOPPED, without it a later look does.
        self.note("stop", name, "SIGTERM")
        proc["statename"] = "STOPPING"
        if wait:
            self._stopped(name)

    def signal(self, name: str, signame: str) -> None:
        """supervisor.signalProcess: a logger drains and exits on HUP; anything else only notes it
        (nginx reloads on HUP and keeps its pid)."""
        proc = self._proc(name)
        self.note("signal", name, signame)
        if signame == "HUP" and name.endswith("-logger") and proc["statename"] in RUNNING_STATES:
            proc["statename"] = "STOPPING"  # exits by the next look, like a SIGTERM'd one

    def reload_config(self) -> tuple[list[str], list[str], list[str]]:
        """supervisor.reloadConfig: (added, changed, removed) as the test set them in `changed_sections`."""
        self.note("reload_config", "")
        return [], sorted(self.__dict__.get("changed_sections", ())), []

    def remove_group(self, name: str) -> None:
        assert self._proc(name)["statename"] not in (*RUNNING_STATES, "STOPPING"), f"{name} still running"
        self.note("remove_group", name)

    def add_group(self, name: str) -> None:
        self.procs[name].update(statename="STOPPED", pid=0, exitstatus=0)
        self.note("add_group", name)

    def _stopped(self, name: str) -> None:
        self.procs[name].update(statename="STOPPED", pid=0, exitstatus=0)
        self.note("stopped", name)

    def state(self) -> str:
        return self.supervisord_state

    def pid(self) -> int:
        return self.supervisord_pid

    # -- what tests do to the processes ---------------------------------------------------------
    def crash(self, name: str, exitstatus: int) -> None:
        """The program exits by itself: RUNNING -> EXITED (autorestart=false, so it stays there)."""
        proc = self._proc(name)
        assert proc["statename"] == "RUNNING", f"{name} is {proc['statename']}, cannot crash"
        proc.update(statename="EXITED", pid=0, exitstatus=exitstatus)
        self.note("exit", name, exitstatus)

    def kill(self, pid: int) -> None:
        """PodRunner's killer: SIGKILL -> EXITED with exitstatus -1, as supervisord decodes a signal."""
        self.note("kill", "", pid)
        for name, proc in self.procs.items():
            if proc["pid"] == pid and proc["statename"] == "RUNNING":
                proc.update(statename="EXITED", pid=0, exitstatus=-1)
                self.note("exit", name, -1)

    def operator_stop(self, name: str) -> None:
        """`supervisorctl stop NAME`: not a controller call, so logged apart from `stop`."""
        proc = self._proc(name)
        assert proc["statename"] == "RUNNING"
        proc.update(statename="STOPPED", pid=0, exitstatus=0)
        self.note("operator-stop", name)

    # -- reading it back ---------------------------------------------------------------------------
    def note(self, kind: str, name: str, detail: Any = None) -> None:
        self.log.append(Entry(next(self._seq), self.clock(), kind, name, detail))

    def calls(self, kind: str, name: str | None = None) -> list[Entry]:
        return [e for e in self.log if e.kind == kind and (name is None or e.name == name)]

    def spawns(self, name: str) -> list[Entry]:
        """Start calls that spawned a new process."""
        return [e for e in self.calls("start", name) if isinstance(e.detail, int)]

    def pid_alive(self, pid: int) -> bool:
        """PodRunner's `alive`: whether one of our processes runs with that pid."""
        live = (*RUNNING_STATES, "STOPPING")
        return any(p["pid"] == pid and p["statename"] in live for p in self.procs.values())

    def statename(self, name: str) -> str:
        return self.procs[name]["statename"]

    def pid_of(self, name: str) -> int:
        return self.procs[name]["pid"]

    def _proc(self, name: str) -> dict[str, Any]:
        if name not in self.procs:
            raise xmlrpc.client.Fault(10, f"BAD_NAME: {name}")
        return self.procs[name]


class FakeProber:
    """Answers probes per (path or kind, port); a port whose program is not running refuses."""

    def __init__(self, sup: FakeSupervisor, ports: dict[int, str]):
        self.sup = sup
        self.ports = ports
        self.answers: dict[tuple[str, int], bool] = {}
        self.scripts: dict[tuple[str, int], list[bool]] = {}

    def answer(self, target: str, port: int, ok: bool) -> None:
        """From now on, answer `ok` (after any scripted answers)."""
        self.answers[(target, port)] = ok

    def script(self, target: str, port: int, *oks: bool) -> None:
        """The next answers, in order; then the standing answer."""
        self.scripts.setdefault((target, port), []).extend(oks)

    def asked(self, target: str, port: int) -> int:
        return len([e for e in self.sup.calls("probe") if e.name == f"{target}@{port}"])

    def __call__(self, probe: Probe, host: str, port: int) -> probes.Result:
        port = probe.port or port
        target = probe.http_get or probe.kind
        program = self.ports.get(port)
        if program is not None and self.sup.statename(program) not in RUNNING_STATES:
            result = probes.Result(False, f"{target} on {port}: ConnectionRefusedError")
        else:
            queued = self.scripts.get((target, port))
            ok = queued.pop(0) if queued else self.answers.get((target, port), True)
            result = probes.Result(ok, f"{target} on {port}: {200 if ok else 503}")
        self.sup.note("probe", f"{target}@{port}", result.ok)
        return result


class FakeReaper:
    """PodRunner's reaper: logs each call; `left[name]` are the pids it reports killing (once)."""

    def __init__(self, sup: FakeSupervisor):
        self.sup = sup
        self.left: dict[str, list[int]] = {}

    def __call__(self, program: str) -> list[int]:
        killed = self.left.pop(program, [])
        self.sup.note("reap", program, killed)
        return killed


class FakeMemory:
    """Resident bytes by pid, as the test sets them (0 for a pid it never set)."""

    def __init__(self) -> None:
        self.rss: dict[int, int] = {}

    def __call__(self, pid: int) -> int:
        return self.rss.get(pid, 0)


# Deterministic delays for pod tests: 1, 2, 4, 8, 8 ... seconds, no jitter.
BACKOFF = Backoff(initial_seconds=1.0, max_seconds=8.0, multiplier=2.0, jitter=0.0, reset_after_seconds=30.0)


def make_pod(name: str = "user", port: int = 3000, **overrides: Any) -> Pod:
    """A pod whose app listens on `port`, metrics on port+1, logger on port+2; it binds its own
    socket unless `socket="held"` (then its slots' own ports are port+3, port+4, ...)."""
    values: dict[str, Any] = dict(name=name, service=f"{name}-service", command=f"podvisor-{name}", port=port,
                                  metrics_port=port + 1, logger_port=port + 2, grace_seconds=5.0,
                                  backoff=BACKOFF, socket="app")
    if overrides.get("socket") == "held" and "slot_ports" not in overrides:
        slots = overrides.get("replicas", 1) + 1
        overrides["slot_ports"] = tuple(port + 3 + i for i in range(slots))
    values.update(overrides)
    return Pod(**values)


@dataclass
class Rig:
    """Runners for some pods wired to one fake supervisord and fake clocks."""

    clock: FakeClock
    wall: FakeClock
    sup: FakeSupervisor
    prober: FakeProber
    memory: FakeMemory
    reaper: FakeReaper
    runners: dict[str, PodRunner] = field(default_factory=dict)

    @property
    def runner(self) -> PodRunner:
        (only,) = self.runners.values()
        return only

    @property
    def shipping(self) -> dict[int, dict[str, Any]]:
        """What each logger port answers on /health (set a pod's logger port to fake a stall)."""
        return self.__dict__.setdefault("_shipping", {})

    def tick(self, times: int = 1) -> None:
        for _ in range(times):
            for runner in self.runners.values():
                runner.tick()

    def snapshot(self, pod: str | None = None) -> dict[str, Any]:
        return (self.runners[pod] if pod else self.runner).snapshot()

    def start_pod(self) -> None:
        """Tick until every pod's app is RUNNING (sidecars first, then the app: two ticks)."""
        self.tick(2)
        for runner in self.runners.values():
            assert self.sup.statename(runner.programs["app"]) == "RUNNING", runner.snapshot()


def rig(*pods: Pod) -> Rig:
    pods = pods or (make_pod(),)
    clock, wall = FakeClock(1000.0), FakeClock(1_700_000_000.0)
    names = [program for pod in pods for program in (*pod.programs.values(), *pod.app_programs[1:])]
    sup = FakeSupervisor(names, clock)
    ports = {}
    for pod in pods:
        ports.update({pod.port: pod.programs["app"], pod.metrics_port: pod.programs["metrics"],
                      pod.logger_port: pod.programs["logger"]})
        ports.update(zip(pod.slot_ports, pod.app_programs, strict=False))
    prober, memory, reaper = FakeProber(sup, ports), FakeMemory(), FakeReaper(sup)
    result = Rig(clock, wall, sup, prober, memory, reaper)
    for pod in pods:
        # pause moves the fake clock: a wait for a stop is bounded by its deadline, never by real time
        result.runners[pod.name] = PodRunner(
            pod, "127.0.0.1", sup, clock=clock, wall=wall, prober=prober, memory=memory, killer=sup.kill,
            reaper=reaper, alive=sup.pid_alive, pause=clock.advance,
            waiting_for=lambda pod=pod: [d for d in pod.depends_on if not result.runners[d].is_ready()],
            shipping=lambda host, port: result.shipping.get(port))
    return result
