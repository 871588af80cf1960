"""podvisor-render --fleet: every host's files from fleet.toml, the CA and certificates that verify."""
from __future__ import annotations

import os
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
