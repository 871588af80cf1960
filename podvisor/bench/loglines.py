"""The log lines the benchmark writes, how it writes them, and how it sees them arrive.

Every line is one JSON object of about 200 bytes, shaped like an app's line, carrying the run's id
as `request_id` (so the store can count a run's lines through an index, and the live tail can
follow only them) and its sequence number as `seq`.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode, urlsplit

LINE_BYTES = 200
_TEMPLATE = (
    '{{"timestamp":"{ts}","level":"info","logger":"bench.writer","request_id":"{run}",'
    '"seq":{seq},"message":"bench line {seq:08d} {pad}"}}\n'
)
_PAD = "abcdefghijklmnopqrstuvwxyz0123456789" * 8


def iso_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _pad_for(run: str) -> str:
    probe = _TEMPLATE.format(ts=iso_now(), run=run, seq=0, pad="")
    return _PAD[: max(LINE_BYTES - len(probe), 0)]


def lines(run: str, start: int, count: int, pad: str | None = None) -> bytes:
    """`count` lines from sequence number `start`, one timestamp for all (cheap to make)."""
    ts = iso_now()
    pad = _pad_for(run) if pad is None else pad
    return "".join(
        _TEMPLATE.format(ts=ts, run=run, seq=seq, pad=pad) for seq in range(start, start + count)
    ).encode()


def burst(path: Path, run: str, count: int, chunk: int = 5000) -> float:
    """Append `count` lines to `path` as fast as possible; the seconds it took."""
    pad = _pad_for(run)
    started = time.monotonic()
    with open(path, "ab", buffering=0) as fh:
        for start in range(0, count, chunk):
            fh.write(lines(run, start, min(chunk, count - start), pad))
    return time.monotonic() - started


def steady(
    path: Path,
    run: str,
    rate: int,
    seconds: float,
    on_written: Callable[[int, int, float], None],
    tick: float = 0.01,
) -> int:
    """Append `rate` lines a second for `seconds`, flushing every `tick`; calls
    on_written(first_seq, count, time.monotonic()) after each write. Returns the lines written."""
    pad = _pad_for(run)
    total = int(rate * seconds)
    written = 0
    started = time.monotonic()
    with open(path, "ab", buffering=0) as fh:
        while written < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            if due > written:
                fh.write(lines(run, written, due - written, pad))
                on_written(written, due - written, time.monotonic())
                written = due
            next_at = started + written / rate
            time.sleep(max(min(next_at - time.monotonic(), tick), 0.001))
    return written


class TailClock:
    """Follows the aggregator's live tail (SSE) for one run's lines and notes when each arrived."""

    def __init__(self, aggregator_url: str, run: str, headers: dict[str, str]) -> None:
        parts = urlsplit(aggregator_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = "/api/v1/tail?" + urlencode({"request_id": run})
        self.headers = {"Accept": "text/event-stream", **headers}
        self.arrived: dict[int, float] = {}
        self.error: str | None = None
        self._sock: socket.socket | None = None
        self._connected = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="bench-tail", daemon=True)

    def start(self, timeout: float = 30.0) -> TailClock:
        self._thread.start()
        if not self._connected.wait(timeout) or self.error:
            raise RuntimeError(f"live tail did not connect: {self.error or 'timed out'}")
        return self

    def _run(self) -> None:
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            conn.connect()
            self._sock = conn.sock  # kept: the connection forgets it when the answer says Connection: close
            conn.request("GET", self.path, headers=self.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                self.error = f"{resp.status} {resp.read(500)!r}"
                self._connected.set()
                return
            while True:
                raw = resp.readline()
                if not raw:
                    return
                if raw.startswith(b": connected"):
                    self._connected.set()
                elif raw.startswith(b"data: "):
                    now = time.monotonic()
                    entry = json.loads(raw[6:])
                    seq = entry.get("seq")
                    if isinstance(seq, int):
                        self.arrived.setdefault(seq, now)
        except Exception as exc:  # noqa: BLE001 (reported by the scenario)
            if not self._closing:
                self.error = repr(exc)
        finally:
            self._connected.set()

    def close(self) -> None:
        self._closing = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        if self._sock is not None:
            self._sock.close()
