"""Conversions between ISO 8601 / epoch seconds and the store's epoch milliseconds."""
from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def iso_to_ms(text: str) -> int:
    """Parse an ISO 8601 time (naive means UTC) into epoch milliseconds; raise ValueError."""
    if not isinstance(text, str) or not text or len(text) > 64:
        raise ValueError("not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:64]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


def parse_time_param(text: str) -> int:
    """Parse a query bound given as ISO 8601 or epoch seconds into epoch milliseconds."""
    text = text.strip()
    if _NUMBER_RE.match(text):
        seconds = float(text)
        if not math.isfinite(seconds) or abs(seconds) > 1e12:
            raise ValueError(f"epoch seconds out of range: {text!r}")
        return int(round(seconds * 1000))
    return iso_to_ms(text)


def ms_to_iso(ms: int) -> str:
    """Format epoch milliseconds as ISO 8601 UTC with milliseconds and `Z`, like the apps write."""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
