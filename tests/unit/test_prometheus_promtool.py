"""The sidecar's output, the rendered config and the rules, checked by the real promtool.

These need Debian's `prometheus` package (promtool, prometheus); they fail, not skip, without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram, Info, Summary
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector

from podvisor.sidecars.metrics.enricher import Enricher, Upstreams
from podvisor.sidecars.metrics.exposition import OPENMETRICS, TEXT
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.process import ProcessTreeCollector
from podvisor.sidecars.metrics.scraper import Response, ScrapeError
from podvisor.supervisord.controller import podseries
from podvisor.supervisord.prometheus import Thresholds, render_config, render_rules
from podvisor.supervisord.prometheus import rules as rules_module
from podvisor.supervisord.prometheus.cli import PACKAGE_DIR
from tests.fakes.supervisor import make_pod, rig

POD = PodLabels(service_name="user-service", environment="production", pod="user")


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary is not None, (
        "promtool not found: install Debian's prometheus package (apt-get install -y prometheus)"
    )
    return subprocess.run([binary, *args], input=stdin, cwd=cwd, capture_output=True, text=True, timeout=60)


def app_registry() -> CollectorRegistry:
    """A real prometheus_client app: every metric type, labels and HELP needing escaping."""
    r = CollectorRegistry()
    requests_total = Counter(
        "http_requests",
        'Requests by "path".\nSecond line \\ with backslash.',
        ["method", "path", "status", "pod"],
        registry=r,
    )
    requests_total.labels("GET", '/search?q="a\\b"\nnext', "200", "k8s-pod-1").inc(3)
    requests_total.labels("POST", "/orders", "500", "k8s-pod-1").inc(exemplar={"trace_id": "abc123"})
    latency = Histogram("http_request_duration_seconds", "Latency.", ["path"], registry=r)
    latency.labels("/orders").observe(0.3, exemplar={"trace_id": "def456"})
    Gauge("queue_depth", "Depth.", registry=r).set(float("nan"))
    Gauge("free_slots", "Slots.", registry=r).set(float("inf"))
    Summary("payload_bytes", "Payload sizes.", registry=r).observe(512)
    Info("build", "Build information.", registry=r).info({"version": "1.2.3", "commit": 'quote"d'})
    Enum("pod_state", "State.", states=["starting", "serving"], registry=r).state("serving")
    ProcessCollector(registry=r)
    return r


def enricher(app: CollectorRegistry | None, logger: CollectorRegistry | None = None) -> Enricher:
    routes: dict[str, CollectorRegistry | None] = {"http://app/metrics": app, "http://logger/metrics": logger}

    def fetch(url: str, accept: str, timeout: float) -> Response:
        registry = routes[url]
        if registry is None:
            raise ScrapeError("connection", "refused")
        encoder, content_type = choose_encoder(accept)
        return Response(200, content_type, encoder(registry))

    logger_url = "http://logger/metrics" if logger is not None else None
    return Enricher(
        POD,
        Upstreams(app="http://app/metrics", logger=logger_url),
        fetch,
        collectors=[ProcessTreeCollector(os.getpid, POD, memory_limit_bytes=2**28)],
    )


def logger_registry() -> CollectorRegistry:
    r = CollectorRegistry()
    Counter("podvisor_logger_shipped_lines", "Lines acknowledged by the aggregator.", registry=r).inc(5)
    Gauge("podvisor_logger_lag_seconds", "Age of the oldest unacknowledged line.", registry=r).set(0)
    ProcessCollector(registry=r)
    return r


@pytest.mark.parametrize("case", ["app up", "app and logger", "app down"])
def test_promtool_check_metrics_is_clean_on_sidecar_output(case: str) -> None:
    app = None if case == "app down" else app_registry()
    logger = logger_registry() if case == "app and logger" else None
    text = enricher(app, logger).render(TEXT, 5.0).decode()
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics:\n{result.stdout}{result.stderr}\n--- input ---\n{text}"
    )
    assert ('pod="k8s-pod-1"' in text and 'exported_pod="user"' in text) == (app is not None)


def test_promtool_check_metrics_is_clean_on_the_controllers_pod_series() -> None:
    """The pod series' one producer is the controller's /metrics: real snapshots, every phase series."""
    r = rig(make_pod("user", 3000), make_pod("order", 3200))
    r.start_pod()
    r.sup.crash("order-app", 1)
    r.tick()
    text = podseries.render([runner.snapshot() for runner in r.runners.values()], "production")
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        f"promtool check metrics:\n{result.stdout}{result.stderr}\n--- input ---\n{text}"
    )
    assert 'podvisor_pod_restarts_total{pod="order",service_name="order-service",environment="production"} 1' in text


def test_openmetrics_output_is_terminated_and_typed() -> None:
    body = enricher(app_registry(), logger_registry()).render(OPENMETRICS, 5.0).decode()
    assert body.endswith("\n# EOF\n") and body.count("# EOF") == 1
    assert "# TYPE http_requests counter\n" in body and "http_requests_total{" in body
    assert '# {trace_id="abc123"} 1.0' in body  # exemplar carried through
    assert "# TYPE build info\n" in body and "# TYPE pod_state stateset\n" in body


def test_promtool_accepts_the_rendered_config_and_rules(tmp_path: Path) -> None:
    (tmp_path / "prometheus.yml").write_text(
        render_config(
            {"user": "127.0.0.1:9101", "order": "127.0.0.1:9103"},
            aggregator="127.0.0.1:8080",
            controller="127.0.0.1:9100",
            scrape_interval="1s",
            scrape_timeout="1s",
            evaluation_interval="1s",
        )
    )
    (tmp_path / "podvisor.rules.yml").write_text(render_rules())
    config = promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert config.returncode == 0, config.stdout + config.stderr
    rules = promtool("check", "rules", "podvisor.rules.yml", cwd=tmp_path)
    assert rules.returncode == 0 and "SUCCESS: 8 rules found" in rules.stdout, rules.stdout + rules.stderr


def test_promtool_rule_unit_tests_pass_on_the_committed_files() -> None:
    result = promtool("test", "rules", str(PACKAGE_DIR / "rules_test.yml"))
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    "changed",
    [
        Thresholds(error_ratio=0.5),
        Thresholds(latency_p95_seconds=2.0),
        Thresholds(restarts_in_10m=20),
        Thresholds(log_lag_seconds=1000),
        Thresholds(status_label="code"),
    ],
)
def test_rule_unit_tests_catch_a_rule_that_would_not_fire(changed: Thresholds, tmp_path: Path) -> None:
    """The committed tests are not vacuous: each alert's firing case fails when its rule is weakened."""
    shutil.copy(PACKAGE_DIR / "rules_test.yml", tmp_path / "rules_test.yml")
    (tmp_path / "podvisor.rules.yml").write_text(render_rules(changed))
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "FAILED" in result.stdout + result.stderr


def test_rule_unit_tests_catch_alerts_for_pods_stopped_on_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the Stopped/Succeeded exception the committed tests see unwanted service-down alerts."""
    monkeypatch.setattr(rules_module, "QUIET_PHASES", ("NoSuchPhase",))
    shutil.copy(PACKAGE_DIR / "rules_test.yml", tmp_path / "rules_test.yml")
    (tmp_path / "podvisor.rules.yml").write_text(rules_module.render_rules())
    result = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert result.returncode != 0 and "PodvisorServiceDown" in result.stdout + result.stderr
