"""The Elasticsearch `_bulk` format as an ingest format: NDJSON action and document pairs become
store rows, and the answer is the shape bulk clients check (`errors`, one item per action with its
`status`, and `error.type`/`error.reason` for an item refused).

Supported actions: `index` and `create` (a document follows each). `update` and `delete` are refused
per item (the store is append-only); an `update`'s document line is skipped with it. A document
becomes an entry: `message` is the document's `message`, else its `msg` (rsyslog) or `log` (Fluent
Bit), `timestamp` its `timestamp` or `@timestamp`, `id` the action's `_id` (so a shipper that sets
one re-delivers idempotently) or a new one. Everything else of the document is kept as it is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from podvisor.aggregator.credentials import LoggerIdentity
from podvisor.aggregator.store.base import Row
from podvisor.aggregator.timestamps import ms_to_iso
from podvisor.aggregator.validation import MAX_ID_CHARS, entry_row, ts_ms
from podvisor.core.jsonsafe import MAX_DEPTH, JsonError, decode, loads_exact

ACTIONS = ("index", "create", "update", "delete")
MESSAGE_FIELDS = ("message", "msg", "log")
_decode_any = msgspec.json.decode
_UNSET = msgspec.UNSET


class _Document(msgspec.Struct):
    """The fields of a document the store indexes or this endpoint sets (the rest skipped in C)."""

    message: Any = _UNSET
    timestamp: Any = _UNSET
    level: Any = None
    request_id: Any = None
    id: Any = _UNSET
    pod: Any = _UNSET
    service_name: Any = _UNSET


_document = msgspec.json.Decoder(_Document).decode


class BulkError(ValueError):
    """The body is not a bulk request at all (the whole request's 400)."""


@dataclass
class BulkBatch:
    """Rows to store, and per action: (op, index name, id, refusal reason or None)."""

    rows: list[Row] = field(default_factory=list)
    actions: list[tuple[str, str, str | None, str | None]] = field(default_factory=list)
    refused: int = 0


def parse(body: bytes, default_index: str | None, max_entry_bytes: int, now_ms: int,
          scope: LoggerIdentity | None) -> BulkBatch:
    """Read a `_bulk` body; raises BulkError when an action line is not an action."""
    out = BulkBatch()
    lines = [line for line in body.split(b"\n") if line.strip()]
    now_iso = ms_to_iso(now_ms)
    # What the common case appends to a document's text after its id: the credential's fields.
    suffix = b"}" if scope is None else b"," + msgspec.json.encode(
        {"pod": scope.pod, "service_name": scope.service})[1:]
    at = 0
    while at < len(lines):
        op, meta = _action(lines[at], at)
        at += 1
        index = meta.get("_index") if type(meta.get("_index")) is str else default_index or ""
        given_id = meta.get("_id")
        eid = given_id if type(given_id) is str and given_id else None
        if op == "delete":
            out.actions.append((op, index, eid, "this store is append-only: delete is not supported"))
            continue
        if at >= len(lines):
            raise BulkError(f"the {op} action on line {at} has no document line after it")
        document = lines[at]
        at += 1
        if op == "update":
            out.actions.append((op, index, eid, "this store is append-only: update is not supported"))
            continue
        outcome = (_stored_as_received(document, eid, suffix, max_entry_bytes, scope)
                   or _entry_row(document, eid, max_entry_bytes, now_ms, now_iso, scope))
        if type(outcome) is tuple:
            out.rows.append(outcome)
            out.actions.append((op, index, outcome[0], None))
        else:
            out.actions.append((op, index, eid, outcome))
    out.refused = sum(1 for action in out.actions if action[3] is not None)
    return out


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    try:
        action = _decode_any(line)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BulkError(f"line {number + 1} is not a JSON action: {exc}") from None
    if type(action) is not dict or len(action) != 1:
        raise BulkError(f"line {number + 1} must be one action object such as {{\"index\": {{}}}}")
    op, meta = next(iter(action.items()))
    if op not in ACTIONS or type(meta) is not dict:
        raise BulkError(f"line {number + 1}: unknown action {str(op)[:40]!r} (expected index, create, "
                        "update or delete, each with an object)")
    return op, meta


def _entry_row(document: bytes, eid: str | None, max_bytes: int, now_ms: int, now_iso: str,
               scope: LoggerIdentity | None) -> Row | str:
    """The row of one document, or why it is refused."""
    try:
        entry = _decode_any(document)
    except (msgspec.DecodeError, RecursionError):
        try:  # what msgspec refuses (NaN, 1e400, a lone surrogate) jsonsafe may still read
            entry = decode(document.decode("utf-8"))[0]
        except (JsonError, UnicodeDecodeError) as exc:
            return f"document is not JSON: {exc}"
    if type(entry) is not dict:
        return "document must be a JSON object"
    if eid is not None and len(eid) > MAX_ID_CHARS:
        return f"_id is {len(eid)} characters, over the limit of {MAX_ID_CHARS}"
    return entry_row(_as_entry(entry, eid, scope), max_bytes, now_ms, now_iso, scope,
                     lambda: _as_entry(loads_exact(document.decode("utf-8")), eid, scope))


def _stored_as_received(document: bytes, eid: str | None, suffix: bytes, max_bytes: int,
                        scope: LoggerIdentity | None) -> Row | None:
    """The common case without building a dict: a flat-enough document with a string message and
    timestamp and none of the fields this endpoint sets is stored as its own text with them
    appended (the action's `_id`, the credential's pod and service). None for any other document:
    _entry_row() rebuilds it (and says what is wrong, if anything)."""
    if eid is None or len(eid) > MAX_ID_CHARS or document[-1:] != b"}" or b"\r" in document:
        return None
    if scope is not None and not eid.startswith(scope.pod + ":"):
        return None  # refused by the general path, with the reason
    if document.count(b"{") + document.count(b"[") > MAX_DEPTH:
        return None
    try:
        doc = _document(document)
        stamp, message, level, request_id = doc.timestamp, doc.message, doc.level, doc.request_id
        if (type(message) is not str or type(stamp) is not str or not stamp or doc.id is not _UNSET
                or doc.pod is not _UNSET or doc.service_name is not _UNSET
                or (level is not None and type(level) is not str)
                or (request_id is not None and type(request_id) is not str)):
            return None
        raw = document[:-1] + b',"id":' + msgspec.json.encode(eid) + suffix
        text = raw.decode()
        ts = ts_ms(stamp)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError):
        return None
    size = len(raw)
    if size > max_bytes or (3 * size > max_bytes and not text.isascii()):
        return None  # near the limit, where the escaped size decides: the general path measures it
    pod, service = (scope.pod, scope.service) if scope is not None else (None, None)
    return (eid, ts, service, pod, level.lower() if level else None, request_id, message, text)


