"""End to end in process: repeated crashes while an app writes and rotates; every line stored once."""
import random
import shutil

import pytest

from podvisor.sidecars.logger.pipeline import Pipeline
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for


class Crash(BaseException):
    """The logger dies (SIGKILL) at this point."""


class App:
    """Writes sequence-numbered lines, sometimes half a line, and rotates like supervisord or logrotate."""

    def __init__(self, logs, rng):
        self.logs = logs
        self.rng = rng
        self.seq = 0
        self.half = None

    def write(self):
        path = self.logs / "app.stdout.log"
        with open(path, "a") as f:
            if self.half is not None:
                f.write(self.half + "\n")
                self.half = None
            for _ in range(self.rng.randint(0, 40)):
                f.write(f'{{"message": "seq {self.seq}", "level": "info"}}\n')
                self.seq += 1
            if self.rng.random() < 0.3:
                line = f'{{"message": "seq {self.seq}"}}'
                self.seq += 1
                cut = self.rng.randint(1, len(line) - 1)
                f.write(line[:cut])
                self.half = line[cut:]

    def finish(self):
        if self.half is not None:
            with open(self.logs / "app.stdout.log", "a") as f:
                f.write(self.half + "\n")
            self.half = None

    def rotate(self):
        if self.half is not None:  # like a real writer, only rotate between whole lines here
            return
        for n in (3, 2, 1):  # backups=3: .3 is deleted, the rest shift
            src = self.logs / f"app.stdout.log.{n}"
            if src.exists():
                if n == 3:
                    src.unlink()
                else:
                    src.rename(self.logs / f"app.stdout.log.{n + 1}")
        live = self.logs / "app.stdout.log"
        if not live.exists():
            return
        if self.rng.random() < 0.5:
            live.rename(self.logs / "app.stdout.log.1")  # rename rotation
        else:
            shutil.copyfile(live, self.logs / "app.stdout.log.1")  # copytruncate
            with open(live, "r+") as f:
                f.truncate(0)


class ShuffledWorker:
    """Several batches in flight, acknowledged in random order (as the threaded worker's senders
    may finish): shipping happens when results are collected, a pending batch picked at random."""

    def __init__(self, sender, rng, depth=3):
        self.sender, self.rng, self.depth = sender, rng, depth
        self.pending = []

    def ready(self):
        return len(self.pending) < self.depth

    def submit(self, batch):
        self.pending.append(batch)

    def results(self):
        if not self.pending or self.rng.random() < 0.3:
            return []
        batch = self.pending.pop(self.rng.randrange(len(self.pending)))
        return [self.sender.send(batch)]

    def stop(self):
        pass


@pytest.mark.parametrize("in_flight", [1, 3])
@pytest.mark.parametrize("seed", range(6))
def test_repeated_crashes_deliver_every_line_exactly_once(tmp_path, seed, in_flight):
    rng = random.Random(seed)
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("t")
    settings = settings_for(tmp_path, batch_lines=rng.choice([7, 50, 1000]), max_inflight_bytes=4096)
    clock = FakeClock()
    transport = RecordingTransport()
    app = App(logs, rng)

    def start(shuffled=True):
        pipeline = Pipeline(settings, transport, clock=clock, wall=clock, waiter=FakeWaiter(clock),
                            threaded=False, hostname="h")
        if in_flight > 1 and shuffled:
            pipeline.worker = ShuffledWorker(pipeline.sender, rng, in_flight)
        return pipeline

    def maybe_crash(entries):
        if rng.random() < 0.15:
            raise Crash()  # stored at the aggregator, never acknowledged to the logger

    crashes = 0
    for _ in range(40):
        pipeline = start()
        transport.stored_then = maybe_crash
        try:
            for _ in range(rng.randint(1, 6)):
                app.write()
                if rng.random() < 0.3:
                    app.rotate()
                clock.advance(rng.choice([0.05, 0.5, 2.0]))
                pipeline.step()
        except Crash:
            pass
        crashes += 1
        pipeline.tailer.close()  # SIGKILL: no shutdown, no save; the kernel closes the fds

    app.finish()  # the live file's partial line is (rightly) held until its newline
    transport.stored_then = None
    pipeline = start(shuffled=False)
    for _ in range(50):
        clock.advance(1.0)
        pipeline.step()
        if pipeline.finished() and pipeline.tailer.unshipped_bytes() == 0:
            break
    seqs = sorted(int(e["message"].split()[1]) for e in transport.store.values())
    assert seqs == list(range(app.seq)), "every line delivered"
    assert len(transport.store) == app.seq, "ids make delivery exactly once"
    assert transport.deliveries > app.seq, "crashes did cause re-delivery (absorbed by id)"
    assert crashes == 40
    dead = tmp_path / "state" / "dead-letter.jsonl"
    assert not dead.exists(), dead.read_text() if dead.exists() else ""


def test_health_shows_how_long_lines_have_waited_without_an_ack(tmp_path):
    from tests.fakes.logger import unreachable
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("t")
    clock = FakeClock()
    transport = RecordingTransport([unreachable()] * 3)
    pipeline = Pipeline(settings_for(tmp_path), transport, clock=clock, wall=clock, waiter=FakeWaiter(clock),
                        threaded=False, hostname="h")
    pipeline.step()
    idle = pipeline.health()
    assert (idle["waiting_lines"], idle["waiting_bytes"], idle["stalled_seconds"]) == (0, 0, 0.0)
    assert idle["last_progress_at"] == round(clock.now, 3)
    (logs / "app.log").write_text('{"message": "one"}\n{"message": "half')  # a held partial line
    started = clock.now
    pipeline.step()  # the failed attempts advance the fake clock by their backoff
    pipeline.step()
    waiting = pipeline.health()
    assert waiting["waiting_lines"] == 0 and waiting["waiting_bytes"] == 0, "acknowledged at the 4th try"
    assert waiting["last_progress_at"] > started
    stuck = Pipeline(settings_for(tmp_path / "b"), RecordingTransport([unreachable()] * 100), clock=clock,
                     wall=clock, waiter=FakeWaiter(clock, cancel_after=2), threaded=False, hostname="h")
    (tmp_path / "b" / "logs").mkdir(parents=True)
    (tmp_path / "b" / "token").write_text("t")
    (tmp_path / "b" / "logs" / "app.log").write_text('{"message": "one"}\n{"message": "two"}\n')
    before = clock.now
    stuck.step()
    health = stuck.health()
    assert health["waiting_lines"] == 2 and health["waiting_bytes"] == 38
    assert health["stalled_seconds"] > 0
    assert health["stalled_seconds"] == pytest.approx(clock.now - before, abs=0.001)
    assert health["last_progress_at"] == round(before, 3)
