"""The Elasticsearch `_bulk` endpoint: NDJSON pairs in, the answer shape bulk clients check out."""
from __future__ import annotations

import base64
import gzip
import json

from podvisor.aggregator.credentials import mint
from tests.unit.test_aggregator_fixtures import state_of


def ndjson(*objects) -> bytes:
    return b"".join((o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n" for o in objects)


def bulk(client, body: bytes, auth: str | None, path: str = "/_bulk", gzipped: bool = False):
    headers = {"Content-Type": "application/x-ndjson"}
    if auth is not None:
        headers["Authorization"] = auth
    if gzipped:
        body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
    return client.post(path, data=body, headers=headers)


def basic(password: str, user: str = "rsyslog") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def stored(client, token):
    return client.get("/api/v1/logs?limit=100&order=asc", headers={"Authorization": f"Bearer {token}"}).json


def test_index_and_create_actions_are_stored_and_answered_per_item(client, token):
    body = ndjson(
        {"index": {"_index": "logs", "_id": "rs:1"}},
        {"msg": "from rsyslog", "@timestamp": "2024-05-01T10:00:00.000Z", "host": "h1"},
        {"create": {"_id": "rs:2"}},
        {"message": "second", "timestamp": "2024-05-01T10:00:01Z", "level": "WARNING"},
        {"index": {}},
        {"message": "no id given"},
    )
    reply = bulk(client, body, f"Bearer {token}", path="/podvisor/_bulk")
    assert reply.status_code == 200, reply.data
    answer = reply.json
    assert answer["errors"] is False and isinstance(answer["took"], int)
    ops = [next(iter(item)) for item in answer["items"]]
    assert ops == ["index", "create", "index"]
    items = [next(iter(item.values())) for item in answer["items"]]
    assert [i["status"] for i in items] == [201, 201, 201]
    assert [i["_index"] for i in items] == ["logs", "podvisor", "podvisor"]
    assert items[0]["_id"] == "rs:1" and items[2]["_id"]
    entries = stored(client, token)["entries"]
    assert [(e["id"], e["message"], e["timestamp"]) for e in entries[:2]] == [
        ("rs:1", "from rsyslog", "2024-05-01T10:00:00.000Z"), ("rs:2", "second", "2024-05-01T10:00:01Z")]
    assert entries[0]["host"] == "h1" and "msg" not in entries[0]
    assert entries[2]["id"] == items[2]["_id"]
    by_level = client.get("/api/v1/logs?level=warning", headers={"Authorization": f"Bearer {token}"}).json
    assert [e["id"] for e in by_level["entries"]] == ["rs:2"]


def test_a_resent_bulk_is_stored_once_and_bad_items_fail_alone(client, token):
    body = ndjson({"index": {"_id": "a"}}, {"message": "one"}, {"index": {"_id": "b"}}, b'{"message": NaN-ish}',
                  {"delete": {"_id": "a"}}, {"update": {"_id": "a"}}, {"doc": {"message": "x"}},
                  {"index": {"_id": "c"}}, [1, 2], {"index": {"_id": "d"}}, {"level": "info"})
    first = bulk(client, body, f"Bearer {token}").json
    assert first["errors"] is True
    statuses = [(op, item["status"]) for entry in first["items"] for op, item in entry.items()]
    assert statuses == [("index", 201), ("index", 400), ("delete", 400), ("update", 400), ("index", 400),
                        ("index", 400)]
    reasons = [item["error"]["reason"] for entry in first["items"] for item in entry.values() if "error" in item]
    assert "not JSON" in reasons[0] and "append-only" in reasons[1] and "object" in reasons[3]
    assert "message" in reasons[4]
    again = bulk(client, body, f"Bearer {token}").json
    assert [e for e in again["items"] if e.get("index", {}).get("_id") == "a"][0]["index"]["status"] == 201
    assert [e["id"] for e in stored(client, token)["entries"]] == ["a"]
    metrics = state_of(client.application).metrics
    assert metrics.entries_rejected._value.get() == 10 and metrics.entries_duplicate._value.get() == 1


def test_a_logger_credential_as_basic_password_or_api_key_stamps_its_pod(client, token):
    cred = mint(token, "user", "user-service")
    body = ndjson({"index": {"_id": "user:f:0"}}, {"message": "m0", "pod": "other"},
                  {"index": {"_id": "order:f:0"}}, {"message": "not my pod"},
                  {"index": {}}, {"message": "generated id", "id": 7})
    reply = bulk(client, body, basic(cred), gzipped=True)
    assert reply.status_code == 200, reply.data
    items = [next(iter(i.values())) for i in reply.json["items"]]
    assert [i["status"] for i in items] == [201, 400, 201] and "'user:'" in items[1]["error"]["reason"]
    api_key = "ApiKey " + base64.b64encode(f"id1:{cred}".encode()).decode()
    assert bulk(client, ndjson({"index": {"_id": "user:f:9"}}, {"message": "m9"}), api_key).json["errors"] is False
    assert bulk(client, ndjson({"index": {}}, {"message": "raw key"}), f"ApiKey {cred}").status_code == 200
    entries = stored(client, token)["entries"]
    assert {e["pod"] for e in entries} == {"user"} and {e["service_name"] for e in entries} == {"user-service"}
    assert entries[0]["app_pod"] == "other" and entries[1]["app_id"] == 7 and entries[1]["id"].startswith("user:")


def test_no_credential_or_a_wrong_one_is_401_and_basic_auth_is_only_for_bulk(client, token):
    body = ndjson({"index": {}}, {"message": "x"})
    assert bulk(client, body, None).status_code == 401
    assert bulk(client, body, basic("wrong")).status_code == 401
    assert bulk(client, body, "ApiKey d3Jvbmc=").status_code == 401
    logs = client.post("/logs", data=b'[{"message": "x"}]',
                       headers={"Content-Type": "application/json", "Authorization": basic(token)})
    assert logs.status_code == 401


def test_a_body_that_is_not_bulk_is_a_clear_400_and_stores_nothing(client, token):
    for body, words in ((b'{"index": {}}\n', "no document line"), (b'{"frobnicate": {}}\n{}\n', "unknown action"),
                        (b"not json\n", "not a JSON action"), (b'{"index": {}, "create": {}}\n{}\n', "one action")):
        reply = bulk(client, body, f"Bearer {token}")
        assert reply.status_code == 400 and reply.json["ok"] is False and words in reply.json["error"], reply.json
    assert stored(client, token)["entries"] == []


def test_documents_stored_as_received_or_rebuilt_answer_alike(client, token):
    cred = mint(token, "user", "user-service")
    common = {"message": "as received", "timestamp": "2024-05-01T10:00:00Z", "level": "Info"}
    body = ndjson({"index": {"_id": "user:c:1"}}, common,
                  {"index": {"_id": "user:c:2"}}, {**common, "message": "rebuilt", "pod": "elsewhere"},
                  {"index": {"_id": "user:c:3"}}, b'{"message": "bad \xff byte", "timestamp": "2024-05-01T10:00:00Z"}',
                  {"index": {"_id": "user:c:4"}}, {**common, "message": "after the bad one"},
                  {"index": {"_id": "order:c:5"}}, {**common, "message": "another pod's id"})
    answer = bulk(client, body, f"Bearer {cred}").json
    assert [next(iter(i.values()))["status"] for i in answer["items"]] == [201, 201, 400, 201, 400]
    assert "'user:'" in answer["items"][4]["index"]["error"]["reason"]
    entries = {e["id"]: e for e in stored(client, token)["entries"]}
    assert set(entries) == {"user:c:1", "user:c:2", "user:c:4"}
    for entry in entries.values():
        assert (entry["pod"], entry["service_name"], entry["timestamp"]) == ("user", "user-service",
                                                                           "2024-05-01T10:00:00Z")
    assert entries["user:c:2"]["app_pod"] == "elsewhere"
    by_level = client.get("/api/v1/logs?level=info", headers={"Authorization": f"Bearer {token}"}).json
    assert len(by_level["entries"]) == 3, "the level is indexed lower-cased on both paths"
