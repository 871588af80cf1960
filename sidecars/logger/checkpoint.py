"""The checkpoint: delivered offsets per file identity, written atomically and verified on load.

File format: {"version": 1, "checksum": "sha256:<hex of the canonical body>", "body": {...}}.
Writes go to a temp file, are fsynced, renamed over the old one, then the directory is fsynced, so
a crash leaves either the old or the new checkpoint. Anything unreadable (bad JSON, zeroed or
truncated bytes, checksum or version mismatch, malformed records) is logged, moved aside as
checkpoint.json.corrupt-<timestamp>, and the logger starts over from byte 0 of every file: the
store's idempotent ids absorb the re-sent entries, so a bad checkpoint costs bandwidth, not data.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fileid import IdentityRegistry

log = logging.getLogger(__name__)

VERSION = 1


@dataclass(frozen=True)
class Loaded:
    registry: IdentityRegistry
    status: str  # "ok", "missing" or "corrupt"
    reason: str = ""
    kept_as: Path | None = None


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class CheckpointStore:
    """Loads and saves the checkpoint file at `path`."""

    def __init__(self, path: Path, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self._wall = wall

    def load(self) -> Loaded:
        """Read the checkpoint; never raises for bad content (it is set aside instead)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            log.warning("no checkpoint at %s: reading every log file from its start "
                        "(entries already stored are absorbed by their ids)", self.path)
            return Loaded(IdentityRegistry(), "missing")
        try:
            registry = self._parse(raw)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            kept = self._set_aside()
            log.error("checkpoint %s is corrupt (%s); kept aside as %s; recovering by re-reading every "
                      "log file from its start (entries already stored are absorbed by their ids)",
                      self.path, exc, kept)
            return Loaded(IdentityRegistry(), "corrupt", str(exc), kept)
        return Loaded(registry, "ok")

    def save(self, registry: IdentityRegistry) -> None:
        """Write the checkpoint atomically and durably."""
        body = registry.to_json()
        checksum = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        data = json.dumps({"version": VERSION, "checksum": checksum, "body": body},
                          separators=(",", ":")).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)

    @staticmethod
    def _parse(raw: bytes) -> IdentityRegistry:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("version") != VERSION:
            raise ValueError(f"unsupported version {doc.get('version')!r}")
        body = doc["body"]
        if not isinstance(body, dict):
            raise ValueError("body is not an object")
        expected = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        if doc.get("checksum") != expected:
            raise ValueError("checksum mismatch")
        return IdentityRegistry.from_json(body)

    def _set_aside(self) -> Path | None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._wall()))
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(self.path, target)
        except OSError as exc:
            log.error("could not move corrupt checkpoint %s aside: %s", self.path, exc)
            return None
        _fsync_dir(self.path.parent)
        return target


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
