"""podctl describe, top, status -w / -o wide / -o json and shell completion against real stacks."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from podvisor.testing.waiting import Fatal
from tests.fixtures.lifecycle import podapp_pod, podapp_spec
from tests.fixtures.terminal import Terminal

pytestmark = pytest.mark.e2e
ROLES = ("app", "metrics", "logger")


@pytest.fixture(scope="module")
def stack(podvisor_module_stack):
    return podvisor_module_stack


def ok(result) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


@pytest.fixture(scope="module")
def killed(stack) -> float:
    """The user app SIGKILLed once and restarted by the controller; when it was killed."""
    victim = stack.pid("user-app")
    at = time.time()
    os.kill(victim, signal.SIGKILL)
    stack.wait_for(lambda: stack.pods()["user"]["ready"] and stack.pid("user-app") not in (0, victim), 30,
                   "the user app restarted and Ready")
    return at


def section(text: str, title: str) -> list[str]:
    """The indented lines under `title:` in describe's output."""
    lines = text.splitlines()
    start = lines.index(title + ":") + 1
    body = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        body.append(line)
    return body


def test_describe_shows_containers_pids_ports_command_probes_and_the_restart(stack, killed):
    result = stack.podctl("describe", "user")
    assert result.returncode == 0, ok(result)
    text = result.stdout
    assert re.search(r"^Name:\s+user$", text, re.M) and re.search(r"^Status:\s+Running$", text, re.M), text
    assert re.search(r"^Restarts:\s+1$", text, re.M), text
    pod = stack.spec.pod("user")
    ports = {"app": pod.port, "metrics": pod.metrics_port, "logger": pod.logger_port}
    assert re.search(rf"^Ports:\s+app {pod.port}, metrics {pod.metrics_port}, logger {pod.logger_port}$", text,
                     re.M), text
    containers = "\n".join(section(text, "Containers"))
    for role in ROLES:
        block = re.search(rf"^  {role}:.*\n((?:    .*\n?)+)", containers + "\n", re.M).group(1)
        assert re.search(rf"PID:\s+{stack.pid(f'user-{role}')}$", block, re.M), block
        assert re.search(rf"Port:\s+{ports[role]}$", block, re.M), block
        assert re.search(r"State:\s+Running$", block, re.M) and re.search(r"Ready:\s+True$", block, re.M), block
        assert re.search(r"startup\s+passing\s+HTTP GET /health: 200", block), block
    app = re.search(r"^  app:.*\n((?:    .*\n?)+)", containers + "\n", re.M).group(1)
    assert re.search(r"Command:\s+podvisor-user$", app, re.M), app
    assert re.search(r"Restarts:\s+1$", app, re.M), app
    assert re.search(r"Last state:\s+Error: killed by a signal", app), app
    for kind in ("liveness", "readiness"):
        assert re.search(rf"{kind}\s+passing\s+HTTP GET /health: 200", app), app


def _events(stack) -> list[dict]:
    return stack.pods()["user"].get("events") or []


def test_describe_shows_the_kill_and_the_restart_as_events(stack, killed):
    assert "events" in stack.pods()["user"], "the controller reports no events"
    result = stack.podctl("describe", "user")
    assert result.returncode == 0, ok(result)
    rows = [line.split(None, 5) for line in section(result.stdout, "Events")[1:]]  # AGE TIME TYPE REASON CONTAINER
    app = [(kind, why) for _age, _time, kind, why, container, *_ in rows if container == "app"]
    ended = [i for i, (kind, why) in enumerate(app) if why in ("Killed", "BackOff", "Failed") and kind == "Warning"]
    assert ended, rows
    assert any(why in ("Started", "Restarted") for _kind, why in app[ended[-1] + 1:]), rows


