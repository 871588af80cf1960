"""GET /api/v1/histogram: how many entries match the filters, per time bucket and level."""
from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from podvisor.aggregator.histogram import DEFAULT_BUCKETS, LEVEL_GROUPS, MAX_BUCKETS, count
from podvisor.aggregator.query import FILTER_PARAMS, check_known, parse_count, parse_filters
from podvisor.aggregator.state import get_state
from podvisor.aggregator.timestamps import ms_to_iso
from podvisor.aggregator.views.access import require_read

bp = Blueprint("histogram", __name__)

HISTOGRAM_PARAMS = FILTER_PARAMS | {"q", "probes", "buckets"}


@bp.get("/api/v1/histogram")
@require_read
def histogram() -> Response:
    """{"ok": true, "since", "until", "bucket_seconds", "levels", "total", "buckets": [{"start",
    "end", "total", "counts": {level: n}}]}: the filters of /api/v1/logs over since..until (an open
    start is the oldest entry, an open end now) in at most `buckets` buckets of a round width.
    A bucket's `end` is its last millisecond: give it as `until` to narrow a query to the bucket."""
    state = get_state()
    args = request.args
    check_known(args, HISTOGRAM_PARAMS)
    query = parse_filters(args, extended=True)
    wanted = parse_count(args, "buckets", DEFAULT_BUCKETS, MAX_BUCKETS)
    result = count(state.store, query, wanted=wanted, now_ms=int(time.time() * 1000), metrics=state.metrics)
    width = result.buckets.width_ms
    buckets = [{"start": ms_to_iso(start), "end": ms_to_iso(start + width - 1), "total": sum(counts.values()),
                "counts": counts}
               for start, counts in zip(result.buckets.starts(), result.counts, strict=True)]
    return jsonify(ok=True, since=ms_to_iso(result.since_ms), until=ms_to_iso(result.until_ms),
                   bucket_seconds=width / 1000, levels=list(LEVEL_GROUPS), total=result.total, buckets=buckets)
