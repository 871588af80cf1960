"""/api/v1/session: trade the token for a session cookie (browser UI), learn the CSRF value, log out.

POST {"token": "..."} (JSON or form) opens a server-side session and sets `podvisor_session` (its
random id: HttpOnly, SameSite=Strict, Secure over https) and returns the session's CSRF value. GET
tells whether the caller is authenticated and, for a session, the CSRF value to send as
`X-CSRF-Token` on state-changing requests. DELETE revokes the session on the server and clears
the cookie: the id is worthless afterwards, even to someone who copied it.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from podvisor.aggregator.auth import COOKIE_NAME, CSRF_HEADER
from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.sessions import SESSION_SECONDS
from podvisor.aggregator.state import get_state

bp = Blueprint("session", __name__)


@bp.get("/api/v1/session")
def session_info() -> Response:
    """Whether this caller is authenticated (and how), whether reads need it, and the CSRF value."""
    auth = get_state().auth
    principal = auth.check(request, required=False)
    reply: dict[str, object] = {"ok": True, "authenticated": principal is not None,
                                "via": principal.via if principal else None,
                                "read_auth_required": auth.reads_need_token}
    if principal is not None and principal.session is not None:
        reply["csrf_token"] = auth.sessions.csrf(principal.session)
        reply["csrf_header"] = CSRF_HEADER
    return jsonify(reply)


@bp.post("/api/v1/session")
def session_login() -> Response:
    """Check the posted token, open a session and set its cookie."""
    auth = get_state().auth
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        token = body.get("token") if isinstance(body, dict) else None
    elif request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        token = request.form.get("token")
    else:
        raise ApiError(415, "send the token as JSON {\"token\": ...} or as a form field")
    if not isinstance(token, str) or not token.strip():
        raise ApiError(400, "token is required")
    if not auth.token_matches(token.strip()):
        raise ApiError(401, "invalid token")
    sid = auth.sessions.create()
    response = jsonify(ok=True, authenticated=True, via="cookie", csrf_token=auth.sessions.csrf(sid),
                       csrf_header=CSRF_HEADER)
    response.set_cookie(COOKIE_NAME, sid, max_age=SESSION_SECONDS, httponly=True, samesite="Strict",
                        secure=request.is_secure, path="/")
    return response


@bp.delete("/api/v1/session")
def session_logout() -> Response:
    """Revoke the session and clear the cookie (a cookie-authenticated caller must send the CSRF header)."""
    principal = get_state().auth.check(request, required=True)
    if principal is not None and principal.session is not None:
        get_state().auth.sessions.revoke(principal.session)
    response = jsonify(ok=True, authenticated=False)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return response
