"""GET /api/v1/histogram: entries per time bucket and level, with the filters of /api/v1/logs."""
from __future__ import annotations

import pytest

from podvisor.aggregator.histogram import DAY, HOUR, MINUTE, SECOND, choose_buckets
from podvisor.aggregator.timestamps import iso_to_ms
from tests.unit.test_aggregator_fixtures import entry, post

BASE = "2024-05-01T10:00"


def seed(client, token, entries):
    reply = post(client, entries, token)
    assert reply.status_code == 202 and reply.json["rejected"] == 0, reply.json


def at(i: int, second: str, **fields) -> dict:
    return entry(i, timestamp=f"{BASE}:{second}Z", **fields)


SEEDED = [
    at(0, "00.000", level="info", message="GET /users 200"),
    at(1, "09.999", level="ERROR", message="payment declined"),
    at(2, "10.000", level="warn", message="slow query"),
    at(3, "15.500", level="info", message="GET /health 200", probe=True),
    at(4, "25.000", level="fatal", message="out of memory", pod="order"),
    at(5, "29.000", level="notice", message="GET /metrics 200", probe=True),
    at(6, "29.999", message="no level at all", level=None),
]


def histogram(client, **params):
    reply = client.get("/api/v1/histogram", query_string=params)
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.status_code == 200, reply.json
    return reply.json


def counts(reply) -> list[dict]:
    return [bucket["counts"] for bucket in reply["buckets"]]


def test_buckets_have_a_round_width_aligned_to_it():
    start = iso_to_ms(f"{BASE}:07Z")
    buckets = choose_buckets(start, start + 10 * MINUTE - 1, 60)
    assert (buckets.width_ms, buckets.count) == (15 * SECOND, 41)  # 10 s would need 61
    assert buckets.start_ms % buckets.width_ms == 0 and buckets.start_ms <= start
    assert choose_buckets(start, start, 60).count == 1
    assert choose_buckets(start, start + 25 * HOUR, 24).width_ms == 2 * HOUR
    long = choose_buckets(0, 10_000 * DAY, 60)
    assert long.width_ms % DAY == 0 and long.count <= 60
    with pytest.raises(ValueError):
        choose_buckets(10, 0, 60)


def test_negative_times_are_aligned_below_too():
    buckets = choose_buckets(-5 * SECOND - 1, 4 * SECOND, 2)
    assert buckets.width_ms == 10 * SECOND and buckets.starts() == [-10 * SECOND, 0]


def test_counts_per_bucket_and_level(client, token):
    seed(client, token, SEEDED)
    reply = histogram(client, since=f"{BASE}:00Z", until=f"{BASE}:29.999Z", buckets=3)
    assert reply["ok"] is True and reply["bucket_seconds"] == 10
    assert reply["levels"] == ["debug", "info", "warning", "error", "critical", "other"]
    assert [(b["start"], b["end"]) for b in reply["buckets"]] == [
        (f"{BASE}:00.000Z", f"{BASE}:09.999Z"), (f"{BASE}:10.000Z", f"{BASE}:19.999Z"),
        (f"{BASE}:20.000Z", f"{BASE}:29.999Z")]
    # warn counts as warning, fatal as critical; notice and a missing level as other.
    assert counts(reply) == [{"info": 1, "error": 1}, {"info": 1, "warning": 1}, {"critical": 1, "other": 2}]
    assert [b["total"] for b in reply["buckets"]] == [2, 2, 3] and reply["total"] == 7


def test_filters_search_exclusions_and_probes_apply(client, token):
    seed(client, token, SEEDED)
    window = {"since": f"{BASE}:00Z", "until": f"{BASE}:29.999Z", "buckets": 3}
    assert counts(histogram(client, pod="order", **window)) == [{}, {}, {"critical": 1}]
    assert counts(histogram(client, q="GET", **window)) == [{"info": 1}, {"info": 1}, {"other": 1}]
    assert counts(histogram(client, q="GET -health", **window)) == [{"info": 1}, {}, {"other": 1}]
    assert histogram(client, q="-GET -payment", **window)["total"] == 3  # exclusions only
    assert histogram(client, probes="exclude", **window)["total"] == 5
    assert counts(histogram(client, probes="only", **window)) == [{}, {"info": 1}, {"other": 1}]
    assert histogram(client, level="error,fatal", **window)["total"] == 2  # the stored spelling
    assert histogram(client, service="nobody", **window)["total"] == 0


