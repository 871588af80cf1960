"""Line framing, decoding and enrichment of the logging sidecar."""
import json

from podvisor.sidecars.logger.enrich import Enricher, iso_utc, source_name
from podvisor.sidecars.logger.lines import LineFramer, RawLine, decode, entry_size, fit


def test_framer_holds_partial_line_until_newline():
    framer = LineFramer(100)
    assert [(x.offset, x.end, x.data) for x in framer.feed(b"one\ntw")] == [(0, 4, b"one")]
    assert framer.has_partial and framer.line_start == 4
    lines = framer.feed(b"o\nthree\n")
    assert [(x.offset, x.end, x.data) for x in lines] == [(4, 8, b"two"), (8, 14, b"three")]
    assert not framer.has_partial and framer.position == 14


def test_framer_starts_at_offset_and_flushes_partial():
    framer = LineFramer(100, start=50)
    assert framer.feed(b"tail") == []
    line = framer.flush()
    assert (line.offset, line.end, line.data, line.truncated) == (50, 54, b"tail", False)
    assert framer.flush() is None and framer.line_start == 54


def test_framer_truncates_long_line_with_bounded_memory_and_continues():
    framer = LineFramer(10)
    out = []
    for _ in range(1000):  # a 100 kB line fed in small chunks never buffers more than the cap
        out += framer.feed(b"x" * 100)
        assert len(framer._buf) <= 10
    out += framer.feed(b"\nnext\n")
    assert [(x.offset, x.end, x.data, x.length, x.truncated) for x in out] == [
        (0, 100_001, b"x" * 10, 100_000, True), (100_001, 100_006, b"next", 4, False)]


def test_offsets_are_contiguous_including_empty_lines():
    lines = LineFramer(100).feed(b"a\n\n\r\nb\n")
    assert [(x.offset, x.end) for x in lines] == [(0, 2), (2, 3), (3, 5), (5, 7)]


def test_decode_keeps_json_objects_and_wraps_everything_else():
    line = RawLine(0, 1, b'{"message": "hi", "level": "warn", "status": 200}', 48)
    assert decode(line, stderr=False) == {"message": "hi", "level": "warn", "status": 200}
    record = decode(RawLine(0, 1, b"plain text\r", 11), stderr=False)
    assert record == {"message": "plain text", "level": "info"}
    assert decode(RawLine(0, 1, b"Traceback", 9), stderr=True) == {"message": "Traceback", "level": "warning"}
    assert decode(RawLine(0, 1, b"Traceback", 9), stderr=True, stderr_level="error")["level"] == "error"
    own = decode(RawLine(0, 1, b'{"message": "m", "level": "debug"}', 34), stderr=True, stderr_level="error")
    assert own["level"] == "debug", "a JSON line's own level wins"
    for not_object in (b"[1, 2]", b"42", b'"s"', b"{broken", b'{"a": NaN}', b"{" * 5000):
        assert decode(RawLine(0, 1, not_object, len(not_object)), False)["message"] == not_object.decode()


def test_decode_gives_json_without_message_or_level_a_usable_record():
    record = decode(RawLine(0, 1, b'{"event": "x", "level": 30}', 27), stderr=False)
    assert record == {"event": "x", "message": '{"event": "x", "level": 30}', "level": "info",
                      "app_level": 30}
    assert decode(RawLine(0, 1, b'{"message": {"k": 1}}', 21), False)["message"] == '{"k": 1}'


def test_decode_replaces_invalid_utf8_and_marks_truncation():
    record = decode(RawLine(0, 1, b"caf\xe9 \xff ok", 9), stderr=False)
    assert record["message"] == "caf\ufffd \ufffd ok"
    truncated = decode(RawLine(0, 1, b'{"message": "abc', 5000), stderr=False)
    assert truncated == {"message": '{"message": "abc', "level": "info", "truncated": True,
                         "original_bytes": 5000}
    json.dumps(record, ensure_ascii=False).encode()  # still encodable


def test_enrich_adds_fields_and_keeps_app_values_under_app_prefix():
    enricher = Enricher("user", "user-service", "production", "host1", wall=lambda: 1700000000.5)
    record = enricher.enrich({"message": "m", "host": "container-7", "pod": "user", "id": 5},
                             source="app.log", file_key="abcd", offset=42)
    assert record["id"] == "user:abcd:42"
    assert (record["host"], record["app_host"]) == ("host1", "container-7")
    assert "app_pod" not in record  # same value: nothing to keep
    assert record["app_id"] == 5
    assert record["service_name"] == "user-service" and record["environment"] == "production"
    assert record["source"] == "app.log" and record["timestamp"] == "2023-11-14T22:13:20.500Z"


