"""The metrics sidecar's nginx adapter: stub_status parsed and exposed, typed, with the pod labels."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from podvisor.core.settings import Env, SettingsError
from podvisor.sidecars.metrics.enricher import Enricher, Upstreams
from podvisor.sidecars.metrics.exposition import OPENMETRICS, TEXT
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.nginx import StubStatus, parse_stub_status
from podvisor.sidecars.metrics.scraper import Response, ScrapeError
from podvisor.sidecars.metrics.settings import Settings

POD = PodLabels(service_name="gateway", environment="production", pod="gateway")
OURS = {"service_name": "gateway", "environment": "production", "pod": "gateway"}
# What nginx 1.22 answers, byte for byte (trailing blanks included).
STUB = b"Active connections: 3 \nserver accepts handled requests\n 120 118 431 \nReading: 0 Writing: 1 Waiting: 2 \n"
STATUS_URL = "http://127.0.0.1:8000/nginx_status"


def test_stub_status_is_parsed_field_by_field() -> None:
    assert parse_stub_status(STUB.decode()) == StubStatus(active=3, accepted=120, handled=118, requests=431,
                                                         reading=0, writing=1, waiting=2)


@pytest.mark.parametrize("body", [
    "", "<html>404 Not Found</html>", "Active connections: x\n",
    STUB.decode().replace("Waiting: 2", "Waiting: -2"),
    STUB.decode() + "Extra: 1\n",
])
def test_anything_but_stub_status_is_refused_naming_it(body: str) -> None:
    with pytest.raises(ValueError, match="not an nginx stub_status page"):
        parse_stub_status(body)


def enricher(answer: Response | Exception) -> Enricher:
    def fetch(url: str, accept: str, timeout: float) -> Response:
        assert url == STATUS_URL
        if isinstance(answer, Exception):
            raise answer
        return answer

    return Enricher(POD, Upstreams(app=STATUS_URL, adapter="nginx"), fetch)


def samples(text: str, openmetrics: bool = False) -> dict[str, tuple[str, dict[str, str], float]]:
    parsed = list(parse_om(text) if openmetrics else parse_text(text))
    return {s.name: (f.type, s.labels, s.value) for f in parsed for s in f.samples
            if s.name.startswith("nginx_") or s.name == "podvisor_target_up"}


@pytest.mark.parametrize("out", [TEXT, OPENMETRICS])
def test_stub_status_becomes_typed_series_with_the_pod_labels(out) -> None:
    body = enricher(Response(200, "text/plain", STUB)).render(out, 5.0).decode()
    got = samples(body, out.openmetrics)
    expected = {
        "nginx_connections_active": ("gauge", 3), "nginx_connections_reading": ("gauge", 0),
        "nginx_connections_writing": ("gauge", 1), "nginx_connections_waiting": ("gauge", 2),
        "nginx_connections_accepted_total": ("counter", 120), "nginx_connections_handled_total": ("counter", 118),
        "nginx_http_requests_total": ("counter", 431),
    }
    for name, (kind, value) in expected.items():
        assert got[name][0] == kind and got[name][2] == value, (name, got.get(name), body)
        assert got[name][1] == OURS, got[name]
    assert got["podvisor_target_up"][2] == 1
    assert "# TYPE nginx_connections_active gauge" in body
    assert ("# TYPE nginx_http_requests counter" if out.openmetrics
            else "# TYPE nginx_http_requests_total counter") in body
    assert body.endswith("# EOF\n") == out.openmetrics


@pytest.mark.parametrize("failure, reason", [
    (ScrapeError("connection", "refused"), "connection"),
    (Response(200, "text/html", b"<html>welcome to nginx</html>"), "parse"),
    (Response(403, "text/html", b"forbidden"), "http_status"),
])
def test_a_down_or_misconfigured_nginx_gives_up_0_and_no_nginx_series(failure, reason) -> None:
    body = enricher(failure).render(TEXT, 5.0).decode()
    assert "nginx_" not in body
    parsed = [s for f in parse_text(body) for s in f.samples]
    (up,) = [s for s in parsed if s.name == "podvisor_target_up"]
    assert up.value == 0 and up.labels == {"target": "app", **OURS}
    errors = {s.labels["reason"]: s.value for s in parsed if s.name == "podvisor_target_scrape_errors_total"}
    assert errors[reason] == 1 and sum(errors.values()) == 1, errors


def test_promtool_check_metrics_is_clean_on_the_adapters_output() -> None:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool not found: install Debian's prometheus package"
    text = enricher(Response(200, "text/plain", STUB)).render(TEXT, 5.0).decode()
    result = subprocess.run([binary, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr + text


def test_the_adapter_is_a_setting_refused_when_unknown() -> None:
    env = {"POD_NAME": "gateway", "SERVICE_NAME": "gateway", "METRICS_TARGET_URL": STATUS_URL}
    assert Settings.from_env(Env(env)).adapter == "prometheus"
    assert Settings.from_env(Env({**env, "METRICS_ADAPTER": "nginx"})).adapter == "nginx"
    with pytest.raises(SettingsError, match="METRICS_ADAPTER='statsd': must be one of prometheus, nginx"):
        Settings.from_env(Env({**env, "METRICS_ADAPTER": "statsd"}))
