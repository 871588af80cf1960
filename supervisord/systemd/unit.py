"""podvisor as a systemd service on a VM: a conf for the machine plus the unit that runs it.

`install()` renders ``<repo>/supervisord/stack.vm.conf`` from the pods spec (state in --state-dir,
aggregator reads require the token) and the unit: supervisord in the foreground, SIGTERM to
supervisord only (KillMode=mixed) so its ordered shutdown stops apps before sidecars, SIGKILL for
everything left after TimeoutStopSec (the stack's stop budget, podvisor.core.budget).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from podvisor.supervisord.render import conf as render
from podvisor.supervisord.spec import parse as specmod
from podvisor.supervisord.spec.model import Stack

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


def render_unit(stack: Stack, conf: Path, supervisord: Path, user: str | None) -> str:
    return UNIT.format(repo=conf.parent.parent, bindir=supervisord.parent, supervisord=supervisord, conf=conf,
                       timeout=stack.budget.systemd_timeout_seconds, state_dir=stack.state_dir,
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
