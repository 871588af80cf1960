"""Tailing: which files are read, and how rotation, truncation and rewrites keep lines exactly once.

Each test drives a real Pipeline (inline sender, fake clock) over files in tmp_path and looks at what
an in-memory aggregator stored: the observable result the product promises.
"""
import json
import os
import random
import shutil

from podvisor.sidecars.logger.checkpoint import CheckpointStore
from podvisor.sidecars.logger.pipeline import Pipeline
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for


class Rig:
    """A pod log directory, a logger over it, and helpers to write, rotate, crash and restart."""

    def __init__(self, tmp_path, **overrides):
        self.logs = tmp_path / "logs"
        (self.logs / "sidecars").mkdir(parents=True)
        (tmp_path / "token").write_text("secret\n")
        self.settings = settings_for(tmp_path, **overrides)
        self.clock = FakeClock()
        self.transport = RecordingTransport()
        self.pipeline = None
        self.start()

    def start(self):
        self.pipeline = Pipeline(self.settings, self.transport, clock=self.clock, wall=self.clock,
                                 waiter=FakeWaiter(self.clock), threaded=False, hostname="host1")

    def crash(self):
        """Abandon the pipeline (no shutdown, no save), then start a new one on the same state."""
        self.pipeline.tailer.close()  # only releases fds, as the kernel would
        self.start()

    def pump(self, steps=3):
        for _ in range(steps):
            self.clock.advance(1.0)
            self.pipeline.step()

    def write(self, name, text, mode="a"):
        with open(self.logs / name, mode + "b") as f:
            f.write(text.encode() if isinstance(text, str) else text)

    def lines(self, name, first, last):
        self.write(name, "".join(f'{{"message": "seq {n}"}}\n' for n in range(first, last)))

    def messages(self):
        return [e["message"] for e in self.transport.store.values()]

    def seqs(self):
        return sorted(int(m.split()[1]) for m in self.messages() if m.startswith("seq "))

    def offset(self, name):
        ino = os.stat(self.logs / name).st_ino
        return next(i.offset for i in self.pipeline.registry.identities.values() if i.ino == ino)


