"""One scrape of the sidecar with injected upstreams: no sockets (sidecars/metrics/enricher.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.process_collector import ProcessCollector

from podvisor.sidecars.metrics.enricher import Enricher, Replica, Upstreams
from podvisor.sidecars.metrics.exposition import OPENMETRICS, TEXT, enrich, format_of, merge, negotiate
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.scraper import REASONS, Response, ScrapeError

POD = PodLabels(service_name="user-service", environment="test", pod="user")
OURS = {"service_name": "user-service", "environment": "test", "pod": "user"}
APP, LOGGER = "http://app/metrics", "http://logger/metrics"

Handler = Callable[[str], Response]


class FakeUpstreams:
    """Fetch stand-in: a handler (or an exception to raise) per URL; records every call."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler | Exception] = {}
        self.calls: list[tuple[str, str, float]] = []

    def __call__(self, url: str, accept: str, timeout: float) -> Response:
        self.calls.append((url, accept, timeout))
        route = self.routes[url]
        if isinstance(route, Exception):
            raise route
        return route(accept)


def serving(registry: CollectorRegistry) -> Handler:
    """Answer like a prometheus_client app: negotiate the format from Accept."""

    def handler(accept: str) -> Response:
        encoder, content_type = choose_encoder(accept)
        return Response(200, content_type, encoder(registry))

    return handler


def app_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("http_requests", "Requests.", ["method", "status"], registry=registry).labels("GET", "200").inc(7)
    Histogram("http_request_duration_seconds", "Latency.", ["path"], registry=registry).labels("/x").observe(
        0.2
    )
    ProcessCollector(registry=registry)  # the app's own process_* families
    return registry


def families(body: bytes, openmetrics: bool = False) -> dict:
    text = body.decode("utf-8")
    parsed = list(parse_om(text) if openmetrics else parse_text(text))
    names = [f.name for f in parsed]
    assert len(names) == len(set(names)), (
        f"duplicate families: {sorted(n for n in names if names.count(n) > 1)}"
    )
    return {f.name: f for f in parsed}


