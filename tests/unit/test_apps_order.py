"""order-service through Flask's test client, its upstreams routed to the other apps' test clients."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from podvisor.apps import order, product, user
from podvisor.apps.common.settings import Settings
from podvisor.apps.upstream import UpstreamResponse, UpstreamUnavailable
from tests.unit.apps_logging import ReadLog, captured_log

USERS_URL = "http://users.test"
PRODUCTS_URL = "http://products.test"


class AppTransport:
    """Routes upstream calls to Flask apps' test clients (no sockets) and records what it was asked."""

    def __init__(self, apps: Mapping[str, Flask]) -> None:
        self.apps = dict(apps)
        self.calls: list[dict[str, Any]] = []
        self.down: set[str] = set()
        self.lock = threading.Lock()

    def request(self, method: str, url: str, *, json: Mapping[str, Any] | None,
                headers: Mapping[str, str], timeout: float) -> UpstreamResponse:
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        with self.lock:
            self.calls.append({"method": method, "url": url, "json": json, "headers": dict(headers),
                               "timeout": timeout})
        if base in self.down:
            raise UpstreamUnavailable(url, "connection refused")
        response = self.apps[base].test_client().open(parts.path, method=method, json=json,
                                                       headers=dict(headers))
        return UpstreamResponse(response.status_code, response.get_json(silent=True))


@pytest.fixture
def user_app(tmp_path: Path) -> Flask:
    return user.create_app(Settings(db_path=tmp_path / "user.db", log_file=tmp_path / "app.log"))


@pytest.fixture
def product_app(tmp_path: Path) -> Flask:
    return product.create_app(Settings(db_path=tmp_path / "product.db", log_file=tmp_path / "app.log"))


@pytest.fixture
def transport(user_app: Flask, product_app: Flask) -> AppTransport:
    return AppTransport({USERS_URL: user_app, PRODUCTS_URL: product_app})


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "order.db", log_file=tmp_path / "app.log",
                    user_service_url=USERS_URL, product_service_url=PRODUCTS_URL, upstream_timeout=2.5)


@pytest.fixture
def app(settings: Settings, transport: AppTransport) -> Flask:
    return order.create_app(settings, transport=transport)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def read_log(settings: Settings) -> Iterator[ReadLog]:
    with captured_log(settings.log_file) as read:
        yield read


