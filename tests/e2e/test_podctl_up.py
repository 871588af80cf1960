"""podctl up and down against real stacks: `up` in a terminal (progress, coloured logs, Ctrl-C stops
everything in order and leaves nothing), `up -d` / `down` over and over, and the refusals."""
from __future__ import annotations

import re
import socket
import subprocess
import sys

import psutil
import pytest
import requests

from podvisor.testing.waiting import Fatal
from tests.fixtures.lifecycle import assert_app_stopped_before_its_sidecars, marks_for
from tests.fixtures.terminal import Terminal

pytestmark = pytest.mark.e2e


def ok(result) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def podctl_argv(stack, *args: str) -> list[str]:
    return [sys.executable, "-m", "podvisor.supervisord.podctl.main", "-c", str(stack.conf), *args]


def stack_ports(stack) -> list[int]:
    spec = stack.spec
    return [spec.aggregator_port, spec.controller_port,
            *(port for pod in spec.pods for port in (pod.port, pod.metrics_port, pod.logger_port))]


def ports_in_use(stack) -> list[int]:
    """The stack's ports a server could not bind now (with SO_REUSEADDR, as the stack's servers
    bind: a connection in TIME_WAIT does not stop a restart)."""
    busy = []
    for port in stack_ports(stack):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


def still_running(term: Terminal):
    def check() -> None:
        if term.exit_code() is not None:
            raise Fatal(f"podctl up exited with {term.status}:\n{term.plain()}")
    return check


def test_up_in_a_terminal_shows_progress_streams_coloured_logs_and_ctrl_c_stops_everything(podvisor_factory):
    stack = podvisor_factory(start=False).render()
    term = Terminal(podctl_argv(stack, "up"), stack.env())
    try:
        term.wait_output(lambda t: "all 4 pods ready" in t, 120, "every pod Ready", check=still_running(term))
        progress = term.plain()
        for pod in ("user", "product", "order"):  # each pod shown coming up, then with its READY count
            assert re.search(rf"{pod}\s+PodInitializing\s+[0-2]/3", progress), progress
            assert re.search(rf"{pod}\s+Running\s+3/3", progress), progress
        marks = marks_for(stack, "user")

        assert requests.get(stack.apps["user"] + "/users/424242", timeout=5).status_code == 404
        assert requests.get(stack.apps["order"] + "/orders/434343", timeout=5).status_code == 404
        lines = {}
        for pod, path in (("user", "/users/424242"), ("order", "/orders/434343")):
            # the pod's name in its colour, reset, then the line: `user    | <time> LEVEL GET ... 404`
            pattern = rf"\x1b\[(\d+)m{pod}\s*\x1b\[0m \| \S+ \S+\s+GET {path} 404"
            lines[pod] = term.wait_output(lambda t, p=pattern: re.search(p, t), 15, f"{pod}'s line, coloured",
                                          check=still_running(term))
        assert lines["user"].group(1) != lines["order"].group(1), "two pods, one colour"

        term.type("\x03")  # Ctrl-C, through the terminal
        assert term.wait_exit(120) == 0, term.plain()
        assert "stopping the stack" in term.plain() and "stack stopped" in term.plain()
        # podctl returned only once everything had gone: no waiting here
        assert not stack.descendants(), [p.info for p in stack.descendants()]
        assert not ports_in_use(stack)
        assert_app_stopped_before_its_sidecars(stack, "user", marks)
    finally:
        term.close()


def test_up_in_a_terminal_prints_no_colour_when_no_color_is_set(podvisor_factory):
    stack = podvisor_factory(start=False).render()
    env = {**stack.env(), "NO_COLOR": "1"}
    term = Terminal(podctl_argv(stack, "up"), env)
    try:
        term.wait_output(lambda t: "logs of every pod follow" in t, 120, "every pod Ready", check=still_running(term))
        requests.get(stack.apps["product"] + "/products/454545", timeout=5)
        term.wait_output(lambda t: "GET /products/454545 404" in t, 15, "the line", check=still_running(term))
        assert "\x1b[" not in term.text(), "NO_COLOR is set: no ANSI colour (https://no-color.org)"
        term.type("\x03")
        assert term.wait_exit(120) == 0, term.plain()
        assert not stack.descendants()
    finally:
        term.close()


def test_up_d_down_up_d_three_times_leaves_nothing_running_and_every_port_free_between(podvisor_factory):
    stack = podvisor_factory(start=False).render()
    for round_ in range(3):
        if round_ == 1:
            # supervisord started the plain way keeps working, and podctl down stops it the same
            subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(stack.conf)],
                           env=stack.env(), check=True, timeout=30)
            waited = stack.podctl("wait", "--ready")  # the README's `supervisord -c ... && podctl wait --ready`
            assert waited.returncode == 0, ok(waited)
        else:
            up = stack.podctl("up", "-d")
            assert up.returncode == 0, ok(up)
            assert "all 4 pods ready" in up.stderr and re.search(r"user\s+Running\s+3/3", up.stderr), ok(up)
        assert requests.get(stack.controller_url + "/ready", timeout=5).status_code == 200
        if round_ == 0:
            for args in (("up", "-d"), ("up",)):
                again = stack.podctl(*args)
                assert again.returncode == 1, ok(again)
                assert again.stderr.count("\n") == 1 and "already running" in again.stderr, ok(again)
        ours = stack.descendants()
        assert len(ours) >= 11, ours  # supervisord, the controller, the aggregator, 3 x 3 containers

        down = stack.podctl("down")
        assert down.returncode == 0, ok(down)
        assert "waiting for" in down.stderr and "stack stopped" in down.stderr, ok(down)
        assert not [p for p in ours if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not stack.descendants() and not ports_in_use(stack), ok(down)
    nothing = stack.podctl("down")
    assert nothing.returncode == 0 and "no stack is running" in nothing.stderr, ok(nothing)


def test_up_refuses_to_start_when_a_port_of_the_stack_is_taken(podvisor_factory):
    stack = podvisor_factory(start=False).render()
    port = stack.spec.pod("user").port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        up = stack.podctl("up", "-d")
    assert up.returncode == 1, ok(up)
    assert up.stderr == f"podctl: cannot start: port {port} (user app) is in use by another program\n", ok(up)
    assert not stack.descendants()


def test_down_after_supervisord_was_killed_stops_what_it_left_and_up_works_again(podvisor_factory):
    stack = podvisor_factory(start=False).render()
    up = stack.podctl("up", "-d")
    assert up.returncode == 0, ok(up)
    supervisord = psutil.Process(stack.rpc.pid())
    supervisord.kill()  # an OOM kill, say: its children are orphaned and keep the ports
    supervisord.wait(10)
    stack.wait_for(lambda: not any(p.pid == supervisord.pid for p in stack.descendants()), 10, "supervisord gone")
    assert stack.descendants(), "nothing was orphaned: the test shows nothing"

    down = stack.podctl("down")
    assert down.returncode == 0, ok(down)
    assert "has gone, but" in down.stderr and "stack stopped" in down.stderr, ok(down)
    assert not stack.descendants() and not ports_in_use(stack), ok(down)
    again = stack.podctl("up", "-d")
    assert again.returncode == 0, ok(again)
