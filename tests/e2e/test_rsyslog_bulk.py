"""A real C shipper into the aggregator: Debian's rsyslog (imfile + omelasticsearch in bulk mode)
ships a file to the `_bulk` endpoint with a logger credential as its basic-auth password; every
line is stored once, under the credential's pod, and queryable (filters, full text, time range).

Needs rsyslog and rsyslog-elasticsearch (`.ci/run` installs them): without them this test fails.
"""
from __future__ import annotations

import json
import signal
import uuid

import pytest
import requests

from podvisor.aggregator.credentials import mint
from podvisor.bench import rsyslog
from podvisor.bench.stacks import spec
from podvisor.testing.harness import StackHandle
from podvisor.testing.waiting import wait_for

pytestmark = pytest.mark.e2e
POD = "rsyslog"


def query(stack: StackHandle, **params) -> list[dict]:
    reply = requests.get(stack.aggregator_url + "/api/v1/logs", params={"limit": 1000, **params},
                         headers=stack.auth(), timeout=10)
    reply.raise_for_status()
    return reply.json()["entries"]


def line(run: str, n: int, **extra) -> str:
    return json.dumps({"timestamp": f"2026-01-02T03:04:{n % 60:02d}.000Z", "level": "info" if n % 4 else "error",
                       "request_id": run, "message": f"rsyslog line {n} zebracrossing", "n": n, **extra})


def test_rsyslog_bulk_requests_are_stored_once_and_queryable(podvisor_factory, tmp_path):
    try:
        rsyslog.rsyslogd()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    stack = podvisor_factory(spec(["user"]))
    folder = tmp_path / "rs"
    shipped = folder / "shipped.log"
    folder.mkdir()
    shipped.write_text("")
    credential = mint(stack.token(), POD, "rsyslog-demo")
    run = uuid.uuid4().hex[:12]

    def output() -> str:
        out = folder / "rsyslogd.out"
        return (out.read_text(errors="replace") if out.exists() else "") + "\n" + stack.output(10)

    with rsyslog.running(folder, shipped, stack.aggregator_url, credential, POD) as proc:
        with open(shipped, "a", encoding="utf-8") as out:
            out.write("".join(line(run, n) + "\n" for n in range(500)))
            out.write("[1, 2, 3]\n")  # JSON but not an object: refused per item, reported to rsyslog
            out.write(line(run, 500) + "\n")
        stored = wait_for(lambda: len(query(stack, request_id=run)) == 501 and query(stack, request_id=run), 30,
                          "rsyslog's 501 lines to be stored", output=output, procs=[proc])
        assert sorted(entry["n"] for entry in stored) == list(range(501))
        assert {(entry["pod"], entry["service_name"]) for entry in stored} == {(POD, "rsyslog-demo")}
        assert all(entry["id"].startswith(f"{POD}:rsyslog-") for entry in stored)
        assert len({entry["id"] for entry in stored}) == 501
        errors = query(stack, request_id=run, level="error")
        assert len(errors) == 126 and all(entry["n"] % 4 == 0 for entry in errors)
        assert len(query(stack, q="zebracrossing", pod=POD)) == 501
        window = query(stack, request_id=run, since="2026-01-02T03:04:10Z", until="2026-01-02T03:04:19.999Z")
        assert sorted({entry["n"] % 60 for entry in window}) == list(range(10, 20))
        wait_for(lambda: "document must be a JSON object" in rsyslog.errors(folder), 10,
                 "rsyslog's error file to name the refused item", output=output)

        # rsyslog re-reads from its state after a restart; anything it sends again has the same _id.
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    with rsyslog.running(folder, shipped, stack.aggregator_url, credential, POD) as again:
        with open(shipped, "a", encoding="utf-8") as out:
            out.write(line(run, 501) + "\n")
        wait_for(lambda: len(query(stack, request_id=run)) == 502, 30, "the line after the restart",
                 output=output, procs=[again])
    assert len(query(stack, request_id=run)) == 502
