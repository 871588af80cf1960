"""order-service: orders that check users and reserve stock over HTTP (``podvisor-order``)."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, url_for

from podvisor.apps.common.db import Database, get_db, utc_now
from podvisor.apps.common.errors import ApiError, error_response
from podvisor.apps.common.requestid import current_request_id, new_request_id
from podvisor.apps.common.runner import run_service
from podvisor.apps.common.service import create_service_app, current_service
from podvisor.apps.common.settings import Settings
from podvisor.apps.common.validation import cents_to_amount, integer, json_body, require
from podvisor.apps.upstream import RequestsTransport, Transport, Upstreams, UpstreamUnavailable

POD = "order"
SERVICE = "order-service"
STATUSES = ("pending", "confirmed", "shipped", "delivered", "cancelled")

log = logging.getLogger(__name__)

# Users and products live in other services' databases, so an order keeps a snapshot of the
# username, product name and unit price it was placed with (no cross-database foreign keys).
SCHEMA = (
    f"""CREATE TABLE orders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL,
        username TEXT NOT NULL,
        product_id INTEGER NOT NULL,
        product_name TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
        total_cents INTEGER NOT NULL CHECK (total_cents >= 0),
        status TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    "CREATE INDEX orders_by_created ON orders (created_at DESC, id DESC)",
)
SEED_ORDERS = (  # user_id, username, product_id, product_name, quantity, unit cents, status
    (1, "john_doe", 1, "Laptop", 1, 99999, "delivered"),
    (2, "jane_smith", 2, "Wireless Mouse", 2, 2999, "shipped"),
    (3, "bob_wilson", 3, "Mechanical Keyboard", 1, 7999, "pending"),
)
_INSERT = """INSERT INTO orders (user_id, username, product_id, product_name, quantity,
    unit_price_cents, total_cents, status, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *"""
_UPSTREAMS = "podvisor.upstreams"

bp = Blueprint("orders", __name__)


def seed(conn: sqlite3.Connection) -> None:
    """Three demo orders referencing the seeded users and products, inserted on first start only."""
    for user_id, username, product_id, name, quantity, cents, status in SEED_ORDERS:
        stamp = utc_now()
        conn.execute(_INSERT, (user_id, username, product_id, name, quantity, cents, cents * quantity,
                               status, stamp, stamp)).fetchall()


def create_app(settings: Settings, transport: Transport | None = None) -> Flask:
    """The order-service app; ``transport`` carries its upstream calls (``requests`` by default)."""
    database = Database(settings.db_path, SCHEMA, seed, probe_table="orders")
    app = create_service_app(
        __name__, SERVICE, settings, database,
        counters={"orders_created_total": "Orders created through POST /orders."},
    )
    app.extensions[_UPSTREAMS] = Upstreams(
        transport if transport is not None else RequestsTransport(),
        settings.user_service_url, settings.product_service_url, settings.upstream_timeout,
    )
    app.register_error_handler(UpstreamUnavailable, _upstream_unavailable)
    app.register_blueprint(bp)
    return app


def _upstream_unavailable(exc: UpstreamUnavailable) -> tuple[Response, int]:
    log.error("upstream unavailable: %s", exc, extra={"upstream": exc.service, "reason": exc.reason})
    return error_response(503, f"{exc.service} unavailable", reason=exc.reason)


def to_json(row: sqlite3.Row) -> dict[str, Any]:
    """An order as the API shows it."""
    return {
        "id": row["id"], "user_id": row["user_id"], "username": row["username"],
        "product_id": row["product_id"], "product_name": row["product_name"],
        "quantity": row["quantity"], "unit_price": cents_to_amount(row["unit_price_cents"]),
        # total_price is the seed API's name (its clients read it); total is kept for ours.
        "total": cents_to_amount(row["total_cents"]), "total_price": cents_to_amount(row["total_cents"]),
        "status": row["status"],
        "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def _to_cents(amount: float | int) -> int:
    return int((Decimal(str(amount)) * 100).to_integral_value(rounding=ROUND_HALF_UP))


@bp.get("/orders")
def list_orders() -> Response:
    rows = get_db().execute("SELECT * FROM orders ORDER BY created_at DESC, id DESC").fetchall()
    return jsonify({"count": len(rows), "orders": [to_json(row) for row in rows]})


@bp.get("/orders/<int:order_id>")
def get_order(order_id: int) -> Response:
    row = get_db().execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise ApiError(404, f"order {order_id} not found")
    return jsonify(to_json(row))


@bp.post("/orders")
def create_order() -> tuple[Response, int, dict[str, str]]:
    body = json_body(("user_id", "product_id", "quantity"))
    user_id = integer(body, "user_id", minimum=1)
    product_id = integer(body, "product_id", minimum=1)
    quantity = integer(body, "quantity", minimum=1)
    request_id = current_request_id() or new_request_id()
    upstreams: Upstreams = current_app.extensions[_UPSTREAMS]

    user = upstreams.get_user(user_id, request_id)
    if user is None:
        raise ApiError(404, f"user {user_id} not found")
    if not isinstance(user.get("username"), str):
        raise UpstreamUnavailable("user-service", "user answer without a username")
    # The reservation is the product check and the stock decrement in one atomic step.
    reservation = upstreams.reserve(product_id, quantity, request_id)
    if reservation.not_found:
        raise ApiError(404, f"product {product_id} not found")
    if not reservation.reserved:
        raise ApiError(400, "Insufficient stock", available=reservation.available, requested=quantity)
    product = reservation.product
    unit_cents = _to_cents(product["price"])
    stamp = utc_now()
    try:
        row = get_db().execute(_INSERT, (
            user_id, user["username"], product_id, str(product.get("name", "")), quantity,
            unit_cents, unit_cents * quantity, "pending", stamp, stamp,
        )).fetchone()
    except Exception:
        _release_after_failure(upstreams, product_id, quantity, request_id)
        raise
    current_service().count("orders_created_total")
    log.info("order created", extra={
        "order_id": row["id"], "user_id": user_id, "product_id": product_id, "quantity": quantity,
        "total": cents_to_amount(row["total_cents"]),
    })
    return jsonify(to_json(row)), 201, {"Location": url_for("orders.get_order", order_id=row["id"])}


def _release_after_failure(upstreams: Upstreams, product_id: int, quantity: int, request_id: str) -> None:
    try:
        upstreams.release(product_id, quantity, request_id)
        log.warning("order not recorded, stock released", extra={"product_id": product_id,
                                                                 "quantity": quantity})
    except UpstreamUnavailable as exc:
        log.error("order not recorded and stock NOT released: %s", exc,
                  extra={"product_id": product_id, "quantity": quantity})


@bp.put("/orders/<int:order_id>/status")
def update_status(order_id: int) -> Response:
    status = require(json_body(("status",)), "status")
    if status not in STATUSES:
        raise ApiError(400, f"status must be one of: {', '.join(STATUSES)}")
    row = get_db().execute(
        "UPDATE orders SET status = ?, updated_at = ? WHERE id = ? RETURNING *",
        (status, utc_now(), order_id),
    ).fetchone()
    if row is None:
        raise ApiError(404, f"order {order_id} not found")
    log.info("order status changed", extra={"order_id": order_id, "status": status})
    return jsonify(to_json(row))


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``podvisor-order``."""
    return run_service(POD, SERVICE, create_app, argv, os.environ)


if __name__ == "__main__":
    sys.exit(main())
