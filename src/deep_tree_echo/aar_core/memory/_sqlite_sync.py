"""Syncing a SQLite file's committed transactions to disk outside its writers' lock.

With ``synchronous=FULL`` each ``COMMIT`` syncs the WAL while its writer still holds the file's
write lock (``sqlite_writelock``), so every other writer of every worker waits for the disk
too. The store's writer commits with ``synchronous=NORMAL`` instead (the WAL is written, not
synced), releases the lock, then calls :meth:`WalSync.sync` and only then acknowledges the
batch: acknowledged writes still survive a power loss, and other processes commit while this
one waits for its disk. One ``fsync`` of the ``-wal`` file flushes every frame written to it
so far, another writer's included; frames a checkpoint has copied out are in the database
file, which SQLite syncs after each checkpoint even with ``NORMAL``. The price: another
process may read a write a moment (one ``fsync``) before its writer has acknowledged it.
"""

from __future__ import annotations

import os


class WalSync:
    """Syncs the WAL of the SQLite file at ``database`` (a no-op for ``:memory:``).

    Open it once the file is in WAL mode: it keeps the ``-wal`` file open, which SQLite does
    not delete while a connection (the writer's) is open. SQLite holds no locks on the
    ``-wal`` file itself, so this second descriptor releases none when closed.
    """

    __slots__ = ("_fd", "path")

    def __init__(self, database: str) -> None:
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
