"""File identity: deciding which bytes on disk are "the same file" across renames, restarts, rewrites.

An identity is (device, inode, key fingerprint, generation); `file_key` is a short digest of it and
goes into every entry id, so it must be recomputable from the file alone after a lost checkpoint:
- key fingerprint: sha256 of the first line, capped at FP_MAX bytes. It is a pure function of the
  content and never changes as the file grows. Before the first newline (or FP_MAX bytes) exists
  there is no complete line to ship, so no key is needed yet ("recorded once enough bytes exist").
- head: sha256 of the first min(size, FP_MAX) bytes seen (grows until FP_MAX): stronger evidence,
  checked at start and whenever the file changes, to tell inode reuse or an in-place rewrite.
- generation: bumped when the same (device, inode, fingerprint) is found truncated or rewritten,
  so a rewrite whose first line is identical still gets new ids instead of colliding with old ones.
A rotated-name file with an unknown inode whose head matches a truncated (copytruncate) or vanished
identity is that identity's copy: it inherits the key and resumes at its offset, so the bytes the
truncation cut off are recovered from the copy with the ids they would have had.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

FP_MAX = 1024


@dataclass(frozen=True, slots=True)
class Head:
    fp_len: int
    fp_sha: str
    head_len: int
    head_sha: str


def read_head(fd: int, size: int, force: bool = False) -> Head | None:
    """Fingerprint a file's head; None while the first line is incomplete (unless `force`)."""
    data = os.pread(fd, min(size, FP_MAX), 0)
    newline = data.find(b"\n")
    if newline >= 0:
        fp_len = newline + 1
    elif len(data) >= FP_MAX or (force and data):
        fp_len = len(data)
    else:
        return None
    return Head(fp_len, _sha(data[:fp_len]), len(data), _sha(data))


def file_key(dev: int, ino: int, fp_sha: str, gen: int) -> str:
    """Short stable digest of an identity, used in entry ids."""
    return hashlib.sha256(f"{dev}:{ino}:{fp_sha}:{gen}".encode()).hexdigest()[:16]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Identity:
    """One logical file and how far it has been delivered (the checkpoint's unit)."""

    key: str
    dev: int
    ino: int
    gen: int
    fp_len: int
    fp_sha: str
    head_len: int
    head_sha: str
    offset: int = 0  # every byte before it is stored at the aggregator or accounted for
    size: int = 0  # last size seen: upper bound of what may still need shipping
    path: str = ""
    spool: str | None = None
    superseded: bool = False  # its inode now holds other content; kept only to match copies
    lost_from: int | None = None  # bytes from here on were already reported lost
    seen: float = 0.0  # wall clock of the last scan that found it
    emitted: int = field(default=0, compare=False)  # in memory: end of the last line handed on
    durable: int = field(default=0, compare=False)  # in memory: offset as of the last checkpoint write

    def matches(self, fd: int, size: int) -> bool:
        """Does the open file still start with this identity's head?"""
        return size >= self.head_len and _sha(os.pread(fd, self.head_len, 0)) == self.head_sha

    def extend_head(self, fd: int, size: int) -> None:
        """Grow the recorded head towards FP_MAX bytes as the file grows (stronger later checks)."""
        if self.head_len < FP_MAX and size > self.head_len:
            data = os.pread(fd, min(size, FP_MAX), 0)
            # Only if the known head is still there: a file truncated and rewritten since our last
            # check must not have its new content adopted as this identity's head.
            if _sha(data[:self.head_len]) == self.head_sha:
                self.head_len, self.head_sha = len(data), _sha(data)

    def unaccounted(self) -> tuple[int, int]:
        """Byte range neither delivered, handed on, nor reported lost (empty when start >= end)."""
        end = self.size if self.lost_from is None else min(self.size, self.lost_from)
        return max(self.offset, self.emitted), end

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _PERSISTED}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        """Raises ValueError/TypeError/KeyError on a malformed record (the checkpoint is then corrupt)."""
        ident = cls(**{name: data[name] for name in _PERSISTED})
        for name, kind in _TYPES.items():
            value = getattr(ident, name)
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise ValueError(f"field {name!r} has a bad value {value!r}")
        if ident.offset < 0 or ident.size < 0 or ident.head_len < ident.fp_len:
            raise ValueError(f"identity {ident.key} has inconsistent offsets")
        ident.emitted = ident.durable = ident.offset
        return ident


