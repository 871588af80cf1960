"""The controller's Prometheus exposition: parseable, one phase series per phase, one 1 per pod."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from supervisord.controller.status import PHASES, render_metrics
from tests.unit.fakes_supervisor import make_pod, rig


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
        "podvisor_pod_sidecar_restarts": "counter", "podvisor_pod_phase": "gauge"}
    assert all(f.documentation for f in fams.values())


def test_each_pod_has_one_series_per_phase_and_exactly_one_is_1():
    pods = live_snapshots()
    assert [p["phase"] for p in pods] == ["Running", "Stopped", "Pending"]
    phase = families(render_metrics(pods))["podvisor_pod_phase"]
    for pod in pods:
        series = {s.labels["phase"]: s.value for s in phase.samples if s.labels["pod"] == pod["pod"]}
        assert set(series) == set(PHASES)
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


def test_no_pods_is_still_a_valid_exposition():
    text = render_metrics([])
    assert text.endswith("\n")
    assert all(not f.samples for f in families(text).values())
