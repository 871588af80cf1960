"""podctl top's measurement on this test's own processes: a busy child is counted in its parent's
tree, CPU over the interval is a share of one core, memory is the tree's resident set."""
from __future__ import annotations

import os
import subprocess
import sys

import psutil

from podvisor.supervisord.podctl import top

BUSY = "while True: pass"


def test_a_container_is_its_process_and_every_descendant():
    child = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        pods = [{"pod": "p", "container_states": {"app": {"pid": os.getpid()}, "logger": {"pid": None},
                                                   "metrics": {"pid": child.pid}}}]
        (app, logger, metrics) = top.sample(pods, 0.5)
        assert (app.container, logger.container, metrics.container) == ("app", "logger", "metrics")
        assert child.pid in app.pids and os.getpid() in app.pids  # the child is in our tree
        assert metrics.pids == [child.pid]
        assert 30 < metrics.cpu_percent <= 110, metrics  # one busy loop: about one core (less when shared)
        assert app.cpu_percent >= metrics.cpu_percent * 0.8  # ours includes the child's
        assert logger.pid is None and logger.cpu_percent is None and logger.memory_bytes is None
        rss = psutil.Process(child.pid).memory_info().rss
        assert abs(metrics.memory_bytes - rss) < 0.2 * rss
    finally:
        child.kill()
        child.wait()


def test_the_interval_comes_from_the_clock_it_is_given():
    ticks = iter([100.0, 104.0])
    pods = [{"pod": "p", "container_states": {"app": {"pid": os.getpid()}}}]
    (app,) = top.sample(pods, 4.0, clock=lambda: next(ticks), sleep=lambda _s: None)
    assert app.cpu_percent < 5  # whatever we used while not sleeping, spread over 4 s


def test_a_gone_process_is_shown_as_not_running():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (app,) = top.sample([{"pod": "p", "container_states": {"app": {"pid": gone.pid}}}], 0.01)
    assert app.pid is None
    text = top.table([app])
    assert text.splitlines()[1].split() == ["p", "app", "-", "-", "-", "-"]
