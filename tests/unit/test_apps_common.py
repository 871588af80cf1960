"""Unit tests for apps.common: settings, JSON logging, request ids, validation, metrics, main()."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry

from podvisor.apps import order, product, user
from podvisor.apps.common.jsonlog import JsonFormatter, configure_logging, format_timestamp
from podvisor.apps.common.metrics import AppMetrics
from podvisor.apps.common.requestid import MAX_LENGTH, RequestIdFilter, accept_request_id
from podvisor.apps.common.settings import Settings, load_settings
from podvisor.apps.upstream import RequestsTransport, UpstreamUnavailable
from podvisor.core.budget import DEFAULT_BUDGET
from podvisor.core.settings import Env, SettingsError

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


# --- settings -----------------------------------------------------------------------------------

def test_settings_defaults_let_a_pod_run_alone() -> None:
    settings = load_settings("product", Env({}))
    assert settings.host == "127.0.0.1"
    assert settings.port == 3002
    assert settings.threads == 8
    assert settings.upstream_timeout == 5.0
    assert settings.drain_seconds == DEFAULT_BUDGET.app_drain_seconds
    assert settings.db_path == Path("var/pods/product/data/product.db")
    assert settings.log_file == Path("var/pods/product/logs/app.log")
    assert load_settings("user", Env({})).port == 3000
    assert load_settings("order", Env({})).port == 3003


def test_settings_read_every_variable() -> None:
    settings = load_settings("order", Env({
        "APP_HOST": "0.0.0.0", "APP_PORT": "0", "APP_DB": "/x/o.db", "APP_LOG_FILE": "/x/o.log",
        "APP_THREADS": "3", "APP_DRAIN_SECONDS": "7.5", "USER_SERVICE_URL": "http://127.0.0.1:4000/",
        "PRODUCT_SERVICE_URL": "http://127.0.0.1:4002", "APP_UPSTREAM_TIMEOUT": "0.5",
    }))
    assert settings == Settings(
        host="0.0.0.0", port=0, db_path=Path("/x/o.db"), log_file=Path("/x/o.log"), threads=3,
        drain_seconds=7.5, user_service_url="http://127.0.0.1:4000",
        product_service_url="http://127.0.0.1:4002", upstream_timeout=0.5,
    )


@pytest.mark.parametrize(("name", "value"), [
    ("APP_PORT", "abc"), ("APP_PORT", "70000"), ("APP_PORT", "-1"), ("APP_THREADS", "0"),
    ("APP_UPSTREAM_TIMEOUT", "soon"), ("APP_UPSTREAM_TIMEOUT", "-2"), ("APP_UPSTREAM_TIMEOUT", "nan"),
    ("USER_SERVICE_URL", "127.0.0.1:3000"), ("PRODUCT_SERVICE_URL", "ftp://x"), ("APP_HOST", "a b"),
    ("APP_DRAIN_SECONDS", "-1"), ("APP_DRAIN_SECONDS", "later"),
])
def test_bad_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings("order", Env({name: value}))
    assert info.value.name == name
    assert str(info.value).startswith(f"{name}={value!r}:"), str(info.value)


@pytest.mark.parametrize("module", [user, product, order])
def test_main_with_bad_port_exits_2_naming_app_port(
    module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_PORT", "abc")
    monkeypatch.setenv("APP_DB", str(tmp_path / "x.db"))
    monkeypatch.setenv("APP_LOG_FILE", str(tmp_path / "x.log"))
    assert module.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"podvisor-{module.__name__.rsplit('.', 1)[1]}: bad setting APP_PORT='abc': ")
    assert not (tmp_path / "x.db").exists()  # nothing started


def test_main_rejects_unknown_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        user.main(["--bogus"])
    assert info.value.code == 2


# --- JSON logging -------------------------------------------------------------------------------

def test_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert format_timestamp(0.1234) == "1970-01-01T00:00:00.123Z"
    assert TIMESTAMP.fullmatch(format_timestamp(1_800_000_000.5))


def test_log_lines_are_single_json_objects_with_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "app.log"  # parents are created
    handler = configure_logging(path)
    try:
        logger = logging.getLogger("podvisor.apps.test.jsonlog")
        logger.info("hello %s", "world", extra={"order_id": 7})
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logger.exception("it failed")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first)[:4] == ["timestamp", "level", "message", "logger"]
    assert first["message"] == "hello world" and first["level"] == "INFO"
    assert first["logger"] == "podvisor.apps.test.jsonlog" and first["order_id"] == 7
    assert TIMESTAMP.fullmatch(first["timestamp"])
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]


def test_log_handler_reopens_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    handler = configure_logging(path)
    try:
        logger = logging.getLogger("podvisor.apps.test.rotate")
        logger.info("before")
        path.rename(tmp_path / "app.log.1")  # logrotate "create" style
        logger.info("after")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert json.loads((tmp_path / "app.log.1").read_text())["message"] == "before"
    assert json.loads(path.read_text())["message"] == "after"


def test_formatter_never_breaks_a_line_on_odd_values() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "a\nb", (), None)
    record.thing = object()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert json.loads(line)["message"] == "a\nb"


# --- request ids --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc-123", "x" * MAX_LENGTH, "trace:0af7651916cd43dd8448eb211c80319c"])
def test_valid_request_id_is_kept(value: str) -> None:
    assert accept_request_id(value) == value


@pytest.mark.parametrize("value", [None, "", "x" * (MAX_LENGTH + 1), "has space", "new\nline", "é"])
def test_invalid_request_id_is_replaced_by_uuid_hex(value: str | None) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", accept_request_id(value))


def test_request_id_filter_stamps_records_inside_a_request() -> None:
    app = Flask(__name__)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    with app.test_request_context():
        from flask import g
        g.request_id = "rid-1"
        RequestIdFilter().filter(record)
    assert record.request_id == "rid-1"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    RequestIdFilter().filter(outside)
    assert not hasattr(outside, "request_id")


# --- metrics ------------------------------------------------------------------------------------

def test_each_app_metrics_has_its_own_registry() -> None:
    first, second = AppMetrics(), AppMetrics()  # would raise "Duplicated timeseries" if shared
    first.add_counter("things_total", "Things.")
    second.add_counter("things_total", "Things.")
    first.observe_request("GET", "/x/<int:id>", 200, 0.01)
    assert first.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "path": "/x/<int:id>", "status": "200"}) == 1
    assert second.registry.get_sample_value(
        "http_requests_total", {"method": "GET", "path": "/x/<int:id>", "status": "200"}) is None


def test_metrics_render_text_and_openmetrics() -> None:
    metrics = AppMetrics(CollectorRegistry(), process=False)
    body, content_type = metrics.render(None)
    assert content_type.startswith("text/plain") and b"http_requests_total" in body
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")


# --- real upstream transport, without sockets ---------------------------------------------------

def test_requests_transport_maps_connection_errors_to_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    seen = {}

    def refuse(method, url, **kwargs):
        seen.update(kwargs, method=method, url=url)
        raise requests.ConnectionError("connection refused")

    monkeypatch.setattr("podvisor.apps.upstream.requests.request", refuse)
    with pytest.raises(UpstreamUnavailable) as info:
        RequestsTransport().request("GET", "http://127.0.0.1:1/users/1", json=None,
                                    headers={"X-Request-ID": "r1"}, timeout=2.5)
    assert "connection refused" in info.value.reason
    assert seen["headers"] == {"X-Request-ID": "r1"} and seen["timeout"] == 2.5


def test_requests_transport_reports_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    def slow(method, url, **kwargs):
        raise requests.ReadTimeout("read timed out")

    monkeypatch.setattr("podvisor.apps.upstream.requests.request", slow)
    with pytest.raises(UpstreamUnavailable) as info:
        RequestsTransport().request("GET", "http://127.0.0.1:1/", json=None, headers={}, timeout=0.2)
    assert "0.2 s" in info.value.reason


def test_timestamps_are_close_to_now() -> None:
    stamp = format_timestamp(datetime.now(UTC).timestamp())
    parsed = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - parsed).total_seconds()) < 5


def test_the_id_pattern_matches_exactly_the_64_bit_range() -> None:
    import re

    from podvisor.apps.common.service import at_most
    pattern = re.compile(at_most(2**63 - 1) + "$")
    for number in (0, 7, 10**18, 2**63 - 1, 2**63 - 2, 922337203685477580):
        assert pattern.match(str(number)), number
    for number in (2**63, 10**19, 9_999_999_999_999_999_999, 10**30):
        assert not pattern.match(str(number)), number
    small = re.compile(at_most(205) + "$")
    assert [n for n in range(300) if small.match(str(n))] == list(range(206))


def test_connection_limit_stays_within_the_descriptor_limit() -> None:
    from podvisor.core.serving import MAX_CONNECTIONS, connection_limit
    assert connection_limit(4096) == MAX_CONNECTIONS
    assert connection_limit(1024) == 1024 - 64
    assert connection_limit(50) == 32
