"""OTLP/HTTP logs in JSON (an ExportLogsServiceRequest) -> podvisor entries.

Per the OTLP JSON encoding: field names in lowerCamelCase, 64-bit integers (timeUnixNano) as
strings or numbers, trace and span ids as hex, AnyValue as {"stringValue": ...}, {"intValue": ...}
and so on. Resource attributes give the fields every podvisor entry has: `service.name` ->
`service_name`, `host.name` -> `host`, `k8s.pod.name` (or `podvisor.pod`) -> `pod`,
`deployment.environment(.name)` -> `environment`; the record's own attributes become fields of the
entry (dots kept in their names), the body its `message` (a non-string body as JSON text), the
severity its `level`. A record carries no id, so its id is a digest of what the exporter sent
(resource, scope and record): a retried export is absorbed as duplicates, like a logger's re-send.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from podvisor.aggregator.timestamps import ms_to_iso

RESOURCE_FIELDS = {
    "service.name": "service_name",
    "host.name": "host",
    "k8s.pod.name": "pod",
    "podvisor.pod": "pod",
    "deployment.environment": "environment",
    "deployment.environment.name": "environment",
}
# SeverityNumber ranges of the OpenTelemetry log data model (1-4 TRACE ... 21-24 FATAL).
SEVERITIES = ((21, "critical"), (17, "error"), (13, "warning"), (9, "info"), (5, "debug"), (1, "trace"))
MAX_RECORDS = 100_000


class OtlpError(ValueError):
    """The request is not an ExportLogsServiceRequest: the caller's 400."""


def any_value(value: Any) -> Any:
    """An OTLP AnyValue as plain JSON."""
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if kind == "intValue":
        try:
            return int(inner)
        except (TypeError, ValueError):
            return str(inner)
    if kind == "doubleValue":
        return inner
    if kind == "arrayValue":
        return [any_value(v) for v in (inner or {}).get("values", []) if isinstance(inner, dict)]
    if kind == "kvlistValue":
        return attributes((inner or {}).get("values", []) if isinstance(inner, dict) else [])
    if kind == "bytesValue":
        return inner  # base64 text, as the encoding has it
    return inner  # stringValue, boolValue


def attributes(items: Any) -> dict[str, Any]:
    """A KeyValue list as a dict (later keys win, as in the SDKs)."""
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = any_value(item.get("value"))
    return out


def _nanos_to_iso(value: Any) -> str | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    return ms_to_iso(nanos // 1_000_000) if nanos > 0 else None


def _level(record: dict[str, Any]) -> str | None:
    text = record.get("severityText")
    if isinstance(text, str) and text.strip():
        return text.strip().lower()
    number = record.get("severityNumber")
    if isinstance(number, int) and not isinstance(number, bool):
        for low, name in SEVERITIES:
            if number >= low:
                return name
    return None


def entries(body: Any) -> list[dict[str, Any]]:
    """Every log record of the request as a podvisor entry (raise OtlpError for a malformed request)."""
    if not isinstance(body, dict):
        raise OtlpError("body must be a JSON object (ExportLogsServiceRequest)")
    resource_logs = body.get("resourceLogs", [])
    if not isinstance(resource_logs, list):
        raise OtlpError("resourceLogs must be a list")
    out: list[dict[str, Any]] = []
    for resource_log in resource_logs:
        if not isinstance(resource_log, dict):
            raise OtlpError("each resourceLogs item must be an object")
        resource = attributes((resource_log.get("resource") or {}).get("attributes"))
        base = {field: resource[key] for key, field in RESOURCE_FIELDS.items() if isinstance(resource.get(key), str)}
        extra = {f"resource.{k}": v for k, v in resource.items() if k not in RESOURCE_FIELDS}
        for scope_log in resource_log.get("scopeLogs", []) or []:
            if not isinstance(scope_log, dict):
                raise OtlpError("each scopeLogs item must be an object")
            scope = scope_log.get("scope") if isinstance(scope_log.get("scope"), dict) else {}
            for record in scope_log.get("logRecords", []) or []:
                if len(out) >= MAX_RECORDS:
                    raise OtlpError(f"more than {MAX_RECORDS} log records in one request")
                out.append(_entry(record, base, extra, scope, resource_log))
    return out


def _entry(record: Any, base: dict[str, Any], extra: dict[str, Any], scope: dict[str, Any],
           resource_log: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(record, dict):
        return {"otlp_error": "logRecord is not an object"}  # refused by validation: no message
    body = any_value(record.get("body"))
    entry: dict[str, Any] = {**extra, **attributes(record.get("attributes")), **base}
    entry["message"] = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    stamp = _nanos_to_iso(record.get("timeUnixNano")) or _nanos_to_iso(record.get("observedTimeUnixNano"))
    if stamp is not None:
        entry["timestamp"] = stamp
    level = _level(record)
    if level is not None:
        entry["level"] = level
    for key, field in (("traceId", "trace_id"), ("spanId", "span_id")):
        if isinstance(record.get(key), str) and record[key]:
            entry[field] = record[key]
    if isinstance(scope.get("name"), str) and scope["name"]:
        entry["logger"] = scope["name"]
    entry["source"] = "otlp"
    digest = hashlib.sha256(json.dumps([resource_log.get("resource"), scope, record], sort_keys=True,
                                       separators=(",", ":")).encode("utf-8", "surrogatepass")).hexdigest()
    entry["id"] = "otlp:" + digest[:40]
    return entry
