"""podctl describe POD: one pod in detail, like `kubectl describe pod`.

Rendered from the controller's pod JSON alone. Fields a controller does not report (an older one
has no `events`, `conditions`, `ports` or `depends_on`) are left out or marked, never guessed.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from podvisor.supervisord.podctl.output import age, app_slots, ports, reason

SIDECAR_ORDER = ("logger", "metrics")


SOCKETS = {
    "held": "held by podvisor (the app inherits it: LISTEN_FDS, or NGINX for nginx): "
            "connections wait while the app restarts",
    "app": "bound by the app itself: while it restarts, connections are refused",
}


def _field(label: str, value: object, indent: int = 0) -> str:
    return f"{' ' * indent}{label + ':':<{16 - indent}}{value}\n"


def _columns(rows: Sequence[Sequence[str]], indent: int) -> str:
    sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(" " * indent + "  ".join(c.ljust(w) for c, w in zip(r, sizes, strict=True)).rstrip() + "\n"
                   for r in rows)


def _seconds(value: object) -> str:
    return f"{round(value, 2):g}s" if isinstance(value, int | float) else "-"


def _since(epoch: object, now: float) -> str:
    return age(now - epoch) if isinstance(epoch, int | float) else "-"


def _restarts(pod: dict) -> str:
    text = str(pod.get("restarts", 0))
    sidecars = {role: n for role, n in (pod.get("sidecar_restarts") or {}).items() if n}
    if sidecars:
        text += " (sidecars: " + ", ".join(f"{role} {n}" for role, n in sorted(sidecars.items())) + ")"
    return text


def _backoff(state: dict) -> str | None:
    wait, delay = state.get("restart_in_seconds"), state.get("restart_delay_seconds")
    if wait is None and delay is None:
        return None
    if wait is not None:
        return f"restarting in {_seconds(wait)} (delay {_seconds(delay)})"
    return f"last delay {_seconds(delay)}"


def container(role: str, state: dict, pod_ports: dict, title: str = "") -> str:
    out = f"  {role}:{' ' + title if title else ''}\n"
    out += _field("Program", state.get("program") or "-", 4)
    out += _field("State", state.get("state") or "-", 4)
    out += _field("Ready", state.get("ready", "-"), 4)
    out += _field("PID", state.get("pid") or "-", 4)
    out += _field("Port", state.get("port") or pod_ports.get(role.split("-")[0]) or "-", 4)
    if state.get("own_port"):
        out += _field("Own port", f"{state['own_port']} (its probes and scrapes)", 4)
    out += _field("Command", state.get("command") or "-", 4)
    out += _field("Restarts", state.get("restarts", 0), 4)
    if state.get("last_reason"):
        code = state.get("last_exit_code")
        out += _field("Last state", state["last_reason"] + (f" (exit code {code})" if code is not None else ""), 4)
    backoff = _backoff(state)
    if backoff:
        out += _field("Backoff", backoff, 4)
    probes = state.get("probes") or {}
    if probes:
        out += "    Probes:\n"
        rows = [(kind, "passing" if p.get("passing") else "failing", p.get("last") or "-")
                for kind, p in sorted(probes.items())]
        out += _columns(rows, 6)
    return out


def events(items: Iterable[dict], now: float) -> str:
    rows = [("AGE", "TIME", "TYPE", "REASON", "CONTAINER", "MESSAGE")]
    for event in items:
        moment = event.get("time")
        clock = time.strftime("%H:%M:%S", time.localtime(moment)) if isinstance(moment, int | float) else "-"
        rows.append((_since(moment, now), clock, str(event.get("type") or "-"), str(event.get("reason") or "-"),
                     str(event.get("container") or "-"), str(event.get("message") or "")))
    return _columns(rows, 2) if len(rows) > 1 else "  <none>\n"


def conditions(items: Iterable[dict], now: float) -> str:
    rows = [("TYPE", "STATUS", "SINCE", "REASON", "MESSAGE")]
    for c in items:
        rows.append((str(c.get("type") or "-"), str(bool(c.get("status"))), _since(c.get("since"), now),
                     str(c.get("reason") or "-"), str(c.get("message") or "")))
    return _columns(rows, 2)


def describe(pod: dict, now: float | None = None) -> str:
    """The text of `podctl describe` for one pod of the controller's GET /pods."""
    now = time.time() if now is None else now
    out = _field("Name", pod["pod"])
    out += _field("Service", pod.get("service") or "-")
    out += _field("Status", pod.get("status") or "-")
    out += _field("Phase", f"{pod.get('phase') or '-'} (desired: {pod.get('desired') or '-'})")
    out += _field("Ready", f"{bool(pod.get('ready'))} ({pod.get('containers_ready', '-')}/"
                           f"{pod.get('containers', '-')} containers)")
    out += _field("Restarts", _restarts(pod))
    if "age_seconds" in pod:
        out += _field("Age", age(pod["age_seconds"]))
    if reason(pod):
        out += _field("Last reason", reason(pod))
    if pod.get("held_by_operator"):
        out += _field("Held", ", ".join(pod["held_by_operator"]) + " (stopped outside podvisor)")
    if "replicas" in pod:
        out += _field("Replicas", f"{pod['replicas']} wanted, {pod.get('ready_replicas', 0)} ready "
                                  f"(Ready needs {pod.get('min_ready', 1)})")
    if "socket" in pod:
        out += _field("Socket", SOCKETS.get(pod["socket"], pod["socket"]))
    if pod.get("rollout"):
        out += _field("Rollout", f"{pod['rollout']['replaced']} replaced, {pod['rollout']['remaining']} to go")
    if "depends_on" in pod:
        out += _field("Depends on", ", ".join(pod["depends_on"]) or "<none>")
    pod_ports = ports(pod)
    if any(pod_ports.values()):
        out += _field("Ports", ", ".join(f"{role} {port}" for role, port in pod_ports.items() if port))
    if "conditions" in pod:
        out += "Conditions:\n" + (conditions(pod["conditions"], now) if pod["conditions"] else "  <none>\n")
    states = pod.get("container_states")
    out += "Containers:\n"
    if isinstance(states, dict) and states:
        slots = app_slots(pod)
        for slot, (role, state) in enumerate(slots):
            title = "" if len(slots) == 1 else f"(replica {slot}{'' if state.get('active', True) else ', spare'})"
            out += container(role, state, pod_ports, title)
        for role in [r for r in SIDECAR_ORDER if r in states]:
            out += container(role, states[role] or {}, pod_ports)
    else:
        out += "  <not reported by the controller>\n"
    out += "Events:\n"
    out += events(pod["events"], now) if "events" in pod else "  <not reported by the controller>\n"
    return out
