"""The factory the three services share: hooks, error handlers, ``/``, ``/health`` and ``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.routing import IntegerConverter

from podvisor.apps.common import db, instrument
from podvisor.apps.common.db import Database
from podvisor.apps.common.errors import register_error_handlers
from podvisor.apps.common.metrics import AppMetrics
from podvisor.apps.common.settings import Settings
from podvisor.core.webapp import PodvisorFlask

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
_EXTENSION = "podvisor.service"

probes = Blueprint("probes", __name__)


def at_most(limit: int) -> str:
    """A regex matching the decimal numbers 0..`limit` (leading zeros allowed), and no other."""
    digits = str(limit)
    options = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    for i, digit in enumerate(digits):
        if digit != "0":
            rest = len(digits) - i - 1
            options.append(digits[:i] + f"[0-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    options.append(digits)
    return "0*(?:" + "|".join(options) + ")"


class IdConverter(IntegerConverter):
    """``<int:...>`` capped at SQLite's 64-bit range in the route's own pattern: a larger id does not
    match, so it is a 404 for every method (a check after matching made PUT and DELETE a 405)."""

    regex = at_most(2**63 - 1)

    def __init__(self, url_map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = 2**63 - 1, signed: bool = False) -> None:  # noqa: A002
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


@dataclass(frozen=True)
class Service:
    """What the shared routes need to know about the service they run in."""

    name: str
    settings: Settings
    database: Database
    metrics: AppMetrics

    def count(self, counter: str) -> None:
        """Increment a business counter declared in :func:`create_service_app`."""
        self.metrics.counters[counter].inc()


def create_service_app(
    import_name: str, name: str, settings: Settings, database: Database,
    counters: Mapping[str, str] | None = None,
) -> Flask:
    """A Flask app with the shared plumbing; the database is created and seeded on first start.

    ``counters`` maps business counter names to their help text (see :meth:`Service.count`).
    """
    database.initialize()
    app = PodvisorFlask(import_name)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.url_map.converters["int"] = IdConverter
    app.json.sort_keys = False  # keep fields in the order the views build them
    service = Service(name=name, settings=settings, database=database, metrics=AppMetrics())
    for counter, documentation in (counters or {}).items():
        service.metrics.add_counter(counter, documentation)
    app.extensions[_EXTENSION] = service
    db.install(app, database)
    instrument.install(app, service.metrics, logging.getLogger(f"{import_name}.access"))
    register_error_handlers(app)
    app.register_blueprint(probes)
    return app


def current_service() -> Service:
    """The service of the app serving the current request."""
    return current_app.extensions[_EXTENSION]


@probes.get("/")
def hello() -> Response:
    service = current_service()
    log.info("root endpoint accessed")
    return Response(f"Hello from {service.name}", mimetype="text/plain")


@probes.get("/health")
def health() -> tuple[Response, int]:
    service = current_service()
    reason = service.database.check()
    if reason is not None:
        log.warning("health check failed: %s", reason)
        return jsonify({"service": service.name, "status": "unhealthy", "reason": reason}), 503
    return jsonify({"service": service.name, "status": "healthy"}), 200


@probes.get("/metrics")
def metrics() -> Response:
    body, content_type = current_service().metrics.render(request.headers.get("Accept"))
    return Response(body, content_type=content_type)
