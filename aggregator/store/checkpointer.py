"""WAL checkpoints on their own thread and connection, off the writer's critical path."""
from __future__ import annotations

import logging
import sqlite3
import threading

logger = logging.getLogger(__name__)


class Checkpointer:
    """Copies committed WAL frames into the database file after each commit (PASSIVE: it never
    blocks the writer or readers), so the WAL stays short and restarts often.

    With automatic checkpoints the writer itself stops to copy pages every few thousand frames;
    doing it here lets that I/O run on the other core while the writer keeps inserting. After a
    kick it lets `coalesce_seconds` of commits gather first: the index and FTS pages every commit
    rewrites are then copied once per checkpoint instead of once per commit.
    """

    def __init__(self, path: str, idle_seconds: float = 1.0, coalesce_seconds: float = 0.5) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout=0")
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._idle = idle_seconds
        self._coalesce = coalesce_seconds
        self.runs = 0
        self._thread = threading.Thread(target=self._loop, name="aggregator-checkpoint", daemon=True)
        self._thread.start()

    def kick(self) -> None:
        """Ask for a checkpoint soon (called by the writer after a commit)."""
        self._kick.set()

    def close(self) -> None:
        """Stop the thread and close its connection."""
        self._stop.set()
        self._kick.set()
        self._thread.join(10)
        self._conn.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._kick.wait(self._idle)
            if self._stop.wait(self._coalesce):
                return
            self._kick.clear()
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                self.runs += 1
            except sqlite3.Error as exc:  # busy with another checkpoint, or I/O trouble
                logger.debug("checkpoint skipped: %s", exc)
