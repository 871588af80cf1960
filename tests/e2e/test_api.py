"""Every REST route of the three demo services, with its error cases, over real HTTP.

One stack (real supervisord, waitress, SQLite) serves the whole module. Tests that write create
their own users and products, so the seeded rows stay as seeded and tests do not depend on order;
the one test that breaks a database runs last and puts it back.
"""
from __future__ import annotations

import os
import re
import uuid
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from podvisor.testing.harness import StackHandle

pytestmark = pytest.mark.e2e

SERVICES = {"user": "user-service", "product": "product-service", "order": "order-service"}
SEEDED_USERS = [("john_doe", "john@example.com"), ("jane_smith", "jane@example.com"),
                ("bob_wilson", "bob@example.com")]
# Prices are decimal amounts (stored as integer cents by the product service).
SEEDED_PRODUCTS = [("Laptop", 999.99, 50), ("Wireless Mouse", 29.99, 200),
                   ("Mechanical Keyboard", 79.99, 150), ("USB-C Hub", 49.99, 100), ("Webcam HD", 89.99, 75)]
STATUSES = ["pending", "confirmed", "shipped", "delivered", "cancelled"]
TIMEOUT = 10


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


# --- helpers ------------------------------------------------------------------------------------

def call(stack: StackHandle, pod: str, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, stack.apps[pod] + path, timeout=TIMEOUT, **kwargs)


