"""The web UI: two static pages (logs explorer, pods overview) and their scripts and styles.

The pages hold no data: their scripts read it from the JSON API with the caller's cookie, so the
HTML itself is served without the token and the login form appears only when a read answers 401.
Everything is in aggregator/static (no CDN: the machines have no internet).
"""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory

from podvisor.aggregator.errors import ApiError

STATIC = Path(__file__).resolve().parents[1] / "static"  # aggregator/static, beside views/
PAGES = {"logs": "logs.html", "pods": "pods.html"}

bp = Blueprint("ui", __name__, static_folder=str(STATIC), static_url_path="/ui/static")


@bp.get("/")
@bp.get("/ui")
@bp.get("/ui/")
def home() -> Response:
    """The logs explorer is the front page."""
    return redirect("/ui/logs", code=302)


@bp.get("/ui/<page>")
def page(page: str) -> Response:
    """One of the UI's pages; unknown names are a JSON 404 like the rest of the API."""
    if page not in PAGES:
        raise ApiError(404, f"no UI page {page!r} (try /ui/logs or /ui/pods)")
    response = send_from_directory(STATIC, PAGES[page], mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response
