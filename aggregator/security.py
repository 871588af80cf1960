"""Browser-facing protections applied to every response and every state-changing request.

Reads answer only to the names the aggregator is reached by (HostCheck: localhost names, the bound
address, AGGREGATOR_ALLOWED_HOSTS), else 421: a page whose name was rebound to 127.0.0.1 cannot
read the logs.

Every response carries a strict Content-Security-Policy (scripts and styles only from this origin,
no inline script, nothing framed), `X-Content-Type-Options: nosniff` and no referrer. A
state-changing request that a browser marks as coming from another site (`Sec-Fetch-Site`, or an
`Origin` naming another host) is refused before any view runs: that, the SameSite=Strict cookie
and the X-CSRF-Token header (auth.py) are the three layers against cross-site request forgery.
Clients that are not browsers (sidecars, curl) send neither header and are not affected.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Request, Response, request

from podvisor.aggregator.auth import SAFE_METHODS
from podvisor.aggregator.errors import ApiError
from podvisor.core.hosts import HostCheck

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def cross_site_reason(req: Request) -> str | None:
    """Why a state-changing request looks cross-site, or None when it does not."""
    if req.method in SAFE_METHODS:
        return None
    fetch_site = req.headers.get("Sec-Fetch-Site", "").strip().lower()
    if fetch_site in ("cross-site", "same-site"):
        # same-site still means another origin (another port on the same host, for instance).
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = req.headers.get("Origin", "").strip()
    if origin and not fetch_site:
        if origin == "null" or urlsplit(origin).netloc.lower() != req.host.lower():
            return f"Origin {origin[:100]} is not this host"
    return None


# Not behind the Host check: shipping (token-authenticated) and the probe and scrape endpoints,
# which loggers and Prometheus on other hosts may reach by any name.
HOST_CHECK_EXEMPT = frozenset({"ingest.ingest", "otlp.export_logs", "ops.health", "ops.metrics"})


def install(app: Flask, hosts: HostCheck) -> None:
    """Refuse reads for a foreign Host (DNS rebinding) and cross-site state-changing requests, and
    add the security headers to every response."""

    @app.before_request
    def _refuse_cross_site() -> None:
        header = request.headers.get("Host")
        if request.endpoint not in HOST_CHECK_EXEMPT and not hosts.allows(header):
            raise ApiError(421, hosts.refusal(header or ""))
        reason = cross_site_reason(request)
        if reason is not None:
            raise ApiError(403, f"cross-site request refused ({reason})")

    @app.after_request
    def _add_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response
