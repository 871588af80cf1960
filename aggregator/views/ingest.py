"""POST /logs and /api/v1/ingest: bounded body reading, gzip, JSON, then validation and the store."""
from __future__ import annotations

import logging
import time
import zlib
from typing import BinaryIO

from flask import Blueprint, Request, Response, jsonify, request

from podvisor.aggregator.credentials import LoggerIdentity
from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.state import get_state
from podvisor.aggregator.store.base import InsertResult, LogStore, StoreUnavailable
from podvisor.aggregator.validation import Batch, validate, validate_raw
from podvisor.core.jsonsafe import Entries, JsonError, decode_entries

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


def parse_entries(raw: bytes) -> Entries:
    """The body's entries, each read on its own (podvisor.core.jsonsafe: one entry too deep is that
    entry's rejection); 400 when the body itself is not JSON or not an object or a list."""
    try:
        entries = decode_entries(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"malformed JSON: body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except JsonError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not entries.is_array and not isinstance(entries.values[0], dict | JsonError):
        raise ApiError(400, "body must be a JSON object or a list of objects")
    return entries


def to_rows(raw: bytes, max_entry_bytes: int, scope: LoggerIdentity | None) -> Batch:
    """The body's entries as rows and refusals: msgspec's fast path (entries stored as received),
    or, for a body it does not take, jsonsafe and validate() (400 for a body that is not JSON)."""
    now_ms = int(time.time() * 1000)
    batch = validate_raw(raw, max_entry_bytes, now_ms, scope)
    if batch is None:
        entries = parse_entries(raw)
        batch = validate(entries.values, max_entry_bytes, now_ms, exact=entries.exact, scope=scope)
    return batch


def store_rows(store: LogStore, batch: Batch) -> InsertResult:
    """Insert the batch's rows; when that raises anything but StoreUnavailable (a bug, a row the
    database refuses), insert them one by one so only the culprit is refused. An unavailable
    store is the client's 503 (retry later), whichever ingest API it came through."""
    try:
        return _insert_or_split(store, batch)
    except StoreUnavailable as exc:
        raise ApiError(503, f"store unavailable: {exc}", {"Retry-After": "1"}) from None


def _insert_or_split(store: LogStore, batch: Batch) -> InsertResult:
    try:
        return store.insert(batch.rows)
    except StoreUnavailable:
        raise
    except Exception:  # noqa: BLE001 - refused per entry below, with the reason
        logger.exception("batch insert failed; inserting its %d rows one by one", len(batch.rows))
    stored = duplicates = 0
    rows, batch.rows = batch.rows, []
    for row, index in zip(rows, batch.row_indexes(), strict=True):
        try:
            result = store.insert([row])
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001
            batch.failures += 1
            reason = f"not stored: {type(exc).__name__}: {exc}"[:300]
            batch.errors.append({"index": index, "id": row[0], "error": reason})
            continue
        batch.rows.append(row)
        stored += result.stored
        duplicates += result.duplicates
    batch.errors.sort(key=lambda error: error["index"])
    return InsertResult(stored, duplicates)


@bp.post("/logs")
@bp.post("/api/v1/ingest")
def ingest() -> Response:
    """LogStore one entry or a list; 202 with received/stored/duplicates/rejected/errors."""
    state = get_state()
    metrics = state.metrics
    started = time.perf_counter()
    try:
        principal = state.auth.check(request, required=True, logger_ok=True)
        if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
            raise ApiError(415, "Content-Type must be application/json")
        batch = to_rows(read_body(request, state.settings.max_body_bytes), state.settings.max_entry_bytes,
                        principal.logger if principal else None)
        result = store_rows(state.store, batch)
    except ApiError as exc:
        metrics.ingest_requests.labels(str(exc.status)).inc()
        raise
    metrics.count_ingest(202, received=batch.received, stored=result.stored, duplicates=result.duplicates,
                         rejected=len(batch.errors), failed=batch.failures, started=started)
    if batch.errors:
        first = batch.errors[0]
        logger.warning("rejected %d of %d entries; first: index %d: %s", len(batch.errors),
                       batch.received, first["index"], first["error"])
    response = jsonify(ok=True, received=batch.received, stored=result.stored,
                       duplicates=result.duplicates, rejected=len(batch.errors), errors=batch.errors)
    response.status_code = 202
    return response
