"""GET /logs (the seed system's plain array) and GET /api/v1/logs (filters, search, cursor pages)."""
from __future__ import annotations

import json

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
LEGACY_PARAMS = FILTER_PARAMS | {"q", "probes", "limit", "order"}


@bp.get("/logs")
@require_read
def legacy_logs() -> Response:
    """The most recent matching entries, oldest first (`order=desc`: newest first), as a plain JSON
    array. The filters and `q` of /api/v1/logs, no cursor; an unknown parameter is a 400, as there."""
    state = get_state()
    check_known(request.args, LEGACY_PARAMS)
    query = parse_filters(request.args, extended=True)
    limit = parse_limit(request.args)
    newest_first = parse_order(request.args) == "desc"
    page = fetch(state.store, query, order="desc", after=None, limit=limit,
                 metrics=state.metrics, endpoint="logs", with_ts=True)
    # The newest entries by arrival, then in time order: lines from several pods arrive in
    # batches, so arrival order alone can put one pod's earlier line after another's later one.
    rows = sorted(page.rows, key=lambda row: (row[2], row[0]), reverse=newest_first)
    return Response("[" + ",".join(row[1] for row in rows) + "]", mimetype="application/json")


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
