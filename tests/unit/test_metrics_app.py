"""The sidecar's WSGI app, settings and main() (sidecars/metrics/app.py, settings.py, main.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import choose_encoder
from werkzeug.test import Client

from podvisor.core.settings import Env, SettingsError
from podvisor.sidecars.metrics.app import MetricsApp, scrape_timeout
from podvisor.sidecars.metrics.enricher import Enricher, Upstreams
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.main import main
from podvisor.sidecars.metrics.scraper import Response, ScrapeError
from podvisor.sidecars.metrics.settings import Settings
from podvisor.testing.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
POD = PodLabels(service_name="user-service", environment="test", pod="user")
ENV = {
    "POD_NAME": "user",
    "SERVICE_NAME": "user-service",
    "METRICS_TARGET_URL": "http://127.0.0.1:3000/metrics",
}


class Upstream:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        Counter("hits", "Hits.", registry=self.registry).inc()
        self.down = False
        self.timeouts: list[float] = []

    def __call__(self, url: str, accept: str, timeout: float) -> Response:
        self.timeouts.append(timeout)
        if self.down:
            raise ScrapeError("connection", "refused")
        encoder, content_type = choose_encoder(accept)
        return Response(200, content_type, encoder(self.registry))


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def client(upstream: Upstream) -> Client:
    return Client(MetricsApp(Enricher(POD, Upstreams(app="http://app/metrics"), upstream), max_timeout=5.0))


def test_metrics_text_by_default(client: Client) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert 'hits_total{service_name="user-service",environment="test",pod="user"} 1.0' in r.get_data(
        as_text=True
    )


def test_metrics_openmetrics_when_asked(client: Client) -> None:
    r = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.get_data(as_text=True).endswith("# EOF\n")


def test_app_down_is_still_200(client: Client, upstream: Upstream) -> None:
    upstream.down = True
    r = client.get("/metrics")
    assert r.status_code == 200
    body = r.get_data(as_text=True)
    assert "hits_total" not in body and 'target="app"} 0.0' in body


def test_prometheus_timeout_header_bounds_the_upstream_fetch(client: Client, upstream: Upstream) -> None:
    client.get("/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "2"})
    client.get("/metrics", headers={"X-Prometheus-Scrape-Timeout-Seconds": "30"})
    client.get("/metrics")
    assert upstream.timeouts[0] <= 1.8
    assert 4.0 < upstream.timeouts[1] <= 5.0 and 4.0 < upstream.timeouts[2] <= 5.0


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, 5.0),
        ("", 5.0),
        ("abc", 5.0),
        ("-1", 5.0),
        ("nan", 5.0),
        ("inf", 5.0),
        ("10", 5.0),
        ("2", 1.8),
        ("1", 0.9),
        ("0.5", 0.45),
    ],
)
def test_scrape_timeout(header: str | None, expected: float) -> None:
    assert scrape_timeout(header, cap=5.0) == pytest.approx(expected)


def test_health(client: Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json == {
        "ok": True,
        "pod": "user",
        "service_name": "user-service",
        "environment": "test",
        "targets": ["app"],
    }


def test_unknown_path_and_method(client: Client) -> None:
    assert client.get("/nope").status_code == 404
    r = client.post("/metrics")
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS"
    head = client.head("/metrics")
    assert head.status_code == 200 and head.get_data() == b""


# settings


def load_settings(env: dict[str, str]) -> Settings:
    return Settings.from_env(Env(env))


def test_settings_defaults() -> None:
    s = load_settings(ENV)
    assert (s.pod, s.service_name, s.environment, s.host, s.port) == (
        "user",
        "user-service",
        "production",
        "127.0.0.1",
        9101,
    )
    assert s.scrape_timeout == 5.0 and s.memory_limit_bytes is None and s.logger_url is None
    assert s.supervisor.serverurl == "" and s.app_program is None and s.app_pidfile is None


def test_settings_full() -> None:
    s = load_settings(
        {
            **ENV,
            "ENVIRONMENT": "staging",
            "METRICS_PORT": "0",
            "METRICS_SCRAPE_TIMEOUT": "2.5",
            "METRICS_LOGGER_URL": "http://127.0.0.1:9201/metrics",
            "METRICS_APP_PROGRAM": "user-app",
            "METRICS_MEMORY_LIMIT_BYTES": "268435456",
            "SUPERVISOR_SERVER_URL": "unix:///tmp/s.sock",
            "SUPERVISOR_PASSWORD": "secret",
        }
    )
    assert (s.port, s.scrape_timeout, s.memory_limit_bytes, s.app_program) == (0, 2.5, 268435456, "user-app")
    assert s.logger_url == "http://127.0.0.1:9201/metrics"
    assert s.supervisor.serverurl == "unix:///tmp/s.sock" and s.supervisor.password == "secret"
    assert "secret" not in repr(s)


@pytest.mark.parametrize(
    "name, raw",
    [
        ("POD_NAME", None),
        ("SERVICE_NAME", ""),
        ("METRICS_TARGET_URL", "127.0.0.1:3000/metrics"),
        ("METRICS_LOGGER_URL", "ftp://x/metrics"),
        ("METRICS_LOGGER_URL", "http://host:99999"),
        ("METRICS_PORT", "http"),
        ("METRICS_PORT", "70000"),
        ("METRICS_SCRAPE_TIMEOUT", "0"),
        ("METRICS_SCRAPE_TIMEOUT", "soon"),
        ("METRICS_MEMORY_LIMIT_BYTES", "-5"),
        ("METRICS_MEMORY_LIMIT_BYTES", "256 parsecs"),
        ("METRICS_MEMORY_LIMIT_BYTES", "0"),
        ("METRICS_APP_PROGRAM", "user-app,user app-1"),
        ("METRICS_TARGET_URL", "http://127.0.0.1:1/metrics,http://127.0.0.1:2/metrics"),  # two URLs, no program
    ],
)
def test_bad_setting_is_named(name: str, raw: str | None) -> None:
    env = {k: v for k, v in ENV.items() if k != name}
    if raw is not None:
        env[name] = raw
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    # The message names the variable and, when there was one, the bad value (blank counts as unset).
    expected = f"{name}={raw!r}: " if raw else f"{name}: "
    assert info.value.name == name and str(info.value).startswith(expected), str(info.value)


def test_several_app_programs_are_replicas_each_with_its_own_url() -> None:
    s = load_settings({**ENV, "METRICS_APP_PROGRAM": "user-app,user-app-1",
                       "METRICS_TARGET_URL": "http://127.0.0.1:3001/metrics,http://127.0.0.1:3004/metrics"})
    assert (s.app_program, s.target_url) == (None, None)
    assert s.replica_programs == ("user-app", "user-app-1")
    assert s.replica_urls == ("http://127.0.0.1:3001/metrics", "http://127.0.0.1:3004/metrics")
    no_url = {k: v for k, v in ENV.items() if k != "METRICS_TARGET_URL"}
    quiet = load_settings({**no_url, "METRICS_APP_PROGRAM": "user-app,user-app-1"})  # an app that serves no metrics
    assert quiet.replica_urls == (None, None)


def test_memory_limit_takes_units() -> None:
    assert load_settings({**ENV, "METRICS_MEMORY_LIMIT_BYTES": "256MiB"}).memory_limit_bytes == 256 * 1024 * 1024


def test_main_exits_2_with_one_line_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env={**ENV, "METRICS_PORT": "nope"}) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["podvisor-metrics: bad setting METRICS_PORT='nope': must be an integer"]


def test_process_serves_logs_its_port_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The real process: port 0, the bound port in its log, /health and /metrics, SIGTERM -> exit 0."""
    log = tmp_path / "metrics.log"
    env = {
        **os.environ,
        **ENV,
        "METRICS_PORT": "0",
        "METRICS_TARGET_URL": "http://127.0.0.1:9/metrics",
        "METRICS_APP_PIDFILE": str(tmp_path / "missing.pid"),
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "podvisor.sidecars.metrics.main"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        m = wait_for(lambda: re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text()), 15,
                     "the listening line", output=log.read_text, procs=[proc])
        base = f"http://127.0.0.1:{m.group(1)}"
        assert requests.get(f"{base}/health", timeout=5).json()["ok"] is True
        metrics = requests.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200 and 'target="app"} 0.0' in metrics.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
