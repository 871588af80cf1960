"""The dead-letter file: every entry the aggregator refused and every byte range lost, with a reason.

One JSON object per line in LOGGER_STATE_DIR/dead-letter.jsonl, strict JSON (a number out of float
range as its text). A refused entry is written as the entry itself plus `reason` (an app field named
`reason` moves to `app_reason`) and `dead_lettered_at`.
A loss is `{"lost": true, "kind", "source", "path", "file_key", "start", "end", "bytes", "reason", ...}`
with kind `spool_full`, `truncated` or `deleted`.
Writes are appended and fsynced before the corresponding offsets are checkpointed, so an entry is
never both unshipped and unrecorded.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podvisor.core import jsonsafe

from .enrich import iso_utc


class DeadLetter:
    """Append-only JSON-lines file; safe to call from the sender thread and the main loop."""

    def __init__(self, path: Path, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self._wall = wall
        self._lock = threading.Lock()

    def entries(self, payloads: list[bytes], reason: str) -> None:
        """Record refused entries (their JSON payloads) with the reason they were refused."""
        lines = []
        for payload in payloads:
            try:
                # Exact: a number out of float range stays its text, so the file stays strict JSON.
                entry = jsonsafe.loads_exact(payload.decode("utf-8", "replace"))
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                entry = {"message": payload.decode("utf-8", "replace")}
            if "reason" in entry:
                entry.setdefault("app_reason", entry.pop("reason"))
            entry["reason"] = reason
            entry["dead_lettered_at"] = iso_utc(self._wall())
            lines.append(entry)
        self._append(lines)

    def loss(self, *, source: str, path: str, file_key: str, start: int, end: int, reason: str,
             kind: str = "other") -> None:
        """Record a byte range of a file that can no longer be shipped."""
        self._append([{"lost": True, "kind": kind, "source": source, "path": path, "file_key": file_key,
                       "start": start, "end": end, "bytes": end - start, "reason": reason,
                       "dead_lettered_at": iso_utc(self._wall())}])

    def _append(self, records: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, default=str, allow_nan=False) + "\n" for r in records)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                view = memoryview(data.encode("utf-8", "backslashreplace"))
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
