"""Tailing the log directory: which files to read, from where, and what rotation did to them.

Files: every regular `*.log` directly in the directory (live) plus rotated siblings (`x.log.1`,
`x.log-20240101`, not compressed ones); never subdirectories (`sidecars/` holds our own output).
Each file is held open, so a renamed or deleted file is still read to its end through the fd.
A scan costs a directory listing and an fstat per open file; bytes are read only when a size changed.

Per scan: open tails are re-checked (shrunk below the read offset or a different head = truncated
or rewritten in place: the identity is superseded and the file re-identified from offset 0); unknown
inodes are identified (fileid.py); rotated files with unshipped bytes are spooled; deleted files held
open count against the spool bound; fully shipped rotated files are closed; identities that vanished
with bytes never read are reported lost once their file has stayed away for `rotated_idle` seconds.
"""
from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .deadletter import DeadLetter
from .enrich import source_name
from .fileid import FP_MAX, Identity, IdentityRegistry
from .lines import LineFramer, RawLine
from .metrics import LoggerMetrics
from .spool import Spool, original_name

log = logging.getLogger(__name__)

_ROTATED = re.compile(r"^.+\.log[.-]\d[\w.-]*$")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".z", ".tmp")
CHUNK = 256 * 1024
FORGET_AFTER = 3600.0  # seconds a vanished, fully accounted identity is kept to recognise late copies
RECHECK = 1.0  # seconds between re-identifications of a file that was not ready


@dataclass(frozen=True, slots=True)
class Listed:
    path: Path
    live: bool
    size: int
    mtime_ns: int


class Tail:
    """One open file being read."""

    def __init__(self, ident: Identity, fd: int, path: Path, start: int, max_line: int, now: float) -> None:
        self.ident = ident
        self.fd = fd
        self.path = path
        self.source = source_name(original_name(path))
        self.stderr = "stderr" in self.source
        self.framer = LineFramer(max_line, start)
        self.size = -1
        self.mtime_ns = -1
        self.live = True
        self.deleted = False
        self.changed_at = now
        self.spool_refused = False

    @property
    def position(self) -> int:
        return self.framer.position

    @property
    def finished_reading(self) -> bool:
        return self.position >= self.size and not self.framer.has_partial


