"""A kernel file lock that a SQLite database's writers take around each write transaction.

SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps 1, 2,
5, ... up to 100 ms between tries, so two processes (or the store and the event outbox of one
process) that write the same file often wait far longer than the transaction they wait for
(measured: commit p99 2-10 ms alone, 80-120 ms and stalls near 1 s with a second process).
Every writer of ours therefore first takes ``flock(LOCK_EX)`` on ``<database>-wlock``: the
kernel wakes a waiter as soon as the holder lets go, and ``BEGIN IMMEDIATE`` then finds the
database free. The lock dies with its process (``kill -9`` included); ``busy_timeout`` stays as
the fallback for writers that do not take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Final

#: Suffix of the lock file, next to SQLite's own ``-wal`` and ``-shm``.
SUFFIX: Final = "-wlock"


class WriteLock:
    """The write lock of one SQLite file, for one writer connection (one open file each, so
    two writers of one process exclude each other too)."""

    __slots__ = ("_fd", "path")

    def __init__(self, database: str) -> None:
        in_memory = database == ":memory:" or database.startswith("file:")
        self.path = None if in_memory else database + SUFFIX
        self._fd: int | None = None

    def open(self) -> None:
        """Open (create) the lock file; a no-op for an in-memory database."""
        if self.path is not None and self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        """Close the lock file (releasing the lock if held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the ``with`` body (blocks until every other holder let go)."""
        fd = self._fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
