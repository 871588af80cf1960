"""GET /logs (the seed system's plain array) and GET /api/v1/logs (filters, search, cursor pages)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from podvisor.aggregator.errors import ParamError
from podvisor.aggregator.query import (
    FILTER_PARAMS,
    check_known,
    parse_filters,
    parse_limit,
    parse_order,
)
from podvisor.aggregator.search import fetch
from podvisor.aggregator.state import get_state
from podvisor.aggregator.views.access import require_read

bp = Blueprint("logs", __name__)

API_PARAMS = FILTER_PARAMS | {"q", "probes", "limit", "order", "cursor"}


@bp.get("/logs")
@require_read
def legacy_logs() -> Response:
    """The most recent matching entries, oldest first, as a plain JSON array."""
    state = get_state()
    query = parse_filters(request.args, extended=False)
    limit = parse_limit(request.args)
    page = fetch(state.store, query, order="desc", after=None, limit=limit,
                 metrics=state.metrics, endpoint="logs")
    # The newest entries by arrival, then in time order: lines from several pods arrive in
    # batches, so arrival order alone can put one pod's earlier line after another's later one.
    rows = sorted(page.rows, key=_time_order)
    return Response("[" + ",".join(body for _seq, body in rows) + "]", mimetype="application/json")


def _time_order(row: tuple[int, str]) -> tuple[float, int]:
    seq, body = row
    try:
        moment = datetime.fromisoformat(json.loads(body)["timestamp"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp(), seq
    except (ValueError, KeyError, TypeError):  # validated at ingest; arrival order as a fallback
        return float("inf"), seq


@bp.get("/api/v1/logs")
@require_read
def api_logs() -> Response:
    """A page of entries: {"ok": true, "entries": [...], "next": cursor | null, "latest_id": n}.

    Pass `next` back as `cursor` for the following page. `latest_id` is the highest entry id
    stored when the page was read: give it to /api/v1/tail as `since_id` to go live without a gap.
    """
    state = get_state()
    args = request.args
    check_known(args, API_PARAMS)
    query = parse_filters(args, extended=True)
    limit = parse_limit(args)
    order = parse_order(args)
    after = None
    token = args.get("cursor", "").strip()
    if token:
        try:
            after, cursor_order = state.cursors.decode(token)
        except ValueError as exc:
            raise ParamError("cursor", str(exc)) from None
        if order is not None and order != cursor_order:
            raise ParamError("cursor", f"was issued for order={cursor_order}")
        order = cursor_order
    order = order or "desc"
    page = fetch(state.store, query, order=order, after=after, limit=limit + 1,
                 metrics=state.metrics, endpoint="api_logs")
    rows = page.rows[:limit]
    next_token = state.cursors.encode(rows[-1][0], order) if len(page.rows) > limit else None
    text = ('{"ok":true,"entries":[' + ",".join(body for _seq, body in rows) + '],"next":'
            + json.dumps(next_token) + ',"latest_id":' + str(page.latest_id) + "}")
    return Response(text, mimetype="application/json")
