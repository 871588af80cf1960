"""user-service: users with unique usernames and emails (``podvisor-user``)."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, url_for

from podvisor.apps.common.db import Database, get_db, utc_now
from podvisor.apps.common.errors import ApiError
from podvisor.apps.common.runner import run_service
from podvisor.apps.common.service import create_service_app, current_service
from podvisor.apps.common.settings import Settings
from podvisor.apps.common.validation import json_body, text

POD = "user"
SERVICE = "user-service"

log = logging.getLogger(__name__)

SCHEMA = (
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at TEXT NOT NULL
    )""",
)
SEED_USERS = (
    ("john_doe", "john@example.com"),
    ("jane_smith", "jane@example.com"),
    ("bob_wilson", "bob@example.com"),
)
FIELDS = ("username", "email")

_USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

bp = Blueprint("users", __name__)


def seed(conn: sqlite3.Connection) -> None:
    """The demo users, inserted on the very first start only."""
    conn.executemany(
        "INSERT INTO users (username, email, created_at) VALUES (?, ?, ?)",
        [(username, email, utc_now()) for username, email in SEED_USERS],
    )


def create_app(settings: Settings) -> Flask:
    """The user-service app; its database is created and seeded on first start."""
    database = Database(settings.db_path, SCHEMA, seed, probe_table="users")
    app = create_service_app(
        __name__, SERVICE, settings, database,
        counters={"users_created_total": "Users created through POST /users."},
    )
    app.register_blueprint(bp)
    return app


def _to_json(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "username": row["username"], "email": row["email"],
            "created_at": row["created_at"]}


def _find(user_id: int) -> sqlite3.Row:
    row = get_db().execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    if row is None:
        raise ApiError(404, f"user {user_id} not found")
    return row


def _username(body: dict[str, Any]) -> str:
    value = text(body, "username", max_length=64)
    if not _USERNAME.fullmatch(value):
        raise ApiError(400, "username may only contain letters, digits, '_', '.' and '-'")
    return value


def _email(body: dict[str, Any]) -> str:
    value = text(body, "email", max_length=254)
    if not _EMAIL.fullmatch(value):
        raise ApiError(400, "email is not a valid address")
    return value


def _conflict(exc: sqlite3.IntegrityError) -> ApiError:
    # The UNIQUE constraints are the source of truth: no check-then-insert race.
    field = "email" if "users.email" in str(exc) else "username"
    return ApiError(409, f"{field} already exists", field=field)


@bp.get("/users")
def list_users() -> Response:
    rows = get_db().execute("SELECT * FROM users ORDER BY id").fetchall()
    return jsonify({"count": len(rows), "users": [_to_json(row) for row in rows]})


@bp.get("/users/<int:user_id>")
def get_user(user_id: int) -> Response:
    return jsonify(_to_json(_find(user_id)))


@bp.post("/users")
def create_user() -> tuple[Response, int, dict[str, str]]:
    body = json_body(FIELDS)
    username, email = _username(body), _email(body)
    db = get_db()
    try:
        row = db.execute(
            "INSERT INTO users (username, email, created_at) VALUES (?, ?, ?) RETURNING *",
            (username, email, utc_now()),
        ).fetchone()
    except sqlite3.IntegrityError as exc:
        raise _conflict(exc) from None
    current_service().count("users_created_total")
    log.info("user created", extra={"user_id": row["id"], "username": username})
    return jsonify(_to_json(row)), 201, {"Location": url_for("users.get_user", user_id=row["id"])}


@bp.put("/users/<int:user_id>")
def update_user(user_id: int) -> Response:
    body = json_body(FIELDS)
    if not any(body.get(field) is not None for field in FIELDS):
        raise ApiError(400, "nothing to update: give username and/or email")
    changes = {}
    if body.get("username") is not None:
        changes["username"] = _username(body)
    if body.get("email") is not None:
        changes["email"] = _email(body)
    assignments = ", ".join(f"{column} = ?" for column in changes)
    try:
        row = get_db().execute(
            f"UPDATE users SET {assignments} WHERE id = ? RETURNING *", (*changes.values(), user_id)
        ).fetchone()
    except sqlite3.IntegrityError as exc:
        raise _conflict(exc) from None
    if row is None:
        raise ApiError(404, f"user {user_id} not found")
    log.info("user updated", extra={"user_id": user_id, "fields": sorted(changes)})
    return jsonify(_to_json(row))


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``podvisor-user``."""
    return run_service(POD, SERVICE, create_app, argv, os.environ)


if __name__ == "__main__":
    sys.exit(main())
