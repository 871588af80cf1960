"""podvisor-render --fleet FLEET.toml --out DIR: every host's files, the CA and the certificates.

    DIR/ca/ca.crt, ca.key         the fleet's CA (keep ca.key off the hosts)
    DIR/token                     the fleet's master token (every aggregator's; loggers get credentials)
    DIR/<host>/                   copy to the host, run `supervisord -c stack.conf` there: it runs all below
      stack.conf, stack.pods.json the host's pods, loggers shipping to https://<store>:8443 (LOGGER_CA_FILE),
                                  and the programs of its roles (podvisor.supervisord.fleet.programs)
      tls/ca.crt host.crt host.key
      prometheus/agent.yml        the host's Prometheus agent (remote-writes to the central one)
      store hosts: ingest.nginx.conf, clickhouse/config.xml users.xml (data in the host's clickhouse_data)
      the prometheus host: prometheus/prometheus.yml, web.yml, the rules and their promtool tests
"""
from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from podvisor.supervisord.fleet import ingest, programs, tls
from podvisor.supervisord.fleet.spec import Fleet, FleetHost
from podvisor.supervisord.prometheus import fleet as promfleet
from podvisor.supervisord.prometheus.rules import render_rules
from podvisor.supervisord.prometheus.ruletests import TESTS_FILENAME, render_rules_test
from podvisor.supervisord.render.clickhouse import Node, render_config, render_users
from podvisor.supervisord.render.conf import Renderer, make_state_dirs, render_files, write_files
from podvisor.supervisord.spec import parse as specmod


def store_url(fleet: Fleet, host: FleetHost) -> str:
    """AGGREGATOR_STORE of a store host: its own node first, then the others; its instance number."""
    stores = fleet.stores
    order = [host] + [s for s in stores if s is not host]
    nodes = ",".join(("127.0.0.1" if s is host else s.address) + ":8123" for s in order)
    return f"clickhouse+http://{nodes}/{fleet.database}?cluster={fleet.name}&instance={stores.index(host)}"


def _token(out: Path) -> Path:
    path = out / "token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path


def render(fleet: Fleet, out: Path, bin_dir: str) -> list[Path]:
    """Write every file; return the host folders."""
    out.mkdir(parents=True, exist_ok=True)
    ca = tls.ensure_ca(out / "ca", fleet.name)
    token = _token(out)
    seen: dict[str, str] = {}
    folders = []
    central = fleet.prometheus
    for host in fleet.hosts:
        folder = out / host.name
        tls_dir = folder / "tls"
        cert, key = tls.issue(ca, tls_dir, "host", [host.name, host.address])
        shutil.copyfile(ca[0], tls_dir / "ca.crt")
        shutil.copyfile(token, folder / "token")
        os.chmod(folder / "token", 0o600)
        data = _spec_dict(host.pods)
        for pod in data.get("pods", {}):
            if pod in seen:
                raise specmod.SpecError(f"pod {pod!r} runs on hosts {seen[pod]} and {host.name}: pod names are "
                                        "fleet-wide (a logger's credential and its ids are its pod's)")
            seen[pod] = host.name
        target = fleet.host(host.ships_to)
        stack = data.setdefault("stack", {})
        stack.update(state_dir="var", ingest_url=f"https://{target.address}:{ingest.INGEST_PORT}",
                     ca_file="tls/ca.crt", token_file="token")
        if "store" in host.roles:
            stack["store"] = store_url(fleet, host)
        parsed = specmod.from_dict(data)
        roles = programs.HostRoles(host.address, "store" in host.roles, host is central)
        renderer = Renderer(parsed, bin_dir)
        if roles.store:
            # paths relative to nginx's prefix, the host folder: the folder can be copied anywhere
            ingest.write(folder, host.address, ingest.INGEST_PORT, Path("tls") / cert.name, Path("tls") / key.name,
                         f"127.0.0.1:{parsed.aggregator_port}", programs.nginx_prefix_dir(renderer))
            shards = [Node(s.address) for s in fleet.stores]
            (folder / "clickhouse").mkdir(exist_ok=True)
            (folder / "clickhouse" / "config.xml").write_text(render_config(
                host.clickhouse_data, Node(host.address), fleet.name, shards, listen=("127.0.0.1", host.address),
                console=True))
            (folder / "clickhouse" / "users.xml").write_text(render_users(
                ["127.0.0.1", "::1", *(s.address for s in fleet.stores)]))
        files = render_files(parsed, folder / "stack.conf", bin_dir)
        files[folder / "stack.conf"] += "\n" + programs.render(renderer, roles)
        write_files(files)
        make_state_dirs(parsed, folder)
        for directory in programs.state_dirs(renderer, roles, folder):
            directory.mkdir(parents=True, exist_ok=True)
        prom = folder / "prometheus"
        prom.mkdir(exist_ok=True)
        pods = {p.name: f"127.0.0.1:{p.metrics_port}" for p in parsed.pods}
        (prom / "agent.yml").write_text(promfleet.render_agent(
            host.name, pods, f"127.0.0.1:{parsed.aggregator_port}", f"127.0.0.1:{parsed.controller_port}",
            central=f"{central.address}:{promfleet.CENTRAL_PORT}", ca_file="../tls/ca.crt",
            cert_file="../tls/host.crt", key_file="../tls/host.key", scrape_interval=fleet.scrape_interval))
        if host is central:
            (prom / "prometheus.yml").write_text(promfleet.render_central(fleet.scrape_interval))
            (prom / "web.yml").write_text(promfleet.render_web_config("../tls/host.crt", "../tls/host.key",
                                                                      "../tls/ca.crt"))
            (prom / "podvisor.rules.yml").write_text(render_rules())
            (prom / TESTS_FILENAME).write_text(render_rules_test())
            (prom / promfleet.FLEET_RULES_FILENAME).write_text(promfleet.render_rules([h.name for h in fleet.hosts]))
            (prom / promfleet.FLEET_TESTS_FILENAME).write_text(promfleet.render_rules_test())
        folders.append(folder)
    return folders


def _spec_dict(path: Path) -> dict:
    import tomllib

    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise specmod.SpecError(f"spec {path}: {exc}") from None
