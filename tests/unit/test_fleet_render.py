"""podvisor-render --fleet: every host's files from fleet.toml, the CA and certificates that verify."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from podvisor.supervisord.render.main import main

REPO = Path(__file__).resolve().parents[2]

FLEET = """
[fleet]
name = "shop"
pods = "pods.toml"

[hosts.store1]
address = "198.18.0.1"
roles = ["store", "prometheus"]

[hosts.store2]
address = "198.18.0.2"
roles = ["store"]
pods = "web.toml"

[hosts.web1]
address = "198.18.0.3"
pods = "edge.toml"
ships_to = "store2"
"""


def pods(name: str) -> str:
    return f'[pods.{name}]\ncommand = "podvisor-user"\n'


def test_a_fleet_renders_every_hosts_files(tmp_path: Path, capsys):
    (tmp_path / "fleet.toml").write_text(FLEET)
    for file, pod in (("pods.toml", "user"), ("web.toml", "product"), ("edge.toml", "edge")):
        (tmp_path / file).write_text(pods(pod))
    out = tmp_path / "out"
    assert main(["--fleet", str(tmp_path / "fleet.toml"), "--out", str(out)]) == 0, capsys.readouterr().err
    for host in ("store1", "store2", "web1"):
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(out / "ca" / "ca.crt"),
                                 str(out / host / "tls" / "host.crt")], capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
        conf = (out / host / "stack.conf").read_text()
        assert "LOGGER_CA_FILE" in conf and (out / host / "prometheus" / "agent.yml").exists()
    store1 = (out / "store1" / "stack.conf").read_text()
    assert "clickhouse+http://127.0.0.1:8123,198.18.0.2:8123/podvisor?cluster=shop&instance=0" in store1
    assert 'LOGGER_AGGREGATOR_URL="https://198.18.0.1:8443"' in store1
    assert 'LOGGER_AGGREGATOR_URL="https://198.18.0.2:8443"' in (out / "web1" / "stack.conf").read_text()
    assert (out / "store2" / "ingest.nginx.conf").exists() and not (out / "web1" / "ingest.nginx.conf").exists()
    assert "<shop>" in (out / "store2" / "clickhouse" / "config.xml").read_text()
    assert (out / "store1" / "prometheus" / "fleet.rules.yml").exists()
    assert oct((out / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"
    ca = (out / "ca" / "ca.crt").read_bytes()
    assert main(["--fleet", str(tmp_path / "fleet.toml"), "--out", str(out)]) == 0  # again: the CA is kept
    assert (out / "ca" / "ca.crt").read_bytes() == ca


def test_a_pod_name_on_two_hosts_is_refused(tmp_path: Path, capsys):
    (tmp_path / "fleet.toml").write_text(FLEET)
    for file in ("pods.toml", "web.toml", "edge.toml"):
        (tmp_path / file).write_text(pods("user"))
    assert main(["--fleet", str(tmp_path / "fleet.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "fleet-wide" in capsys.readouterr().err


def test_the_example_fleet_renders_with_the_readmes_command(tmp_path: Path):
    """supervisord/examples/fleet, shown in the README's "Scaling out", rendered by the console script
    as the README runs it, in a copy of the example's folder."""
    example = tmp_path / "fleet-example"
    shutil.copytree(REPO / "supervisord" / "examples" / "fleet", example, ignore=shutil.ignore_patterns("fleet"))
    script = Path(sys.executable).parent / "podvisor-render"
    env = {**os.environ, "PATH": f"{script.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", "podvisor-render --fleet fleet.toml --out fleet/"], cwd=example, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "wrote fleet/store1\nwrote fleet/web1\n", done.stdout + done.stderr
    out = example / "fleet"
    store1, web1 = ((out / host / "stack.conf").read_text() for host in ("store1", "web1"))
    assert "clickhouse+http://127.0.0.1:8123/podvisor?cluster=shop&instance=0" in store1
    for conf in (store1, web1):
        assert 'LOGGER_AGGREGATOR_URL="https://10.0.0.11:8443"' in conf and "LOGGER_CA_FILE" in conf
    assert "[program:user-app]" in store1 and "[program:product-app]" in web1
    assert (out / "store1" / "ingest.nginx.conf").exists() and (out / "store1" / "clickhouse" / "config.xml").exists()
    assert (out / "store1" / "prometheus" / "prometheus.yml").exists()
    assert not (out / "web1" / "ingest.nginx.conf").exists() and (out / "web1" / "prometheus" / "agent.yml").exists()
    assert (out / "token").exists() and oct((out / "ca" / "ca.key").stat().st_mode & 0o777) == "0o600"


def render_fleet(tmp_path: Path, fleet: str = FLEET) -> Path:
    (tmp_path / "fleet.toml").write_text(fleet)
    for file, pod in (("pods.toml", "user"), ("web.toml", "product"), ("edge.toml", "edge")):
        (tmp_path / file).write_text(pods(pod))
    out = tmp_path / "out"
    assert main(["--fleet", str(tmp_path / "fleet.toml"), "--out", str(out)]) == 0
    return out


