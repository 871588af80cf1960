"""Line framing and decoding: bytes from a file become records, never lost, never unbounded.

- A line ends at b"\\n". The bytes after the last newline are a partial line: held (and never
  checkpointed past) until its newline arrives, or flushed as one entry once the file has been
  rotated away and no more bytes can arrive.
- A line longer than max_line_bytes keeps its first max_line_bytes bytes; the rest is skipped while
  streaming (memory stays bounded) and the record says `"truncated": true, "original_bytes": n`.
- Offsets are contiguous: each line's `end` is the next line's `offset`, so "delivered up to end"
  is a valid resume point. Empty lines are shipped too (as empty messages) to keep that true.
- An entry bigger than LOGGER_MAX_ENTRY_BYTES as the aggregator measures it (compact JSON with
  non-ASCII escaped, which can be up to 3x the UTF-8 size) would be refused; fit() cuts its message
  instead and sets the same marker, so a long line is stored truncated, never dead-lettered.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from podvisor.core import jsonsafe

from . import textlog


@dataclass(frozen=True, slots=True)
class RawLine:
    """One framed line: where it starts and ends in the file and its (maybe truncated) bytes."""

    offset: int
    end: int
    data: bytes
    length: int  # the line's full length without its newline

    @property
    def truncated(self) -> bool:
        return self.length > len(self.data)


class LineFramer:
    """Cuts a byte stream into lines starting at byte `start` of the file."""

    def __init__(self, max_line_bytes: int, start: int = 0) -> None:
        self._max = max_line_bytes
        self._buf = bytearray()
        self._line_start = start
        self._line_len = 0
        self._pos = start

    @property
    def position(self) -> int:
        """Offset of the next byte to feed."""
        return self._pos

    @property
    def line_start(self) -> int:
        """Offset just past the last emitted line: the safe resume point for this stream."""
        return self._line_start

    @property
    def has_partial(self) -> bool:
        return self._line_len > 0

    def feed(self, chunk: bytes) -> list[RawLine]:
        """Append bytes read at `position`; return the lines they complete."""
        out: list[RawLine] = []
        base = self._pos
        i = 0
        while True:
            j = chunk.find(b"\n", i)
            if j < 0:
                self._append(chunk, i, len(chunk))
                break
            if self._line_len == 0 and j - i <= self._max:
                # Fast path: a whole line inside this chunk, nothing buffered.
                out.append(RawLine(base + i, base + j + 1, chunk[i:j], j - i))
            else:
                self._append(chunk, i, j)
                out.append(RawLine(self._line_start, base + j + 1, bytes(self._buf), self._line_len))
                self._buf.clear()
                self._line_len = 0
            self._line_start = base + j + 1
            i = j + 1
        self._pos = base + len(chunk)
        return out

    def flush(self) -> RawLine | None:
        """Emit the held partial line (the file will not grow any more), or None."""
        if self._line_len == 0:
            return None
        line = RawLine(self._line_start, self._pos, bytes(self._buf), self._line_len)
        self._buf.clear()
        self._line_len = 0
        self._line_start = self._pos
        return line

    def _append(self, chunk: bytes, i: int, j: int) -> None:
        room = self._max - len(self._buf)
        if room > 0:
            self._buf += chunk[i:min(j, i + room)]
        self._line_len += j - i


class LineFields(msgspec.Struct):
    """What the logger needs of a JSON line in the common case, read in C without building a dict:
    the three fields it must have, those probes and routes look at, and ours (present = a collision
    for enrich() to settle). Any other field is skipped unread."""

    message: str
    level: str
    timestamp: str
    method: Any = msgspec.UNSET
    path: Any = msgspec.UNSET
    status: Any = msgspec.UNSET
    request_time: Any = msgspec.UNSET
    service_name: Any = msgspec.UNSET
    environment: Any = msgspec.UNSET
    pod: Any = msgspec.UNSET
    host: Any = msgspec.UNSET
    source: Any = msgspec.UNSET
    id: Any = msgspec.UNSET
    probe: Any = msgspec.UNSET


_FIELDS = msgspec.json.Decoder(LineFields).decode


def common_fields(data: bytes) -> LineFields | None:
    """The fields of a line that is the common case (a flat-enough strict JSON object with string
    message, level and timestamp, nothing around it), else None: decode_text() then reads it. What
    msgspec refuses (NaN, numbers out of range, lone surrogates) takes that path too, so both agree."""
    if data[:1] != b"{" or data[-1:] != b"}":
        return None
    if data.count(b"{") + data.count(b"[") > jsonsafe.MAX_DEPTH:
        return None
    try:
        fields = _FIELDS(data)
    except (msgspec.DecodeError, RecursionError):
        return None
    return fields if fields.timestamp else None


def decode(line: RawLine, stderr: bool, stderr_level: str = "warning") -> dict[str, Any]:
    """Turn a framed line into a record: a JSON object is kept, anything else is wrapped."""
    return decode_text(line, stderr, stderr_level=stderr_level)[0]


def decode_text(line: RawLine, stderr: bool, exact: bool = False, stderr_level: str = "warning"
                ) -> tuple[dict[str, Any], str | None]:
    """The record, and the line's own JSON text when the record is exactly that object (so the
    enricher may append its fields to the text instead of encoding the record again).

    JSON is read by podvisor.core.jsonsafe, as the aggregator reads it: a line nested deeper than
    its MAX_DEPTH is wrapped as text with `json_error`, like a line that is not JSON. `exact` reads
    numbers out of float range as their text: for the record that must be encoded (strict JSON
    has no Infinity), never needed for the text passed on as written. A line of the stderr stream
    without a level of its own gets `stderr_level`; a JSON line's own wins, and so does the level
    of a text line in a format textlog knows (nginx's error log)."""
    text = line.data.decode("utf-8", errors="replace")
    if text.endswith("\r"):
        text = text[:-1]
    json_error = None
    if not line.truncated and text.lstrip()[:1] == "{":
        try:
            obj, verbatim = (jsonsafe.loads_exact(text), False) if exact else jsonsafe.decode(text)
        except jsonsafe.JsonError as exc:
            obj, json_error = None, str(exc)
        if isinstance(obj, dict):
            unchanged = verbatim
            message = obj.get("message")
            if message is None:
                # The wire format needs a string message; the raw line keeps it searchable.
                obj["message"] = text
                unchanged = False
            elif not isinstance(message, str):
                try:
                    obj["message"] = json.dumps(message, ensure_ascii=False, allow_nan=False)
                except ValueError:  # a number out of float range: strict JSON keeps it as text
                    return decode_text(line, stderr, exact=True, stderr_level=stderr_level)
                unchanged = False
            level = obj.get("level")
            if not isinstance(level, str):
                if level is not None:  # e.g. pino's numeric levels: keep them, but level must be text
                    obj.setdefault("app_level", level)
                obj["level"] = stderr_level if stderr else "info"
                unchanged = False
            return obj, (text.strip() if unchanged else None)
    # Not JSON: a format that says its own level (nginx's error log), else wrapped as it is.
    record = textlog.parse(text) or {"message": text, "level": stderr_level if stderr else "info"}
    if json_error is not None:
        record["json_error"] = json_error
    if line.truncated:
        record["truncated"] = True
        record["original_bytes"] = line.length
    return record, None


# Fields kept when an entry's other fields alone are too big to fit: ours, and the short ones the
# store indexes. Everything else of that line survives only as (truncated) raw text in `message`.
_KEPT = ("id", "timestamp", "level", "logger", "service_name", "environment", "pod", "host", "source",
         "request_id")


def entry_size(record: dict[str, Any]) -> int:
    """Bytes of `record` as the aggregator measures an entry: compact JSON, non-ASCII escaped."""
    return len(json.dumps(record, separators=(",", ":")))


def fit(record: dict[str, Any], limit: int, raw_text: str, raw_length: int) -> dict[str, Any]:
    """`record` if it fits `limit` bytes, else a copy whose message is cut to fit, marked truncated.

    When the fields besides the message are too big on their own, only the fields in _KEPT (short
    ones) stay and the message becomes the line's raw text, cut to fit."""
    if entry_size(record) <= limit:
        return record
    marker = {"truncated": True, "original_bytes": record.get("original_bytes", raw_length)}
    out = {k: v for k, v in record.items() if k not in marker}
    for name in marker:
        if name in record and record[name] != marker[name]:
            out.setdefault(f"app_{name}", record[name])
    out.update(marker, message="")
    message = record.get("message", "")
    if entry_size(out) > limit // 2:
        out = {k: record[k] for k in _KEPT if isinstance(record.get(k), str) and len(record[k]) <= 256}
        out.update(marker, message="")
        message = raw_text
    out["message"] = _cut(message, limit - entry_size(out))
    return out


def _cut(text: str, budget: int) -> str:
    """The longest prefix of `text` whose JSON string escape is at most `budget` bytes."""
    def escaped(n: int) -> int:
        return len(json.dumps(text[:n])) - 2

    low, high = 0, min(len(text), max(budget, 0))  # every character takes at least one byte
    while low < high:
        mid = (low + high + 1) // 2
        if escaped(mid) <= budget:
            low = mid
        else:
            high = mid - 1
    return text[:low]