class Tailer:
    """The set of tails over one log directory (plus the spool), kept current by scan()."""

    def __init__(self, log_dir: Path, registry: IdentityRegistry, spool: Spool, deadletter: DeadLetter,
                 metrics: LoggerMetrics, *, max_line_bytes: int, rotated_idle: float,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._dir = log_dir
        self.registry = registry
        self._spool = spool
        self._deadletter = deadletter
        self._metrics = metrics
        self._max_line = max_line_bytes
        self._idle = rotated_idle
        self._clock = clock
        self._wall = wall
        self.tails: dict[str, Tail] = {}
        self._by_inode: dict[tuple[int, int], Tail] = {}
        self._quiet: dict[tuple[int, int], tuple[tuple[int, int], str]] = {}  # nothing left to read
        # Files not identified yet: (size, mtime), last try, first seen, epoch of the last try.
        self._waiting: dict[tuple[int, int], tuple[tuple[int, int], float, float, int]] = {}
        self._epoch = 0  # bumped when an identity is superseded: deferred copies must be looked at again
        self._absent: dict[str, float] = {}
        self._dir_missing_logged = False
        self.symlinks: set[str] = set()  # log-file names that are symbolic links (refused)
        self.dirty = False  # offsets-only changes (the pipeline saves them on its own schedule)

    # -- scanning ---------------------------------------------------------------------------------
    def scan(self, force: bool = False) -> None:
        """Bring tails up to date with the directory; `force` identifies files not ready yet (shutdown)."""
        now, wall = self._clock(), self._wall()
        listing = self._list()
        spooled = self._spool.entries()
        live = {inode for inode, item in listing.items() if item.live}
        spool_inodes = {(e.dev, e.ino): e for e in spooled}
        present: set[str] = set()
        for tail in list(self.tails.values()):
            if self._recheck(tail, listing, spool_inodes, live, now):
                tail.ident.seen = wall
                present.add(tail.ident.key)
        unknown: list[tuple[tuple[int, int], Listed]] = []
        for inode, item in listing.items():
            if inode in self._by_inode:
                continue
            quiet = self._quiet.get(inode)
            if quiet and quiet[0] == (item.size, item.mtime_ns) and quiet[1] in self.registry.identities:
                self.registry.identities[quiet[1]].seen = wall
                present.add(quiet[1])
            else:
                unknown.append((inode, item))
        for entry in spooled:  # first, so a spooled file keeps the key its name carries
            inode = (entry.dev, entry.ino)
            ident = self.registry.identities.get(entry.key)
            if inode in self._by_inode or (ident and ident.key in self.tails):
                continue
            if ident and not ident.superseded and ident.durable >= entry.size:
                log.debug("spool: %s fully shipped, removing it", entry.path)
                self._spool.release(entry.path)  # all of it is acknowledged and checkpointed
                ident.spool = None
                continue
            original = ident is not None and (ident.dev, ident.ino) in listing
            if self._due(inode, entry.size, 0, now, force):
                self._open(entry.path, inode, inode in live, present, now, force, entry.key, original)
        # Live files before rotated ones: a copytruncate copy must find the original already known,
        # or both would be read as separate files and every line in them shipped twice.
        for inode, item in sorted(unknown, key=lambda pair: not pair[1].live):
            if inode not in self._by_inode and self._due(inode, item.size, item.mtime_ns, now, force):
                self._open(item.path, inode, item.live, present, now, force or self._ripe(inode, item, now))
        self._spool_rotated()
        self._enforce_bound()
        self._close_finished(now, listing)
        self._account_absent(present, now, wall)

    @property
    def unidentified(self) -> bool:
        """Files seen but not identified yet (too short to fingerprint): only a scan() picks them up."""
        return bool(self._waiting)

    @property
    def recheck_wanted(self) -> bool:
        """Unidentified files with bytes in them: looked at again after RECHECK even if nothing more
        is written (a short rotated file is identified once it stopped changing). An empty file
        (an app's unused stdout) needs no timer: its first write is a file event."""
        return any(size > 0 for (size, _mtime), *_ in self._waiting.values())

    def refresh(self) -> bool:
        """Between scans (a file event woke the logger): the open files' new sizes, nothing else;
        False when one shrank or changed identity, which only a scan() handles."""
        now = self._clock()
        for tail in self.tails.values():
            st = os.fstat(tail.fd)
            if st.st_size < tail.position or st.st_size < tail.size:
                return False
            if st.st_size != tail.size:
                tail.changed_at = now
                tail.size, tail.mtime_ns = st.st_size, st.st_mtime_ns
                tail.ident.size = st.st_size
        return True

    def _recheck(self, tail: Tail, listing: dict, spool_inodes: dict, live: set, now: float) -> bool:
        st = os.fstat(tail.fd)
        inode = (st.st_dev, st.st_ino)
        listed, spooled = listing.get(inode), spool_inodes.get(inode)
        tail.live = inode in live
        tail.deleted = listed is None and spooled is None
        if listed is not None:
            tail.path = listed.path
        elif spooled is not None:
            tail.path = spooled.path
        if (st.st_size, st.st_mtime_ns) != (tail.size, tail.mtime_ns):
            if st.st_size < tail.position or not tail.ident.matches(tail.fd, st.st_size):
                self._truncated(tail, st.st_size)
                return False
            if st.st_size != tail.size:
                tail.changed_at = now
            tail.size, tail.mtime_ns = st.st_size, st.st_mtime_ns
            tail.ident.size = st.st_size
        tail.ident.path = str(tail.path)
        return True

    def _truncated(self, tail: Tail, size: int) -> None:
        ident = tail.ident
        log.warning("%s was truncated or rewritten in place (size %d, read up to %d): reading it again "
                    "from offset 0 as a new file; bytes not read before the truncation are recovered "
                    "from a rotated copy if one appears, else reported lost", tail.path, size, tail.position)
        self.registry.supersede(ident)
        self._epoch += 1
        if ident.spool:  # the link points at the same, now rewritten, inode: useless
            self._spool.release(Path(ident.spool))
            ident.spool = None
        self._drop(tail)

    def _due(self, inode: tuple[int, int], size: int, mtime_ns: int, now: float, force: bool) -> bool:
        waiting = self._waiting.get(inode)
        return (force or waiting is None or waiting[0] != (size, mtime_ns) or now - waiting[1] >= RECHECK
                or waiting[3] != self._epoch)

    def _ripe(self, inode: tuple[int, int], item: Listed, now: float) -> bool:
        # A rotated file that never got a newline and stopped changing gets identified anyway.
        waiting = self._waiting.get(inode)
        return (not item.live and waiting is not None and waiting[0] == (item.size, item.mtime_ns)
                and now - waiting[2] >= self._idle)

    def _open(self, path: Path, inode: tuple[int, int], live: bool, present: set[str], now: float,
              force: bool, spool_key: str | None = None, original_present: bool = False) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # gone between listing and open: the next scan decides
        keep = False
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != inode:
                return
            res = None
            if spool_key is not None:
                res = self.registry.adopt(spool_key, fd, st, str(path), original_present)
            if res is None:
                res = self.registry.resolve(fd, st, str(path), rotated=not live, present=present,
                                            busy=set(self.tails), force=force)
            if res.identity is None:
                old = self._waiting.get(inode)
                first = old[2] if old and old[0] == (st.st_size, st.st_mtime_ns) else now
                self._waiting[inode] = ((st.st_size, st.st_mtime_ns), now, first, self._epoch)
                return
            self._waiting.pop(inode, None)
            ident = res.identity
            log.debug("%s: %s key %s from %d (size %d)", path, res.kind, ident.key, res.start, st.st_size)
            if ident.key in self.tails:
                return
            ident.size, ident.path, ident.seen = st.st_size, str(path), self._wall()
            present.add(ident.key)
            if spool_key == ident.key:
                ident.spool = str(path)
            if res.kind != "resume":
                kind = "copy of a truncated/vanished" if res.kind == "alias" else "new"
                log.info("%s: %s file (key %s), reading from offset %d", path, kind, ident.key, res.start)
            if not live and ident.durable >= st.st_size:  # nothing left to ship: no fd needed
                self._quiet[inode] = ((st.st_size, st.st_mtime_ns), ident.key)
                return
            tail = Tail(ident, fd, path, res.start, self._max_line, now)
            tail.size, tail.mtime_ns, tail.live = st.st_size, st.st_mtime_ns, live
            ident.emitted = max(ident.emitted, res.start)
            self.tails[ident.key] = tail
            self._by_inode[inode] = tail
            self._quiet.pop(inode, None)
            keep = True
        finally:
            if not keep:
                os.close(fd)

    def _spool_rotated(self) -> None:
        for tail in self.tails.values():
            ident = tail.ident
            if tail.live or ident.spool or ident.offset >= tail.size:
                continue
            kept = self._spool.keep(ident.key, Path(ident.path).name, None if tail.deleted else tail.path,
                                    tail.fd, tail.size)
            if kept is not None:
                log.debug("spool: kept %s as %s (%d unshipped bytes)", tail.path, kept,
                          tail.size - ident.offset)
                ident.spool = str(kept)
                self.dirty = True
                tail.spool_refused = False
            elif not tail.spool_refused:
                tail.spool_refused = True
                self._metrics.spool_refused.inc()
                log.warning("spool full (%d of %d bytes): rotated %s with %d unshipped bytes not spooled; "
                            "they are lost if it is deleted before they ship", self._spool.used,
                            self._spool.max_bytes, tail.path, tail.size - ident.offset)
        self._metrics.spool_bytes.set(self._spool.used)

    def _enforce_bound(self) -> None:
        # A deleted file we hold open still occupies disk: it counts against the spool bound too.
        held = sorted((t for t in self.tails.values() if t.deleted and not t.ident.spool),
                      key=lambda t: t.changed_at)
        retained = self._spool.used + sum(t.size for t in held)
        for tail in held:
            if retained <= self._spool.max_bytes:
                break
            retained -= tail.size
            start = tail.framer.line_start
            self.record_loss(tail.ident, start, tail.size, "spool_full",
                             "spool full: rotated file deleted before it was shipped and "
                             f"LOGGER_SPOOL_MAX_BYTES={self._spool.max_bytes} left no room")
            self._drop(tail)

    def _close_finished(self, now: float, listing: dict[tuple[int, int], Listed]) -> None:
        for tail in list(self.tails.values()):
            ident = tail.ident
            if (tail.live or not tail.finished_reading or ident.durable < tail.position
                    or now - tail.changed_at < self._idle):
                continue
            if ident.spool:
                self._spool.release(Path(ident.spool))
                ident.spool = None
                self.dirty = True
            st = os.fstat(tail.fd)
            inode = (st.st_dev, st.st_ino)
            if inode in listing:
                self._quiet[inode] = ((listing[inode].size, listing[inode].mtime_ns), ident.key)
            self._drop(tail)

    def _account_absent(self, present: set[str], now: float, wall: float) -> None:
        for ident in list(self.registry.identities.values()):
            if ident.key in present:
                self._absent.pop(ident.key, None)
                continue
            since = self._absent.setdefault(ident.key, now)
            start, end = ident.unaccounted()
            if end > start and now - since >= self._idle:
                # Bytes past the checkpoint may have been delivered by a logger killed before it
                # checkpointed them: the record says "not confirmed", it cannot say more.
                if ident.superseded:
                    kind, reason = "truncated", ("file truncated or rewritten in place before these bytes "
                                                 "were read or their delivery confirmed, and no rotated copy "
                                                 "holds them")
                else:
                    kind, reason = "deleted", ("file deleted or moved away before these bytes were read or "
                                               "their delivery confirmed, and they were not spooled")
                self.record_loss(ident, start, end, kind, reason)
            elif end <= start and ident.offset >= ident.emitted and wall - ident.seen > FORGET_AFTER:
                self.registry.forget(ident.key)
                self._absent.pop(ident.key, None)

    def record_loss(self, ident: Identity, start: int, end: int, kind: str, reason: str) -> None:
        """Account bytes [start, end) of `ident` as lost: dead-letter record, metric, error log."""
        source = source_name(original_name(Path(ident.path)))
        log.error("LOST %d bytes [%d, %d) of %s (key %s): %s", end - start, start, end, ident.path,
                  ident.key, reason)
        self._deadletter.loss(source=source, path=ident.path, file_key=ident.key, start=start, end=end,
                              kind=kind, reason=reason)
        self._metrics.lost_bytes.inc(end - start)
        self._metrics.losses.labels(kind).inc()
        ident.lost_from = start
        self.registry.changed = True

    def _drop(self, tail: Tail) -> None:
        log.debug("closing %s (key %s) at %d of %d, acknowledged %d", tail.path, tail.ident.key,
                  tail.position, tail.size, tail.ident.offset)
        self.tails.pop(tail.ident.key, None)
        for inode, other in list(self._by_inode.items()):
            if other is tail:
                del self._by_inode[inode]
        os.close(tail.fd)

    def _list(self) -> dict[tuple[int, int], Listed]:
        found: dict[tuple[int, int], Listed] = {}
        links: set[str] = set()
        try:
            it = os.scandir(self._dir)
        except FileNotFoundError:
            if not self._dir_missing_logged:
                log.warning("log directory %s does not exist yet; waiting for it", self._dir)
                self._dir_missing_logged = True
            return found
        with it:
            for entry in it:
                name = entry.name
                live = name.endswith(".log")
                if not live and not (_ROTATED.match(name) and not name.lower().endswith(_COMPRESSED)):
                    continue
                try:
                    if entry.is_symlink():
                        links.add(name)
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                inode = (st.st_dev, st.st_ino)
                if inode not in found or live:
                    found[inode] = Listed(Path(entry.path), live, st.st_size, st.st_mtime_ns)
        self._note_symlinks(links)
        return found

    def _note_symlinks(self, links: set[str]) -> None:
        # A log file replaced by a symlink is never followed: it could point anywhere the logger can
        # read (another pod's logs, a secret) and ship it under this pod's name. Said once per link.
        for name in sorted(links - self.symlinks):
            self._metrics.symlinks_refused.inc()
            log.error("%s is a symbolic link (to %s): not followed, nothing written through it is "
                      "shipped; the app must write to a regular file", self._dir / name,
                      _link_target(self._dir / name))
        self.symlinks = links

    # -- reading ----------------------------------------------------------------------------------
    def read(self, budget: int) -> list[tuple[Tail, RawLine]]:
        """Read up to about `budget` bytes of new data (rotated files first: they hold older lines)."""
        out: list[tuple[Tail, RawLine]] = []
        for tail in sorted(self.tails.values(), key=lambda t: (t.live, t.changed_at)):
            while budget > 0 and tail.position < tail.size:
                want = min(CHUNK, tail.size - tail.position)
                data = os.pread(tail.fd, want, tail.position)
                if len(data) < want or not tail.ident.matches(tail.fd, os.fstat(tail.fd).st_size):
                    # Truncated (and maybe rewritten) since the last scan, so these bytes may be the
                    # new content: drop them. The next scan re-identifies the file from offset 0 and
                    # recovers the old content's unread bytes from the rotated copy, if any.
                    tail.mtime_ns = -1
                    break
                budget -= len(data)
                self._metrics.bytes_read.inc(len(data))
                out.extend((tail, line) for line in tail.framer.feed(data))
                tail.ident.emitted = tail.framer.line_start
            if tail.ident.head_len < FP_MAX:
                tail.ident.extend_head(tail.fd, tail.size)
        return out

    def flush_partials(self, force: bool = False) -> list[tuple[Tail, RawLine]]:
        """Partial last lines of rotated-away files that can get no more bytes (idle, or `force`)."""
        now = self._clock()
        out: list[tuple[Tail, RawLine]] = []
        for tail in self.tails.values():
            if (not tail.live and tail.position >= tail.size and tail.framer.has_partial
                    and (force or now - tail.changed_at >= self._idle)):
                line = tail.framer.flush()
                if line is not None:
                    out.append((tail, line))
                    tail.ident.emitted = line.end
        return out

    def unread_bytes(self) -> int:
        return sum(max(0, t.size - t.position) for t in self.tails.values())

    def unshipped_bytes(self) -> int:
        return sum(max(0, t.size - t.ident.offset) for t in self.tails.values())

    def held_partial_bytes(self) -> int:
        """Bytes of unfinished last lines held until their newline arrives."""
        return sum(t.position - t.framer.line_start for t in self.tails.values() if t.framer.has_partial)

    def pending_rotated_partials(self) -> bool:
        return any(not t.live and t.framer.has_partial for t in self.tails.values())

    def close(self) -> None:
        for tail in list(self.tails.values()):
            self._drop(tail)


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
