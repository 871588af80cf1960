"""podvisor-controller: the pod lifecycle controller, run by supervisord as an event listener."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from supervisord import spec as specmod
from supervisord.controller import status
from supervisord.controller.controller import Controller
from supervisord.controller.events import Listener
from supervisord.rpc import SupervisorRPC

log = logging.getLogger("podvisor.controller")


@dataclass(frozen=True)
class Settings:
    spec_path: Path
    host: str
    port: int
    serverurl: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        if "CONTROLLER_SPEC" not in env:
            raise ValueError("CONTROLLER_SPEC is not set (path of the resolved stack.pods.json)")
        if "SUPERVISOR_SERVER_URL" not in env:
            raise ValueError("SUPERVISOR_SERVER_URL is not set: run me as a supervisord event listener")
        port = env.get("CONTROLLER_PORT", "9100")
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"CONTROLLER_PORT must be a port number, got {port!r}")
        return cls(Path(env["CONTROLLER_SPEC"]), env.get("CONTROLLER_HOST", "127.0.0.1"), int(port),
                   env["SUPERVISOR_SERVER_URL"])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(dict(os.environ))
        stack = specmod.from_dict(json.loads(settings.spec_path.read_text()))
    except (ValueError, OSError, specmod.SpecError) as exc:
        log.error("podvisor-controller: %s", exc)
        return 2
    state_dir = Path(stack.state_dir)
    if not state_dir.is_absolute():
        state_dir = (settings.spec_path.parent / state_dir).resolve()
    controller = Controller(stack, state_dir, SupervisorRPC(settings.serverurl), settings.serverurl)
    controller.prepare()
    controller.restore()
    server = status.make_server(settings.host, settings.port, controller.pods)
    status.serve_in_background(server)
    log.info("pod status on http://%s:%d/pods", settings.host, server.server_address[1])
    controller.start_threads()
    # supervisord stops the listener last; SIGTERM then means everything else is already down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = Listener(sys.stdin.buffer, sys.stdout.buffer)
    while True:
        event = listener.next_event()
        if event is None:
            return 0
        try:
            controller.handle(event)
        finally:
            listener.ok()