def error(response: requests.Response, status: int, fragment: str | None = None) -> dict:
    """Assert a JSON error body (never HTML) with `status`; returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert not response.text.lstrip().startswith("<"), response.text[:300]
    body = response.json()
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"], body
    if fragment is not None:
        assert fragment in body["error"], body
    assert response.headers.get("X-Request-ID"), "error responses carry the request id too"
    return body


def created(response: requests.Response, collection: str) -> dict:
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"].endswith(f"/{collection}/{body['id']}")
    return body


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def new_user(stack: StackHandle) -> dict:
    name = unique("u")
    payload = {"username": name, "email": f"{name}@example.com"}
    return created(call(stack, "user", "POST", "/users", json=payload), "users")


def new_product(stack: StackHandle, price: float = 12.5, stock: int = 10) -> dict:
    return created(call(stack, "product", "POST", "/products",
                        json={"name": unique("Gadget"), "price": price, "stock": stock}), "products")


def stock_of(stack: StackHandle, product_id: int) -> int:
    return call(stack, "product", "GET", f"/products/{product_id}").json()["stock"]


def metric(stack: StackHandle, pod: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """One sample of the app's own /metrics (None when absent)."""
    text = call(stack, pod, "GET", "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                return sample.value
    return None


# --- shared routes of every service -------------------------------------------------------------

@pytest.mark.parametrize("pod", list(SERVICES))
def test_root_health_and_request_id(stack, pod):
    resp = call(stack, pod, "GET", "/", headers={"X-Request-ID": "api-root-1"})
    assert resp.status_code == 200 and resp.text == f"Hello from {SERVICES[pod]}"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert resp.headers["X-Request-ID"] == "api-root-1"

    resp = call(stack, pod, "GET", "/health")
    assert resp.status_code == 200 and resp.json() == {"service": SERVICES[pod], "status": "healthy"}
    assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"]), "an id is generated when none is sent"
    # An unusable id (spaces, or too long) is replaced, never echoed into headers and logs.
    for bad in ("has spaces", "x" * 129):
        resp = call(stack, pod, "GET", "/health", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


@pytest.mark.parametrize("pod", list(SERVICES))
@pytest.mark.parametrize("path", ["/nope", "/health/", f"/{'x' * 300}"])
def test_unknown_route_is_404_json(stack, pod, path):
    error(call(stack, pod, "GET", path), 404)


@pytest.mark.parametrize(("pod", "method", "path", "allowed"), [
    ("user", "POST", "/health", {"GET"}),
    ("user", "DELETE", "/users/1", {"GET", "PUT"}),
    ("user", "PUT", "/users", {"GET", "POST"}),
    ("product", "PATCH", "/products/1", {"GET", "PUT", "DELETE"}),
    ("product", "GET", "/products/1/reserve", {"POST"}),
    ("order", "DELETE", "/orders/1", {"GET"}),
    ("order", "POST", "/orders/1/status", {"PUT"}),
    ("order", "POST", "/metrics", {"GET"}),
])
def test_wrong_method_is_405_json_with_allow(stack, pod, method, path, allowed):
    resp = call(stack, pod, method, path)
    error(resp, 405)
    assert allowed <= set(resp.headers["Allow"].split(", ")), resp.headers["Allow"]


@pytest.mark.parametrize(("pod", "path", "template"), [
    ("user", "/users/2", "/users/<int:user_id>"),
    ("product", "/products/3", "/products/<int:product_id>"),
    ("order", "/orders/1", "/orders/<int:order_id>"),
])
def test_metrics_count_by_route_template_with_a_duration_histogram(stack, pod, path, template):
    labels = {"method": "GET", "path": template, "status": "200"}
    before = metric(stack, pod, "http_requests_total", labels) or 0
    assert call(stack, pod, "GET", path).status_code == 200
    call(stack, pod, "GET", "/no/such/route/42")
    text = call(stack, pod, "GET", "/metrics").text
    assert metric(stack, pod, "http_requests_total", labels) == before + 1
    assert metric(stack, pod, "http_request_duration_seconds_count", {"method": "GET", "path": template}) >= 1
    assert metric(stack, pod, "http_request_duration_seconds_bucket",
                  {"method": "GET", "path": template, "le": "+Inf"}) >= 1
    # Bounded cardinality: raw paths never become label values, unknown routes share one.
    assert f'path="{path}"' not in text and "/no/such/route" not in text
    assert metric(stack, pod, "http_requests_total", {"path": "<unmatched>", "status": "404"}) >= 1


# --- user-service -------------------------------------------------------------------------------

def test_seeded_users(stack):
    body = call(stack, "user", "GET", "/users").json()
    first = body["users"][:3]
    assert [(u["id"], u["username"], u["email"]) for u in first] == \
        [(i, name, email) for i, (name, email) in enumerate(SEEDED_USERS, start=1)]
    assert body["count"] == len(body["users"]) >= 3
    assert call(stack, "user", "GET", "/users/2").json()["username"] == "jane_smith"


@pytest.mark.parametrize("path", ["/users/999999", "/users/0", "/users/abc", "/users/-1",
                                  "/users/99999999999999999999999"])
def test_unknown_user_is_404(stack, path):
    error(call(stack, "user", "GET", path), 404)


def test_create_user_then_read_it_back_and_count_it(stack):
    before = metric(stack, "user", "users_created_total")
    name = unique("alice")
    resp = call(stack, "user", "POST", "/users", json={"username": name, "email": f"{name}@Example.com"})
    user = created(resp, "users")
    assert (user["username"], user["email"]) == (name, f"{name}@Example.com")
    assert call(stack, "user", "GET", resp.headers["Location"]).json() == user
    assert user in call(stack, "user", "GET", "/users").json()["users"]
    assert metric(stack, "user", "users_created_total") == before + 1


def test_duplicates_are_409_naming_the_field(stack):
    user = new_user(stack)
    fresh = unique("dup")
    # Uniqueness ignores case, on POST and on PUT alike.
    body = error(call(stack, "user", "POST", "/users",
                      json={"username": user["username"].upper(), "email": f"{fresh}@example.com"}), 409)
    assert body["field"] == "username"
    body = error(call(stack, "user", "POST", "/users",
                      json={"username": fresh, "email": "JOHN@example.com"}), 409)
    assert body["field"] == "email"
    body = error(call(stack, "user", "PUT", f"/users/{user['id']}", json={"username": "john_doe"}), 409)
    assert body["field"] == "username"
    assert call(stack, "user", "GET", f"/users/{user['id']}").json() == user


@pytest.mark.parametrize(("payload", "fragment"), [
    ({}, "missing field: username"),
    ({"username": "zed"}, "missing field: email"),
    ({"email": "zed@example.com"}, "missing field: username"),
    ({"username": 42, "email": "zed@example.com"}, "username must be a string"),
    ({"username": "zed", "email": ["zed@example.com"]}, "email must be a string"),
    ({"username": "  ", "email": "zed@example.com"}, "must not be empty"),
    ({"username": "zed zed", "email": "zed@example.com"}, "username may only contain"),
    ({"username": "zed", "email": "not-an-address"}, "email is not a valid address"),
    ({"username": "zed", "email": "zed@example.com", "role": "admin"}, "unknown field(s): role"),
])
def test_create_user_rejects_bad_fields(stack, payload, fragment):
    error(call(stack, "user", "POST", "/users", json=payload), 400, fragment)


@pytest.mark.parametrize(("pod", "path"), [("user", "/users"), ("product", "/products"),
                                           ("order", "/orders")])
@pytest.mark.parametrize(("data", "fragment"), [
    ('{"username": "a",', "malformed JSON"),
    ("", "malformed JSON"),
    ("[1, 2]", "must be an object"),
    ("null", "must be an object"),
    ('{"a": NaN}', "malformed JSON"),
    (b'{"a": "\xff"}', "malformed JSON"),
    ("[" * 100_000, "nested too deeply"),
], ids=["truncated", "empty", "array", "null", "nan", "not-utf8", "nested-100k"])
def test_malformed_json_is_400(stack, pod, path, data, fragment):
    resp = call(stack, pod, "POST", path, data=data, headers={"Content-Type": "application/json"})
    error(resp, 400, fragment)


@pytest.mark.parametrize(("pod", "method", "path", "payload"), [
    ("user", "POST", "/users", '{"username": "ct", "email": "ct@example.com"}'),
    ("user", "PUT", "/users/1", '{"email": "ct@example.com"}'),
    ("product", "POST", "/products", '{"name": "x", "price": 1, "stock": 1}'),
    ("product", "POST", "/products/1/reserve", '{"quantity": 1}'),
    ("order", "POST", "/orders", '{"user_id": 1, "product_id": 1, "quantity": 1}'),
    ("order", "PUT", "/orders/1/status", '{"status": "shipped"}'),
])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_wrong_content_type_is_415(stack, pod, method, path, payload, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    error(call(stack, pod, method, path, data=payload.encode(), headers=headers), 415, "application/json")


def test_body_over_one_megabyte_is_413(stack):
    error(call(stack, "user", "POST", "/users", data=b"x" * (2 * 1024 * 1024),
               headers={"Content-Type": "application/json"}), 413)


def test_update_user(stack):
    user = new_user(stack)
    path = f"/users/{user['id']}"
    email = unique("new") + "@example.com"
    resp = call(stack, "user", "PUT", path, json={"email": email})
    assert resp.status_code == 200 and resp.json() == {**user, "email": email}
    name = unique("renamed")
    resp = call(stack, "user", "PUT", path, json={"username": name, "email": email})
    assert resp.status_code == 200 and resp.json()["username"] == name
    assert call(stack, "user", "GET", path).json() == {**user, "username": name, "email": email}
    # Its own values are not a conflict with itself.
    assert call(stack, "user", "PUT", path, json={"username": name}).status_code == 200

    error(call(stack, "user", "PUT", path, json={}), 400, "nothing to update")
    error(call(stack, "user", "PUT", path, json={"username": 7}), 400, "username must be a string")
    error(call(stack, "user", "PUT", path, json={"email": "nope"}), 400, "email is not a valid address")
    error(call(stack, "user", "PUT", path, json={"id": 1}), 400, "unknown field(s): id")
    error(call(stack, "user", "PUT", "/users/999999", json={"email": unique("x") + "@example.com"}), 404)


# --- product-service ----------------------------------------------------------------------------

def test_seeded_products(stack):
    body = call(stack, "product", "GET", "/products").json()
    assert body["count"] == len(body["products"]) >= 5
    seeded = [p for p in body["products"] if p["id"] <= 5]
    assert [(p["id"], p["name"], p["price"], p["stock"]) for p in seeded] == \
        [(i, name, price, stock) for i, (name, price, stock) in enumerate(SEEDED_PRODUCTS, start=1)]
    assert call(stack, "product", "GET", "/products/4").json()["name"] == "USB-C Hub"


@pytest.mark.parametrize("path", ["/products/999999", "/products/0", "/products/x"])
def test_unknown_product_is_404(stack, path):
    error(call(stack, "product", "GET", path), 404)


def test_create_product_then_read_it_back_and_count_it(stack):
    before = metric(stack, "product", "products_created_total")
    name = unique("Monitor")
    resp = call(stack, "product", "POST", "/products", json={"name": name, "price": 199.9, "stock": 0})
    product = created(resp, "products")
    assert (product["name"], product["price"], product["stock"]) == (name, 199.9, 0)
    assert call(stack, "product", "GET", resp.headers["Location"]).json() == product
    assert created(call(stack, "product", "POST", "/products",
                        json={"name": unique("Cable"), "price": 5, "stock": 3}), "products")["price"] == 5
    assert metric(stack, "product", "products_created_total") == before + 2


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"price": 1, "stock": 1}, "missing field: name"),
    ({"name": "x", "stock": 1}, "missing field: price"),
    ({"name": "x", "price": 1}, "missing field: stock"),
    ({"name": "x", "price": -0.01, "stock": 1}, "price must not be negative"),
    ({"name": "x", "price": 1, "stock": -1}, "stock must be at least 0"),
    ({"name": "x", "price": "9.99", "stock": 1}, "price must be a number"),
    ({"name": "x", "price": True, "stock": 1}, "price must be a number"),
    ({"name": "x", "price": 9.999, "stock": 1}, "at most two decimal places"),
    ({"name": "x", "price": 1, "stock": 1.5}, "stock must be an integer"),
    ({"name": "x", "price": 1, "stock": "3"}, "stock must be an integer"),
    ({"name": 5, "price": 1, "stock": 1}, "name must be a string"),
    ({"name": "", "price": 1, "stock": 1}, "name must not be empty"),
    ({"name": "x", "price": 1, "stock": 1, "sku": "A1"}, "unknown field(s): sku"),
])
def test_create_product_rejects_bad_fields(stack, payload, fragment):
    error(call(stack, "product", "POST", "/products", json=payload), 400, fragment)


