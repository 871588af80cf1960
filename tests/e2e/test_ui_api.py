"""The web UI's endpoints over real HTTP against a real stack: the histogram, searches that leave
words out, and pod actions sent through supervisord (the app's pid really changes), with the
refusals a browser-facing endpoint owes: bad input, no token, wrong CSRF value, another origin."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests

from podvisor.testing.harness import StackHandle

pytestmark = pytest.mark.e2e
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


def tag() -> str:
    return "t" + uuid.uuid4().hex[:12]


def get(stack: StackHandle, path: str, **params: Any) -> requests.Response:
    return requests.get(stack.aggregator_url + path, params=params, timeout=TIMEOUT)


def json_error(reply: requests.Response, status: int, fragment: str) -> dict:
    """A JSON error (never HTML) with `status` whose message holds `fragment`."""
    assert reply.status_code == status, (reply.status_code, reply.text[:300])
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    body = reply.json()
    assert body["ok"] is False and fragment in body["error"], body
    return body


# -- the histogram and the search ------------------------------------------------------------------

def test_histogram_counts_the_filtered_entries_per_bucket_and_level(stack):
    word = tag()
    stack.ingest(
           {"message": f"{word} one", "level": "info", "pod": "user", "timestamp": "2024-06-01T12:00:01Z"},
           {"message": f"{word} two", "level": "ERROR", "pod": "order", "timestamp": "2024-06-01T12:00:59.999Z"},
           {"message": f"{word} three", "level": "warn", "pod": "order", "timestamp": "2024-06-01T12:01:00Z"},
           {"message": f"{word} probe", "level": "info", "pod": "user", "timestamp": "2024-06-01T12:01:30Z",
            "probe": True})
    reply = get(stack, "/api/v1/histogram", q=word, since="2024-06-01T12:00:00Z", until="2024-06-01T12:01:59.999Z",
                buckets=2)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["bucket_seconds"] == 60 and body["total"] == 4
    assert [(b["start"], b["counts"]) for b in body["buckets"]] == [
        ("2024-06-01T12:00:00.000Z", {"info": 1, "error": 1}),
        ("2024-06-01T12:01:00.000Z", {"info": 1, "warning": 1})]
    assert get(stack, "/api/v1/histogram", q=f"{word} -two", probes="exclude", since="2024-06-01T12:00:00Z",
               until="2024-06-01T12:01:59.999Z", buckets=2).json()["total"] == 2
    assert get(stack, "/api/v1/histogram", q="-zzz", pod="order", since="2024-06-01T12:00:00Z",
               until="2024-06-01T12:01:59.999Z").json()["total"] >= 2  # exclusions only


def test_search_leaves_out_words_in_pages_and_the_plain_array(stack):
    word = tag()
    stack.ingest(*({"message": f"{word} {name}", "pod": "user", "level": "info"} for name in ("keep", "drop", "gone")))
    for q in (f"{word} -drop -gone", f"{word} NOT drop NOT gone", f'{word} -"drop" -gon*'):
        page = get(stack, "/api/v1/logs", q=q).json()
        assert [e["message"] for e in page["entries"]] == [f"{word} keep"], q
    assert [e["message"] for e in get(stack, "/logs", q=f"{word} -keep").json()] == [f"{word} drop", f"{word} gone"]


@pytest.mark.parametrize("path", ["/api/v1/logs", "/api/v1/histogram", "/api/v1/tail", "/logs"])
@pytest.mark.parametrize(("q", "fragment"), [
    ("error\x00", "q: must not contain a NUL character"),
    (" ".join(f"-w{i}" for i in range(1000)), "q: longer than 500 characters"),
    (" ".join(f"-w{i}" for i in range(33)), "q: more than 32 words or phrases"),
    ("GET NOT", "q: NOT must be followed"),
])
def test_bad_searches_are_a_400_json_everywhere(stack, path, q, fragment):
    reply = requests.get(stack.aggregator_url + path, params={"q": q}, timeout=TIMEOUT, stream=True)
    try:
        json_error(reply, 400, fragment)
    finally:
        reply.close()


@pytest.mark.parametrize(("buckets", "fragment"), [
    ("1001", "buckets: must be from 1 to 1000"), ("10" * 4000, "buckets: not an integer"),
    ("0", "buckets: must be from 1 to 1000"), ("-5", "buckets: must be from 1 to 1000"), ("1e3", "not an integer"),
])
def test_a_bad_bucket_count_is_a_400_json(stack, buckets, fragment):
    json_error(get(stack, "/api/v1/histogram", buckets=buckets), 400, fragment)


# -- pod actions -------------------------------------------------------------------------------------

def action(stack: StackHandle, pod: str, verb: str, session: requests.Session | None = None,
           headers: dict[str, str] | None = None) -> requests.Response:
    return (session or requests).post(f"{stack.aggregator_url}/api/v1/pods/{pod}/{verb}", headers=headers or {},
                                      timeout=TIMEOUT)


def wait_done(stack: StackHandle, pod: str, op_id: str, ready: bool = True) -> dict:
    """The pod as /api/v1/pods shows it once the controller reported `op_id` done (and the pod Ready)."""
    def done() -> dict | None:
        pods = {p["pod"]: p for p in get(stack, "/api/v1/pods").json()["pods"]}
        last = pods[pod]["last_op"] or {}
        ok = last.get("id") == op_id and last.get("done") and (pods[pod]["ready"] or not ready)
        return pods[pod] if ok else None
    return stack.wait_for(done, 90, f"{pod}'s action {op_id} done")


def signed_in(stack: StackHandle) -> tuple[requests.Session, str]:
    session = requests.Session()
    reply = session.post(stack.aggregator_url + "/api/v1/session", json={"token": stack.token()}, timeout=TIMEOUT)
    assert reply.status_code == 200, reply.text
    return session, reply.json()["csrf_token"]


def test_restart_through_the_api_replaces_the_app_process(stack):
    before = stack.pid("product-app")
    reply = action(stack, "product", "restart", headers=stack.auth())
    assert reply.status_code == 202, reply.text
    op_id = reply.json()["op_id"]
    pod = wait_done(stack, "product", op_id)
    assert pod["last_op"]["ok"] is True and pod["last_op"]["message"].startswith("pod product restarted")
    (replica,) = pod["app_replicas"]  # one replica: the new process, on its slot's own port
    assert replica["pid"] != before and replica["ready"] is True
    assert stack.info(replica["program"])["pid"] == replica["pid"]
    assert requests.get(stack.apps["product"] + "/products", timeout=TIMEOUT).status_code == 200


def test_stop_then_start_with_a_session_and_its_csrf_value(stack):
    session, csrf = signed_in(stack)
    same_origin = {"X-CSRF-Token": csrf, "Origin": stack.aggregator_url, "Sec-Fetch-Site": "same-origin"}
    stopped = action(stack, "user", "stop", session, same_origin)
    assert stopped.status_code == 202, stopped.text
    pod = wait_done(stack, "user", stopped.json()["op_id"], ready=False)
    assert pod["status"] == "Stopped"
    assert [(r["state"], r["pid"]) for r in pod["app_replicas"]] == [("Stopped", None)]  # shown, not running
    assert all(stack.info(p)["statename"] != "RUNNING" for p in stack.spec.pod("user").app_programs)
    started = action(stack, "user", "start", session, same_origin)
    assert started.status_code == 202, started.text
    pod = wait_done(stack, "user", started.json()["op_id"])
    (replica,) = pod["app_replicas"]
    assert stack.info(replica["program"])["pid"] == replica["pid"]


def test_actions_refuse_what_a_forged_request_would_send(stack):
    session, csrf = signed_in(stack)
    pid = stack.pid("order-app")
    json_error(action(stack, "order", "restart"), 401, "missing or invalid bearer token")
    json_error(action(stack, "order", "restart", session), 403, "X-CSRF-Token")
    json_error(action(stack, "order", "restart", session, {"X-CSRF-Token": "not-" + csrf}), 403, "X-CSRF-Token")
    other, _ = signed_in(stack)
    json_error(action(stack, "order", "restart", other, {"X-CSRF-Token": csrf}), 403, "X-CSRF-Token")
    for origin in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                   {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}):
        json_error(action(stack, "order", "restart", session, {"X-CSRF-Token": csrf, **origin}), 403,
                   "cross-site request refused")
        json_error(action(stack, "order", "restart", headers={**stack.auth(), **origin}), 403, "cross-site")
    json_error(action(stack, "order", "restart", headers={**stack.auth(), "Host": "evil.example"}), 421,
               "DNS rebinding")
    json_error(action(stack, "nobody", "restart", headers=stack.auth()), 404, "no pod named 'nobody'")
    json_error(action(stack, "order", "explode", headers=stack.auth()), 404, "no pod action 'explode'")
    json_error(requests.get(f"{stack.aggregator_url}/api/v1/pods/order/restart", timeout=TIMEOUT), 405, "")
    assert stack.pid("order-app") == pid and stack.info("order-app")["statename"] == "RUNNING"
