"""The fleet's Prometheus files, checked by the real promtool (Debian's prometheus package)."""
from __future__ import annotations

from pathlib import Path

from podvisor.supervisord.fleet import tls
from podvisor.supervisord.prometheus import fleet
from tests.unit.test_prometheus_promtool import promtool


def test_fleet_rules_pass_their_promtool_tests(tmp_path: Path):
    (tmp_path / fleet.FLEET_RULES_FILENAME).write_text(fleet.render_rules(["a", "b", "c"]))
    (tmp_path / fleet.FLEET_TESTS_FILENAME).write_text(fleet.render_rules_test())
    checked = promtool("check", "rules", fleet.FLEET_RULES_FILENAME, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", fleet.FLEET_TESTS_FILENAME, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_agent_and_central_configs_are_valid(tmp_path: Path):
    ca = tls.ensure_ca(tmp_path / "ca", "t")
    crt, key = tls.issue(ca, tmp_path, "h", ["h1", "198.18.0.1"])
    (tmp_path / "ca.crt").write_text(ca[0].read_text())
    agent = fleet.render_agent("h1", {"user": "127.0.0.1:9101"}, "127.0.0.1:8080", "127.0.0.1:9100",
                               central="198.18.0.1:9090", ca_file="ca.crt", cert_file="h.crt", key_file="h.key")
    assert 'host: "h1"' in agent and "https://198.18.0.1:9090/api/v1/write" in agent
    (tmp_path / "agent.yml").write_text(agent)
    (tmp_path / "prometheus.yml").write_text(fleet.render_central())
    (tmp_path / "podvisor.rules.yml").write_text("groups: []\n")
    (tmp_path / fleet.FLEET_RULES_FILENAME).write_text(fleet.render_rules(["h1"]))
    (tmp_path / "web.yml").write_text(fleet.render_web_config("h.crt", "h.key", "ca.crt"))
    central = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert central.returncode == 0, central.stdout + central.stderr
    web = promtool("check", "web-config", "web.yml", cwd=tmp_path)
    assert web.returncode == 0, web.stdout + web.stderr
    assert "RequireAndVerifyClientCert" in (tmp_path / "web.yml").read_text()
    checked_agent = promtool("check", "config", "--agent", "agent.yml", cwd=tmp_path)
    assert checked_agent.returncode == 0, checked_agent.stdout + checked_agent.stderr