_TYPES: dict[str, Any] = {
    "key": str, "dev": int, "ino": int, "gen": int, "fp_len": int, "fp_sha": str, "head_len": int,
    "head_sha": str, "offset": int, "size": int, "path": str, "spool": (str, type(None)),
    "superseded": bool, "lost_from": (int, type(None)), "seen": (int, float),
}
_PERSISTED = tuple(_TYPES)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an unknown open file turned out to be."""

    kind: str  # "pending" (no first line yet), "defer" (a copy of a live file), "resume", "new", "alias"
    identity: Identity | None = None
    start: int = 0


class IdentityRegistry:
    """All known identities, resolution of newly seen files, and the checkpoint body."""

    def __init__(self, identities: list[Identity] | None = None) -> None:
        self.identities: dict[str, Identity] = {i.key: i for i in identities or []}
        self.changed = False  # a structural change that must reach the checkpoint before shipping

    def resolve(self, fd: int, st: os.stat_result, path: str, *, rotated: bool,
                present: set[str], busy: set[str], force: bool = False) -> Resolution:
        """Identify the open file `fd` (stat `st`) found at `path`."""
        head = read_head(fd, st.st_size, force)
        if head is None:
            return Resolution("pending")
        inode = (st.st_dev, st.st_ino)
        for ident in list(self.identities.values()):
            if (ident.dev, ident.ino) != inode or ident.superseded:
                continue
            if ident.matches(fd, st.st_size) and st.st_size >= ident.offset:
                return Resolution("resume", ident, ident.offset)
            self.supersede(ident)  # rewritten, truncated while we were away, or the inode was reused
        if rotated:
            found = self._copy_of(fd, st, head, present, busy, force)
            if found is not None:
                return found
        gen = 1 + max((i.gen for i in self.identities.values()
                       if (i.dev, i.ino) == inode and i.fp_sha == head.fp_sha), default=-1)
        ident = Identity(file_key(st.st_dev, st.st_ino, head.fp_sha, gen), st.st_dev, st.st_ino, gen,
                         head.fp_len, head.fp_sha, head.head_len, head.head_sha, size=st.st_size, path=path)
        self.identities[ident.key] = ident
        self.changed = True
        return Resolution("new", ident, 0)

    def adopt(self, key: str, fd: int, st: os.stat_result, path: str,
              original_present: bool) -> Resolution | None:
        """Identify a spooled file by the key its name carries; None if its content says otherwise."""
        ident = self.identities.get(key)
        if ident is not None and not ident.matches(fd, st.st_size):
            log.warning("spooled file %s does not hold the content of identity %s; identifying it afresh",
                        path, key)
            return None
        if ident is not None:
            if (ident.dev, ident.ino) != (st.st_dev, st.st_ino):
                if original_present:
                    return Resolution("defer")  # the original is still in the log directory
                ident.dev, ident.ino = st.st_dev, st.st_ino
                ident.superseded = False
                self.changed = True
            return Resolution("resume", ident, min(ident.offset, st.st_size))
        head = read_head(fd, st.st_size, force=True)
        if head is None:
            return Resolution("pending")
        ident = Identity(key, st.st_dev, st.st_ino, 0, head.fp_len, head.fp_sha, head.head_len,
                         head.head_sha, size=st.st_size, path=path, spool=path)
        self.identities[key] = ident
        self.changed = True
        return Resolution("new", ident, 0)

    def supersede(self, ident: Identity) -> None:
        if not ident.superseded:
            log.debug("identity %s (%s) superseded", ident.key, ident.path)
            ident.superseded = True
            self.changed = True

    def forget(self, key: str) -> None:
        if self.identities.pop(key, None) is not None:
            self.changed = True

    def _copy_of(self, fd: int, st: os.stat_result, head: Head, present: set[str],
                 busy: set[str], force: bool) -> Resolution | None:
        inode = (st.st_dev, st.st_ino)
        best: Identity | None = None
        live_copy = False
        for ident in self.identities.values():
            if (ident.fp_len, ident.fp_sha) != (head.fp_len, head.fp_sha) or (ident.dev, ident.ino) == inode:
                continue
            if st.st_size < ident.head_len and not force:
                live_copy = True  # same first line, shorter than the head: maybe a copy still being written
                continue
            if not ident.matches(fd, st.st_size):
                continue
            if ident.key in busy or (ident.key in present and not ident.superseded):
                live_copy = True  # e.g. logrotate copied but has not truncated yet: look again later
            elif best is None or (ident.head_len, ident.seen) > (best.head_len, best.seen):
                best = ident
        if best is not None:
            best.dev, best.ino = inode
            best.superseded = False
            self.changed = True
            return Resolution("alias", best, min(max(best.offset, best.emitted), st.st_size))
        return Resolution("defer") if live_copy else None

    def to_json(self) -> dict[str, Any]:
        return {"files": {key: ident.to_json() for key, ident in self.identities.items()}}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> IdentityRegistry:
        files = body["files"]
        if not isinstance(files, dict):
            raise ValueError("'files' is not an object")
        identities = [Identity.from_json(data) for data in files.values()]
        if any(key != ident.key for key, ident in zip(files, identities, strict=True)):
            raise ValueError("identity keys do not match their records")
        return cls(identities)
