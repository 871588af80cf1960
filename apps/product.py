"""product-service: the catalogue and its stock, with an atomic reserve (``podvisor-product``)."""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, url_for

from podvisor.apps.common.db import Database, get_db, utc_now
from podvisor.apps.common.errors import ApiError
from podvisor.apps.common.runner import run_service
from podvisor.apps.common.service import create_service_app, current_service
from podvisor.apps.common.settings import Settings
from podvisor.apps.common.validation import cents_to_amount, integer, json_body, price_cents, text

POD = "product"
SERVICE = "product-service"

log = logging.getLogger(__name__)

# Money is stored as integer cents so totals are exact; the API shows decimal amounts.
SCHEMA = (
    """CREATE TABLE products (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
        stock INTEGER NOT NULL CHECK (stock >= 0),
        created_at TEXT NOT NULL
    )""",
)
SEED_PRODUCTS = (
    ("Laptop", 99999, 50),
    ("Wireless Mouse", 2999, 200),
    ("Mechanical Keyboard", 7999, 150),
    ("USB-C Hub", 4999, 100),
    ("Webcam HD", 8999, 75),
)
# Version 2: units reserved by orders and not released, so a release gives back only those.
MIGRATIONS = (
    ("ALTER TABLE products ADD COLUMN reserved INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)",),
)
FIELDS = ("name", "price", "stock")

bp = Blueprint("products", __name__)


def seed(conn: sqlite3.Connection) -> None:
    """The demo catalogue, inserted on the very first start only."""
    conn.executemany(
        "INSERT INTO products (name, price_cents, stock, created_at) VALUES (?, ?, ?, ?)",
        [(name, cents, stock, utc_now()) for name, cents, stock in SEED_PRODUCTS],
    )


def create_app(settings: Settings) -> Flask:
    """The product-service app; its database is created and seeded on first start."""
    database = Database(settings.db_path, SCHEMA, seed, probe_table="products", migrations=MIGRATIONS)
    app = create_service_app(
        __name__, SERVICE, settings, database,
        counters={
            "products_created_total": "Products created through POST /products.",
            "stock_reservations_total": "Successful stock reservations (POST /products/<id>/reserve).",
        },
    )
    app.register_blueprint(bp)
    return app


def reserve_stock(conn: sqlite3.Connection, product_id: int, quantity: int) -> sqlite3.Row | None:
    """Take ``quantity`` off the stock in one statement; None when the product lacks that much.

    The condition and the decrement are one UPDATE, so SQLite's write lock makes concurrent
    reservations serial: two orders can never both take the last unit.
    """
    return conn.execute(
        "UPDATE products SET stock = stock - ?, reserved = reserved + ? WHERE id = ? AND stock >= ? RETURNING *",
        (quantity, quantity, product_id, quantity),
    ).fetchone()


def release_stock(conn: sqlite3.Connection, product_id: int, quantity: int) -> sqlite3.Row | None:
    """Give back ``quantity`` reserved units (an order that could not be recorded); None when the
    product does not exist or has fewer units reserved: stock is never created out of nothing."""
    return conn.execute(
        "UPDATE products SET stock = stock + ?, reserved = reserved - ? WHERE id = ? AND reserved >= ? "
        "RETURNING *", (quantity, quantity, product_id, quantity),
    ).fetchone()


def to_json(row: sqlite3.Row) -> dict[str, Any]:
    """A product as the API shows it."""
    return {"id": row["id"], "name": row["name"], "price": cents_to_amount(row["price_cents"]),
            "stock": row["stock"], "created_at": row["created_at"]}


def _find(product_id: int) -> sqlite3.Row:
    row = get_db().execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
    if row is None:
        raise ApiError(404, f"product {product_id} not found")
    return row


@bp.get("/products")
def list_products() -> Response:
    rows = get_db().execute("SELECT * FROM products ORDER BY id").fetchall()
    return jsonify({"count": len(rows), "products": [to_json(row) for row in rows]})


