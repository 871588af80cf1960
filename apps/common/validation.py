"""Request body parsing and field checks that answer 400/415 instead of guessing."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from flask import request

from podvisor.apps.common.errors import ApiError


def json_body(allowed: Iterable[str]) -> dict[str, Any]:
    """The request's JSON object; 415 unless application/json, 400 when malformed or with unknown keys."""
    if request.mimetype != "application/json":
        raise ApiError(415, "Content-Type must be application/json")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        # A body of a few thousand '[' fits under the size limit and exhausts the decoder's stack.
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "JSON body must be an object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)}")
    return body


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def require(body: dict[str, Any], name: str) -> Any:
    """The value of a mandatory field; 400 naming it when absent or null."""
    if body.get(name) is None:
        raise ApiError(400, f"missing field: {name}")
    return body[name]


MAX_INTEGER = 1_000_000_000  # far below SQLite's 64-bit limit, so arithmetic on it cannot overflow


def integer(body: dict[str, Any], name: str, *, minimum: int | None = None) -> int:
    """A JSON integer (not a bool, not a float, not a string) between ``minimum`` and 10^9."""
    value = require(body, name)
    if type(value) is not int:
        raise ApiError(400, f"{name} must be an integer")
    if minimum is not None and value < minimum:
        raise ApiError(400, f"{name} must be at least {minimum}")
    if value > MAX_INTEGER:
        raise ApiError(400, f"{name} must be at most {MAX_INTEGER}")
    return value


def price_cents(body: dict[str, Any], name: str) -> int:
    """A non-negative JSON number with at most two decimals, as integer cents."""
    value = require(body, name)
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ApiError(400, f"{name} must be a number")
    if value < 0:
        raise ApiError(400, f"{name} must not be negative")
    if value > 1_000_000_000:
        raise ApiError(400, f"{name} is too large")
    # str() gives the shortest repr, so 999.99 stays 999.99 rather than its binary approximation.
    cents = Decimal(str(value)) * 100
    if cents != cents.to_integral_value():
        raise ApiError(400, f"{name} must have at most two decimal places")
    return int(cents)


def text(body: dict[str, Any], name: str, *, max_length: int = 200) -> str:
    """A non-blank JSON string (surrounding spaces trimmed) of at most ``max_length`` characters."""
    value = require(body, name)
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    value = value.strip()
    if not value:
        raise ApiError(400, f"{name} must not be empty")
    if len(value) > max_length or not value.isprintable():
        raise ApiError(400, f"{name} must be printable and at most {max_length} characters")
    return value


def cents_to_amount(cents: int) -> float:
    """Integer cents as the decimal amount the API shows (999.99)."""
    return cents / 100