def value(fams: dict, family: str, suffix: str = "", **labels: str) -> float:
    names = (family + suffix,) if suffix else (family, family + "_total")
    matches = [
        s.value
        for s in fams[family].samples
        if s.name in names and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(matches) == 1, (family, labels, fams[family].samples)
    return matches[0]


@pytest.fixture
def upstreams() -> FakeUpstreams:
    fake = FakeUpstreams()
    fake.routes[APP] = serving(app_registry())
    return fake


def make(upstreams: FakeUpstreams, **kw: str) -> Enricher:
    return Enricher(POD, Upstreams(app=APP, **kw), upstreams)


def test_app_series_come_through_labelled_with_our_families_and_none_twice(upstreams: FakeUpstreams) -> None:
    enricher = make(upstreams)
    fams = families(enricher.render(TEXT, 5.0))
    assert value(fams, "http_requests", method="GET", status="200", **OURS) == 7
    assert fams["http_request_duration_seconds"].type == "histogram"
    assert value(fams, "http_request_duration_seconds", "_bucket", le="+Inf", **OURS) == 1
    # the app's process families pass through as the app's; the sidecar adds none of its own
    assert all(s.labels["pod"] == "user" for s in fams["process_cpu_seconds"].samples)
    assert value(fams, "podvisor_target_up", target="app", **OURS) == 1
    assert value(fams, "podvisor_target_scrape_duration_seconds", target="app") >= 0
    assert {s.labels["reason"] for s in fams["podvisor_target_scrape_errors"].samples} == set(REASONS)
    assert not [n for n in fams if n.startswith("python_")]  # no default collectors of ours
    for fam in fams.values():
        for s in fam.samples:
            assert {k: s.labels[k] for k in OURS} == OURS, s


def test_openmetrics_is_answered_when_asked_and_upstreams_are_asked_for_it(upstreams: FakeUpstreams) -> None:
    body = make(upstreams).render(OPENMETRICS, 5.0)
    assert body.endswith(b"# EOF\n") and body.count(b"# EOF") == 1
    fams = families(body, openmetrics=True)
    assert fams["http_requests"].type == "counter"
    assert value(fams, "http_requests", method="GET", **OURS) == 7
    assert upstreams.calls[0][1].startswith("application/openmetrics-text")


def test_each_scrape_fetches_afresh(upstreams: FakeUpstreams) -> None:
    registry = CollectorRegistry()
    gauge = Gauge("queue_depth", "Depth.", registry=registry)
    upstreams.routes[APP] = serving(registry)
    enricher = make(upstreams)
    for depth in (1, 5, 2):
        gauge.set(depth)
        assert value(families(enricher.render(TEXT, 5.0)), "queue_depth") == depth
    assert len(upstreams.calls) == 3


@pytest.mark.parametrize(
    "failure, reason",
    [
        (ScrapeError("connection", "refused"), "connection"),
        (ScrapeError("timeout", "slow"), "timeout"),
        (lambda accept: Response(503, "text/plain", b"unavailable"), "http_status"),
        (lambda accept: Response(200, "text/plain; version=0.0.4", b"this is { not metrics"), "parse"),
        (
            lambda accept: Response(200, "application/openmetrics-text", b"g 1\n"),
            "parse",
        ),  # truncated: no EOF
        (lambda accept: Response(200, "text/plain", b"\xff\xfe"), "parse"),
    ],
)
def test_app_down_its_series_vanish_up_is_0_and_the_reason_is_counted(
    upstreams: FakeUpstreams, failure: Handler | Exception, reason: str
) -> None:
    enricher = make(upstreams)
    assert value(families(enricher.render(TEXT, 5.0)), "podvisor_target_up", target="app") == 1
    upstreams.routes[APP] = failure
    for expected_errors in (1, 2):
        fams = families(enricher.render(TEXT, 5.0))
        assert "http_requests" not in fams and "process_cpu_seconds" not in fams
        assert value(fams, "podvisor_target_up", target="app", **OURS) == 0
        assert value(fams, "podvisor_target_scrape_errors", target="app", reason=reason) == expected_errors
        others = [r for r in REASONS if r != reason]
        assert all(value(fams, "podvisor_target_scrape_errors", target="app", reason=r) == 0 for r in others)
    upstreams.routes[APP] = serving(app_registry())
    fams = families(enricher.render(TEXT, 5.0))
    assert value(fams, "podvisor_target_up", target="app") == 1 and "http_requests" in fams


def test_a_hung_app_costs_no_more_than_the_scrape_timeout(upstreams: FakeUpstreams) -> None:
    release = threading.Event()

    def hang(accept: str) -> Response:
        release.wait(10)
        return serving(app_registry())(accept)

    upstreams.routes[APP] = hang
    enricher = make(upstreams)
    try:
        start = time.monotonic()
        fams = families(enricher.render(TEXT, 0.3))
        elapsed = time.monotonic() - start
    finally:
        release.set()
        enricher.close()
    assert elapsed < 1.5, elapsed
    assert value(fams, "podvisor_target_up", target="app") == 0
    assert value(fams, "podvisor_target_scrape_errors", target="app", reason="timeout") == 1
    assert upstreams.calls[0][2] <= 0.3


def test_logger_families_merge_with_pod_labels_and_own_up(upstreams: FakeUpstreams) -> None:
    logger = CollectorRegistry()
    Counter("podvisor_logger_shipped_lines", "Lines shipped.", registry=logger).inc(12)
    ProcessCollector(registry=logger)  # would collide with the app's process_* if merged
    upstreams.routes[LOGGER] = serving(logger)
    enricher = make(upstreams, logger=LOGGER)
    for out in (TEXT, OPENMETRICS):
        fams = families(enricher.render(out, 5.0), openmetrics=out.openmetrics)
        assert value(fams, "podvisor_logger_shipped_lines", **OURS) == 12
        assert value(fams, "podvisor_target_up", target="logger", **OURS) == 1
        assert value(fams, "podvisor_target_up", target="app", **OURS) == 1
    upstreams.routes[LOGGER] = ScrapeError("connection", "refused")
    fams = families(enricher.render(TEXT, 5.0))
    assert "podvisor_logger_shipped_lines" not in fams
    assert value(fams, "podvisor_target_up", target="logger") == 0
    assert value(fams, "podvisor_target_up", target="app") == 1 and "http_requests" in fams


def test_app_families_in_the_sidecar_namespace_are_dropped(
    upstreams: FakeUpstreams, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    Gauge("podvisor_target_up", "Impostor.", registry=registry).set(42)
    Gauge("podvisor_pod_ready", "Impostor.", registry=registry).set(42)
    Gauge("podvisor_app_custom", "An app may use other podvisor_ names.", registry=registry).set(3)
    upstreams.routes[APP] = serving(registry)
    enricher = make(upstreams)
    with caplog.at_level("WARNING", logger="podvisor.sidecars.metrics.enricher"):
        fams = families(enricher.render(TEXT, 5.0))
        enricher.render(TEXT, 5.0)
    assert value(fams, "podvisor_target_up", target="app") == 1
    assert "podvisor_pod_ready" not in fams and value(fams, "podvisor_app_custom") == 3
    # not dropped silently: one warning naming them, not one per scrape
    warnings = [r.getMessage() for r in caplog.records if "reserved" in r.getMessage()]
    assert len(warnings) == 1 and "podvisor_pod_ready, podvisor_target_up" in warnings[0], warnings


def test_the_pod_lifecycle_series_are_left_to_the_controller(upstreams: FakeUpstreams) -> None:
    """podvisor_pod_ready/_phase/_restarts_total have one producer, the controller: the sidecar
    neither fetches the controller nor exposes them, and has no controller target."""
    upstreams.routes[LOGGER] = serving(CollectorRegistry())
    fams = families(make(upstreams, logger=LOGGER).render(TEXT, 5.0))
    assert not {"podvisor_pod_ready", "podvisor_pod_restarts", "podvisor_pod_phase"} & set(fams)
    targets = {s.labels["target"] for s in fams["podvisor_target_up"].samples}
    assert targets == {"app", "logger"}
    assert {url for url, _, _ in upstreams.calls} == {APP, LOGGER}


def test_local_collectors_are_collected_every_scrape(upstreams: FakeUpstreams) -> None:
    calls = []

    class Probe:
        def collect(self) -> list[GaugeMetricFamily]:
            calls.append(1)
            return [GaugeMetricFamily("probe_calls", "Calls so far.", value=len(calls))]

    enricher = Enricher(POD, Upstreams(app=APP), upstreams, collectors=[Probe()])
    enricher.render(TEXT, 5.0)
    assert value(families(enricher.render(TEXT, 5.0)), "probe_calls") == 2


# exposition helpers


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, TEXT),
        ("", TEXT),
        ("text/plain;version=0.0.4", TEXT),
        ("*/*", TEXT),
        ("application/openmetrics-text", OPENMETRICS),
        (
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
            "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            OPENMETRICS,
        ),
        ("application/openmetrics-text;q=0,text/plain", TEXT),
    ],
)
def test_negotiation(accept: str | None, expected: object) -> None:
    assert negotiate(accept) is expected


