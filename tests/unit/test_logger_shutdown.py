"""Shutdown: wait for the app, drain everything, flush rotated partials; bounded by the grace deadline."""
import json
import threading
import time
import xmlrpc.client

from podvisor.sidecars.logger.appstate import AppWatcher, rpc_state
from podvisor.sidecars.logger.pipeline import Pipeline
from podvisor.sidecars.logger.sender import Response
from podvisor.testing.waiting import wait_for
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for, unreachable


def _dirs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("t")
    return logs


def _offsets(tmp_path):
    doc = json.loads((tmp_path / "state" / "checkpoint.json").read_text())
    return sorted(f["offset"] for f in doc["body"]["files"].values())


def test_keeps_tailing_until_the_app_stops_then_ships_everything(tmp_path):
    logs = _dirs(tmp_path)
    clock = FakeClock()
    transport = RecordingTransport()
    pipeline = Pipeline(settings_for(tmp_path, rotated_idle_seconds=60), transport, clock=clock, wall=clock,
                        waiter=FakeWaiter(clock), threaded=False, hostname="h", sleep=clock.advance)
    (logs / "app.log").write_text("serving\nlive partial")
    (logs / "app.stdout.log.1").write_text("rotated\nrotated partial")
    states = iter(["RUNNING", "STOPPING", "STOPPING", "EXITED"])
    wrote = []

    def app_running():
        state = next(states)
        if state == "STOPPING" and not wrote:  # the app writes its last lines while stopping
            wrote.append(True)
            with (logs / "app.log").open("a") as f:
                f.write(" finished\nshutdown complete\n")
        return state != "EXITED"

    assert pipeline.shutdown(clock() + 25, app_running) == 0
    messages = [e["message"] for e in transport.store.values()]
    assert sorted(messages) == sorted(["serving", "live partial finished", "shutdown complete", "rotated",
                                       "rotated partial"])
    assert "rotated partial" in messages  # rotated away: flushed as a line
    assert _offsets(tmp_path) == [len("rotated\nrotated partial"), (logs / "app.log").stat().st_size]


def test_live_file_partial_line_is_not_flushed_at_shutdown(tmp_path):
    logs = _dirs(tmp_path)
    clock = FakeClock()
    transport = RecordingTransport()
    pipeline = Pipeline(settings_for(tmp_path), transport, clock=clock, wall=clock, waiter=FakeWaiter(clock),
                        threaded=False, hostname="h", sleep=clock.advance)
    (logs / "app.log").write_text("whole\nhalf")
    assert pipeline.shutdown(clock() + 25) == 0
    assert [e["message"] for e in transport.store.values()] == ["whole"]
    assert _offsets(tmp_path) == [len("whole\n")]  # the half line ships, whole, on the next start


class Always(RecordingTransport):
    def __init__(self, failure):
        super().__init__()
        self.failure = failure

    def post(self, url, body, headers, timeout):
        self.requests.append(url)
        if isinstance(self.failure, Exception):
            raise self.failure
        return self.failure


def test_deadline_passes_saves_acknowledged_state_and_fails(tmp_path, caplog):
    logs = _dirs(tmp_path)
    (logs / "app.log").write_text("a\nb\n")
    pipeline = Pipeline(settings_for(tmp_path, grace_seconds=0.5), Always(Response(503)), hostname="h")
    started = time.monotonic()
    try:
        assert pipeline.shutdown(started + 0.5) == 1
    finally:
        pipeline.close()
    assert time.monotonic() - started < 3
    assert _offsets(tmp_path) == [0]
    assert "2 lines read but unacknowledged" in caplog.text and "grace period" in caplog.text


def test_unreachable_aggregator_ends_the_drain_early_without_losing_anything(tmp_path, caplog):
    logs = _dirs(tmp_path)
    (logs / "app.log").write_text("a\n")
    transport = Always(unreachable())
    pipeline = Pipeline(settings_for(tmp_path), transport, hostname="h")
    stop = threading.Event()
    runner = threading.Thread(target=pipeline.run, args=(stop,))
    runner.start()
    wait_for(lambda: transport.requests, 10, "a first attempt to ship", interval=0.01)
    stop.set()
    runner.join()
    started = time.monotonic()
    try:
        assert pipeline.shutdown(started + 25) == 0
    finally:
        pipeline.close()
    assert time.monotonic() - started < 2  # a fresh attempt right away, not after the backoff
    assert _offsets(tmp_path) == [0]
    assert "unreachable" in caplog.text and "remain unshipped" in caplog.text


def test_app_watcher_reports_stopped_states_and_unreachable_supervisord():
    states = iter(["STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED"])
    watcher = AppWatcher("user-app", lambda: next(states), interval=0.001).start()
    wait_for(lambda: not watcher.running(), 5, "the watcher to see the app EXITED", interval=0.001)

    def broken():
        raise ConnectionRefusedError("no supervisord")

    watcher = AppWatcher("user-app", broken, interval=0.001).start()
    wait_for(lambda: not watcher.running(), 5, "the watcher to give up on supervisord", interval=0.001)


def test_rpc_state_reads_the_programs_state_from_the_supervisor_client():
    asked = []

    class Rpc:  # what SupervisorRPC.info answers: supervisord's getProcessInfo
        def info(self, program):
            asked.append(program)
            return {"name": program, "statename": "STOPPING"}

    assert rpc_state(Rpc(), "user-app")() == "STOPPING" and asked == ["user-app"]


def test_app_watcher_looks_at_the_processes_while_supervisord_shuts_down(tmp_path):
    def shutting_down():
        raise xmlrpc.client.Fault(6, "SHUTDOWN_STATE")

    # No process of this supervisord runs as user-app: the app is taken as gone.
    watcher = AppWatcher("user-app", shutting_down, interval=0.001,
                         serverurl=f"unix://{tmp_path}/supervisor.sock").start()
    wait_for(lambda: not watcher.running(), 5, "the watcher to find no user-app process", interval=0.001)
