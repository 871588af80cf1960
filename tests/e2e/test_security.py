"""Per-logger credentials, id scoping, stamped labels, and file modes in a real stack.

A module stack (supervisord -n, as tests and systemd run it) for the credential and mode checks,
and one stack started the README's way (daemonized) for the files supervisord itself creates.
"""
from __future__ import annotations

import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests

from podvisor.supervisord.render import conf as render
from podvisor.testing.harness import StackHandle, wait_for_gone

pytestmark = pytest.mark.e2e
TIMEOUT = 10
PODS = ("user", "product", "order")


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


def credential(stack: StackHandle, pod: str) -> str:
    return (stack.pod_dir(pod) / "logger" / "credential").read_text().strip()


def ingest(stack: StackHandle, bearer: str, entries: list[dict]) -> requests.Response:
    return requests.post(stack.aggregator_url + "/logs", json=entries, timeout=TIMEOUT,
                         headers={"Authorization": f"Bearer {bearer}"})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_logger_ships_with_its_own_credential(stack):
    creds = {pod: credential(stack, pod) for pod in PODS}
    assert len(set(creds.values())) == 3 and stack.token() not in creds.values()
    for pod, value in creds.items():
        assert value.startswith(f"pv1.{pod}."), value
    # The loggers use them: every pod's access lines arrive.
    marker = uuid.uuid4().hex
    for pod in PODS:
        requests.get(stack.apps[pod] + "/", headers={"X-Request-ID": marker}, timeout=TIMEOUT)
    stack.wait_for(lambda: {e["pod"] for e in stack.logs(request_id=marker)} == set(PODS), TIMEOUT,
                   "each pod's line shipped with its credential")


def test_a_credential_cannot_squat_another_pods_ids_or_forge_its_labels(stack):
    marker = uuid.uuid4().hex
    squat = f"product:{marker}:0"  # the id a product logger would produce
    reply = ingest(stack, credential(stack, "user"), [
        {"id": squat, "message": f"squatted {marker}"},
        {"id": f"user:{marker}:1", "message": f"forged {marker}", "pod": "product",
         "service_name": "product-service"},
        {"message": f"no id {marker}"},
    ])
    assert reply.status_code == 202, reply.text[:300]
    body = reply.json()
    assert (body["stored"], body["rejected"]) == (2, 1), body
    assert body["errors"][0]["index"] == 0 and "user:" in body["errors"][0]["error"]
    stored = {e["message"].split()[0]: e for e in stack.logs(q=marker)}
    assert set(stored) == {"forged", "no"}
    assert (stored["forged"]["pod"], stored["forged"]["service_name"]) == ("user", "user-service")
    assert (stored["forged"]["app_pod"], stored["forged"]["app_service_name"]) == ("product", "product-service")
    assert stored["no"]["id"].startswith("user:") and stored["no"]["pod"] == "user"
    # The real product line with that id is still stored when its logger sends it.
    real = ingest(stack, credential(stack, "product"), [{"id": squat, "message": f"real {marker}"}])
    assert real.json()["stored"] == 1, real.json()
    # The master token still ingests as an operator: no stamping, any id.
    ops = ingest(stack, stack.token(), [{"id": f"ops:{marker}", "message": f"ops {marker}", "pod": "x"}])
    assert ops.json()["stored"] == 1
    assert [e["pod"] for e in stack.logs(q=f"ops {marker}")] == ["x"]


def test_a_forged_or_foreign_credential_is_refused(stack):
    user = credential(stack, "user")
    prefix, pod, service, mac = user.split(".")
    for forged in (f"{prefix}.product.{service}.{mac}", f"{prefix}.{pod}.{service}.{'A' * len(mac)}",
                   "pv1.user", user + "x"):
        assert ingest(stack, forged, [{"message": "forged"}]).status_code == 401, forged


