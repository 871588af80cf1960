"""Token file, read-auth modes, the session cookie and CSRF."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.auth import COOKIE_NAME, TokenFileError, load_or_create_token
from tests.unit.test_aggregator_fixtures import entry, make_settings, post, state_of, token_of


def test_token_file_is_created_0600_and_reused(tmp_path: Path):
    path = tmp_path / "state" / "token"
    first = load_or_create_token(str(path))
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(str(path)) == first
    assert path.read_text().strip() == first


def test_token_file_readable_by_others_is_refused(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text("a-token-that-is-long-enough\n")
    os.chmod(path, 0o644)
    with pytest.raises(TokenFileError, match="chmod 600"):
        load_or_create_token(str(path))
    os.chmod(path, 0o600)
    assert load_or_create_token(str(path)) == "a-token-that-is-long-enough"


def test_empty_token_file_is_refused(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text("\n")
    os.chmod(path, 0o600)
    with pytest.raises(TokenFileError, match="no token"):
        load_or_create_token(str(path))


@pytest.mark.parametrize("host, mode, needs_token", [
    ("127.0.0.1", "auto", False),
    ("::1", "auto", False),
    ("localhost", "auto", False),
    ("0.0.0.0", "auto", True),
    ("10.1.2.3", "auto", True),
    ("127.0.0.1", "always", True),
    ("0.0.0.0", "never", False),
])
def test_read_auth_modes(tmp_path: Path, host, mode, needs_token):
    app = create_app(make_settings(tmp_path, host=host, read_auth=mode), start_background=False)
    client, token = app.test_client(), token_of(app)
    try:
        for url in ("/logs", "/api/v1/logs", "/api/v1/logs?q=x"):
            reply = client.get(url)
            assert reply.status_code == (401 if needs_token else 200), url
            assert reply.json is not None
            good = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert good.status_code == 200
        # Ingest needs the token whatever the read mode; health and metrics never do.
        assert post(client, entry(1), None).status_code == 401
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200
    finally:
        state_of(app).close()


@pytest.fixture
def locked(tmp_path: Path):
    application = create_app(make_settings(tmp_path, read_auth="always"), start_background=False)
    yield application
    state_of(application).close()


def test_session_sets_an_httponly_strict_cookie(locked):
    client, token = locked.test_client(), token_of(locked)
    reply = client.post("/api/v1/session", json={"token": token})
    assert reply.status_code == 200
    cookie = reply.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and token not in cookie  # a session id, never the token
    assert len(client.get_cookie(COOKIE_NAME).value) >= 40
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback; set over https
    assert reply.json["csrf_token"]
    assert client.get("/api/v1/logs").status_code == 200  # the cookie now authenticates reads


def test_session_accepts_a_form_and_refuses_a_wrong_token(locked):
    client, token = locked.test_client(), token_of(locked)
    assert client.post("/api/v1/session", data={"token": "nope"}).status_code == 401
    assert client.get_cookie(COOKIE_NAME) is None
    assert client.post("/api/v1/session", json={}).status_code == 400
    assert client.post("/api/v1/session", data="token=x",
                       headers={"Content-Type": "text/plain"}).status_code == 415
    assert client.post("/api/v1/session", data={"token": token}).status_code == 200
    assert client.get_cookie(COOKIE_NAME).value not in ("", token)


def test_session_info_reveals_csrf_only_to_authenticated_callers(locked):
    client, token = locked.test_client(), token_of(locked)
    anonymous = client.get("/api/v1/session").json
    assert anonymous == {"ok": True, "authenticated": False, "via": None,
                         "read_auth_required": True}
    client.post("/api/v1/session", json={"token": token})
    info = client.get("/api/v1/session").json
    assert info["authenticated"] is True and info["via"] == "cookie"
    assert info["csrf_header"] == "X-CSRF-Token"
    assert info["csrf_token"] and info["csrf_token"] != token


def test_cookie_authenticated_writes_need_the_csrf_header(locked):
    client, token = locked.test_client(), token_of(locked)
    csrf = client.post("/api/v1/session", json={"token": token}).json["csrf_token"]
    no_header = client.post("/logs", json=entry(1))
    assert no_header.status_code == 403
    assert "X-CSRF-Token" in no_header.json["error"]
    wrong = client.post("/logs", json=entry(1), headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    right = client.post("/logs", json=entry(1), headers={"X-CSRF-Token": csrf})
    assert right.status_code == 202
    # Reads by cookie need no CSRF; bearer-authenticated writes need none either.
    assert client.get("/logs").status_code == 200
    other = locked.test_client()
    assert post(other, entry(2), token).status_code == 202


def test_logout_revokes_the_session_on_the_server(locked):
    client, token = locked.test_client(), token_of(locked)
    csrf = client.post("/api/v1/session", json={"token": token}).json["csrf_token"]
    sid = client.get_cookie(COOKIE_NAME).value
    assert client.delete("/api/v1/session").status_code == 403  # cookie without CSRF
    reply = client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 200
    assert client.get_cookie(COOKIE_NAME) is None
    assert client.get("/api/v1/logs").status_code == 401
    # A copy of the cookie taken before the logout is worthless now.
    thief = locked.test_client()
    thief.set_cookie(COOKIE_NAME, sid)
    assert thief.get("/api/v1/logs").status_code == 401
    assert thief.get("/api/v1/session").json["authenticated"] is False


def test_sessions_are_separate_and_expire(tmp_path):
    from podvisor.aggregator.sessions import Sessions
    now = [0.0]
    sessions = Sessions(b"k", lifetime=10, clock=lambda: now[0], max_sessions=2)
    first, second = sessions.create(), sessions.create()
    assert first != second and sessions.csrf(first) != sessions.csrf(second)
    now[0] = 11
    assert not sessions.valid(first)
    third, fourth = sessions.create(), sessions.create()
    assert sessions.valid(third) and sessions.valid(fourth)
    sessions.create()
    assert not sessions.valid(third), "the oldest goes first past max_sessions"


def test_unknown_routes_and_methods_are_json(client):
    reply = client.get("/nope")
    assert reply.status_code == 404 and reply.json["ok"] is False
    reply = client.put("/logs")
    assert reply.status_code == 405 and reply.json["ok"] is False
