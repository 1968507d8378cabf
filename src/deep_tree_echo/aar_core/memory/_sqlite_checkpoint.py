"""Checkpoints of a SQLite file's WAL from a thread of their own, outside the writers' lock.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses its threshold (1,000
pages): it copies the WAL back into the database file and syncs it while that writer still
holds the file's write lock (``sqlite_writelock``), so every other writer of every worker waits
for it. The writers here raise the threshold to :data:`WRITER_AUTOCHECKPOINT` (a backstop only)
and a :class:`Checkpointer` runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection every
``interval`` seconds in which the file changed. A passive checkpoint takes no writer's lock and
waits for nobody: writers keep committing while it copies.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Final

_log = logging.getLogger(__name__)

#: ``PRAGMA wal_autocheckpoint`` of writer connections: only if the checkpointer falls far behind
#: (pages of WAL, about 40 MiB) does a writer copy the WAL back itself, as SQLite does by default.
WRITER_AUTOCHECKPOINT: Final = 10_000
#: Seconds between the checkpointer's looks at the file (it checkpoints only after a change).
INTERVAL: Final = 0.1


class Checkpointer:
    """One thread that checkpoints the WAL of the SQLite file at ``path`` after changes."""

    def __init__(self, path: str, *, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        #: Rounds of the thread, and checkpoints run (not refused as busy): for tests and tuning.
        self.rounds = 0
        self.checkpoints = 0
        self._ran = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (a no-op when it runs; its connection opens in the thread)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._main, name="sqlite-checkpoint",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (a checkpoint in progress completes first)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _main(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the file's writers checkpoint at their backstop then
            _log.warning("WAL checkpoints of %s left to its writers: %s", self.path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = FULL")
            seen = -1
            while not self._stop.wait(self.interval):
                seen = self.run(conn, seen)
                with self._ran:
                    self.rounds += 1
                    self._ran.notify_all()
        finally:
            conn.close()

    def wait_rounds(self, rounds: int, timeout: float) -> bool:
        """Block until the thread has run ``rounds`` rounds in all; False on timeout."""
        with self._ran:
            return self._ran.wait_for(lambda: self.rounds >= rounds, timeout)

    def run(self, conn: sqlite3.Connection, seen: int) -> int:
        """Checkpoint once if the file changed since ``data_version`` was ``seen``; returns the
        ``data_version`` now (errors are logged: the next round tries again)."""
        try:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == seen:
                return seen
            busy = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0]
        except sqlite3.Error as exc:
            _log.debug("WAL checkpoint of %s failed: %s", self.path, exc)
            return seen
        if not busy:
            self.checkpoints += 1
        return version
