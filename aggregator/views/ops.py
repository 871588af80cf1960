"""/health and /metrics: open to probes and scrapers (no log content, no token)."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from podvisor.aggregator.errors import error_response
from podvisor.aggregator.state import get_state

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health() -> Response:
    """200 when the store reads and writes, 503 with the reason otherwise."""
    state = get_state()
    problem = state.store.health()
    if problem is not None or state.stopping.is_set():
        return error_response(503, f"store unavailable: {problem or 'shutting down'}")
    store = state.store
    return jsonify(ok=True, status="ok", entries=store.entry_count, latest_id=store.last_seq,
                   db_size_bytes=store.size_bytes(), write_queue_depth=store.queue_depth())


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of this app's own registry."""
    return Response(generate_latest(get_state().metrics.registry), mimetype=CONTENT_TYPE_LATEST)
