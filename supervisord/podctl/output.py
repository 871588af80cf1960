"""What podctl prints: kubectl-style tables, log lines with a coloured pod prefix."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

ROLES = ("app", "metrics", "logger")  # the order of the wide columns: the app, then its sidecars
# docker compose's order: neighbours differ in hue, and none is red (which reads as an error).
PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
RESET = "\x1b[0m"


def age(seconds: float) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def reason(pod: dict) -> str:
    """The app's last reason, else the latest sidecar's (`logger: Error: exit code 1`), else nothing."""
    if pod.get("last_reason"):
        return pod["last_reason"]
    for role, why in sorted((pod.get("sidecar_last_reason") or {}).items()):
        if why:
            return f"{role}: {why}"
    return ""


def ports(pod: dict) -> dict[str, int | None]:
    """The pod's ports by role: `ports`, else each container's `port` (missing ones are None)."""
    given = pod.get("ports") or {}
    states = pod.get("container_states") or {}
    return {role: given.get(role) or (states.get(role) or {}).get("port") for role in ROLES}


def ready_condition(pod: dict) -> str:
    """`Ready=True`, or `Ready=False:<reason>` from the Ready condition; from `ready` without one."""
    for condition in pod.get("conditions") or ():
        if condition.get("type") == "Ready":
            text = f"Ready={bool(condition.get('status'))}"
            return text + (f":{condition['reason']}" if condition.get("reason") and not condition["status"] else "")
    return f"Ready={bool(pod.get('ready'))}"


HEADER = ("POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE")
WIDE = ("PORTS", "PIDS", "CONDITION")  # ports and pids as app/metrics/logger (each running replica's pid)


def app_slots(pod: dict) -> list[tuple[str, dict]]:
    """The app's slots as (role, state): `app`, `app-1`, ... in slot order (the spare one too)."""
    states = pod.get("container_states") or {}
    slots = [(role, state or {}) for role, state in states.items() if role == "app" or role.startswith("app-")]
    return sorted(slots, key=lambda item: int(item[0][4:] or 0) if item[0] != "app" else 0)


def replicas(pod: dict) -> str:
    """`ready/wanted` replicas, like a Deployment's READY (`-` from a controller without replicas)."""
    if "replicas" not in pod:
        return "-"
    return f'{pod.get("ready_replicas", 0)}/{pod["replicas"]}'


def _pids(pod: dict) -> str:
    states = pod.get("container_states") or {}
    apps = ",".join(str(s["pid"]) for _role, s in app_slots(pod) if s.get("pid")) or "-"
    return "/".join([apps, *(str((states.get(r) or {}).get("pid") or "-") for r in ROLES[1:])])


def row(pod: dict, wide: bool = False) -> tuple[str, ...]:
    restarts = str(pod["restarts"])
    sidecars = sum((pod.get("sidecar_restarts") or {}).values())
    if sidecars:
        restarts += f" (+{sidecars} sidecar)"
    cells = [pod["pod"], f'{pod["containers_ready"]}/{pod["containers"]}', replicas(pod), pod["status"], restarts,
             age(pod["age_seconds"])]
    if wide:
        cells += ["/".join(str(p or "-") for p in ports(pod).values()), _pids(pod), ready_condition(pod)]
    return (*cells, reason(pod))


def header(wide: bool = False) -> tuple[str, ...]:
    return (*HEADER, *(WIDE if wide else ()), "LAST REASON")


def widths(rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]


def line(cells: Sequence[str], sizes: Sequence[int]) -> str:
    return "   ".join(c.ljust(w) for c, w in zip(cells, sizes, strict=True)).rstrip() + "\n"


def table(pods: list[dict], wide: bool = False) -> str:
    """`kubectl get pods` style; RESTARTS counts the app's restarts (sidecars' in brackets when any)."""
    rows = [header(wide), *(row(p, wide) for p in pods)]
    sizes = widths(rows)
    return "".join(line(r, sizes) for r in rows)


def use_colour(stream: TextIO, no_color: bool) -> bool:
    """ANSI colours only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    try:
        return not no_color and stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


class LinePrinter:
    """Log entries as `pod | timestamp LEVEL message`, the pod in its own colour on a terminal.

    Each pod keeps its colour for the life of the stack: colours follow the order of the stack's pods,
    not the order lines arrive in."""

    def __init__(self, out: TextIO, pods: Sequence[str], colour: bool):
        self.out = out
        self.colour = colour
        self.width = max((len(p) for p in pods), default=0)
        self.colours = {pod: PALETTE[i % len(PALETTE)] for i, pod in enumerate(sorted(pods))}

    def prefix(self, entry: dict) -> str:
        name = str(entry.get("pod") or entry.get("service_name") or "-")
        text = name.ljust(self.width)
        code = self.colours.get(name)
        return f"\x1b[{code}m{text}{RESET}" if self.colour and code else text

    def format(self, entry: dict) -> str:
        level = str(entry.get("level") or "-").upper()
        return f'{self.prefix(entry)} | {entry.get("timestamp", "-")} {level:<5} {entry.get("message", "")}\n'

    def write(self, entry: dict) -> None:
        self.out.write(self.format(entry))
        self.out.flush()
