"""Scenario 12: podvisor's logger side by side with a real C shipper, Debian's rsyslog.

One stack (the user pod and the aggregator). Each run appends the same number of the same lines as
fast as possible, once to a file in the pod's log folder (its logger ships them to POST /logs) and
once to a file rsyslog tails (`imfile`, shipped by `omelasticsearch` in bulk mode to the aggregator's
`_bulk`, with a logger credential of its own as the basic-auth password: see rsyslog.py), in
alternating order; each is timed from the first write until the store holds every line. Then the
aggregator alone: the same lines as pre-built bodies posted by 4 keep-alive clients, through each
shipper's API (`_bulk` as rsyslog, `POST /logs` as the logger), to show whether the aggregator is
faster than either shipper can feed it.
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from podvisor.aggregator.credentials import mint
from podvisor.bench import rsyslog
from podvisor.bench.context import Bench
from podvisor.bench.loglines import lines as make_lines
from podvisor.bench.pipeline import NO_RETENTION, POD, pipe
from podvisor.bench.report import Goal
from podvisor.bench.stacks import entries, process_pid
from podvisor.testing.harness import StackHandle

RSYSLOG_POD = "rsyslog"  # the credential rsyslog ships with: its entries carry this pod
CLIENTS = 4
BULK_LINES = 1000


def bulk_bodies(run: str, count: int) -> list[bytes]:
    """`_bulk` bodies of BULK_LINES documents each (the bench lines, ids of their own)."""
    bodies = []
    for start in range(0, count, BULK_LINES):
        docs = make_lines(run, start, min(BULK_LINES, count - start)).splitlines()
        bodies.append(b"".join(b'{"index":{"_id":"%s:%d"}}\n%s\n' % (run.encode(), start + n, doc)
                               for n, doc in enumerate(docs)))
    return bodies


def logs_bodies(run: str, count: int) -> list[bytes]:
    """POST /logs bodies as the logger sends them: gzip JSON lists of BULK_LINES entries, each the
    bench line with the logger's fields appended to its text."""
    bodies = []
    for start in range(0, count, BULK_LINES):
        docs = make_lines(run, start, min(BULK_LINES, count - start)).splitlines()
        entries = (doc[:-1] + b',"id":"%s:%d","pod":"%s","service_name":"%s-service","environment":"bench",'
                   b'"host":"bench","source":"direct.log"}' % (run.encode(), start + n, POD.encode(), POD.encode())
                   for n, doc in enumerate(docs))
        bodies.append(gzip.compress(b"[" + b",".join(entries) + b"]", compresslevel=1))
    return bodies


# The aggregator alone, through each shipper's API: its path, the body's headers, and how an answer
# that stored everything reads.
ALONE = {
    "_bulk": ("/_bulk", {"Content-Type": "application/x-ndjson"}, bulk_bodies,
              lambda status, answer: status == 200 and b'"errors":true' not in answer),
    "/logs": ("/logs", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, logs_bodies,
              lambda status, answer: status == 202 and b'"rejected":0' in answer),
}