def test_enrich_keeps_app_timestamp_string_and_moves_non_strings():
    enricher = Enricher("p", "s", "e", "h", wall=lambda: 0.0)
    assert enricher.enrich({"message": "", "timestamp": "2024-01-01T00:00:00.000Z"}, "a", "k", 0)[
        "timestamp"] == "2024-01-01T00:00:00.000Z"
    moved = enricher.enrich({"message": "", "timestamp": 1700000000}, "a", "k", 0)
    assert moved["timestamp"] == "1970-01-01T00:00:00.000Z" and moved["app_timestamp"] == 1700000000


def test_source_name_strips_rotation_suffixes():
    assert source_name("app.stdout.log.3") == "app.stdout.log"
    assert source_name("app.log-20240101") == "app.log"
    assert source_name("app.log") == "app.log"
    assert iso_utc(0.001) == "1970-01-01T00:00:00.001Z"


def _aggregator_size(record):
    # The aggregator's own measure (aggregator/validation.py): compact JSON, non-ASCII escaped.
    return len(json.dumps(json.loads(json.dumps(record, ensure_ascii=False)), separators=(",", ":")))


def test_fit_leaves_an_entry_within_the_limit_alone():
    record = {"id": "p:k:0", "message": "hello"}
    assert fit(record, 4096, "hello", 5) is record
    assert entry_size(record) == _aggregator_size(record)


def test_fit_cuts_a_non_ascii_message_to_what_the_aggregator_will_accept():
    record = {"id": "p:k:0", "message": "\u00e9\u4e2d\U0001f600" * 3000, "level": "info"}
    assert len(json.dumps(record, ensure_ascii=False).encode()) < 40_000 < _aggregator_size(record)
    fitted = fit(record, 40_000, "raw", 123)
    assert 40_000 - 12 <= _aggregator_size(fitted) <= 40_000  # as full as escaping allows
    assert fitted["truncated"] is True and fitted["original_bytes"] == 123
    assert record["message"].startswith(fitted["message"]) and fitted["level"] == "info"


def test_fit_wraps_the_raw_text_when_other_fields_are_too_big():
    record = {"id": "p:k:0", "message": "short", "stack": "frame\n" * 5000, "service_name": "user-service",
              "request_id": "r1", "timestamp": "2024-01-01T00:00:00.000Z"}
    raw = json.dumps(record)
    fitted = fit(record, 8192, raw, len(raw))
    assert _aggregator_size(fitted) <= 8192
    assert "stack" not in fitted and fitted["message"] == raw[: len(fitted["message"])]
    assert (fitted["id"], fitted["service_name"], fitted["request_id"]) == ("p:k:0", "user-service", "r1")
    assert fitted["truncated"] is True and fitted["original_bytes"] == len(raw)


def test_fit_keeps_an_app_field_named_like_the_marker():
    record = {"id": "p:k:0", "message": "m" * 10_000, "truncated": "no"}
    fitted = fit(record, 4096, "", 10_020)
    assert fitted["truncated"] is True and fitted["app_truncated"] == "no"


def test_probe_and_scrape_requests_are_marked_by_their_fields_or_request_line():
    from podvisor.sidecars.logger.enrich import Enricher
    enricher = Enricher("p", "s", "e", "h", probe_paths=("/health", "/metrics"))
    assert enricher.is_probe({"method": "GET", "path": "/health", "message": "GET /health 200"})
    assert enricher.is_probe({"method": "GET", "path": "/metrics?x=1", "message": "m"})
    assert not enricher.is_probe({"method": "POST", "path": "/health", "message": "m"})
    assert not enricher.is_probe({"method": "GET", "path": "/users", "message": "m"})
    assert enricher.is_probe({"message": '127.0.0.1 - - [30/Nov/2026 10:00:00] "GET /health HTTP/1.1" 200 -'})
    assert not enricher.is_probe({"message": '127.0.0.1 - - [30/Nov/2026 10:00:00] "GET / HTTP/1.1" 200 -'})
    record = {"timestamp": "2026-11-30T10:00:00.000Z", "method": "GET", "path": "/health", "message": "m"}
    text = '{"timestamp":"2026-11-30T10:00:00.000Z","method":"GET","path":"/health","message":"m"}'
    assert json.loads(enricher.splice(record, text, "app.log", "p:k:0"))["probe"] is True
    assert "probe" not in json.loads(enricher.splice(dict(record, path="/x"), text.replace("/health", "/x"),
                                                     "app.log", "p:k:0"))
