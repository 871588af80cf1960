"""The Controller: event dispatch, podvisor commands, state.json round trips, and main's settings."""
from __future__ import annotations

import json
import logging
import xmlrpc.client

import pytest

from podvisor.core.settings import Env, SettingsError
from podvisor.supervisord.controller import main as controller_main
from podvisor.supervisord.controller import probes
from podvisor.supervisord.controller.controller import Controller
from podvisor.supervisord.controller.events import Event, parse_payload
from podvisor.supervisord.controller.states import Reason, State, Termination
from podvisor.supervisord.spec.model import Stack
from tests.fakes.supervisor import FakeClock, FakeSupervisor, make_pod


def event(name: str, payload: str = "") -> Event:
    headers, data = parse_payload(name, payload)
    return Event(name, {"eventname": name, "len": str(len(payload.encode()))}, headers, data)


def controller(tmp_path, *names: str, supervisord_pid: int = 4242, **pod_overrides) -> Controller:
    pods = tuple(make_pod(name, 3000 + 100 * i, **pod_overrides)
                 for i, name in enumerate(names or ("user", "product")))
    stack = Stack(pods=pods, state_dir=str(tmp_path))
    programs = ["aggregator", *(p for pod in pods for p in pod.programs.values())]
    c = Controller(stack, tmp_path, FakeSupervisor(programs, FakeClock(), supervisord_pid))
    c.prepare()
    return c


def queued(c: Controller) -> dict[str, list]:
    return {name: list(r.pending_ops) for name, r in c.runners.items()}


def healthy(probe, host: str, port: int) -> probes.Result:
    return probes.Result(True, f"{probe.http_get or probe.kind} on {port}: 200")


def run_pods(c: Controller) -> None:
    """Start every pod on the fake supervisord, every probe answering (no sockets): sidecars, then apps."""
    for runner in c.runners.values():
        runner.prober = healthy
    for _ in range(2):
        for runner in c.runners.values():
            runner.tick()
    assert all(c.sup.statename(r.programs["app"]) == "RUNNING" for r in c.runners.values())


# -- events ---------------------------------------------------------------------------------------
def test_supervisord_stopping_freezes_every_runner(tmp_path):
    c = controller(tmp_path)
    c.handle(event("SUPERVISOR_STATE_CHANGE_STOPPING"))
    assert all(r.frozen and r.wake.is_set() for r in c.runners.values())
    assert c.stopping.is_set()


def test_a_podvisor_command_queues_the_operation_on_that_pod_only(tmp_path):
    c = controller(tmp_path)
    c.handle(event("REMOTE_COMMUNICATION", "type:podvisor\nstop user op1"))
    assert queued(c) == {"user": [("stop", "op1")], "product": []}
    assert c.runners["user"].wake.is_set() and not c.runners["product"].wake.is_set()


def test_a_command_for_all_pods(tmp_path):
    c = controller(tmp_path)
    c.handle(event("REMOTE_COMMUNICATION", "type:podvisor\nrestart --all op2"))
    assert queued(c) == {"user": [("restart", "op2")], "product": [("restart", "op2")]}


def test_a_command_without_an_op_id(tmp_path):
    c = controller(tmp_path)
    c.command("start product")
    assert queued(c) == {"user": [], "product": [("start", "")]}


@pytest.mark.parametrize("data, logged", [
    ("stop nosuch op3", "no pod named 'nosuch'"),
    ("reboot user op4", "unknown pod action 'reboot'"),
    ("stop", "expected 'ACTION POD|--all [OP_ID]'"),
])
def test_a_bad_command_is_logged_not_raised(tmp_path, caplog, data, logged):
    c = controller(tmp_path)
    with caplog.at_level(logging.ERROR):
        c.handle(event("REMOTE_COMMUNICATION", f"type:podvisor\n{data}"))
    assert logged in caplog.text
    assert queued(c) == {"user": [], "product": []}


def test_remote_communication_of_another_type_is_ignored(tmp_path):
    c = controller(tmp_path)
    c.handle(event("REMOTE_COMMUNICATION", "type:someone-else\nstop user op5"))
    assert queued(c) == {"user": [], "product": []}


@pytest.mark.parametrize("process, woken", [
    ("user-app", {"user"}), ("product-logger", {"product"}), ("user-metrics", {"user"}),
    ("aggregator", set()),
])
def test_process_state_events_wake_the_runner_of_that_pod(tmp_path, process, woken):
    c = controller(tmp_path)
    c.handle(event("PROCESS_STATE_EXITED",
                   f"processname:{process} groupname:{process} from_state:RUNNING expected:0 pid:42"))
    assert {name for name, r in c.runners.items() if r.wake.is_set()} == woken


def test_a_pod_name_with_a_dash_is_woken_by_its_own_programs(tmp_path):
    c = controller(tmp_path, "user", "user-api")
    c.handle(event("PROCESS_STATE_RUNNING",
                   "processname:user-api-app groupname:user-api-app from_state:STARTING pid:7"))
    assert {name for name, r in c.runners.items() if r.wake.is_set()} == {"user-api"}


