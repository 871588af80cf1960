"""Figures, goals and the report: the table printed on stdout and the same as JSON.

A figure holds one value per run; the report shows the median with min and max, and a goal is
judged on the median. Figures without a goal are context (CPU cost, the direct scrape, ...).
"""

from __future__ import annotations

import json
import operator
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podvisor.bench.profile import Profile

_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Goal:
    """`op` is '>=' or '<='; `value` in the figure's unit."""

    op: str
    value: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"goal operator must be one of {', '.join(_OPS)}, got {self.op!r}")

    def met(self, value: float) -> bool:
        return _OPS[self.op](value, self.value)

    def text(self, unit: str) -> str:
        return f"{self.op} {fmt(self.value)} {unit}".rstrip()


@dataclass
class Figure:
    """One measured quantity of a scenario: a value per run."""

    name: str
    unit: str
    goal: Goal | None = None
    values: list[float] = field(default_factory=list)
    note: str = ""

    def add(self, value: float) -> None:
        self.values.append(float(value))

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    @property
    def met(self) -> bool | None:
        median = self.median
        if self.goal is None or median is None:
            return None
        return self.goal.met(median)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.median,
            "min": min(self.values) if self.values else None,
            "max": max(self.values) if self.values else None,
            "runs": len(self.values),
            "values": self.values,
            "goal": None
            if self.goal is None
            else {"op": self.goal.op, "value": self.goal.value, "text": self.goal.text(self.unit)},
            "met": self.met,
            "note": self.note,
        }


@dataclass
class ScenarioResult:
    """The figures of one numbered scenario, or the error that stopped it."""

    number: int
    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    profiles: list[Profile] = field(default_factory=list)  # sampled in its last run

    @property
    def missed(self) -> bool:
        """A goal of this scenario was not met."""
        return any(fig.met is False for fig in self.figures)

    def figure(self, name: str, unit: str, goal: Goal | None = None, note: str = "") -> Figure:
        """The figure called `name`, created on first use (runs append to it)."""
        for fig in self.figures:
            if fig.name == name:
                return fig
        fig = Figure(name, unit, goal, note=note)
        self.figures.append(fig)
        return fig

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "key": self.key,
            "title": self.title,
            "figures": [f.to_json() for f in self.figures],
            "notes": self.notes,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "profile": [{"process": p.process, "busy_samples": p.busy_samples, "error": p.error,
                         "top": [{"share_percent": round(share, 1), "function": name} for share, name in p.top]}
                        for p in self.profiles],
        }


def fmt(value: float | None) -> str:
    """A number for the table: thousands separators, two significant decimals when small."""
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def table(results: Sequence[ScenarioResult]) -> str:
    """The report as a fixed-width text table."""
    header = ("#", "figure", "median", "min", "max", "unit", "goal", "met")
    rows: list[tuple[str, ...]] = []
    for res in results:
        if res.error:
            rows.append((str(res.number), f"{res.title}: ERROR {res.error}", "", "", "", "", "", ""))
            continue
        for fig in res.figures:
            j = fig.to_json()
            met = {True: "yes", False: "NO", None: ""}[j["met"]]
            goal = j["goal"]["text"] if j["goal"] else ""
            rows.append(
                (
                    str(res.number),
                    fig.name,
                    fmt(j["median"]),
                    fmt(j["min"]),
                    fmt(j["max"]),
                    fig.unit,
                    goal,
                    met,
                )
            )
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[1] = min(widths[1], 64)
    right = {2, 3, 4}

    def line(cells: tuple[str, ...]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r).rstrip() for r in rows]
    return "\n".join(out)


def where_time_goes(results: Sequence[ScenarioResult]) -> str:
    """For each scenario that missed a goal: the top three costs of each process profiled in it."""
    out = []
    for res in results:
        if not res.missed:
            continue
        if not res.profiles:
            out.append(f"{res.number} {res.title}: goal missed; this scenario takes no profile")
            continue
        out.append(f"{res.number} {res.title}: goal missed; where the time goes (py-spy, own time, waits left out):")
        out += [f"    {profile.text()}" for profile in res.profiles]
    return "\n".join(out)


def summary(results: Sequence[ScenarioResult]) -> dict[str, int]:
    figs = [f for r in results for f in r.figures if f.goal is not None]
    return {
        "goals": len(figs),
        "met": sum(1 for f in figs if f.met),
        "not_met": sum(1 for f in figs if f.met is False),
        "errors": sum(1 for r in results if r.error),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how busy the machine was besides the benchmark."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return [round(x, 2) for x in load]


def document(results: Sequence[ScenarioResult], *, mode: str, runs: int, started: float,
             sizes: dict[str, Any], machine_info: dict[str, Any]) -> dict[str, Any]:
    """The JSON report; `machine_info` is machine() taken at the start."""
    return {
        "tool": "podvisor-bench",
        "mode": mode,
        "runs": runs,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_seconds": round(time.time() - started, 1),
        "machine": {**machine_info, "load_average_at_end": load_average()},
        "sizes": sizes,
        "summary": summary(results),
        "scenarios": [r.to_json() for r in results],
    }


def write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


class Progress:
    """One status line on stderr, rewritten in place on a terminal, one line per update otherwise."""

    def __init__(self, total_steps: int, stream: Any = None) -> None:
        """`total_steps`: how many advance() calls fill the bar."""
        self.stream = stream or sys.stderr
        self.total = max(total_steps, 1)
        self.done = 0
        self.started = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._width = 0
        self._last = 0.0

    def advance(self, steps: int = 1) -> None:
        """`steps` more are done (the bar fills)."""
        self.done = min(self.done + steps, self.total)

    def show(self, text: str, detail: bool = False) -> None:
        """Show `text`; a `detail` update (a counter moving) is printed at most every 5 s off a terminal."""
        now = time.monotonic()
        if detail and not self.tty and now - self._last < 5.0:
            return
        self._last = now
        elapsed = now - self.started
        filled = int(20 * self.done / self.total)
        bar = "#" * filled + "." * (20 - filled)
        line = f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s  {text}"
        if self.tty:
            pad = max(self._width - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
