"""Strict JSON for log entries, one decoder for the logger and the aggregator.

Both sides read an entry the same way, so the logger never sends what the aggregator refuses:
- nesting deeper than MAX_DEPTH levels is refused per entry (checked without recursion, and only
  scanned precisely when the text holds more than MAX_DEPTH brackets at all);
- the literals NaN, Infinity and -Infinity become the strings "NaN", "Infinity", "-Infinity";
- a number out of float range (``1e400``) is kept as its text, the string "1e400".
The common case costs what the C decoder costs: `decode` runs it unchanged and only falls back to
the slower exact decoder for the rare text that needs it. Numbers out of range are valid JSON as
written, so `decode` leaves them as inf; whoever encodes finds out (`dumps` refuses non-finite
numbers) and re-reads that text with `loads_exact`.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 100
DEPTH_ERROR = f"nesting deeper than {MAX_DEPTH}"

# A string (escapes included) or one bracket: enough to follow nesting without parsing values.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset("[{")
_SPACE = re.compile(r"[ \t\n\r]*")


class JsonError(ValueError):
    """Text that is not an acceptable JSON entry; str() is the reason."""


class _Nonstandard(Exception):
    """A NaN/Infinity literal: the fast decoder hands such text to the exact one."""


def _raise_nonstandard(_name: str) -> Any:
    raise _Nonstandard


def _exact_float(text: str) -> float | str:
    value = float(text)
    return value if math.isfinite(value) else text


_FAST = json.JSONDecoder(parse_constant=_raise_nonstandard)
_EXACT = json.JSONDecoder(parse_constant=str, parse_float=_exact_float)
_fast_decode = _FAST.decode
# Compact, strict (no NaN/Infinity out), non-ASCII kept: what the logger sends.
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def scan(text: str, start: int = 0, end: int | None = None, give_up: int | None = None) -> tuple[int, int]:
    """(deepest nesting, offset just past the first complete value) of text[start:end], without
    recursion; the offset is `end` when no value closes. Strings and brackets only: use it on text
    the decoder accepted, or to skip a value the decoder cannot handle. With `give_up`, it stops as
    soon as the nesting exceeds it (the offset is then meaningless)."""
    stop = len(text) if end is None else end
    depth = deepest = 0
    for match in _TOKEN.finditer(text, start, stop):
        char = match.group()
        if char in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if give_up is not None and depth > give_up:
                    return deepest, stop
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                return deepest, match.end()
    return deepest, stop


def too_deep(text: str, start: int = 0, end: int | None = None) -> bool:
    """Whether the JSON text[start:end] nests deeper than MAX_DEPTH (cheap unless it holds more
    than MAX_DEPTH brackets)."""
    stop = len(text) if end is None else end
    if text.count("{", start, stop) + text.count("[", start, stop) <= MAX_DEPTH:
        return False
    return scan(text, start, stop, MAX_DEPTH)[0] > MAX_DEPTH


def decode(text: str) -> tuple[Any, bool]:
    """(value, verbatim) of one JSON document; `verbatim` is False when the text is not strict JSON
    as written (a NaN/Infinity literal), so it must be re-encoded rather than passed on. Raises
    JsonError (deeper than MAX_DEPTH, malformed)."""
    # too_deep(), inlined: this runs for every line a logger reads.
    if text.count("{") + text.count("[") > MAX_DEPTH and scan(text, 0, None, MAX_DEPTH)[0] > MAX_DEPTH:
        raise JsonError(DEPTH_ERROR)
    try:
        return _fast_decode(text), True
    except _Nonstandard:
        return _decode_with(_EXACT.decode, text), False
    except RecursionError:  # cannot happen within MAX_DEPTH; kept so no caller ever sees it
        raise JsonError(DEPTH_ERROR) from None
    except ValueError as exc:
        raise JsonError(_reason(exc)) from None


def loads_exact(text: str) -> Any:
    """Like decode(), but numbers out of float range come back as their text."""
    if too_deep(text):
        raise JsonError(DEPTH_ERROR)
    return _decode_with(_EXACT.decode, text)


def dumps(value: Any) -> str:
    """Compact strict JSON (non-ASCII kept); ValueError for a non-finite number."""
    return _DUMPS(value)


class Entries:
    """The entries of a body that is one object or an array of them, each read on its own.

    `values[i]` is the entry, or a JsonError when that entry alone is refused (too deep); `exact(i)`
    reads entry i again with loads_exact, for the encoder that met a number out of float range."""

    def __init__(self, text: str, values: list[Any], is_array: bool,
                 spans: list[tuple[int, int]] | None = None) -> None:
        self.text = text
        self.values = values
        self.is_array = is_array
        self._spans = spans

    def exact(self, index: int) -> Any:
        if self._spans is None:
            self._spans = [(start, end) for start, end, _ in _elements(self.text)]
        start, end = self._spans[index]
        return loads_exact(self.text[start:end])


def decode_entries(text: str) -> Entries:
    """Split a body into entries; raises JsonError when the body itself is malformed. The whole
    text goes through the C decoder in one call unless an entry needs a closer look (nesting,
    NaN/Infinity literals), which is the only case that pays for reading entries one by one."""
    try:
        document = _FAST.decode(text)
    except (_Nonstandard, RecursionError):
        document = None
    except ValueError as exc:
        raise JsonError(_reason(exc)) from None
    if isinstance(document, list):
        # Every entry is a flat object (depth 1) when the array's own '[' is the only one and
        # there is no '{' beyond one per object entry; else depths are checked entry by entry.
        # (find() runs at memchr speed; an entry's depth is at most its count of brackets.)
        if (text.find("[", text.find("[") + 1) < 0
                and text.count("{") <= sum(1 for entry in document if type(entry) is dict)):
            return Entries(text, document, True)
    elif document is not None:
        value: Any = document
        if too_deep(text):
            value = JsonError(DEPTH_ERROR)
        return Entries(text, [value], False, [(0, len(text))])
    if text.lstrip()[:1] != "[":
        try:
            value = loads_exact(text)
        except JsonError as exc:
            value = exc
        return Entries(text, [value], False, [(0, len(text))])
    items = _elements(text)
    return Entries(text, [value for _, _, value in items], True, [(s, e) for s, e, _ in items])


def _elements(text: str) -> list[tuple[int, int, Any]]:
    """(start, end, value or JsonError) of each element of the JSON array `text`."""
    out: list[tuple[int, int, Any]] = []
    index = _skip(text, 0)
    if text[index:index + 1] != "[":
        raise JsonError("expected an array")
    index = _skip(text, index + 1)
    if text[index:index + 1] == "]":
        return _finish(text, index + 1, out)
    while True:
        start = index
        value: Any
        try:
            value, index = _FAST.raw_decode(text, start)
        except _Nonstandard:
            value, index = _EXACT.raw_decode(text, start)
        except RecursionError:
            value, index = JsonError(DEPTH_ERROR), scan(text, start)[1]
        except ValueError as exc:
            raise JsonError(_reason(exc)) from None
        if not isinstance(value, JsonError) and too_deep(text, start, index):
            value = JsonError(DEPTH_ERROR)
        out.append((start, index, value))
        index = _skip(text, index)
        separator = text[index:index + 1]
        if separator == "]":
            return _finish(text, index + 1, out)
        if separator != ",":
            raise JsonError(f"expected ',' or ']' after entry {len(out) - 1} (character {index})")
        index = _skip(text, index + 1)


def _skip(text: str, index: int) -> int:
    return _SPACE.match(text, index).end()  # type: ignore[union-attr]


def _finish(text: str, index: int, out: list[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
    if _skip(text, index) != len(text):
        raise JsonError(f"extra data after the array (character {index})")
    return out


def _decode_with(decoder: Callable[[str], Any], text: str) -> Any:
    try:
        return decoder(text)
    except RecursionError:
        raise JsonError(DEPTH_ERROR) from None
    except ValueError as exc:
        raise JsonError(_reason(exc)) from None


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return str(exc)