def assert_json_error(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["ok"] is False and body["error"]
    return body


def stock(product_app: Flask, product_id: int) -> int:
    return product_app.test_client().get(f"/products/{product_id}").get_json()["stock"]


def order_count(client: FlaskClient) -> int:
    return client.get("/orders").get_json()["count"]


# --- probes and reads ---------------------------------------------------------------------------

def test_hello_and_health(client: FlaskClient) -> None:
    assert client.get("/").get_data(as_text=True) == "Hello from order-service"
    assert client.get("/health").get_json() == {"service": "order-service", "status": "healthy"}


def test_health_does_not_depend_on_upstreams(client: FlaskClient, transport: AppTransport) -> None:
    transport.down = {USERS_URL, PRODUCTS_URL}
    assert client.get("/health").status_code == 200
    assert transport.calls == []


def test_seeded_orders_newest_first_with_names(client: FlaskClient) -> None:
    body = client.get("/orders").get_json()
    assert body["count"] == 3
    assert [(o["id"], o["username"], o["product_name"], o["quantity"], o["total"])
            for o in body["orders"]] == [
        (3, "bob_wilson", "Mechanical Keyboard", 1, 79.99),
        (2, "jane_smith", "Wireless Mouse", 2, 59.98),
        (1, "john_doe", "Laptop", 1, 999.99),
    ]


def test_seeding_happens_once(settings: Settings, transport: AppTransport, client: FlaskClient) -> None:
    assert client.post("/orders", json={"user_id": 1, "product_id": 2, "quantity": 1}).status_code == 201
    restarted = order.create_app(settings, transport=transport).test_client()
    assert order_count(restarted) == 4


def test_get_order(client: FlaskClient) -> None:
    body = client.get("/orders/2").get_json()
    assert (body["username"], body["product_name"], body["unit_price"], body["total"]) == \
        ("jane_smith", "Wireless Mouse", 29.99, 59.98)
    assert assert_json_error(client.get("/orders/9"), 404)["error"] == "order 9 not found"


# --- placing orders -----------------------------------------------------------------------------

def test_create_order(app: Flask, client: FlaskClient, product_app: Flask, transport: AppTransport,
                      read_log: ReadLog) -> None:
    response = client.post("/orders", json={"user_id": 2, "product_id": 1, "quantity": 2},
                           headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["id"], body["username"], body["product_name"]) == (4, "jane_smith", "Laptop")
    assert (body["quantity"], body["unit_price"], body["total"], body["status"]) == (2, 999.99, 1999.98,
                                                                                      "pending")
    assert body["total_price"] == 1999.98, "the seed API's name for the total"
    assert response.headers["Location"] == "/orders/4"
    assert response.headers["X-Request-ID"] == "trace-42"
    assert stock(product_app, 1) == 48
    assert client.get("/orders").get_json()["orders"][0]["id"] == 4  # newest first
    assert [(c["method"], c["url"]) for c in transport.calls] == [
        ("GET", f"{USERS_URL}/users/2"), ("POST", f"{PRODUCTS_URL}/products/1/reserve")]
    assert all(c["headers"] == {"X-Request-ID": "trace-42"} and c["timeout"] == 2.5 for c in transport.calls)
    registry = app.extensions["podvisor.service"].metrics.registry
    assert registry.get_sample_value("orders_created_total") == 1
    lines = read_log()
    created = [line for line in lines if line["message"] == "order created"]
    assert len(created) == 1 and created[0]["request_id"] == "trace-42" and created[0]["total"] == 1999.98
    # One request id followed across the three services' lines.
    loggers = {line["logger"] for line in lines if line.get("request_id") == "trace-42"}
    assert {"podvisor.apps.order.access", "podvisor.apps.user.access", "podvisor.apps.product.access",
            "podvisor.apps.product"} <= loggers


def test_generated_request_id_is_propagated(client: FlaskClient, transport: AppTransport) -> None:
    response = client.post("/orders", json={"user_id": 1, "product_id": 3, "quantity": 1})
    assert response.status_code == 201
    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert [c["headers"]["X-Request-ID"] for c in transport.calls] == [request_id, request_id]


def test_unknown_user_is_404_and_reserves_nothing(client: FlaskClient, product_app: Flask,
                                                  transport: AppTransport) -> None:
    response = client.post("/orders", json={"user_id": 99, "product_id": 1, "quantity": 1})
    body = assert_json_error(response, 404)
    assert body["error"] == "user 99 not found"
    assert [c["url"] for c in transport.calls] == [f"{USERS_URL}/users/99"]
    assert stock(product_app, 1) == 50 and order_count(client) == 3


def test_unknown_product_is_404(client: FlaskClient) -> None:
    response = client.post("/orders", json={"user_id": 1, "product_id": 99, "quantity": 1})
    body = assert_json_error(response, 404)
    assert body["error"] == "product 99 not found"
    assert order_count(client) == 3


def test_insufficient_stock_is_400(client: FlaskClient, product_app: Flask) -> None:
    response = client.post("/orders", json={"user_id": 1, "product_id": 5, "quantity": 76})
    body = assert_json_error(response, 400)
    assert body["error"] == "Insufficient stock" and body["available"] == 75
    assert stock(product_app, 5) == 75 and order_count(client) == 3


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"product_id": 1, "quantity": 1}, "missing field: user_id"),
    ({"user_id": 1, "quantity": 1}, "missing field: product_id"),
    ({"user_id": 1, "product_id": 1}, "missing field: quantity"),
    ({"user_id": 1, "product_id": 1, "quantity": 0}, "quantity must be at least 1"),
    ({"user_id": 1, "product_id": 1, "quantity": -2}, "quantity must be at least 1"),
    ({"user_id": 1, "product_id": 1, "quantity": 1.5}, "quantity must be an integer"),
    ({"user_id": 1, "product_id": 1, "quantity": "1"}, "quantity must be an integer"),
    ({"user_id": True, "product_id": 1, "quantity": 1}, "user_id must be an integer"),
    ({"user_id": "1", "product_id": 1, "quantity": 1}, "user_id must be an integer"),
    ({"user_id": 1, "product_id": [1], "quantity": 1}, "product_id must be an integer"),
    ({"user_id": 1, "product_id": 1, "quantity": 1, "price": 0}, "unknown field(s): price"),
])
def test_create_rejects_invalid_fields_before_calling_upstreams(
    client: FlaskClient, transport: AppTransport, payload: dict, fragment: str
) -> None:
    assert fragment in assert_json_error(client.post("/orders", json=payload), 400)["error"]
    assert transport.calls == []


