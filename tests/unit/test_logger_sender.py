"""Batching and shipping: limits, retries with backoff, 413 splits, dead letters, tokens; nothing dropped."""
import gzip
import json
import logging

from prometheus_client import CollectorRegistry

from sidecars.logger.batcher import Batcher, Item, body_size
from sidecars.logger.deadletter import DeadLetter
from sidecars.logger.fakes import FakeClock, FakeWaiter, RecordingTransport, unreachable
from sidecars.logger.metrics import LoggerMetrics
from sidecars.logger.sender import BACKOFF_CAP, Response, Sender


def _item(n, size=10):
    payload = json.dumps({"id": f"p:k:{n}", "message": "x" * size}).encode()
    return Item(f"p:k:{n}", "k", n + 1, payload, 0.0)


# -- batcher ---------------------------------------------------------------------------------------
def test_batch_cut_by_count():
    batcher = Batcher(max_lines=3, max_bytes=1 << 20, max_age=60, clock=FakeClock())
    for n in range(7):
        batcher.add(_item(n))
    assert [i.id for i in batcher.take()] == ["p:k:0", "p:k:1", "p:k:2"]
    assert len(batcher.take()) == 3
    assert batcher.take() is None  # one left, not full, not old
    assert len(batcher.take(force=True)) == 1 and len(batcher) == 0 and batcher.bytes == 0


def test_batch_cut_by_bytes_and_oversized_entry_goes_alone():
    items = [_item(n, size=100) for n in range(5)]
    limit = body_size(items[:2]) + 5
    batcher = Batcher(max_lines=1000, max_bytes=limit, max_age=60, clock=FakeClock())
    for item in items:
        batcher.add(item)
    first = batcher.take()
    assert len(first) == 2 and body_size(first) <= limit
    huge = Batcher(max_lines=1000, max_bytes=50, max_age=60, clock=FakeClock())
    huge.add(_item(0, size=500))
    huge.add(_item(1))
    assert [i.id for i in huge.take()] == ["p:k:0"]


def test_batch_cut_by_age_of_the_oldest_entry():
    clock = FakeClock()
    batcher = Batcher(max_lines=1000, max_bytes=1 << 20, max_age=0.2, clock=clock)
    batcher.add(_item(0))
    clock.advance(0.1)
    batcher.add(_item(1))
    assert batcher.take() is None
    clock.advance(0.15)
    assert len(batcher.take()) == 2


# -- sender ----------------------------------------------------------------------------------------
def _sender(tmp_path, transport, token="s3cret", waiter=None):
    if token is not None:
        (tmp_path / "token").write_text(token + "\n")
    metrics = LoggerMetrics(CollectorRegistry())
    waiter = waiter or FakeWaiter()
    sender = Sender(transport, "http://agg:8080/", tmp_path / "token", DeadLetter(tmp_path / "dead.jsonl"),
                    metrics, waiter, rng=lambda: 1.0)
    return sender, metrics, waiter


def _value(metrics, name, **labels):
    return metrics.registry.get_sample_value("podvisor_logger_" + name, labels or None)


def _dead(tmp_path):
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_posts_gzip_json_with_bearer_token(tmp_path):
    transport = RecordingTransport()
    sender, metrics, _ = _sender(tmp_path, transport)
    result = sender.send([_item(0), _item(1)])
    request = transport.requests[0]
    assert request["url"] == "http://agg:8080/logs"
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert [e["id"] for e in request["entries"]] == ["p:k:0", "p:k:1"]
    assert len(result.done) == 2 and result.dead == 0
    assert _value(metrics, "lines_shipped_total") == 2 and _value(metrics, "batches_total") == 1


def test_retries_with_capped_exponential_backoff_and_never_drops(tmp_path):
    failures = [unreachable(), Response(503), Response(429), Response(500)] * 5
    transport = RecordingTransport(failures)
    sender, metrics, waiter = _sender(tmp_path, transport)
    result = sender.send([_item(0)])
    assert list(transport.store) == ["p:k:0"] and len(result.done) == 1
    assert len(waiter.delays) == 20
    assert waiter.delays[:4] == [0.2, 0.4, 0.8, 1.6]  # rng=1.0: the top of the jitter range
    assert max(waiter.delays) == BACKOFF_CAP
    assert _value(metrics, "retries_total", reason="connection") == 5
    assert _value(metrics, "retries_total", reason="503") == 5
    assert _value(metrics, "retries_total", reason="429") == 5
    assert sender.reachable is True


