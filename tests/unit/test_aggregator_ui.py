"""The web UI's pages and assets, the security headers and the cross-site refusal (no browser)."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from podvisor.aggregator.app import create_app
from podvisor.aggregator.security import CONTENT_SECURITY_POLICY
from podvisor.aggregator.views import ui
from tests.unit.test_aggregator_fixtures import entry, make_settings, post, state_of, token_of

STATIC = Path(ui.__file__).resolve().parents[1] / "static"  # aggregator/static


@pytest.fixture
def ui_app(tmp_path: Path):
    application = create_app(make_settings(tmp_path), start_background=False, blueprints=(ui.bp,))
    yield application
    state_of(application).close()


@pytest.fixture
def ui_client(ui_app):
    return ui_app.test_client()


class _Inventory(HTMLParser):
    """Collects what a CSP-clean page must not have: inline scripts, handlers, style attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
            if name in ("src", "href") and value:
                self.urls.append(value)
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("inline <script> body")


@pytest.mark.parametrize("page", ["logs", "pods"])
def test_pages_are_served_with_a_strict_policy_and_no_inline_code(ui_client, page):
    reply = ui_client.get(f"/ui/{page}")
    assert reply.status_code == 200 and reply.mimetype == "text/html"
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["X-Frame-Options"] == "DENY"
    inventory = _Inventory()
    inventory.feed(reply.get_data(as_text=True))
    assert inventory.inline == []
    assert inventory.scripts and all(s.get("src", "").startswith("/ui/static/") for s in inventory.scripts)
    # Every asset is ours and is served: nothing from a CDN.
    for url in inventory.urls:
        assert url.startswith("/"), url
        if url.startswith("/ui/static/"):
            asset = ui_client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["X-Content-Type-Options"] == "nosniff"


def test_scripts_are_javascript_and_import_only_local_modules(ui_client):
    for name in ("common.js", "logs.js", "pods.js"):
        reply = ui_client.get(f"/ui/static/{name}")
        assert reply.status_code == 200
        assert reply.mimetype in ("text/javascript", "application/javascript")
        for target in re.findall(r'from\s+"([^"]+)"', reply.get_data(as_text=True)):
            assert target.startswith("/ui/static/") and ui_client.get(target).status_code == 200


def test_scripts_never_turn_data_into_markup():
    # Log content is untrusted: the UI builds nodes and sets textContent, never parses HTML.
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|"
                           r"new Function|setAttribute\(\s*[\"']on|srcdoc|DOMParser|createContextualFragment")
    scripts = sorted(STATIC.glob("*.js"))
    assert {p.name for p in scripts} >= {"common.js", "logs.js", "pods.js"}, STATIC  # never vacuous
    for path in scripts:
        hits = [line for line in path.read_text().splitlines()
                if forbidden.search(line) and not line.lstrip().startswith("//")]
        assert hits == [], f"{path.name}: {hits}"


def test_front_page_redirects_to_the_logs_explorer(ui_client):
    for url in ("/", "/ui", "/ui/"):
        reply = ui_client.get(url)
        assert reply.status_code == 302 and reply.headers["Location"].endswith("/ui/logs")


def test_unknown_page_is_a_json_404(ui_client):
    reply = ui_client.get("/ui/nope")
    assert reply.status_code == 404 and reply.json["ok"] is False
    assert ui_client.get("/ui/static/nope.js").status_code == 404


def test_pages_are_served_without_the_token_but_data_is_not(tmp_path: Path):
    app = create_app(make_settings(tmp_path, read_auth="always"), start_background=False,
                     blueprints=(ui.bp,))
    client = app.test_client()
    try:
        assert client.get("/ui/logs").status_code == 200
        assert client.get("/ui/static/logs.js").status_code == 200
        for url in ("/api/v1/logs", "/api/v1/pods", "/api/v1/tail", "/logs"):
            assert client.get(url).status_code == 401, url
        assert client.get("/api/v1/session").json == {
            "ok": True, "authenticated": False, "via": None, "read_auth_required": True}
    finally:
        state_of(app).close()


def test_api_replies_carry_the_security_headers_too(client):
    reply = client.get("/api/v1/logs")
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # another port of the same host is another origin
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
])
def test_cross_site_state_changes_are_refused_even_with_the_token(client, token, headers):
    reply = post(client, entry(1), token, headers=headers)
    assert reply.status_code == 403
    assert reply.json["ok"] is False and "cross-site" in reply.json["error"]
    logout = client.delete("/api/v1/session", headers=headers)
    assert logout.status_code == 403
    assert client.get("/api/v1/logs", headers={"Authorization": f"Bearer {token}"}).json["entries"] == []


def test_same_origin_and_non_browser_requests_pass(client, token):
    assert post(client, entry(1), token).status_code == 202  # a sidecar: no browser headers
    assert post(client, entry(2), token, headers={"Sec-Fetch-Site": "same-origin",
                                                  "Origin": "http://localhost"}).status_code == 202
    assert post(client, entry(3), token, headers={"Origin": "http://localhost"}).status_code == 202
    assert post(client, entry(4), token, headers={"Sec-Fetch-Site": "none"}).status_code == 202


def test_cookie_login_then_every_read_the_ui_makes(tmp_path: Path):
    app = create_app(make_settings(tmp_path, read_auth="always"), start_background=False,
                     blueprints=(ui.bp,))
    client = app.test_client()
    try:
        token = token_of(app)
        assert post(client, entry(1, message="hello from the ui"), token).status_code == 202
        login = client.post("/api/v1/session", json={"token": token},
                            headers={"Sec-Fetch-Site": "same-origin"})
        assert login.status_code == 200
        assert client.get("/api/v1/logs?q=hello").json["entries"][0]["message"] == "hello from the ui"
        assert client.get("/api/v1/pods").status_code == 200
        csrf = client.get("/api/v1/session").json["csrf_token"]
        assert client.delete("/api/v1/session").status_code == 403  # cookie alone: no
        assert client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 200
    finally:
        state_of(app).close()
