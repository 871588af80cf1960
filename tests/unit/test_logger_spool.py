"""Spool: rotated files with unshipped bytes survive deletion; past the bound, the loss is accounted."""
import json
import os

from podvisor.sidecars.logger.pipeline import Pipeline
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for, unreachable


class Down(RecordingTransport):
    """An aggregator that never answers."""

    def post(self, url, body, headers, timeout):
        raise unreachable()


def _start(tmp_path, transport, clock, **overrides):
    # cancel_after=0: a failed send gives up at once instead of retrying (inline sender in tests).
    return Pipeline(settings_for(tmp_path, **overrides), transport, clock=clock, wall=clock,
                    waiter=FakeWaiter(clock, cancel_after=0 if isinstance(transport, Down) else None),
                    threaded=False, hostname="h")


def _pump(pipeline, clock, steps=3):
    for _ in range(steps):
        clock.advance(1)
        pipeline.step()


def _write(path, first, last):
    with open(path, "a") as f:
        f.write("".join(f"seq {n}\n" for n in range(first, last)))


def _metric(pipeline, name):
    return pipeline.metrics.registry.get_sample_value("podvisor_logger_" + name) or 0


def _setup(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text("t")
    return logs, tmp_path / "state" / "spool"


def test_rotated_unshipped_file_is_kept_in_spool_until_shipped(tmp_path):
    logs, spool = _setup(tmp_path)
    clock = FakeClock()
    pipeline = _start(tmp_path, Down(), clock)
    _write(logs / "app.stdout.log", 0, 10)
    _pump(pipeline, clock)
    (logs / "app.stdout.log").rename(logs / "app.stdout.log.1")
    _pump(pipeline, clock)
    (kept,) = spool.iterdir()
    assert kept.name.endswith("-app.stdout.log.1")
    assert kept.stat().st_ino == (logs / "app.stdout.log.1").stat().st_ino  # a hard link, no copy
    (logs / "app.stdout.log.1").unlink()  # the rotator deletes it: the spool keeps the bytes
    pipeline.tailer.close()  # crash
    up = RecordingTransport()
    pipeline = _start(tmp_path, up, clock)
    _pump(pipeline, clock)
    assert sorted(int(e["message"].split()[1]) for e in up.store.values()) == list(range(10))
    assert {e["source"] for e in up.store.values()} == {"app.stdout.log"}
    assert list(spool.iterdir()) == []  # removed once fully shipped and checkpointed
    assert _metric(pipeline, "spool_bytes") == 0


def test_spool_bound_is_enforced_and_the_loss_accounted(tmp_path):
    logs, spool = _setup(tmp_path)
    clock = FakeClock()
    pipeline = _start(tmp_path, Down(), clock, spool_max_bytes=1000, max_inflight_bytes=1024)
    _write(logs / "app.stdout.log", 0, 40_000)  # ~400 kB: more than one read chunk
    size = (logs / "app.stdout.log").stat().st_size
    _pump(pipeline, clock)
    (logs / "app.stdout.log").rename(logs / "app.stdout.log.1")
    _pump(pipeline, clock)
    assert list(spool.iterdir()) == [] and _metric(pipeline, "spool_refused_total") == 1
    (logs / "app.stdout.log.1").unlink()  # deleted while we hold it: it counts against the bound
    _pump(pipeline, clock)
    dead = tmp_path / "state" / "dead-letter.jsonl"
    (first,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert first["lost"] is True and first["end"] == size and first["source"] == "app.stdout.log"
    assert "spool full" in first["reason"] and first["bytes"] == size - first["start"] > 0
    assert first["kind"] == "spool_full"
    registry = pipeline.metrics.registry
    assert registry.get_sample_value("podvisor_logger_losses_total", {"kind": "spool_full"}) == 1
    assert _metric(pipeline, "lost_bytes_total") == first["bytes"]
    assert pipeline.tailer.tails == {}  # the fd is released: the disk space comes back
    # The part that was read but never acknowledged is lost too once the process dies; the next
    # start accounts for it, so the dead-letter ranges cover the whole file exactly once.
    pipeline.tailer.close()
    pipeline = _start(tmp_path, RecordingTransport(), clock)
    _pump(pipeline, clock)
    records = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted((r["start"], r["end"]) for r in records) == [(0, first["start"]), (first["start"], size)]
    assert "deleted" in records[1]["reason"] and records[1]["kind"] == "deleted"
    assert _metric(pipeline, "lost_bytes_total") == first["start"]


def test_stale_spool_temp_files_are_cleaned(tmp_path):
    _, spool = _setup(tmp_path)
    spool.mkdir(parents=True)
    (spool / "0123456789abcdef-app.log.1.tmp").write_text("half a copy")
    clock = FakeClock()
    pipeline = _start(tmp_path, RecordingTransport(), clock)
    _pump(pipeline, clock, 1)
    assert os.listdir(spool) == []


def test_rotations_during_an_outage_are_spooled_past_the_backup_limit_and_ship_later(tmp_path):
    logs, spool = _setup(tmp_path)
    clock = FakeClock()
    pipeline = _start(tmp_path, Down(), clock, max_inflight_bytes=2048)  # reading stalls: bytes stay unread
    seq = 0
    for rotation in range(6):
        _write(logs / "app.stdout.log", seq, seq + 200)
        seq += 200
        _pump(pipeline, clock, 1)
        for n in (2, 1):  # backups=2: the rotator deletes .2 before it shifts .1
            src = logs / f"app.stdout.log.{n}"
            if src.exists():
                src.unlink() if n == 2 else src.rename(logs / f"app.stdout.log.{n + 1}")
        (logs / "app.stdout.log").rename(logs / "app.stdout.log.1")
        if rotation == 3:  # the logger restarts in the middle of the outage
            pipeline.tailer.close()
            pipeline = _start(tmp_path, Down(), clock, max_inflight_bytes=2048)
    _pump(pipeline, clock, 2)
    assert len(list(spool.iterdir())) == 6  # every rotated file, the deleted ones too
    assert _metric(pipeline, "spool_bytes") > 0
    pipeline.tailer.close()
    up = RecordingTransport()
    pipeline = _start(tmp_path, up, clock)
    _pump(pipeline, clock, 10)
    assert sorted(int(e["message"].split()[1]) for e in up.store.values()) == list(range(seq))
    assert len(up.store) == seq
    assert list(spool.iterdir()) == [] and not (tmp_path / "state" / "dead-letter.jsonl").exists()
