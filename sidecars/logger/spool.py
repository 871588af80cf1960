"""The spool: rotated files that still hold unshipped bytes, kept where the rotator cannot delete them.

A spooled file is a hard link (a copy when linking fails, e.g. across file systems) named
`<file_key>-<original name>` in LOGGER_STATE_DIR/spool/, so it keeps its identity even without a
checkpoint. It is removed once everything in it is acknowledged. The spool is bounded by
LOGGER_SPOOL_MAX_BYTES, counting every spooled file in full (hard links too: conservative, since the
link is what keeps the bytes alive once the rotator deletes the original).
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import fsync_dir

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(?P<key>[0-9a-f]{16})-(?P<name>.+)$")


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    key: str
    name: str  # the original file name
    dev: int
    ino: int
    size: int


class Spool:
    """A bounded directory of kept files."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        self._used = 0

    @property
    def used(self) -> int:
        """Bytes spooled as of the last entries() or change."""
        return self._used

    def entries(self) -> list[SpoolEntry]:
        """The spooled files (and refresh the byte count); temp files from a crash are removed."""
        found: list[SpoolEntry] = []
        with os.scandir(self.directory) as it:
            for entry in it:
                if entry.name.endswith(".tmp"):
                    _unlink(Path(entry.path))
                    continue
                match = _NAME.match(entry.name)
                if not match or not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                found.append(SpoolEntry(Path(entry.path), match["key"], match["name"], st.st_dev, st.st_ino,
                                        st.st_size))
        self._used = sum(e.size for e in found)
        return found

    def keep(self, key: str, name: str, path: Path | None, fd: int, size: int) -> Path | None:
        """Spool the open file `fd` (found at `path`); None when it would exceed the bound."""
        target = self.directory / f"{key}-{name}"
        if target.exists():
            return target
        if self._used + size > self.max_bytes:
            return None
        # A hard link is free while the original exists and keeps the bytes once it is deleted. Link
        # the open file itself: its path may already name another file (the rotator keeps renaming).
        if not self._link(fd, path, target) and not self._copy(fd, target):
            return None
        self._used += max(size, os.stat(target).st_size)
        fsync_dir(self.directory)
        return target

    def release(self, path: Path) -> None:
        """Remove a spooled file whose bytes are all acknowledged."""
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        _unlink(path)
        self._used = max(0, self._used - size)

    @staticmethod
    def _link(fd: int, path: Path | None, target: Path) -> bool:
        inode = os.fstat(fd)
        for source in (f"/proc/self/fd/{fd}", path):
            if source is None:
                continue
            try:
                os.link(source, target, follow_symlinks=True)
            except OSError:
                continue
            linked = os.stat(target)
            if (linked.st_dev, linked.st_ino) == (inode.st_dev, inode.st_ino):
                return True
            _unlink(target)  # the path was renamed to another file in between
        return False

    def _copy(self, fd: int, target: Path) -> bool:
        tmp = target.with_name(target.name + ".tmp")
        try:
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                offset = 0
                while chunk := os.pread(fd, 1 << 20, offset):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(out, view):]
                    offset += len(chunk)
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(tmp, target)
            return True
        except OSError as exc:
            log.error("could not spool a copy to %s: %s", target, exc)
            _unlink(tmp)
            return False


def original_name(path: Path) -> str:
    """The file name a spooled file had in the log directory (other paths: their own name)."""
    match = _NAME.match(path.name)
    return match["name"] if match and path.parent.name == "spool" else path.name


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass

