"""AGGREGATOR_* settings: defaults, parsing, and one clear error naming the bad variable."""
from __future__ import annotations

import logging

import pytest

from podvisor.aggregator.main import main
from podvisor.aggregator.settings import MIB, Settings, SettingsError
from podvisor.core.settings import Env, parse_size


def test_defaults_follow_the_contract():
    settings = Settings.from_env(Env({}))
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.read_auth == "auto" and settings.reads_need_token is False
    assert settings.token_file == "./var/aggregator/token"
    assert settings.max_body_bytes == 8 * MIB
    assert settings.controller_url is None and settings.metrics_urls == ()
    assert settings.pods_interval == 5.0 and settings.query_timeout_ms == 2000


def test_every_variable_is_read():
    settings = Settings.from_env(Env({
        "AGGREGATOR_HOST": "10.0.0.5", "AGGREGATOR_PORT": "18080",
        "AGGREGATOR_DB": "/srv/pv/logs.db", "AGGREGATOR_READ_AUTH": "Always",
        "AGGREGATOR_MAX_BODY_BYTES": "4MiB", "AGGREGATOR_RETENTION_DAYS": "1.5",
        "AGGREGATOR_RETENTION_BYTES": "2G", "AGGREGATOR_QUERY_TIMEOUT_MS": "500",
        "AGGREGATOR_CONTROLLER_URL": "http://127.0.0.1:9100/",
        "AGGREGATOR_METRICS_URLS": "user=http://127.0.0.1:9101, order=http://127.0.0.1:9103/metrics",
        "AGGREGATOR_PODS_INTERVAL": "2.5",
    }))
    assert settings.host == "10.0.0.5" and settings.port == 18080
    assert settings.token_file == "/srv/pv/token"  # beside the database unless given
    assert settings.read_auth == "always" and settings.reads_need_token
    assert settings.max_body_bytes == 4 * MIB and settings.retention_bytes == 2048 * MIB
    assert settings.retention_days == 1.5 and settings.query_timeout_ms == 500
    assert settings.controller_url == "http://127.0.0.1:9100"
    assert settings.metrics_urls == (("user", "http://127.0.0.1:9101"),
                                     ("order", "http://127.0.0.1:9103/metrics"))
    assert settings.pods_interval == 2.5


@pytest.mark.parametrize("name, value", [
    ("AGGREGATOR_PORT", "http"),
    ("AGGREGATOR_PORT", "70000"),
    ("AGGREGATOR_READ_AUTH", "sometimes"),
    ("AGGREGATOR_MAX_BODY_BYTES", "lots"),
    ("AGGREGATOR_RETENTION_DAYS", "-1"),
    ("AGGREGATOR_CONTROLLER_URL", "127.0.0.1:9100"),
    ("AGGREGATOR_METRICS_URLS", "user=http://127.0.0.1:9101,order"),
    ("AGGREGATOR_PODS_INTERVAL", "0"),
    ("AGGREGATOR_PODS_INTERVAL", "inf"),
])
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(Env({name: value}))
    assert caught.value.name == name and str(caught.value).startswith(f"{name}={value!r}: "), str(caught.value)


def test_parse_size_units():
    assert parse_size("512k") == 512 * 1024 and parse_size("8MiB") == 8 * MIB
    assert parse_size("1024") == 1024
    with pytest.raises(ValueError):
        parse_size("8 parsecs")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_main_exits_2_with_one_line_naming_the_setting(monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("AGGREGATOR_PODS_INTERVAL", "soon")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["podvisor-aggregator: bad setting AGGREGATOR_PODS_INTERVAL='soon': must be a number"]


def test_main_exits_2_naming_an_unsafe_token_file_once(monkeypatch, capsys, restore_logging, tmp_path):
    token = tmp_path / "token"
    token.write_text("a-token-that-is-long-enough\n")
    token.chmod(0o644)
    monkeypatch.setenv("AGGREGATOR_DB", str(tmp_path / "logs.db"))
    monkeypatch.setenv("AGGREGATOR_TOKEN_FILE", str(token))
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"podvisor-aggregator: bad setting AGGREGATOR_TOKEN_FILE={str(token)!r}: "), err
    assert "chmod 600" in err[0] and err[0].count("AGGREGATOR_TOKEN_FILE") == 1  # the message names it once
    assert not (tmp_path / "logs.db").exists()  # nothing was opened
