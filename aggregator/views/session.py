"""/api/v1/session: trade the token for an HttpOnly cookie (browser UI), learn the CSRF value, log out.

POST {"token": "..."} (JSON or form) sets `podvisor_token` (HttpOnly, SameSite=Strict, Secure over
https) and returns the CSRF value. GET tells whether the caller is authenticated and, if so, the
CSRF value to send as `X-CSRF-Token` on state-changing requests authenticated by the cookie.
DELETE clears the cookie.
"""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from podvisor.aggregator.auth import COOKIE_NAME, CSRF_HEADER
from podvisor.aggregator.errors import ApiError
from podvisor.aggregator.state import get_state

bp = Blueprint("session", __name__)


@bp.get("/api/v1/session")
def session_info() -> Response:
    """Whether this caller is authenticated (and how), whether reads need it, and the CSRF value."""
    auth = get_state().auth
    how = auth.method(request)
    reply: dict[str, object] = {"ok": True, "authenticated": how is not None, "via": how,
                                "read_auth_required": auth.reads_need_token}
    if how is not None:
        reply["csrf_token"] = auth.csrf_token
        reply["csrf_header"] = CSRF_HEADER
    return jsonify(reply)


@bp.post("/api/v1/session")
def session_login() -> Response:
    """Check the posted token and set the session cookie."""
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
    response = jsonify(ok=True, authenticated=True, via="cookie", csrf_token=auth.csrf_token,
                       csrf_header=CSRF_HEADER)
    response.set_cookie(COOKIE_NAME, token.strip(), httponly=True, samesite="Strict",
                        secure=request.is_secure, path="/")
    return response


@bp.delete("/api/v1/session")
def session_logout() -> Response:
    """Clear the cookie (a cookie-authenticated caller must send the CSRF header)."""
    get_state().auth.check(request, required=True)
    response = jsonify(ok=True, authenticated=False)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
    return response
