"""The wire contract: whatever line an app writes, the logger sends strict JSON that the real
aggregator parses and stores (or refuses per entry with a reason), and its batch-mates are stored."""
from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.core.jsonsafe import DEPTH_ERROR, MAX_DEPTH
from podvisor.sidecars.logger.pipeline import Pipeline
from podvisor.sidecars.logger.sender import Response
from tests.fakes.logger import FakeClock, FakeWaiter, settings_for
from tests.unit.test_aggregator_fixtures import make_settings, state_of, token_of

NASTY = {
    "out of range": '{"message": "far", "v": 1e400, "w": [-1e999]}',
    "out of range, no timestamp, in the message": '{"message": 1e400}',
    "literals": '{"message": "nan", "v": NaN, "w": Infinity, "x": -Infinity}',
    "deep, parseable by the logger alone": '{"message": "deep", "x": ' + "[" * 980 + "]" * 980 + "}",
    "just too deep": '{"message": "deep", "x": ' + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "}",
    "deepest allowed": '{"message": "ok", "x": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}",
    "lone surrogate": '{"message": "\\ud800 half"}',
    "not json": "{not json at all",
}


class AggregatorTransport:
    """Posts into the real aggregator app (Flask test client), and keeps every body it sent."""

    def __init__(self, client) -> None:
        self.client = client
        self.bodies: list[bytes] = []

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        self.bodies.append(body)
        reply = self.client.post("/logs", data=body, headers=dict(headers))
        return Response(reply.status_code, reply.data)


def strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"non-standard JSON literal {name} on the wire")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def aggregator(tmp_path: Path):
    app = create_app(make_settings(tmp_path / "agg"), start_background=False)
    yield app
    state_of(app).close()


def ship(tmp_path: Path, aggregator, lines: list[str],
         **settings: object) -> tuple[list[dict], AggregatorTransport, Pipeline]:
    logs = tmp_path / "logs"
    logs.mkdir()
    (tmp_path / "token").write_text(token_of(aggregator))
    (logs / "app.log").write_text("".join(line + "\n" for line in lines))
    transport = AggregatorTransport(aggregator.test_client())
    clock = FakeClock()
    pipeline = Pipeline(settings_for(tmp_path, **settings), transport, clock=clock, wall=clock,
                        waiter=FakeWaiter(clock),
                        threaded=False, hostname="h")
    for _ in range(20):
        clock.advance(1.0)
        pipeline.step()
        if pipeline.finished():
            break
    assert pipeline.finished()
    stored = state_of(aggregator).store.query("SELECT body FROM logs ORDER BY seq")
    return [json.loads(row[0]) for row in stored], transport, pipeline


def test_every_nasty_line_is_stored_between_its_neighbours(tmp_path, aggregator):
    lines = []
    for n, line in enumerate(NASTY.values()):
        lines += [f'{{"message": "normal {n}"}}', line]
    lines.append('{"message": "normal last"}')
    stored, transport, pipeline = ship(tmp_path, aggregator, lines)
    assert len(stored) == len(lines), [e["message"][:40] for e in stored]
    assert [e["message"] for e in stored[0::2]] == [f"normal {n}" for n in range(len(NASTY))] + ["normal last"]
    by_case = dict(zip(NASTY, stored[1::2], strict=True))
    assert by_case["out of range"]["v"] == "1e400" and by_case["out of range"]["w"] == ["-1e999"]
    assert by_case["out of range, no timestamp, in the message"]["message"] == "1e400"
    assert [by_case["literals"][k] for k in "vwx"] == ["NaN", "Infinity", "-Infinity"]
    for case in ("deep, parseable by the logger alone", "just too deep"):
        assert by_case[case]["json_error"] == DEPTH_ERROR and by_case[case]["message"] == NASTY[case]
    assert by_case["deepest allowed"]["message"] == "ok" and "json_error" not in by_case["deepest allowed"]
    assert "json_error" in by_case["not json"]
    for body in transport.bodies:  # never anything the aggregator (or any strict reader) refuses
        strict(gzip.decompress(body).decode())
    assert not (tmp_path / "state" / "dead-letter.jsonl").exists()
    assert pipeline.metrics.lines_rejected._value.get() == 0


def test_refused_entries_are_dead_lettered_as_strict_json(tmp_path, aggregator):
    lines = ['{"message": "ok 1"}', '{"message": "bad time", "timestamp": "yesterday", "v": 1e400}',
             '{"message": "ok 2"}']
    stored, _, _ = ship(tmp_path, aggregator, lines)
    assert [e["message"] for e in stored] == ["ok 1", "ok 2"]
    dead = (tmp_path / "state" / "dead-letter.jsonl").read_text().splitlines()
    assert len(dead) == 1
    record = strict(dead[0])
    assert record["v"] == "1e400" and record["reason"].startswith("rejected: timestamp")


def test_a_line_cut_to_fit_the_entry_limit_stays_strict(tmp_path, aggregator):
    long = '{"message": "' + "x" * 6000 + '", "v": 1e400, "level": "info", "timestamp": "2024-05-01T10:00:00Z"}'
    stored, transport, _ = ship(tmp_path, aggregator, ['{"message": "before"}', long, '{"message": "after"}'],
                                max_entry_bytes=4096)
    assert [e["message"][:6] for e in stored] == ["before", "xxxxxx", "after"]
    assert stored[1]["truncated"] is True and stored[1]["v"] == "1e400"
    for body in transport.bodies:
        strict(gzip.decompress(body).decode())
