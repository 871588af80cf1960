"""No line can stop a pod's shipping, and bad input to the log API is the caller's 400, in JSON.

One default stack for the module. Lines go straight into the user pod's app.log (as a careless app
would write them) between normal lines; every normal line must be stored within seconds, and the
bad one stored (numbers out of float range as text, NaN as a string) or wrapped as text with its
`json_error`.
"""
from __future__ import annotations

import json
import sqlite3
import uuid

import pytest
import requests

from podvisor.testing.harness import StackHandle

pytestmark = pytest.mark.e2e
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


def search(stack: StackHandle, marker: str) -> list[dict]:
    reply = requests.get(stack.aggregator_url + "/api/v1/logs", params={"q": marker, "order": "asc"},
                         headers=stack.auth(), timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()["entries"]


def write_lines(stack: StackHandle, lines: list[str]) -> None:
    with open(stack.pod_dir("user") / "logs" / "app.log", "a", encoding="utf-8") as log:
        log.write("".join(line + "\n" for line in lines))


def test_poison_lines_leave_their_neighbours_stored_within_seconds(stack):
    marker = uuid.uuid4().hex
    poison = {
        "far": f'{{"message": "far {marker}", "v": 1e400}}',
        "deep": f'{{"message": "deep {marker}", "x": ' + "[" * 980 + "]" * 980 + "}",
        "nan": f'{{"message": "nan {marker}", "v": NaN}}',
    }
    lines = []
    for n, line in enumerate(poison.values()):
        lines += [json.dumps({"message": f"normal {n} {marker}"}), line]
    lines.append(json.dumps({"message": f"normal last {marker}"}))
    write_lines(stack, lines)

    entries = stack.wait_for(lambda: (found := search(stack, marker)) and len(found) == len(lines) and found,
                             TIMEOUT, "every line of the run stored")
    by_message = {e["message"].split()[0]: e for e in entries if not e["message"].startswith("normal")}
    assert sorted(e["message"] for e in entries if e["message"].startswith("normal")) == sorted(
        f"normal {n} {marker}" for n in [0, 1, 2, "last"])
    assert by_message["far"]["v"] == "1e400"
    assert by_message["nan"]["v"] == "NaN"
    deep = next(e for e in entries if "json_error" in e)
    assert deep["json_error"] == "nesting deeper than 100" and deep["message"] == poison["deep"]
    assert not (stack.pod_dir("user") / "logger" / "dead-letter.jsonl").exists()


def test_a_deep_entry_in_a_posted_batch_is_rejected_alone(stack):
    marker = uuid.uuid4().hex
    deep = '{"message": "deep", "x": ' + "[" * 980 + "]" * 980 + "}"
    body = f'[{{"message": "a {marker}"}}, {deep}, {{"message": "b {marker}", "v": -1e999}}]'
    reply = requests.post(stack.aggregator_url + "/logs", data=body, timeout=TIMEOUT,
                          headers={**stack.auth(), "Content-Type": "application/json"})
    assert reply.status_code == 202, reply.text[:300]
    assert (reply.json()["stored"], reply.json()["rejected"]) == (2, 1), reply.json()
    assert reply.json()["errors"][0]["error"] == "nesting deeper than 100"
    assert [e.get("v") for e in search(stack, marker)] == [None, "-1e999"]


@pytest.mark.parametrize("path", ["/api/v1/logs", "/api/v1/tail", "/logs"])
def test_a_nul_byte_in_a_search_is_a_400_in_json(stack, path):
    reply = requests.get(stack.aggregator_url + path, params={"q": "a\x00b"}, headers=stack.auth(),
                         timeout=TIMEOUT, stream=True)
    try:
        assert reply.status_code == 400, (reply.status_code, reply.headers)
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.json()["ok"] is False and "q" in reply.json()["error"]
    finally:
        reply.close()


def test_the_legacy_page_refuses_unknown_parameters_and_searches_with_q(stack):
    marker = uuid.uuid4().hex
    write_lines(stack, [json.dumps({"message": f"findme {marker}"}), json.dumps({"message": "other"})])
    stack.wait_for(lambda: search(stack, marker), TIMEOUT, "the line stored")
    reply = requests.get(stack.aggregator_url + "/logs", params={"levl": "error"}, timeout=TIMEOUT)
    assert reply.status_code == 400 and "levl" in reply.json()["error"], reply.text[:300]
    page = stack.logs(q=marker)
    assert [e["message"] for e in page] == [f"findme {marker}"]


def test_the_legacy_page_survives_a_deeply_nested_stored_entry(stack):
    # Stored before the depth limit existed (or by hand): a page holding it still answers.
    deep = '{"id": "old-deep", "message": "old deep", "timestamp": "2024-01-01T00:00:00Z", "x": ' + \
        "[" * 5000 + "]" * 5000 + "}"
    with sqlite3.connect(stack.state_dir / "aggregator" / "logs.db", timeout=10) as db:
        db.execute("INSERT INTO logs (id, ts, pod, message, body) VALUES ('old-deep', 1704067200000, "
                   "'legacy', 'old deep', ?)", (deep,))
    reply = requests.get(stack.aggregator_url + "/logs", params={"pod": "legacy"}, timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text[:300]
    assert reply.text.startswith('[{"id": "old-deep"')