def test_update_product(stack):
    product = new_product(stack)
    path = f"/products/{product['id']}"
    resp = call(stack, "product", "PUT", path, json={"price": 15.25, "stock": 4})
    assert resp.status_code == 200 and resp.json() == {**product, "price": 15.25, "stock": 4}
    assert call(stack, "product", "GET", path).json()["price"] == 15.25

    error(call(stack, "product", "PUT", path, json={"price": -1}), 400, "price must not be negative")
    error(call(stack, "product", "PUT", path, json={"stock": -5}), 400, "stock must be at least 0")
    error(call(stack, "product", "PUT", path, json={}), 400, "nothing to update")
    error(call(stack, "product", "PUT", "/products/999999", json={"stock": 1}), 404)
    assert call(stack, "product", "GET", path).json()["stock"] == 4, "a rejected update changes nothing"


def test_delete_product(stack):
    product = new_product(stack)
    path = f"/products/{product['id']}"
    resp = call(stack, "product", "DELETE", path)
    assert resp.status_code == 200 and resp.json() == {"ok": True, "deleted": product}
    error(call(stack, "product", "GET", path), 404)
    error(call(stack, "product", "DELETE", path), 404)


def test_reserve_and_release_stock(stack):
    product = new_product(stack, stock=5)
    base = f"/products/{product['id']}"
    resp = call(stack, "product", "POST", base + "/reserve", json={"quantity": 3})
    assert resp.status_code == 200 and resp.json()["reserved"] == 3 and resp.json()["product"]["stock"] == 2
    body = error(call(stack, "product", "POST", base + "/reserve", json={"quantity": 3}), 409,
                 "Insufficient stock")
    assert (body["available"], body["requested"]) == (2, 3)
    for quantity in (0, -1, 1.5, "2"):
        error(call(stack, "product", "POST", base + "/reserve", json={"quantity": quantity}), 400, "quantity")
    error(call(stack, "product", "POST", base + "/reserve", json={}), 400, "missing field: quantity")
    error(call(stack, "product", "POST", "/products/999999/reserve", json={"quantity": 1}), 404)
    assert stock_of(stack, product["id"]) == 2

    resp = call(stack, "product", "POST", base + "/release", json={"quantity": 3})
    assert resp.status_code == 200 and resp.json()["released"] == 3 and resp.json()["product"]["stock"] == 5
    error(call(stack, "product", "POST", base + "/release", json={"quantity": 0}), 400, "quantity")
    error(call(stack, "product", "POST", "/products/999999/release", json={"quantity": 1}), 404)
    assert stock_of(stack, product["id"]) == 5


