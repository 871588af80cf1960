"""What podctl prints: kubectl-style tables and log lines."""
from __future__ import annotations


def age(seconds: float) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def reason(pod: dict) -> str:
    """The app's last reason, else the latest sidecar's (`logger: Error: exit code 1`), else nothing."""
    if pod.get("last_reason"):
        return pod["last_reason"]
    for role, why in sorted((pod.get("sidecar_last_reason") or {}).items()):
        if why:
            return f"{role}: {why}"
    return ""


def table(pods: list[dict]) -> str:
    """`kubectl get pods` style; RESTARTS counts the app's restarts (sidecars' in brackets when any)."""
    rows = [("POD", "READY", "STATUS", "RESTARTS", "AGE", "LAST REASON")]
    for p in pods:
        restarts = str(p["restarts"])
        sidecars = sum((p.get("sidecar_restarts") or {}).values())
        if sidecars:
            restarts += f" (+{sidecars} sidecar)"
        rows.append((p["pod"], f'{p["containers_ready"]}/{p["containers"]}', p["status"], restarts,
                     age(p["age_seconds"]), reason(p)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return "".join(line + "\n" for line in lines)


def format_entry(entry: dict) -> str:
    level = str(entry.get("level", "-")).upper()
    return f'{entry.get("timestamp", "-")} {level:5} [{entry.get("pod", "-")}] {entry.get("message", "")}\n'


