"""The pods overview: scrape parsing, rates and p95 like Prometheus, the poller, /api/v1/pods."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.pods import (
    PodsMonitor,
    Sample,
    histogram_quantile,
    metrics_endpoint,
    parse_sample,
    point_between,
)
from podvisor.testing.waiting import wait_for
from tests.unit.test_aggregator_fixtures import make_settings, state_of, token_of

LABELS = 'service_name="user-service",environment="production",pod="user"'
BOUNDS = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "+Inf")


def scrape(ok: int, errors: int, probes: int, buckets: dict[str, int], app_up: int = 1) -> str:
    """A metrics sidecar page: routes /users (ok + 5xx), the /health probe, the duration histogram."""
    lines = [
        "# HELP http_requests_total HTTP requests answered, by route template and status.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{method="GET",path="/users",status="200",{LABELS}}} {ok}',
        f'http_requests_total{{method="GET",path="/users",status="503",{LABELS}}} {errors}',
        f'http_requests_total{{method="GET",path="/health",status="200",{LABELS}}} {probes}',
        "# HELP http_request_duration_seconds Time spent answering HTTP requests.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    cumulative = 0
    for bound in BOUNDS:
        cumulative += buckets.get(bound, 0)
        lines.append(f'http_request_duration_seconds_bucket{{le="{bound}",method="GET",'
                     f'path="/users",{LABELS}}} {cumulative}')
        # Probe latency must not move the p95: every probe is in the slowest bucket.
        lines.append(f'http_request_duration_seconds_bucket{{le="{bound}",method="GET",'
                     f'path="/health",{LABELS}}} {probes if bound == "+Inf" else 0}')
    lines += [
        f'http_request_duration_seconds_count{{method="GET",path="/users",{LABELS}}} {cumulative}',
        f'http_request_duration_seconds_sum{{method="GET",path="/users",{LABELS}}} 1.0',
        "# HELP podvisor_target_up 1 if the sidecar's last fetch of the target succeeded, else 0.",
        "# TYPE podvisor_target_up gauge",
        f'podvisor_target_up{{target="app",{LABELS}}} {app_up}',
    ]
    return "\n".join(lines) + "\n"


def test_parse_sample_sums_routes_and_leaves_probes_out():
    sample = parse_sample(scrape(90, 10, 500, {"0.01": 60, "0.05": 40}), at=100.0)
    assert sample.requests == 100 and sample.errors == 10
    assert dict(sample.buckets)[0.01] == 60 and dict(sample.buckets)[float("inf")] == 100
    assert sample.app_up is True
    assert parse_sample(scrape(0, 0, 0, {}, app_up=0), at=1).app_up is False
    assert parse_sample("", at=1) == Sample(1, 0.0, 0.0, (), None)


GATEWAY = 'service_name="gateway",environment="production",pod="gateway"'


def gateway_scrape(ok: int, errors: int, buckets: dict[str, int], routes: tuple[str, ...] = ("/user/", "other")) -> str:
    """A gateway's sidecar page: nginx's stub_status series and its logger's per-route counts."""
    lines = ["# TYPE nginx_http_requests_total counter", f"nginx_http_requests_total{{{GATEWAY}}} {10 * ok}",
             "# TYPE podvisor_logger_http_requests_total counter"]
    for route in routes:  # the figures are split over the routes: they must add up
        lines.append(f'podvisor_logger_http_requests_total{{route="{route}",status_class="2xx",{GATEWAY}}} '
                     f'{ok / len(routes)}')
        lines.append(f'podvisor_logger_http_requests_total{{route="{route}",status_class="5xx",{GATEWAY}}} '
                     f'{errors / len(routes)}')
    lines.append("# TYPE podvisor_logger_http_request_duration_seconds histogram")
    cumulative = 0
    for bound in BOUNDS:
        cumulative += buckets.get(bound, 0)
        lines.append(f'podvisor_logger_http_request_duration_seconds_bucket{{le="{bound}",route="/user/",'
                     f'{GATEWAY}}} {cumulative}')
    return "\n".join(lines) + "\n"


def test_a_pod_without_request_metrics_is_read_from_its_loggers_access_log_counts():
    old = parse_sample(gateway_scrape(100, 0, {"0.005": 100}), at=0.0)
    new = parse_sample(gateway_scrape(170, 30, {"0.005": 100, "0.1": 100}), at=10.0)
    assert (new.source, new.requests, new.errors) == ("logger", 200, 30)
    point = point_between(old, new)
    assert point.request_rate == pytest.approx(10.0) and point.error_ratio == pytest.approx(0.3)
    assert 50 < point.p95_ms <= 100  # every new request between 50 and 100 ms