def test_only_reserved_stock_can_be_released(stack):
    product = new_product(stack, stock=5)
    base = f"/products/{product['id']}"
    body = error(call(stack, "product", "POST", base + "/release", json={"quantity": 1_000_000_000}), 409,
                 "only reserved stock")
    assert (body["reserved"], body["requested"]) == (0, 1_000_000_000)
    assert stock_of(stack, product["id"]) == 5
    assert call(stack, "product", "POST", base + "/reserve", json={"quantity": 3}).status_code == 200
    assert call(stack, "product", "POST", base + "/release", json={"quantity": 2}).status_code == 200
    assert error(call(stack, "product", "POST", base + "/release", json={"quantity": 2}), 409)["reserved"] == 1
    assert stock_of(stack, product["id"]) == 4


# --- order-service ------------------------------------------------------------------------------

def test_orders_answer_with_the_seed_api_field_names(stack):
    """Clients of the original e-commerce API read these names (ours may add fields beside them)."""
    seed_fields = {"user": {"id", "username", "email", "created_at"},
                   "product": {"id", "name", "price", "stock"},
                   "order": {"id", "user_id", "product_id", "quantity", "total_price", "status", "created_at"}}
    user = call(stack, "user", "GET", "/users/1").json()
    product = call(stack, "product", "GET", "/products/2").json()
    order = call(stack, "order", "POST", "/orders", json={"user_id": 1, "product_id": 2, "quantity": 2})
    assert order.status_code == 201, order.text
    for name, answer in (("user", user), ("product", product), ("order", order.json()),
                         ("order", call(stack, "order", "GET", "/orders").json()["orders"][0])):
        assert seed_fields[name] <= set(answer), (name, sorted(seed_fields[name] - set(answer)))
    assert order.json()["total_price"] == pytest.approx(product["price"] * 2)


