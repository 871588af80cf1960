"""product-service through Flask's test client, and the atomic stock reservation at the SQL level."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from podvisor.apps import product
from podvisor.apps.common.db import Database
from podvisor.apps.common.settings import Settings
from tests.unit.apps_logging import ReadLog, captured_log


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "product.db", log_file=tmp_path / "app.log")


@pytest.fixture
def app(settings: Settings) -> Flask:
    return product.create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def read_log(settings: Settings) -> Iterator[ReadLog]:
    with captured_log(settings.log_file) as read:
        yield read


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["ok"] is False and body["error"]
    return body["error"]


def stock(client: FlaskClient, product_id: int) -> int:
    return client.get(f"/products/{product_id}").get_json()["stock"]


def test_hello_and_health(client: FlaskClient) -> None:
    assert client.get("/").get_data(as_text=True) == "Hello from product-service"
    assert client.get("/health").get_json() == {"service": "product-service", "status": "healthy"}


def test_health_is_503_when_the_database_file_is_gone(client: FlaskClient, settings: Settings) -> None:
    settings.db_path.unlink()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unhealthy" and "missing" in response.get_json()["reason"]


def test_seeded_catalogue(client: FlaskClient) -> None:
    body = client.get("/products").get_json()
    assert body["count"] == 5
    assert [(p["name"], p["price"], p["stock"]) for p in body["products"]] == [
        ("Laptop", 999.99, 50), ("Wireless Mouse", 29.99, 200), ("Mechanical Keyboard", 79.99, 150),
        ("USB-C Hub", 49.99, 100), ("Webcam HD", 89.99, 75),
    ]


def test_seeding_happens_once_even_after_everything_was_deleted(
    settings: Settings, client: FlaskClient
) -> None:
    for product_id in range(1, 6):
        assert client.delete(f"/products/{product_id}").status_code == 200
    restarted = product.create_app(settings).test_client()
    assert restarted.get("/products").get_json() == {"count": 0, "products": []}


def test_get_and_unknown_product(client: FlaskClient) -> None:
    assert client.get("/products/4").get_json()["name"] == "USB-C Hub"
    assert "not found" in assert_json_error(client.get("/products/404"), 404)


def test_create_product(app: Flask, client: FlaskClient, read_log: ReadLog) -> None:
    response = client.post("/products", json={"name": "Monitor", "price": 199.5, "stock": 0})
    assert response.status_code == 201
    body = response.get_json()
    assert (body["id"], body["name"], body["price"], body["stock"]) == (6, "Monitor", 199.5, 0)
    assert response.headers["Location"] == "/products/6"
    assert client.get("/products").get_json()["count"] == 6
    registry = app.extensions["podvisor.service"].metrics.registry
    assert registry.get_sample_value("products_created_total") == 1
    assert any(line["message"] == "product created" and line["product_id"] == 6 for line in read_log())


def test_integer_price_is_accepted(client: FlaskClient) -> None:
    assert client.post("/products", json={"name": "Cable", "price": 5, "stock": 3}).get_json()["price"] == 5


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"price": 1.0, "stock": 1}, "missing field: name"),
    ({"name": "x", "stock": 1}, "missing field: price"),
    ({"name": "x", "price": 1.0}, "missing field: stock"),
    ({"name": "x", "price": "9.99", "stock": 1}, "price must be a number"),
    ({"name": "x", "price": True, "stock": 1}, "price must be a number"),
    ({"name": "x", "price": -0.01, "stock": 1}, "price must not be negative"),
    ({"name": "x", "price": 1.234, "stock": 1}, "two decimal places"),
    ({"name": "x", "price": 1e300, "stock": 1}, "too large"),
    ({"name": "x", "price": 1.0, "stock": -1}, "stock must be at least 0"),
    ({"name": "x", "price": 1.0, "stock": 1.5}, "stock must be an integer"),
    ({"name": "x", "price": 1.0, "stock": "5"}, "stock must be an integer"),
    ({"name": "x", "price": 1.0, "stock": False}, "stock must be an integer"),
    ({"name": "x", "price": 1.0, "stock": 10**30}, "stock must be at most"),
    ({"name": 5, "price": 1.0, "stock": 1}, "name must be a string"),
])
def test_create_rejects_invalid_fields(client: FlaskClient, payload: dict, fragment: str) -> None:
    assert fragment in assert_json_error(client.post("/products", json=payload), 400)
    assert client.get("/products").get_json()["count"] == 5


def test_create_rejects_malformed_json_and_wrong_content_type(client: FlaskClient) -> None:
    assert "malformed JSON" in assert_json_error(
        client.post("/products", data="{nope", content_type="application/json"), 400)
    assert_json_error(client.post("/products", data="name=x", content_type="text/plain"), 415)


def test_update_product(client: FlaskClient) -> None:
    response = client.put("/products/2", json={"price": 24.99, "stock": 180})
    assert response.status_code == 200
    assert (response.get_json()["price"], response.get_json()["stock"]) == (24.99, 180)
    assert client.get("/products/2").get_json()["name"] == "Wireless Mouse"


@pytest.mark.parametrize(("payload", "status"), [
    ({"price": -1}, 400), ({"stock": -5}, 400), ({"stock": "7"}, 400), ({}, 400), ({"colour": "red"}, 400),
])
def test_update_rejects_invalid_changes(client: FlaskClient, payload: dict, status: int) -> None:
    assert_json_error(client.put("/products/1", json=payload), status)
    assert client.get("/products/1").get_json()["stock"] == 50


def test_update_and_delete_unknown_product_are_404(client: FlaskClient) -> None:
    assert_json_error(client.put("/products/77", json={"stock": 1}), 404)
    assert_json_error(client.delete("/products/77"), 404)


def test_delete_product(client: FlaskClient) -> None:
    response = client.delete("/products/5")
    assert response.status_code == 200 and response.get_json()["deleted"]["name"] == "Webcam HD"
    assert_json_error(client.get("/products/5"), 404)


def test_wrong_method_is_405(client: FlaskClient) -> None:
    assert_json_error(client.patch("/products/1", json={}), 405)
    assert_json_error(client.get("/products/1/reserve"), 405)


# --- reserve / release --------------------------------------------------------------------------

def test_reserve_takes_stock(client: FlaskClient, read_log: ReadLog) -> None:
    response = client.post("/products/1/reserve", json={"quantity": 3}, headers={"X-Request-ID": "r-9"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["reserved"] == 3 and body["product"]["stock"] == 47 and body["product"]["price"] == 999.99
    assert stock(client, 1) == 47
    event = next(line for line in read_log() if line["message"] == "stock reserved")
    assert event["request_id"] == "r-9" and event["quantity"] == 3 and event["stock"] == 47


def test_reserve_exact_stock_then_insufficient(client: FlaskClient) -> None:
    assert client.post("/products/5/reserve", json={"quantity": 75}).status_code == 200
    response = client.post("/products/5/reserve", json={"quantity": 1})
    assert assert_json_error(response, 409) == "Insufficient stock"
    assert response.get_json()["available"] == 0
    assert stock(client, 5) == 0


def test_reserve_unknown_product_is_404(client: FlaskClient) -> None:
    assert_json_error(client.post("/products/99/reserve", json={"quantity": 1}), 404)


@pytest.mark.parametrize("quantity", [0, -3, 1.0, "2", True, None])
def test_reserve_rejects_bad_quantity(client: FlaskClient, quantity: object) -> None:
    assert_json_error(client.post("/products/1/reserve", json={"quantity": quantity}), 400)
    assert stock(client, 1) == 50


def test_release_gives_stock_back(client: FlaskClient) -> None:
    client.post("/products/3/reserve", json={"quantity": 10})
    response = client.post("/products/3/release", json={"quantity": 10})
    assert response.status_code == 200 and response.get_json()["product"]["stock"] == 150
    assert_json_error(client.post("/products/99/release", json={"quantity": 1}), 404)


def test_only_reserved_stock_can_be_released(client: FlaskClient) -> None:
    refused = client.post("/products/3/release", json={"quantity": 1_000_000_000})
    assert_json_error(refused, 409)
    assert (refused.get_json()["reserved"], refused.get_json()["requested"]) == (0, 1_000_000_000)
    client.post("/products/3/reserve", json={"quantity": 4})
    assert client.post("/products/3/release", json={"quantity": 3}).status_code == 200
    assert_json_error(client.post("/products/3/release", json={"quantity": 2}), 409)
    assert client.post("/products/3/release", json={"quantity": 1}).status_code == 200
    assert stock(client, 3) == 150


def test_a_database_of_the_previous_version_is_migrated_not_reseeded(settings: Settings) -> None:
    old = Database(settings.db_path, product.SCHEMA, product.seed, probe_table="products")
    assert old.initialize() is True
    conn = old.connect()
    conn.execute("DELETE FROM products WHERE id = 5")
    conn.close()
    client = product.create_app(settings).test_client()
    assert [p["id"] for p in client.get("/products").get_json()["products"]] == [1, 2, 3, 4]
    assert client.post("/products/1/reserve", json={"quantity": 2}).status_code == 200
    assert client.post("/products/1/release", json={"quantity": 2}).status_code == 200


def test_concurrent_reservations_never_oversell(app: Flask) -> None:
    """20 threads each want 5 Laptops of 50: exactly 10 succeed and the stock ends at 0."""
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    lock = threading.Lock()

    def order_five() -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        status = client.post("/products/1/reserve", json={"quantity": 5}).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=order_five) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [200] * 10 + [409] * 10
    assert stock(app.test_client(), 1) == 0


def test_reserve_sql_is_one_conditional_update(settings: Settings, app: Flask) -> None:
    """Two connections, as two request threads would have: the second sees the first's decrement."""
    database = Database(settings.db_path, product.SCHEMA, product.seed, probe_table="products")
    first, second = database.connect(), database.connect()
    try:
        assert product.reserve_stock(first, 1, 30)["stock"] == 20
        assert product.reserve_stock(second, 1, 30) is None  # not 20 - 30 = -10
        assert product.reserve_stock(second, 1, 20)["stock"] == 0
        assert product.reserve_stock(first, 1, 1) is None
        assert product.reserve_stock(first, 999, 1) is None
        # A reservation racing an open write transaction waits for it (busy_timeout) and then
        # decides on the committed stock, whichever runs first.
        first.execute("BEGIN IMMEDIATE")
        product.release_stock(first, 1, 5)
        result: dict = {}

        def reserve_five() -> None:
            conn = database.connect()
            try:
                result["row"] = product.reserve_stock(conn, 1, 5)
            finally:
                conn.close()

        waiter = threading.Thread(target=reserve_five)
        waiter.start()
        first.execute("COMMIT")
        waiter.join(timeout=10)
        assert result["row"]["stock"] == 0
    finally:
        first.close()
        second.close()


def test_metrics_label_reserve_by_template(client: FlaskClient) -> None:
    client.post("/products/1/reserve", json={"quantity": 1})
    client.post("/products/2/reserve", json={"quantity": 1})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'path="/products/<int:product_id>/reserve",status="200"} 2.0' in text
    assert "stock_reservations_total 2.0" in text
