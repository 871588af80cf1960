"""The controller's status port, as a WSGI app without sockets, and its pod series: parseable,
labelled with pod, service_name and environment, one phase series per phase, one 1 per pod."""
from __future__ import annotations

import json

from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from podvisor.supervisord.controller import podseries
from podvisor.supervisord.controller.states import Phase
from podvisor.supervisord.controller.status import expected_ready, status_app
from tests.fakes.supervisor import make_pod, rig

ENV = "test"


def render_metrics(pods: list[dict]) -> str:
    return podseries.render(pods, ENV)


def families(text: str) -> dict:
    out = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, f"family {family.name} exposed twice"
        out[family.name] = family
    return out


def live_snapshots() -> list[dict]:
    """Three real pods: one Running and Ready, one Stopped after a crash, one still Pending."""
    r = rig(make_pod("user", 3000), make_pod("product", 3100), make_pod("order", 3200))
    r.prober.answer("/health", 3202, False)  # order's logger never gets healthy
    r.tick(2)
    r.sup.crash("product-app", 1)
    r.tick()
    r.runners["product"].request("stop", "op1")
    r.sup.crash("user-logger", 1)
    r.tick()
    r.clock.advance(1.0)
    r.tick(2)
    return [runner.snapshot() for runner in r.runners.values()]


def test_exposition_parses_with_the_families_and_types_we_promise():
    fams = families(render_metrics(live_snapshots()))
    assert {name: f.type for name, f in fams.items()} == {
        "podvisor_pod_ready": "gauge", "podvisor_pod_restarts": "counter",
        "podvisor_pod_sidecar_restarts": "counter", "podvisor_pod_phase": "gauge",
        "podvisor_pod_condition": "gauge"}
    assert all(f.documentation for f in fams.values())


def test_each_pod_has_one_series_per_phase_and_exactly_one_is_1():
    pods = live_snapshots()
    assert [p["phase"] for p in pods] == ["Running", "Stopped", "Pending"]
    phase = families(render_metrics(pods))["podvisor_pod_phase"]
    for pod in pods:
        series = {s.labels["phase"]: s.value for s in phase.samples if s.labels["pod"] == pod["pod"]}
        assert set(series) == {p.value for p in Phase}
        assert [name for name, value in series.items() if value == 1] == [pod["phase"]]
        assert sum(series.values()) == 1


def test_values_follow_the_snapshots():
    pods = live_snapshots()
    fams = families(render_metrics(pods))
    ready = {s.labels["pod"]: s.value for s in fams["podvisor_pod_ready"].samples}
    assert ready == {"user": 1.0, "product": 0.0, "order": 0.0}
    restarts = {s.labels["pod"]: s.value for s in fams["podvisor_pod_restarts"].samples}
    assert restarts == {"user": 0.0, "product": 1.0, "order": 0.0}
    sidecar_samples = fams["podvisor_pod_sidecar_restarts"].samples
    sidecars = {(s.labels["pod"], s.labels["sidecar"]): s.value for s in sidecar_samples}
    assert sidecars[("user", "logger")] == 1.0 and sidecars[("user", "metrics")] == 0.0
    assert len(sidecars) == 6
    assert all(s.name.endswith("_total") for s in fams["podvisor_pod_restarts"].samples)


def test_label_values_are_escaped():
    odd = {"pod": 'we"ird\\pod\nx', "ready": True, "restarts": 2, "sidecar_restarts": {"logger": 0},
           "phase": "Running"}
    phase = families(render_metrics([odd]))["podvisor_pod_phase"]
    assert {s.labels["pod"] for s in phase.samples} == {'we"ird\\pod\nx'}
    assert {s.labels["service_name"] for s in phase.samples} == {'we"ird\\pod\nx'}  # no service: the pod


def test_no_pods_is_still_a_valid_exposition():
    text = render_metrics([])
    assert text.endswith("\n")
    assert all(not f.samples for f in families(text).values())


def test_every_series_carries_pod_service_name_and_environment():
    pods = live_snapshots()
    fams = families(render_metrics(pods))
    services = {p["pod"]: p["service"] for p in pods}
    for family in fams.values():
        for sample in family.samples:
            assert sample.labels["service_name"] == services[sample.labels["pod"]]
            assert sample.labels["environment"] == ENV


# --- the status port as a WSGI app -------------------------------------------------------------------

def status_client(pods: list[dict]) -> Client:
    return Client(status_app(lambda: pods, ENV))


def test_pods_lists_every_snapshot_and_pods_name_one():
    pods = live_snapshots()
    client = status_client(pods)
    response = client.get("/pods")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    body = json.loads(response.data)
    assert body["ok"] is True and [p["pod"] for p in body["pods"]] == ["user", "product", "order"]
    one = client.get("/pods/product")
    assert one.status_code == 200 and json.loads(one.data)["phase"] == "Stopped"
    assert json.loads(client.get("/pods/product/").data)["pod"] == "product"  # a trailing slash is fine
    missing = client.get("/pods/nope")
    assert missing.status_code == 404
    assert json.loads(missing.data) == {"ok": False, "error": "no pod named 'nope'"}


def test_ready_counts_only_the_pods_that_should_serve():
    pods = live_snapshots()  # user Ready, product stopped on purpose, order Pending
    assert [expected_ready(p) for p in pods] == [True, False, True]
    response = status_client(pods).get("/ready")
    assert response.status_code == 503 and json.loads(response.data) == {"ready": False}
    serving = [p for p in pods if p["pod"] != "order"]
    response = status_client(serving).get("/ready")
    assert response.status_code == 200 and json.loads(response.data) == {"ready": True}
    held = dict(pods[2], held_by_operator=["app"])  # an operator's supervisorctl stop
    assert not expected_ready(held)
    assert status_client([pods[0], held]).get("/ready").status_code == 200


def test_metrics_and_health():
    pods = live_snapshots()
    client = status_client(pods)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"] == podseries.CONTENT_TYPE
    assert response.get_data(as_text=True) == render_metrics(pods)
    health = client.get("/health")
    assert health.status_code == 200 and json.loads(health.data)["status"] == "healthy"


def test_the_status_port_is_read_only_and_says_so():
    client = status_client(live_snapshots())
    for method in ("POST", "PUT", "DELETE"):
        response = client.open("/pods/user", method=method)
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD, OPTIONS"
        assert "read-only" in json.loads(response.data)["error"]
    head = client.head("/pods")
    assert head.status_code == 200 and head.data == b""
    unknown = client.get("/nothing")
    assert unknown.status_code == 404 and json.loads(unknown.data)["ok"] is False


def test_a_failing_snapshot_is_a_json_500():
    def broken() -> list[dict]:
        raise RuntimeError("lock poisoned")

    response = Client(status_app(broken, ENV)).get("/pods")
    assert response.status_code == 500
    assert json.loads(response.data) == {"ok": False, "error": "internal error: RuntimeError"}
