"""`podctl apply` of a gateway's changed routes: the app reloads in place, only the sidecar whose
rendered settings follow the routes (the logger) is re-created (supervisord/controller/changes.py,
Controller.apply, PodRunner.stop_sidecar and reload)."""
from __future__ import annotations

import dataclasses
import json

from podvisor.supervisord.controller import changes, probes
from podvisor.supervisord.controller.controller import Controller
from podvisor.supervisord.spec.model import Gateway, Stack
from podvisor.supervisord.spec.parse import from_dict, to_dict
from tests.fakes.supervisor import FakeClock, FakeSupervisor, make_pod

ROUTES = (("/user/", "user"),)
GATEWAY = make_pod("gateway", 8000, command="nginx", stop_signal="QUIT", reload_signal="HUP",
                   metrics_adapter="nginx", gateway=Gateway(routes=ROUTES))
USER = make_pod("user", 3000)


def stack(gateway=GATEWAY) -> Stack:
    return Stack(pods=(USER, gateway))


def rerouted(**overrides) -> Stack:
    routes = (*ROUTES, ("/admin/", "user"))
    return stack(dataclasses.replace(GATEWAY, gateway=Gateway(routes=routes), **overrides))


def test_changed_routes_reload_the_app_and_recreate_the_sidecars_whose_sections_changed():
    plan = {c.pod: c for c in changes.plan(stack(), rerouted(), {"gateway-logger"})}
    assert plan["gateway"] == changes.PodChange("gateway", changes.RELOADED, ("gateway-logger",))
    assert plan["user"].action == changes.UNCHANGED
    assert str(plan["gateway"]) == "pod/gateway reloaded"


def test_anything_else_changed_restarts_the_pod():
    # the app's own section changed: a reload signal cannot apply it
    assert changes.plan(stack(), rerouted(), {"gateway-app"})[1].action == changes.CONFIGURED
    # a change beside the routes (its grace period)
    assert changes.plan(stack(), rerouted(grace_seconds=9.0))[1].action == changes.CONFIGURED
    # an app without a reload signal is restarted to take its new config
    old = stack(dataclasses.replace(GATEWAY, reload_signal=None))
    new = rerouted(reload_signal=None)
    assert changes.plan(old, new)[1].action == changes.CONFIGURED


def healthy(probe, host: str, port: int) -> probes.Result:
    return probes.Result(True, f"{probe.http_get or probe.kind} on {port}: 200")


def test_apply_drains_and_recreates_the_logger_then_reloads_the_app_keeping_its_pid(tmp_path):
    spec = tmp_path / "stack.pods.json"
    running = from_dict(to_dict(stack()))  # as the controller reads it: the resolved JSON spec
    programs = ["aggregator", *(p for pod in running.pods for p in pod.programs.values())]
    sup = FakeSupervisor(programs, FakeClock())
    c = Controller(running, tmp_path, sup, spec_path=spec)
    c.prepare()
    for runner in c.runners.values():
        runner.prober = healthy
        runner.tick()
        runner.tick()
    app_pid, metrics_pid = sup.pid_of("gateway-app"), sup.pid_of("gateway-metrics")
    assert app_pid and sup.statename("gateway-logger") == "RUNNING"

    spec.write_text(json.dumps(to_dict(rerouted())))
    sup.changed_sections = {"gateway-logger"}  # what reloadConfig reports after podctl apply rendered anew
    c.apply("op-1")
    assert c.last_apply == {"id": "op-1", "done": True, "ok": True,
                            "changes": ["pod/user unchanged", "pod/gateway reloaded"]}, c.last_apply
    steps = [(e.kind, e.name, e.detail) for e in sup.log if e.name.startswith("gateway-")
             and e.kind in ("signal", "stopped", "remove_group", "add_group", "stop")]
    # the logger drains on HUP (it does not wait for an app that is not stopping), is re-created, and
    # only then does nginx get its reload signal
    assert steps == [("signal", "gateway-logger", "HUP"), ("stopped", "gateway-logger", None),
                     ("remove_group", "gateway-logger", None), ("add_group", "gateway-logger", None),
                     ("signal", "gateway-app", "HUP")], steps
    runner = c.runners["gateway"]
    assert runner.pod.gateway.routes[-1] == ("/admin/", "user")
    runner.tick()  # the re-created logger starts again; nothing else is touched
    assert sup.statename("gateway-logger") == "RUNNING"
    assert (sup.pid_of("gateway-app"), sup.pid_of("gateway-metrics")) == (app_pid, metrics_pid)
    events = [(e["reason"], e["container"]) for e in runner.snapshot()["events"]]
    assert events[-3:] == [("Stopped", "logger"), ("Reloaded", "app"), ("Started", "logger")], events
