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
    parser.add_argument("--fleet", metavar="FLEET_TOML",
                        help="render a fleet instead (docs/scaling-out.md): every host's files, the CA and the "
                             "certificates into --out, a folder")
    args = parser.parse_args(argv)
    if args.fleet:
        return render_fleet(args)
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


def render_fleet(args: argparse.Namespace) -> int:
    from podvisor.supervisord.fleet import render as fleet_render
    from podvisor.supervisord.fleet import spec as fleet_spec
    from podvisor.supervisord.fleet.tls import TlsError

    if args.out == str(DEFAULT_CONF):
        print("podvisor-render: --fleet needs --out DIR (a folder for every host's files)", file=sys.stderr)
        return 2
    try:
        fleet = fleet_spec.load(Path(args.fleet))
        bin_dir = args.bin_dir or default_bin_dir(Path(args.out) / "host" / "stack.conf")  # seen from a host folder
        folders = fleet_render.render(fleet, Path(args.out), bin_dir)
    except (fleet_spec.FleetError, specmod.SpecError, TlsError, ValueError) as exc:
        print(f"podvisor-render: {exc}", file=sys.stderr)
        return 2
    for folder in folders:
        print(f"wrote {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
