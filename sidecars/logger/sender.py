"""Shipping one batch to the aggregator: never dropped, retried until it is accepted or accounted for.

POST {url}/logs, gzip JSON list, `Authorization: Bearer <credential file>` (this logger's own
credential: the aggregator stamps the pod from it and takes only ids of that pod). Outcomes:
- 2xx: stored; entries named in the reply's `errors` go to the dead-letter file; `duplicates` counted.
- a refused TLS certificate (LOGGER_CA_FILE): nothing is sent; retried like a connection error,
  counted as retries{reason="tls"} and logged as an error.
- 5xx, 429, 408, 3xx, connection errors and timeouts: retried forever, exponential backoff + jitter
  (LOGGER_BACKOFF_INITIAL doubling up to LOGGER_BACKOFF_MAX, each delay drawn from [50%, 100%]).
- 401, or the credential file missing (the aggregator writes it at its start): the file is re-read
  and the request retried with backoff, logged clearly.
- 413: the batch is split in halves; a single entry still too large is dead-lettered.
- any other 4xx: a bug on one side; the batch is dead-lettered with the reason and logged as an error.
The only way out without an outcome is Cancelled (shutdown deadline), carrying what was completed.
"""
from __future__ import annotations

import gzip
import http.client
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from .batcher import Item
from .deadletter import DeadLetter
from .metrics import LoggerMetrics

log = logging.getLogger(__name__)

BACKOFF_BASE = 0.2
BACKOFF_CAP = 10.0


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""


class TransportError(Exception):
    """The request did not get an HTTP answer (connection refused, reset, timeout)."""


class TlsError(TransportError):
    """The aggregator's certificate was refused (not from LOGGER_CA_FILE's CA, wrong name, expired):
    nothing was sent. Retried like a connection error, since the operator may fix it."""


