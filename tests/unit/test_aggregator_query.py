"""Queries: GET /logs (plain array) and GET /api/v1/logs (filters, search, cursor pages)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.query import CursorCodec, Term, TextSearch, parse_search
from podvisor.aggregator.store.select import fts_expression, seq_windows
from podvisor.aggregator.store.sqlite import Store
from tests.unit.test_aggregator_fixtures import entry, make_settings, post, state_of, token_of


def seed(client, token, entries):
    reply = post(client, entries, token)
    assert reply.status_code == 202 and reply.json["rejected"] == 0, reply.json


def get(client, url):
    reply = client.get(url)
    assert reply.headers["Content-Type"].startswith("application/json")
    return reply


MIXED = [
    entry(0, service_name="user-service", pod="user", level="INFO", request_id="r-1",
          message="user created alice", status=201),
    entry(1, service_name="order-service", pod="order", level="ERROR", request_id="r-1",
          message="payment declined for order 7", status=500),
    entry(2, service_name="product", pod="product", level="warning", request_id="r-2",
          message="slow query on catalog", status=200, method="GET"),
    entry(3, service_name="user-service", pod="user-2", level="error", request_id="r-3",
          message="database timeout while saving user", status="500"),
    entry(4, service_name="order-service", pod="order", level="info", request_id="r-4",
          message="order 7 shipped", ok=True, timestamp="2024-05-02T00:00:00Z"),
]


def ids(entries):
    return [e["id"] for e in entries]


def test_legacy_logs_default_limit_and_chronological_order(client, token):
    seed(client, token, [entry(i) for i in range(150)])
    reply = get(client, "/logs")
    assert reply.status_code == 200
    assert isinstance(reply.json, list)
    assert ids(reply.json) == [f"user:abc:{i}" for i in range(50, 150)]
    assert ids(get(client, "/logs?limit=3").json) == ["user:abc:147", "user:abc:148", "user:abc:149"]


def test_legacy_logs_orders_a_page_by_timestamp_not_arrival(client, token):
    # Two pods' batches arrive out of time order: the page is still chronological.
    seed(client, token, [entry(0, timestamp="2026-01-01T10:00:02Z", message="later, sent first"),
                         entry(1, timestamp="2026-01-01T11:00:01+01:00", message="earlier, sent second")])
    assert [e["message"] for e in get(client, "/logs").json] == ["earlier, sent second", "later, sent first"]


def test_legacy_logs_search_order_and_unknown_parameters(client, token):
    seed(client, token, [entry(0, message="alpha one"), entry(1, message="beta"), entry(2, message="alpha two")])
    assert [e["message"] for e in get(client, "/logs?q=alpha").json] == ["alpha one", "alpha two"]
    assert [e["message"] for e in get(client, "/logs?q=alpha&order=desc").json] == ["alpha two", "alpha one"]
    for bad, name in (("/logs?levl=error", "levl"), ("/logs?cursor=x", "cursor"), ("/logs?q=a%00b", "q")):
        reply = get(client, bad)
        assert reply.status_code == 400 and reply.json["error"].startswith(f"{name}:"), reply.json


def test_legacy_logs_limit_is_capped_and_validated(client, token):
    seed(client, token, [entry(i) for i in range(1005)])
    assert len(get(client, "/logs?limit=5000").json) == 1000
    for bad in ("abc", "0", "-4"):
        reply = get(client, f"/logs?limit={bad}")
        assert reply.status_code == 400
        assert reply.json["error"].startswith("limit:")


def test_legacy_logs_filters(client, token):
    seed(client, token, MIXED)
    assert ids(get(client, "/logs?service=user").json) == ["user:abc:0", "user:abc:3"]
    assert ids(get(client, "/logs?service=user-service").json) == ["user:abc:0", "user:abc:3"]
    assert ids(get(client, "/logs?service=product").json) == ["user:abc:2"]
    assert ids(get(client, "/logs?service=nope").json) == []
    assert ids(get(client, "/logs?pod=order").json) == ["user:abc:1", "user:abc:4"]
    assert ids(get(client, "/logs?level=error").json) == ["user:abc:1", "user:abc:3"]
    assert ids(get(client, "/logs?level=ERROR").json) == ["user:abc:1", "user:abc:3"]
    assert ids(get(client, "/logs?request_id=r-1").json) == ["user:abc:0", "user:abc:1"]
    assert ids(get(client, "/logs?since=2024-05-02T00:00:00Z").json) == ["user:abc:4"]
    assert ids(get(client, "/logs?until=2024-05-01T10:00:01Z").json) == ["user:abc:0", "user:abc:1"]
    epoch = 1714521600  # 2024-05-01T00:00:00Z
    assert ids(get(client, f"/logs?since={epoch + 86400}").json) == ["user:abc:4"]
    assert ids(get(client, "/logs?service=order&level=info").json) == ["user:abc:4"]
    reply = get(client, "/logs?since=yesterday")
    assert reply.status_code == 400 and reply.json["error"].startswith("since:")


def test_api_logs_envelope_order_and_fields(client, token):
    seed(client, token, MIXED)
    reply = get(client, "/api/v1/logs")
    assert reply.status_code == 200
    body = reply.json
    assert body["ok"] is True and body["next"] is None and body["latest_id"] >= 5
    assert ids(body["entries"]) == [f"user:abc:{i}" for i in (4, 3, 2, 1, 0)]
    assert ids(get(client, "/api/v1/logs?order=asc").json["entries"]) == [
        f"user:abc:{i}" for i in range(5)]
    # Equality on any top-level field: numbers, strings, booleans compare as typed in the URL.
    assert ids(get(client, "/api/v1/logs?field.status=500&order=asc").json["entries"]) == [
        "user:abc:1", "user:abc:3"]
    assert ids(get(client, "/api/v1/logs?field.method=GET").json["entries"]) == ["user:abc:2"]
    assert ids(get(client, "/api/v1/logs?field.ok=true").json["entries"]) == ["user:abc:4"]
    assert ids(get(client, "/api/v1/logs?field.status=201&field.pod=user").json["entries"]) == [
        "user:abc:0"]


@pytest.mark.parametrize("url, param", [
    ("/api/v1/logs?order=sideways", "order"),
    ("/api/v1/logs?limit=x", "limit"),
    ("/api/v1/logs?field.bad%20name=1", "field.bad name"),
    ("/api/v1/logs?servce=user", "servce"),
    ("/api/v1/logs?until=soon", "until"),
    ("/api/v1/logs?since=2024-05-02&until=2024-05-01", "since"),
    ("/api/v1/logs?probes=hide", "probes"),
])
def test_api_logs_bad_parameters_are_400_naming_them(client, url, param):
    reply = get(client, url)
    assert reply.status_code == 400
    assert reply.json["ok"] is False
    assert reply.json["error"].startswith(f"{param}:")


def test_several_pods_repeated_or_comma_separated(client, token):
    seed(client, token, MIXED)
    for url in ("/api/v1/logs?pod=order&pod=user&order=asc", "/api/v1/logs?pod=order,user&order=asc",
                "/logs?pod=user,order"):
        reply = get(client, url)
        found = reply.json if isinstance(reply.json, list) else reply.json["entries"]
        assert ids(found) == ["user:abc:0", "user:abc:1", "user:abc:4"], url


def test_probe_entries_are_included_excluded_or_alone(client, token):
    seed(client, token, [entry(0, message="GET /health 200", probe=True), entry(1, message="GET / 200"),
                         entry(2, message="marked as text, not a probe", probe="true"),
                         entry(3, message="GET /metrics 200", probe=True, pod="order")])

    def found(query):
        return ids(get(client, "/api/v1/logs?order=asc&" + query).json["entries"])
    assert found("") == found("probes=include") == [f"user:abc:{i}" for i in range(4)]
    assert found("probes=exclude") == ["user:abc:1", "user:abc:2"]
    assert found("probes=only") == found("probes=ONLY") == ["user:abc:0", "user:abc:3"]
    assert found("probes=only&pod=order") == ["user:abc:3"]


def test_full_text_search(client, token):
    seed(client, token, MIXED)

    def search(q, **filters):
        reply = client.get("/api/v1/logs", query_string={"q": q, "order": "asc", **filters})
        assert reply.status_code == 200, reply.json
        return ids(reply.json["entries"])

    assert search("order") == ["user:abc:1", "user:abc:4"]
    assert search("ORDER 7 shipped") == ["user:abc:4"]
    assert search('"payment declined"') == ["user:abc:1"]
    assert search('"declined payment"') == []
    assert search("data*") == ["user:abc:3"]
    assert search("user", service="user") == ["user:abc:0", "user:abc:3"]
    assert search("timeout", level="error") == ["user:abc:3"]


@pytest.mark.parametrize("q", ['"unbalanced', "NEAR(", "*", "a OR", "message:order", "^start",
                               "(", ")", "AND", "NOT order", "-", '""', "'", "order*  *",
                               "x" * 600, "\u00e9t\u00e9 \U0001f600", "NEAR(a b, 2)"])
def test_hostile_search_text_is_never_a_500(client, token, q):
    seed(client, token, MIXED)
    reply = client.get("/api/v1/logs", query_string={"q": q})
    assert reply.status_code in (200, 400), reply.get_data(as_text=True)
    assert reply.json["ok"] is (reply.status_code == 200)
    if reply.status_code == 400:
        assert reply.json["error"].startswith("q:")


def fts(text):
    return fts_expression(parse_search(text))


def test_fts_expression_quotes_every_term():
    assert fts("NEAR(a b") == '"NEAR(a" AND "b"'
    assert fts('say "hi there" now*') == '"say" AND "hi there" AND "now"*'
    assert parse_search("   ") is None
    with pytest.raises(ValueError):
        parse_search("* -- ()")


def test_search_text_is_parsed_into_included_and_excluded_terms():
    assert parse_search('GET -health NOT "GET /metrics" users* -debug*') == TextSearch(
        include=(Term("GET"), Term("users", prefix=True)),
        exclude=(Term("health"), Term("GET /metrics"), Term("debug", prefix=True)))
    # Lower-case `not`, a dash inside a word, a lone dash and repeats are not operators.
    assert parse_search("not found user-service - x x") == TextSearch(
        include=(Term("not"), Term("found"), Term("user-service"), Term("x")))
    assert parse_search("-health") == TextSearch(exclude=(Term("health"),))
    assert parse_search('NOT -a -"b c"') == TextSearch(exclude=(Term("a"), Term("b c")))


@pytest.mark.parametrize(("q", "reason"), [
    ("NOT", "NOT must be followed"), ("a NOT", "NOT must be followed"), ("NOT NOT a", "NOT NOT"),
    (" ".join(f"-w{i}" for i in range(40)), "more than 32 words"), ("-a\x00", "NUL"),
    ("-" + "x" * 500, "longer than 500"), ("- -- -*", "no words"),
])
def test_bad_search_text_is_refused_with_the_reason(q, reason):
    with pytest.raises(ValueError, match=reason):
        parse_search(q)


def test_exclusions_become_a_not_of_quoted_strings():
    assert fts('GET -health NOT "a NEAR b" -x*') == '("GET") NOT ("health" OR "a NEAR b" OR "x"*)'
    assert fts("-health") is None  # FTS5 has no unary NOT: select.py filters these rows out
    assert fts_expression(TextSearch(include=(Term('say "hi"'),))) == '"say ""hi"""'