def test_seeded_orders(stack):
    body = call(stack, "order", "GET", "/orders").json()
    assert body["count"] == len(body["orders"]) >= 3
    seeded = {o["id"]: o for o in body["orders"] if o["id"] <= 3}
    assert [(seeded[i]["username"], seeded[i]["product_name"], seeded[i]["quantity"], seeded[i]["total"])
            for i in (1, 2, 3)] == [("john_doe", "Laptop", 1, 999.99),
                                   ("jane_smith", "Wireless Mouse", 2, 59.98),
                                   ("bob_wilson", "Mechanical Keyboard", 1, 79.99)]
    assert call(stack, "order", "GET", "/orders/2").json() == seeded[2]
    stamps = [(o["created_at"], o["id"]) for o in body["orders"]]
    assert stamps == sorted(stamps, reverse=True), "newest first"


@pytest.mark.parametrize("path", ["/orders/999999", "/orders/0", "/orders/first"])
def test_unknown_order_is_404(stack, path):
    error(call(stack, "order", "GET", path), 404)


def test_create_order_spans_three_services(stack):
    user, product = new_user(stack), new_product(stack, price=19.99, stock=10)
    before = metric(stack, "order", "orders_created_total")
    request_id = "api-order-" + uuid.uuid4().hex
    resp = call(stack, "order", "POST", "/orders",
                json={"user_id": user["id"], "product_id": product["id"], "quantity": 3},
                headers={"X-Request-ID": request_id})
    order = created(resp, "orders")
    assert resp.headers["X-Request-ID"] == request_id
    assert (order["user_id"], order["username"], order["product_id"], order["product_name"]) == \
        (user["id"], user["username"], product["id"], product["name"])
    assert (order["quantity"], order["unit_price"], order["total"], order["status"]) == \
        (3, 19.99, 59.97, "pending")
    assert stock_of(stack, product["id"]) == 7
    assert call(stack, "order", "GET", resp.headers["Location"]).json() == order
    assert call(stack, "order", "GET", "/orders").json()["orders"][0]["id"] == order["id"], "newest first"
    assert metric(stack, "order", "orders_created_total") == before + 1

    # The caller's id reached the user and product services and all three pods' lines in the aggregator.
    def followed() -> dict[str, set[str]] | None:
        seen: dict[str, set[str]] = {}
        for entry in stack.logs(request_id=request_id):
            seen.setdefault(entry["pod"], set()).add(entry["message"])
        wanted = {
            "order": {"POST /orders 201", "order created"},
            "user": {f"GET /users/{user['id']} 200"},
            "product": {f"POST /products/{product['id']}/reserve 200", "stock reserved"},
        }
        return seen if all(msgs <= seen.get(pod, set()) for pod, msgs in wanted.items()) else None
    seen = stack.wait_for(followed, 15, "the order's request id in the logs of all three pods")
    assert set(seen) == {"order", "user", "product"}


