"""Small read-only HTTP faces (health, status, metrics) as WSGI apps, with JSON errors.

The controller's status endpoint and the logger's /health and /metrics share this: GET routes by
path, HEAD answered like GET without a body, OPTIONS a 204 with `Allow`, any other method a 405 with
`Allow`, an unknown path a 404, a handler that raises a 500, a foreign Host header (DNS rebinding)
a 421 except on /metrics — each error a JSON body that says what is wrong. They are served by
podvisor.core.serving like every other podvisor HTTP process.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from podvisor.core.hosts import HostCheck

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
JSON = "application/json"
ALLOW = "GET, HEAD, OPTIONS"


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = field(default=())


def json_reply(status: int, data: Any, *headers: tuple[str, str]) -> Reply:
    return Reply(status, json.dumps(data).encode() + b"\n", JSON, headers)


def error_reply(status: int, message: str, *headers: tuple[str, str]) -> Reply:
    return json_reply(status, {"ok": False, "error": message}, *headers)


def text_reply(status: int, text: str | bytes, content_type: str = "text/plain; charset=utf-8") -> Reply:
    return Reply(status, text.encode() if isinstance(text, str) else text, content_type)


Handler = Callable[[dict[str, Any]], Reply]
PrefixHandler = Callable[[str, dict[str, Any]], Reply]


class ReadOnlyApp:
    """GET (and HEAD) routes: exact paths, and prefixes whose handler gets the rest of the path."""

    def __init__(self, name: str, routes: dict[str, Handler], prefixes: dict[str, PrefixHandler] | None = None,
                 hosts: HostCheck | None = None, open_paths: tuple[str, ...] = ("/metrics",)):
        self.name = name
        self.routes = routes
        self.prefixes = prefixes or {}
        self.hosts = hosts
        self.open_paths = open_paths  # scraped by name from other hosts: no Host check

    def reply(self, method: str, path: str, environ: dict[str, Any]) -> Reply:
        host = environ.get("HTTP_HOST")
        if self.hosts is not None and path not in self.open_paths and not self.hosts.allows(host):
            return error_reply(421, self.hosts.refusal(host or ""))
        handler: Callable[[], Reply] | None = None
        if path in self.routes:
            handler = lambda: self.routes[path](environ)  # noqa: E731
        else:
            for prefix, prefixed in self.prefixes.items():
                if path.startswith(prefix) and len(path) > len(prefix):
                    handler = lambda p=prefix, h=prefixed: h(path[len(p):], environ)  # noqa: E731
                    break
        if handler is None:
            return error_reply(404, f"no route {path[:200]!r} (routes: {', '.join(sorted(self.routes))})")
        if method == "OPTIONS":
            return Reply(204, b"", "", (("Allow", ALLOW),))
        if method not in ("GET", "HEAD"):
            return error_reply(405, f"{method[:20]} is not allowed here: {self.name} is read-only",
                               ("Allow", ALLOW))
        try:
            return handler()
        except Exception as exc:  # logged with its traceback; the caller gets a JSON 500
            log.exception("%s: %s %s failed", self.name, method, path)
            return error_reply(500, f"internal error: {type(exc).__name__}")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO") or "/"
        if len(path) > 1 and path.endswith("/"):
            path = path.rstrip("/")
        reply = self.reply(method, path, environ)
        headers = [("Content-Length", str(len(reply.body))), ("Cache-Control", "no-store"), *reply.headers]
        if reply.content_type:
            headers.insert(0, ("Content-Type", reply.content_type))
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", headers)
        return [] if method == "HEAD" else [reply.body]
