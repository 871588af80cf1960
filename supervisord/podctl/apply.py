"""`podctl apply`: bring a running stack to its (changed) pods spec, like `kubectl apply`.

The spec is validated and rendered into the stack's conf and resolved JSON (as podvisor-render
does), then the controller is asked to apply it: new pods are added, deleted ones stopped in order
and removed, changed ones restarted, each in the spec's order; the others keep their processes.
"""
from __future__ import annotations

import configparser
import json
import time
import uuid
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from podvisor.supervisord.controller import changes
from podvisor.supervisord.podctl.client import Client
from podvisor.supervisord.podctl.errors import Unreachable, UsageError
from podvisor.supervisord.render.conf import make_state_dirs, render_files, source_name, write_files
from podvisor.supervisord.spec import parse as specmod

EXIT_OK, EXIT_FAIL = 0, 1


@dataclass(frozen=True)
class Rendered:
    """How a conf was rendered: its resolved spec, its source spec and its bin folder."""

    conf: Path
    spec_json: Path
    source: Path | None
    bin_dir: str

    @classmethod
    def of(cls, conf: Path) -> Rendered:
        parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
        try:
            found = parser.read(conf)
        except configparser.Error as exc:
            raise UsageError(f"{conf} is not a podvisor conf: {exc}") from None
        if not found:
            raise UsageError(f"cannot read {conf}")
        here = conf.resolve().parent
        section = dict(parser.items("podvisor")) if parser.has_section("podvisor") else {}
        if "spec" not in section:
            raise UsageError(f"{conf}: [podvisor] spec is missing (render it with podvisor-render)")
        source = section.get("source")
        return cls(conf, Path(section["spec"].replace("%(here)s", str(here))),
                   here / source if source else None, section.get("bin_dir", "../bin").replace("%%", "%"))


def apply(client: Client, conf: Path, spec_file: Path | None, timeout: float, wait: bool, out: TextIO) -> int:
    """Render `spec_file` (default: the conf's own source spec) and have the controller apply it."""
    rendered = Rendered.of(conf)
    spec_path = spec_file or rendered.source
    if spec_path is None:
        raise ValueError(f"{conf} names no source spec: give one with -f")
    old = specmod.from_dict(json.loads(rendered.spec_json.read_text()))
    try:
        new = specmod.load(spec_path, previous=old)
    except specmod.SpecError as exc:
        raise UsageError(str(exc)) from None
    refused = changes.restart_only_changes(old, new)
    if refused:
        out.write(f"stack settings {', '.join(refused)} changed: they apply when the stack is started again "
                  "(podctl down && podctl up -d)\n")
        return EXIT_FAIL
    client.check_supervisord()
    write_files(render_files(new, conf, rendered.bin_dir, source_name(spec_path, conf)))
    make_state_dirs(new, conf.resolve().parent)
    op_id = uuid.uuid4().hex[:12]
    try:
        client.rpc.send_remote("podvisor", f"apply {op_id}")
    except (OSError, xmlrpc.client.Error) as exc:
        raise Unreachable(f"cannot reach supervisord at {client.target.serverurl}: {exc}") from exc
    result = _wait_applied(client, op_id, time.monotonic() + timeout)
    if result is None:
        out.write(f"timed out after {timeout:.0f}s waiting for the controller to apply the spec\n")
        return EXIT_FAIL
    if not result.get("ok"):
        out.write(f"apply failed: {result.get('message')}\n")
        return EXIT_FAIL
    for line in result.get("changes", []):
        out.write(line + "\n")
    touched = [line.split()[0].removeprefix("pod/") for line in result.get("changes", [])
               if line.endswith((changes.CREATED, changes.CONFIGURED, changes.RELOADED))]
    if wait and touched:
        ok, waiting = client.wait_ready(touched, time.monotonic() + timeout)
        if not ok:
            out.write(f"applied, but not ready after {timeout:.0f}s: {waiting}\n")
            return EXIT_FAIL
    return EXIT_OK


def _wait_applied(client: Client, op_id: str, deadline: float) -> dict | None:
    while time.monotonic() < deadline:
        result = client.status().get("apply") or {}
        if result.get("id") == op_id and result.get("done"):
            return result
        time.sleep(0.1)  # polling the controller, bounded by the deadline
    return None