def test_create_rejects_malformed_json_and_wrong_content_type(client: FlaskClient) -> None:
    assert_json_error(client.post("/orders", data='{"user_id": 1', content_type="application/json"), 400)
    assert_json_error(client.post("/orders", data='{"user_id": 1}', content_type="text/plain"), 415)


@pytest.mark.parametrize(("down", "service"), [
    (USERS_URL, "user-service"), (PRODUCTS_URL, "product-service"),
])
def test_unreachable_upstream_is_503_with_reason(
    client: FlaskClient, transport: AppTransport, read_log: ReadLog, down: str, service: str
) -> None:
    transport.down = {down}
    response = client.post("/orders", json={"user_id": 1, "product_id": 1, "quantity": 1},
                           headers={"X-Request-ID": "down-1"})
    body = assert_json_error(response, 503)
    assert body["error"] == f"{service} unavailable" and "connection refused" in body["reason"]
    assert order_count(client) == 3
    logged = [line for line in read_log() if line["message"].startswith("upstream unavailable")]
    assert logged and logged[0]["request_id"] == "down-1" and logged[0]["level"] == "ERROR"


def test_upstream_server_error_is_503(client: FlaskClient, user_app: Flask) -> None:
    user_app.extensions["podvisor.db"].path.unlink()  # the user service answers 503 itself
    body = assert_json_error(client.post("/orders", json={"user_id": 1, "product_id": 1, "quantity": 1}), 503)
    assert body["error"] == "user-service unavailable" and "HTTP 503" in body["reason"]


def test_stock_is_released_when_the_order_cannot_be_recorded(
    client: FlaskClient, settings: Settings, product_app: Flask, transport: AppTransport
) -> None:
    conn = sqlite3.connect(settings.db_path)
    conn.execute("DROP TABLE orders")
    conn.close()
    response = client.post("/orders", json={"user_id": 1, "product_id": 4, "quantity": 10})
    assert_json_error(response, 503)
    assert transport.calls[-1]["url"] == f"{PRODUCTS_URL}/products/4/release"
    assert stock(product_app, 4) == 100


def test_concurrent_orders_for_the_last_unit(client: FlaskClient, app: Flask, product_app: Flask) -> None:
    product_app.test_client().put("/products/2", json={"stock": 1})
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def place() -> None:
        barrier.wait(timeout=10)
        statuses.append(app.test_client().post(
            "/orders", json={"user_id": 1, "product_id": 2, "quantity": 1}).status_code)

    threads = [threading.Thread(target=place) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201, 400]
    assert stock(product_app, 2) == 0 and order_count(client) == 4


# --- status ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", order.STATUSES)
def test_update_status(client: FlaskClient, status: str) -> None:
    response = client.put("/orders/3/status", json={"status": status})
    assert response.status_code == 200 and response.get_json()["status"] == status
    assert client.get("/orders/3").get_json()["status"] == status


@pytest.mark.parametrize("payload", [{"status": "lost"}, {"status": 3}, {"status": ["shipped"]}, {}])
def test_update_status_rejects_unknown_values(client: FlaskClient, payload: dict) -> None:
    assert_json_error(client.put("/orders/1/status", json=payload), 400)
    assert client.get("/orders/1").get_json()["status"] == "delivered"


def test_update_status_of_unknown_order_is_404(client: FlaskClient) -> None:
    assert_json_error(client.put("/orders/50/status", json={"status": "shipped"}), 404)


def test_wrong_methods_are_405(client: FlaskClient) -> None:
    assert_json_error(client.delete("/orders/1"), 405)
    assert_json_error(client.post("/orders/1/status", json={"status": "shipped"}), 405)


def test_metrics_use_route_templates(client: FlaskClient) -> None:
    client.put("/orders/1/status", json={"status": "shipped"})
    client.put("/orders/2/status", json={"status": "bogus"})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{method="PUT",path="/orders/<int:order_id>/status",status="200"} 1.0' in text
    assert 'http_requests_total{method="PUT",path="/orders/<int:order_id>/status",status="400"} 1.0' in text
    assert "orders_created_total 0.0" in text