def test_status_wide_shows_ports_pids_and_the_ready_condition(stack):
    result = stack.podctl("status", "-o", "wide")
    assert result.returncode == 0, ok(result)
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE", "PORTS", "PIDS", "CONDITION",
                              "LAST", "REASON"]
    column = header.index("PORTS")
    assert len(rows) == 4  # user, product, order and the gateway
    for row in rows:
        name = row.split()[0]
        ports, pids, condition = row[column:].split()[:3]
        pod = stack.spec.pod(name)
        assert ports == f"{pod.port}/{pod.metrics_port}/{pod.logger_port}", row
        assert pids == "/".join(str(stack.pid(f"{name}-{role}")) for role in ROLES), row
        assert condition == "Ready=True", row


def test_status_o_json_is_the_same_as_json(stack):
    def pods(*args: str) -> list[dict]:
        result = stack.podctl("status", *args)
        assert result.returncode == 0, ok(result)
        found = json.loads(result.stdout)["pods"]
        for pod in found:  # what moves between two calls
            pod.pop("age_seconds")
        return found
    assert pods("-o", "json") == pods("--json")
    user = stack.podctl("status", "--json", "user")
    assert user.returncode == 0, ok(user)
    (shown,) = json.loads(user.stdout)["pods"]
    assert shown["pod"] == "user" and shown["app_pid"] == stack.pid("user-app")


