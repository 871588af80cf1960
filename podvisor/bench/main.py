"""podvisor-bench: measure the whole stack against its goals and a naive baseline.

Builds its own stacks (real supervisord, ephemeral ports) in a temporary directory, runs each
scenario, prints a table (figure, median, min, max, goal, met) and writes the same as JSON.

    podvisor-bench                      # full: ~15 min on 2 cores, the figures in docs/benchmarks.md
    podvisor-bench --quick              # under 2 minutes, smaller sizes, fewer runs
    podvisor-bench --only latency,7     # some scenarios, by number or name

A scenario that misses a goal is profiled (py-spy) in its last run; the report names its top costs.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from podvisor.bench import (
    aggregator,
    gateway,
    latency,
    lifecycle,
    metrics,
    pipeline,
    restarts,
    rsyslog,
    side_by_side,
    stores,
)
from podvisor.bench.context import SCENARIOS, Bench
from podvisor.bench.report import Progress, document, machine, table, where_time_goes, write_json
from podvisor.bench.sizes import for_mode

DEFAULT_JSON = "bench-results.json"

# Runners by the scenarios they feed (a runner measures what its scenarios share in one go).
RUNNERS: tuple[tuple[frozenset[int], Callable[[Bench], None]], ...] = (
    (frozenset({1, 2}), pipeline.run),
    (frozenset({3, 4, 5}), latency.run),
    (frozenset({6}), metrics.run),
    (frozenset({7}), aggregator.run),
    (frozenset({8}), lifecycle.run),
    (frozenset({9}), gateway.run),
    (frozenset({10}), restarts.run),
    (frozenset({11}), stores.run),
    (frozenset({12}), side_by_side.run),
)


def parse_only(text: str | None) -> frozenset[int]:
    """'1,latency,8' -> {1, 3, 8}; raises ValueError naming an unknown scenario."""
    if not text:
        return frozenset(sc.number for sc in SCENARIOS)
    by_name = {sc.key: sc.number for sc in SCENARIOS} | {str(sc.number): sc.number for sc in SCENARIOS}
    chosen = set()
    for item in (part.strip().lower() for part in text.split(",")):
        if item not in by_name:
            names = ", ".join(f"{sc.number}/{sc.key}" for sc in SCENARIOS)
            raise ValueError(f"unknown scenario {item!r} (expected some of {names})")
        chosen.add(by_name[item])
    return frozenset(chosen)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="podvisor-bench",
        description=__doc__.splitlines()[0],
        epilog="Scenarios: " + ", ".join(f"{s.number} {s.key}" for s in SCENARIOS),
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_const",
        dest="mode",
        const="quick",
        help="smaller sizes and fewer runs: under 2 minutes",
    )
    size.add_argument(
        "--smoke",
        action="store_const",
        dest="mode",
        const="smoke",
        help="tiny sizes for the CI smoke test: checks that everything runs, figures mean nothing",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default: 3 full, 2 quick, 1 smoke)")
    parser.add_argument("--only", metavar="SCENARIO,...", help="scenarios by number or name (default: all)")
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=DEFAULT_JSON,
        help=f"where to write the JSON report (default: ./{DEFAULT_JSON})",
    )
    parser.add_argument(
        "--workdir", metavar="DIR", help="keep stacks and logs here instead of a removed temp dir"
    )
    parser.set_defaults(mode="full")
    return parser


def _terminate(signum: int, _frame: object) -> None:
    # Unwind through every `finally`, so the stacks and helper processes are stopped.
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        selected = parse_only(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    if selected & {5, 9} and shutil.which("wrk") is None:
        print(
            "podvisor-bench: scenarios 5 and 9 need the load tool `wrk`, not found on PATH: install it with "
            "`sudo apt-get install -y wrk` (Debian/Ubuntu), or leave it out with --only",
            file=sys.stderr,
        )
        return 2
    if 12 in selected:
        try:
            rsyslog.rsyslogd()
        except RuntimeError as exc:
            print(f"podvisor-bench: scenario 12 needs Debian's rsyslog: {exc}, or leave it out with --only",
                  file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _terminate)
    sizes = for_mode(args.mode, args.runs)
    json_path = Path(args.json).resolve()
    if not json_path.parent.is_dir():
        parser.error(f"--json: folder {json_path.parent} does not exist")
    keep = args.workdir is not None
    workdir = Path(args.workdir) if keep else Path(tempfile.mkdtemp(prefix="podvisor-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    machine_info = machine()
    progress = Progress(len(selected))
    bench = Bench(sizes, selected, workdir, progress)
    try:
        for numbers, runner in RUNNERS:
            mine = sorted(numbers & selected)
            if not mine:
                continue
            t0 = time.monotonic()
            bench.attempt(mine, lambda runner=runner: runner(bench))
            for n in mine:
                bench.results[n].seconds = time.monotonic() - t0
            progress.advance(len(mine))
            progress.show(f"done: {', '.join(str(n) for n in mine)}")
    except KeyboardInterrupt:
        print("podvisor-bench: interrupted; stacks stopped", file=sys.stderr)
        return 130
    finally:
        progress.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results = [bench.results[n] for n in sorted(bench.results)]
    doc = document(results, mode=args.mode, runs=sizes.runs, started=started, sizes=sizes.to_json(),
                   machine_info=machine_info)
    write_json(json_path, doc)
    print(table(results))
    costs = where_time_goes(results)
    if costs:
        print("\n" + costs)
    s = doc["summary"]
    m = doc["machine"]
    print(f"\n{s['met']}/{s['goals']} goals met, {s['errors']} scenario errors; mode {args.mode}, "
          f"{sizes.runs} runs, {doc['duration_seconds']:.0f} s; JSON: {json_path}")
    print(f"machine: {m['cpus']} CPUs, {m['cpu_model']}, Python {m['python']}; load average (1 min) "
          f"{m['load_average_at_start'][0]} at the start, {m['load_average_at_end'][0]} at the end")
    return 1 if s["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
