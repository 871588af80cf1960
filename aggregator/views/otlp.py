"""POST /v1/logs: OTLP/HTTP logs, JSON encoding (aggregator/otlp.py), into the same store.

Auth as POST /logs: the master token, or a logger credential (its pod and service are stamped, and
the record ids are put under its pod). Answers as OTLP asks: 200 with an ExportLogsServiceResponse,
whose `partialSuccess` counts and explains the records refused; 400/401/413/415 as JSON errors;
503 (with Retry-After, which OTLP exporters honour) when the store is unavailable. Protobuf is not
spoken: 415 saying to use the JSON encoding.
"""
from __future__ import annotations

import json
import time

from flask import Blueprint, Response, jsonify, request

from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.otlp import entries
from podvisor.aggregator.state import get_state
from podvisor.aggregator.validation import validate
from podvisor.aggregator.views.ingest import read_body, store_rows

bp = Blueprint("otlp", __name__)


@bp.post("/v1/logs")
def export_logs() -> Response:
    state = get_state()
    metrics = state.metrics
    started = time.perf_counter()
    try:
        principal = state.auth.check(request, required=True, logger_ok=True)
        if request.mimetype == "application/x-protobuf":
            raise ApiError(415, "OTLP protobuf is not supported: export with the JSON encoding "
                                "(OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=http/json)")
        if request.mimetype != "application/json":
            raise ApiError(415, "Content-Type must be application/json (OTLP/HTTP JSON)")
        raw = read_body(request, state.settings.max_body_bytes)
        try:
            body = json.loads(raw.decode("utf-8"))
            records = entries(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ApiError(400, f"not an OTLP ExportLogsServiceRequest: {exc}"[:300]) from None
        scope = principal.logger if principal else None
        if scope is not None:
            for record in records:
                record["id"] = f"{scope.pod}:{record['id']}"
        batch = validate(records, state.settings.max_entry_bytes, int(time.time() * 1000), scope=scope)
        result = store_rows(state.store, batch)
    except ApiError as exc:  # an OtlpError is a ValueError: answered as a 400 above
        metrics.ingest_requests.labels(str(exc.status)).inc()
        raise
    metrics.count_ingest(200, received=batch.received, stored=result.stored, duplicates=result.duplicates,
                         rejected=len(batch.errors), failed=batch.failures, started=started)
    reply: dict = {}
    if batch.errors:
        first = batch.errors[0]
        reply["partialSuccess"] = {"rejectedLogRecords": str(len(batch.errors)),
                                   "errorMessage": f"{len(batch.errors)} log records refused; first, "
                                                   f"record {first['index']}: {first['error']}"}
    return jsonify(reply)
