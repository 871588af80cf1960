"""Scenario 8: cold start to every pod Ready, app restart after kill -9, ordered stop of the stack.

Each run renders the default three pods into a fresh directory (new databases, nothing cached
by the stack), and times:
- cold start: from launching supervisord until the controller reports every pod Ready;
- restart: from SIGKILL to the user app until it answers GET / again (a new process);
- ordered stop: from SIGTERM to supervisord until supervisord has exited (apps first, sidecars
  drain and stop after them, the aggregator and the controller last).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import requests

from podvisor.bench.context import Bench
from podvisor.bench.report import Goal
from podvisor.bench.stacks import DEMO_PODS, process_pid, wait_pods_ready

POD = "user"


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def one_run(bench: Bench, index: int) -> None:
    result = bench.result(8)
    h = bench.stacks.new(DEMO_PODS)
    try:
        bench.say(f"8 lifecycle run {index + 1}/{bench.sizes.lifecycle_runs}: cold start")
        started = time.monotonic()
        h.start(timeout=120)  # returns once the aggregator answers and the controller says every pod is Ready
        result.figure("cold start to every pod Ready", "s", Goal("<=", 3)).add(time.monotonic() - started)

        bench.say(f"8 lifecycle run {index + 1}/{bench.sizes.lifecycle_runs}: kill -9 the {POD} app")
        url = h.apps[POD] + "/"
        old = process_pid(h, f"{POD}-app")
        killed = time.monotonic()
        os.kill(old, signal.SIGKILL)
        h.wait_for(
            lambda: h.pid(f"{POD}-app") not in (0, old) and _answers(url),
            60,
            f"the {POD} app to answer after kill -9",
            interval=0.01,
        )
        result.figure("app answers again after kill -9", "s", Goal("<=", 2)).add(time.monotonic() - killed)
        wait_pods_ready(h)

        bench.say(f"8 lifecycle run {index + 1}/{bench.sizes.lifecycle_runs}: ordered stop")
        assert h.proc is not None
        stopping = time.monotonic()
        h.proc.send_signal(signal.SIGTERM)
        try:
            h.proc.wait(120)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"supervisord did not stop within 120 s\n{h.output(20)}") from None
        result.figure("ordered stop of the stack", "s", Goal("<=", 5)).add(time.monotonic() - stopping)
    finally:
        h.stop()  # checks that nothing was left behind (a no-op signal-wise when already stopped)


def run(bench: Bench) -> None:
    for i in range(bench.sizes.lifecycle_runs):
        one_run(bench, i)
    bench.result(8).notes.append(
        "default spec (3 pods + aggregator + controller), a fresh state directory each run; "
        "stop = SIGTERM to supervisord until it exits"
    )