def test_upstream_format_from_content_type() -> None:
    assert format_of("application/openmetrics-text; version=1.0.0; charset=utf-8") is OPENMETRICS
    assert format_of("text/plain; version=0.0.4") is TEXT and format_of(None) is TEXT


def test_an_upstream_ignoring_accept_is_converted_both_ways() -> None:
    registry = app_registry()
    text_body = choose_encoder("text/plain")[0](registry).decode()
    om_body = choose_encoder("application/openmetrics-text")[0](registry).decode()
    as_om = enrich(text_body, TEXT, OPENMETRICS, POD)
    fams = families((as_om + "# EOF\n").encode(), openmetrics=True)
    assert value(fams, "http_requests", method="GET", **OURS) == 7
    as_text = enrich(om_body, OPENMETRICS, TEXT, POD)
    fams = families(as_text.encode())
    assert value(fams, "http_requests", method="GET", **OURS) == 7


# -- replicas: several app processes of one pod, each scraped on its own port --------------------------

R0, R1, R2 = "http://127.0.0.1:1/metrics", "http://127.0.0.1:2/metrics", "http://127.0.0.1:3/metrics"
SLOTS = (Replica("0", "user-app", R0), Replica("1", "user-app-1", R1), Replica("2", "user-app-2", R2))


class ProcessOf:
    """A replica's process collector stand-in: one gauge holding its pid, with its labels."""

    def __init__(self, pid: int, labels: PodLabels) -> None:
        self.pid, self.labels = pid, labels

    def collect(self):
        family = GaugeMetricFamily("podvisor_pod_processes", "Processes.", labels=self.labels.names())
        family.add_metric(self.labels.values(), self.pid)
        yield family


def replicated(upstreams: FakeUpstreams, running: dict[str, int] | None) -> Enricher:
    for url, requests in ((R0, 7), (R1, 11), (R2, 13)):
        registry = CollectorRegistry()
        Counter("http_requests", "Requests.", ["status"], registry=registry).labels("200").inc(requests)
        Histogram("http_request_duration_seconds", "Latency.", registry=registry).observe(0.2)
        upstreams.routes[url] = serving(registry)
    return Enricher(POD, Upstreams(logger=LOGGER, replicas=SLOTS), upstreams,
                    running=lambda: running, replica_collector=ProcessOf)


