"""The Controller: event dispatch, podvisor commands, state.json round trips, and main's settings."""
from __future__ import annotations

import json
import logging
import xmlrpc.client

import pytest

from supervisord.controller import main as controller_main
from supervisord.controller.controller import Controller
from supervisord.controller.events import Event, parse_payload
from supervisord.spec import Stack
from tests.unit.fakes_supervisor import FakeClock, FakeSupervisor, make_pod


def event(name: str, payload: str = "") -> Event:
    headers, data = parse_payload(name, payload)
    return Event(name, {"eventname": name, "len": str(len(payload.encode()))}, headers, data)


def controller(tmp_path, *names: str, supervisord_pid: int = 4242) -> Controller:
    pods = tuple(make_pod(name, 3000 + 100 * i) for i, name in enumerate(names or ("user", "product")))
    stack = Stack(pods=pods, state_dir=str(tmp_path))
    programs = ["aggregator", *(p for pod in pods for p in pod.programs.values())]
    c = Controller(stack, tmp_path, FakeSupervisor(programs, FakeClock(), supervisord_pid))
    c.prepare()
    return c


def queued(c: Controller) -> dict[str, list]:
    return {name: list(r.pending_ops) for name, r in c.runners.items()}


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
    runner.restarts, runner.last_reason = 4, "OOMKilled"
    runner.request("stop", "op1")
    runner.tick()  # stopping probes nothing and spawns nothing: safe with the real prober
    assert runner.snapshot()["phase"] == "Stopped"
    c.save()


def test_a_stopped_pod_stays_stopped_across_a_controller_restart(tmp_path):
    first = controller(tmp_path)
    stop_user(first)
    saved = json.loads(first.state_file.read_text())
    assert saved["supervisord_pid"] == 4242
    assert saved["pods"]["user"] == {"desired": "stopped", "phase": "Stopped", "status": "Stopped",
                                     "restarts": 4, "last_reason": "OOMKilled", "held_by_operator": []}

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
    s = controller_main.Settings.from_env(ENV)
    assert (str(s.spec_path), s.host, s.port, s.serverurl) == ("/x/stack.pods.json", "127.0.0.1", 9100,
                                                                 "unix:///x/s.sock")


@pytest.mark.parametrize("env, named", [
    ({"SUPERVISOR_SERVER_URL": "unix:///s"}, "CONTROLLER_SPEC"),
    ({"CONTROLLER_SPEC": "/x"}, "SUPERVISOR_SERVER_URL"),
    ({**ENV, "CONTROLLER_PORT": "70000"}, "CONTROLLER_PORT"),
    ({**ENV, "CONTROLLER_PORT": "http"}, "CONTROLLER_PORT"),
])
def test_bad_settings_name_the_setting(env, named):
    with pytest.raises(ValueError, match=named):
        controller_main.Settings.from_env(env)


def test_main_exits_2_with_one_line_when_misconfigured(monkeypatch, caplog):
    monkeypatch.delenv("CONTROLLER_SPEC", raising=False)
    monkeypatch.setenv("SUPERVISOR_SERVER_URL", "unix:///x/s.sock")
    assert controller_main.main([]) == 2
    assert "CONTROLLER_SPEC is not set" in caplog.text


@pytest.mark.parametrize("phase, status", [("Succeeded", "Completed"), ("Failed", "Error")])
def test_a_finished_pod_is_restored_with_its_status(tmp_path, phase, status):
    first = controller(tmp_path)
    first.runners["user"].stop_pod(phase)  # what the runner does when the app completes or fails
    first.save()

    second = controller(tmp_path)
    second.restore()
    snap = second.runners["user"].snapshot()
    assert (snap["phase"], snap["status"], snap["desired"]) == (phase, status, "stopped")


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
    user = first.runners["user"]
    user.hold("app")  # what the runner does when it sees user-app STOPPED from outside
    first.runners["product"].hold("metrics")
    first.save()

    second = controller(tmp_path)
    second.restore()
    user, product = second.runners["user"], second.runners["product"]
    assert user.snapshot()["held_by_operator"] == ["app"] and user.snapshot()["phase"] == "Stopped"
    assert product.snapshot()["held_by_operator"] == ["metrics"]
    assert user.app_next_start == float("inf") and product.sidecars["metrics"].next_start == float("inf")


def test_a_step_that_finds_supervisord_shutting_down_freezes_every_runner(tmp_path, caplog):
    c = controller(tmp_path)

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