def test_jitter_spreads_delays(tmp_path):
    transport = RecordingTransport([Response(503)] * 3)
    sender, _, waiter = _sender(tmp_path, transport)
    sender._rng = lambda: 0.0
    sender.send([_item(0)])
    assert waiter.delays == [0.1, 0.2, 0.4]  # half the nominal delay at the bottom of the range


def test_413_splits_until_batches_fit_then_dead_letters_a_single_oversized_entry(tmp_path):
    def limit(entries):
        if len(entries) > 2 or any(len(e["message"]) > 100 for e in entries):
            return Response(413, b'{"ok": false, "error": "body too large"}')
        return None

    transport = RecordingTransport()
    original = transport.post

    def post(url, body, headers, timeout):
        reply = limit(json.loads(gzip.decompress(body)))
        return reply if reply is not None else original(url, body, headers, timeout)

    transport.post = post
    sender, metrics, _ = _sender(tmp_path, transport)
    items = [_item(n) for n in range(5)] + [_item(5, size=500)] + [_item(6)]
    result = sender.send(items)
    assert sorted(transport.store) == sorted(f"p:k:{n}" for n in (0, 1, 2, 3, 4, 6))
    assert len(result.done) == 7 and result.dead == 1
    (dead,) = _dead(tmp_path)
    assert dead["id"] == "p:k:5" and "413" in dead["reason"] and "body too large" in dead["reason"]
    assert _value(metrics, "lines_dead_lettered_total") == 1


def test_per_entry_errors_go_to_dead_letter_and_the_rest_count_as_shipped(tmp_path):
    reply = {"ok": True, "received": 3, "stored": 1, "duplicates": 1, "rejected": 1,
             "errors": [{"index": 1, "id": "p:k:1", "error": "message must be a string"}]}
    transport = RecordingTransport([Response(202, json.dumps(reply).encode())])
    sender, metrics, _ = _sender(tmp_path, transport)
    result = sender.send([_item(0), _item(1), _item(2)])
    assert len(result.done) == 3 and result.dead == 1
    (dead,) = _dead(tmp_path)
    assert dead["id"] == "p:k:1" and dead["reason"] == "rejected: message must be a string"
    assert dead["message"] == "x" * 10  # the entry itself, plus the reason
    assert _value(metrics, "lines_shipped_total") == 1
    assert _value(metrics, "lines_duplicate_total") == 1
    assert _value(metrics, "lines_rejected_total") == 1


def test_401_rereads_the_token_file(tmp_path):
    transport = RecordingTransport([Response(401)])
    sender, metrics, waiter = _sender(tmp_path, transport, token="old")
    waiter.wait = lambda seconds: (tmp_path / "token").write_text("rotated")
    sender.send([_item(0)])
    assert [r["headers"]["Authorization"] for r in transport.requests] == ["Bearer old", "Bearer rotated"]
    assert list(transport.store) == ["p:k:0"]
    assert _value(metrics, "retries_total", reason="unauthorized") == 1


def test_waits_for_a_token_file_that_does_not_exist_yet(tmp_path, caplog):
    transport = RecordingTransport()
    waits = []

    def wait(seconds):
        waits.append(seconds)
        if len(waits) == 3:  # the aggregator starts and creates its token
            (tmp_path / "token").write_text("fresh")

    sender, _, waiter = _sender(tmp_path, transport, token=None)
    waiter.wait = wait
    with caplog.at_level(logging.WARNING):
        sender.send([_item(0)])
    assert len(waits) == 3 and transport.requests[0]["headers"]["Authorization"] == "Bearer fresh"
    assert caplog.text.count("not readable yet") == 1  # said clearly, once


def test_other_4xx_dead_letters_the_batch_and_logs_an_error(tmp_path, caplog):
    transport = RecordingTransport([Response(400, b'{"ok": false, "error": "bad gzip"}')])
    sender, metrics, _ = _sender(tmp_path, transport)
    with caplog.at_level(logging.ERROR):
        result = sender.send([_item(0), _item(1)])
    assert len(result.done) == 2 and result.dead == 2
    assert [d["reason"] for d in _dead(tmp_path)] == ["HTTP 400: bad gzip"] * 2
    assert "refused a batch" in caplog.text
    assert _value(metrics, "lines_dead_lettered_total") == 2