def sections(conf: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser()
    parser.read_string(conf.read_text())
    return {name.removeprefix("program:"): dict(parser[name]) for name in parser.sections()
            if name.startswith("program:")}


ROLE_PROGRAMS = {"prometheus", "clickhouse", "ingest-nginx", "prometheus-agent"}


def test_each_host_runs_the_programs_of_its_roles_and_no_others(tmp_path: Path):
    out = render_fleet(tmp_path)
    found = {host: set(sections(out / host / "stack.conf")) & ROLE_PROGRAMS for host in ("store1", "store2", "web1")}
    assert found == {"store1": ROLE_PROGRAMS, "store2": {"clickhouse", "ingest-nginx", "prometheus-agent"},
                     "web1": {"prometheus-agent"}}
    for host in ("store1", "store2", "web1"):
        for name, program in sections(out / host / "stack.conf").items():
            if name in ROLE_PROGRAMS:  # supervisord keeps them running; the controller runs only pods
                assert (program["autostart"], program["autorestart"], program["umask"]) == ("true", "true", "077")
                assert program["stdout_logfile"] == f"%(here)s/var/{name}.log" and program["redirect_stderr"] == "true"
                assert program["command"].split()[0].startswith("/"), program["command"]  # absolute binaries


def test_start_order_stores_before_the_aggregator_nginx_after_it_pods_last(tmp_path: Path):
    progs = sections(render_fleet(tmp_path) / "store1" / "stack.conf")
    priority = {name: int(p["priority"]) for name, p in progs.items()}
    # supervisord starts lower priorities first and its shutdown stops them in reverse, each waited for
    assert 1 < priority["prometheus"] < priority["clickhouse"] < priority["aggregator"] < priority["ingest-nginx"]
    assert priority["ingest-nginx"] < priority["user-logger"] < priority["user-app"] < priority["prometheus-agent"]
    assert progs["ingest-nginx"]["stopsignal"] == "QUIT" and "-g 'daemon off;'" in progs["ingest-nginx"]["command"]


def test_role_programs_listen_only_where_their_role_needs(tmp_path: Path):
    out = render_fleet(tmp_path)
    for host, address in (("store1", "198.18.0.1"), ("store2", "198.18.0.2"), ("web1", "198.18.0.3")):
        progs = sections(out / host / "stack.conf")
        agent = progs["prometheus-agent"]["command"]
        assert "--enable-feature=agent" in agent and "--web.listen-address=127.0.0.1:9095" in agent
        assert "--storage.agent.path=%(here)s/var/prometheus-agent" in agent
        if "prometheus" in progs:  # the agents' remote-write target: on the fleet address, TLS required
            central = progs["prometheus"]["command"]
            assert f"--web.listen-address={address}:9090" in central and "--web.enable-remote-write-receiver" in central
            assert "--web.config.file=%(here)s/prometheus/web.yml" in central
        if "ingest-nginx" in progs:
            conf = (out / host / "ingest.nginx.conf").read_text()
            assert re.findall(r"listen ([^;]+);", conf) == [f"{address}:8443 ssl"]
            assert "\ndaemon" not in conf and "ssl_certificate tls/host.crt;" in conf
            config = (out / host / "clickhouse" / "config.xml").read_text()
            assert re.findall(r"<listen_host>(.*?)</listen_host>", config) == ["127.0.0.1", address]
        else:
            assert not (out / host / "clickhouse").exists()
    rules = (out / "store1" / "prometheus" / "prometheus.yml").read_text()
    assert "fleet.rules.yml" in rules and "podvisor.rules.yml" in rules


def test_clickhouse_data_and_scrape_interval_come_from_the_fleet_spec(tmp_path: Path):
    fleet = FLEET.replace('pods = "pods.toml"\n', 'pods = "pods.toml"\nscrape_interval = "2s"\n', 1)
    fleet = fleet.replace('roles = ["store"]\n', 'roles = ["store"]\nclickhouse_data = "/srv/ch2"\n')
    out = render_fleet(tmp_path, fleet)
    default = (out / "store1" / "clickhouse" / "config.xml").read_text()
    assert "<path>/var/lib/clickhouse-podvisor/data/</path>" in default
    config = (out / "store2" / "clickhouse" / "config.xml").read_text()
    assert "<path>/srv/ch2/data/</path>" in config and "<console>1</console>" in config  # logs: supervisord's
    assert 'scrape_interval: "2s"' in (out / "web1" / "prometheus" / "agent.yml").read_text()


def test_a_relative_clickhouse_data_folder_is_refused(tmp_path: Path, capsys):
    fleet = FLEET.replace('roles = ["store"]\n', 'roles = ["store"]\nclickhouse_data = "ch"\n')
    (tmp_path / "fleet.toml").write_text(fleet)
    assert main(["--fleet", str(tmp_path / "fleet.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "clickhouse_data' must be an absolute path" in capsys.readouterr().err


def test_rendering_is_deterministic(tmp_path: Path):
    out = render_fleet(tmp_path)
    first = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    render_fleet(tmp_path)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == first
