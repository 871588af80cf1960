"""The order service's calls to the user and product services, behind an injectable transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import requests

from podvisor.apps.common.requestid import HEADER


@dataclass(frozen=True)
class UpstreamResponse:
    """What a transport got back: the status and the decoded JSON body (None when not JSON)."""

    status: int
    body: Any


class UpstreamUnavailable(Exception):
    """An upstream service could not be reached or answered nonsense; the order answers 503."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} unavailable: {reason}")
        self.service = service
        self.reason = reason


class Transport(Protocol):
    """One HTTP exchange; raises UpstreamUnavailable when there is no answer at all."""

    def request(
        self, method: str, url: str, *, json: Mapping[str, Any] | None,
        headers: Mapping[str, str], timeout: float,
    ) -> UpstreamResponse: ...


class RequestsTransport:
    """The real transport: ``requests`` over loopback."""

    def request(
        self, method: str, url: str, *, json: Mapping[str, Any] | None,
        headers: Mapping[str, str], timeout: float,
    ) -> UpstreamResponse:
        try:
            response = requests.request(method, url, json=json, headers=dict(headers), timeout=timeout)
        except requests.Timeout:
            raise UpstreamUnavailable(url, f"no answer within {timeout:g} s") from None
        except requests.RequestException as exc:
            raise UpstreamUnavailable(url, f"{type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        return UpstreamResponse(response.status_code, body)


@dataclass(frozen=True)
class Reservation:
    """The outcome of asking the product service for stock."""

    product: dict[str, Any] | None  # the product after the decrement, when reserved
    not_found: bool = False
    available: int | None = None  # the stock left, when insufficient

    @property
    def reserved(self) -> bool:
        return self.product is not None


class Upstreams:
    """The calls the order service makes; every one carries the caller's X-Request-ID."""

    def __init__(self, transport: Transport, user_url: str, product_url: str, timeout: float) -> None:
        self._transport = transport
        self._user_url = user_url.rstrip("/")
        self._product_url = product_url.rstrip("/")
        self._timeout = timeout

    def get_user(self, user_id: int, request_id: str) -> dict[str, Any] | None:
        """The user, or None when the user service says 404."""
        response = self._call("user-service", "GET", f"{self._user_url}/users/{user_id}", None, request_id)
        if response.status == 404:
            return None
        return self._object("user-service", response, 200)

    def reserve(self, product_id: int, quantity: int, request_id: str) -> Reservation:
        """Atomically take stock; the answer says reserved, unknown product or insufficient."""
        url = f"{self._product_url}/products/{product_id}/reserve"
        response = self._call("product-service", "POST", url, {"quantity": quantity}, request_id)
        if response.status == 404:
            return Reservation(product=None, not_found=True)
        if response.status == 409:
            available = response.body.get("available") if isinstance(response.body, dict) else None
            return Reservation(product=None, available=available)
        body = self._object("product-service", response, 200)
        product = body.get("product")
        if not isinstance(product, dict) or not isinstance(product.get("price"), int | float):
            raise UpstreamUnavailable("product-service", "reserve answer without a product price")
        return Reservation(product=product)

    def release(self, product_id: int, quantity: int, request_id: str) -> None:
        """Give stock back after an order could not be recorded."""
        url = f"{self._product_url}/products/{product_id}/release"
        response = self._call("product-service", "POST", url, {"quantity": quantity}, request_id)
        self._object("product-service", response, 200)

    def _call(self, service: str, method: str, url: str, body: Mapping[str, Any] | None,
              request_id: str) -> UpstreamResponse:
        try:
            return self._transport.request(
                method, url, json=body, headers={HEADER: request_id}, timeout=self._timeout
            )
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(service, exc.reason) from None

    @staticmethod
    def _object(service: str, response: UpstreamResponse, expected: int) -> dict[str, Any]:
        if response.status != expected or not isinstance(response.body, dict):
            raise UpstreamUnavailable(service, f"unexpected answer: HTTP {response.status}")
        return response.body