def test_generated_request_id_is_propagated_to_both_services(stack):
    user, product = new_user(stack), new_product(stack)
    resp = call(stack, "order", "POST", "/orders", json={"user_id": user["id"], "product_id": product["id"],
                                                         "quantity": 1})
    created(resp, "orders")
    request_id = resp.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    stack.wait_for(lambda: {e["pod"] for e in stack.logs(request_id=request_id)} >= set(SERVICES), 15,
                   "the generated request id in the logs of all three pods")


def test_order_for_unknown_user_or_product_is_404_and_takes_no_stock(stack):
    user, product = new_user(stack), new_product(stack, stock=4)
    count = call(stack, "order", "GET", "/orders").json()["count"]
    error(call(stack, "order", "POST", "/orders", json={"user_id": 999999, "product_id": product["id"],
                                                        "quantity": 1}), 404, "user 999999 not found")
    error(call(stack, "order", "POST", "/orders", json={"user_id": user["id"], "product_id": 999999,
                                                        "quantity": 1}), 404, "product 999999 not found")
    assert stock_of(stack, product["id"]) == 4
    assert call(stack, "order", "GET", "/orders").json()["count"] == count


def test_insufficient_stock_is_400_and_takes_no_stock(stack):
    user, product = new_user(stack), new_product(stack, stock=2)
    payload = {"user_id": user["id"], "product_id": product["id"], "quantity": 3}
    body = error(call(stack, "order", "POST", "/orders", json=payload), 400, "Insufficient stock")
    assert (body["available"], body["requested"]) == (2, 3)
    assert stock_of(stack, product["id"]) == 2
    # Exactly the stock left is fine, and then there is none.
    created(call(stack, "order", "POST", "/orders", json={"user_id": user["id"], "product_id": product["id"],
                                                          "quantity": 2}), "orders")
    assert stock_of(stack, product["id"]) == 0


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"user_id": 1, "product_id": 1, "quantity": 0}, "quantity must be at least 1"),
    ({"user_id": 1, "product_id": 1, "quantity": -2}, "quantity must be at least 1"),
    ({"user_id": 1, "product_id": 1, "quantity": 1.5}, "quantity must be an integer"),
    ({"user_id": 1, "product_id": 1, "quantity": "1"}, "quantity must be an integer"),
    ({"user_id": 1, "product_id": 1, "quantity": True}, "quantity must be an integer"),
    ({"user_id": "1", "product_id": 1, "quantity": 1}, "user_id must be an integer"),
    ({"user_id": 1, "product_id": None, "quantity": 1}, "missing field: product_id"),
    ({"product_id": 1, "quantity": 1}, "missing field: user_id"),
    ({"user_id": 1, "product_id": 1}, "missing field: quantity"),
    ({"user_id": 1, "product_id": 1, "quantity": 1, "total": 0}, "unknown field(s): total"),
])
def test_create_order_rejects_bad_fields_without_touching_stock(stack, payload, fragment):
    before = stock_of(stack, 1)
    error(call(stack, "order", "POST", "/orders", json=payload), 400, fragment)
    assert stock_of(stack, 1) == before


