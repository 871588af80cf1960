"""The ClickHouse store's SQL: schema, insert format and the keyset-paged select of a LogQuery.

Pure text, no I/O. Written for what Debian's clickhouse-server 18.16 reads and current releases
still do (checked by tests on 18.16 and by tests/compat/chdb_check.py on a current engine): no
DateTime64 (times are epoch milliseconds in an Int64), no JSON type or JSON* functions (the
simpleJSON `visitParam*` functions read top-level fields), no hasToken or multiSearchAny (18.16 has
neither: full text is positionCaseInsensitiveUTF8 plus a token-boundary `match`), no skipping
indexes, no query parameters (literals are escaped here, every one through `literal()`).

Tables, per node: `logs_local`, a ReplacingMergeTree keyed (ORDER BY) by `id`, one partition per
UTC day of `ts` (retention drops whole days); and `logs`, a Distributed table over the cluster's
`logs_local` sharded by cityHash64(id), so every copy of an id lands on the same shard, where the
merge keeps one. `rank` = 2^64-1-seq makes the merge keep the copy stored first (the lowest seq),
the one readers saw first.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import msgspec

from podvisor.aggregator.histogram import LEVEL_SPELLINGS
from podvisor.aggregator.query import LogQuery, Term, TextSearch, service_names

DAY_MS = 86_400_000
RANK_TOP = (1 << 64) - 1
LOCAL = "logs_local"
DISTRIBUTED = "logs"
COLUMNS = ("id", "seq", "rank", "ts", "service_name", "pod", "level", "request_id", "message", "body")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOKEN = re.compile(r"[^\W_]+")  # FTS5's unicode61 tokens: runs of letters and digits
_NOT_TOKEN = r"[^\pL\pN]"
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0", "\b": "\\b",
            "\f": "\\f"}
_TSV = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def identifier(name: str) -> str:
    """A database, table or cluster name as SQL; ValueError unless plain letters, digits and _."""
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a plain name (letters, digits, _; 64 at most)")
    return name


def literal(value: str) -> str:
    """A ClickHouse string literal: quoted, with backslash, quote and control characters escaped."""
    out = []
    for ch in value:
        escaped = _ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def literal_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(literal(v) for v in values) + ")"


def create_database(db: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {identifier(db)}"


def create_local(db: str) -> str:
    """The shard's own table (run on every node)."""
    return (f"CREATE TABLE IF NOT EXISTS {identifier(db)}.{LOCAL} (id String, seq UInt64, rank UInt64, ts Int64, "
            "service_name String, pod String, level String, request_id String, message String, body String) "
            f"ENGINE = ReplacingMergeTree(rank) PARTITION BY intDiv(ts, {DAY_MS}) ORDER BY id")


def create_distributed(db: str, cluster: str) -> str:
    """The table the aggregator reads and writes (run on every node it may talk to)."""
    db = identifier(db)
    return (f"CREATE TABLE IF NOT EXISTS {db}.{DISTRIBUTED} AS {db}.{LOCAL} "
            f"ENGINE = Distributed({identifier(cluster)}, {db}, {LOCAL}, cityHash64(id))")


def insert(db: str) -> str:
    """The INSERT whose body is `tsv_rows()` (one request per batch)."""
    return f"INSERT INTO {identifier(db)}.{DISTRIBUTED} ({', '.join(COLUMNS)}) FORMAT TabSeparated"


def compact_json(text: str) -> str:
    """`text` without whitespace outside its strings (numbers and strings kept as written): the
    visitParam functions that read fields on 18.16 find `"key":value` only in that form, and
    entries are stored as they were received (`{"status": 500}` from a shipper's encoder)."""
    try:
        return msgspec.json.format(text, indent=-1)
    except (msgspec.DecodeError, UnicodeEncodeError):
        return text  # not JSON the store can read fields of anyway: kept as it came


def tsv_rows(rows: Sequence[tuple], seqs: Sequence[int]) -> bytes:
    """TabSeparated lines for store rows (base.Row order: id, ts, service, pod, level, request id,
    message, body) with their seqs; None is stored as ''."""
    lines = []
    for row, seq in zip(rows, seqs, strict=True):
        eid, ts, service, pod, level, request_id, message, body = row
        body = compact_json(body)
        fields = (eid, str(seq), str(RANK_TOP - seq), str(ts), service or "", pod or "", level or "",
                  request_id or "", message, body)
        lines.append("\t".join(f.translate(_TSV) for f in fields))
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def existing_ids(db: str, ids: Sequence[str]) -> str:
    """The ids of `ids` already stored (a primary-key lookup on each shard)."""
    return f"SELECT DISTINCT id FROM {identifier(db)}.{DISTRIBUTED} WHERE id IN {literal_list(ids)} FORMAT TSV"


def first_copies(db: str, ids: Sequence[str]) -> str:
    """(id, lowest seq) of the ids of `ids` stored more than once (not merged yet)."""
    return (f"SELECT id, min(seq) FROM {identifier(db)}.{DISTRIBUTED} WHERE id IN {literal_list(ids)} "
            "GROUP BY id HAVING count() > 1 FORMAT TSV")


