"""Query parameters -> a LogQuery, plus the opaque keyset cursor (the SQL is in store/select.py)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict

from podvisor.aggregator.errors import ParamError
from podvisor.aggregator.timestamps import parse_time_param

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FIELDS = 10
MAX_TEXT = 500
MAX_TERMS = 32  # words and phrases of one search, included and excluded together
FILTER_PARAMS = frozenset({"service", "pod", "level", "request_id", "since", "until"})
# `probes` of /api/v1/logs and /api/v1/tail: the logging sidecar marks probe and scrape requests
# with `"probe": true`; include (every entry), exclude (none of them) or only (nothing else).
PROBE_MODES = ("include", "exclude", "only")
FIELD_PREFIX = "field."
_FIELD_NAME_RE = re.compile(r"^[A-Za-z0-9_@$-]{1,64}$")
# An optional leading `-` (leave out), then a "phrase" (its closing quote optional) or a word.
_SEARCH_TOKEN_RE = re.compile(r'(-?)(?:"([^"]*)"?|([^\s"]+))')
NOT_OPERATOR = "NOT"  # upper case only, as in FTS5 and web search: `not found` is two words


@dataclass(frozen=True)
class Term:
    """A word or a "phrase" of a search, matched as its tokens in order, never as an operator;
    `prefix` (word*) lets the last token match any token it begins."""

    text: str
    prefix: bool = False


@dataclass(frozen=True)
class TextSearch:
    """`q`, parsed: an entry's message must hold every `include` term and none of the `exclude`
    terms. Store-neutral: each store turns it into its own full-text query (store/select.py for
    SQLite). Either tuple may be empty, not both."""

    include: tuple[Term, ...] = ()
    exclude: tuple[Term, ...] = ()


@dataclass(frozen=True)
class LogQuery:
    """Filters shared by GET /logs, /api/v1/logs, /api/v1/tail and /api/v1/histogram; `text` is
    `q`, parsed (every store builds its own full-text query from it)."""

    service: str | None = None
    pods: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    request_id: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    text: TextSearch | None = None
    fields: tuple[tuple[str, str], ...] = ()
    probes: str = "include"


def _single(args: MultiDict, name: str) -> str | None:
    values = [v for v in args.getlist(name) if v.strip() != ""]
    if len(values) > 1:
        raise ParamError(name, "given more than once")
    return values[0].strip() if values else None


def check_known(args: MultiDict, allowed: frozenset[str] | set[str]) -> None:
    """Reject unknown parameters (typos would silently widen a query); `_x` and field.x pass."""
    for name in args.keys():
        if name not in allowed and not name.startswith("_") and not name.startswith(FIELD_PREFIX):
            raise ParamError(name, "unknown parameter")


def parse_filters(args: MultiDict, *, extended: bool = True) -> LogQuery:
    """Read the filter parameters; `extended` adds `q`, `probes` and `field.<name>` (the /api/v1
    endpoints). `pod` and `level` take several values, repeated or comma-separated."""
    levels = _many(args, "level", str.lower)
    since = _time_param(args, "since")
    until = _time_param(args, "until")
    if since is not None and until is not None and since > until:
        raise ParamError("since", "is after until")
    text = None
    fields: list[tuple[str, str]] = []
    probes = "include"
    if extended:
        probes = (_single(args, "probes") or probes).lower()
        if probes not in PROBE_MODES:
            raise ParamError("probes", f"must be {', '.join(PROBE_MODES[:-1])} or {PROBE_MODES[-1]}")
        raw_text = _single(args, "q")
        if raw_text is not None:
            try:
                text = parse_search(raw_text)
            except ValueError as exc:
                raise ParamError("q", str(exc)) from None
        for name in args.keys():
            if name.startswith(FIELD_PREFIX):
                fields.append((_field_name(name), _single(args, name) or ""))
        if len(fields) > MAX_FIELDS:
            raise ParamError("field", f"at most {MAX_FIELDS} field filters")
    return LogQuery(
        service=_single(args, "service"),
        pods=_many(args, "pod"),
        levels=levels,
        request_id=_single(args, "request_id"),
        since_ms=since,
        until_ms=until,
        text=text,
        fields=tuple(fields),
        probes=probes,
    )


def _many(args: MultiDict, name: str, normal: Callable[[str], str] = str) -> tuple[str, ...]:
    """`name=a&name=b` or `name=a,b`: the distinct values in the order given."""
    values = (normal(part.strip()) for raw in args.getlist(name) for part in raw.split(",") if part.strip())
    return tuple(dict.fromkeys(values))


def parse_limit(args: MultiDict, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """`limit`: a positive integer, capped at `maximum`."""
    raw = _single(args, "limit")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError("limit", f"not an integer: {raw[:32]!r}") from None
    if value < 1:
        raise ParamError("limit", "must be at least 1")
    return min(value, maximum)


def parse_count(args: MultiDict, name: str, default: int, maximum: int) -> int:
    """An integer from 1 to `maximum` (anything else is a 400: a count is not silently capped)."""
    raw = _single(args, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ParamError(name, f"not an integer: {raw[:32]!r}") from None
    if not 1 <= value <= maximum:
        raise ParamError(name, f"must be from 1 to {maximum}, not {raw[:32]}")
    return value


def parse_order(args: MultiDict) -> str | None:
    """`order`: desc (newest first) or asc; None when absent."""
    raw = _single(args, "order")
    if raw is None:
        return None
    if raw.lower() not in ("asc", "desc"):
        raise ParamError("order", "must be asc or desc")
    return raw.lower()


def parse_seq(args: MultiDict, name: str) -> int | None:
    """A non-negative entry seq (rowid) such as `since_id`."""
    raw = _single(args, name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise ParamError(name, "must be a non-negative integer entry id")
    return int(raw)


def _time_param(args: MultiDict, name: str) -> int | None:
    raw = _single(args, name)
    if raw is None:
        return None
    try:
        return parse_time_param(raw)
    except ValueError:
        raise ParamError(name, f"not an ISO 8601 time or epoch seconds: {raw[:64]!r}") from None


def _field_name(param: str) -> str:
    name = param[len(FIELD_PREFIX):]
    if not _FIELD_NAME_RE.match(name):
        raise ParamError(param, "field name must be 1-64 letters, digits, _, -, @ or $")
    return name


def parse_search(text: str) -> TextSearch | None:
    """Read user search text; None when blank.

    Words are ANDed, "double quoted text" is a phrase, a trailing * on a word makes it a prefix;
    `-word`, `-"a phrase"` or `NOT word` leave out the entries that hold it. Every other operator
    of a search syntax (OR, NEAR, column filters, ^, parentheses) is searched for as a word. Raises
    ValueError (the caller's 400) for a NUL, text over MAX_TEXT, more than MAX_TERMS terms, a NOT
    with nothing after it, or nothing searchable at all.
    """
    if len(text) > MAX_TEXT:
        raise ValueError(f"longer than {MAX_TEXT} characters")
    if "\x00" in text:  # FTS5 reads a NUL as the end of the query ("unterminated string")
        raise ValueError("must not contain a NUL character")
    if not text.strip():
        return None
    include: dict[Term, None] = {}  # dicts: the distinct terms, in the order typed
    exclude: dict[Term, None] = {}
    negate_next = False
    for match in _SEARCH_TOKEN_RE.finditer(text):
        minus, phrase, word = match.groups()
        if word == NOT_OPERATOR and not minus:
            if negate_next:
                raise ValueError("NOT NOT: put the word to leave out after NOT")
            negate_next = True
            continue
        if word is not None:
            core = word.rstrip("*")
            term = Term(core, prefix=core != word)
        else:
            term = Term(phrase)
        excluded, negate_next = bool(minus) or negate_next, False
        if not any(ch.isalnum() for ch in term.text):
            continue  # punctuation only: no token to search for
        (exclude if excluded else include)[term] = None
        if len(include) + len(exclude) > MAX_TERMS:
            raise ValueError(f"more than {MAX_TERMS} words or phrases")
    if negate_next:
        raise ValueError('NOT must be followed by a word or a "phrase" to leave out')
    if not include and not exclude:
        raise ValueError("no words to search for")
    return TextSearch(tuple(include), tuple(exclude))


def service_names(service: str) -> tuple[str, ...]:
    """Names `service` matches: itself and `<service>-service` (so `user` finds user-service)."""
    return (service, service + "-service")


class CursorCodec:
    """Opaque `next` tokens: base64url of order + last seq, with an HMAC tag so edits are caught."""

    TAG_BYTES = 8

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[: self.TAG_BYTES]

    def encode(self, seq: int, order: str) -> str:
        payload = f"{order[0]}{seq}".encode()
        return base64.urlsafe_b64encode(payload + self._tag(payload)).decode().rstrip("=")

    def decode(self, token: str) -> tuple[int, str]:
        """Return (seq, order); raise ValueError for anything this codec did not issue."""
        if not token or len(token) > 64:
            raise ValueError("malformed cursor")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("malformed cursor") from None
        payload, tag = raw[: -self.TAG_BYTES], raw[-self.TAG_BYTES:]
        if len(payload) < 2 or not hmac.compare_digest(tag, self._tag(payload)):
            raise ValueError("cursor is invalid or was altered")
        order = {"d": "desc", "a": "asc"}.get(chr(payload[0]))
        digits = payload[1:].decode("ascii", "replace")
        if order is None or not digits.isdigit():
            raise ValueError("cursor is invalid")
        return int(digits), order
