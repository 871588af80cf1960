"""Process tree metrics and pid sources (sidecars/metrics/process.py, pids.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from podvisor.core.supervisor import SupervisorRPC
from podvisor.sidecars.metrics.labels import PodLabels
from podvisor.sidecars.metrics.pids import PidfilePidSource, SupervisorPidSource
from podvisor.sidecars.metrics.process import ProcessTreeCollector, tree_usage
from podvisor.testing.waiting import wait_for

POD = PodLabels(service_name="user-service", environment="test", pod="user")
TREE_FAMILIES = {
    "podvisor_pod_cpu_seconds",
    "podvisor_pod_resident_memory_bytes",
    "podvisor_pod_virtual_memory_bytes",
    "podvisor_pod_open_fds",
    "podvisor_pod_max_fds",
    "podvisor_pod_threads",
    "podvisor_pod_start_time_seconds",
    "podvisor_pod_processes",
}


def collect(collector: ProcessTreeCollector) -> dict[str, float]:
    out = {}
    for family in collector.collect():
        [sample] = family.samples
        assert {k: sample.labels[k] for k in POD.names()} == dict(POD.items())
        out[family.name] = sample.value
    return out


@pytest.fixture
def child() -> Iterator[subprocess.Popen]:
    """A child of the test process that waits for a line on stdin, then exits."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.readline()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


def test_tree_of_the_test_process(child: subprocess.Popen) -> None:
    me = psutil.Process()
    usage = tree_usage(os.getpid())
    assert usage is not None
    assert usage.processes >= 2  # this process and the child
    assert usage.resident_bytes > me.memory_info().rss  # the child's memory counts too
    assert usage.start_time == me.create_time()
    assert usage.cpu_seconds > 0 and usage.threads >= 2 and usage.open_fds > 0
    assert usage.max_fds is None or usage.max_fds > 0


def test_exited_children_leave_the_tree_but_not_the_cpu_counter() -> None:
    burn = (
        "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
        "print('done', flush=True)\ninput()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
        alive = tree_usage(os.getpid())
        proc.communicate("\n", timeout=10)  # it exits and we reap it
    finally:
        proc.kill()
        proc.wait(10)
    reaped = tree_usage(os.getpid())
    assert alive is not None and reaped is not None
    assert reaped.processes == alive.processes - 1
    # the child's CPU time moved to our children_user/children_system: no drop
    assert reaped.cpu_seconds >= alive.cpu_seconds


def test_collector_exposes_every_series_with_pod_labels() -> None:
    values = collect(ProcessTreeCollector(os.getpid, POD, memory_limit_bytes=256 * 2**20))
    assert TREE_FAMILIES - {"podvisor_pod_max_fds"} <= set(values)
    assert values["podvisor_pod_memory_limit_bytes"] == 256 * 2**20
    assert values["podvisor_pod_start_time_seconds"] == psutil.Process().create_time()


def test_unknown_or_gone_pid_means_absent_series_but_the_limit_stays() -> None:
    assert collect(ProcessTreeCollector(lambda: None, POD)) == {}
    assert set(collect(ProcessTreeCollector(lambda: None, POD, 1000))) == {"podvisor_pod_memory_limit_bytes"}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(10)
    assert collect(ProcessTreeCollector(lambda: dead.pid, POD)) == {}


def test_zombie_app_counts_as_not_running() -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        # exited, not yet reaped
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, 10, "the child to exit",
                 interval=0.01)
        assert tree_usage(zombie.pid) is None
    finally:
        zombie.wait(10)


def test_pid_is_resolved_again_on_every_scrape(child: subprocess.Popen) -> None:
    answers = iter([os.getpid(), None, child.pid])
    asked = []

    def source() -> int | None:
        asked.append(1)
        return next(answers)

    collector = ProcessTreeCollector(source, POD)
    first, second, third = collect(collector), collect(collector), collect(collector)
    assert len(asked) == 3
    assert first["podvisor_pod_start_time_seconds"] == psutil.Process().create_time()
    assert second == {}
    assert third["podvisor_pod_start_time_seconds"] == psutil.Process(child.pid).create_time()
    assert third["podvisor_pod_processes"] == 1


def test_pidfile_source(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    source = PidfilePidSource(pidfile)
    assert source() is None  # missing
    pidfile.write_text("garbage\n")
    assert source() is None
    pidfile.write_text(f"{os.getpid()}\n")
    assert source() == os.getpid()
    # a pidfile older than the process with that pid belongs to an earlier process: pid reused
    an_hour_ago = psutil.Process().create_time() - 3600
    os.utime(pidfile, (an_hour_ago, an_hour_ago))
    assert source() is None


class FakeSupervisor:
    """Stands in for SupervisorRPC: `info(program)` answers from a script (an exception is raised)."""

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def info(self, name: str) -> dict:
        self.asked.append(name)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"name": name, "pid": answer}


def test_supervisor_source_asks_every_time_and_maps_0_to_none() -> None:
    fake = FakeSupervisor([4242, 0, xmlrpc.client.Fault(10, "BAD_NAME"), ConnectionRefusedError(), 4343])
    source = SupervisorPidSource("user-app", fake)
    assert [source() for _ in range(5)] == [4242, None, None, None, 4343]
    assert fake.asked == ["user-app"] * 5


def test_a_malformed_answer_is_none() -> None:
    class Odd:
        def info(self, name: str) -> dict:
            return {"name": name}  # no pid

    assert SupervisorPidSource("user-app", Odd())() is None


def test_a_hung_supervisord_costs_one_timeout_per_scrape(tmp_path: Path) -> None:
    """supervisord accepts the connection and never answers: the client's timeout bounds each scrape."""
    path = tmp_path / "hung.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hung:
        hung.bind(str(path))
        hung.listen(8)  # connections complete in the backlog; nothing ever reads or answers them
        source = SupervisorPidSource("user-app", SupervisorRPC(f"unix://{path}", timeout=0.2))
        start = time.monotonic()
        assert source() is None and source() is None
        assert time.monotonic() - start < 2


def test_supervisor_source_against_a_missing_socket_is_none(tmp_path: Path) -> None:
    source = SupervisorPidSource("user-app", SupervisorRPC(f"unix://{tmp_path}/none.sock", timeout=1.0))
    assert source() is None