# -- state.json ------------------------------------------------------------------------------------
def stop_user(c: Controller) -> None:
    runner = c.runners["user"]
    runner.app.restarts, runner.app.last = 4, Termination(Reason.OOM_KILLED)  # as after 4 OOM kills
    runner.request("stop", "op1")
    runner.tick()  # stopping probes nothing and spawns nothing: safe with the real prober
    assert runner.snapshot()["phase"] == "Stopped"
    c.save()


def test_a_stopped_pod_stays_stopped_across_a_controller_restart(tmp_path):
    first = controller(tmp_path)
    stop_user(first)
    saved = json.loads(first.state_file.read_text())
    assert saved["supervisord_pid"] == 4242
    saved_user = saved["pods"]["user"]
    assert saved_user["desired"] == "stopped" and saved_user["active"] == [0]
    assert {role: saved_user["containers"][role] for role in ("app", "logger", "metrics")} == {
        "app": {"state": "Stopped", "last_reason": "OOMKilled", "restarts": 4},
        "logger": {"state": "Stopped", "last_reason": None, "restarts": 0},
        "metrics": {"state": "Stopped", "last_reason": None, "restarts": 0}}
    assert all(state["state"] == "Stopped" for role, state in saved_user["containers"].items()
               if role.startswith("app-")), "the spare slots stay stopped"

    second = controller(tmp_path, supervisord_pid=4242)
    second.restore()

    user, product = second.runners["user"].snapshot(), second.runners["product"].snapshot()
    assert (user["desired"], user["phase"], user["status"]) == ("stopped", "Stopped", "Stopped")
    assert (user["restarts"], user["last_reason"]) == (4, "OOMKilled")
    assert (product["desired"], product["phase"]) == ("running", "Pending")
    assert second.runners["user"].tick() == 1.0 and second.sup.calls("start") == []


def test_a_new_supervisord_starts_every_pod_afresh(tmp_path):
    first = controller(tmp_path)
    stop_user(first)

    second = controller(tmp_path, supervisord_pid=5555)
    second.restore()

    user = second.runners["user"].snapshot()
    fields = ("desired", "phase", "restarts", "last_reason")
    assert [user[k] for k in fields] == ["running", "Pending", 0, None]


@pytest.mark.parametrize("content", [None, "{not json", "[]", "null"])
def test_restore_without_a_usable_state_file_starts_afresh(tmp_path, content):
    c = controller(tmp_path)
    if content is not None:
        c.state_file.write_text(content)
    c.restore()  # a bad file must not keep the controller (and so every pod) from starting
    assert all(r.desired == "running" for r in c.runners.values())


# -- main's settings ---------------------------------------------------------------------------------
ENV = {"CONTROLLER_SPEC": "/x/stack.pods.json", "SUPERVISOR_SERVER_URL": "unix:///x/s.sock"}


def test_settings_from_env_defaults():
    s = controller_main.Settings.from_env(Env(ENV))
    assert (str(s.spec_path), s.host, s.port, s.supervisor.serverurl) == ("/x/stack.pods.json", "127.0.0.1",
                                                                            9100, "unix:///x/s.sock")


@pytest.mark.parametrize("env, named, value", [
    ({"SUPERVISOR_SERVER_URL": "unix:///s"}, "CONTROLLER_SPEC", None),
    ({"CONTROLLER_SPEC": "/x"}, "SUPERVISOR_SERVER_URL", None),
    ({**ENV, "CONTROLLER_PORT": "70000"}, "CONTROLLER_PORT", "70000"),
    ({**ENV, "CONTROLLER_PORT": "http"}, "CONTROLLER_PORT", "http"),
])
def test_bad_settings_name_the_setting(env, named, value):
    with pytest.raises(SettingsError) as err:
        controller_main.Settings.from_env(Env(env))
    expected = f"{named}: " if value is None else f"{named}={value!r}: "
    assert err.value.name == named and str(err.value).startswith(expected), str(err.value)


def test_main_exits_2_with_one_line_when_misconfigured(monkeypatch, capsys):
    monkeypatch.delenv("CONTROLLER_SPEC", raising=False)
    monkeypatch.setenv("SUPERVISOR_SERVER_URL", "unix:///x/s.sock")
    assert controller_main.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["podvisor-controller: bad setting CONTROLLER_SPEC: is required but not set"]