@bp.get("/products/<int:product_id>")
def get_product(product_id: int) -> Response:
    return jsonify(to_json(_find(product_id)))


@bp.post("/products")
def create_product() -> tuple[Response, int, dict[str, str]]:
    body = json_body(FIELDS)
    name, cents = text(body, "name"), price_cents(body, "price")
    stock = integer(body, "stock", minimum=0)
    row = get_db().execute(
        "INSERT INTO products (name, price_cents, stock, created_at) VALUES (?, ?, ?, ?) RETURNING *",
        (name, cents, stock, utc_now()),
    ).fetchone()
    current_service().count("products_created_total")
    log.info("product created", extra={"product_id": row["id"], "product_name": name})
    headers = {"Location": url_for("products.get_product", product_id=row["id"])}
    return jsonify(to_json(row)), 201, headers


@bp.put("/products/<int:product_id>")
def update_product(product_id: int) -> Response:
    body = json_body(FIELDS)
    changes: dict[str, Any] = {}
    if body.get("name") is not None:
        changes["name"] = text(body, "name")
    if body.get("price") is not None:
        changes["price_cents"] = price_cents(body, "price")
    if body.get("stock") is not None:
        changes["stock"] = integer(body, "stock", minimum=0)
    if not changes:
        raise ApiError(400, "nothing to update: give name, price and/or stock")
    assignments = ", ".join(f"{column} = ?" for column in changes)
    row = get_db().execute(
        f"UPDATE products SET {assignments} WHERE id = ? RETURNING *", (*changes.values(), product_id)
    ).fetchone()
    if row is None:
        raise ApiError(404, f"product {product_id} not found")
    log.info("product updated", extra={"product_id": product_id, "fields": sorted(changes)})
    return jsonify(to_json(row))


@bp.delete("/products/<int:product_id>")
def delete_product(product_id: int) -> Response:
    row = get_db().execute("DELETE FROM products WHERE id = ? RETURNING *", (product_id,)).fetchone()
    if row is None:
        raise ApiError(404, f"product {product_id} not found")
    log.info("product deleted", extra={"product_id": product_id})
    return jsonify({"ok": True, "deleted": to_json(row)})


@bp.post("/products/<int:product_id>/reserve")
def reserve(product_id: int) -> Response:
    """Atomically take stock for an order: 404 unknown product, 409 when stock is insufficient."""
    quantity = integer(json_body(("quantity",)), "quantity", minimum=1)
    row = reserve_stock(get_db(), product_id, quantity)
    if row is None:
        available = _find(product_id)["stock"]  # 404 when the product does not exist
        raise ApiError(409, "Insufficient stock", available=available, requested=quantity)
    current_service().count("stock_reservations_total")
    log.info("stock reserved", extra={"product_id": product_id, "quantity": quantity,
                                      "stock": row["stock"]})
    return jsonify({"ok": True, "reserved": quantity, "product": to_json(row)})


@bp.post("/products/<int:product_id>/release")
def release(product_id: int) -> Response:
    """Return reserved stock (used when an order could not be recorded after reserving): 404 unknown
    product, 409 when more is released than is reserved."""
    quantity = integer(json_body(("quantity",)), "quantity", minimum=1)
    row = release_stock(get_db(), product_id, quantity)
    if row is None:
        reserved = _find(product_id)["reserved"]  # 404 when the product does not exist
        raise ApiError(409, "only reserved stock can be released", reserved=reserved, requested=quantity)
    log.info("stock released", extra={"product_id": product_id, "quantity": quantity,
                                      "stock": row["stock"]})
    return jsonify({"ok": True, "released": quantity, "product": to_json(row)})


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``podvisor-product``."""
    return run_service(POD, SERVICE, create_app, argv, os.environ)


if __name__ == "__main__":
    sys.exit(main())
