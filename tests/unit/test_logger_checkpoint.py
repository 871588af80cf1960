"""Checkpoint: atomic, advanced only by acknowledgements, and a corrupt one never loses or duplicates."""
import hashlib
import json
import logging
import os

import pytest

from podvisor.sidecars.logger.checkpoint import CheckpointStore
from podvisor.sidecars.logger.fileid import Identity, IdentityRegistry
from podvisor.sidecars.logger.pipeline import Pipeline
from podvisor.sidecars.logger.sender import Response
from tests.fakes.logger import FakeClock, FakeWaiter, RecordingTransport, settings_for, unreachable

KEY = "0123456789abcdef"


def _registry(offset=10):
    return IdentityRegistry([Identity(KEY, 1, 2, 0, 4, "f" * 64, 8, "e" * 64, offset=offset, size=20,
                                      path="/logs/app.log")])


def _damage(path, how):
    good = path.read_bytes()
    doc = json.loads(good)
    if how == "bad-json":
        path.write_bytes(b"{not json")
    elif how == "zeroed":
        path.write_bytes(b"\0" * len(good))
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "checksum":
        doc["body"]["files"][KEY]["offset"] = 999
        path.write_text(json.dumps(doc))
    elif how == "bad-record":
        doc["body"]["files"][KEY]["offset"] = "ten"
        doc["checksum"] = "sha256:" + hashlib.sha256(
            json.dumps(doc["body"], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        path.write_text(json.dumps(doc))
    elif how == "version":
        doc["version"] = 99
        path.write_text(json.dumps(doc))
    elif how == "directory":
        path.unlink()
        path.mkdir()
    else:
        path.write_bytes(b"")


def test_save_is_atomic_keeps_the_previous_generation_and_round_trips(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint.json")
    store.save(_registry(10))
    (tmp_path / "checkpoint.json.tmp").write_bytes(b"\0" * 100)  # a crash mid-write leaves only the temp
    store.save(_registry(15))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "checkpoint.json.prev"]
    loaded = store.load()
    assert (loaded.status, loaded.generation) == ("ok", "current")
    assert loaded.registry.identities[KEY].offset == 15
    assert loaded.registry.identities[KEY].durable == 15  # what was loaded is what is on disk
    doc = json.loads((tmp_path / "checkpoint.json").read_text())
    assert doc["version"] == 1 and doc["checksum"].startswith("sha256:")
    previous = json.loads((tmp_path / "checkpoint.json.prev").read_text())
    assert previous["body"]["files"][KEY]["offset"] == 10
    assert (tmp_path / "checkpoint.json").stat().st_mode & 0o777 == 0o600


def test_a_crash_at_any_point_of_a_save_leaves_a_complete_checkpoint(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path / "checkpoint.json")
    store.save(_registry(10))
    real_replace = os.replace
    for crash_at in range(2):  # the .prev link, then the new checkpoint taking its place
        calls = []

        def replace(src, dst, crash_at=crash_at, calls=calls):
            if len(calls) == crash_at:
                raise SystemExit("killed")
            calls.append(dst)
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(SystemExit):
            store.save(_registry(99))
        monkeypatch.setattr(os, "replace", real_replace)
        loaded = store.load()
        assert (loaded.status, loaded.registry.identities[KEY].offset) == ("ok", 10)


def test_a_missing_current_generation_recovers_the_previous_one(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint.json")
    store.save(_registry(10))
    store.save(_registry(15))
    (tmp_path / "checkpoint.json").unlink()  # e.g. deleted by hand
    loaded = store.load()
    assert (loaded.status, loaded.generation) == ("missing", "previous")
    assert loaded.registry.identities[KEY].offset == 10


@pytest.mark.parametrize("damage", ["bad-json", "zeroed", "truncated", "checksum", "bad-record", "version",
                                    "empty", "directory"])
def test_corrupt_checkpoint_is_kept_aside_logged_and_the_previous_generation_used(tmp_path, caplog, damage):
    path = tmp_path / "checkpoint.json"
    store = CheckpointStore(path, wall=lambda: 0.0)
    store.save(_registry(10))
    store.save(_registry(15))
    _damage(path, damage)
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert (loaded.status, loaded.generation) == ("corrupt", "previous")
    assert loaded.registry.identities[KEY].offset == 10  # older: re-sends, absorbed by ids; never skips
    assert not path.exists()
    assert loaded.kept_as == tmp_path / "checkpoint.json.corrupt-19700101T000000Z"
    assert loaded.kept_as.exists()
    assert "corrupt" in caplog.text and "kept aside" in caplog.text and "previous" in caplog.text


def test_both_generations_corrupt_start_from_scratch_and_say_so(tmp_path, caplog):
    path = tmp_path / "checkpoint.json"
    store = CheckpointStore(path, wall=lambda: 0.0)
    store.save(_registry(10))
    store.save(_registry(15))
    _damage(path, "zeroed")
    _damage(tmp_path / "checkpoint.json.prev", "truncated")
    with caplog.at_level(logging.WARNING):
        loaded = store.load()
    assert (loaded.status, loaded.generation) == ("corrupt", "none")
    assert loaded.registry.identities == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json.corrupt-19700101T000000Z", "checkpoint.json.prev.corrupt-19700101T000000Z"]
    assert "reading every log file from its start" in caplog.text
    store.save(_registry(1))  # and the next save works as usual
    assert store.load().status == "ok"


def test_missing_checkpoint_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        loaded = CheckpointStore(tmp_path / "checkpoint.json").load()
    assert (loaded.status, loaded.generation) == ("missing", "none")
    assert "no usable checkpoint" in caplog.text


# -- through the pipeline: what the store ends up holding ----------------------------------------
def _setup(tmp_path, text=""):
    (tmp_path / "logs").mkdir()
    (tmp_path / "token").write_text("t")
    log = tmp_path / "logs" / "app.log"
    log.write_text(text)
    return log


def _pipeline(tmp_path, transport, clock, waiter=None, **overrides):
    return Pipeline(settings_for(tmp_path, **overrides), transport, clock=clock, wall=clock,
                    waiter=waiter or FakeWaiter(clock), threaded=False, hostname="h")


def _steps(pipeline, clock, n=2):
    for _ in range(n):
        clock.advance(1)
        pipeline.step()


def _offsets(tmp_path):
    registry = CheckpointStore(tmp_path / "state" / "checkpoint.json").load().registry
    return [i.offset for i in registry.identities.values()]


def test_checkpoint_advances_only_after_acknowledgement(tmp_path):
    _setup(tmp_path, "a\nb\n")
    clock = FakeClock()
    down = RecordingTransport([unreachable(), Response(503), Response(429), Response(500)])
    pipeline = _pipeline(tmp_path, down, clock, FakeWaiter(clock, cancel_after=3))
    _steps(pipeline, clock, 3)
    assert down.store == {} and _offsets(tmp_path) == [0]  # read, sent, refused: not delivered
    pipeline.tailer.close()
    up = RecordingTransport()
    pipeline = _pipeline(tmp_path, up, clock)
    _steps(pipeline, clock)
    assert [e["message"] for e in up.store.values()] == ["a", "b"]
    assert _offsets(tmp_path) == [4]


def test_a_new_file_identity_is_durable_before_any_of_its_entries_leaves(tmp_path):
    _setup(tmp_path, "first\n")
    clock = FakeClock()
    transport = RecordingTransport()
    seen = []

    def check(entries):  # runs inside the aggregator, as each batch is stored
        on_disk = json.loads((tmp_path / "state" / "checkpoint.json").read_text())["body"]["files"]
        seen.extend(e["id"].split(":")[1] in on_disk for e in entries)

    transport.stored_then = check
    pipeline = _pipeline(tmp_path, transport, clock)
    _steps(pipeline, clock)
    (tmp_path / "logs" / "later.log").write_text("second\n")
    _steps(pipeline, clock)
    assert seen == [True, True]


def test_crash_between_store_and_ack_resends_under_the_same_ids(tmp_path):
    _setup(tmp_path, "a\nb\n")
    clock = FakeClock()
    transport = RecordingTransport()

    def crash(entries):
        raise SystemExit("killed after the aggregator stored, before the ack")

    transport.stored_then = crash
    with pytest.raises(SystemExit):
        pipeline = _pipeline(tmp_path, transport, clock)
        _steps(pipeline, clock, 1)
    assert _offsets(tmp_path) == [0]
    transport.stored_then = None
    pipeline = _pipeline(tmp_path, transport, clock)
    _steps(pipeline, clock, 1)
    assert transport.deliveries == 4 and len(transport.store) == 2  # re-sent, absorbed by id
    assert _offsets(tmp_path) == [4]


@pytest.mark.parametrize("damage", [b"\0" * 64, b'{"version": 1, "chec', b"[]"])
@pytest.mark.parametrize("generations", ["current", "both"])
def test_corrupt_checkpoint_recovery_has_no_crash_loop_and_no_duplicates_at_the_store(tmp_path, damage,
                                                                                      generations):
    log = _setup(tmp_path)
    clock = FakeClock()
    transport = RecordingTransport()
    pipeline = _pipeline(tmp_path, transport, clock, batch_lines=10)
    for first in range(0, 50, 10):  # several acks, several checkpoint generations
        with log.open("a") as f:
            f.write("".join(f"line {n}\n" for n in range(first, first + 10)))
        _steps(pipeline, clock, 1)
    assert len(transport.store) == 50
    pipeline.tailer.close()  # killed
    state = tmp_path / "state"
    (state / "checkpoint.json").write_bytes(damage)
    if generations == "both":
        (state / "checkpoint.json.prev").write_bytes(damage)
    with log.open("a") as f:
        f.write("line 50\n")
    pipeline = _pipeline(tmp_path, transport, clock)  # starts: no exception, no exit
    _steps(pipeline, clock)
    assert [e["message"] for e in transport.store.values()] == [f"line {n}" for n in range(51)]
    resent = transport.deliveries - 51
    if generations == "both":
        assert resent == 50  # everything re-sent once, every duplicate absorbed by id
    else:
        assert 0 < resent <= 10  # only what was acknowledged after the previous generation
    assert len(list(state.glob("checkpoint.json*.corrupt-*"))) == (2 if generations == "both" else 1)
    assert _offsets(tmp_path) == [log.stat().st_size]
    recoveries = pipeline.metrics.registry.get_sample_value("podvisor_logger_checkpoint_recoveries_total",
                                                            {"cause": "corrupt"})
    assert recoveries == 1


def test_unwritable_checkpoint_holds_new_files_back_and_never_crashes(tmp_path, caplog):
    _setup(tmp_path, "a\n")
    clock = FakeClock()
    transport = RecordingTransport()
    pipeline = _pipeline(tmp_path, transport, clock)
    _steps(pipeline, clock)
    (tmp_path / "logs" / "new.log").write_text("b\n")
    (tmp_path / "state" / "checkpoint.json.tmp").mkdir()  # the temp file cannot be created
    with caplog.at_level(logging.ERROR):
        _steps(pipeline, clock)
    assert [e["message"] for e in transport.store.values()] == ["a"]  # b's key is not durable yet
    assert caplog.text.count("could not write checkpoint") == 1  # said once, retried every step
    (tmp_path / "state" / "checkpoint.json.tmp").rmdir()
    _steps(pipeline, clock)
    assert [e["message"] for e in transport.store.values()] == ["a", "b"]
