"""Checkpoint: atomic, advanced only by acknowledgements, and a corrupt one never loses or duplicates."""
import json
import logging

import pytest

from sidecars.logger.checkpoint import CheckpointStore
from sidecars.logger.fakes import FakeClock, FakeWaiter, RecordingTransport, settings_for, unreachable
from sidecars.logger.fileid import Identity, IdentityRegistry
from sidecars.logger.pipeline import Pipeline
from sidecars.logger.sender import Response


def _registry(offset=10):
    return IdentityRegistry([Identity("0123456789abcdef", 1, 2, 0, 4, "f" * 64, 8, "e" * 64, offset=offset,
                                      size=20, path="/logs/app.log")])


def test_save_is_atomic_and_round_trips(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoint.json")
    store.save(_registry(10))
    (tmp_path / "checkpoint.json.tmp").write_bytes(b"\0" * 100)  # a crash mid-write leaves only the temp
    store.save(_registry(15))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json"]
    loaded = store.load()
    assert loaded.status == "ok"
    assert loaded.registry.identities["0123456789abcdef"].offset == 15
    doc = json.loads((tmp_path / "checkpoint.json").read_text())
    assert doc["version"] == 1 and doc["checksum"].startswith("sha256:")


@pytest.mark.parametrize("damage", ["bad-json", "zeroed", "truncated", "checksum", "bad-record", "empty"])
def test_corrupt_checkpoint_is_kept_aside_and_logged(tmp_path, caplog, damage):
    path = tmp_path / "checkpoint.json"
    CheckpointStore(path).save(_registry())
    good = path.read_bytes()
    doc = json.loads(good)
    if damage == "bad-json":
        path.write_bytes(b"{not json")
    elif damage == "zeroed":
        path.write_bytes(b"\0" * len(good))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "checksum":
        doc["body"]["files"]["0123456789abcdef"]["offset"] = 999
        path.write_text(json.dumps(doc))
    elif damage == "bad-record":
        doc["body"]["files"]["0123456789abcdef"]["offset"] = "ten"
        doc["checksum"] = "sha256:" + __import__("hashlib").sha256(
            json.dumps(doc["body"], sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        path.write_text(json.dumps(doc))
    else:
        path.write_bytes(b"")
    with caplog.at_level(logging.ERROR):
        loaded = CheckpointStore(path, wall=lambda: 0.0).load()
    assert loaded.status == "corrupt" and loaded.registry.identities == {}
    assert not path.exists()
    assert loaded.kept_as == tmp_path / "checkpoint.json.corrupt-19700101T000000Z"
    assert loaded.kept_as.exists()
    assert "corrupt" in caplog.text and "kept aside" in caplog.text


def test_missing_checkpoint_is_logged(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        assert CheckpointStore(tmp_path / "checkpoint.json").load().status == "missing"
    assert "no checkpoint" in caplog.text


def _pipeline(tmp_path, transport, clock, waiter=None):
    return Pipeline(settings_for(tmp_path), transport, clock=clock, wall=clock,
                    waiter=waiter or FakeWaiter(clock), threaded=False, hostname="h")


def _offsets(tmp_path):
    registry = CheckpointStore(tmp_path / "state" / "checkpoint.json").load().registry
    return [i.offset for i in registry.identities.values()]


def test_checkpoint_advances_only_after_acknowledgement(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "token").write_text("t")
    (tmp_path / "logs" / "app.log").write_text("a\nb\n")
    clock = FakeClock()
    down = RecordingTransport([unreachable(), Response(503), Response(429), Response(500)])
    pipeline = _pipeline(tmp_path, down, clock, FakeWaiter(clock, cancel_after=3))
    for _ in range(3):
        clock.advance(1)
        pipeline.step()
    assert down.store == {} and _offsets(tmp_path) == [0]  # read, sent, refused: not delivered
    pipeline.tailer.close()
    up = RecordingTransport()
    pipeline = _pipeline(tmp_path, up, clock)
    for _ in range(2):
        clock.advance(1)
        pipeline.step()
    assert [e["message"] for e in up.store.values()] == ["a", "b"]
    assert _offsets(tmp_path) == [4]


def test_crash_between_store_and_ack_resends_under_the_same_ids(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "token").write_text("t")
    (tmp_path / "logs" / "app.log").write_text("a\nb\n")
    clock = FakeClock()
    transport = RecordingTransport()

    def crash(entries):
        raise SystemExit("killed after the aggregator stored, before the ack")

    transport.stored_then = crash
    with pytest.raises(SystemExit):
        pipeline = _pipeline(tmp_path, transport, clock)
        clock.advance(1)
        pipeline.step()
    assert _offsets(tmp_path) == [0]
    transport.stored_then = None
    pipeline = _pipeline(tmp_path, transport, clock)
    clock.advance(1)
    pipeline.step()
    assert transport.deliveries == 4 and len(transport.store) == 2  # re-sent, absorbed by id
    assert _offsets(tmp_path) == [4]


@pytest.mark.parametrize("damage", [b"\0" * 64, b'{"version": 1, "chec', b"[]"])
def test_corrupt_checkpoint_recovery_rereads_without_duplicates_at_the_store(tmp_path, damage):
    (tmp_path / "logs").mkdir()
    (tmp_path / "token").write_text("t")
    log = tmp_path / "logs" / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(50)))
    clock = FakeClock()
    transport = RecordingTransport()
    pipeline = _pipeline(tmp_path, transport, clock)
    for _ in range(2):
        clock.advance(1)
        pipeline.step()
    pipeline.tailer.close()
    (tmp_path / "state" / "checkpoint.json").write_bytes(damage)
    with log.open("a") as f:
        f.write("line 50\n")
    pipeline = _pipeline(tmp_path, transport, clock)
    for _ in range(2):
        clock.advance(1)
        pipeline.step()
    assert [e["message"] for e in transport.store.values()] == [f"line {n}" for n in range(51)]
    assert transport.deliveries == 101  # everything re-sent once, every duplicate absorbed by id
    assert len(list((tmp_path / "state").glob("checkpoint.json.corrupt-*"))) == 1
    assert _offsets(tmp_path) == [log.stat().st_size]