def test_status_w_prints_a_row_each_time_a_pod_changes_until_ctrl_c(stack):
    watch = subprocess.Popen([sys.executable, "-m", "podvisor.supervisord.podctl.main", "-c", str(stack.conf),
                              "status", "-w"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=stack.env())
    lines: list[str] = []
    try:
        def read_until(pattern: str) -> None:
            while not any(re.search(pattern, line) for line in lines):
                line = watch.stdout.readline()
                if not line:
                    raise Fatal(f"podctl status -w ended: {lines} {watch.stderr.read()}")
                lines.append(line.rstrip("\n"))
        read_until(r"^user\s+3/3\s+1/1\s+Running")
        assert lines[0].split()[:6] == ["POD", "READY", "REPLICAS", "STATUS", "RESTARTS", "AGE"], lines
        assert len(lines) == 5, lines
        stopped = stack.podctl("stop", "product")
        assert stopped.returncode == 0, ok(stopped)
        read_until(r"^product\s+0/3\s+0/1\s+Stopped")
        started = stack.podctl("start", "product")
        assert started.returncode == 0, ok(started)
        read_until(r"^product\s+3/3\s+1/1\s+Running")
        assert not any(line.split()[0] in ("user", "order") for line in lines[5:]), lines  # unchanged pods: silent
    finally:
        watch.send_signal(signal.SIGINT)  # Ctrl-C
        code = watch.wait(30)
    assert code == 0, watch.stderr.read()


def test_top_figures_match_psutil_for_the_same_processes(podvisor_factory):
    stack = podvisor_factory(podapp_spec(burn=podapp_pod()))
    app = stack.apps["burn"]
    requests.get(app + "/alloc?mb=64", timeout=10).raise_for_status()
    burner = int(requests.get(app + "/burn?duty=0.5", timeout=10).text)
    root = psutil.Process(stack.pid("burn-app"))
    procs = [root, *root.children(recursive=True)]
    assert burner in {p.pid for p in procs}
    for proc in procs:
        proc.cpu_percent(None)  # psutil's own measurement starts now and ends after podctl's
    result = stack.podctl("top", "burn", "-o", "json", "--interval", "2")
    cpu = sum(proc.cpu_percent(None) for proc in procs)
    rss = sum(proc.memory_info().rss for proc in procs)
    assert result.returncode == 0, ok(result)
    shown = {c["container"]: c for c in json.loads(result.stdout)["containers"]}
    assert set(shown) == {"app", "logger", "metrics"}
    assert set(shown["app"]["pids"]) == {p.pid for p in procs}
    assert cpu > 20, f"the burner used {cpu:.0f}% of a core: not measurable"
    assert abs(shown["app"]["cpu_percent"] - cpu) <= 0.2 * cpu, (shown["app"], cpu)
    assert rss > 64 * 1024**2
    assert abs(shown["app"]["memory_bytes"] - rss) <= 0.2 * rss, (shown["app"], rss)
    for role in ("logger", "metrics"):
        assert shown[role]["pid"] == stack.pid(f"burn-{role}") and shown[role]["memory_bytes"] > 0

    table = stack.podctl("top")
    assert table.returncode == 0, ok(table)
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["POD", "CONTAINER", "PID", "PROCS", "CPU%", "MEMORY"]
    app_row = next(row.split() for row in rows if row.split()[:2] == ["burn", "app"])
    assert app_row[2] == str(root.pid) and app_row[3] == str(len(procs)) and app_row[5].endswith("Mi"), rows


@pytest.fixture
def shell_env(stack, tmp_path) -> dict[str, str]:
    """An environment with this checkout's podctl first on PATH and no rc files of the machine's."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "podctl"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m podvisor.supervisord.podctl.main "$@"\n')
    wrapper.chmod(0o755)
    env = stack.env()
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", HOME=str(tmp_path), ZDOTDIR=str(tmp_path), TERM="dumb",
               PS1="$ ", PROMPT="$ ")
    return env


SHELLS = {
    "bash": (["bash", "--norc", "--noprofile", "-i"], ["source <(podctl completion bash)"]),
    "zsh": (["zsh", "-f", "-i"], ["autoload -U compinit && compinit -u", "source <(podctl completion zsh)"]),
}


@pytest.mark.parametrize("shell", list(SHELLS))
def test_completion_completes_commands_and_pod_names_in_a_real_shell(stack, shell_env, shell):
    path = shutil.which(shell)
    assert path, f"{shell} is not installed (.ci/run installs it)"
    argv, setup = SHELLS[shell]
    term = Terminal([path, *argv[1:]], shell_env)
    try:
        for command in setup:
            term.type(command + "\n")
        for typed, completed in (("podctl de", "podctl describe"), ("podctl logs u", "podctl logs user")):
            # TAB completes the line; Ctrl-A and `echo ` then make the shell print what it holds.
            term.type(typed + "\t")
            term.wait_output(lambda t, c=completed: c in Terminal.strip(t), 30, f"{typed!r} completed")
            term.type("\x01echo \n")
            term.wait_output(lambda t, c=completed: re.search(rf"(?m)^{c}\s*$", Terminal.strip(t)), 30,
                             f"echo of {completed!r}")
        term.type("exit\n")
        assert term.wait_exit(30) == 0, term.plain()
    finally:
        term.close()


def complete(conf, line: str, tmp_path) -> list[str]:
    """What podctl answers a shell that asks to complete `line` (argcomplete's protocol, its answer
    written to a file instead of the shell's descriptor 8)."""
    answer = tmp_path / "answer"
    env = {**os.environ, "_ARGCOMPLETE": "1", "_ARGCOMPLETE_SHELL": "bash", "COMP_LINE": line,
           "COMP_POINT": str(len(line)), "_ARGCOMPLETE_STDOUT_FILENAME": str(answer), "PODVISOR_CONF": str(conf)}
    done = subprocess.run([sys.executable, "-m", "podvisor.supervisord.podctl.main"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, ok(done)
    return sorted(w.strip() for w in answer.read_text().split("\x0b") if w.strip())


def test_completion_asks_the_controller_for_pods_and_offers_nothing_when_none_answers(stack, podvisor_factory,
                                                                                       tmp_path):
    assert complete(stack.conf, "podctl logs ", tmp_path) == ["gateway", "order", "product", "user"]
    assert complete(stack.conf, "podctl describe pro", tmp_path) == ["product"]
    assert complete(stack.conf, "podctl st", tmp_path) == ["start", "status", "stop"]
    nobody = podvisor_factory(start=False).render()
    started = time.monotonic()
    assert complete(nobody.conf, "podctl logs u", tmp_path) == []
    assert time.monotonic() - started < 10
    script = subprocess.run([sys.executable, "-m", "podvisor.supervisord.podctl.main", "completion", "zsh"],
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "compdef _python_argcomplete podctl" in script.stdout, ok(script)
