"""Per-logger credentials: minting, verifying, writing the files, stamping and scoping ingest."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.credentials import LoggerIdentity, mint, verify, write_credential
from podvisor.aggregator.settings import Settings
from podvisor.aggregator.streams import TailLimiter, TailsExhausted
from podvisor.core.settings import Env, SettingsError
from tests.unit.test_aggregator_fixtures import make_settings, post, state_of, token_of

MASTER = "m" * 40


def test_a_credential_proves_its_pod_and_service_and_nothing_else():
    cred = mint(MASTER, "user", "user service, v2")
    assert cred.startswith("pv1.user.")
    assert verify(MASTER, cred) == LoggerIdentity("user", "user service, v2")
    assert verify("another master token", cred) is None
    prefix, pod, service, mac = cred.split(".")
    other_service = mint(MASTER, "user", "x").split(".")[2]
    for forged in (f"{prefix}.order.{service}.{mac}", f"{prefix}.{pod}.{other_service}.{mac}",
                   f"pv2.{pod}.{service}.{mac}", cred[:-1], "pv1.user", MASTER):
        assert verify(MASTER, forged) is None, forged
    with pytest.raises(ValueError):
        mint(MASTER, "a.b", "s")


def test_credential_files_are_written_0600_and_rewritten_only_when_they_change(tmp_path: Path):
    path = tmp_path / "pods" / "user" / "logger" / "credential"
    assert write_credential(path, "pv1.a") is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "pv1.a\n"
    assert write_credential(path, "pv1.a") is False
    path.chmod(0o644)
    assert write_credential(path, "pv1.a") is True and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert write_credential(path, "pv1.b") is True and path.read_text() == "pv1.b\n"


def test_the_setting_names_pod_service_and_absolute_path():
    env = Env({"AGGREGATOR_LOGGER_CREDENTIALS": "user:user-service=/v/u/credential, order:o:s=/v/o/c"})
    assert Settings.from_env(env).logger_credentials == (("user", "user-service", "/v/u/credential"),
                                                         ("order", "o:s", "/v/o/c"))
    for bad in ("user=/x", "user:svc=relative/path", ":svc=/x"):
        with pytest.raises(SettingsError, match="AGGREGATOR_LOGGER_CREDENTIALS"):
            Settings.from_env(Env({"AGGREGATOR_LOGGER_CREDENTIALS": bad}))


def test_logger_requests_are_stamped_and_scoped_master_requests_are_not(tmp_path: Path):
    app = create_app(make_settings(tmp_path, read_auth="always"), start_background=False)
    try:
        client, token = app.test_client(), token_of(app)
        cred = mint(token, "user", "user-service")
        reply = post(client, [{"id": "user:k:1", "message": "a", "pod": "order", "service_name": "x"},
                              {"id": "order:k:1", "message": "squat"}, {"message": "no id"}], cred)
        assert reply.status_code == 202 and (reply.json["stored"], reply.json["rejected"]) == (2, 1)
        assert "'user:'" in reply.json["errors"][0]["error"]
        rows = [e for e in client.get("/logs", headers={"Authorization": f"Bearer {token}"}).json]
        assert [(e["pod"], e["service_name"], e.get("app_pod")) for e in rows] == [
            ("user", "user-service", "order"), ("user", "user-service", None)]
        assert rows[1]["id"].startswith("user:")
        assert post(client, [{"id": "order:k:1", "message": "ops", "pod": "order"}], token).json["stored"] == 1
        refused = client.get("/api/v1/logs", headers={"Authorization": f"Bearer {cred}"})
        assert refused.status_code == 403 and "logger credential" in refused.json["error"]
    finally:
        state_of(app).close()


def test_tail_slots_are_capped_per_client_and_in_total():
    limiter = TailLimiter(3, max_per_client=2)
    first, _ = limiter.acquire("session:a"), limiter.acquire("session:a")
    with pytest.raises(TailsExhausted) as caught:
        limiter.acquire("session:a")
    assert caught.value.per_client
    limiter.acquire("anonymous")
    with pytest.raises(TailsExhausted) as caught:
        limiter.acquire("token")
    assert not caught.value.per_client
    first()
    first()  # one-shot
    limiter.acquire("token")
    assert limiter.active == 3