def test_a_pod_with_both_is_read_from_its_apps_metrics_only():
    both = parse_sample(scrape(90, 10, 0, {"0.01": 100}) + gateway_scrape(1000, 1000, {"0.25": 2000}), at=1.0)
    assert (both.source, both.requests, both.errors) == ("app", 100, 10)
    assert dict(both.buckets)[float("inf")] == 100
    # counters of two sources never make a point (the app's vanish while it is down, say)
    logger_only = parse_sample(gateway_scrape(1000, 1000, {"0.25": 2000}), at=2.0)
    assert point_between(both, logger_only) is None


def test_histogram_quantile_interpolates_like_prometheus():
    buckets = [(0.1, 50.0), (0.2, 90.0), (0.4, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.05)  # first bucket starts at 0
    # Beyond the last finite bucket Prometheus answers that bucket's upper bound.
    assert histogram_quantile(0.95, [(0.1, 10.0), (float("inf"), 100.0)]) == pytest.approx(0.1)
    assert histogram_quantile(0.95, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert histogram_quantile(0.95, []) is None


def test_point_between_two_scrapes():
    old = parse_sample(scrape(100, 0, 10, {"0.005": 100}), at=1000.0)
    new = parse_sample(scrape(180, 20, 20, {"0.005": 100, "0.025": 80, "0.1": 20}), at=1010.0)
    point = point_between(old, new)
    assert point is not None
    assert point.request_rate == pytest.approx(10.0)  # 100 requests in 10 s, probes excluded
    assert point.error_ratio == pytest.approx(0.2)
    # Of the 100 new requests 80 took <= 25 ms and 20 <= 100 ms: the 95th lies in (50, 100] ms.
    assert point.p95_ms == pytest.approx(50 + 50 * (95 - 80) / 20)
    assert point_between(new, new) is None  # no time passed


def test_point_after_an_app_restart_counts_from_zero():
    old = parse_sample(scrape(5000, 50, 10, {"0.005": 5050}), at=0.0)
    new = parse_sample(scrape(8, 2, 1, {"0.25": 10}), at=5.0)
    point = point_between(old, new)
    assert point.request_rate == pytest.approx(2.0)
    assert point.error_ratio == pytest.approx(0.2)
    assert 100 < point.p95_ms <= 250


def test_point_without_traffic_has_no_ratio_or_latency():
    sample = parse_sample(scrape(7, 1, 3, {"0.01": 8}), at=0.0)
    later = parse_sample(scrape(7, 1, 9, {"0.01": 8}), at=5.0)
    point = point_between(sample, later)
    assert point.request_rate == 0 and point.error_ratio is None and point.p95_ms is None


def test_metrics_endpoint_appends_the_path_only_to_base_urls():
    assert metrics_endpoint("http://127.0.0.1:9101") == "http://127.0.0.1:9101/metrics"
    assert metrics_endpoint("http://127.0.0.1:9101/") == "http://127.0.0.1:9101/metrics"
    assert metrics_endpoint("http://h:1/custom/metrics") == "http://h:1/custom/metrics"


class FakeSite:
    """Canned replies per URL; a reply that is an exception is raised (a refused connection)."""

    def __init__(self) -> None:
        self.replies: dict[str, object] = {}
        self.now = 1000.0

    def fetch(self, url: str, timeout: float) -> str:
        reply = self.replies.get(url, OSError(f"connection refused: {url}"))
        if isinstance(reply, Exception):
            raise reply
        return str(reply)

    def clock(self) -> float:
        return self.now


CONTROLLER = "http://127.0.0.1:9100"
USER_METRICS = "http://127.0.0.1:9101/metrics"
ORDER_METRICS = "http://127.0.0.1:9103/metrics"


def controller_reply(*pods: dict) -> str:
    return json.dumps({"ok": True, "pods": list(pods)})


def pod_status(name: str, **extra: object) -> dict:
    status = {"pod": name, "service": f"{name}-service", "desired": "running", "phase": "Running",
              "status": "Running", "ready": True, "containers_ready": 3, "containers": 3,
              "restarts": 0, "sidecar_restarts": {"logger": 0, "metrics": 0}, "last_reason": None,
              "age_seconds": 12.0, "app_pid": 4242}
    status.update(extra)
    return status


@pytest.fixture
def site() -> FakeSite:
    return FakeSite()


@pytest.fixture
def monitor(site: FakeSite) -> PodsMonitor:
    return PodsMonitor(CONTROLLER, (("user", "http://127.0.0.1:9101"), ("order", "http://127.0.0.1:9103")),
                       interval=5, history=3, fetch=site.fetch, clock=site.clock)


def test_monitor_merges_controller_status_with_scraped_figures(site, monitor):
    site.replies[CONTROLLER + "/pods"] = controller_reply(
        pod_status("user"), pod_status("order", status="CrashLoopBackOff", restarts=4,
                                       last_reason="exit status 1"))
    site.replies[USER_METRICS] = scrape(0, 0, 0, {})
    monitor.poll_once()
    site.now += 5
    site.replies[USER_METRICS] = scrape(45, 5, 3, {"0.01": 50})
    monitor.poll_once()
    snap = monitor.snapshot()
    assert snap["ok"] and snap["controller_error"] is None and snap["updated_at"] == site.now
    user, order = (next(p for p in snap["pods"] if p["pod"] == name) for name in ("user", "order"))
    assert user["status"] == "Running" and user["ready"] and user["restarts"] == 0
    assert user["metrics"]["request_rate"] == pytest.approx(10.0)
    assert user["metrics"]["error_ratio"] == pytest.approx(0.1)
    assert 5 < user["metrics"]["p95_ms"] <= 10
    assert [p["t"] for p in user["metrics"]["history"]] == [site.now]
    assert order["status"] == "CrashLoopBackOff" and order["restarts"] == 4
    assert order["last_reason"] == "exit status 1"
    assert "connection refused" in order["metrics"]["error"]
    assert order["metrics"]["history"] == [] and order["metrics"]["request_rate"] is None
    assert "app_pid" not in user  # only the documented fields are passed on


def test_monitor_keeps_a_bounded_history(site, monitor):
    site.replies[CONTROLLER + "/pods"] = controller_reply(pod_status("user"))
    for i in range(10):
        site.replies[USER_METRICS] = scrape(i * 10, 0, 0, {"0.005": i * 10})
        monitor.poll_once()
        site.now += 5
    history = monitor.snapshot()["pods"][1]["metrics"]["history"]
    assert len(history) == 3 and all(p["request_rate"] == pytest.approx(2.0) for p in history)


def test_monitor_lists_scraped_pods_when_the_controller_is_down(site, monitor):
    site.replies[USER_METRICS] = scrape(1, 0, 0, {"0.005": 1})
    monitor.poll_once()
    snap = monitor.snapshot()
    assert [p["pod"] for p in snap["pods"]] == ["order", "user"]
    assert "connection refused" in snap["controller_error"]
    assert snap["pods"][1]["status"] is None
    # A reply that is not the controller's document is an error too, not a crash.
    site.replies[CONTROLLER + "/pods"] = "<html>proxy error</html>"
    monitor.poll_once()
    assert "Expecting value" in monitor.snapshot()["controller_error"]
    site.replies[CONTROLLER + "/pods"] = json.dumps({"pods": [{"name": "x"}]})
    monitor.poll_once()
    assert "no list of pods" in monitor.snapshot()["controller_error"]


def test_monitor_thread_polls_and_stops(site):
    polled = []

    def fetch(url: str, timeout: float) -> str:
        polled.append(url)
        return controller_reply(pod_status("user"))

    monitor = PodsMonitor(CONTROLLER, (), interval=0.01, fetch=fetch)
    monitor.start()
    try:
        wait_for(lambda: len(polled) >= 3, 10, "three polls of the controller", interval=0.01)
    finally:
        monitor.stop()
    assert not monitor._thread.is_alive()
    assert not PodsMonitor(None, ()).enabled


def test_pods_endpoint_needs_the_token_when_reads_do(tmp_path: Path, site):
    site.replies[CONTROLLER + "/pods"] = controller_reply(pod_status("user"))
    monitor = PodsMonitor(CONTROLLER, (), fetch=site.fetch, clock=site.clock)
    app = create_app(make_settings(tmp_path, read_auth="always"), pods=monitor,
                     start_background=False)
    client = app.test_client()
    try:
        monitor.poll_once()
        denied = client.get("/api/v1/pods")
        assert denied.status_code == 401 and denied.json["ok"] is False
        reply = client.get("/api/v1/pods", headers={"Authorization": f"Bearer {token_of(app)}"})
        assert reply.status_code == 200
        assert [p["pod"] for p in reply.json["pods"]] == ["user"]
        assert reply.json["pods"][0]["metrics"] is None  # no sidecar configured for it
    finally:
        state_of(app).close()


def test_pods_endpoint_without_configuration(tmp_path: Path):
    app = create_app(make_settings(tmp_path), start_background=False)
    try:
        reply = app.test_client().get("/api/v1/pods")
        assert reply.status_code == 200 and reply.json["pods"] == []
        assert "AGGREGATOR_CONTROLLER_URL" in reply.json["controller_error"]
    finally:
        state_of(app).close()
