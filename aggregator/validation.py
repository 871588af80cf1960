"""Per-entry validation of ingested log entries into store rows (the hot path of ingest)."""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

import msgspec

from podvisor.aggregator.credentials import LoggerIdentity
from podvisor.aggregator.store.schema import Row
from podvisor.aggregator.timestamps import ms_to_iso
from podvisor.core.jsonsafe import MAX_DEPTH, JsonError, decode, loads_exact

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
            again = None if exact is None else (lambda i=index: exact(i))
            outcome = entry_row(entry, max_entry_bytes, now_ms, now_iso, scope, again)
        except Exception as exc:  # noqa: BLE001 - one entry's bug must not cost its batch-mates
            outcome = _internal_error(batch, index, exc)
        if type(outcome) is tuple:
            rows.append(outcome)
        else:
            batch.refuse(index, entry, outcome)
    return batch


def _internal_error(batch: Batch, index: int, exc: Exception) -> str:
    """An entry whose handling raised (a bug): logged with its traceback, counted, refused alone."""
    logger.exception("entry %d could not be handled", index)
    batch.failures += 1
    return f"internal error while handling this entry: {type(exc).__name__}: {exc}"[:300]


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


# -- the fast path: a body read once in C, each entry stored as the text it arrived as ---------------

_SPLIT = msgspec.json.Decoder(list[msgspec.Raw]).decode


class _Indexed(msgspec.Struct):
    """The fields the store indexes, typed as the common case has them (other fields are skipped
    in C); an entry that differs (a number as a level, no id) takes the general path."""

    id: str | None = None
    timestamp: str | None = None
    message: str | None = None
    level: str | None = None
    service_name: str | None = None
    pod: str | None = None
    request_id: str | None = None


_INDEXED = msgspec.json.Decoder(_Indexed).decode
_TS_CACHE: dict[str, int] = {}


def ts_ms(stamp: str) -> int:
    """Epoch ms of an ISO 8601 time (naive = UTC); entries of one batch mostly share a few."""
    ts = _TS_CACHE.get(stamp)
    if ts is None:
        moment = _fromisoformat(stamp)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        ts = (moment - _EPOCH) // _MS
        if len(_TS_CACHE) >= 4096:
            _TS_CACHE.clear()
        _TS_CACHE[stamp] = ts
    return ts


def validate_raw(body: bytes, max_entry_bytes: int, now_ms: int,
                 scope: LoggerIdentity | None = None) -> Batch | None:
    """validate() of a JSON array body, entries kept as received; None when the body is not an
    array msgspec accepts (NaN, a number out of range, a lone surrogate...): then the caller parses
    it with jsonsafe and validate(), which give the exact per-entry answers.

    An entry is stored as its own text when it needs no change: it has an id (of the credential's
    pod), a timestamp, its pod and service are the credential's, it is flat enough, fits, and has no
    line break between tokens (the live tail sends each entry on one line). Any other entry is read
    again and goes through validate()'s per-entry path, so the answer is the same either way."""
    try:
        raws = _SPLIT(body)
    except (msgspec.DecodeError, RecursionError):  # RecursionError: nesting deeper than msgspec goes
        return None
    batch = Batch(received=len(raws))
    rows = batch.rows
    # Flat entries (the common case) cannot be too deep: the whole body's brackets tell at once.
    flat = body.count(b"{") + body.count(b"[") <= len(raws) + 1
    now_iso = None
    for index, raw in enumerate(raws):
        try:
            try:
                row = _fast_row(raw, max_entry_bytes, scope, flat)
            except UnicodeDecodeError:
                return None  # the general path answers 400 for a body that is not UTF-8
            if row is None:  # the general path, from the entry's text
                now_iso = now_iso or ms_to_iso(now_ms)
                row = _slow_row(bytes(raw), max_entry_bytes, now_ms, now_iso, scope)
        except Exception as exc:  # noqa: BLE001 - one entry's bug must not cost its batch-mates
            row = _internal_error(batch, index, exc)
        if type(row) is tuple:
            rows.append(row)
        else:
            batch.errors.append({"index": index, "id": _raw_id(raw), "error": row})
    return batch


def _fast_row(raw: msgspec.Raw, max_bytes: int, scope: LoggerIdentity | None, flat: bool) -> Row | None:
    """The row of an entry stored as received, or None when it needs the general path."""
    size = len(raw)
    text = bytes(raw)
    if size > max_bytes or b"\n" in text or b"\r" in text:
        return None
    if not flat and text.count(b"{") + text.count(b"[") > MAX_DEPTH:
        return None
    try:
        entry = _INDEXED(text)
    except msgspec.DecodeError:  # a field of another type than the common case
        return None
    eid, stamp, message = entry.id, entry.timestamp, entry.message
    if not eid or len(eid) > MAX_ID_CHARS or stamp is None or message is None or text[:1] != b"{":
        return None
    if scope is not None and (entry.pod != scope.pod or entry.service_name != scope.service
                              or not eid.startswith(scope.pod + ":")):
        return None
    body = text.decode()
    if 3 * size > max_bytes and not body.isascii() and len(dumps(decode(body)[0])) > max_bytes:
        return None  # the limit is on the escaped size: the general path names the figure
    try:
        ts = ts_ms(stamp)
    except ValueError:
        return None
    level = entry.level
    return (eid, ts, entry.service_name, entry.pod, level.lower() if level else None, entry.request_id,
            message, body)


def _slow_row(text: bytes, max_bytes: int, now_ms: int, now_iso: str,
              scope: LoggerIdentity | None) -> Row | str:
    """The row (or refusal) of one entry through validate()'s per-entry path."""
    try:
        entry, _verbatim = decode(text.decode())
    except JsonError as exc:
        return str(exc)
    if type(entry) is not dict:
        return "entry must be a JSON object"
    return entry_row(entry, max_bytes, now_ms, now_iso, scope, lambda: loads_exact(text.decode()))


def entry_row(entry: dict[str, Any], max_bytes: int, now_ms: int, now_iso: str, scope: LoggerIdentity | None,
              exact: Callable[[], dict[str, Any]] | None = None) -> Row | str:
    """The row of one decoded entry (stamped for `scope`, checked, encoded) or why it is refused;
    `exact()` gives the entry again with numbers out of float range as their text."""
    try:
        refusal = _stamp(entry, scope) if scope is not None else None
        return refusal or _row(entry, max_bytes, now_ms, now_iso)
    except ValueError:
        if exact is None:
            raise
        entry = exact()
        refusal = _stamp(entry, scope) if scope is not None else None
        return refusal or _row(entry, max_bytes, now_ms, now_iso)


def _raw_id(raw: msgspec.Raw) -> str | None:
    """The id of a refused entry, for its error, when it has a usable one."""
    try:
        entry = msgspec.json.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None
    eid = entry.get("id") if type(entry) is dict else None
    return eid if type(eid) is str and len(eid) <= MAX_ID_CHARS else None
