"""Checkpoints of a SQLite file's WAL from a thread of their own, outside the writers' lock.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that crosses its threshold (1,000
pages): it copies the WAL back into the database file and syncs it while that writer still
holds the file's write lock (``sqlite_writelock``), so every other writer of every worker waits
for it. The writers here raise the threshold to :data:`WRITER_AUTOCHECKPOINT` and a
:class:`Checkpointer` (one per process and file: :func:`shared`) runs
``PRAGMA wal_checkpoint(PASSIVE)`` on its own connection every ``interval`` seconds in which
the file changed. A passive checkpoint takes no writer's lock and waits for nobody: writers keep
committing while it copies, and the writer that crosses the threshold finds little left to copy.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Final

_log = logging.getLogger(__name__)

#: ``PRAGMA wal_autocheckpoint`` of writer connections (pages, about 40 MiB). SQLite counts the
#: pages written since the WAL last started over, and it starts over only when every frame was
#: copied back, which a passive checkpoint racing busy writers seldom achieves: under steady
#: writes the WAL grows to this size, then the writer that crosses it checkpoints (little is left
#: to copy by then) and the WAL starts over. Idle, the thread's rounds finish the job.
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
        self._users: set[object] = set()
        self._users_lock = threading.Lock()

    def start(self, user: object) -> None:
        """Add ``user`` (again: no-op); the first one starts the thread (whose connection opens
        in the thread)."""
        with self._users_lock:
            self._users.add(user)
            if self._thread is None:
                self._stop = threading.Event()  # its own: a stopping thread keeps its own set
                self._thread = threading.Thread(target=self._main, args=(self._stop,),
                                                name="sqlite-checkpoint", daemon=True)
                self._thread.start()

    def stop(self, user: object) -> None:
        """Remove ``user`` (not one: no-op); the last one stops the thread and waits for it (a
        checkpoint in progress completes first)."""
        with self._users_lock:
            if user not in self._users:
                return
            self._users.discard(user)
            if self._users:
                return
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join()

    def _main(self, stop: threading.Event) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:  # the file's writers checkpoint at their backstop then
            _log.warning("WAL checkpoints of %s left to its writers: %s", self.path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = FULL")
            seen = -1
            while not stop.wait(self.interval):
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
        ``data_version`` the next round compares with: ``seen`` again when this one failed
        (logged), found the checkpoint busy or could not copy every frame (a reader still
        needed some), so that the next round tries again."""
        try:
            version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            if version == seen:
                return seen
            busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            _log.debug("WAL checkpoint of %s failed: %s", self.path, exc)
            return seen
        if busy:
            return seen
        self.checkpoints += 1
        return version if copied == frames else seen


_SHARED: dict[str, Checkpointer] = {}
_SHARED_LOCK = threading.Lock()


def shared(path: str) -> Checkpointer:
    """This process's one checkpointer of the file at ``path``: the memory store and the event
    outbox of one file share it (each is one user of :meth:`~Checkpointer.start`)."""
    key = os.path.realpath(path)
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = Checkpointer(path)
        return found
