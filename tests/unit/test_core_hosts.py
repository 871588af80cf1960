"""The Host check against DNS rebinding, and the aggregator's use of AGGREGATOR_ALLOWED_HOSTS."""
from __future__ import annotations

import pytest

from podvisor.aggregator.app import create_app
from podvisor.core.hosts import HostCheck, host_name
from podvisor.core.settings import Env, SettingsError
from tests.unit.test_aggregator_fixtures import make_settings, state_of


def test_host_names_lose_their_port_and_case():
    assert host_name("Example.COM:8080") == "example.com"
    assert host_name("[::1]:9100") == "::1" and host_name("::1") == "::1"
    assert host_name("localhost.") == "localhost"


def test_local_names_the_bound_address_and_extra_names_pass():
    check = HostCheck("10.0.0.5", ("logs.example.com",))
    for ok in ("localhost", "localhost:1", "127.0.0.1:8080", "[::1]:8080", "10.0.0.5:8080",
               "LOGS.example.com:443", None, ""):
        assert check.allows(ok), ok
    for bad in ("evil.example", "127.0.0.2", "10.0.0.6", "logs.example.com.evil", "[::2]"):
        assert not check.allows(bad), bad
    assert HostCheck("0.0.0.0").names == ("localhost", "127.0.0.1", "::1")


def test_the_setting_is_a_list_of_names():
    assert Env({"X": " a.example , 10.0.0.5,"}).hosts("X") == ("a.example", "10.0.0.5")
    with pytest.raises(SettingsError, match="X="):
        Env({"X": "http://a.example/"}).hosts("X")


def test_the_aggregator_answers_reads_to_configured_names_only(tmp_path):
    app = create_app(make_settings(tmp_path, allowed_hosts=("logs.example.com",)), start_background=False)
    try:
        client = app.test_client()
        assert client.get("/api/v1/logs", headers={"Host": "logs.example.com:8080"}).status_code == 200
        refused = client.get("/api/v1/logs", headers={"Host": "evil.example"})
        assert refused.status_code == 421 and "AGGREGATOR_ALLOWED_HOSTS" in refused.json["error"]
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 200
    finally:
        state_of(app).close()
