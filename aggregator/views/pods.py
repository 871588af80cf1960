"""GET /api/v1/pods: each pod's status (from the controller) and its recent request figures."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify

from podvisor.aggregator.state import get_state
from podvisor.aggregator.views.access import require_read

bp = Blueprint("pods", __name__)


@bp.get("/api/v1/pods")
@require_read
def pods() -> Response:
    """The pods overview's data: status, restarts, request rate, error ratio, p95 and history."""
    return jsonify(get_state().pods.snapshot())
