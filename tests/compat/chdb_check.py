"""The ClickHouse store's SQL on a current ClickHouse engine, embedded by chDB.

The test suite runs the store on Debian's clickhouse-server 18.16 (tests/e2e/test_store_queries.py);
users run current releases. This script runs the same DDL and every statement chsql.py builds on the
ClickHouse that the `chdb-core` package embeds, and checks the answers. It is not part of the suite:
chdb-core is a 180 MB wheel (a 555 MB library) that pulls pandas and pyarrow. Run it by hand, in a
virtualenv of its own, after changing chsql.py:

    python3 -m venv /tmp/chdb && /tmp/chdb/bin/pip install chdb-core -e .
    /tmp/chdb/bin/python -m tests.compat.chdb_check

chDB runs no cluster, so the Distributed table's DDL is only parsed (EXPLAIN AST) and `logs` is a
Merge table over `logs_local` here; everything else (the ReplacingMergeTree, inserts, selects,
search, field filters, partitions, retention) runs for real. Exit status 0 when every check passes.
"""
from __future__ import annotations

import sys
import tempfile

from podvisor.aggregator.query import LogQuery, fts_expression
from podvisor.aggregator.store import chsql
from podvisor.aggregator.store.chconfig import SeqClock
from podvisor.aggregator.validation import validate

DB = "pvcheck"


def main() -> int:
    from chdb import session  # imported here: only this script needs it

    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)

        def run(sql: str) -> str:
            return str(db.query(sql, "TSV"))

        version = run("SELECT version()").strip()
        run(chsql.create_database(DB))
        run(chsql.create_local(DB))
        run("EXPLAIN AST " + chsql.create_distributed(DB, "podvisor"))
        run(f"CREATE TABLE {DB}.logs AS {DB}.logs_local ENGINE = Merge({DB}, '^logs_local$')")
        entries = [
            {"id": "user:a:0", "timestamp": "2024-05-01T10:00:00.000Z", "level": "INFO", "pod": "user",
             "service_name": "user-service", "message": "user created alice", "status": 201, "request_id": "r-1"},
            {"id": "order:a:1", "timestamp": "2024-05-01T10:00:01.000Z", "level": "error", "pod": "order",
             "service_name": "order-service", "message": "payment declined for order 7", "status": 500},
            {"id": "user:a:2", "timestamp": "2024-05-02T00:00:00.000Z", "level": "error", "pod": "user",
             "service_name": "user-service", "message": "Database TIMEOUT while saving café", "status": "500",
             "probe": True, "nested": {"quote": "it's \\ \t\n"}},
        ]
        batch = validate(entries, 1 << 20, 0)
        insert = chsql.insert(DB).replace(f"{DB}.logs ", f"{DB}.logs_local ")  # a Merge table takes no writes
        seqs, _ = SeqClock(0).take(len(batch.rows))
        run(insert + "\n" + chsql.tsv_rows(batch.rows, seqs).decode())
        visible = seqs[-1]

        def ids(query: LogQuery, order: str = "asc", after: int | None = None) -> list[str]:
            text = run(chsql.select_page(DB, query, order=order, after=after, limit=10, visible=visible))
            return [chsql.unescape_tsv(line.split("\t")[1]) for line in text.splitlines()]

        checks = {
            "all, asc": (ids(LogQuery()), ["user:a:0", "order:a:1", "user:a:2"]),
            "all, desc": (ids(LogQuery(), "desc"), ["user:a:2", "order:a:1", "user:a:0"]),
            "after a cursor": (ids(LogQuery(), "asc", seqs[0]), ["order:a:1", "user:a:2"]),
            "service": (ids(LogQuery(service="user")), ["user:a:0", "user:a:2"]),
            "pods and levels": (ids(LogQuery(pods=("user", "order"), levels=("error",))), ["order:a:1", "user:a:2"]),
            "request id": (ids(LogQuery(request_id="r-1")), ["user:a:0"]),
            "time range": (ids(LogQuery(since_ms=1714557600500, until_ms=1714608000000)), ["order:a:1", "user:a:2"]),
            "probes only": (ids(LogQuery(probes="only")), ["user:a:2"]),
            "probes excluded": (ids(LogQuery(probes="exclude")), ["user:a:0", "order:a:1"]),
            "field: number and string": (ids(LogQuery(fields=(("status", "500"),))), ["order:a:1", "user:a:2"]),
            "field: missing is no match": (ids(LogQuery(fields=(("nothing", ""),))), []),
            "search: word, any case": (ids(LogQuery(text=fts_expression("timeout"))), ["user:a:2"]),
            "search: not a substring": (ids(LogQuery(text=fts_expression("time"))), []),
            "search: prefix": (ids(LogQuery(text=fts_expression("time*"))), ["user:a:2"]),
            "search: phrase": (ids(LogQuery(text=fts_expression('"payment declined"'))), ["order:a:1"]),
            "search: phrase order": (ids(LogQuery(text=fts_expression('"declined payment"'))), []),
            "search: accents": (ids(LogQuery(text=fts_expression("CAFÉ"))), ["user:a:2"]),
            "existing ids": (sorted(run(chsql.existing_ids(DB, ["user:a:0", "nope"])).split()), ["user:a:0"]),
        }
        run(insert + "\n" + chsql.tsv_rows(batch.rows[:1], [visible + 32]).decode())
        checks["first copies"] = (run(chsql.first_copies(DB, ["user:a:0", "order:a:1"])).split(),
                                  ["user:a:0", str(seqs[0])])
        run(f"OPTIMIZE TABLE {DB}.logs_local FINAL")
        checks["the merge keeps the first copy"] = (
            run(f"SELECT seq FROM {DB}.logs_local WHERE id = 'user:a:0'").split(), [str(seqs[0])])
        state = run(chsql.state(DB, visible)).split()
        checks["state"] = (state, [str(visible), "3", "1714557600000"])
        days = [line.split("\t")[0] for line in run(chsql.partitions(DB)).splitlines()]
        checks["partitions are UTC days"] = (days, ["19844", "19845"])
        run(chsql.drop_partition(DB, 19844))
        checks["retention drops a day"] = (ids(LogQuery()), ["user:a:2"])
        body = run(f"SELECT body FROM {DB}.logs WHERE id = 'user:a:2'").strip()
        checks["bodies come back intact"] = (chsql.unescape_tsv(body), batch.rows[2][7])
    failed = 0
    for name, (got, want) in checks.items():
        ok = got == want
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": got {got!r}, want {want!r}"))
    print(f"ClickHouse {version} (chDB): {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
