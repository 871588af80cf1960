"""podctl status: the pods table (`-o wide` adds ports, pids and the Ready condition), JSON, and
`-w`, which prints a row each time a pod changes, like `kubectl get pods -w`."""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TextIO

from podvisor.supervisord.podctl import output
from podvisor.supervisord.podctl.client import Client, fill_from_spec
from podvisor.supervisord.podctl.errors import EXIT_NOT_RUNNING, EXIT_OK, Failure
from podvisor.supervisord.spec.model import Stack

REMOVED = "Removed"


def selected(client: Client, names: list[str], stack: Stack | None, strict: bool = True) -> list[dict]:
    """The named pods (all when none is named), with what the spec knows filled in; `strict`: a
    name that is not a pod fails (exit 1)."""
    pods = client.pods()
    unknown = [name for name in names if name not in {p["pod"] for p in pods}]
    if unknown and strict:
        raise Failure(f"no pod named {', '.join(map(repr, unknown))}")
    return [fill_from_spec(p, stack) for p in pods if not names or p["pod"] in names]


def run(client: Client, names: list[str], fmt: str, out: TextIO, stack: Stack | None) -> int:
    """Exit 0 when every listed pod is Running, 3 when one is not."""
    pods = selected(client, names, stack)
    if fmt == "json":
        out.write(json.dumps({"pods": pods}, indent=2) + "\n")
    else:
        out.write(output.table(pods, wide=fmt == "wide"))
    return EXIT_OK if all(p["phase"] == "Running" for p in pods) else EXIT_NOT_RUNNING


def _key(row: tuple[str, ...]) -> tuple[str, ...]:
    return row[:5] + row[6:]  # AGE moves every second: a change of it alone is not news


def watch(client: Client, names: list[str], wide: bool, out: TextIO, stack: Stack | None,
          interval: float = 0.5, sleep: Callable[[float], None] = time.sleep,
          rounds: int | None = None) -> int:
    """Print the table, then a row for every pod whose row changed, until Ctrl-C (or `rounds`)."""
    pods = selected(client, names, stack)
    rows = {p["pod"]: output.row(p, wide) for p in pods}
    sizes = output.widths([output.header(wide), *rows.values()])
    out.write(output.line(output.header(wide), sizes))
    for r in rows.values():
        out.write(output.line(r, sizes))
    out.flush()
    done = 0
    while rounds is None or done < rounds:
        sleep(interval)
        done += 1
        current = {p["pod"]: output.row(p, wide) for p in selected(client, names, stack, strict=False)}
        for name, r in current.items():
            if name not in rows or _key(rows[name]) != _key(r):
                out.write(output.line(r, _fit(sizes, r)))
        for name in rows.keys() - current.keys():
            gone = list(rows[name])
            gone[3] = REMOVED
            out.write(output.line(gone, _fit(sizes, gone)))
        out.flush()
        rows = current
    return EXIT_OK


def _fit(sizes: list[int], row: tuple[str, ...] | list[str]) -> list[int]:
    """The first table's widths, widened where this row's cell is longer (it still lines up mostly)."""
    return [max(size, len(cell)) for size, cell in zip(sizes, row, strict=True)]