@pytest.mark.parametrize("exitstatus, phase, status", [(0, "Succeeded", "Completed"), (3, "Failed", "Error")])
def test_a_finished_pod_is_restored_with_its_status(tmp_path, exitstatus, phase, status):
    first = controller(tmp_path, restart_policy="never")
    run_pods(first)
    first.sup.crash("user-app", exitstatus)  # the app ends; under `never` the pod ends with it
    first.runners["user"].tick()
    before = first.runners["user"].snapshot()
    assert (before["phase"], before["status"], before["desired"]) == (phase, status, "stopped")
    first.save()

    second = controller(tmp_path, restart_policy="never")
    second.restore()
    snap = second.runners["user"].snapshot()
    assert (snap["phase"], snap["status"], snap["desired"]) == (phase, status, "stopped")
    assert snap["last_reason"] == before["last_reason"]
    assert second.runners["user"].tick() == 1.0 and second.sup.calls("start") == []


def test_a_state_file_from_before_status_was_saved_still_restores_completed(tmp_path):
    first = controller(tmp_path)
    first.save()
    saved = json.loads(first.state_file.read_text())
    saved["pods"]["user"] = {"desired": "stopped", "phase": "Succeeded", "restarts": 0,
                             "last_reason": "Completed"}
    first.state_file.write_text(json.dumps(saved))
    second = controller(tmp_path)
    second.restore()
    assert second.runners["user"].snapshot()["status"] == "Completed"


def test_an_operators_stop_of_one_program_survives_a_controller_restart(tmp_path):
    first = controller(tmp_path)
    run_pods(first)
    first.sup.operator_stop("user-app")  # supervisorctl stop: the runners see it STOPPED from outside
    first.sup.operator_stop("product-metrics")
    for runner in first.runners.values():
        runner.tick()
    assert first.runners["user"].snapshot()["held_by_operator"] == ["app"]
    first.save()

    second = controller(tmp_path)
    second.restore()
    user, product = second.runners["user"], second.runners["product"]
    assert user.snapshot()["held_by_operator"] == ["app"] and user.snapshot()["phase"] == "Stopped"
    assert product.snapshot()["held_by_operator"] == ["metrics"]
    assert user.app.state is State.HELD and product.sidecars["metrics"].state is State.HELD
    for runner in second.runners.values():
        runner.prober = healthy
    for _ in range(3):
        for runner in second.runners.values():
            runner.tick()
    assert second.sup.calls("start", "user-app") == [] and second.sup.calls("start", "product-metrics") == []
    assert second.sup.statename("user-logger") == "RUNNING"  # what was not stopped by hand runs on


def test_a_state_file_of_an_older_controller_keeps_an_operators_stop(tmp_path):
    first = controller(tmp_path)
    first.save()
    saved = json.loads(first.state_file.read_text())
    saved["pods"]["user"] = {"desired": "running", "phase": "Stopped", "status": "Stopped", "restarts": 2,
                             "last_reason": "Error: exit code 3", "held_by_operator": ["app"]}
    first.state_file.write_text(json.dumps(saved))
    second = controller(tmp_path)
    second.restore()
    snap = second.runners["user"].snapshot()
    assert (snap["phase"], snap["held_by_operator"], snap["restarts"]) == ("Stopped", ["app"], 2)
    assert snap["last_reason"] == "Error: exit code 3"


def test_a_step_that_finds_supervisord_shutting_down_freezes_every_runner(tmp_path, caplog):
    c = controller(tmp_path)
    run_pods(c)

    def shutting_down():
        raise xmlrpc.client.Fault(6, "SHUTDOWN_STATE")

    c.sup.all_info = shutting_down
    with caplog.at_level(logging.INFO):
        c.step(c.runners["user"])
    assert c.runners["user"].frozen and c.runners["user"].snapshot()["phase"] == "Terminating"
    assert "Traceback" not in caplog.text and c.runners["product"].frozen and c.stopping.is_set()


def test_a_step_that_fails_otherwise_is_logged_and_retried(tmp_path, caplog):
    c = controller(tmp_path)

    def broken():
        raise OSError("socket gone")

    c.sup.all_info = broken
    assert c.step(c.runners["user"]) == 1.0
    assert "reconcile step failed" in caplog.text and not c.runners["user"].frozen


# -- the aggregator ----------------------------------------------------------------------------------
def test_the_aggregator_is_started_health_checked_and_restarted_alone(tmp_path):
    c = controller(tmp_path)
    aggregator = c.aggregator
    aggregator.prober, aggregator.clock = healthy, c.sup.clock  # no sockets, no real time
    aggregator.tick()
    assert [e.name for e in c.sup.calls("start")] == ["aggregator"]
    assert aggregator.container.state is State.STARTING  # until its /health answers
    c.sup.clock.advance(1.0)
    aggregator.tick()
    assert aggregator.container.state is State.RUNNING

    c.sup.crash("aggregator", 1)
    aggregator.tick()
    assert aggregator.container.state is State.BACKOFF and aggregator.container.restarts == 1
    assert str(aggregator.container.last) == "Error: exit code 1"
    c.sup.clock.advance(aggregator.container.delay)
    aggregator.tick()
    assert len(c.sup.spawns("aggregator")) == 2 and c.sup.statename("aggregator") == "RUNNING"
    assert all(e.name == "aggregator" for e in c.sup.calls("start"))  # no pod was touched
