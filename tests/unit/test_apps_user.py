"""user-service through Flask's test client: routes, errors, health, metrics, logs, request ids."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from podvisor.apps import user
from podvisor.apps.common.settings import Settings
from tests.unit.apps_logging import ReadLog, captured_log


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "data" / "user.db", log_file=tmp_path / "logs" / "app.log")


@pytest.fixture
def app(settings: Settings) -> Flask:
    return user.create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def read_log(settings: Settings) -> Iterator[ReadLog]:
    with captured_log(settings.log_file) as read:
        yield read


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"]
    return body["error"]


def metric(app: Flask, name: str, labels: dict[str, str]) -> float | None:
    return app.extensions["podvisor.service"].metrics.registry.get_sample_value(name, labels)


# --- probes -------------------------------------------------------------------------------------

def test_root_says_hello_and_logs_the_access(client: FlaskClient, read_log: ReadLog) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.get_data(as_text=True) == "Hello from user-service"
    messages = [line["message"] for line in read_log()]
    assert "root endpoint accessed" in messages and "GET / 200" in messages


def test_health_is_healthy(client: FlaskClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.get_json() == {"service": "user-service", "status": "healthy"}


@pytest.mark.parametrize("breakage", ["delete file", "garbage file", "remove directory", "empty database"])
def test_health_is_503_when_the_database_is_unusable(
    client: FlaskClient, settings: Settings, breakage: str
) -> None:
    db = settings.db_path
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if breakage == "delete file":
        db.unlink()
    elif breakage == "garbage file":
        db.write_bytes(b"this is not a database" * 100)
    elif breakage == "remove directory":
        shutil.rmtree(db.parent)
    else:
        db.unlink()
        import sqlite3
        sqlite3.connect(db).close()  # a database without the users table
    response = client.get("/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["service"] == "user-service" and body["status"] == "unhealthy" and body["reason"]
    # The outage is reported, not papered over: data routes answer 503 JSON too, not 500.
    assert_json_error(client.get("/users"), 503)
    assert not (breakage == "remove directory" and db.parent.exists())  # nothing was re-created


# --- reads and seeding --------------------------------------------------------------------------

def test_seeded_users(client: FlaskClient) -> None:
    body = client.get("/users").get_json()
    assert body["count"] == 3
    assert [(u["id"], u["username"], u["email"]) for u in body["users"]] == [
        (1, "john_doe", "john@example.com"),
        (2, "jane_smith", "jane@example.com"),
        (3, "bob_wilson", "bob@example.com"),
    ]


def test_seeding_happens_once(settings: Settings, client: FlaskClient) -> None:
    assert client.post("/users", json={"username": "eve", "email": "eve@example.com"}).status_code == 201
    restarted = user.create_app(settings).test_client()
    names = [u["username"] for u in restarted.get("/users").get_json()["users"]]
    assert names == ["john_doe", "jane_smith", "bob_wilson", "eve"]


def test_get_user(client: FlaskClient) -> None:
    response = client.get("/users/2")
    assert response.status_code == 200
    body = response.get_json()
    assert body["username"] == "jane_smith" and body["email"] == "jane@example.com"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["created_at"])


@pytest.mark.parametrize("path", ["/users/999", "/users/99999999999999999999999", "/users/abc", "/nope"])
def test_unknown_user_or_route_is_404_json(client: FlaskClient, path: str) -> None:
    assert_json_error(client.get(path), 404)


# --- create and update --------------------------------------------------------------------------

def test_create_user(app: Flask, client: FlaskClient, read_log: ReadLog) -> None:
    response = client.post("/users", json={"username": "alice", "email": "alice@example.com"},
                           headers={"X-Request-ID": "create-1"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["username"] == "alice" and body["id"] == 4
    assert response.headers["Location"] == "/users/4"
    assert client.get("/users/4").get_json()["email"] == "alice@example.com"
    assert metric(app, "users_created_total", {}) == 1
    events = [line for line in read_log() if line["message"] == "user created"]
    assert len(events) == 1
    assert events[0]["request_id"] == "create-1" and events[0]["user_id"] == 4


@pytest.mark.parametrize("payload", [
    {"username": "john_doe", "email": "new@example.com"},
    {"username": "JOHN_DOE", "email": "new@example.com"},
    {"username": "newbie", "email": "jane@example.com"},
    {"username": "newbie", "email": "Jane@Example.com"},
])
def test_create_duplicate_is_409(app: Flask, client: FlaskClient, payload: dict) -> None:
    error = assert_json_error(client.post("/users", json=payload), 409)
    assert "already exists" in error
    assert client.get("/users").get_json()["count"] == 3
    assert metric(app, "users_created_total", {}) == 0


def test_update_user(client: FlaskClient) -> None:
    response = client.put("/users/3", json={"email": "bob@work.example.com"})
    assert response.status_code == 200
    assert response.get_json()["email"] == "bob@work.example.com"
    assert response.get_json()["username"] == "bob_wilson"
    response = client.put("/users/3", json={"username": "robert", "email": "robert@example.com"})
    assert response.get_json()["username"] == "robert"
    assert client.get("/users/3").get_json()["email"] == "robert@example.com"


def test_update_to_own_values_is_not_a_conflict(client: FlaskClient) -> None:
    response = client.put("/users/1", json={"username": "john_doe", "email": "john@example.com"})
    assert response.status_code == 200


@pytest.mark.parametrize("payload", [{"username": "jane_smith"}, {"email": "bob@example.com"}])
def test_update_to_a_taken_value_is_409(client: FlaskClient, payload: dict) -> None:
    assert_json_error(client.put("/users/1", json=payload), 409)
    assert client.get("/users/1").get_json()["username"] == "john_doe"


def test_update_unknown_user_is_404(client: FlaskClient) -> None:
    assert_json_error(client.put("/users/42", json={"username": "ghost"}), 404)


# --- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("payload", "fragment"), [
    ({"email": "a@example.com"}, "missing field: username"),
    ({"username": "a"}, "missing field: email"),
    ({"username": 123, "email": "a@example.com"}, "username must be a string"),
    ({"username": True, "email": "a@example.com"}, "username must be a string"),
    ({"username": "  ", "email": "a@example.com"}, "username must not be empty"),
    ({"username": "bad name", "email": "a@example.com"}, "username may only contain"),
    ({"username": "a", "email": "not-an-email"}, "email is not a valid address"),
    ({"username": "a", "email": "a@example.com", "admin": True}, "unknown field(s): admin"),
])
def test_create_rejects_invalid_fields(client: FlaskClient, payload: dict, fragment: str) -> None:
    assert fragment in assert_json_error(client.post("/users", json=payload), 400)


@pytest.mark.parametrize(("data", "fragment"), [
    ('{"username": "a",', "malformed JSON"),
    ('["username"]', "must be an object"),
    ("null", "must be an object"),
    ('{"username": NaN}', "malformed JSON"),
    ("[" * 100_000, "nested too deeply"),  # under the size limit, past the decoder's recursion limit
    ('{"a":' * 5_000 + "1" + "}" * 5_000, "nested too deeply"),
])
def test_create_rejects_malformed_json(client: FlaskClient, data: str, fragment: str) -> None:
    response = client.post("/users", data=data, content_type="application/json")
    assert fragment in assert_json_error(response, 400)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_create_requires_json_content_type(client: FlaskClient, content_type: str | None) -> None:
    response = client.post("/users", data='{"username": "a", "email": "a@example.com"}',
                           content_type=content_type)
    assert_json_error(response, 415)


def test_update_with_nothing_to_change_is_400(client: FlaskClient) -> None:
    assert "nothing to update" in assert_json_error(client.put("/users/1", json={}), 400)


def test_wrong_method_is_405_json_with_allow(client: FlaskClient) -> None:
    response = client.delete("/users/1")
    assert_json_error(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT"}
    assert_json_error(client.put("/users", json={}), 405)


def test_oversized_body_is_413_json(client: FlaskClient) -> None:
    response = client.post("/users", data="x" * (2 * 1024 * 1024), content_type="application/json")
    assert_json_error(response, 413)


def test_unexpected_exception_is_logged_and_500_json(settings: Settings, read_log: ReadLog) -> None:
    app = user.create_app(settings)

    def boom() -> str:
        raise RuntimeError("kaboom")

    app.add_url_rule("/boom", view_func=boom)
    response = app.test_client().get("/boom")
    assert assert_json_error(response, 500) == "internal server error"
    assert "kaboom" not in response.get_data(as_text=True)
    errors = [line for line in read_log() if line["message"] == "unhandled exception"]
    assert len(errors) == 1 and "RuntimeError: kaboom" in errors[0]["exception"]


# --- metrics ------------------------------------------------------------------------------------

def test_metrics_use_route_templates(app: Flask, client: FlaskClient) -> None:
    client.get("/users/1")
    client.get("/users/2")
    client.get("/users/999")
    client.get("/does/not/exist")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="GET",path="/users/<int:user_id>",status="200"} 2.0' in text
    assert 'http_requests_total{method="GET",path="/users/<int:user_id>",status="404"} 1.0' in text
    assert 'http_requests_total{method="GET",path="<unmatched>",status="404"} 1.0' in text
    assert 'http_request_duration_seconds_bucket{le="+Inf",method="GET",path="/users/<int:user_id>"} 3.0' \
        in text
    assert "users_created_total 0.0" in text
    assert "/users/1\"" not in text and "/does/not/exist" not in text


def test_metrics_of_two_apps_are_independent(settings: Settings, tmp_path: Path) -> None:
    first = user.create_app(settings)
    second = user.create_app(Settings(db_path=tmp_path / "other.db", log_file=tmp_path / "o.log"))
    first.test_client().get("/users")
    labels = {"method": "GET", "path": "/users", "status": "200"}
    assert metric(first, "http_requests_total", labels) == 1
    assert metric(second, "http_requests_total", labels) is None


def test_unknown_methods_do_not_create_label_values(app: Flask, client: FlaskClient) -> None:
    client.open("/users", method="BREW")
    labels = {"method": "other", "path": "<unmatched>", "status": "405"}
    assert metric(app, "http_requests_total", labels) == 1


# --- request ids and access log -----------------------------------------------------------------

def test_request_id_is_accepted_and_returned(client: FlaskClient) -> None:
    response = client.get("/users/1", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize("header", [None, "x" * 129, "two words"])
def test_request_id_is_generated_when_absent_or_invalid(client: FlaskClient, header: str | None) -> None:
    headers = {"X-Request-ID": header} if header is not None else {}
    response = client.get("/users", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_error_responses_carry_the_request_id(client: FlaskClient) -> None:
    response = client.get("/nope", headers={"X-Request-ID": "err-1"})
    assert response.status_code == 404 and response.headers["X-Request-ID"] == "err-1"


def test_one_access_line_per_request_with_all_fields(client: FlaskClient, read_log: ReadLog) -> None:
    client.get("/users/1?verbose=1", headers={"X-Request-ID": "log-1"})
    client.post("/users", data="{", content_type="application/json")
    access = [line for line in read_log() if line["logger"] == "podvisor.apps.user.access"]
    assert len(access) == 2
    first, second = access
    assert first["request_id"] == "log-1" and first["method"] == "GET"
    assert first["path"] == "/users/1" and first["status"] == 200 and first["level"] == "INFO"
    assert second["status"] == 400 and second["method"] == "POST" and second["level"] == "WARNING"
    assert re.fullmatch(r"[0-9a-f]{32}", second["request_id"])
    for line in access:
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        stamp = datetime.strptime(line["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60
        assert line["timestamp"].endswith("Z") and len(line["timestamp"]) == 24


def test_options_is_a_204_with_allow_and_unknown_ids_are_404_for_every_method(client) -> None:
    reply = client.options("/users/1")
    assert reply.status_code == 204 and reply.data == b""
    assert set(reply.headers["Allow"].split(", ")) >= {"GET", "HEAD", "PUT", "OPTIONS"}
    for method in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        assert client.open(f"/users/{2**63}", method=method, json={"email": "a@b.c"}).status_code == 404, method
