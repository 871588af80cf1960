"""GET /api/v1/pods: each pod's status (from the controller) and its recent request figures;
POST /api/v1/pods/POD/ACTION: start, stop or restart a pod (podactions.py)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from podvisor.aggregator.state import get_state
from podvisor.aggregator.views.access import require_read

bp = Blueprint("pods", __name__)


@bp.get("/api/v1/pods")
@require_read
def pods() -> Response:
    """The pods overview's data: status, replicas, ports, age, restarts, request rate, error ratio,
    p95 and history, and each pod's last action (`last_op`)."""
    return jsonify(get_state().pods.snapshot())


@bp.post("/api/v1/pods/<pod>/<action>")
def pod_action(pod: str, action: str) -> tuple[Response, int]:
    """Send the action; 202 {"ok": true, "pod", "action", "op_id"} once the controller has it. It
    always needs the token or a session (whatever AGGREGATOR_READ_AUTH says of reads): a session
    with its X-CSRF-Token header, and from a browser, from this origin (security.py)."""
    state = get_state()
    state.auth.check(request, required=True)
    op_id = state.actions.send(action, pod, state.pods.pod_names())
    state.pods.watch(pod, op_id, action)
    return jsonify(ok=True, pod=pod, action=action, op_id=op_id), 202
