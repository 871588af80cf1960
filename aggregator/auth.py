"""The bearer token: its file, request authentication (header or cookie) and CSRF for cookies.

Clients send `Authorization: Bearer <token>`. A browser instead POSTs the token once to
/api/v1/session, which sets the HttpOnly SameSite=Strict cookie `podvisor_token`; a state-changing
request authenticated only by that cookie must also send `X-CSRF-Token: <csrf>`, where csrf is
HMAC-SHA256(token, "podvisor-csrf") as returned by GET /api/v1/session.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat

from flask import Request

from podvisor.aggregator.errors import ApiError

COOKIE_NAME = "podvisor_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class TokenFileError(RuntimeError):
    """The token file is unusable (unsafe permissions, empty, unreadable)."""


def load_or_create_token(path: str) -> str:
    """Read the token file, or create it atomically with mode 0600 holding a fresh token."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        # O_EXCL: two processes starting at once cannot both write; 0o600 is applied at creation,
        # so the token is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token


def read_token(path: str) -> str:
    """Read an existing token file; refuse one that group or others can access."""
    try:
        info = os.stat(path)
        if info.st_mode & 0o077:
            raise TokenFileError(
                f"is accessible by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run: chmod 600 {path}")
        with open(path, encoding="utf-8") as handle:
            token = handle.read().strip()
    except OSError as exc:
        raise TokenFileError(f"cannot be read: {exc}") from None
    if len(token) < 16:
        raise TokenFileError("holds no token (need 16+ characters)")
    return token


def derive(token: str, purpose: str) -> bytes:
    """A per-purpose key derived from the token (CSRF value, cursor signing)."""
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).digest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


class Authenticator:
    """Decides whether a request carries the token, and how."""

    def __init__(self, token: str, reads_need_token: bool) -> None:
        self._token = token
        self.reads_need_token = reads_need_token
        self.csrf_token = base64.urlsafe_b64encode(derive(token, "podvisor-csrf")).decode().rstrip("=")

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the token."""
        return _same(candidate, self._token)

    def method(self, req: Request) -> str | None:
        """'header' or 'cookie' for an authenticated request, else None."""
        header = req.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip() and _same(value.strip(), self._token):
            return "header"
        cookie = req.cookies.get(COOKIE_NAME)
        if cookie and _same(cookie, self._token):
            return "cookie"
        return None

    def check(self, req: Request, *, required: bool) -> str | None:
        """Raise 401/403 ApiError unless the request may proceed; return the method used."""
        how = self.method(req)
        if how is None:
            if required:
                raise ApiError(401, "missing or invalid bearer token",
                               {"WWW-Authenticate": 'Bearer realm="podvisor-aggregator"'})
            return None
        if how == "cookie" and req.method not in SAFE_METHODS:
            sent = req.headers.get(CSRF_HEADER, "")
            if not sent or not _same(sent, self.csrf_token):
                raise ApiError(403, f"missing or invalid {CSRF_HEADER} header "
                                    "(cookie-authenticated requests that change state need it)")
        return how
