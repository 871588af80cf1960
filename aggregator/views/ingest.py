"""POST /logs and /api/v1/ingest: bounded body reading, gzip, JSON, then validation and the store."""
from __future__ import annotations

import json
import logging
import time
import zlib
from typing import Any, BinaryIO

from flask import Blueprint, Request, Response, jsonify, request

from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.state import get_state
from podvisor.aggregator.store.sqlite import StoreUnavailable
from podvisor.aggregator.validation import validate

logger = logging.getLogger(__name__)
bp = Blueprint("ingest", __name__)

_READ_CHUNK = 64 * 1024

def read_body(req: Request, limit: int) -> bytes:
    """The request body, decompressed when gzip; 413 over `limit` bytes (raw or decompressed)."""
    length = req.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"body of {length} bytes is over the limit of {limit} bytes")
    raw = _read_limited(req.stream, limit, "body")
    encoding = req.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return raw
    if encoding in ("gzip", "x-gzip"):
        return gunzip(raw, limit)
    raise ApiError(415, f"unsupported Content-Encoding {encoding!r} (use gzip or none)")


def _read_limited(stream: BinaryIO, limit: int, what: str) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one or more members) in bounded steps, so a gzip bomb costs at most `limit`."""
    out: list[bytes] = []
    total = 0
    try:
        while data:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            pending = data
            while True:
                chunk = inflater.decompress(pending, _READ_CHUNK)
                total += len(chunk)
                if total > limit:
                    raise ApiError(413, f"decompressed body is over the limit of {limit} bytes")
                out.append(chunk)
                pending = inflater.unconsumed_tail
                if inflater.eof or (not pending and not chunk):
                    break
            if not inflater.eof:
                raise ApiError(400, "bad gzip body: truncated")
            data = inflater.unused_data
    except zlib.error as exc:
        raise ApiError(400, f"bad gzip body: {exc}") from None
    return b"".join(out)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_entries(raw: bytes) -> list[Any]:
    """The body as a list of entries (one object becomes a list of one); 400 otherwise."""
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError) as exc:  # bad UTF-8, NaN, absurd nesting
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if isinstance(document, dict):
        return [document]
    if isinstance(document, list):
        return document
    raise ApiError(400, "body must be a JSON object or a list of objects")


@bp.post("/logs")
@bp.post("/api/v1/ingest")
def ingest() -> Response:
    """Store one entry or a list; 202 with received/stored/duplicates/rejected/errors."""
    state = get_state()
    metrics = state.metrics
    started = time.perf_counter()
    try:
        state.auth.check(request, required=True)
        if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
            raise ApiError(415, "Content-Type must be application/json")
        entries = parse_entries(read_body(request, state.settings.max_body_bytes))
        batch = validate(entries, state.settings.max_entry_bytes, int(time.time() * 1000))
        try:
            result = state.store.insert(batch.rows)
        except StoreUnavailable as exc:
            raise ApiError(503, f"store unavailable: {exc}", {"Retry-After": "1"}) from None
    except ApiError as exc:
        metrics.ingest_requests.labels(str(exc.status)).inc()
        raise
    metrics.ingest_requests.labels("202").inc()
    metrics.entries_received.inc(batch.received)
    metrics.entries_stored.inc(result.stored)
    metrics.entries_duplicate.inc(result.duplicates)
    metrics.entries_rejected.inc(len(batch.errors))
    metrics.ingest_seconds.observe(time.perf_counter() - started)
    if batch.errors:
        first = batch.errors[0]
        logger.warning("rejected %d of %d entries; first: index %d: %s", len(batch.errors),
                       batch.received, first["index"], first["error"])
    response = jsonify(ok=True, received=batch.received, stored=result.stored,
                       duplicates=result.duplicates, rejected=len(batch.errors), errors=batch.errors)
    response.status_code = 202
    return response
