"""A small YAML writer for Prometheus files, so rendering needs no PyYAML.

Block style for mappings and sequences; every string is a JSON string, which is a valid YAML
double-quoted scalar (so `{{ $labels.pod }}`, `:` and `#` inside PromQL need no further thought).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# JSON leaves these raw with ensure_ascii=False; YAML treats them as line breaks.
_YAML_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def scalar(value: Any) -> str:
    """One YAML scalar: JSON strings, true/false, null, numbers."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write non-finite number {value!r}")
        return repr(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        for raw, escaped in _YAML_BREAKS.items():
            text = text.replace(raw, escaped)
        return text
    raise TypeError(f"cannot write {type(value).__name__} as a YAML scalar")


def _key(key: str) -> str:
    if not isinstance(key, str):
        raise TypeError(f"mapping keys must be strings, got {key!r}")
    return key if _PLAIN_KEY.fullmatch(key) else scalar(key)


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, Sequence) and not isinstance(value, str))


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        lines = []
        for key, item in value.items():
            if _is_container(item) and item:
                lines.append(f"{pad}{_key(key)}:")
                lines.extend(_lines(item, indent + 2))
            else:
                lines.append(f"{pad}{_key(key)}: {_inline(item)}")
        return lines
    if _is_container(value):
        lines = []
        for item in value:
            if _is_container(item) and item:
                nested = _lines(item, indent + 2)
                # "- " takes the place of the first item line's indentation
                lines.append(f"{pad}- {nested[0][indent + 2 :]}")
                lines.extend(nested[1:])
            else:
                lines.append(f"{pad}- {_inline(item)}")
        return lines
    return [pad + scalar(value)]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if _is_container(value):
        return "[]"
    return scalar(value)


def dump(document: Mapping[str, Any], header: str = "") -> str:
    """Render a mapping as a YAML document, with `header` as leading comment lines."""
    comments = [f"# {line}".rstrip() for line in header.splitlines()]
    return "\n".join(comments + _lines(document, 0)) + "\n"
