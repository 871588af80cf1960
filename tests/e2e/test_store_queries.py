"""The query tests run against both stores: SQLite, and ClickHouse (two shards of Debian's 18.16
started here, a Distributed table over them). The same /logs and /api/v1/logs tests (filters, `q`,
cursor and order, field filters, probes, exclusions), the histogram and the live tail answer the
same on each.

The ClickHouse tests share one cluster per module; each test gets a database of its own. Its store
shows an entry once `settle` seconds have passed since its seq was taken (chconfig.py): here settle
is 0.05 s and the store waits for its own inserts to be readable before the test reads.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from podvisor.aggregator.app import create_app
from podvisor.aggregator.query import LogQuery, parse_search
from podvisor.aggregator.store.chconfig import parse_url
from podvisor.aggregator.store.clickhouse import ClickHouseStore
from podvisor.aggregator.store.sqlite import Store
from podvisor.aggregator.views.tail import stream_events
from podvisor.testing.clickhouse import ClickHouseCluster
from tests.unit.test_aggregator_fixtures import entry, make_settings, post, state_of, token_of
from tests.unit.test_aggregator_histogram import (  # noqa: F401 - the histogram, on this module's stores
    test_a_bucket_end_narrows_a_logs_query_to_the_bucket,
    test_an_empty_store_has_an_empty_last_hour,
    test_an_open_range_runs_from_the_oldest_entry_to_now,
    test_bad_parameters_are_a_400_naming_them,
    test_counts_per_bucket_and_level,
    test_filters_search_exclusions_and_probes_apply,
    test_the_range_is_cut_to_since_and_until,
)
from tests.unit.test_aggregator_query import (  # noqa: F401 - collected again here, with this module's stores
    test_api_logs_bad_parameters_are_400_naming_them,
    test_api_logs_envelope_order_and_fields,
    test_exclusions_only_pages_walk_every_kept_entry_once_across_windows,
    test_full_text_search,
    test_hostile_search_text_is_never_a_500,
    test_legacy_logs_default_limit_and_chronological_order,
    test_legacy_logs_filters,
    test_legacy_logs_limit_is_capped_and_validated,
    test_legacy_logs_orders_a_page_by_timestamp_not_arrival,
    test_legacy_logs_search_order_and_unknown_parameters,
    test_pagination_walks_every_entry_once,
    test_probe_entries_are_included_excluded_or_alone,
    test_search_leaves_out_excluded_words,
    test_several_pods_repeated_or_comma_separated,
    test_tampered_or_foreign_cursors_are_400,
)

pytestmark = pytest.mark.e2e


class ReadYourWrites(ClickHouseStore):
    """The ClickHouse store, waiting after each insert until its entries are readable, so a test can
    write then read at once (the production store makes readers wait `settle` instead)."""

    def insert(self, rows, timeout=30.0):
        result = super().insert(rows, timeout)
        self.wait_visible()
        return result


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    handle = ClickHouseCluster(tmp_path_factory.mktemp("clickhouse"), shards=2).start()
    try:
        yield handle
    finally:
        handle.stop()


def open_store(kind: str, tmp_path: Path, cluster_factory) -> Store | ClickHouseStore:
    if kind == "sqlite":
        return Store(str(tmp_path / "logs.db"))
    database = f"t_{uuid.uuid4().hex[:12]}"
    return ReadYourWrites(parse_url(cluster_factory().store_url(database, settle="0.05")), poll_seconds=0.05)


@pytest.fixture(params=["sqlite", "clickhouse"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store | ClickHouseStore]:
    opened = open_store(request.param, tmp_path, lambda: request.getfixturevalue("cluster"))
    yield opened
    opened.close()


@pytest.fixture
def app(tmp_path: Path, store) -> Iterator[Flask]:
    application = create_app(make_settings(tmp_path), store=store, start_background=False)
    yield application
    state_of(application).close()


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def token(app: Flask) -> str:
    return token_of(app)


def entry_ids(chunk: str) -> list[str]:
    import json
    return [json.loads(line[6:])["id"] for line in chunk.splitlines() if line.startswith("data: ")]


def test_the_tail_sends_the_backlog_then_new_entries_matching_its_filters(app, store):
    client, token = app.test_client(), token_of(app)
    post(client, [entry(i) for i in range(3)], token)
    start = state_of(app).store.page(LogQuery(), order="asc", after=None, limit=1).rows[0][0]
    events = stream_events(store, LogQuery(levels=("error",), text=parse_search("boom")), start, heartbeat=30,
                           stop=lambda: False)
    assert next(events).startswith("retry: ")
    writer = threading.Thread(target=post, args=(client, [entry(10, level="error", message="boom"),
                                                          entry(11, level="info", message="boom"),
                                                          entry(12, level="ERROR", message="boom again")], token))
    writer.start()
    chunk = next(events)
    writer.join()
    seen = entry_ids(chunk)
    while len(seen) < 2:
        seen += entry_ids(next(events))
    assert seen == ["user:abc:10", "user:abc:12"]


def test_the_tail_endpoint_resumes_after_last_event_id(app):
    client, token = app.test_client(), token_of(app)
    post(client, [entry(i) for i in range(5)], token)
    seqs = [row[0] for row in state_of(app).store.page(LogQuery(), order="asc", after=None, limit=10).rows]
    response = client.get("/api/v1/tail", headers={"Last-Event-ID": str(seqs[2])}, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    seen: list[str] = []
    for _, chunk in zip(range(50), response.response, strict=False):
        seen += entry_ids(chunk.decode() if isinstance(chunk, bytes) else chunk)
        if len(seen) >= 2:
            break
    response.close()
    assert seen == ["user:abc:3", "user:abc:4"]


def test_a_batch_sent_twice_is_stored_once_and_counted_as_duplicates(client, token):
    first = post(client, [entry(i) for i in range(20)], token).json
    again = post(client, [entry(i) for i in range(25)], token).json
    assert (first["stored"], first["duplicates"]) == (20, 0)
    assert (again["stored"], again["duplicates"]) == (5, 20)
    listed = client.get("/api/v1/logs?limit=100&order=asc").json["entries"]
    assert [e["id"] for e in listed] == [f"user:abc:{i}" for i in range(25)]


def test_a_second_copy_that_slipped_past_the_lookup_is_never_shown(cluster, tmp_path):
    # Two aggregators storing one id at the same moment both find it new: both copies land on the
    # id's shard. Until the merge keeps the first, pages and the tail drop the later copy.
    store = open_store("clickhouse", tmp_path, lambda: cluster)
    try:
        from podvisor.aggregator.store import chsql
        from tests.unit.test_aggregator_fixtures import insert_entries
        insert_entries(store, [entry(i) for i in range(3)])
        first = {row[1]: row[0] for row in store._select(LogQuery(), "asc", None, 10, store.last_seq)}
        rows = [(f"user:abc:{i}", 0, "user-service", "user", "info", None, "copy", '{"copy":true}') for i in (1, 2)]
        seqs, _ = store._clock.take(2)
        store._taken = seqs[-1]
        store.node.execute(chsql.insert(store.db), data=chsql.tsv_rows(rows, seqs),
                           settings={"insert_distributed_sync": 1})
        store.wait_visible()
        assert len(store._select(LogQuery(), "asc", None, 10, store.last_seq)) == 5  # both copies are stored
        page = store.page(LogQuery(), order="asc", after=None, limit=10)
        assert [seq for seq, _body in page.rows] == sorted(first.values())
        assert all('"copy"' not in body for _seq, body in page.rows)
        after_all = store.page(LogQuery(), order="asc", after=max(first.values()), limit=10)
        assert after_all.rows == []  # the tail's next read: the later copies are not new entries
    finally:
        store.close()
