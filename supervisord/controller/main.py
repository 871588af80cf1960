"""podvisor-controller: the pod lifecycle controller, run by supervisord as an event listener."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from podvisor.core.budget import SERVER_DRAIN_SECONDS
from podvisor.core.hosts import HostCheck
from podvisor.core.procs import leftovers
from podvisor.core.serving import Server
from podvisor.core.settings import Env, SettingsError, exit_bad_setting
from podvisor.core.supervisor import SupervisorConfig, SupervisorRPC
from podvisor.supervisord.controller.controller import Controller
from podvisor.supervisord.controller.events import Listener
from podvisor.supervisord.controller.sockets import SocketHolder
from podvisor.supervisord.controller.status import status_app
from podvisor.supervisord.spec import parse as specmod

log = logging.getLogger(__name__)
PROG = "podvisor-controller"


@dataclass(frozen=True)
class Settings:
    spec_path: Path
    host: str
    port: int
    supervisor: SupervisorConfig

    @classmethod
    def from_env(cls, env: Env) -> Settings:
        spec_path = env.path("CONTROLLER_SPEC", required=True)
        supervisor = SupervisorConfig.from_env(env)
        if not supervisor.serverurl:
            raise SettingsError("SUPERVISOR_SERVER_URL", None, "is not set: run me as a supervisord event listener")
        return cls(spec_path, env.host("CONTROLLER_HOST"), env.port("CONTROLLER_PORT", 9100), supervisor)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog=PROG, description=__doc__).parse_args(argv)
    try:
        settings = Settings.from_env(Env())
    except SettingsError as exc:
        return exit_bad_setting(PROG, exc)
    try:
        stack = specmod.from_dict(json.loads(settings.spec_path.read_text()))
    except (ValueError, OSError) as exc:
        return exit_bad_setting(PROG, SettingsError("CONTROLLER_SPEC", str(settings.spec_path), str(exc)))
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir = Path(stack.state_dir)
    if not state_dir.is_absolute():
        state_dir = (settings.spec_path.parent / state_dir).resolve()
    serverurl = settings.supervisor.serverurl
    holder = SocketHolder(state_dir / "handoff.sock", lambda program: leftovers(serverurl, program))
    holder.configure(stack.host, stack.pods)
    holder.start()
    controller = Controller(stack, state_dir, SupervisorRPC(settings.supervisor), serverurl, settings.spec_path,
                            holder)
    controller.prepare()
    controller.restore()
    app = status_app(controller.pods, stack.environment, lambda: controller.last_apply)
    app.hosts = HostCheck(settings.host)  # pod status answers only to the names it is reached by
    try:
        server = Server(app, host=settings.host, port=settings.port,
                        threads=4, ident=PROG, drain_seconds=SERVER_DRAIN_SECONDS)
    except OSError as exc:
        return exit_bad_setting(PROG, SettingsError("CONTROLLER_PORT", str(settings.port),
                                                    f"cannot listen on {settings.host}: {exc}"))
    server.serve_in_background("status-http")
    log.info("pod status on http://%s:%d/pods", settings.host, server.port)
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
