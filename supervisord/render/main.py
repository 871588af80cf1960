"""podvisor-render: the pods spec -> supervisord/stack.conf and stack.pods.json (and Prometheus files).

`podvisor-render` rewrites the committed files; `podvisor-render --check` exits 1 when they drift
from the spec; a bad spec exits 2 with one line naming the pod and the key.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from podvisor.supervisord.prometheus import stack as prometheus_stack
from podvisor.supervisord.render.conf import (
    DEFAULT_CONF,
    DEFAULT_SPEC,
    default_bin_dir,
    make_state_dirs,
    render_files,
    source_name,
    write_files,
)
from podvisor.supervisord.spec import parse as specmod
from podvisor.supervisord.spec.model import Stack


def previous_stack(conf: Path) -> Stack | None:
    """The stack rendered last time beside `conf`: the ports it assigned stay where they were."""
    try:
        return specmod.from_dict(json.loads(conf.with_name(conf.stem + ".pods.json").read_text()))
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podvisor-render", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="pods spec (TOML)")
    parser.add_argument("--out", default=str(DEFAULT_CONF), help="supervisord conf to write")
    parser.add_argument("--bin-dir", help="where the process executables are (relative to the conf, or absolute; "
                        "default: this checkout's bin/, seen from the conf's folder)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files on disk differ from the spec")
    parser.add_argument("--prometheus", metavar="DIR",
                        help="also write prometheus.yml, alert rules and their promtool tests to DIR")
    parser.add_argument("--scrape-interval", default="15s", help="with --prometheus: the scrape interval")
    args = parser.parse_args(argv)
    try:
        stack = specmod.load(args.spec, previous=previous_stack(Path(args.out)))
    except specmod.SpecError as exc:
        print(f"podvisor-render: {exc}", file=sys.stderr)
        return 2
    try:
        prometheus_stack.render_stack(stack, args.scrape_interval)
    except ValueError as exc:
        print(f"podvisor-render: --scrape-interval: {exc}", file=sys.stderr)
        return 2
    bin_dir = args.bin_dir or default_bin_dir(Path(args.out))
    files = render_files(stack, Path(args.out), bin_dir, source_name(Path(args.spec), Path(args.out)))
    if args.check:
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"podvisor-render: out of date with {args.spec}: {', '.join(stale)} (run podvisor-render)",
                  file=sys.stderr)
            return 1
        return 0
    write_files(files)
    make_state_dirs(stack, Path(args.out).resolve().parent)
    if args.prometheus:
        for path in prometheus_stack.write_stack(args.prometheus, stack, args.scrape_interval):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
