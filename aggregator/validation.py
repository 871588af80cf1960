"""Per-entry validation of ingested log entries into store rows (the hot path of ingest)."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from podvisor.aggregator.credentials import LoggerIdentity
from podvisor.aggregator.store.schema import Row
from podvisor.aggregator.timestamps import ms_to_iso
from podvisor.core.jsonsafe import JsonError

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_fromisoformat = datetime.fromisoformat


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")  # cannot happen for parsed JSON


# The C encoder built once: json.dumps() builds one per call, which was a third of validation.
# ASCII output makes the body's length its byte size, and keeps a lone surrogate from a
# "\ud800" escape an escape (SQLite would refuse it as UTF-8). No cycle check: parsed JSON has none.
_encode = c_make_encoder(None, _unserialisable, encode_basestring_ascii, None, ":", ",",
                         False, False, False)


def dumps(entry: dict[str, Any]) -> str:
    """Compact ASCII JSON of one entry."""
    return "".join(_encode(entry, 0))


@dataclass
class Batch:
    """Entries of one request split into rows to store and per-index errors."""

    received: int = 0
    rows: list[Row] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0  # entries refused because handling them raised (a bug): also in `errors`

    def row_indexes(self) -> list[int]:
        """The entry index of each row (the entries not refused, in order)."""
        refused = {error["index"] for error in self.errors}
        return [index for index in range(self.received) if index not in refused]

    def refuse(self, index: int, entry: Any, reason: str) -> None:
        eid = entry.get("id") if type(entry) is dict else None
        eid = eid if type(eid) is str and len(eid) <= MAX_ID_CHARS else None
        self.errors.append({"index": index, "id": eid, "error": reason})


def validate(entries: list[Any], max_entry_bytes: int, now_ms: int,
             exact: Callable[[int], Any] | None = None, scope: LoggerIdentity | None = None) -> Batch:
    """Check each entry, fill in `id` and `timestamp` when absent, and build the rows to insert.

    `exact(i)` reads entry i again with numbers out of float range as text (jsonsafe.Entries); an
    entry whose handling raises is refused with the reason, never the batch. `scope` (a logger
    credential's identity) stamps `pod` and `service_name` and refuses ids of other pods."""
    batch = Batch(received=len(entries))
    now_iso = ms_to_iso(now_ms)
    rows = batch.rows
    for index, entry in enumerate(entries):
        if type(entry) is not dict:
            reason = str(entry) if isinstance(entry, JsonError) else "entry must be a JSON object"
            batch.refuse(index, None, reason)
            continue
        try:
            try:
                refusal = _stamp(entry, scope) if scope is not None else None
                outcome = refusal or _row(entry, max_entry_bytes, now_ms, now_iso)
            except ValueError:  # a number out of float range: read that entry again, exactly
                if exact is None:
                    raise
                entry = exact(index)
                refusal = _stamp(entry, scope) if scope is not None else None
                outcome = refusal or _row(entry, max_entry_bytes, now_ms, now_iso)
        except Exception as exc:  # noqa: BLE001 - one entry's bug must not cost its batch-mates
            logger.exception("entry %d could not be handled", index)
            batch.failures += 1
            outcome = f"internal error while handling this entry: {type(exc).__name__}: {exc}"[:300]
        if type(outcome) is tuple:
            rows.append(outcome)
        else:
            batch.refuse(index, entry, outcome)
    return batch


def _stamp(entry: dict[str, Any], scope: LoggerIdentity) -> str | None:
    """Make the entry speak for the credential's pod (the reason it cannot, or None)."""
    prefix = scope.pod + ":"
    eid = entry.get("id")
    if eid is None:
        entry["id"] = prefix + uuid.uuid4().hex
    elif type(eid) is str and not eid.startswith(prefix):
        # Ids are scoped: no credential can take the id another pod's logger will produce next.
        return f"id must start with {prefix!r}, the pod of this logger's credential"
    for name, value in (("pod", scope.pod), ("service_name", scope.service)):
        old = entry.get(name)
        if old != value:
            if old is not None:
                entry.setdefault(f"app_{name}", old)
            entry[name] = value
    return None


def _row(entry: dict[str, Any], max_bytes: int, now_ms: int, now_iso: str) -> Row | str:
    """The row for one entry, or the reason it is refused."""
    get = entry.get
    message = get("message")
    if type(message) is not str:
        if "message" not in entry:
            return "message is required"
        return f"message must be a string, not {_json_type(message)}"
    eid = get("id")
    if eid is None:
        eid = entry["id"] = uuid.uuid4().hex
    elif type(eid) is not str or not eid:
        return f"id must be a non-empty string, not {_json_type(eid)}"
    elif len(eid) > MAX_ID_CHARS:
        return f"id is {len(eid)} characters, over the limit of {MAX_ID_CHARS}"
    stamp = get("timestamp")
    if stamp is None:
        ts = now_ms
        entry["timestamp"] = now_iso
    elif type(stamp) is str:
        try:
            moment = _fromisoformat(stamp)
        except ValueError:
            return f"timestamp is not ISO 8601: {stamp[:64]!r}"
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ts = (moment - _EPOCH) // _MS
    else:
        return f"timestamp must be an ISO 8601 string, not {_json_type(stamp)}"
    level = get("level")
    if level is not None:
        if type(level) is not str:
            return f"level must be a string, not {_json_type(level)}"
        level = _text(level.lower()) if level else None
    body = dumps(entry)
    if len(body) > max_bytes:
        return f"entry is {len(body)} bytes, over the limit of {max_bytes}"
    return (_text(eid), ts, _column(get("service_name")), _column(get("pod")), level,
            _column(get("request_id")), _text(message), body)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _text(value: str) -> str:
    """A string SQLite can bind as UTF-8 (lone surrogates replaced; the body keeps the original)."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


def _column(value: Any) -> str | None:
    """A filter column value: strings as-is, numbers as text, anything else not indexed."""
    if type(value) is str:
        return value if value.isascii() else _text(value)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None
