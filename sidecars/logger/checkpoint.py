"""The checkpoint: delivered offsets per file identity, written atomically and verified on load.

File format: {"version": 1, "checksum": "sha256:<hex of the canonical body>", "body": {...}}.
Writes go to a temp file, are fsynced, the current checkpoint is hard-linked as `checkpoint.json.prev`,
the temp file is renamed over checkpoint.json and the directory is fsynced, so a crash at any point
leaves a complete checkpoint.json (old or new) and the generation before it. Anything unreadable
(bad JSON, zeroed or truncated bytes, checksum or version mismatch, malformed records) is logged and
moved aside as checkpoint.json.corrupt-<timestamp>, and the logger recovers from the previous
generation: its offsets are older, which only re-sends entries the store absorbs by id, and it still
knows every file identity, so ids stay the same. With no usable generation at all, every file is read
from byte 0 (docs/delivery.md, "Limits", says what that costs).
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
    status: str  # of checkpoint.json: "ok", "missing" or "corrupt"
    reason: str = ""
    kept_as: Path | None = None
    generation: str = "current"  # what the registry came from: "current", "previous" or "none"


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class CheckpointStore:
    """Loads and saves the checkpoint file at `path`."""

    def __init__(self, path: Path, wall: Callable[[], float] = time.time) -> None:
        self.path = path
        self._wall = wall

    @property
    def previous(self) -> Path:
        return self.path.with_name(self.path.name + ".prev")

    def load(self) -> Loaded:
        """Read the checkpoint (else its previous generation); never raises for bad content."""
        reason, kept = "", None
        registry = self._read(self.path)
        if isinstance(registry, IdentityRegistry):
            return Loaded(registry, "ok")
        if registry is None:
            status = "missing"
        else:
            status, reason = "corrupt", registry
            kept = self._set_aside(self.path)
            log.error("checkpoint %s is corrupt (%s); kept aside as %s", self.path, reason, kept)
        previous = self._read(self.previous)
        if isinstance(previous, IdentityRegistry):
            log.warning("recovering from the previous checkpoint generation %s: entries acknowledged since "
                        "it was written are sent again and absorbed by their ids", self.previous)
            return Loaded(previous, status, reason, kept, "previous")
        if isinstance(previous, str):
            log.error("previous checkpoint %s is corrupt too (%s); kept aside as %s", self.previous, previous,
                      self._set_aside(self.previous))
        log.warning("no usable checkpoint at %s: reading every log file from its start "
                    "(entries already stored are absorbed by their ids)", self.path)
        return Loaded(IdentityRegistry(), status, reason, kept, "none")

    def _read(self, path: Path) -> IdentityRegistry | str | None:
        """The registry in `path`, None if there is no such file, or why it is unusable."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:  # e.g. EIO, or a directory in its place: as useless as a corrupt file
            return f"unreadable: {exc}"
        try:
            return self._parse(raw)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
            return str(exc) or type(exc).__name__

    def save(self, registry: IdentityRegistry) -> None:
        """Write the checkpoint atomically and durably."""
        body = registry.to_json()
        checksum = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
        data = json.dumps({"version": VERSION, "checksum": checksum, "body": body},
                          separators=(",", ":")).encode()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            os.unlink(tmp)  # left by a crash mid-write: start afresh (and with our mode)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        # The current one becomes the previous generation through a hard link, so checkpoint.json
        # itself is never missing: a crash anywhere leaves it old or new, and .prev one older.
        link = self.previous.with_name(self.previous.name + ".tmp")
        try:
            os.unlink(link)
        except FileNotFoundError:
            pass
        try:
            os.link(self.path, link)
            os.replace(link, self.previous)
        except FileNotFoundError:
            pass  # the first save
        os.replace(tmp, self.path)
        fsync_dir(self.path.parent)

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

    def _set_aside(self, path: Path) -> Path | None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._wall()))
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error("could not move corrupt checkpoint %s aside: %s", path, exc)
            return None
        fsync_dir(path.parent)
        return target


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
