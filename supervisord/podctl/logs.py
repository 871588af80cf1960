"""podctl logs: pods' lines from the aggregator, the last N, then (with -f) live through its SSE tail.

The history comes from /api/v1/logs (newest first, paged with its cursor); `-f` then opens
/api/v1/tail at the page's `latest_id`, so nothing falls between the two and nothing shows twice.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import requests

from podvisor.supervisord.podctl.client import Target
from podvisor.supervisord.podctl.errors import Failure, Unreachable, UsageError
from podvisor.supervisord.podctl.output import LinePrinter

LEVELS = ("trace", "debug", "info", "notice", "warning", "warn", "error", "critical", "fatal")
PAGE = 1000  # the aggregator's largest page
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str, now: float) -> float:
    """Epoch seconds from ISO 8601 (no zone means UTC, as the aggregator reads it), epoch seconds,
    or a duration back from `now` (90s, 10m, 2h, 1d, 1h30m); ValueError otherwise."""
    raw = text.strip()
    if re.fullmatch(r"(\d+(\.\d+)?[smhd])+", raw):
        return now - sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(raw))
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if math.isfinite(seconds):
            return seconds
        raise ValueError(raw)
    moment = datetime.fromisoformat(raw)  # ValueError for anything else ('yesterday')
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def since_arg(text: str) -> float:
    """argparse type of --since."""
    try:
        return parse_since(text, time.time())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, epoch seconds or a duration "
                                         "such as 10m, 2h or 1d") from None


def levels_arg(text: str) -> tuple[str, ...]:
    """argparse type of --level: one level or several, comma-separated, case-insensitive."""
    levels = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    bad = [level for level in levels if level not in LEVELS]
    if bad or not levels:
        raise argparse.ArgumentTypeError(f"{text!r} is not a level (one or more of {', '.join(LEVELS)})")
    return levels


def count_arg(minimum: int) -> Callable[[str], int]:
    """argparse type of a count of lines: an integer of at least `minimum`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of lines of at least {minimum}")
        return value
    return parse


@dataclass(frozen=True)
class LogFilter:
    pods: tuple[str, ...] = ()  # none: every pod
    levels: tuple[str, ...] = ()
    since: float | None = None  # epoch seconds
    grep: str | None = None  # the aggregator's full-text `q`
    probes: bool = False  # probe and scrape requests are left out unless asked for

    def params(self) -> dict[str, str]:
        params = {"probes": "include" if self.probes else "exclude"}
        if self.pods:
            params["pod"] = ",".join(self.pods)
        if self.levels:
            params["level"] = ",".join(self.levels)
        if self.since is not None:
            params["since"] = f"{self.since:.3f}"
        if self.grep:
            params["q"] = self.grep
        return params


def _why(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if "Connection refused" in str(exc):
        return "connection refused"
    return type(exc).__name__


def _error_of(resp: requests.Response) -> str:
    try:
        return str(resp.json()["error"])
    except (ValueError, KeyError, TypeError):
        return resp.text.strip().splitlines()[0][:200] if resp.text.strip() else resp.reason


class Aggregator:
    """The aggregator's query API as podctl uses it; every failure becomes a PodctlError."""

    def __init__(self, url: str, token: str | None, timeout: float = 10.0):
        self.url = url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout

    def get(self, path: str, params: dict[str, str], stream: bool = False) -> requests.Response:
        try:
            resp = requests.get(self.url + path, params=params, headers=self.headers, stream=stream,
                                timeout=(self.timeout, None if stream else self.timeout))
        except requests.RequestException as exc:
            raise Unreachable(f"the aggregator at {self.url} did not answer: {_why(exc)}") from None
        if resp.status_code < 400:
            return resp
        error = _error_of(resp)
        resp.close()
        if resp.status_code in (401, 403):
            raise Failure(f"the aggregator refused to show the logs ({resp.status_code}: {error}); "
                          "reads need its token, which podctl reads from the state directory")
        if resp.status_code < 500:
            raise UsageError(f"the aggregator refused the query: {error}")
        raise Unreachable(f"the aggregator at {self.url} answered {resp.status_code}: {error}")

    def last(self, flt: LogFilter, count: int) -> tuple[list[dict], int]:
        """The last `count` matching entries in time order, and the highest entry id stored then."""
        entries: list[dict] = []
        latest: int | None = None
        cursor = None
        while True:
            params = {**flt.params(), "order": "desc", "limit": str(max(1, min(PAGE, count - len(entries))))}
            if cursor:
                params["cursor"] = cursor
            body = self.get("/api/v1/logs", params).json()
            latest = body["latest_id"] if latest is None else latest
            entries += body["entries"]
            cursor = body["next"]
            if not cursor or len(entries) >= count:
                break
        return in_time_order(entries[:count][::-1]), latest

    def follow(self, flt: LogFilter, since_id: int | None) -> Iterator[tuple[int, dict]]:
        """(entry id, entry) as the aggregator stores them; ends when the aggregator ends the stream."""
        params = flt.params()
        if since_id is not None:
            params["since_id"] = str(since_id)
        with self.get("/api/v1/tail", params, stream=True) as resp:
            event, seq, data = "message", None, []
            try:
                for line in resp.iter_lines(decode_unicode=True):
                    if line:
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "data":
                            data.append(value)
                        elif field == "id":
                            seq = int(value)
                        elif field == "event":
                            event = value
                        continue
                    if data and event == "error":
                        raise Failure(f"the aggregator ended the stream: {json.loads(''.join(data))['error']}")
                    if data and seq is not None:
                        yield seq, json.loads("\n".join(data))
                    event, seq, data = "message", None, []
            except requests.RequestException as exc:
                raise Unreachable(f"the aggregator at {self.url} broke off the stream: {_why(exc)}") from None


def in_time_order(entries: list[dict]) -> list[dict]:
    """Entries by their timestamp (arrival order among equals): lines of several pods arrive in
    batches, so arrival order alone can put one pod's earlier line after another's later one."""
    def key(item: tuple[int, dict]) -> tuple[float, int]:
        index, entry = item
        try:
            moment = datetime.fromisoformat(str(entry["timestamp"]))
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp(), index
        except (KeyError, ValueError):
            return math.inf, index
    return [entry for _i, entry in sorted(enumerate(entries), key=key)]


def check_pods(target: Target, pods: list[str]) -> list[str]:
    """The stack's pod names; Failure (exit 1) when one of `pods` is not among them."""
    known = sorted(pod.name for pod in target.stack().pods)
    unknown = [p for p in pods if p not in known]
    if unknown:
        raise Failure(f"no pod named {', '.join(map(repr, unknown))} (pods: {', '.join(known)})")
    return known


def run(target: Target, flt: LogFilter, count: int, follow: bool, out: TextIO, colour: bool) -> int:
    """`podctl logs`: the last `count` lines, then with `follow` every new one until Ctrl-C."""
    known = check_pods(target, list(flt.pods))
    aggregator = Aggregator(target.aggregator_url, target.token())
    printer = LinePrinter(out, known, colour)
    entries, latest = aggregator.last(flt, count)
    for entry in entries:
        printer.write(entry)
    if follow:
        for _seq, entry in aggregator.follow(flt, latest):
            printer.write(entry)
    return 0
