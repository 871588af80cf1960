"""The logger sleeps until there is something to do: inotify events on its log directory wake it."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from podvisor.sidecars.logger.pipeline import Pipeline
from podvisor.sidecars.logger.watch import DirectoryWatch, Wakeup
from podvisor.testing.waiting import wait_for
from tests.fakes.logger import RecordingTransport, settings_for


@contextmanager
def running_loop(tmp_path: Path, **overrides: float) -> Iterator[tuple[Pipeline, RecordingTransport, Path]]:
    """A pipeline's run() on a thread of its own, over tmp_path/logs; stopped and checked gone after."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (tmp_path / "token").write_text("t")
    settings = settings_for(tmp_path, **{"rescan_interval": 300.0, "poll_interval": 300.0,
                                         "idle_poll_interval": 300.0, "flush_interval": 0.01, **overrides})
    transport = RecordingTransport()
    pipeline = Pipeline(settings, transport, hostname="h")
    stop = threading.Event()
    loop = threading.Thread(target=pipeline.run, args=(stop,), name="test-loop")
    loop.start()
    try:
        yield pipeline, transport, logs
    finally:
        stop.set()
        pipeline.wakeup.set()
        loop.join(10)
        pipeline.close()
    assert not loop.is_alive(), "stop and a wake-up end the loop at once"


def shipped(transport: RecordingTransport) -> list[str]:
    return [e["message"] for e in transport.store.values()]


def test_a_write_in_the_directory_wakes_the_waiter_and_a_directory_made_later_is_watched(tmp_path):
    folder = tmp_path / "logs"
    wakeup = Wakeup()
    watch = DirectoryWatch(folder, wakeup)
    try:
        assert not watch.active, "no directory yet: polling until it exists"
        folder.mkdir()
        watch.ensure()
        assert watch.active
        assert not wakeup.wait(0.05), "nothing happened yet"
        (folder / "app.log").write_text("one line\n")
        assert wakeup.wait(5), "the write woke the waiter"
        folder.joinpath("app.log").rename(folder / "app.log.1")
        assert wakeup.wait(5), "the rename woke the waiter"
    finally:
        watch.close()
    assert not any(t.name == "logger-watch" and t.is_alive() for t in threading.enumerate())


def test_the_watch_notices_its_directory_replaced_and_watches_the_new_one(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    wakeup = Wakeup()
    watch = DirectoryWatch(folder, wakeup)
    try:
        folder.rename(tmp_path / "old")
        assert wakeup.wait(5)
        wait_for(lambda: not watch.active, 5, "the watch to drop the moved directory")
        folder.mkdir()
        watch.ensure()
        assert watch.active
        (folder / "app.log").write_text("x\n")
        assert wakeup.wait(5)
    finally:
        watch.close()


def test_the_loop_ships_a_new_line_at_once_though_its_rescan_and_polls_are_minutes_apart(tmp_path):
    with running_loop(tmp_path) as (pipeline, transport, logs):
        wait_for(lambda: pipeline.sleeps >= 1, 5, "the loop to find nothing to do and sleep")
        (logs / "app.log").write_text('{"message": "wake up"}\n')
        wait_for(lambda: shipped(transport) == ["wake up"], 5, "the line to be shipped without waiting for a poll")


def test_a_file_created_while_lines_keep_coming_is_found_without_waiting_for_a_poll(tmp_path):
    writing = threading.Event()

    def busy_app(logs: Path) -> None:
        with open(logs / "busy.log", "a") as log:
            n = 0
            while not writing.wait(0.002):
                log.write(f'{{"message": "busy {n}"}}\n')
                log.flush()
                n += 1

    with running_loop(tmp_path) as (_pipeline, transport, logs):
        app = threading.Thread(target=busy_app, args=(logs,), name="test-app")
        app.start()
        try:
            wait_for(lambda: len(transport.store) > 20, 5, "the busy file to be shipped")
            (logs / "new.log").write_text('{"message": "in a new file"}\n')
            wait_for(lambda: "in a new file" in shipped(transport), 5,
                     "the new file's line while the busy one keeps the loop awake")
        finally:
            writing.set()
            app.join(10)


def test_an_empty_file_does_not_keep_the_loop_polling_and_its_first_line_ships_at_once(tmp_path):
    """An app's unused stdout is an empty file that cannot be identified yet: it used to keep the
    loop polling every LOGGER_POLL_INTERVAL at rest (0.7% of a core per idle logger)."""
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.stdout.log").touch()
    with running_loop(tmp_path, poll_interval=0.05) as (pipeline, transport, logs):
        wait_for(lambda: pipeline.sleeps >= 1, 5, "the loop to find nothing to do and sleep")
        assert pipeline.tailer.unidentified and not pipeline.tailer.recheck_wanted
        assert pipeline.last_sleep == 300.0, "asleep until a file event or the rescan interval"
        (logs / "app.stdout.log").write_text("the first line\n")
        wait_for(lambda: shipped(transport) == ["the first line"], 5,
                 "the empty file's first line shipped on its file event")
