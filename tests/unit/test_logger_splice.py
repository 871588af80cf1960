"""The enricher's fast path (append to the line's own JSON) yields the same entry as enrich()+encode."""
from __future__ import annotations

import json

import pytest

from podvisor.sidecars.logger.enrich import Enricher
from podvisor.sidecars.logger.lines import RawLine, decode_text
from podvisor.sidecars.logger.pipeline import _dumps


def line(text: str) -> RawLine:
    data = text.encode()
    return RawLine(0, len(data) + 1, data, len(data))


ENRICHER = Enricher("user", "user-service", "production", "vm", wall=lambda: 1_700_000_000.0)


@pytest.mark.parametrize("text", [
    '{"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "message": "hi", "status": 200}',
    '  {"timestamp":"2026-01-01T00:00:00Z","level":"warn","message":"naïve ☃ \\ud800 \\"q\\""}\r',
    '{"timestamp": "2026-01-01T00:00:00Z", "level": "info", "message": "x", "nested": {"a": [1, 2]}}',
])
def test_spliced_entry_equals_the_enriched_record(text):
    record, own = decode_text(line(text), stderr=False)
    eid = ENRICHER.entry_id("k1", 0)
    spliced = ENRICHER.splice(record, own, "app.log", eid)
    assert spliced is not None
    expected = json.loads(_dumps(ENRICHER.enrich(record, "app.log", "k1", 0)))
    assert json.loads(spliced) == expected
    assert expected["id"] == "user:k1:0" and expected["service_name"] == "user-service"


@pytest.mark.parametrize("text", [
    '{"message": "no timestamp"}',                                        # timestamp to add
    '{"timestamp": 1700000000, "message": "epoch"}',                      # moved to app_timestamp
    '{"timestamp": "2026-01-01T00:00:00Z", "message": "m", "pod": "other"}',  # collision: app_pod
    '{"timestamp": "2026-01-01T00:00:00Z", "message": {"structured": 1}}',    # message re-encoded
    '{"timestamp": "2026-01-01T00:00:00Z", "message": "m", "level": 30}',     # numeric level
    '{}',
    'plain text, not JSON',
])
def test_lines_enrich_must_rewrite_take_the_slow_path(text):
    record, own = decode_text(line(text), stderr=False)
    assert ENRICHER.splice(record, own, "app.log", ENRICHER.entry_id("k1", 0)) is None