def _as_entry(entry: dict[str, Any], eid: str | None, scope: LoggerIdentity | None) -> dict[str, Any]:
    """A document's fields under the names of the wire format (see the module docstring)."""
    if type(entry.get("message")) is not str:
        for name in MESSAGE_FIELDS[1:]:
            if type(entry.get(name)) is str:
                if "message" in entry:
                    entry["app_message"] = entry["message"]
                entry["message"] = entry.pop(name)
                break
    if "timestamp" not in entry and "@timestamp" in entry:
        entry["timestamp"] = entry.pop("@timestamp")
    if eid is not None:
        if entry.get("id") not in (None, eid):
            entry["app_id"] = entry["id"]
        entry["id"] = eid
    elif "id" in entry:
        own = entry["id"]
        if type(own) is not str or not own or (scope is not None and not own.startswith(scope.pod + ":")):
            entry["app_id"] = entry.pop("id")  # a field of the document, not a delivery id
    return entry


def answer(batch: BulkBatch, took_ms: int) -> bytes:
    """The `_bulk` response body: errors flag and one item per action, in order."""
    items = []
    for op, index, eid, refusal in batch.actions:
        if refusal is None:
            items.append({op: {"_index": index, "_id": eid, "_version": 1, "result": "created",
                               "status": 201, "_shards": {"total": 1, "successful": 1, "failed": 0},
                               "_seq_no": 0, "_primary_term": 1}})
        else:
            kind = ("action_request_validation_exception" if op in ("update", "delete")
                    else "document_parsing_exception")
            items.append({op: {"_index": index, "_id": eid, "status": 400,
                               "error": {"type": kind, "reason": refusal}}})
    return msgspec.json.encode({"took": took_ms, "errors": batch.refused > 0, "items": items})
