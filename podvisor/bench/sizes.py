"""How big each scenario is in each mode: full (the published figures), quick, smoke (CI only)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Sizes:
    runs: int
    pipeline_lines: int  # 1: lines appended as fast as possible
    naive_lines: int  # 2: lines through the one-POST-per-line shipper
    latency_rate: int  # 3: lines per second, steady
    latency_seconds: float  # 3: per run
    idle_seconds: float  # 4: whole idle window, split into `runs` slices
    wrk_seconds: float  # 5: per measurement (alone and in the pod, each run)
    wrk_connections: int  # 5
    series: tuple[int, ...]  # 6: series the fixture app exposes
    scrapes: int  # 6: timed scrapes per case
    aggregator_lines: int  # 7: lines ingested then queried
    aggregator_queries: int  # 7: queries per kind
    lifecycle_runs: int  # 8: cold start / kill -9 / stop cycles
    rsyslog_lines: int  # 12: lines each shipper (podvisor's logger, rsyslog) ships a run
    restart_rounds: int = 200  # 10: rounds of five curl calls, a kill -9 halfway

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


MODES: dict[str, Sizes] = {
    "full": Sizes(
        runs=3,
        pipeline_lines=1_000_000,
        naive_lines=5_000,
        latency_rate=1000,
        latency_seconds=15,
        idle_seconds=60,
        wrk_seconds=10,
        wrk_connections=50,
        series=(1000, 10000),
        scrapes=10,
        aggregator_lines=1_000_000,
        aggregator_queries=200,
        lifecycle_runs=3,
        rsyslog_lines=500_000,
    ),
    "quick": Sizes(
        runs=2,
        pipeline_lines=60_000,
        naive_lines=1_000,
        latency_rate=1000,
        latency_seconds=3,
        idle_seconds=10,
        wrk_seconds=2,
        wrk_connections=50,
        series=(1000, 10000),
        scrapes=3,
        aggregator_lines=60_000,
        aggregator_queries=50,
        lifecycle_runs=2,
        rsyslog_lines=60_000,
    ),
    # For the CI smoke test only: every code path, numbers too small to mean anything.
    "smoke": Sizes(
        runs=1,
        pipeline_lines=3_000,
        naive_lines=200,
        latency_rate=500,
        latency_seconds=1.5,
        idle_seconds=1.5,
        wrk_seconds=1,
        wrk_connections=10,
        series=(1000, 10000),
        scrapes=2,
        aggregator_lines=3_000,
        aggregator_queries=10,
        lifecycle_runs=1,
        rsyslog_lines=3_000,
        restart_rounds=20,
    ),
}


def for_mode(mode: str, runs: int | None = None) -> Sizes:
    """The sizes of `mode`, with `runs` (and the lifecycle cycles) overridden when given."""
    sizes = MODES[mode]
    if runs is not None:
        sizes = replace(sizes, runs=runs, lifecycle_runs=runs)
    return sizes