def test_search_leaves_out_excluded_words(client, token):
    seed(client, token, MIXED + [entry(5, message="GET /health 200"), entry(6, message="GET /users 200")])

    def search(q, **filters):
        reply = client.get("/api/v1/logs", query_string={"q": q, "order": "asc", **filters})
        assert reply.status_code == 200, reply.json
        return ids(reply.json["entries"])

    assert search("GET -health") == ["user:abc:6"]
    assert search("GET NOT health") == ["user:abc:6"]
    assert search('-order -alice -"slow query" -GET') == ["user:abc:3"]  # exclusions only
    assert search("-order", pod="user") == ["user:abc:0", "user:abc:5", "user:abc:6"]
    assert search("-database -GET", level="error") == ["user:abc:1"]
    assert search("-line") == ids(MIXED) + ["user:abc:5", "user:abc:6"]  # nothing says "line"
    legacy = client.get("/logs", query_string={"q": "-order -GET"}).json
    assert ids(legacy) == ["user:abc:0", "user:abc:2", "user:abc:3"]


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_pagination_walks_every_entry_once(client, token, order):
    seed(client, token, [entry(i, level="error" if i % 3 == 0 else "info") for i in range(257)])
    for extra, expected_count in (("", 257), ("&level=error", 86)):
        seen, url, pages = [], f"/api/v1/logs?limit=25&order={order}{extra}", 0
        while True:
            body = get(client, url).json
            seen.extend(ids(body["entries"]))
            pages += 1
            if body["next"] is None:
                break
            assert len(body["entries"]) == 25
            url = f"/api/v1/logs?limit=25{extra}&cursor={body['next']}"
        numbers = [int(i.rsplit(":", 1)[1]) for i in seen]
        assert len(numbers) == len(set(numbers)) == expected_count
        assert numbers == sorted(numbers, reverse=(order == "desc"))
        assert pages == -(-expected_count // 25)


def test_tampered_or_foreign_cursors_are_400(client, token):
    seed(client, token, [entry(i) for i in range(10)])
    cursor = get(client, "/api/v1/logs?limit=3").json["next"]
    assert get(client, f"/api/v1/logs?limit=3&cursor={cursor}").status_code == 200
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    forged = CursorCodec(b"another key").encode(3, "desc")
    plain = base64.urlsafe_b64encode(b"d3").decode()
    for bad in (flipped, forged, plain, "!!!", "x" * 100):
        reply = get(client, f"/api/v1/logs?cursor={bad}")
        assert reply.status_code == 400, bad
        assert reply.json["error"].startswith("cursor:")
    reply = get(client, f"/api/v1/logs?order=asc&cursor={cursor}")
    assert reply.status_code == 400


class StepClock:
    """Every reading is 10 s after the previous one: any query outlives its time limit."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


def test_query_timeout_is_503_json(tmp_path: Path):
    settings = make_settings(tmp_path)
    store = Store(settings.db_path, query_timeout_ms=2000, clock=StepClock())
    app = create_app(settings, store=store, start_background=False)
    client = app.test_client()
    try:
        seed(client, token_of(app), [entry(i, message=f"word{i} common") for i in range(2000)])
        reply = client.get("/api/v1/logs?field.nothing=1&limit=5")
        assert reply.status_code == 503
        assert reply.json == {"ok": False, "error": "query timed out"}
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'aggregator_query_timeouts_total{endpoint="api_logs"} 1.0' in metrics
    finally:
        state_of(app).close()
        store.close()


def test_seq_windows_double_from_the_page_start():
    assert list(seq_windows(1, 20, "desc", first=4)) == [(17, 20), (9, 16), (1, 8)]
    assert list(seq_windows(1, 20, "asc", first=4)) == [(1, 4), (5, 12), (13, 20)]
    assert list(seq_windows(5, 4, "asc")) == []


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_exclusions_only_pages_walk_every_kept_entry_once_across_windows(client, token, order):
    # 9,000 entries, a kept one every 700th: pages span several windows of seqs.
    kept = {i for i in range(9000) if i % 700 == 3}
    for start in range(0, 9000, 1000):
        seed(client, token, [entry(i, message="kept line" if i in kept else "noise health line")
                             for i in range(start, start + 1000)])
    seen, cursor = [], None
    while True:
        params = {"q": "-health", "order": order, "limit": 4, **({"cursor": cursor} if cursor else {})}
        page = get(client, "/api/v1/logs?" + "&".join(f"{k}={v}" for k, v in params.items())).json
        seen += [int(e["id"].rsplit(":", 1)[1]) for e in page["entries"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == sorted(kept, reverse=order == "desc")
