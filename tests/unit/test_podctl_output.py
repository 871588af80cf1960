"""podctl's output without a stack: wide table, colours (tty only, NO_COLOR), status -w, settings."""
from __future__ import annotations

import io
from pathlib import Path

from podvisor.core.settings import Env
from podvisor.supervisord.podctl import output, status
from podvisor.supervisord.podctl.settings import Settings
from tests.unit.test_controller_podctl import ScriptedClient, pod, snapshots


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_wide_adds_ports_pids_and_the_ready_condition():
    pods = snapshots()
    pods[0]["ports"] = {"app": 3000, "metrics": 9101, "logger": 9201}
    pods[1].pop("ports")  # older shape: a container's own port only
    for state in pods[1]["container_states"].values():
        state["port"] = None
    pods[1]["container_states"]["app"]["port"] = 3100
    pods[1]["conditions"] = [{"type": "Ready", "status": False, "reason": "ContainersNotReady"}]
    lines = output.table(pods, wide=True).splitlines()
    assert lines[0].split() == ["POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE", "PORTS", "PIDS",
                                "CONDITION", "LAST", "REASON"]
    start = lines[0].index("PORTS")
    user, product = lines[1][start:].split(), lines[2][start:].split()
    states = pods[0]["container_states"]
    assert user[:3] == ["3000/9101/9201", "/".join(str(states[r]["pid"]) for r in output.ROLES), "Ready=True"]
    assert product[0] == "3100/-/-" and product[2] == "Ready=False:ContainersNotReady"
    assert output.table(pods).splitlines()[0].split()[-2:] == ["LAST", "REASON"]  # not wide: as before


def test_replicas_show_ready_of_wanted_and_every_running_replicas_pid():
    (user, *_rest) = snapshots()
    states = user["container_states"]
    states["app-1"] = {**states["app"], "pid": 4242, "own_port": 3011, "active": True}
    states["app-2"] = {**states["app"], "pid": None, "active": False}  # the spare slot
    user.update(replicas=2, ready_replicas=1, min_ready=1, socket="held")
    line = output.table([user], wide=True).splitlines()[1]
    assert line.split()[2] == "1/2"
    pids = line.split()[7]
    assert pids.startswith(f"{states['app']['pid']},4242/"), pids


def test_log_lines_carry_the_pod_in_its_own_colour_only_on_a_terminal():
    entry = {"pod": "user", "timestamp": "2024-05-01T10:00:00.000Z", "level": "info", "message": "hello"}
    plain = output.LinePrinter(io.StringIO(), ["user", "product"], colour=False)
    assert plain.format(entry) == "user    | 2024-05-01T10:00:00.000Z INFO  hello\n"
    coloured = output.LinePrinter(io.StringIO(), ["user", "product", "order"], colour=True)
    user, product = coloured.format(entry), coloured.format({**entry, "pod": "product"})
    assert user.startswith("\x1b[") and "user   \x1b[0m | " in user
    assert user.split("m", 1)[0] != product.split("m", 1)[0]  # one colour per pod
    other = coloured.format({"service_name": "ops", "message": "deploy"})  # not a pod: no colour
    assert other == "ops     | - -     deploy\n"
    assert output.use_colour(Tty(), no_color=False)
    assert not output.use_colour(Tty(), no_color=True) and not output.use_colour(io.StringIO(), no_color=False)


def test_no_color_set_and_not_empty_turns_colour_off():
    assert Settings.from_env(Env({"NO_COLOR": "1"})).no_color
    assert not Settings.from_env(Env({"NO_COLOR": ""})).no_color  # https://no-color.org: empty is unset
    assert not Settings.from_env(Env({})).no_color
    assert Settings.from_env(Env({"PODVISOR_CONF": "/x/stack.conf"})).conf == Path("/x/stack.conf")


def test_status_watch_prints_the_table_then_only_rows_that_changed():
    client = ScriptedClient([pod("a"), pod("b")], [pod("a"), pod("b")], [pod("a"), pod("b", ready=False)],
                            [pod("b", ready=False)])
    for i, answer in enumerate(client.answers):
        for one in answer:
            one.update(restarts=0, age_seconds=5 + 60 * i)  # AGE moves every round: not a change to print
    out = io.StringIO()
    assert status.watch(client, [], False, out, None, sleep=lambda _s: None, rounds=3) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[:4] for line in lines] == [
        ["POD", "READY", "REPLICAS", "STATUS"], ["a", "3/3", "-", "Running"], ["b", "3/3", "-", "Running"],
        ["b", "2/3", "-", "Running"], ["a", "3/3", "-", status.REMOVED]]