class Transport(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response: ...


class HttpTransport:
    """POST with the standard library's http.client: one keep-alive connection per sending thread,
    redirects never followed. (requests cost the logger 5 MiB of memory and a third of a
    millisecond a request for nothing it needs here.) With `ca_file`, an https aggregator's
    certificate must chain to that CA alone (else the system's CAs), and its name must match."""

    def __init__(self, ca_file: Path | None = None) -> None:
        self._local = threading.local()
        self._ca_file = ca_file
        self._tls: ssl.SSLContext | None = None  # made on the first https request: it costs 2 MiB

    def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (1, 2):
            conn, reused = self._connection(parts.scheme, parts.hostname or "", parts.port, timeout)
            try:
                conn.request("POST", target, body=body, headers=dict(headers))
                reply = conn.getresponse()
                data = reply.read()
            except ssl.SSLError as exc:  # a refused certificate, or no TLS agreed: nothing was sent
                self._drop()
                raise TlsError(str(exc)) from exc
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()
                if reused and attempt == 1:
                    continue  # the server closed the idle connection: once more on a new one
                raise TransportError(str(exc) or type(exc).__name__) from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise TransportError(str(exc) or type(exc).__name__) from exc
            if reply.will_close:
                self._drop()
            return Response(reply.status, data)
        raise TransportError("connection closed twice")  # pragma: no cover - the loop returns or raises

    def _connection(self, scheme: str, host: str, port: int | None,
                    timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        key = (scheme, host, port, timeout)
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.key == key:
            return conn, True
        self._drop()
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self._local.conn, self._local.key = conn, key
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None


class Cancelled(Exception):
    """Shipping stopped before the batch was fully handled; `result` holds what was."""

    def __init__(self, result: BatchResult | None = None) -> None:
        super().__init__("shipping cancelled")
        self.result = result


class Waiter(Protocol):
    """Sleeps between retries; raises Cancelled when shipping must stop."""

    def wait(self, seconds: float) -> None: ...


class EventWaiter:
    """Production waiter: wake() cuts the current wait short, cancel() makes waits raise Cancelled."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._cancel = threading.Event()

    def wait(self, seconds: float) -> None:
        if self._cancel.is_set():
            raise Cancelled()
        self._wake.wait(seconds)
        self._wake.clear()
        if self._cancel.is_set():
            raise Cancelled()

    def wake(self) -> None:
        self._wake.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._wake.set()


@dataclass
class BatchResult:
    """Every item of a batch ends up here, acknowledged: shipped (stored or duplicate) or dead-lettered."""

    done: list[Item] = field(default_factory=list)
    dead: int = 0
    partial: bool = False  # cut short by Cancelled: the rest of the batch was not handled


class Sender:
    """Ships batches with the retry policy above; blocking, run it in a thread."""

    def __init__(self, transport: Transport, url: str, credential_file: Path, deadletter: DeadLetter,
                 metrics: LoggerMetrics, waiter: Waiter, rng: Callable[[], float] = random.random,
                 timeout: float = 10.0, backoff_initial: float = BACKOFF_BASE,
                 backoff_max: float = BACKOFF_CAP) -> None:
        self._transport = transport
        self._url = url.rstrip("/") + "/logs"
        self._credential_file = credential_file
        self._token: str | None = None
        self._deadletter = deadletter
        self._metrics = metrics
        self._waiter = waiter
        self._rng = rng
        self._timeout = timeout
        self._backoff = (backoff_initial, backoff_max)
        self._token_warned = False
        self.attempts = 0
        self.reachable: bool | None = None  # None until the first attempt; False after a connection error

    def send(self, items: list[Item]) -> BatchResult:
        """Ship `items`; returns when every one is acknowledged or dead-lettered (or raises Cancelled)."""
        result = BatchResult()
        try:
            self._send_part(items, result)
        except Cancelled:
            raise Cancelled(result) from None
        self._metrics.batches.inc()
        return result

    def _send_part(self, items: list[Item], result: BatchResult) -> None:
        body = gzip.compress(b"[" + b",".join(i.payload for i in items) + b"]", compresslevel=1)
        failures = 0
        while True:
            token = self._read_token()
            if token is None:
                # No credential yet means the aggregator has not started: as unreachable as it gets.
                self.attempts += 1
                self._set_reachable(False)
                failures = self._retry("token", failures)
                continue
            headers = {"Content-Type": "application/json", "Content-Encoding": "gzip",
                       "Authorization": f"Bearer {token}"}
            self.attempts += 1
            try:
                reply = self._transport.post(self._url, body, headers, self._timeout)
            except TlsError as exc:
                if self.reachable is not False:
                    log.error("the certificate of aggregator %s was refused (%s); nothing sent, retrying with "
                              "backoff (check LOGGER_CA_FILE)", self._url, exc)
                self._set_reachable(False)
                failures = self._retry("tls", failures)
                continue
            except TransportError as exc:
                if self.reachable is not False:
                    log.warning("aggregator %s unreachable (%s); retrying with backoff", self._url, exc)
                self._set_reachable(False)
                failures = self._retry("connection", failures)
                continue
            if self.reachable is False:
                log.info("aggregator %s reachable again", self._url)
            self._set_reachable(True)
            status = reply.status
            if 200 <= status < 300:
                self._accepted(items, reply.body, result)
                return
            if status == 401:
                log.error("aggregator refused the credential from %s (401); re-reading it and retrying",
                          self._credential_file)
                self._token = None
                failures = self._retry("unauthorized", failures)
            elif status == 413 and len(items) > 1:
                half = len(items) // 2
                log.warning("aggregator answered 413 for %d entries; splitting the batch", len(items))
                self._send_part(items[:half], result)
                self._send_part(items[half:], result)
                return
            elif status == 413:
                reason = f"HTTP 413: entry larger than the aggregator accepts ({_error(reply.body)})"
                self._dead(items, reason, result)
                return
            elif status in (408, 429) or status >= 500 or status < 200 or 300 <= status < 400:
                if status < 500 and status not in (408, 429):
                    log.error("unexpected HTTP %d from %s; retrying", status, self._url)
                failures = self._retry(str(status), failures)
            else:
                reason = f"HTTP {status}: {_error(reply.body)}"
                log.error("aggregator refused a batch of %d entries (%s); dead-lettered: this is a bug "
                          "in the logger or the aggregator", len(items), reason)
                self._dead(items, reason, result)
                return

    def _accepted(self, items: list[Item], body: bytes, result: BatchResult) -> None:
        reply = _json(body)
        refused: dict[int, str] = {}
        by_id = {item.id: n for n, item in enumerate(items)}
        errors = reply.get("errors")
        for error in errors if isinstance(errors, list) else []:
            if not isinstance(error, dict):
                continue
            index = error.get("index")
            if not isinstance(index, int) or not 0 <= index < len(items):
                index = by_id.get(error.get("id"))  # type: ignore[arg-type]
            if index is not None:
                refused[index] = str(error.get("error", "rejected by the aggregator"))
        for index, reason in refused.items():
            log.error("aggregator rejected entry %s: %s (dead-lettered)", items[index].id, reason)
            self._deadletter.entries([items[index].payload], f"rejected: {reason}")
        duplicates = reply.get("duplicates")
        duplicates = duplicates if isinstance(duplicates, int) and duplicates >= 0 else 0
        kept = [item for n, item in enumerate(items) if n not in refused]
        self._metrics.lines_duplicate.inc(duplicates)
        self._metrics.lines_shipped.inc(max(0, len(kept) - duplicates))
        self._metrics.bytes_shipped.inc(sum(len(item.payload) for item in kept))
        self._metrics.lines_rejected.inc(len(refused))
        self._metrics.lines_dead_lettered.inc(len(refused))
        self._metrics.last_ship.set(time.time())
        result.done.extend(items)
        result.dead += len(refused)

    def _dead(self, items: list[Item], reason: str, result: BatchResult) -> None:
        self._deadletter.entries([item.payload for item in items], reason)
        self._metrics.lines_dead_lettered.inc(len(items))
        result.done.extend(items)
        result.dead += len(items)

    def _read_token(self) -> str | None:
        if self._token is None:
            try:
                token = self._credential_file.read_text().strip()
            except OSError as exc:
                if not self._token_warned:
                    log.warning("credential file %s not readable yet (%s); the aggregator writes it at its "
                                "start; waiting and retrying", self._credential_file, exc.strerror or exc)
                    self._token_warned = True
                return None
            if not token:
                return None
            if self._token_warned:
                log.info("credential file %s found", self._credential_file)
                self._token_warned = False
            self._token = token
        return self._token

    def _retry(self, reason: str, failures: int) -> int:
        self._metrics.retries.labels(reason).inc()
        initial, cap = self._backoff
        delay = min(cap, initial * 2 ** min(failures, 30))
        self._waiter.wait(delay * (0.5 + self._rng() / 2))  # jitter: loggers of many pods don't align
        return failures + 1

    def _set_reachable(self, up: bool) -> None:
        self.reachable = up
        self._metrics.aggregator_up.set(1 if up else 0)


def _json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _error(body: bytes) -> str:
    error = _json(body).get("error")
    return str(error) if error else body[:200].decode("utf-8", "replace") or "no details"
