"""podvisor-systemd: install podvisor as a systemd service on a VM.

    sudo podvisor-systemd --state-dir /var/lib/podvisor --user podvisor \
        --unit /etc/systemd/system/podvisor.service
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from podvisor.supervisord.render.conf import DEFAULT_SPEC
from podvisor.supervisord.spec.parse import SpecError
from podvisor.supervisord.systemd.unit import install


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podvisor-systemd", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/podvisor"))
    parser.add_argument("--unit", type=Path, default=Path("/etc/systemd/system/podvisor.service"))
    parser.add_argument("--user", help="run as this user (it owns the state directory)")
    parser.add_argument("--bin-dir", default="../bin", help="process executables, relative to the conf or absolute")
    parser.add_argument("--supervisord", type=Path, default=Path(sys.executable).parent / "supervisord")
    args = parser.parse_args(argv)
    try:
        conf, unit = install(args.spec, args.state_dir, args.unit, args.user, args.bin_dir, args.supervisord)
    except (SpecError, OSError, LookupError) as exc:
        print(f"podvisor-systemd: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {conf} and {unit}; now: systemctl daemon-reload && systemctl enable --now podvisor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
