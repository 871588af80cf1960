"""Logs of an app podvisor did not write: nginx's error log levels, its access log counted per route."""
import json
import os
import time

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from podvisor.core.settings import Env, SettingsError
from podvisor.sidecars.logger import textlog
from podvisor.sidecars.logger.lines import RawLine, decode_text
from podvisor.sidecars.logger.metrics import LoggerMetrics
from podvisor.sidecars.logger.pipeline import Pipeline
from podvisor.sidecars.logger.routes import OTHER, RouteCounter, route_of
from podvisor.sidecars.logger.settings import Settings
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for

ERROR = ('2024/01/01 10:00:00 [error] 12#12: *5 connect() failed (111: Connection refused) while connecting to '
         'upstream, client: 127.0.0.1, server: , request: "GET /user/ HTTP/1.1", upstream: '
         '"http://127.0.0.1:3000/", host: "localhost:8000"')


def raw(text: str) -> RawLine:
    data = text.encode()
    return RawLine(0, len(data) + 1, data, len(data))


@pytest.fixture
def utc():
    """nginx writes local time: pin the zone so the expected UTC is known."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Paris"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_an_error_log_line_is_one_entry_with_nginxs_level_time_and_request_context(utc):
    record, text = decode_text(raw(ERROR), stderr=False)
    assert text is None  # not the line's own JSON: the enricher encodes the record
    assert record["level"] == "error" and record["nginx_level"] == "error" and record["logger"] == "nginx.error"
    assert record["timestamp"] == "2024-01-01T09:00:00.000Z"  # 10:00 in Paris (UTC+1 in winter)
    assert record["message"].startswith("connect() failed (111: Connection refused)")
    assert (record["pid"], record["connection"]) == (12, 5)
    assert record["client"] == "127.0.0.1" and record["request"] == "GET /user/ HTTP/1.1"
    assert record["upstream"] == "http://127.0.0.1:3000/" and record["http_host"] == "localhost:8000"
    assert "host" not in record  # the logger's own field (the machine) stays the logger's


@pytest.mark.parametrize("nginx, ours", [
    ("debug", "debug"), ("info", "info"), ("notice", "info"), ("warn", "warning"), ("error", "error"),
    ("crit", "critical"), ("alert", "critical"), ("emerg", "critical"),
])
def test_every_nginx_level_maps_to_a_podvisor_level(nginx, ours):
    record = textlog.parse(f"2024/06/01 10:00:00 [{nginx}] 7#7: something happened")
    assert record["level"] == ours and record["nginx_level"] == nginx
    assert record["message"] == "something happened" and "connection" not in record


def test_what_nginx_prints_on_stderr_keeps_its_level():
    line = "nginx: [emerg] bind() to 127.0.0.1:8000 failed (98: Address already in use)"
    record, _ = decode_text(raw(line), stderr=True, stderr_level="warning")
    assert record["level"] == "critical" and record["message"].startswith("bind() to 127.0.0.1:8000 failed")


@pytest.mark.parametrize("line", [
    "plain text from some app",
    "2024/01/01 10:00:00 [loud] 1#1: not a level nginx has",
    "2024/13/45 10:00:00 [error] 1#1: no such day",
    "2024/01/01 10:00:00 [error] twelve: no pid",
    "nginx: [shouting] hello",
    "",
])
def test_other_text_lines_are_wrapped_as_before(line):
    record, _ = decode_text(raw(line), stderr=True, stderr_level="warning")
    assert record == {"message": line, "level": "warning"}


def test_json_lines_never_reach_the_text_parser(monkeypatch):
    def refuse(text):
        raise AssertionError(f"parsed a JSON line as text: {text}")
    monkeypatch.setattr(textlog, "parse", refuse)
    record, text = decode_text(raw('{"message": "hi", "level": "info", "timestamp": "2024-01-01T00:00:00.000Z"}'),
                               stderr=False)
    assert record["message"] == "hi" and text is not None


def samples(metrics: LoggerMetrics) -> dict[tuple, float]:
    text = generate_latest(metrics.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name.startswith("podvisor_logger_http_")}


def access(path: str, status: int, seconds: float, **extra) -> dict:
    return {"method": "GET", "path": path, "status": status, "request_time": seconds, **extra}


def test_route_is_the_longest_matching_prefix_else_other():
    prefixes = ("/user/admin/", "/user/", "/order/")
    assert route_of("/user/admin/x", prefixes) == "/user/admin/"
    assert route_of("/user/1", prefixes) == "/user/"
    assert route_of("/user", prefixes) == OTHER and route_of("/", prefixes) == OTHER


def test_access_lines_are_counted_per_route_and_status_class_with_their_latency():
    metrics = LoggerMetrics()
    counter = RouteCounter(metrics, ("/user/", "/order/", "/user/admin/"),
                           is_probe=lambda r: r.get("path") == "/healthz")
    lines = [access("/user/1", 200, 0.003), access("/user/admin/x", 200, 0.2), access("/order/", 502, 0.04),
             access("/order/7", 504, 30.0), access("/nope", 404, 0.0), access("/healthz", 200, 0.0),
             {"message": "an app line", "status": 200, "path": "/user/1", "duration_ms": 3},  # not an access line
             access("/user/1", "200", 0.1), access("/user/1", 200, "slow")]  # malformed: left out
    assert [counter.observe(line) for line in lines] == [True, True, True, True, True, False, False, False, False]
    got = samples(metrics)
    total = "podvisor_logger_http_requests_total"
    assert got[(total, (("route", "/user/"), ("status_class", "2xx")))] == 1
    assert got[(total, (("route", "/user/admin/"), ("status_class", "2xx")))] == 1
    assert got[(total, (("route", "/order/"), ("status_class", "5xx")))] == 2
    assert got[(total, (("route", "other"), ("status_class", "4xx")))] == 1
    assert sum(v for (name, _), v in got.items() if name == total) == 5
    bucket = "podvisor_logger_http_request_duration_seconds_bucket"
    assert got[(bucket, (("le", "0.05"), ("route", "/order/")))] == 1  # 0.04 s, not the 30 s one
    assert got[(bucket, (("le", "+Inf"), ("route", "/order/")))] == 2
    assert got[("podvisor_logger_http_request_duration_seconds_sum", (("route", "/order/"),))] == pytest.approx(30.04)


def test_the_pipeline_counts_the_access_log_it_ships(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("t")
    line = {"timestamp": "2024-01-01T00:00:00.000Z", "level": "info", "message": "GET /user/1 200",
            "method": "GET", "path": "/user/1", "status": 200, "request_time": 0.012}
    probe = {**line, "path": "/healthz", "message": "GET /healthz 200"}
    (logs / "access.log").write_text(json.dumps(line) + "\n" + json.dumps(probe) + "\n")
    (logs / "error.log").write_text(ERROR + "\n")
    clock = FakeClock()
    transport = RecordingTransport()
    metrics = LoggerMetrics()
    settings = settings_for(tmp_path, route_prefixes=("/user/",), probe_paths=("/healthz",))
    pipeline = Pipeline(settings, transport, metrics=metrics, clock=clock, wall=clock, waiter=FakeWaiter(clock),
                        threaded=False, hostname="h", sleep=clock.advance)
    assert pipeline.shutdown(clock() + 25) == 0
    stored = {e["message"].split(" (")[0]: e for e in transport.store.values()}
    assert stored["GET /user/1 200"]["request_time"] == 0.012 and stored["GET /healthz 200"]["probe"] is True
    assert stored["connect() failed"]["level"] == "error" and stored["connect() failed"]["source"] == "error.log"
    got = samples(metrics)
    assert got[("podvisor_logger_http_requests_total", (("route", "/user/"), ("status_class", "2xx")))] == 1
    assert sum(v for (name, _), v in got.items() if name == "podvisor_logger_http_requests_total") == 1


def test_route_prefixes_are_a_setting_of_paths():
    env = {"POD_NAME": "gateway", "SERVICE_NAME": "gateway", "LOGGER_LOG_DIR": "/l", "LOGGER_STATE_DIR": "/s",
           "LOGGER_CREDENTIAL_FILE": "/t"}
    assert Settings.from_env(Env(env)).route_prefixes == ()
    got = Settings.from_env(Env({**env, "LOGGER_ROUTE_PREFIXES": "/user/, /order/"})).route_prefixes
    assert got == ("/user/", "/order/")
    with pytest.raises(SettingsError, match="LOGGER_ROUTE_PREFIXES='/user/,order': 'order' is not a path"):
        Settings.from_env(Env({**env, "LOGGER_ROUTE_PREFIXES": "/user/,order"}))
