"""Install podvisor as a systemd service on a VM: a conf for the machine plus the unit that runs it.

    sudo podvisor-systemd --state-dir /var/lib/podvisor --user podvisor --unit /etc/systemd/system/podvisor.service

renders ``<repo>/supervisord/stack.vm.conf`` from the pods spec (state in --state-dir, aggregator
reads require the token) and the unit: supervisord in the foreground, SIGTERM to supervisord only
(KillMode=mixed) so its ordered shutdown stops apps before sidecars, SIGKILL for everything left
after TimeoutStopSec, which is longer than any pod's grace.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

from supervisord import render
from supervisord import spec as specmod
from supervisord.spec import Stack

UNIT = """\
[Unit]
Description=podvisor: pods with logging and metrics sidecars under supervisord
Documentation=file://{repo}/README.md
After=network.target

[Service]
Type=simple
{user}WorkingDirectory={repo}
Environment=PATH={bindir}:/usr/local/bin:/usr/bin:/bin
ExecStart={supervisord} -n -c {conf}
# SIGTERM reaches supervisord alone; it stops apps first, then sidecars (which drain), in order.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec={timeout}
Restart=on-failure
RestartSec=2
UMask=0077
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={state_dir}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes

[Install]
WantedBy=multi-user.target
"""


def stop_timeout(stack: Stack) -> int:
    """Longer than the slowest pod's grace plus its sidecars' drain, with room for serial stops."""
    return int(sum(p.grace_seconds + 10 for p in stack.pods) + 30)


def render_unit(stack: Stack, conf: Path, supervisord: Path, user: str | None) -> str:
    return UNIT.format(repo=conf.parent.parent, bindir=supervisord.parent, supervisord=supervisord, conf=conf,
                       timeout=stop_timeout(stack), state_dir=stack.state_dir,
                       user=f"User={user}\nGroup={user}\n" if user else "")


def vm_stack(stack: Stack, state_dir: Path) -> Stack:
    return dataclasses.replace(stack, state_dir=str(state_dir), read_auth="always")


def install(spec_path: Path, state_dir: Path, unit_path: Path, user: str | None, bin_dir: str,
            supervisord: Path) -> tuple[Path, Path]:
    stack = vm_stack(specmod.load(spec_path), state_dir.resolve())
    conf = spec_path.resolve().parent / "stack.vm.conf"
    files = render.render_files(stack, conf, bin_dir)
    render.write_files(files)
    render.make_state_dirs(stack, conf.parent)
    unit_path.write_text(render_unit(stack, conf, supervisord, user))
    if user:
        for d in render.state_dirs(stack, state_dir.resolve()):
            shutil.chown(d, user, user)
    return conf, unit_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="podvisor-systemd", description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=render.DEFAULT_SPEC)
    parser.add_argument("--state-dir", type=Path, default=Path("/var/lib/podvisor"))
    parser.add_argument("--unit", type=Path, default=Path("/etc/systemd/system/podvisor.service"))
    parser.add_argument("--user", help="run as this user (it owns the state directory)")
    parser.add_argument("--bin-dir", default="../bin", help="process executables, relative to the conf or absolute")
    parser.add_argument("--supervisord", type=Path, default=Path(sys.executable).parent / "supervisord")
    args = parser.parse_args(argv)
    try:
        conf, unit = install(args.spec, args.state_dir, args.unit, args.user, args.bin_dir, args.supervisord)
    except (specmod.SpecError, OSError, LookupError) as exc:
        print(f"podvisor-systemd: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {conf} and {unit}; now: systemctl daemon-reload && systemctl enable --now podvisor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