def test_a_bucket_end_narrows_a_logs_query_to_the_bucket(client, token):
    seed(client, token, SEEDED)
    reply = histogram(client, since=f"{BASE}:00Z", until=f"{BASE}:29.999Z", buckets=3)
    for bucket in reply["buckets"]:
        page = client.get("/api/v1/logs", query_string={"since": bucket["start"], "until": bucket["end"]}).json
        assert len(page["entries"]) == bucket["total"], bucket


def test_the_range_is_cut_to_since_and_until(client, token):
    seed(client, token, SEEDED)
    reply = histogram(client, since=f"{BASE}:09.999Z", until=f"{BASE}:25Z", buckets=3)
    assert reply["since"] == f"{BASE}:09.999Z" and reply["until"] == f"{BASE}:25.000Z"
    assert reply["buckets"][0]["start"] == f"{BASE}:00.000Z"  # aligned below since...
    assert reply["total"] == 4  # ...but what is before since or after until is not counted


def test_an_open_range_runs_from_the_oldest_entry_to_now(client, token):
    seed(client, token, SEEDED)
    reply = histogram(client)
    assert reply["since"] == f"{BASE}:00.000Z" and reply["total"] == 7
    assert iso_to_ms(reply["until"]) > iso_to_ms("2025-01-01T00:00:00Z")
    assert len(reply["buckets"]) <= 60
    nothing = histogram(client, pod="nobody", buckets=5)
    assert nothing["total"] == 0 and all(b["total"] == 0 for b in nothing["buckets"])


def test_an_empty_store_has_an_empty_last_hour(client):
    reply = histogram(client, buckets=12)
    # 5-minute buckets unless the hour is not aligned to them (13 would be needed): 10 minutes
    assert reply["total"] == 0 and reply["bucket_seconds"] in (300, 600) and len(reply["buckets"]) <= 12
    assert iso_to_ms(reply["until"]) - iso_to_ms(reply["since"]) == HOUR


@pytest.mark.parametrize(("params", "fragment"), [
    ({"buckets": "0"}, "buckets: must be from 1 to 1000"),
    ({"buckets": "1001"}, "buckets: must be from 1 to 1000"),
    ({"buckets": "9" * 5000}, "buckets: not an integer"),
    ({"buckets": "ten"}, "buckets: not an integer"),
    ({"bucket": "10"}, "bucket: unknown parameter"),
    ({"q": "error\x00"}, "q: must not contain a NUL"),
    ({"q": " ".join(f"-w{i}" for i in range(1000))}, "q: longer than 500"),
    ({"q": " ".join(f"-w{i}" for i in range(33))}, "q: more than 32 words"),
    ({"q": "GET NOT"}, "q: NOT must be followed"),
    ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "since: is after until"),
    ({"since": "yesterday"}, "since: not an ISO 8601"),
    ({"probes": "maybe"}, "probes: must be"),
])
def test_bad_parameters_are_a_400_naming_them(client, token, params, fragment):
    seed(client, token, SEEDED)
    reply = client.get("/api/v1/histogram", query_string=params)
    assert reply.status_code == 400 and reply.json["ok"] is False, reply.get_data(as_text=True)[:300]
    assert fragment in reply.json["error"], reply.json


def test_the_histogram_benchmark_runs_on_a_small_store(tmp_path, capsys):
    from podvisor.bench import histogram as bench
    assert bench.main(["--rows", "3000", "--runs", "1", "--db", str(tmp_path / "bench.db")]) == 0
    out = capsys.readouterr().out
    assert "filled 3,000 entries" in out and "all time, every entry" in out and "(3000)" in out
