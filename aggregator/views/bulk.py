"""POST /_bulk and /<index>/_bulk: the Elasticsearch bulk API, so rsyslog (omelasticsearch), Fluent
Bit, Vector and Filebeat can ship here. Authenticated like POST /logs (a logger's credential stamps
its pod), with the credential also taken as the basic-auth password or an ApiKey; see esbulk.py."""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request

from podvisor.aggregator import esbulk
from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.state import get_state
from podvisor.aggregator.validation import Batch
from podvisor.aggregator.views.ingest import read_body, store_rows

logger = logging.getLogger(__name__)
bp = Blueprint("bulk", __name__)


@bp.route("/_cat/health", methods=["GET", "HEAD"])
def health() -> Response:
    """What rsyslog's omelasticsearch asks (HEAD) before it sends: the aggregator answers, nothing more."""
    return Response("green\n", status=200, mimetype="text/plain")


@bp.route("/_bulk", methods=["POST", "PUT"])
@bp.route("/<index>/_bulk", methods=["POST", "PUT"])
def bulk(index: str | None = None) -> Response:
    """Store the documents of index/create actions; 200 with one item per action."""
    state = get_state()
    metrics = state.metrics
    started = time.perf_counter()
    try:
        principal = state.auth.check(request, required=True, logger_ok=True, shipper_schemes=True)
        body = read_body(request, state.settings.max_body_bytes)
        try:
            parsed = esbulk.parse(body, index, state.settings.max_entry_bytes, int(time.time() * 1000),
                                  principal.logger if principal else None)
        except esbulk.BulkError as exc:
            raise ApiError(400, f"not a bulk request: {exc}") from None
        batch = Batch(received=len(parsed.rows), rows=parsed.rows)
        result = store_rows(state.store, batch)
        if batch.errors:  # rows the database refused one by one: those items fail too
            refused = {error["id"]: error["error"] for error in batch.errors}
            parsed.actions = [(op, name, eid, refused.get(eid, reason) if reason is None else reason)
                              for op, name, eid, reason in parsed.actions]
            parsed.refused = sum(1 for action in parsed.actions if action[3] is not None)
    except ApiError as exc:
        metrics.ingest_requests.labels(str(exc.status)).inc()
        raise
    metrics.count_ingest(200, received=len(parsed.actions), stored=result.stored, duplicates=result.duplicates,
                         rejected=parsed.refused, failed=batch.failures, started=started)
    if parsed.refused:
        first = next(action for action in parsed.actions if action[3] is not None)
        logger.warning("_bulk: refused %d of %d actions; first: %s %s: %s", parsed.refused,
                       len(parsed.actions), first[0], first[2], first[3])
    took = int((time.perf_counter() - started) * 1000)
    return Response(esbulk.answer(parsed, took), status=200, mimetype="application/json")
