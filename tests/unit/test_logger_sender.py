"""Shipping a batch: retries with backoff, 413 splits, dead letters, tokens; nothing dropped, no sockets."""
import gzip
import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from podvisor.sidecars.logger.batcher import Item
from podvisor.sidecars.logger.deadletter import DeadLetter
from podvisor.sidecars.logger.metrics import LoggerMetrics
from podvisor.sidecars.logger.sender import BACKOFF_CAP, Cancelled, Response, Sender
from tests.fakes.logger import FakeWaiter, RecordingTransport, unreachable


def _item(n, size=10):
    payload = json.dumps({"id": f"p:k:{n}", "message": "x" * size}).encode()
    return Item(f"p:k:{n}", "k", n + 1, payload, 0.0)


# -- sender ----------------------------------------------------------------------------------------
def _sender(tmp_path, transport, token="s3cret", waiter=None, **backoff):
    if token is not None:
        (tmp_path / "token").write_text(token + "\n")
    metrics = LoggerMetrics(CollectorRegistry())
    waiter = waiter or FakeWaiter()
    sender = Sender(transport, "http://agg:8080/", tmp_path / "token", DeadLetter(tmp_path / "dead.jsonl"),
                    metrics, waiter, rng=lambda: 1.0, **backoff)
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


def test_backoff_knobs_set_the_first_delay_and_the_cap(tmp_path):
    transport = RecordingTransport([Response(503)] * 6)
    sender, _, waiter = _sender(tmp_path, transport, backoff_initial=0.05, backoff_max=0.3)
    sender.send([_item(0)])
    assert waiter.delays == [0.05, 0.1, 0.2, 0.3, 0.3, 0.3]


def test_redirects_and_timeouts_are_retried_not_followed_or_dropped(tmp_path):
    transport = RecordingTransport([Response(302), Response(408), Response(307)])
    sender, metrics, waiter = _sender(tmp_path, transport)
    result = sender.send([_item(0)])
    assert len(transport.requests) == 4 and list(transport.store) == ["p:k:0"]
    assert len(result.done) == 1 and result.dead == 0 and len(waiter.delays) == 3


def test_reachability_is_tracked_for_health_and_the_up_gauge(tmp_path):
    transport = RecordingTransport([unreachable(), unreachable()])
    seen = []
    sender, metrics, waiter = _sender(tmp_path, transport)
    waiter.wait = lambda seconds: seen.append((sender.reachable, _value(metrics, "aggregator_up")))
    assert sender.reachable is None
    sender.send([_item(0)])
    assert seen == [(False, 0.0), (False, 0.0)]
    assert sender.reachable is True and _value(metrics, "aggregator_up") == 1.0
    assert sender.attempts == 3


def test_cancel_during_retries_returns_what_was_completed(tmp_path):
    def too_big(entries):
        return Response(413, b'{"ok": false, "error": "too big"}') if len(entries) > 2 else None

    transport = RecordingTransport()
    original = transport.post

    def post(url, body, headers, timeout):
        entries = json.loads(gzip.decompress(body))
        if len(entries) > 2:
            return too_big(entries)
        if entries[0]["id"] == "p:k:2":
            return Response(503)  # the second half cannot be delivered before the deadline
        return original(url, body, headers, timeout)

    transport.post = post
    sender, _, _ = _sender(tmp_path, transport, waiter=FakeWaiter(cancel_after=2))
    with pytest.raises(Cancelled) as exc:
        sender.send([_item(n) for n in range(4)])
    result = exc.value.result
    assert [item.id for item in result.done] == ["p:k:0", "p:k:1"]  # acknowledged, in order
    assert sorted(transport.store) == ["p:k:0", "p:k:1"]


def test_a_2xx_without_a_readable_body_still_counts_as_stored(tmp_path):
    transport = RecordingTransport([Response(202, b"accepted")])
    sender, metrics, _ = _sender(tmp_path, transport)
    result = sender.send([_item(0), _item(1)])
    assert len(result.done) == 2 and result.dead == 0 and _dead(tmp_path) == []
    assert _value(metrics, "lines_shipped_total") == 2


def test_errors_are_matched_by_id_when_the_index_is_missing(tmp_path):
    reply = {"ok": True, "received": 2, "stored": 1, "duplicates": 0, "rejected": 1,
             "errors": [{"id": "p:k:1", "error": "timestamp is not ISO 8601"}, "junk", {"index": 99}]}
    transport = RecordingTransport([Response(202, json.dumps(reply).encode())])
    sender, metrics, _ = _sender(tmp_path, transport)
    result = sender.send([_item(0), _item(1)])
    assert result.dead == 1 and [d["id"] for d in _dead(tmp_path)] == ["p:k:1"]
    assert _value(metrics, "lines_rejected_total") == 1 and _value(metrics, "lines_shipped_total") == 1


def test_an_empty_token_file_is_waited_for_like_a_missing_one(tmp_path):
    transport = RecordingTransport()
    sender, _, waiter = _sender(tmp_path, transport, token="  ")
    waits = []

    def wait(seconds):
        waits.append(seconds)
        (tmp_path / "token").write_text("now\n")

    waiter.wait = wait
    sender.send([_item(0)])
    assert len(waits) == 1 and transport.requests[0]["headers"]["Authorization"] == "Bearer now"
