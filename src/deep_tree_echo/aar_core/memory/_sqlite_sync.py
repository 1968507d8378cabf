"""Syncing a SQLite file's committed transactions to disk outside its writers' lock.

With ``synchronous=FULL`` each ``COMMIT`` syncs the WAL while its writer still holds the file's
write lock (``sqlite_writelock``), so every other writer of every worker waits for the disk
too. The store's writer commits with ``synchronous=NORMAL`` instead (the WAL is written, not
synced), releases the lock, then syncs (:meth:`WalSync.synced`) and only then acknowledges the
batch: acknowledged writes still survive a power loss, and other processes commit while this
one waits for its disk. One ``fsync`` of the ``-wal`` file flushes every frame written to it
so far, another writer's included; frames a checkpoint has copied out are in the database
file, which SQLite syncs after each checkpoint even with ``NORMAL``. The price: another
process may read a write a moment (one ``fsync``) before its writer has acknowledged it.
"""

from __future__ import annotations

import logging
import os

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory._sqlite_batch import Outcome

_log = logging.getLogger("deep_tree_echo.aar_core.memory.sqlite")


class WalSync:
    """Syncs the WAL of the SQLite file at ``database`` (a no-op for ``:memory:``).

    Open it once the file is in WAL mode: it keeps the ``-wal`` file open, which SQLite does
    not delete while a connection (the writer's) is open. SQLite holds no locks on the
    ``-wal`` file itself, so this second descriptor releases none when closed.
    """

    __slots__ = ("_fd", "database", "failed", "path")

    def __init__(self, database: str) -> None:
        self.database = database
        #: Set once a sync failed: every later write of the store fails with it.
        self.failed: StoreError | None = None
        # SQLite follows a symlinked database path and keeps the WAL next to the real file
        self.path = None if database == ":memory:" else os.path.realpath(database) + "-wal"
        self._fd: int | None = None

    def open(self) -> None:
        """Open the ``-wal`` file and sync it and its directory once, so the file itself
        (created by SQLite, which syncs a new WAL's directory only with a commit's sync) is
        durable before the first acknowledged write relies on it."""
        if self.path is None or self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDONLY)  # not inherited by child processes (PEP 446)
        try:
            os.fsync(fd)
            directory = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def sync(self) -> None:
        """Flush every frame written to the WAL so far to disk (``OSError`` when that
        failed)."""
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def synced(self, outcomes: list[Outcome]) -> list[Outcome]:
        """``outcomes`` once the WAL is synced (after any write that succeeded).

        If the sync failed (however), those writes fail, committed but not known to be on
        disk, and so does every later write (:attr:`failed`): after a failed ``fsync`` the
        kernel may report the next one clean although the lost pages never reached the disk,
        and a crash would then drop every transaction after them (as PostgreSQL does, the
        store stops; open the file again to go on).
        """
        if not any(error is None for _, error in outcomes):
            return outcomes
        try:
            self.sync()
        except Exception as exc:  # a failed sync fails the writes, never the writer thread
            _log.error("syncing the WAL of %s failed; no more writes: %r", self.database, exc)
            self.failed = StoreError(
                f"write committed but not synced to disk: {exc}; no further writes are "
                "accepted until the store is opened again", path=self.database)
            return [(None, self.failed) if error is None else (result, error)
                    for result, error in outcomes]
        return outcomes
