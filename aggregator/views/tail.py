"""GET /api/v1/tail: matching entries as Server-Sent Events as they are committed."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator

from flask import Blueprint, Response, g, request

from podvisor.aggregator.auth import ANONYMOUS
from podvisor.aggregator.errors import ApiError, ParamError
from podvisor.aggregator.query import FILTER_PARAMS, LogQuery, check_known, parse_filters, parse_seq
from podvisor.aggregator.search import fetch
from podvisor.aggregator.state import get_state
from podvisor.aggregator.store.base import LogStore
from podvisor.aggregator.streams import TailsExhausted
from podvisor.aggregator.views.access import require_read

logger = logging.getLogger(__name__)
bp = Blueprint("tail", __name__)

TAIL_PARAMS = FILTER_PARAMS | {"q", "probes", "since_id"}
BATCH = 500
CHECK_EVERY = 1.0  # seconds a quiet stream waits before it looks whether its client is still there


def stream_events(store: LogStore, query: LogQuery, after: int, *, heartbeat: float,
                  stop: Callable[[], bool], clock: Callable[[], float] = time.monotonic
                  ) -> Iterator[str]:
    """Yield SSE text: `id: <seq>\\ndata: <entry>\\n\\n` per match after `after`, and a comment
    line when nothing was written for `heartbeat` seconds (so a dead client is noticed)."""
    yield "retry: 3000\n: connected\n\n"
    last = after
    last_write = clock()
    while not stop():
        checked = store.last_seq
        if checked > last:  # else nothing new was committed: no query
            try:
                page = fetch(store, query, order="asc", after=last, limit=BATCH)
            except ApiError as exc:
                yield "event: error\ndata: " + json.dumps({"ok": False, "error": exc.message}) + "\n\n"
                return
            if page.rows:
                last = page.rows[-1][0]
                yield "".join(f"id: {seq}\ndata: {body}\n\n" for seq, body in page.rows)
                last_write = clock()
                if len(page.rows) == BATCH:
                    continue
        # Everything committed up to `checked` has been looked at: never scan it again.
        last = max(last, checked)
        remaining = heartbeat - (clock() - last_write)
        if remaining <= 0:
            yield ": heartbeat\n\n"
            last_write = clock()
            continue
        store.wait_for_seq(last, min(remaining, CHECK_EVERY), stop)


@bp.get("/api/v1/tail")
@require_read
def tail() -> Response:
    """Live entries matching the filters (and `q`), from Last-Event-ID / since_id or from now."""
    state = get_state()
    args = request.args
    check_known(args, TAIL_PARAMS)
    query = parse_filters(args, extended=True)
    start = parse_seq(args, "since_id")
    last_event = request.headers.get("Last-Event-ID", "").strip()
    if last_event:
        if not last_event.isdigit() or len(last_event) > 19:
            raise ParamError("Last-Event-ID", "must be an entry id sent by this stream")
        start = int(last_event)  # a reconnecting EventSource: it knows better than the URL
    if start is None or start > state.store.last_seq:
        # No position, or one from a store that has since been recreated: start from now.
        start = state.store.last_seq
    if query.text is not None:
        # A search FTS5 refuses is the caller's 400 now, not an error event after the stream has
        # opened (an EventSource would reconnect to it forever). Past the last entry: costs nothing.
        fetch(state.store, query, order="asc", after=state.store.last_seq, limit=1)
    principal = g.principal
    try:
        release = state.tails.acquire(principal.client if principal is not None else ANONYMOUS)
    except TailsExhausted as exc:
        raise ApiError(429 if exc.per_client else 503, str(exc), {"Retry-After": "5"}) from None
    tails = state.tails
    stopping = state.stopping
    # waitress notices a client that went away (it reads ahead one request, serving.py) and says
    # so here: the stream ends and its slot frees within a second, not at the next heartbeat.
    gone = request.environ.get("waitress.client_disconnected", lambda: False)

    def stop() -> bool:
        return tails.closed or stopping.is_set() or gone()

    events = stream_events(state.store, query, start, heartbeat=state.settings.tail_heartbeat,
                           stop=stop)
    response = Response(events, mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    # The WSGI server calls close() even when the generator never started or the client left.
    response.call_on_close(release)
    return response
