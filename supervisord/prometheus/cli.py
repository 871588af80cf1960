"""`python -m podvisor.supervisord.prometheus`: write prometheus.yml, the rules file and its promtool tests.

    python -m podvisor.supervisord.prometheus --out var/prometheus --aggregator 127.0.0.1:8080 \
        --controller 127.0.0.1:9100 --pod user=127.0.0.1:9101 --pod product=127.0.0.1:9102
    python -m podvisor.supervisord.prometheus --out var/prometheus --spec supervisord/pods.toml --scrape-interval 5s
    python -m podvisor.supervisord.prometheus --commit    # refresh the copies committed beside this module

`podvisor-render --prometheus DIR` does the `--spec` form for the spec it renders.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from podvisor.supervisord.spec import parse as specmod

from .config import CONFIG_FILENAME, RULES_FILENAME, render_config
from .rules import render_rules
from .ruletests import TESTS_FILENAME, render_rules_test
from .stack import DEFAULT_SCRAPE_INTERVAL, default_timeout, stack_targets

PACKAGE_DIR = Path(__file__).resolve().parent


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _pod(value: str) -> tuple[str, str]:
    pod, sep, address = value.partition("=")
    if not sep or not pod or not address:
        raise argparse.ArgumentTypeError(f"expected POD=HOST:PORT, got {value!r}")
    return pod, address


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podvisor.supervisord.prometheus",
        description=(f"Write {CONFIG_FILENAME}, {RULES_FILENAME} and {TESTS_FILENAME} for a podvisor stack."),
    )
    parser.add_argument("--out", type=Path, help="directory to write the files to (created if missing)")
    parser.add_argument(
        "--pod",
        type=_pod,
        action="append",
        default=[],
        metavar="POD=HOST:PORT",
        help="a pod's metrics sidecar; repeat for each pod",
    )
    parser.add_argument("--aggregator", metavar="HOST:PORT", help="the log aggregator (scraped at /metrics)")
    parser.add_argument(
        "--controller", metavar="HOST:PORT", help="the lifecycle controller (scraped at /metrics)"
    )
    parser.add_argument(
        "--spec", type=Path, help="take every target from this pods spec (instead of --pod etc.)"
    )
    parser.add_argument("--scrape-interval", default=DEFAULT_SCRAPE_INTERVAL)
    parser.add_argument("--scrape-timeout", help="default: 10s, or the scrape interval when shorter")
    parser.add_argument("--evaluation-interval", help="default: the scrape interval")
    parser.add_argument(
        "--commit",
        action="store_true",
        help=f"rewrite the committed {RULES_FILENAME} and {TESTS_FILENAME} in {PACKAGE_DIR}",
    )
    args = parser.parse_args(argv)
    if args.out is None and not args.commit:
        parser.error("nothing to do: give --out DIR and/or --commit")
    pods = dict(args.pod)
    if len(pods) != len(args.pod):
        parser.error("--pod: the same pod is given twice")
    aggregator, controller = args.aggregator, args.controller
    try:
        if args.spec is not None:
            if pods or aggregator or controller:
                parser.error("--spec takes every target from the spec: drop --pod/--aggregator/--controller")
            pods, aggregator, controller = stack_targets(specmod.load(args.spec))
        config = render_config(
            pods,
            aggregator=aggregator,
            controller=controller,
            scrape_interval=args.scrape_interval,
            scrape_timeout=args.scrape_timeout or default_timeout(args.scrape_interval),
            evaluation_interval=args.evaluation_interval or args.scrape_interval,
        )
    except (ValueError, specmod.SpecError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    rules, tests = render_rules(), render_rules_test()
    written = []
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in ((CONFIG_FILENAME, config), (RULES_FILENAME, rules), (TESTS_FILENAME, tests)):
            write_atomic(args.out / name, text)
            written.append(args.out / name)
    if args.commit:
        for name, text in ((RULES_FILENAME, rules), (TESTS_FILENAME, tests)):
            write_atomic(PACKAGE_DIR / name, text)
            written.append(PACKAGE_DIR / name)
    for path in written:
        print(f"wrote {path}")
    return 0
