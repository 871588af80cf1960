"""Who is asking: the master token, a browser session, or a logger's own credential.

- `Authorization: Bearer <master token>`: an operator or a tool; may read and ingest (no stamping).
- `Authorization: Bearer pv1....`: a logging sidecar's credential (credentials.py); may only
  ingest, and its entries get the credential's pod and service and must use ids of that pod.
- the cookie `podvisor_session`: a browser session (sessions.py) opened with the master token;
  a state-changing request authenticated only by it must send `X-CSRF-Token` (per session).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass

from flask import Request

from podvisor.aggregator.credentials import LoggerIdentity, verify
from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.sessions import Sessions

COOKIE_NAME = "podvisor_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANONYMOUS = "anonymous"  # the one tail bucket every unauthenticated reader shares


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: `via` is 'header' (master token), 'cookie' (a session) or
    'logger' (a logger credential); `client` names its bucket of live tail streams."""

    via: str
    client: str
    logger: LoggerIdentity | None = None
    session: str | None = None


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
    """A per-purpose key derived from the token (cursor signing, session CSRF values)."""
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).digest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))


def _shipper_secret(scheme: str, value: str) -> str:
    """The credential inside a basic or ApiKey header value ('' when there is none)."""
    if scheme == "apikey" and not _looks_base64_pair(value):
        return value
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    return decoded.partition(":")[2]


def _looks_base64_pair(value: str) -> bool:
    try:
        return ":" in base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False


class Authenticator:
    """Decides who a request comes from, and whether it may proceed."""

    def __init__(self, token: str, reads_need_token: bool, sessions: Sessions | None = None) -> None:
        self._token = token
        self.reads_need_token = reads_need_token
        self.sessions = sessions or Sessions(derive(token, "podvisor-session"))

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the master token."""
        return _same(candidate, self._token)

    def identify(self, req: Request, shipper_schemes: bool = False) -> Principal | None:
        """The caller, or None when it presents nothing valid. `shipper_schemes` also takes the
        credential the way Elasticsearch clients send it (the `_bulk` endpoint only): as the
        password of HTTP basic auth, or as an `ApiKey` (itself, or base64 of `id:credential`)."""
        header = req.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        value = value.strip()
        if shipper_schemes and scheme.lower() in ("basic", "apikey") and value:
            scheme, value = "bearer", _shipper_secret(scheme.lower(), value)
        if scheme.lower() == "bearer" and value:
            if _same(value, self._token):
                return Principal("header", "token")
            identity = verify(self._token, value)
            if identity is not None:
                return Principal("logger", f"logger:{identity.pod}", logger=identity)
        sid = req.cookies.get(COOKIE_NAME)
        if sid and self.sessions.valid(sid):
            return Principal("cookie", f"session:{sid}", session=sid)
        return None

    def check(self, req: Request, *, required: bool, logger_ok: bool = False,
              shipper_schemes: bool = False) -> Principal | None:
        """Raise 401/403 ApiError unless the request may proceed; return the caller (None when
        anonymous and allowed). A logger credential counts only where `logger_ok` (ingest)."""
        principal = self.identify(req, shipper_schemes)
        if principal is not None and principal.logger is not None and not logger_ok:
            if required:
                raise ApiError(403, "a logger credential may only ship logs (POST /logs); reading "
                                    "needs the master token")
            principal = None
        if principal is None:
            if required:
                raise ApiError(401, "missing or invalid bearer token",
                               {"WWW-Authenticate": 'Bearer realm="podvisor-aggregator"'})
            return None
        if principal.session is not None and req.method not in SAFE_METHODS:
            sent = req.headers.get(CSRF_HEADER, "")
            if not sent or not _same(sent, self.sessions.csrf(principal.session)):
                raise ApiError(403, f"missing or invalid {CSRF_HEADER} header "
                                    "(cookie-authenticated requests that change state need it)")
        return principal