def test_tails_existing_and_later_files_but_not_the_sidecars_dir(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", '{"message": "first"}\n')
    rig.write("sidecars/logger.log", "our own output\n")
    rig.write("notes.txt", "not a log\n")
    rig.write("app.log.2.gz", "compressed\n")
    rig.pump()
    assert rig.messages() == ["first"]
    rig.write("app.stderr.log", "boom\n")
    rig.pump()
    assert rig.messages() == ["first", "boom"]
    boom = list(rig.transport.store.values())[1]
    assert boom["level"] == "warning" and boom["source"] == "app.stderr.log" and boom["pod"] == "user"


def test_partial_line_is_held_across_restart_until_its_newline(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", "complete\nhalf a li")
    rig.pump()
    assert rig.messages() == ["complete"]
    assert rig.offset("app.log") == len("complete\n")  # never past a line end
    rig.crash()
    rig.write("app.log", "ne\n")
    rig.pump()
    assert rig.messages() == ["complete", "half a line"]
    assert rig.transport.deliveries == 2


def test_rename_rotation_under_writes_loses_and_duplicates_nothing(tmp_path):
    rig = Rig(tmp_path)
    seq = 0
    for rotation in range(6):
        rig.lines("app.stdout.log", seq, seq + 7)
        seq += 7
        if rotation % 2:
            rig.pump(1)  # sometimes caught up, sometimes not, when the rename happens
        for n in (3, 2, 1):  # supervisord-style: .2 -> .3 (deleting .3 past the backup limit), ...
            src = rig.logs / f"app.stdout.log.{n}"
            if src.exists():
                if n == 3:
                    src.unlink()
                else:
                    src.rename(rig.logs / f"app.stdout.log.{n + 1}")
        (rig.logs / "app.stdout.log").rename(rig.logs / "app.stdout.log.1")
        rig.lines("app.stdout.log", seq, seq + 3)  # the writer reopens and keeps writing
        seq += 3
    rig.pump(5)
    assert rig.seqs() == list(range(seq))
    assert rig.transport.deliveries == seq  # no entry sent twice
    assert {e["source"] for e in rig.transport.store.values()} == {"app.stdout.log"}


def test_copytruncate_recovers_unread_bytes_from_the_copy(tmp_path):
    rig = Rig(tmp_path)
    rig.lines("app.log", 0, 10)
    rig.pump()
    rig.lines("app.log", 10, 15)  # written but not read yet when logrotate strikes
    shutil.copyfile(rig.logs / "app.log", rig.logs / "app.log.1")
    os.truncate(rig.logs / "app.log", 0)
    rig.lines("app.log", 15, 20)
    rig.pump(4)
    assert rig.seqs() == list(range(20))
    assert rig.transport.deliveries == 20
    dead = tmp_path / "state" / "dead-letter.jsonl"
    assert not dead.exists() or dead.read_text() == ""


def test_truncation_while_stopped_reads_new_content_from_zero(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", "banner\n" + "old line\n" * 5)
    rig.pump()
    rig.crash()
    rig.write("app.log", "banner\nnew\n", mode="w")  # same first line, same inode, shorter
    rig.start()
    rig.pump()
    assert rig.messages() == ["banner"] + ["old line"] * 5 + ["banner", "new"]
    assert len(rig.transport.store) == 8  # the second banner got a new id (new generation)


def test_rewrite_with_different_content_while_stopped_is_shipped_as_new(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", "alpha\nbeta\n")
    rig.pump()
    rig.crash()
    with open(rig.logs / "app.log", "r+b") as f:  # in place: same inode, longer, other content
        f.write(b"gamma\ndelta\nepsilon\n")
    rig.pump()
    assert rig.messages() == ["alpha", "beta", "gamma", "delta", "epsilon"]


def test_delete_and_recreate_while_running(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", "one\ntwo\n")
    rig.pump()
    rig.write("app.log", "three\n")
    (rig.logs / "app.log").unlink()  # the bytes written before deletion are still read via the fd
    rig.write("app.log", "fresh\n")
    rig.pump()
    assert rig.messages() == ["one", "two", "three", "fresh"]


def test_inode_reuse_is_detected_by_the_head_fingerprint(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", "old content\n" * 3)
    rig.pump()
    rig.crash()
    (rig.logs / "app.log").unlink()
    rig.write("other.log", "new file\n")
    # Make the checkpoint claim the old identity lives at the new file's inode (a recycled inode).
    store = CheckpointStore(tmp_path / "state" / "checkpoint.json")
    registry = store.load().registry
    (ident,) = registry.identities.values()
    ident.ino = os.stat(rig.logs / "other.log").st_ino
    store.save(registry)
    rig.start()
    rig.pump()
    assert rig.messages() == ["old content"] * 3 + ["new file"]


def test_long_lines_are_truncated_with_a_marker_and_reading_continues(tmp_path):
    rig = Rig(tmp_path, max_line_bytes=1000)
    rig.write("app.log", '{"message": "' + "x" * 5000 + '"}\nafter\n')
    rig.pump()
    long, after = rig.transport.store.values()
    assert long["truncated"] is True and long["original_bytes"] == 5015 and len(long["message"]) == 1000
    assert after["message"] == "after" and after["id"].endswith(":5016")


def test_invalid_utf8_and_non_json_are_wrapped_not_fatal(tmp_path):
    rig = Rig(tmp_path)
    rig.write("app.log", b'\xff\xfe bad bytes\n{"message": "json", "level": "warn"}\nplain\n')
    rig.pump()
    assert [(e["message"], e["level"]) for e in rig.transport.store.values()] == [
        ("\ufffd\ufffd bad bytes", "info"), ("json", "warn"), ("plain", "info")]


def test_rotated_partial_line_is_flushed_once_idle(tmp_path):
    rig = Rig(tmp_path, rotated_idle_seconds=5.0)
    rig.write("app.stdout.log", "done\nno newline at the end")
    rig.pump()
    (rig.logs / "app.stdout.log").rename(rig.logs / "app.stdout.log.1")
    rig.pump(2)
    assert rig.messages() == ["done"]  # the writer could still finish the line
    rig.pump(6)
    assert rig.messages() == ["done", "no newline at the end"]
    rig.crash()
    rig.pump(8)
    assert rig.transport.deliveries == 2  # flushed partial is checkpointed like any line


def test_logrotate_create_while_the_writer_still_holds_the_old_file(tmp_path):
    rig = Rig(tmp_path)
    seq = 0
    writer = open(rig.logs / "app.log", "ab", buffering=0)

    def emit(n):
        nonlocal seq
        for _ in range(n):
            writer.write(f'{{"message": "seq {seq}"}}\n'.encode())
            seq += 1

    for rotation in range(8):
        emit(5)
        if rotation % 3 == 0:
            rig.pump(1)
        for n in (3, 2, 1):  # logrotate `rotate 3` + `create`: shift, rename, create an empty file
            src = rig.logs / f"app.log.{n}"
            if src.exists():
                src.unlink() if n == 3 else src.rename(rig.logs / f"app.log.{n + 1}")
        (rig.logs / "app.log").rename(rig.logs / "app.log.1")
        (rig.logs / "app.log").touch()
        if rotation % 2:
            rig.pump(1)
        emit(3)  # the app writes to the renamed file until its postrotate signal makes it reopen
        if rotation % 2 == 0:
            rig.pump(1)
        writer.close()
        writer = open(rig.logs / "app.log", "ab", buffering=0)
    writer.close()
    rig.pump(8)
    assert rig.seqs() == list(range(seq))
    assert rig.transport.deliveries == seq


def test_repeated_copytruncate_with_partial_reads_and_crashes(tmp_path):
    rng = random.Random(7)
    rig = Rig(tmp_path, max_inflight_bytes=1024)  # reading lags behind: truncations cut unread bytes
    seq = 0
    for _ in range(12):
        rig.lines("app.log", seq, seq + (n := rng.randint(1, 60)))
        seq += n
        if rng.random() < 0.5:
            rig.pump(1)
        for n in (3, 2, 1):
            src = rig.logs / f"app.log.{n}"
            if src.exists():
                src.unlink() if n == 3 else src.rename(rig.logs / f"app.log.{n + 1}")
        shutil.copyfile(rig.logs / "app.log", rig.logs / "app.log.1")
        os.truncate(rig.logs / "app.log", 0)
        if rng.random() < 0.5:
            rig.pump(1)
        if rng.random() < 0.3:
            rig.crash()
    rig.pump(20)
    assert rig.seqs() == list(range(seq))
    assert len(rig.transport.store) == seq
    assert not (tmp_path / "state" / "dead-letter.jsonl").exists()


def test_several_files_keep_their_own_offsets_across_a_crash(tmp_path):
    rig = Rig(tmp_path)
    names = ["app.log", "app.stdout.log", "app.stderr.log"]
    for first in range(0, 30, 10):
        for name in names:
            rig.lines(name, first + 1000 * names.index(name), first + 10 + 1000 * names.index(name))
        rig.pump(1)
        rig.crash()
    rig.pump(2)
    expected = sorted(n + 1000 * k for k in range(3) for n in range(30))
    assert rig.seqs() == expected and rig.transport.deliveries == 90
    assert [rig.offset(name) for name in names] == [(rig.logs / name).stat().st_size for name in names]
    sources = {e["source"] for e in rig.transport.store.values()}
    assert sources == set(names)


def test_a_file_deleted_before_it_was_read_is_reported_lost_not_silently(tmp_path):
    rig = Rig(tmp_path)
    rig.lines("app.stdout.log", 0, 5)
    rig.pump()
    rig.lines("app.stdout.log", 5, 9)
    rig.pipeline.tailer.scan()  # seen (and checkpointed as seen), not read or shipped yet
    rig.pipeline.save()
    size = (rig.logs / "app.stdout.log").stat().st_size
    acknowledged = rig.offset("app.stdout.log")
    rig.pipeline.tailer.close()  # killed; the rotator works while the logger is down
    (rig.logs / "app.stdout.log").rename(rig.logs / "app.stdout.log.1")
    (rig.logs / "app.stdout.log.1").unlink()
    rig.start()
    rig.pump(3)
    assert rig.seqs() == list(range(5))
    dead = tmp_path / "state" / "dead-letter.jsonl"
    (record,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert record["lost"] is True and (record["start"], record["end"]) == (acknowledged, size)
    assert record["source"] == "app.stdout.log" and record["kind"] == "deleted"
    assert "deleted" in record["reason"]
    lost = rig.pipeline.metrics.registry.get_sample_value("podvisor_logger_lost_bytes_total")
    assert lost == size - acknowledged
    rig.pump(3)
    assert len((tmp_path / "state" / "dead-letter.jsonl").read_text().splitlines()) == 1  # reported once


def test_a_1_mib_line_is_stored_truncated_within_the_entry_limit(tmp_path):
    rig = Rig(tmp_path, max_line_bytes=64 * 1024, max_entry_bytes=16 * 1024)
    line = '{"seq": 0, "message": "' + "\u00e9" * (512 * 1024) + '"}'  # 1 MiB of UTF-8, 6x when escaped
    rig.write("app.log", line + '\n{"message": "after"}\n')
    rig.pump()
    big, after = rig.transport.store.values()
    assert big["truncated"] is True and big["original_bytes"] == len(line.encode())
    assert big["message"].startswith('{"seq": 0, "message": "\u00e9\u00e9')
    assert len(json.dumps(big, separators=(",", ":"))) <= 16 * 1024
    assert after["message"] == "after"
    assert rig.pipeline.metrics.registry.get_sample_value("podvisor_logger_lines_truncated_total") == 1


def test_truncation_between_scan_and_read_is_not_read_as_the_old_file(tmp_path):
    rig = Rig(tmp_path)
    rig.lines("app.log", 0, 20)
    tailer = rig.pipeline.tailer
    scan = tailer.scan

    def scan_then_copytruncate(force=False):
        scan(force)
        tailer.scan = scan  # once: the file is known at its old size, not read yet
        shutil.copyfile(rig.logs / "app.log", rig.logs / "app.log.1")
        os.truncate(rig.logs / "app.log", 0)
        rig.lines("app.log", 100, 103)  # new content, shorter than what the scan saw

    tailer.scan = scan_then_copytruncate
    rig.pump(5)
    assert rig.seqs() == list(range(20)) + [100, 101, 102]
    assert rig.transport.deliveries == 23
    assert not (tmp_path / "state" / "dead-letter.jsonl").exists()


def test_a_log_file_replaced_by_a_symlink_is_not_followed_but_counted_once(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.lines("app.log", 0, 2)
    rig.pump()
    secret = tmp_path / "elsewhere.log"
    secret.write_text('{"message": "not ours to ship"}\n')
    (rig.logs / "app.log").unlink()
    os.symlink(secret, rig.logs / "app.log")
    rig.pump(5)
    assert rig.messages() == ["seq 0", "seq 1"]
    assert rig.pipeline.health()["symlinks_refused"] == ["app.log"]
    assert rig.pipeline.metrics.symlinks_refused._value.get() == 1
    assert sum("symbolic link" in r.getMessage() for r in caplog.records) == 1
    (rig.logs / "app.log").unlink()
    rig.lines("app.log", 2, 3)
    rig.pump()
    assert rig.pipeline.health()["symlinks_refused"] == []
    assert rig.messages() == ["seq 0", "seq 1", "seq 2"]
