"""Pod status over HTTP on loopback: read-only JSON and the pod series.

State-changing requests do not come this way: they arrive as REMOTE_COMMUNICATION events through
supervisord's owner-only unix socket, so whoever may control supervisord may control pods.

    GET /pods          {"ok": true, "pods": [...], "apply": {...}}   every pod's snapshot (podctl status
                       --json) and the latest `podctl apply`
    GET /pods/NAME     one pod's snapshot; 404 for an unknown pod
    GET /ready         200 when every pod that should serve is Ready, else 503
    GET /metrics       the pod series (podseries.py)
    GET /health        200 while the controller runs
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podvisor.core.httpapi import ReadOnlyApp, Reply, error_reply, json_reply, text_reply
from podvisor.supervisord.controller import podseries
from podvisor.supervisord.controller.states import QUIET


def expected_ready(pod: dict) -> bool:
    """Whether a pod counts for "every pod Ready": not one stopped on purpose (podctl stop, or an
    operator's `supervisorctl stop` of one of its programs), nor one that completed. A Failed pod
    counts: it should be serving and is not."""
    return pod["phase"] not in QUIET and not pod.get("held_by_operator")


def status_app(pods: Callable[[], list[dict[str, Any]]], environment: str,
               last_apply: Callable[[], dict[str, Any] | None] = lambda: None) -> ReadOnlyApp:
    """The WSGI app of the controller's status port; `last_apply` is the latest `podctl apply`."""

    def one(name: str, _environ: dict) -> Reply:
        match = [p for p in pods() if p["pod"] == name]
        return json_reply(200, match[0]) if match else error_reply(404, f"no pod named {name!r}")

    def ready(_environ: dict) -> Reply:
        ok = all(p["ready"] for p in pods() if expected_ready(p))
        return json_reply(200 if ok else 503, {"ready": ok})

    return ReadOnlyApp("the podvisor controller", {
        "/pods": lambda _e: json_reply(200, {"ok": True, "pods": pods(), "apply": last_apply()}),
        "/ready": ready,
        "/metrics": lambda _e: text_reply(200, podseries.render(pods(), environment), podseries.CONTENT_TYPE),
        "/health": lambda _e: json_reply(200, {"ok": True, "status": "healthy"}),
    }, {"/pods/": one})
