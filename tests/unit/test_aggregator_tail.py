"""Live tail: the SSE generator and GET /api/v1/tail."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.query import LogQuery, parse_search
from podvisor.aggregator.views.tail import stream_events
from tests.unit.test_aggregator_fixtures import entry, insert_entries, make_settings, post, state_of, token_of


def event_ids(chunk: str) -> list[int]:
    return [int(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")]


def test_stream_sends_backlog_then_wakes_on_commit(store):
    insert_entries(store, [entry(i) for i in range(3)])
    events = stream_events(store, LogQuery(), after=1, heartbeat=30, stop=lambda: False)
    assert next(events).startswith("retry: ")
    backlog = next(events)
    assert event_ids(backlog) == [2, 3]
    assert '"id":"user:abc:2"' in backlog and backlog.endswith("\n\n")

    writer = threading.Thread(target=insert_entries, args=(store, [entry(10)]))
    started = time.monotonic()
    writer.start()
    chunk = next(events)  # blocks until the writer's commit notifies, not until the heartbeat
    writer.join()
    assert event_ids(chunk) == [4]
    assert time.monotonic() - started < 10


def test_stream_filters_and_sends_heartbeats(store):
    events = stream_events(store, LogQuery(levels=("error",), text=parse_search("boom")), after=0,
                           heartbeat=0.05, stop=lambda: False)
    next(events)
    insert_entries(store, [entry(1, level="info", message="boom"), entry(2, level="error", message="quiet"),
                   entry(3, level="ERROR", message="boom again")])
    assert event_ids(next(events)) == [3]
    assert next(events) == ": heartbeat\n\n"


def test_stream_ends_when_stopped(store):
    stopped = threading.Event()
    events = stream_events(store, LogQuery(), after=0, heartbeat=30, stop=stopped.is_set)
    next(events)
    stopper = threading.Thread(target=lambda: (stopped.set(), store.wake()))
    stopper.start()
    with pytest.raises(StopIteration):
        next(events)
    stopper.join()


@pytest.fixture
def tail_app(tmp_path: Path):
    app = create_app(make_settings(tmp_path, tail_max_streams=1, tail_heartbeat=0.05),
                     start_background=False)
    yield app
    state_of(app).close()


def read_until_event(response, want: int, limit: int = 50) -> list[int]:
    seen: list[int] = []
    for _, chunk in zip(range(limit), response.response, strict=False):
        seen.extend(event_ids(chunk.decode() if isinstance(chunk, bytes) else chunk))
        if want in seen:
            break
    return seen


def test_tail_endpoint_resumes_after_last_event_id_and_caps_streams(tail_app):
    client, token = tail_app.test_client(), token_of(tail_app)
    post(client, [entry(i) for i in range(5)], token)
    tails = state_of(tail_app).tails

    response = client.get("/api/v1/tail", headers={"Last-Event-ID": "3"}, buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    assert read_until_event(response, 5) == [4, 5]
    assert tails.active == 1

    refused = tail_app.test_client().get("/api/v1/tail", buffered=False)
    assert refused.status_code == 503
    assert refused.json["ok"] is False

    post(client, [entry(9)], token)
    assert read_until_event(response, 6) == [6]
    response.close()
    assert tails.active == 0

    again = client.get("/api/v1/tail?since_id=4&level=info", buffered=False)
    assert again.status_code == 200
    assert read_until_event(again, 6) == [5, 6]
    again.close()
    assert tails.active == 0


def test_tail_takes_several_pods_and_leaves_probes_out_when_asked(tail_app):
    client, token = tail_app.test_client(), token_of(tail_app)
    post(client, [entry(0, pod="user"), entry(1, pod="order", probe=True), entry(2, pod="order"),
                  entry(3, pod="product"), entry(4, pod="user")], token)
    response = client.get("/api/v1/tail?since_id=0&pod=user,order&probes=exclude", buffered=False)
    assert response.status_code == 200
    assert read_until_event(response, 5) == [1, 3, 5]
    response.close()
    assert client.get("/api/v1/tail?probes=maybe").status_code == 400


def test_tail_rejects_bad_positions(tail_app):
    client = tail_app.test_client()
    assert client.get("/api/v1/tail?since_id=-1").status_code == 400
    assert client.get("/api/v1/tail", headers={"Last-Event-ID": "abc"}).status_code == 400
    assert state_of(tail_app).tails.active == 0
