"""POST /v1/logs: an OTLP/HTTP JSON export, mapped to podvisor's fields and queryable like any entry."""
from __future__ import annotations

import gzip
import json

from podvisor.aggregator.credentials import mint
from podvisor.aggregator.otlp import entries
from tests.unit.test_aggregator_fixtures import post

NANOS = 1714557600_123_000_000  # 2024-05-01T10:00:00.123Z


def export(*records: dict, service: str = "checkout", host: str = "web-3", pod: str | None = "checkout-7") -> dict:
    resource = [{"key": "service.name", "value": {"stringValue": service}},
                {"key": "host.name", "value": {"stringValue": host}},
                {"key": "deployment.environment", "value": {"stringValue": "staging"}},
                {"key": "telemetry.sdk.language", "value": {"stringValue": "python"}}]
    if pod:
        resource.append({"key": "k8s.pod.name", "value": {"stringValue": pod}})
    return {"resourceLogs": [{"resource": {"attributes": resource},
                              "scopeLogs": [{"scope": {"name": "checkout.payments"}, "logRecords": list(records)}]}]}


def record(message, **extra) -> dict:
    body = {"stringValue": message} if isinstance(message, str) else message
    return {"timeUnixNano": str(NANOS), "severityNumber": 17, "severityText": "ERROR", "body": body,
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "attributes": [{"key": "http.status_code", "value": {"intValue": "502"}},
                           {"key": "retry", "value": {"boolValue": True}}], **extra}


def test_an_export_is_stored_with_podvisor_fields_and_found_by_the_api(client, token):
    reply = post(client, export(record("payment gateway timed out"), record({"kvlistValue": {"values": [
        {"key": "k", "value": {"doubleValue": 1.5}}]}}, severityText="", severityNumber=9)), token, path="/v1/logs")
    assert reply.status_code == 200, reply.get_data(as_text=True)
    assert reply.json == {}  # a full success: no partialSuccess
    found = client.get("/api/v1/logs?service=checkout&q=gateway&field.host=web-3").json["entries"]
    assert len(found) == 1
    stored = found[0]
    assert stored["service_name"] == "checkout" and stored["pod"] == "checkout-7"
    assert stored["environment"] == "staging" and stored["level"] == "error"
    assert stored["timestamp"] == "2024-05-01T10:00:00.123Z"
    assert stored["trace_id"] == "5b8efff798038103d269b633813fc60c" and stored["logger"] == "checkout.payments"
    assert stored["http.status_code"] == 502 and stored["retry"] is True
    assert stored["resource.telemetry.sdk.language"] == "python" and stored["id"].startswith("otlp:")
    other = client.get("/api/v1/logs?level=info").json["entries"]
    assert [json.loads(e["message"]) for e in other] == [{"k": 1.5}]


def test_the_same_export_sent_again_is_counted_as_duplicates(client, token):
    body = export(record("once"), record("twice"))
    assert post(client, body, token, path="/v1/logs").status_code == 200
    assert post(client, gzip.compress(json.dumps(body).encode()), token, path="/v1/logs",
                headers={"Content-Encoding": "gzip"}).status_code == 200
    assert len(client.get("/api/v1/logs").json["entries"]) == 2
    assert "aggregator_entries_duplicate_total 2.0" in client.get("/metrics").get_data(as_text=True)


def test_a_bad_record_is_refused_alone_in_partial_success(client, token):
    reply = post(client, export(record("fine"), "not a record", {"body": {"stringValue": "late"},
                                                                "timeUnixNano": "x"}), token, path="/v1/logs")
    assert reply.status_code == 200
    partial = reply.json["partialSuccess"]
    assert partial["rejectedLogRecords"] == "1" and "record 1" in partial["errorMessage"]
    assert sorted(e["message"] for e in client.get("/api/v1/logs").json["entries"]) == ["fine", "late"]


def test_errors_are_json_and_protobuf_is_refused_with_a_hint(client, token):
    assert post(client, export(record("x")), None, path="/v1/logs").status_code == 401
    proto = client.post("/v1/logs", data=b"\x0a\x00", headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/x-protobuf"})
    assert proto.status_code == 415 and "http/json" in proto.json["error"]
    for bad in (b"[1, 2]", b"{", b'{"resourceLogs": 3}'):
        reply = post(client, bad, token, path="/v1/logs")
        assert reply.status_code == 400 and reply.json["ok"] is False, bad


def test_a_logger_credential_stamps_its_pod_and_scopes_the_ids(app, client, token):
    credential = mint(token, "edge", "edge-service")
    assert post(client, export(record("from the collector")), credential, path="/v1/logs").status_code == 200
    stored = client.get("/api/v1/logs").json["entries"][0]
    assert stored["pod"] == "edge" and stored["app_pod"] == "checkout-7" and stored["id"].startswith("edge:otlp:")


def test_mapping_without_a_pod_or_a_time():
    mapped = entries(export({"body": {"stringValue": "m"}, "severityNumber": 3}, pod=None))
    assert mapped[0]["level"] == "trace" and "timestamp" not in mapped[0] and "pod" not in mapped[0]