def test_update_order_status(stack):
    user, product = new_user(stack), new_product(stack)
    order = created(call(stack, "order", "POST", "/orders",
                         json={"user_id": user["id"], "product_id": product["id"], "quantity": 1}), "orders")
    path = f"/orders/{order['id']}/status"
    # The service records any of its statuses; it defines no transition rules (see the report).
    for status in STATUSES[1:] + ["pending"]:
        resp = call(stack, "order", "PUT", path, json={"status": status})
        assert resp.status_code == 200 and resp.json()["status"] == status, resp.text
        assert resp.json()["updated_at"] >= order["updated_at"]
    assert call(stack, "order", "GET", f"/orders/{order['id']}").json()["status"] == "pending"

    for bad in ("lost", "SHIPPED", "", 3, ["shipped"]):
        error(call(stack, "order", "PUT", path, json={"status": bad}), 400, "status must be one of")
    error(call(stack, "order", "PUT", path, json={}), 400, "missing field: status")
    error(call(stack, "order", "PUT", path, json={"status": "shipped", "note": "x"}), 400, "unknown field(s)")
    error(call(stack, "order", "PUT", "/orders/999999/status", json={"status": "shipped"}), 404)
    assert call(stack, "order", "GET", f"/orders/{order['id']}").json()["status"] == "pending"


# --- outages (last: it breaks a database for a moment and puts it back) -------------------------

def test_unusable_database_is_503_with_a_reason_then_recovers(stack):
    """An operator's mistake: the user database is overwritten with something that is not SQLite."""
    db = stack.pod_dir("user") / "data" / "user.db"
    saved = db.with_name("user.db.saved")
    os.replace(db, saved)
    try:
        db.write_bytes(b"definitely not an SQLite database\n" * 200)
        resp = call(stack, "user", "GET", "/health")
        assert resp.status_code == 503, resp.text
        assert resp.json() == {"service": "user-service", "status": "unhealthy",
                               "reason": "database unusable: file is not a database"}
        error(call(stack, "user", "GET", "/users"), 503, "database unavailable")
        # The order service reports its upstream's outage as its own 503, not a 500 or a 404.
        payload = {"user_id": 1, "product_id": 1, "quantity": 1}
        body = error(call(stack, "order", "POST", "/orders", json=payload), 503, "user-service unavailable")
        assert "503" in body["reason"]

        db.unlink()
        resp = call(stack, "user", "GET", "/health")
        assert resp.status_code == 503 and resp.json()["reason"].startswith("database file missing")
    finally:
        os.replace(saved, db)
    resp = call(stack, "user", "GET", "/health")
    assert resp.status_code == 200, resp.text
    assert [u["username"] for u in call(stack, "user", "GET", "/users").json()["users"][:3]] == \
        [name for name, _ in SEEDED_USERS]