def aggregator_alone(h: StackHandle, count: int, api: str) -> float:
    """Lines/s the aggregator stores when nothing else works: pre-built bodies of `api` (a key of
    ALONE), posted by CLIENTS keep-alive clients."""
    path, content, make, stored_all = ALONE[api]
    run = f"direct-{uuid.uuid4().hex[:10]}"
    bodies = make(run, count)
    parts = urlsplit(h.aggregator_url)
    headers = {**content, **h.auth()}
    failures: list[str] = []

    def client(mine: list[bytes]) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            for body in mine:
                conn.request("POST", path, body=body, headers=headers)
                reply = conn.getresponse()
                answer = reply.read()
                if not stored_all(reply.status, answer):
                    failures.append(f"{reply.status} {answer[:300]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(bodies[n::CLIENTS],)) for n in range(CLIENTS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures:
        raise RuntimeError(f"{len(failures)} {api} requests failed, first: {failures[0]}")
    return count / elapsed


def run(bench: Bench) -> None:
    sizes, result = bench.sizes, bench.result(12)
    count = sizes.rsyslog_lines
    bench.say("12 rsyslog: starting a one-pod stack and rsyslogd")
    with bench.stacks.running([POD], extra_env=NO_RETENTION) as h:
        logger, aggregator = process_pid(h, f"{POD}-logger"), process_pid(h, "aggregator")
        credential = mint(h.token(), RSYSLOG_POD, "rsyslog-bench")
        folder = bench.workdir / "rsyslog"
        shipped = folder / "shipped.log"
        folder.mkdir(exist_ok=True)
        shipped.touch()
        with rsyslog.running(folder, shipped, h.aggregator_url, credential, RSYSLOG_POD) as proc:
            _warm_up(h, shipped, proc, folder)
            per_m = 1e6 / count
            for i in range(sizes.runs):
                last = i == sizes.runs - 1
                order = ["rsyslog", "podvisor"] if i % 2 else ["podvisor", "rsyslog"]
                rate, cpu = {}, {}
                for shipper in order:
                    bench.say(f"12 rsyslog run {i + 1}/{sizes.runs}: {count:,} lines through {shipper}")
                    if shipper == "podvisor":
                        path = h.pod_dir(POD) / "logs" / f"side{i}.log"
                        pids = {"logger": logger, "aggregator": aggregator}
                    else:
                        path, pids = shipped, {"rsyslog": proc.pid, "aggregator": aggregator}
                    with bench.profiled(12, pids, when=last and shipper == "podvisor"):
                        rate[shipper], cpu[shipper] = pipe(h, path, count, pids, bench, shipper)
                alone = {}
                for api in ALONE:
                    bench.say(f"12 rsyslog run {i + 1}/{sizes.runs}: {count:,} lines posted to {api} directly")
                    alone[api] = aggregator_alone(h, count, api)
                if proc.poll() is not None:
                    raise RuntimeError(f"rsyslogd exited {proc.returncode}: {_output(folder)}")
                result.figure("rsyslog: end to end, write to queryable", "lines/s").add(rate["rsyslog"])
                result.figure("podvisor logger: end to end (same run)", "lines/s").add(rate["podvisor"])
                result.figure("podvisor / rsyslog end-to-end rate", "x", Goal(">=", 0.8)).add(
                    rate["podvisor"] / rate["rsyslog"])
                result.figure("rsyslog CPU per million lines", "s").add(cpu["rsyslog"]["rsyslog"] * per_m)
                result.figure("podvisor logger CPU per million lines", "s").add(cpu["podvisor"]["logger"] * per_m)
                result.figure("aggregator CPU per million lines, from rsyslog (_bulk)", "s").add(
                    cpu["rsyslog"]["aggregator"] * per_m)
                result.figure("aggregator CPU per million lines, from the logger (/logs)", "s").add(
                    cpu["podvisor"]["aggregator"] * per_m)
                # Faster than either shipper can feed it: each against the shipper using the same API.
                result.figure("aggregator alone: _bulk, 4 clients", "lines/s").add(alone["_bulk"])
                result.figure("aggregator alone: /logs, 4 clients", "lines/s").add(alone["/logs"])
                result.figure("aggregator alone / rsyslog (both _bulk)", "x", Goal(">=", 1.0)).add(
                    alone["_bulk"] / rate["rsyslog"])
                result.figure("aggregator alone / podvisor logger (both /logs)", "x", Goal(">=", 1.0)).add(
                    alone["/logs"] / rate["podvisor"])
        refused = rsyslog.errors(folder)
        if refused:
            raise RuntimeError(f"rsyslog reports refused bulk items: {refused[:500]}")
    result.notes.append(
        f"{count:,} lines of ~200 bytes a run and shipper, appended as fast as possible; rsyslog "
        f"{_version()} with imfile (inotify) and omelasticsearch (bulkmode, batches of 1,000, basic auth); "
        "podvisor's logger with its defaults; both into the same aggregator, timed until all are stored"
    )


def _warm_up(h: StackHandle, shipped: Path, proc, folder: Path) -> None:
    """One line through rsyslog before timing: its first health check and connection are not shipping."""
    run = f"warm-{uuid.uuid4().hex[:8]}"
    base = entries(h)
    with open(shipped, "ab") as out:
        out.write(make_lines(run, 0, 1))
    deadline = time.monotonic() + 60
    while entries(h) <= base:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"rsyslog shipped nothing within 60 s: {_output(folder)}\n{h.output(10)}")
        time.sleep(0.05)


def _output(folder: Path) -> str:
    path = folder / "rsyslogd.out"
    return path.read_text(errors="replace")[-1500:] if path.exists() else "(no output)"


def _version() -> str:
    import subprocess

    try:
        first = subprocess.run([rsyslog.rsyslogd(), "-v"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, RuntimeError, subprocess.SubprocessError):
        return "(version unknown)"
    return first.split("\n", 1)[0].replace("rsyslogd", "").strip().split(" (")[0]