def test_files_holding_logs_or_secrets_are_the_owners_alone(stack):
    requests.get(stack.apps["user"] + "/", timeout=TIMEOUT)
    state = stack.state_dir
    files = [state / "aggregator" / "logs.db", state / "aggregator" / "logs.db-wal",
             state / "aggregator" / "token"]
    for pod in PODS:
        files += [stack.pod_dir(pod) / "logger" / "credential", stack.pod_dir(pod) / "logs" / "app.log",
                  stack.pod_dir(pod) / "data" / f"{pod}.db", stack.pod_dir(pod) / "logger" / "checkpoint.json"]
    stack.wait_for(lambda: all(f.exists() for f in files), TIMEOUT, "every file written")
    loose = {str(f): oct(mode(f)) for f in files if mode(f) & 0o077}
    assert not loose, f"readable by group or others: {loose}"


def test_the_readme_way_daemonized_supervisord_applies_the_umask_to_its_own_files(tmp_path):
    handle = StackHandle(tmp_path / "daemon")
    handle.root.mkdir(parents=True)
    render.write_files(render.render_files(handle.spec, handle.conf, str(Path(sys.executable).parent)))
    render.make_state_dirs(handle.spec, handle.root)
    try:
        started = subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(handle.conf)],
                                 env=handle.env(), umask=0o022, capture_output=True, timeout=30)
        assert started.returncode == 0, started
        handle.wait_ready(60)
        logs = handle.pod_dir("user") / "logs"
        files = [logs / "app.stdout.log", logs / "app.stderr.log", logs / "app.log",
                 logs / "sidecars" / "logger.log", handle.state_dir / "aggregator" / "aggregator.log"]
        loose = {str(f): oct(mode(f)) for f in files if mode(f) & 0o077}
        assert not loose, f"readable by group or others: {loose}"
    finally:
        try:
            handle.rpc.call("shutdown")
        except Exception:  # noqa: BLE001 - it may not have come up; whatever is left is killed below
            pass
        left = wait_for_gone(handle.descendants, 60)
        for proc in left:
            proc.kill()
        assert not left, f"left behind: {[p.pid for p in left]}"


def test_a_browser_session_holds_no_token_and_logout_revokes_it(stack):
    browser = requests.Session()
    login = browser.post(stack.aggregator_url + "/api/v1/session", json={"token": stack.token()},
                         timeout=TIMEOUT)
    assert login.status_code == 200, login.text[:300]
    sid = browser.cookies.get("podvisor_session")
    assert sid and stack.token() not in sid and "podvisor_token" not in browser.cookies
    assert browser.get(stack.aggregator_url + "/api/v1/session", timeout=TIMEOUT).json()["via"] == "cookie"
    logout = browser.delete(stack.aggregator_url + "/api/v1/session", timeout=TIMEOUT,
                            headers={"X-CSRF-Token": login.json()["csrf_token"]})
    assert logout.status_code == 200
    copied = requests.get(stack.aggregator_url + "/api/v1/session", cookies={"podvisor_session": sid},
                          timeout=TIMEOUT).json()
    assert copied["authenticated"] is False, "a copy of the cookie is worthless after logout"


def test_tail_streams_are_limited_per_client_as_well_as_in_total(stack):
    url = stack.aggregator_url + "/api/v1/tail"
    streams: list[requests.Response] = []
    try:
        for _ in range(2):
            streams.append(requests.get(url, stream=True, timeout=TIMEOUT))
            assert streams[-1].status_code == 200
        third = requests.get(url, stream=True, timeout=TIMEOUT)
        streams.append(third)
        assert third.status_code == 429 and third.json()["ok"] is False, third.status_code
        own = requests.get(url, stream=True, timeout=TIMEOUT, headers=stack.auth())
        streams.append(own)
        assert own.status_code == 200, "the master token has a bucket of its own"
        streams[0].close()  # a reader leaves: its slot frees within a second or two

        def another() -> bool:
            reply = requests.get(url, stream=True, timeout=TIMEOUT)
            streams.append(reply)
            return reply.status_code == 200
        stack.wait_for(another, TIMEOUT, "a slot freed by a closed stream", interval=0.5)
    finally:
        for stream in streams:
            stream.close()
