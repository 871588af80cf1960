"""Pod conditions end to end: depends_on holds an app until its dependencies are Ready, a logger that
cannot ship makes its pod Degraded (issue 11's stall), and the controller keeps a pod's events."""
from __future__ import annotations

import os
import signal
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.lifecycle import podapp_pod, podapp_spec

pytestmark = pytest.mark.e2e


def condition(pod: dict, kind: str) -> dict:
    (found,) = [c for c in pod["conditions"] if c["type"] == kind]
    return found


def test_an_app_starts_only_once_the_pods_it_depends_on_are_ready(podvisor_factory):
    spec = podapp_spec(db=podapp_pod(env={"FIXTURE_GATE": "closed"},
                                     probes={"readiness": {"http_get": "/ready", "period_seconds": 0.2}}),
                       web=podapp_pod(depends_on=["db"]))
    stack = podvisor_factory(spec, start=False).start(wait_ready=False)
    stack.wait_for(lambda: requests.get(stack.apps["db"] + "/health", timeout=1).ok, 30, "db's app serving")
    stack.wait_for(lambda: stack.pods()["web"]["containers_ready"] == 2, 30, "web's sidecars up")
    web = stack.pods()["web"]
    assert stack.info("web-app")["statename"] == "STOPPED", "web's app started before db was Ready"
    assert web["status"] == "PodInitializing" and condition(web, "DependenciesReady")["status"] is False, web
    assert "db" in condition(web, "DependenciesReady")["message"]
    assert any(e["reason"] == "Waiting" and "db" in e["message"] for e in web["events"]), web["events"]
    assert stack.info("web-logger")["statename"] == "RUNNING", "the sidecars do not wait"
    requests.get(stack.apps["db"] + "/gate/open", timeout=5)
    stack.wait_for(lambda: stack.pods()["web"]["ready"], 30, "web Ready once db is")
    assert condition(stack.pods()["web"], "DependenciesReady")["status"] is True


def test_a_logger_that_cannot_ship_makes_its_pod_degraded_and_says_why(podvisor_factory):
    stack = podvisor_factory(podapp_spec(app=podapp_pod(shipping_stall_seconds=2)))
    assert condition(stack.pods()["app"], "ShippingStalled")["status"] is False
    stack.rpc.stop("aggregator")  # as an operator would; the controller leaves it stopped
    requests.get(stack.apps["app"] + "/", timeout=5)  # a line that now waits
    pod = stack.wait_for(lambda: (p := stack.pods()["app"])["status"] == "Degraded" and p, 30, "the pod Degraded")
    stalled = condition(pod, "ShippingStalled")
    assert stalled["status"] is True and "no line acknowledged" in stalled["message"], stalled
    assert pod["ready"], "a stall degrades the pod, it does not take it out of service"
    table = stack.podctl("status", "app")
    assert "Degraded" in table.stdout, table.stdout
    metrics = requests.get(stack.controller_url + "/metrics", timeout=5).text
    samples = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(metrics)
               for s in f.samples if s.name == "podvisor_pod_condition"}
    assert samples[tuple(sorted({"pod": "app", "service_name": "app-service", "environment": "test",
                                 "condition": "ShippingStalled"}.items()))] == 1
    stack.rpc.start("aggregator")
    stack.wait_for(lambda: stack.pods()["app"]["status"] == "Running", 30, "shipping resumed")
    reasons = [e["reason"] for e in stack.pods()["app"]["events"]]
    assert "ShippingStalled" in reasons and "ShippingResumed" in reasons, reasons


def test_the_controller_keeps_a_pods_events_a_kill_and_the_restart(podvisor_factory):
    stack = podvisor_factory(podapp_spec(app=podapp_pod()))
    pid = stack.pid("app-app")
    began = time.time()
    os.kill(pid, signal.SIGKILL)
    stack.wait_for(lambda: stack.pid("app-app") not in (0, pid) and stack.pods()["app"]["ready"], 30,
                   "the app restarted")
    events = stack.pods()["app"]["events"]
    reasons = [(e["container"], e["reason"]) for e in events]
    assert ("app", "Started") in reasons and ("app", "BackOff") in reasons and ("app", "Restarted") in reasons
    backoff = next(e for e in events if e["reason"] == "BackOff")
    assert "killed by a signal" in backoff["message"] and backoff["type"] == "Warning"
    assert backoff["time"] >= began - 1 and all(set(e) >= {"time", "type", "reason", "container", "message"}
                                                   for e in events)
