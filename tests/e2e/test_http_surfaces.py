"""Every podvisor HTTP surface answers bad input in JSON, HEAD and OPTIONS deliberately, unknown
ids with 404 whatever the method, and keeps answering probes while slow clients hold connections.

One default stack; requests go over real loopback sockets, some of them hand-written bytes that no
HTTP library would send.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from podvisor.testing.harness import StackHandle

pytestmark = pytest.mark.e2e
TIMEOUT = 10
BIG_ID = str(2**63)


@pytest.fixture(scope="module")
def stack(podvisor_module_stack: StackHandle) -> StackHandle:
    return podvisor_module_stack


def surfaces(stack: StackHandle) -> dict[str, str]:
    return {"app": stack.apps["user"], "aggregator": stack.aggregator_url, "logger": stack.loggers["user"],
            "metrics": stack.metrics["user"], "controller": stack.controller_url}


def raw(url: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data` as is; the answer's status, headers (lower-case names) and body."""
    parts = urlsplit(url)
    chunks = []
    with socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT) as sock:
        def send() -> None:
            try:
                sock.sendall(data)
            except OSError:  # the server answered before reading it all, and closed
                pass

        sender = threading.Thread(target=send)
        sender.start()  # read while sending: an early answer (413, 431) is not lost to a reset
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        sender.join()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> str:
    assert status == expected, (status, headers, body[:300])
    assert headers["content-type"].startswith("application/json"), (headers, body[:300])
    data = json.loads(body)
    assert data["ok"] is False and data["error"], data
    return data["error"]


@pytest.mark.parametrize("surface", ["app", "aggregator", "logger", "metrics", "controller"])
def test_garbage_long_urls_and_huge_bodies_get_json_errors(stack, surface):
    url = surfaces(stack)[surface]
    json_error(*raw(url, b"\x00\x01 garbage\r\n\r\n"), 400)
    json_error(*raw(url, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad header line\r\n\r\n"), 400)
    json_error(*raw(url, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n"), 400)
    long_url = b"GET /" + b"a" * 300_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert "Header" in json_error(*raw(url, long_url), 431)
    huge_body = b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999999\r\n\r\n"
    json_error(*raw(url, huge_body), 413)
    # A URL long but within the header limit reaches the app: its own JSON 404.
    json_error(*raw(url, b"GET /" + b"b" * 60_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
               404)


@pytest.mark.parametrize("surface", ["app", "aggregator", "logger", "metrics", "controller"])
def test_head_options_and_odd_methods(stack, surface):
    url = surfaces(stack)[surface] + "/health"
    head = requests.head(url, timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b"", (head.status_code, head.content[:200])
    options = requests.options(url, timeout=TIMEOUT)
    assert options.status_code == 204, (options.status_code, options.headers, options.content[:200])
    assert "GET" in options.headers["Allow"] and "HEAD" in options.headers["Allow"]
    assert options.content == b""
    status, headers, body = raw(url, b"BREW /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    json_error(status, headers, body, 405)
    assert "GET" in headers["allow"]
    missing = requests.options(surfaces(stack)[surface] + "/no-such-path", timeout=TIMEOUT)
    json_error(missing.status_code, {k.lower(): v for k, v in missing.headers.items()}, missing.content, 404)


@pytest.mark.parametrize(("pod", "path", "methods"), [
    ("user", f"/users/{BIG_ID}", ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")),
    ("product", f"/products/{BIG_ID}", ("GET", "PUT", "DELETE", "POST")),
    ("product", f"/products/{BIG_ID}/reserve", ("POST", "GET")),
    ("order", f"/orders/{BIG_ID}/status", ("PUT", "GET")),
    ("order", "/orders/99999999999999999999999999", ("GET", "DELETE")),
])
def test_an_unknown_id_is_404_whatever_the_method(stack, pod, path, methods):
    for method in methods:
        reply = requests.request(method, stack.apps[pod] + path, json={"quantity": 1, "status": "pending"},
                                 timeout=TIMEOUT)
        assert reply.status_code == 404, (method, reply.status_code, reply.content[:200])
        if method != "HEAD":
            assert reply.json()["ok"] is False


def test_slow_clients_do_not_starve_probes_or_ingest(stack):
    """150 connections each holding half a request: /health and ingest still answer at once."""
    held: list[socket.socket] = []
    try:
        for url in (stack.aggregator_url, stack.apps["user"]):
            parts = urlsplit(url)
            for _ in range(150):
                sock = socket.create_connection((parts.hostname, parts.port), timeout=TIMEOUT)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                held.append(sock)
        started = time.monotonic()
        for url in (stack.aggregator_url, stack.apps["user"]):
            assert requests.get(url + "/health", timeout=2).status_code == 200
        ingest = requests.post(stack.aggregator_url + "/logs", json={"message": "while flooded"},
                               headers=stack.auth(), timeout=2)
        assert ingest.status_code == 202, ingest.text[:300]
        assert time.monotonic() - started < 4
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(("surface", "path"), [
    ("aggregator", "/api/v1/logs"), ("aggregator", "/logs"), ("aggregator", "/api/v1/tail"),
    ("aggregator", "/ui/logs"), ("aggregator", "/api/v1/session"), ("controller", "/pods"),
    ("controller", "/ready"), ("logger", "/health"),
])
def test_reads_answer_only_to_local_names_dns_rebinding(stack, surface, path):
    url = surfaces(stack)[surface] + path
    port = urlsplit(url).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.nip.io", "10.1.2.3"):
        with requests.get(url, headers={"Host": host}, timeout=TIMEOUT, stream=True) as reply:
            assert reply.status_code == 421, (host, reply.status_code, reply.headers)
            assert reply.json()["ok"] is False and "Host" in reply.json()["error"]
    for host in (f"localhost:{port}", "LOCALHOST", f"127.0.0.1:{port}", f"[::1]:{port}"):
        with requests.get(url, headers={"Host": host}, timeout=TIMEOUT, stream=True) as reply:
            # 429/503: a tail slot still held by the previous round; the Host itself passed.
            assert reply.status_code in (200, 429, 503), (host, reply.status_code)


def test_probes_scrapes_and_ingest_are_not_host_checked(stack):
    evil = {"Host": "evil.example"}
    for url in (stack.aggregator_url + "/health", stack.aggregator_url + "/metrics",
                stack.controller_url + "/metrics", stack.loggers["user"] + "/metrics"):
        assert requests.get(url, headers=evil, timeout=TIMEOUT).status_code == 200, url
    reply = requests.post(stack.aggregator_url + "/logs", json={"message": "shipped by name"},
                          headers={**evil, **stack.auth()}, timeout=TIMEOUT)
    assert reply.status_code == 202, reply.text[:300]
