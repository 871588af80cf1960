"""Line-level label injection for the Prometheus text format 0.0.4 and OpenMetrics 1.0.

This is the sidecar's hot path, chosen over parse-and-re-encode by measurement (see
`supervisord/bench/metrics_scrape.py`): the app's exposition is rewritten line by line, adding the
pod labels to every sample and passing everything else through: HELP text and its escaping, TYPE,
UNIT, `le` and `quantile`, exemplars, NaN and +Inf values. Label values are never unescaped and
re-escaped, so what the app wrote reaches Prometheus byte for byte.

Two deliberate changes: sample timestamps are dropped (the answer is a snapshot taken now, and an
explicit timestamp keeps Prometheus from marking a vanished app's series stale), and comment lines
other than HELP/TYPE/UNIT are dropped. Malformed input raises RewriteError instead of being passed
on: one bad line would make Prometheus reject the whole scrape, our own `podvisor_target_up` included.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .labels import PodLabels, escape_label_value, exported_name

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PAIR = rf"[ \t]*{_LABEL}[ \t]*=[ \t]*{_QUOTED}[ \t]*"
# name, label block, value, timestamp, exemplar (OpenMetrics only)
_SAMPLE = re.compile(
    rf"({_NAME})[ \t]*(?:\{{((?:{_PAIR},)*(?:{_PAIR})?[ \t]*)\}})?[ \t]*([^ \t]+)"
    r"(?:[ \t]+([^ \t#][^ \t]*))?[ \t]*(#.*)?"
)
# The common, canonical shape (single spaces, no escapes in values) is matched by a cheaper pattern
# first; anything else, including every escaped value, goes through _SAMPLE.
_SIMPLE_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
_FAST_SAMPLE = re.compile(
    rf"({_NAME})(?:\{{((?:{_SIMPLE_PAIR},)*(?:{_SIMPLE_PAIR})?)\}})?"
    r" ([^ \t]+)(?: ([^ \t#][^ \t]*))?(?: (#.*))?"
)
_PAIRS = re.compile(rf"[ \t]*({_LABEL})[ \t]*=[ \t]*({_QUOTED})[ \t]*,?")
_METRIC_NAME = re.compile(_NAME)

TEXT_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
OPENMETRICS_TYPES = frozenset(
    {"counter", "gauge", "histogram", "gaugehistogram", "stateset", "info", "summary", "unknown"}
)

Keep = Callable[[str], bool]


class RewriteError(ValueError):
    """The exposition is malformed; the message names the line."""

    def __init__(self, lineno: int, reason: str, line: str) -> None:
        super().__init__(f"line {lineno}: {reason}: {line[:200]!r}")
        self.lineno = lineno


class Injector:
    """Adds one pod's labels to sample label blocks; precomputes the common, clash-free case."""

    def __init__(self, labels: PodLabels) -> None:
        self._items = [(name, escape_label_value(value)) for name, value in labels.items()]
        self._names = [name for name, _ in self._items]
        self.suffix = ",".join(f'{name}="{value}"' for name, value in self._items)

    def block(self, group: str | None, lineno: int, line: str) -> str:
        """Return the full label block (without braces) for a sample's original block."""
        if not group or group.isspace():
            return self.suffix
        # Clean blocks (no blanks, no escapes, no trailing comma, none of our label names) are kept
        # verbatim; the substring test has false positives (values, exported_pod) that take the
        # exact path below.
        if (
            " " not in group
            and "\t" not in group
            and "\\" not in group
            and not group.endswith(",")
            and not any(name in group for name in self._names)
        ):
            if '",' in group:  # values hold no quote here, so '",' only ever separates pairs
                names = [pair[: pair.index("=")] for pair in group.split('",')]
                if len(set(names)) != len(names):
                    raise RewriteError(lineno, "duplicate label name", line)
            return f"{group},{self.suffix}"
        pairs = _PAIRS.findall(group)
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise RewriteError(lineno, "duplicate label name", line)
        taken = set(names)
        ours = []
        for name, value in self._items:
            name = exported_name(name, taken)
            taken.add(name)
            ours.append(f'{name}="{value}"')
        return ",".join([f"{name}={value}" for name, value in pairs] + ours)


def _check_value(value: str, lineno: int, line: str) -> None:
    try:
        float(value)
    except ValueError:
        raise RewriteError(lineno, f"bad sample value {value!r}", line) from None
    if "_" in value or value.strip() != value:  # float() accepts "1_000" and "1\r", Prometheus does not
        raise RewriteError(lineno, f"bad sample value {value!r}", line)


def rewrite(text: str, labels: PodLabels, *, openmetrics: bool, keep: Keep | None = None) -> str:
    """Return `text` with the pod labels on every sample, in the same format, without `# EOF`.

    `keep(name)` filters families by name; it is asked about every HELP/TYPE/UNIT line and every
    sample name, so a prefix test is the intended use.
    """
    injector = Injector(labels)
    out: list[str] = []
    typed: set[str] = set()
    saw_eof = False
    for lineno, line in enumerate(text.split("\n"), 1):
        if not openmetrics:
            line = line.lstrip(" \t")
        if not line:
            continue
        if saw_eof:
            raise RewriteError(lineno, "content after # EOF", line)
        if line[0] == "#":
            if openmetrics and line == "# EOF":
                saw_eof = True
                continue
            meta = _metadata(line, lineno, openmetrics, typed)
            if meta is not None and (keep is None or keep(meta[0])):
                out.append(meta[1])
            continue
        m = _FAST_SAMPLE.fullmatch(line) or _SAMPLE.fullmatch(line)
        if m is None:
            raise RewriteError(lineno, "not a sample", line)
        name, group, value, _timestamp, exemplar = m.groups()
        if keep is not None and not keep(name):
            continue
        _check_value(value, lineno, line)
        block = injector.block(group, lineno, line)
        if exemplar is None:
            out.append(f"{name}{{{block}}} {value}")
        elif openmetrics and exemplar.startswith("# {") and "}" in exemplar:
            out.append(f"{name}{{{block}}} {value} {exemplar}")
        else:
            raise RewriteError(lineno, "unexpected text after the value", line)
    if openmetrics and not saw_eof:
        raise RewriteError(lineno, "missing # EOF (truncated response?)", "")
    return "\n".join(out) + "\n" if out else ""


def _metadata(line: str, lineno: int, openmetrics: bool, typed: set[str]) -> tuple[str, str] | None:
    """Return (family name, normalised line) for HELP/TYPE/UNIT, None for a plain comment."""
    parts = line[1:].split(None, 2)
    kinds = ("HELP", "TYPE", "UNIT") if openmetrics else ("HELP", "TYPE")
    if len(parts) < 2 or parts[0] not in kinds:
        if openmetrics:
            raise RewriteError(lineno, "unknown comment (OpenMetrics allows HELP, TYPE, UNIT, EOF)", line)
        return None
    kind, name = parts[0], parts[1]
    rest = parts[2] if len(parts) == 3 else ""
    if not _METRIC_NAME.fullmatch(name):
        raise RewriteError(lineno, f"bad metric name {name!r}", line)
    if kind == "TYPE":
        if rest not in (OPENMETRICS_TYPES if openmetrics else TEXT_TYPES):
            raise RewriteError(lineno, f"unknown type {rest!r}", line)
        if name in typed:
            raise RewriteError(lineno, f"second TYPE line for {name}", line)
        typed.add(name)
    return name, f"# {kind} {name} {rest}"