def term_condition(term: Term) -> str | None:
    """`term` present in `message` as whole tokens (a phrase: in a row; a prefix term: its last
    token begins one), case folded: what FTS5 finds. A cheap substring test first, then the token
    boundaries. None for a term without a token (FTS5 ignores it too)."""
    tokens = [t.lower() for t in _TOKEN.findall(term.text)]
    if not tokens:
        return None
    pattern = f"(^|{_NOT_TOKEN})" + f"{_NOT_TOKEN}+".join(tokens) + ("" if term.prefix else f"({_NOT_TOKEN}|$)")
    longest = max(tokens, key=len)
    return (f"(positionCaseInsensitiveUTF8(message, {literal(longest)}) > 0 AND "
            f"match(lowerUTF8(message), {literal(pattern)}))")


def search_condition(search: TextSearch) -> str | None:
    """Every included term in `message` and no excluded one (query.TextSearch)."""
    conditions = [c for c in map(term_condition, search.include) if c]
    conditions += [f"NOT {c}" for c in map(term_condition, search.exclude) if c]
    return " AND ".join(conditions) if conditions else None


def _equal_any(column: str, values: Sequence[str]) -> str:
    if len(values) == 1:
        return f"{column} = {literal(values[0])}"
    return f"{column} IN {literal_list(values)}"


def where(query: LogQuery) -> list[str]:
    """The conditions of `query` (filters, time range, probes, fields, search)."""
    out = []
    if query.service is not None:
        out.append(_equal_any("service_name", service_names(query.service)))
    if query.pods:
        out.append(_equal_any("pod", query.pods))
    if query.levels:
        out.append(_equal_any("level", query.levels))
    if query.request_id is not None:
        out.append(_equal_any("request_id", (query.request_id,)))
    if query.since_ms is not None:
        out.append(f"ts >= {int(query.since_ms)}")
    if query.until_ms is not None:
        out.append(f"ts <= {int(query.until_ms)}")
    if query.probes != "include":
        # Only a JSON true marks a probe (not "true" or 1), as in the SQLite store.
        out.append(f"visitParamExtractRaw(body, 'probe') {'=' if query.probes == 'only' else '!='} 'true'")
    for name, value in query.fields:
        # A string value by its text, anything else by its JSON spelling (status=500, ok=true).
        key, want = literal(name), literal(value)
        out.append(f"(visitParamHas(body, {key}) AND (visitParamExtractString(body, {key}) = {want} "
                   f"OR visitParamExtractRaw(body, {key}) = {want}))")
    if query.text:
        condition = search_condition(query.text)
        if condition is not None:
            out.append(condition)
    return out


def volume(db: str, query: LogQuery, *, since: int, until: int, start: int, width: int, visible: int) -> str:
    """(bucket index, entries, then debug, info, warning, error, critical among them) of matching
    entries with seq <= `visible` in [since, until], in buckets of `width` ms from `start`; each id
    counted once (a copy not merged yet is not a second entry)."""
    conditions = [f"seq <= {int(visible)}", *where(query), f"ts >= {int(since)}", f"ts <= {int(until)}"]
    levels = ", ".join(f"uniqExactIf(id, level IN {literal_list(names)})" for names in LEVEL_SPELLINGS)
    return (f"SELECT intDiv(ts - {int(start)}, {int(width)}) AS bucket, uniqExact(id), {levels} "
            f"FROM {identifier(db)}.{DISTRIBUTED} WHERE " + " AND ".join(conditions)
            + " GROUP BY bucket ORDER BY bucket FORMAT TSV")


def select_page(db: str, query: LogQuery, *, order: str, after: int | None, limit: int,
                visible: int) -> str:
    """(seq, id, ts, body) of matching entries with seq <= `visible`, in seq order after `after`."""
    conditions = [f"seq <= {int(visible)}", *where(query)]
    if after is not None:
        conditions.append(f"seq {'<' if order == 'desc' else '>'} {int(after)}")
    return (f"SELECT seq, id, ts, body FROM {identifier(db)}.{DISTRIBUTED} WHERE " + " AND ".join(conditions)
            + f" ORDER BY seq {'DESC' if order == 'desc' else 'ASC'} LIMIT {int(limit)} FORMAT TabSeparated")


def state(db: str, visible: int) -> str:
    """(highest visible seq, entries, oldest ts): what the store's poller keeps."""
    return (f"SELECT maxIf(seq, seq <= {int(visible)}), count(), min(ts) FROM {identifier(db)}.{DISTRIBUTED} "
            "FORMAT TSV")


def partitions(db: str) -> str:
    """(partition id = UTC day number, bytes on disk) of the node's active parts."""
    return (f"SELECT partition_id, sum(bytes_on_disk), sum(rows) FROM system.parts WHERE database = {literal(db)} "
            f"AND table = '{LOCAL}' AND active GROUP BY partition_id ORDER BY partition_id FORMAT TSV")


def drop_partition(db: str, day: int) -> str:
    return f"ALTER TABLE {identifier(db)}.{LOCAL} DROP PARTITION {int(day)}"


def unescape_tsv(field: str) -> str:
    """A TabSeparated field back to its text."""
    if "\\" not in field:
        return field
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "b": "\b", "f": "\f",
                                       "'": "'", "\\": "\\"}.get(m.group(1), "\\" + m.group(1)), field)
