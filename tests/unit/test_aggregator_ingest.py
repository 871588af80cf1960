"""Ingest: POST /logs and /api/v1/ingest."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from tests.unit.test_aggregator_fixtures import entry, make_settings, post, state_of, token_of


def stored_ids(client, token) -> list[str]:
    reply = client.get("/logs?limit=1000", headers={"Authorization": f"Bearer {token}"})
    return [e["id"] for e in reply.json]


def test_single_entry_is_stored(client, token):
    reply = post(client, entry(1), token)
    assert reply.status_code == 202
    assert reply.json == {"ok": True, "received": 1, "stored": 1, "duplicates": 0, "rejected": 0,
                          "errors": []}
    assert stored_ids(client, token) == ["user:abc:1"]


def test_list_on_the_v1_alias(client, token):
    reply = post(client, [entry(i) for i in range(5)], token, path="/api/v1/ingest")
    assert reply.status_code == 202
    assert reply.json["stored"] == 5
    assert stored_ids(client, token) == [f"user:abc:{i}" for i in range(5)]


def test_gzip_body(client, token):
    reply = post(client, [entry(i) for i in range(3)], token, gzipped=True)
    assert reply.status_code == 202, reply.json
    assert reply.json["stored"] == 3


def test_multi_member_gzip(client, token):
    body = json.dumps([entry(1), entry(2)]).encode()
    data = gzip.compress(body[:10]) + gzip.compress(body[10:])
    reply = post(client, data, token, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 202, reply.json
    assert reply.json["stored"] == 2


def test_duplicates_are_counted_and_not_stored_twice(client, token):
    post(client, [entry(1), entry(2)], token)
    reply = post(client, [entry(2), entry(3), entry(3)], token)
    assert reply.json["stored"] == 1
    assert reply.json["duplicates"] == 2
    assert sorted(stored_ids(client, token)) == ["user:abc:1", "user:abc:2", "user:abc:3"]


def test_duplicates_survive_a_restart(tmp_path: Path):
    settings = make_settings(tmp_path)
    first = create_app(settings, start_background=False)
    token = token_of(first)
    assert post(first.test_client(), [entry(1), entry(2)], token).json["stored"] == 2
    state_of(first).close()

    second = create_app(settings, start_background=False)
    try:
        assert token_of(second) == token
        reply = post(second.test_client(), [entry(1), entry(2), entry(3)], token)
        assert (reply.json["stored"], reply.json["duplicates"]) == (1, 2)
        assert state_of(second).store.entry_count == 3
    finally:
        state_of(second).close()


def test_mixed_batch_stores_the_valid_part_and_names_the_bad_indexes(client, token):
    body = [
        entry(0),
        {"id": "bad-1", "message": 42},
        "not an object",
        entry(3),
        {"id": "x" * 201, "message": "long id"},
        {"id": "bad-5", "message": "m", "timestamp": "yesterday"},
        {"id": "bad-6", "message": "m", "level": 3},
        {"id": "bad-7"},
        {"id": "bad-8", "message": "m", "timestamp": 1714557600},
    ]
    reply = post(client, body, token)
    assert reply.status_code == 202
    result = reply.json
    assert (result["received"], result["stored"], result["rejected"]) == (9, 2, 7)
    errors = {e["index"]: e for e in result["errors"]}
    assert sorted(errors) == [1, 2, 4, 5, 6, 7, 8]
    assert errors[1]["id"] == "bad-1" and "message must be a string" in errors[1]["error"]
    assert errors[2]["id"] is None and "object" in errors[2]["error"]
    assert errors[4]["id"] is None and "200" in errors[4]["error"]
    assert "timestamp" in errors[5]["error"]
    assert "level" in errors[6]["error"]
    assert errors[7]["error"] == "message is required"
    assert "timestamp" in errors[8]["error"]
    assert stored_ids(client, token) == ["user:abc:0", "user:abc:3"]


def test_missing_id_and_timestamp_are_filled_in(client, token):
    reply = post(client, {"message": "no id here"}, token)
    assert reply.json["stored"] == 1
    [stored] = client.get("/logs", headers={"Authorization": f"Bearer {token}"}).json
    assert stored["message"] == "no id here"
    assert isinstance(stored["id"], str) and stored["id"]
    assert stored["timestamp"].endswith("Z")


def test_entry_size_limit(tmp_path: Path):
    app = create_app(make_settings(tmp_path, max_entry_bytes=1024), start_background=False)
    try:
        reply = post(app.test_client(), [entry(1), entry(2, message="x" * 2000)], token_of(app))
        assert reply.json["stored"] == 1
        assert reply.json["errors"][0]["index"] == 1
        assert "over the limit" in reply.json["errors"][0]["error"]
    finally:
        state_of(app).close()


def test_malformed_bodies_are_400_json(client, token):
    cases = [b"{not json", b'"a string"', b"42", b"[{}, {]", b"[{}] x", b"\xff\xfe\x00garbage"]
    for body in cases:
        reply = post(client, body, token)
        assert reply.status_code == 400, body
        assert reply.json["ok"] is False and reply.json["error"], body
    reply = post(client, b"not gzip at all", token, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 400
    assert "gzip" in reply.json["error"]
    truncated = gzip.compress(json.dumps([entry(1)]).encode())[:-8]
    reply = post(client, truncated, token, headers={"Content-Encoding": "gzip"})
    assert reply.status_code == 400


def test_missing_or_wrong_token_is_401_json(client, token):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        reply = client.post("/logs", data=json.dumps(entry(1)),
                            headers={"Content-Type": "application/json", **headers})
        assert reply.status_code == 401
        assert reply.json["ok"] is False
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_content_type_is_415_json(client, token):
    reply = client.post("/logs", data=json.dumps(entry(1)),
                        headers={"Content-Type": "text/plain", "Authorization": f"Bearer {token}"})
    assert reply.status_code == 415
    assert reply.json["ok"] is False
    reply = post(client, entry(1), token, headers={"Content-Encoding": "br"})
    assert reply.status_code == 415


def test_body_over_the_limit_is_413_raw_and_decompressed(tmp_path: Path):
    app = create_app(make_settings(tmp_path, max_body_bytes=64 * 1024, max_entry_bytes=4096),
                     start_background=False)
    client, token = app.test_client(), token_of(app)
    try:
        big = [entry(i, message="y" * 500) for i in range(200)]  # ~130 KB raw
        reply = post(client, big, token)
        assert reply.status_code == 413
        assert reply.json["ok"] is False

        # A gzip bomb: 8 MB of spaces compress to ~8 KB; refused without inflating it all.
        bomb = gzip.compress(b"[" + b" " * (8 * 1024 * 1024) + b"]")
        assert len(bomb) < 64 * 1024
        reply = post(client, bomb, token, headers={"Content-Encoding": "gzip"})
        assert reply.status_code == 413
        assert "decompressed" in reply.json["error"]

        # Under the limit both ways is fine.
        assert post(client, big[:10], token, gzipped=True).status_code == 202
    finally:
        state_of(app).close()


def test_ingest_metrics_count_outcomes(client, token):
    post(client, [entry(1), {"message": 1}], token)
    post(client, [entry(1)], token)
    post(client, b"{", token)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'aggregator_ingest_requests_total{status="202"} 2.0' in text
    assert 'aggregator_ingest_requests_total{status="400"} 1.0' in text
    assert "aggregator_entries_received_total 3.0" in text
    assert "aggregator_entries_stored_total 1.0" in text
    assert "aggregator_entries_duplicate_total 1.0" in text
    assert "aggregator_entries_rejected_total 1.0" in text


def test_a_deep_entry_or_a_number_out_of_range_never_costs_the_batch(client, token):
    deep = '{"id": "deep", "message": "d", "x": ' + "[" * 980 + "]" * 980 + "}"
    body = ("[" + json.dumps(entry(1)) + "," + deep + ',{"id": "far", "message": "f", "v": 1e400},'
            + json.dumps(entry(2)) + "]").encode()
    reply = post(client, body, token)
    assert reply.status_code == 202, reply.json
    assert (reply.json["stored"], reply.json["rejected"]) == (3, 1)
    assert reply.json["errors"] == [{"index": 1, "id": None, "error": "nesting deeper than 100"}]
    far = client.get("/logs?limit=10", headers={"Authorization": f"Bearer {token}"}).json
    assert [e["v"] for e in far if e["id"] == "far"] == ["1e400"]


@pytest.mark.parametrize("path", ["_fast_row", "_row"])
def test_an_unexpected_error_on_one_entry_is_that_entry_rejection_and_counted(app, client, token, monkeypatch,
                                                                              path):
    from podvisor.aggregator import validation

    real = getattr(validation, path)

    def broken(entry_, *args):
        text = bytes(entry_).decode() if path == "_fast_row" else json.dumps(entry_)
        if "user:abc:2" in text:
            raise KeyError("boom")
        return real(entry_, *args)

    monkeypatch.setattr(validation, path, broken)
    entries = [entry(1), entry(2), entry(3)]
    if path == "_row":  # entries without a timestamp take the general path, which fills it in
        for item in entries:
            del item["timestamp"]
    reply = post(client, entries, token)
    assert reply.status_code == 202
    assert reply.json["stored"] == 2 and reply.json["errors"][0]["index"] == 1
    assert "internal error" in reply.json["errors"][0]["error"]
    metrics = state_of(app).metrics
    assert metrics.entries_failed._value.get() == 1


def test_a_row_the_database_refuses_is_refused_alone(app, client, token, monkeypatch):
    store = state_of(app).store
    real = store.insert

    def insert(rows, timeout=30.0):
        if any(row[0] == "user:abc:2" for row in rows):
            raise RuntimeError("refused by the database")
        return real(rows, timeout)

    monkeypatch.setattr(store, "insert", insert)
    reply = post(client, [entry(1), entry(2), entry(3)], token)
    assert reply.status_code == 202
    assert (reply.json["stored"], reply.json["rejected"]) == (2, 1)
    assert reply.json["errors"][0]["index"] == 1 and "refused by the database" in reply.json["errors"][0]["error"]