@pytest.mark.parametrize("out", [TEXT, OPENMETRICS], ids=["text", "openmetrics"])
def test_each_running_replica_is_scraped_on_its_own_port_and_labelled(upstreams: FakeUpstreams, out) -> None:
    upstreams.routes[LOGGER] = serving(CollectorRegistry())
    enricher = replicated(upstreams, {"user-app": 101, "user-app-2": 103})  # the spare, slot 1, is not running
    fams = families(enricher.render(out, 5.0), openmetrics=out.openmetrics)  # each family once
    assert value(fams, "http_requests", status="200", replica="0", **OURS) == 7
    assert value(fams, "http_requests", status="200", replica="2", **OURS) == 13
    assert {s.labels["replica"] for s in fams["http_requests"].samples} == {"0", "2"}
    assert {s.labels["replica"] for s in fams["http_request_duration_seconds"].samples} == {"0", "2"}
    assert R1 not in [url for url, _, _ in upstreams.calls]  # not running: never asked
    assert value(fams, "podvisor_pod_processes", replica="0") == 101
    assert value(fams, "podvisor_pod_processes", replica="2") == 103
    assert value(fams, "podvisor_target_up", target="app", replica="2") == 1
    assert [s.labels.get("replica") for s in fams["podvisor_target_up"].samples] == ["0", "2", None]


def test_a_replica_that_fails_reads_down_alone(upstreams: FakeUpstreams) -> None:
    upstreams.routes[LOGGER] = serving(CollectorRegistry())
    enricher = replicated(upstreams, {"user-app": 101, "user-app-1": 102})
    upstreams.routes[R1] = ScrapeError("connection", "refused")
    fams = families(enricher.render(TEXT, 5.0))
    assert value(fams, "podvisor_target_up", target="app", replica="0") == 1
    assert value(fams, "podvisor_target_up", target="app", replica="1") == 0
    assert {s.labels["replica"] for s in fams["http_requests"].samples} == {"0"}
    assert value(fams, "podvisor_target_scrape_errors", target="app", reason="connection") == 1


@pytest.mark.parametrize("running", [{}, None], ids=["none-running", "supervisord-silent"])
def test_no_running_replica_reads_app_down_without_asking_the_held_port(upstreams: FakeUpstreams, running) -> None:
    upstreams.routes[LOGGER] = serving(CollectorRegistry())
    enricher = replicated(upstreams, running)
    fams = families(enricher.render(TEXT, 5.0))
    assert [url for url, _, _ in upstreams.calls] == [LOGGER]
    assert value(fams, "podvisor_target_up", target="app", **OURS) == 0
    assert "http_requests" not in fams and "podvisor_pod_processes" not in fams
    assert value(fams, "podvisor_target_scrape_errors", target="app", reason="connection") == 1


def test_merge_keeps_one_block_per_family_and_untyped_samples_apart() -> None:
    first = '# HELP a_total A.\n# TYPE a_total counter\na_total{replica="0"} 1\nloose{replica="0"} 5\n'
    second = '# HELP a_total A, said otherwise.\n# TYPE a_total counter\na_total{replica="1"} 2\nloose{replica="1"} 6\n'
    assert merge([first, second]) == ('# HELP a_total A.\n# TYPE a_total counter\na_total{replica="0"} 1\n'
                                      'a_total{replica="1"} 2\nloose{replica="0"} 5\nloose{replica="1"} 6\n')
    assert merge([first]) == first and merge([]) == ""


def test_a_text_upstream_with_several_label_sets_converts_to_valid_openmetrics():
    """The logger answers the text format; asked for OpenMetrics, the sidecar converts. A counter's
    `_created` (its own gauge family in text) must land beside its label set's `_total`, not after
    all of them: Prometheus refuses a scrape whose label sets are interleaved."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

    registry = CollectorRegistry()
    retries = Counter("podvisor_logger_retries", "Retries.", ["reason"], registry=registry)
    retries.labels("connection").inc()
    retries.labels("token").inc(2)
    latency = Histogram("took_seconds", "Latency.", ["route"], buckets=(0.1, 1.0), registry=registry)
    latency.labels("/a").observe(0.05)
    latency.labels("/b").observe(2)
    out = enrich(generate_latest(registry).decode(), TEXT, OPENMETRICS, PodLabels("svc", "dev", "p"))
    fams = {f.name: f for f in parse_om(out + "# EOF\n")}  # raises on an invalid grouping
    names = [(s.name, s.labels["reason"]) for s in fams["podvisor_logger_retries"].samples]
    assert names == [("podvisor_logger_retries_total", "connection"), ("podvisor_logger_retries_created", "connection"),
                     ("podvisor_logger_retries_total", "token"), ("podvisor_logger_retries_created", "token")]
    buckets = [s.labels["le"] for s in fams["took_seconds"].samples if s.labels["route"] == "/b" and "le" in s.labels]
    assert buckets == ["0.1", "1.0", "+Inf"]
