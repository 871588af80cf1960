"""A real Prometheus and the real promtool against a whole podvisor stack under supervisord.

Every endpoint's real output must pass `promtool check metrics`; the rendered prometheus.yml and
rules must pass `promtool check config`, `check rules` and `test rules`; a Prometheus on a loopback
ephemeral port scrapes the stack and sees every target up and the enriched app series; when an app
is stopped its series vanish (stale markers) and `podvisor_target_up` reads 0. Missing
`prometheus`/`promtool` fails these tests (Debian's `prometheus` package provides both).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from podvisor.supervisord.prometheus import alerts
from podvisor.testing.harness import StackHandle, free_port, terminate

pytestmark = pytest.mark.e2e
SERVICES = {"user": "user-service", "product": "product-service", "order": "order-service"}
PODS = (*SERVICES, "gateway")  # the gateway (nginx) serves no Prometheus metrics: its sidecar adapts
OUR_LABELS = ("service_name", "environment", "pod")
OPENMETRICS_ACCEPT = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
DEADLINE = 60.0  # generous: the machine is shared with other test runs


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found: install Debian's prometheus package (apt-get install -y prometheus)"
    return path


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], input=stdin, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def poll(check: Callable[[], Any], what: str, output: Callable[[], str],
         alive: Callable[[], bool] = lambda: True, timeout: float = DEADLINE) -> Any:
    """Poll `check` until truthy; fail at once when `alive()` turns false, else at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except (requests.RequestException, ValueError, KeyError, IndexError) as exc:
            last = exc
        else:
            if last:
                return last
        if not alive() or time.monotonic() > deadline:
            reason = "a process died" if not alive() else f"no success within {timeout}s"
            pytest.fail(f"waiting for {what}: {reason}; last: {last!r}\n{output()}", pytrace=False)
        time.sleep(0.2)


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def series(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def samples(text: str, name: str, **match: str) -> list[tuple[dict[str, str], str]]:
    """(labels, value) of every text-format sample of `name` whose labels include `match`."""
    found = []
    for line in series(text, name):
        block, _, value = line[len(name) + 1:].rpartition("} ")
        labels = dict(_LABEL.findall(block))
        if labels.items() >= match.items():
            found.append((labels, value))
    return found


def sidecar_text(stack: StackHandle, pod: str, accept: str | None = None) -> requests.Response:
    headers = {"Accept": accept} if accept else {}
    resp = requests.get(stack.metrics[pod] + "/metrics", headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    """The shared stack, after a request to every app (so `http_requests_total` has a path="/")."""
    stack = podvisor_module_stack
    for pod in SERVICES:
        url = stack.apps[pod]
        assert requests.get(url + "/", timeout=10).status_code == 200
        assert requests.get(url + "/no-such-page", timeout=10).status_code == 404
        poll(lambda pod=pod: samples(sidecar_text(stack, pod).text, "http_requests_total", path="/"),
             f"{pod}'s request counted behind its sidecar", stack.output)
    assert requests.get(stack.apps["gateway"] + "/user/", timeout=10).status_code == 200
    poll(lambda: samples(sidecar_text(stack, "gateway").text, "podvisor_logger_http_requests_total", route="/user/"),
         "the gateway's access line counted by its logger, behind its sidecar", stack.output)
    return stack


class Prometheus:
    """A running Prometheus server and its HTTP query API."""

    def __init__(self, proc: subprocess.Popen, url: str, log: Path, stack: StackHandle):
        self.proc, self.url, self.log, self.stack = proc, url, log, stack

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return f"--- prometheus ---\n{self.log.read_text(errors='replace')[-4000:]}\n{self.stack.output(20)}"

    def query(self, expr: str) -> list[dict]:
        resp = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        assert resp.status_code == 200, f"{expr}: {resp.text}"
        return resp.json()["data"]["result"]

    def values(self, expr: str) -> dict[str, str]:
        """{pod label (or instance): value} of an instant query."""
        return {s["metric"].get("pod") or s["metric"]["instance"]: s["value"][1] for s in self.query(expr)}

    def wait(self, check: Callable[[], Any], what: str) -> Any:
        return poll(check, what, self.output, self.alive)

    def wait_values(self, expr: str, check: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        """Poll `expr` until `check(values)` holds: a scrape that fails on a loaded machine makes
        Prometheus mark the target's series stale for a moment, so single reads would be flaky."""
        return self.wait(lambda: (lambda v: v if check(v) else None)(self.values(expr)), expr)


@pytest.fixture(scope="module")
def prometheus(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Prometheus with the stack's rendered config (1 s scrapes) on a loopback ephemeral port."""
    exe = binary("prometheus")
    root = tmp_path_factory.mktemp("prometheus")
    config = stack.prometheus_config(root, scrape_interval="1s")
    log = root / "prometheus.log"
    url = f"http://127.0.0.1:{free_port()}"
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
                                 f"--web.listen-address={url[len('http://'):]}"],
                                cwd=root, stdout=out, stderr=subprocess.STDOUT)
    try:
        server = Prometheus(proc, url, log, stack)
        server.wait(lambda: requests.get(url + "/-/ready", timeout=2).status_code == 200, "prometheus ready")
        yield server
    finally:
        terminate(proc, 15)


def endpoints(stack: StackHandle, kind: str) -> dict[str, str]:
    if kind == "metrics sidecar":
        return {pod: url + "/metrics" for pod, url in stack.metrics.items()}
    if kind == "logger":
        return {pod: url + "/metrics" for pod, url in stack.loggers.items()}
    return {kind: (stack.aggregator_url if kind == "aggregator" else stack.controller_url) + "/metrics"}


@pytest.mark.parametrize("kind", ["metrics sidecar", "logger", "aggregator", "controller"])
def test_promtool_check_metrics_is_clean_on_every_endpoint(stack, kind):
    for name, url in endpoints(stack, kind).items():
        resp = requests.get(url, timeout=10)
        assert resp.status_code == 200, (name, resp.text)
        assert resp.headers["Content-Type"].startswith("text/plain"), (name, resp.headers)
        assert resp.text.strip(), f"{name}: empty exposition"
        result = promtool("check", "metrics", stdin=resp.text)
        assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
            f"promtool check metrics on {kind} {name} ({url}):\n{result.stdout}{result.stderr}\n"
            f"--- input ---\n{resp.text[:4000]}")


@pytest.mark.parametrize("pod", list(SERVICES))
def test_sidecar_carries_app_pod_logger_and_process_series_with_pod_labels(stack, pod):
    text = sidecar_text(stack, pod).text
    ours = {"service_name": SERVICES[pod], "environment": "production", "pod": pod}
    wanted = ["http_requests_total", "http_request_duration_seconds_bucket", "podvisor_target_up",
              "podvisor_target_scrape_duration_seconds", "podvisor_target_scrape_errors_total",
              "podvisor_pod_cpu_seconds_total", "podvisor_pod_resident_memory_bytes", "podvisor_pod_open_fds",
              "podvisor_pod_max_fds", "podvisor_pod_threads", "podvisor_pod_start_time_seconds",
              "podvisor_pod_memory_limit_bytes", "podvisor_logger_lag_seconds", "podvisor_logger_lines_shipped_total"]
    for name in wanted:
        assert series(text, name) and len(samples(text, name, **ours)) == len(series(text, name)), (
            f"{name} missing or without the pod labels:\n{text[:3000]}")
    for target in ("app", "logger"):
        assert [v for _, v in samples(text, "podvisor_target_up", target=target)] == ["1.0"], text[:3000]
    # The pod's lifecycle series have one producer, the controller: never a second copy here.
    for name in ("podvisor_pod_ready", "podvisor_pod_phase", "podvisor_pod_restarts_total"):
        assert not series(text, name), f"{name} is exposed by the sidecar too"
    controller = requests.get(stack.controller_url + "/metrics", timeout=10).text
    assert [float(v) for _, v in samples(controller, "podvisor_pod_ready", **ours)] == [1], controller
    assert [float(v) for _, v in samples(controller, "podvisor_pod_phase", phase="Running", **ours)] == [1]
    # le is the app's, untouched; one family only per name (a dedicated registry, no default collectors)
    buckets = samples(text, "http_request_duration_seconds_bucket")
    assert {labels["le"] for labels, _ in buckets} >= {"0.005", "+Inf"}
    types = re.findall(r"^# TYPE (\S+) ", text, re.M)
    assert len(types) == len(set(types)), "a family appears twice"


@pytest.mark.parametrize("pod", list(SERVICES))
def test_sidecar_openmetrics_answer_parses_and_keeps_every_app_series(stack, pod):
    app = requests.get(stack.apps[pod] + "/metrics", headers={"Accept": OPENMETRICS_ACCEPT}, timeout=10)
    resp = sidecar_text(stack, pod, OPENMETRICS_ACCEPT)
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text"), resp.headers
    assert resp.text.endswith("\n# EOF\n") and resp.text.count("# EOF") == 1
    enriched = {f.name: f for f in parse_openmetrics(resp.text)}  # raises on anything invalid
    assert enriched["http_requests"].type == "counter"
    assert enriched["http_request_duration_seconds"].type == "histogram"
    assert enriched["podvisor_target_up"].type == "gauge" and enriched["podvisor_pod_threads"].type == "gauge"
    for family in enriched.values():
        for sample in family.samples:
            assert {k: sample.labels.get(k) for k in OUR_LABELS} == {
                "service_name": SERVICES[pod], "environment": "production", "pod": pod}, sample

    # The app's series, and its process series, are the replica's: the pod holds its socket and runs
    # one replica (slot 0) with a spare slot for rolling restarts, which is not running.
    assert {s.labels.get("replica") for s in enriched["http_requests"].samples} == {"0"}
    assert {s.labels.get("replica") for s in enriched["podvisor_pod_threads"].samples} == {"0"}

    def strip(labels: dict[str, str]) -> frozenset:
        return frozenset((k, v) for k, v in labels.items() if k not in (*OUR_LABELS, "replica"))
    # The app only ever adds series, and it was scraped first: all of its series must come through,
    # with the same family type, HELP and unit.
    for family in parse_openmetrics(app.text):
        through = enriched.get(family.name)
        assert through is not None, f"{family.name} dropped by the sidecar"
        meta = (family.type, family.documentation, family.unit)
        assert (through.type, through.documentation, through.unit) == meta, family.name
        got = {(s.name, strip(s.labels)) for s in through.samples}
        missing = {(s.name, strip(s.labels)) for s in family.samples} - got
        assert not missing, f"{family.name}: series lost: {sorted(missing)[:5]}"


def test_promtool_accepts_the_rendered_config_rules_and_rule_tests(stack, tmp_path):
    config = stack.prometheus_config(tmp_path, scrape_interval="1s")
    text = config.read_text()
    for url in [*stack.metrics.values(), stack.aggregator_url, stack.controller_url]:
        assert f'"{url[len("http://"):]}"' in text, f"{url} is not a target:\n{text}"
    checked = promtool("check", "config", config.name, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = promtool("check", "rules", "podvisor.rules.yml", cwd=tmp_path)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in rules.stdout, rules.stdout
    tested = promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_prometheus_scrapes_every_target_and_sees_the_enriched_series(stack, prometheus):
    ports = [*stack.metrics.values(), stack.aggregator_url, stack.controller_url]
    expected = {url[len("http://"):]: "1" for url in ports}

    def all_up() -> bool | None:
        got = {s["metric"]["instance"]: s["value"][1] for s in prometheus.query("up")}
        return got == expected or None
    prometheus.wait(all_up, f"up == 1 for every target {sorted(expected)}")
    prometheus.wait_values('up{job="podvisor-pods"}', lambda v: v == dict.fromkeys(PODS, "1"))

    for pod, service in SERVICES.items():
        expr = (f'http_requests_total{{service_name="{service}",environment="production",'
                f'pod="{pod}",path="/"}}')
        (found,) = prometheus.wait(lambda expr=expr: prometheus.query(expr), f"{expr} in Prometheus")
        assert found["metric"]["job"] == "podvisor-pods" and float(found["value"][1]) >= 1
    # pod status once (the controller's, with the pod labels), logger and process series
    all_ready = dict.fromkeys(PODS, "1")
    prometheus.wait_values('podvisor_pod_ready{job="podvisor-controller",environment="production"}',
                           lambda v: v == all_ready)
    assert not prometheus.query('podvisor_pod_ready{job="podvisor-pods"}'), "a second producer of pod status"
    prometheus.wait_values("podvisor_logger_lag_seconds", lambda v: set(v) == set(PODS))
    prometheus.wait_values("podvisor_pod_resident_memory_bytes",
                           lambda v: set(v) == set(PODS) and all(float(x) > 0 for x in v.values()))
    prometheus.wait_values("aggregator_entries_stored_total", bool)  # the aggregator's own series

    def rules_evaluated() -> list[dict] | None:
        groups = requests.get(prometheus.url + "/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        done = all(r["health"] == "ok" and not r["lastEvaluation"].startswith("0001") for r in rules)
        return rules if rules and done else None
    rules = prometheus.wait(rules_evaluated, "every alert rule evaluated without error")
    assert sorted(r["name"] for r in rules) == sorted(a.name for a in alerts())


def test_the_gateway_is_scraped_through_the_nginx_adapter_and_its_logger(stack, prometheus):
    """nginx serves no Prometheus metrics: its sidecar reads stub_status, its logger counts its access
    log per route; both reach Prometheus typed and with the pod labels."""
    text = sidecar_text(stack, "gateway").text
    ours = {"service_name": "gateway", "environment": "production", "pod": "gateway"}
    for name in ("nginx_connections_active", "nginx_connections_reading", "nginx_connections_writing",
                 "nginx_connections_waiting", "nginx_connections_accepted_total", "nginx_connections_handled_total",
                 "nginx_http_requests_total"):
        assert len(samples(text, name, **ours)) == 1, f"{name} missing or without the pod labels:\n{text[:3000]}"
    assert "# TYPE nginx_http_requests_total counter" in text and "# TYPE nginx_connections_active gauge" in text
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr
    om = {f.name: f for f in parse_openmetrics(sidecar_text(stack, "gateway", OPENMETRICS_ACCEPT).text)}
    assert om["nginx_http_requests"].type == "counter" and om["nginx_connections_active"].type == "gauge"

    requests.get(stack.apps["gateway"] + "/product/products", timeout=10)
    prometheus.wait_values('nginx_http_requests_total{pod="gateway",service_name="gateway"}',
                           lambda v: float(v.get("gateway", 0)) >= 2)
    prometheus.wait_values('nginx_connections_active{pod="gateway"}', lambda v: float(v.get("gateway", 0)) >= 1)
    routes = 'sum by (route) (podvisor_logger_http_requests_total{pod="gateway",status_class="2xx"})'
    prometheus.wait(lambda: {s["metric"]["route"] for s in prometheus.query(routes)} >= {"/user/", "/product/"},
                    "the gateway's requests per route in Prometheus")
    assert prometheus.query('podvisor_logger_http_request_duration_seconds_bucket{pod="gateway",le="+Inf"}')


def test_a_stopped_app_reads_down_and_its_series_vanish(stack, prometheus):
    """Last in this module: it leaves user's app stopped (the module's stack is torn down after)."""
    prometheus.wait(lambda: prometheus.query('http_requests_total{pod="user"}'), "user's app series scraped")
    stack.rpc.stop("user-app")  # as `supervisorctl stop user-app`: the controller leaves it stopped

    text = sidecar_text(stack, "user").text
    assert [v for _, v in samples(text, "podvisor_target_up", target="app")] == ["0.0"], text[:3000]
    assert not series(text, "http_requests_total")
    assert not series(text, "http_request_duration_seconds_bucket")
    assert not series(text, "podvisor_pod_resident_memory_bytes")  # no app process, no process series
    assert series(text, "podvisor_logger_lag_seconds")  # the rest of the pod is still reported
    (errors,) = samples(text, "podvisor_target_scrape_errors_total", target="app", reason="connection")
    assert float(errors[1]) >= 1, text[:3000]
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result
    assert list(parse_openmetrics(sidecar_text(stack, "user", OPENMETRICS_ACCEPT).text))

    prometheus.wait_values('podvisor_target_up{target="app",pod="user"}', lambda v: v == {"user": "0"})
    # The next successful scrape without them writes stale markers: an instant query no longer sees
    # them, though their history stays (present_over_time over the last minute still finds them).
    down = 'podvisor_target_up{target="app",pod="user"} == 0'
    gone = 'http_requests_total{pod="user"}'
    prometheus.wait(lambda: prometheus.query(gone) == [] and prometheus.query(down),
                    "user's app series gone from Prometheus' latest query, its sidecar scraped")
    assert prometheus.query('present_over_time(http_requests_total{pod="user"}[1m])')
    prometheus.wait_values('http_requests_total{pod="product"}', bool)  # other pods keep theirs
    # The sidecar itself still answers: the pod is observed, its app is down.
    prometheus.wait_values('up{job="podvisor-pods",pod="user"}', lambda v: v == {"user": "1"})

    # Stopped on purpose: the service-down rule does not select it, though the raw condition holds.
    prometheus.wait(lambda: prometheus.query('podvisor_pod_phase{pod="user",phase="Stopped"} == 1'),
                    "phase Stopped in Prometheus")
    (rule,) = [a for a in alerts() if a.key == "service-down-app"]
    prometheus.wait(lambda: prometheus.query(down) and not prometheus.query(rule.expr),
                    "the service-down rule leaving the stopped app alone")
