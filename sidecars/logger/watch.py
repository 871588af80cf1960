"""Waking the logger when there is something to do, instead of polling: file events on the log
directory (Linux inotify, through libc), an acknowledgement from a sending thread, or a stop.

Idle, the loop then sleeps until an event or its rescan interval (LOGGER_RESCAN_INTERVAL) passes:
the rescan still finds what no event reports (a file written after it was moved out of the folder).
Where inotify is not available (another OS, a file system without it) the loop polls as before.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import select
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# <sys/inotify.h>: a file written, created, moved in or out, deleted, truncated or re-attributed.
IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x002, 0x004, 0x008
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x040, 0x080, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_IGNORED = 0x400, 0x800, 0x8000
MASK = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        | IN_DELETE_SELF | IN_MOVE_SELF)
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC


class Wakeup:
    """What the loop sleeps on: set by file events, acknowledgements and stop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Sleep until set or `timeout`; True when set (and clear it for the next wait)."""
        woken = self._event.wait(timeout)
        self._event.clear()
        return woken


class DirectoryWatch:
    """inotify on one directory (re-added when the directory appears or is replaced), on a thread
    that sets `wakeup` at each batch of events. `active` is False when inotify is not available."""

    def __init__(self, directory: Path, wakeup: Wakeup, settle: float = 0.02) -> None:
        self.directory = directory
        self._settle = settle
        self._wakeup = wakeup
        self._libc = _libc()
        self._fd = -1
        self._watching = False
        self.entries_changed = True  # a file appeared, went or was renamed: the directory needs a scan
        self._stop_r, self._stop_w = os.pipe()
        if self._libc is not None:
            self._fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if self._fd < 0:
                log.info("inotify unavailable (%s): polling the log directory", os.strerror(ctypes.get_errno()))
                self._fd = -1
        self._thread = threading.Thread(target=self._run, name="logger-watch", daemon=True)
        if self._fd >= 0:
            self.ensure()
            self._thread.start()

    @property
    def active(self) -> bool:
        """Events arrive for the directory: the loop may sleep until one does."""
        return self._fd >= 0 and self._watching

    def ensure(self) -> None:
        """Watch the directory if not yet (it may not exist at start); called at each rescan."""
        if self._fd < 0 or self._watching:
            return
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(self.directory), MASK)
        if wd >= 0:
            self._watching = True
        elif ctypes.get_errno() not in (errno.ENOENT, errno.ENOTDIR):
            log.info("cannot watch %s (%s): polling it", self.directory, os.strerror(ctypes.get_errno()))

    def close(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5)
        for fd in (self._fd, self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._fd = -1

    def _run(self) -> None:
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                continue
            mask = _masks(data)
            if mask & ~(IN_MODIFY | IN_CLOSE_WRITE):
                self.entries_changed = True
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED):
                self._watching = False  # the directory itself went away: re-added at a rescan
            self._wakeup.set()
            # An app writing line by line makes an event per line: at most one wake-up per `settle`
            # seconds (the kernel merges repeated events meanwhile), so 1,000 writes a second cost
            # 50 reads of the files, not 1,000; a line waits at most `settle` longer.
            select.select([self._stop_r], [], [], self._settle)


def _masks(data: bytes) -> int:
    """The union of the masks of the events in `data` (struct inotify_event, one after another)."""
    mask = offset = 0
    while offset + 16 <= len(data):
        mask |= int.from_bytes(data[offset + 4:offset + 8], sys.byteorder)
        offset += 16 + int.from_bytes(data[offset + 12:offset + 16], sys.byteorder)
    return mask


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    except (OSError, AttributeError):
        return None
    return libc
