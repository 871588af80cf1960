"""The programs a fleet host's roles add to its stack.conf, so `supervisord -c stack.conf` runs them all.

    prometheus        the prometheus host: the central Prometheus, the agents' remote-write target
    clickhouse        store hosts: the host's shard of the log store
    ingest-nginx      store hosts: TLS on :8443 in front of the aggregator, for every logger
    prometheus-agent  every host: scrapes the host's targets on loopback, remote-writes to the central

supervisord itself starts and restarts them (autostart, autorestart): they are not pods, and the
controller leaves programs that are not a pod's, but the aggregator, alone. supervisord spawns by
priority and stops in reverse, each program waited for: the central Prometheus and ClickHouse come
before the aggregator (which waits for its store, AGGREGATOR_STORE_WAIT) and go after it; nginx comes
after the aggregator and goes once the pods' loggers have shipped their last lines through it; the
agent goes first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from podvisor.supervisord.fleet import ingest
from podvisor.supervisord.prometheus import fleet as promfleet
from podvisor.supervisord.render import nginx
from podvisor.supervisord.render.binaries import system_binary
from podvisor.supervisord.render.clickhouse import server_command
from podvisor.supervisord.render.conf import AGGREGATOR_PRIORITY, APP_PRIORITY, SIDECAR_PRIORITY, Renderer

AGENT_PORT = 9095  # the agent's own HTTP (health, its metrics), on 127.0.0.1
NGINX_DIR = "nginx"  # below the state folder: the ingest endpoint's pid, error log and temp files
# supervisord's order: lower starts first and stops last; the controller is 1.
PRIORITIES = {
    "prometheus": 2,
    "clickhouse": 5,
    "ingest-nginx": AGGREGATOR_PRIORITY + 10,
    # Last up, first down: while it runs it scrapes the sidecars every interval, and a sidecar that
    # is asked to stop waits for its kept-alive scrape connection to go quiet (the drain).
    "prometheus-agent": APP_PRIORITY + 100,
}
STOP_SECONDS = {"prometheus": 30, "clickhouse": 60, "ingest-nginx": 15, "prometheus-agent": 30}
# the stores and the ingest endpoint are up before the pods, and down after them
assert max(v for k, v in PRIORITIES.items() if k != "prometheus-agent") < SIDECAR_PRIORITY


@dataclass(frozen=True)
class HostRoles:
    """What of the fleet one host runs besides its pods."""

    address: str
    store: bool
    prometheus: bool


def program_names(roles: HostRoles) -> list[str]:
    """The programs the roles add, in start order."""
    names = ["prometheus"] if roles.prometheus else []
    names += ["clickhouse", "ingest-nginx"] if roles.store else []
    return sorted([*names, "prometheus-agent"], key=PRIORITIES.__getitem__)


def prometheus_binary() -> str:
    return system_binary("prometheus") or "/usr/bin/prometheus"


def nginx_prefix_dir(renderer: Renderer) -> str:
    """The ingest nginx's own folder relative to its prefix (the host folder): in the state folder."""
    state = renderer.stack.state_dir.rstrip("/")
    if state.startswith("/"):
        raise ValueError(f"stack: state_dir {state!r} must be relative to the host folder in a fleet")
    return f"{state}/{NGINX_DIR}"


def commands(renderer: Renderer, roles: HostRoles) -> dict[str, str]:
    """Each program's command line; paths absolute through %(here)s (the host folder)."""
    prom = prometheus_binary()
    out = {
        "prometheus": (f"{prom} --config.file=%(here)s/prometheus/prometheus.yml "
                       f"--storage.tsdb.path={renderer.state('prometheus')} "
                       "--web.config.file=%(here)s/prometheus/web.yml "
                       f"--web.listen-address={roles.address}:{promfleet.CENTRAL_PORT} "
                       "--web.enable-remote-write-receiver"),
        "clickhouse": f"{server_command()} --config-file=%(here)s/clickhouse/config.xml",
        "ingest-nginx": ingest.command(nginx.binary("nginx"), "%(here)s/", nginx_prefix_dir(renderer)),
        "prometheus-agent": (f"{prom} --enable-feature=agent --config.file=%(here)s/prometheus/agent.yml "
                             f"--storage.agent.path={renderer.state('prometheus-agent')} "
                             f"--web.listen-address=127.0.0.1:{AGENT_PORT}"),
    }
    return {name: out[name] for name in program_names(roles)}


def render(renderer: Renderer, roles: HostRoles) -> str:
    """The [program:x] sections of the host's roles, to append to its stack.conf."""
    sections = []
    for name, command in commands(renderer, roles).items():
        options: dict[str, object] = {
            "command": command,
            "priority": PRIORITIES[name],
            "autostart": "true",
            "autorestart": "true",
            "startsecs": 1,
            "startretries": 10,
            "umask": "077",
            # nginx finishes the requests in flight on QUIT; TERM drops them
            "stopsignal": "QUIT" if name == "ingest-nginx" else "TERM",
            "stopwaitsecs": STOP_SECONDS[name],
            "killasgroup": "true",  # the SIGKILL backstop reaches nginx's workers too
            **renderer.logfiles(renderer.state(f"{name}.log"), None),
        }
        sections.append(renderer.section(f"program:{name}", options))
    return "\n".join(sections)


def state_dirs(renderer: Renderer, roles: HostRoles, host_folder: Path) -> list[Path]:
    """Folders the programs need that nothing else creates."""
    state = host_folder / renderer.stack.state_dir
    return [state / NGINX_DIR / "tmp"] if roles.store else []
