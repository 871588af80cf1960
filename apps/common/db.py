"""SQLite access: schema and one-time seed at start, one connection per request on ``g``."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from flask import Flask, current_app, g

from podvisor.apps.common.jsonlog import format_timestamp

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
SCHEMA_VERSION = 1
_EXTENSION = "podvisor.db"

Seeder = Callable[[sqlite3.Connection], None]


def utc_now() -> str:
    """The current time as rows store it: ISO 8601 UTC with milliseconds, sortable as text."""
    return format_timestamp(time.time())


class Database:
    """One SQLite file: its schema, its seed data, and how to open and probe it."""

    def __init__(self, path: Path, schema: Sequence[str], seed: Seeder, probe_table: str,
                 migrations: Sequence[Sequence[str]] = ()) -> None:
        self.path = Path(path)
        self.schema = schema
        self.seed = seed
        self.probe_table = probe_table
        self.migrations = migrations  # statements taking version 1 to 2, 2 to 3, ...
        self.version = SCHEMA_VERSION + len(migrations)

    def initialize(self) -> bool:
        """Create the file, schema and seed data unless already done, then apply the migrations the
        file has not had yet; True when this call seeded.

        ``PRAGMA user_version`` records that the seed ran (and which migrations did), so a restart
        never re-seeds even when every seeded row has since been deleted. BEGIN IMMEDIATE
        serialises two processes racing here.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._open(create=True)
        try:
            # WAL is a property of the file: set once here, every later connection inherits it.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version >= self.version:
                    conn.execute("ROLLBACK")
                    return False
                seeding = version < SCHEMA_VERSION
                if seeding:
                    # One statement at a time: executescript() would COMMIT our transaction first.
                    for statement in self.schema:
                        conn.execute(statement)
                    self.seed(conn)
                    version = SCHEMA_VERSION
                for statements in self.migrations[version - SCHEMA_VERSION:]:
                    for statement in statements:
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {self.version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        finally:
            conn.close()
        if seeding:
            log.info("database created and seeded", extra={"db": str(self.path)})
        else:
            log.info("database migrated", extra={"db": str(self.path), "version": self.version})
        return seeding

    def connect(self) -> sqlite3.Connection:
        """A connection to the existing file (never creates it: a vanished file is an outage)."""
        return self._open(create=False)

    def check(self) -> str | None:
        """None when the database answers a query, otherwise the reason it does not."""
        if not self.path.is_file():
            return f"database file missing: {self.path}"
        try:
            conn = self._open(create=False, busy_timeout_ms=1000)
            try:
                conn.execute(f"SELECT 1 FROM {self.probe_table} LIMIT 1").fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            return f"database unusable: {exc}"
        return None

    def _open(self, *, create: bool, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        mode = "rwc" if create else "rw"
        uri = f"{self.path.absolute().as_uri()}?mode={mode}"
        # isolation_level=None: each statement commits on its own unless we BEGIN explicitly, so a
        # single UPDATE ... WHERE stock >= ? is one atomic step. check_same_thread is kept: a
        # connection lives and dies inside one request on one thread.
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=busy_timeout_ms / 1000)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn


def install(app: Flask, database: Database) -> None:
    """Make ``database`` the one :func:`get_db` opens for ``app``, closed after each request."""
    app.extensions[_EXTENSION] = database
    app.teardown_appcontext(close_db)


def current_database() -> Database:
    """The database of the app serving the current request."""
    return current_app.extensions[_EXTENSION]


def get_db() -> sqlite3.Connection:
    """The current request's connection, opened on first use and closed at teardown."""
    if "db" not in g:
        g.db = current_database().connect()
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    """Teardown hook: close the request's connection if one was opened."""
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()
