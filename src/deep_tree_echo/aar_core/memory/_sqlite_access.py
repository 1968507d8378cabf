"""Access counts of the SQLite store not yet written: merged in memory, written with the
writer's next transaction, and added to what reads return.

``pending`` waits for the next transaction, ``inflight`` is in the transaction being
committed. A read adds them in the reader thread, against its own snapshot: ``epoch`` is odd
while a transaction with access counts commits, and a read that overlapped such a commit
reads again (a sequence lock), so a count is never missed (read before its commit, added
after it left ``inflight``) nor added twice. After :data:`OPTIMISTIC_READS` overlapping tries
a read holds the lock, so the next commit of counts waits for it: a read always ends.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from deep_tree_echo.aar_core.memory._rows import row_to_record
from deep_tree_echo.aar_core.memory.record import MemoryRecord

#: ``(tenant, id) -> (count, latest access)``.
Counts = dict[tuple[str, str], tuple[int, float]]
#: Reads tried without holding the lock before one holds it (and so the next commit back).
OPTIMISTIC_READS = 3


class AccessCounts:
    """The access counts one store has not written yet; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.epoch = 0
        self.pending: Counts = {}
        self.inflight: Counts = {}
        self.flush_queued = False

    def add(self, key: tuple[str, str], count: int, at: float) -> bool:
        """Count ``count`` accesses of ``key``, the latest at ``at``; True when the writer
        must be woken to write them (no flush is queued yet)."""
        with self.lock:
            n, last = self.pending.get(key, (0, at))
            self.pending[key] = (n + count, max(last, at))
            wake = not self.flush_queued
            self.flush_queued = True
        return wake

    def forget(self, keys: list[tuple[str, str]]) -> None:
        """Drop the pending counts of ``keys`` (a write carries its own, or the row is gone)."""
        with self.lock:
            for key in keys:
                self.pending.pop(key, None)

    def take(self) -> Counts:
        """Move the pending counts into the transaction being built (writer thread)."""
        with self.lock:
            self.inflight, self.pending = self.pending, {}
            self.flush_queued = False
            return self.inflight

    def committing(self) -> None:
        """The transaction holding ``inflight`` is about to commit: reads wait for it."""
        with self.lock:
            self.epoch += 1

    def done(self) -> None:
        """The transaction committed or failed: ``inflight`` is in the file or lost."""
        with self.lock:
            self.inflight = {}
            if self.epoch % 2:
                self.epoch += 1
                self.lock.notify_all()

    def read(
        self,
        conn: sqlite3.Connection,
        fetch: Callable[[sqlite3.Connection], list[tuple[Any, ...]]],
        tenant: str,
    ) -> list[MemoryRecord]:
        """The rows ``fetch`` reads on ``conn``, as records with the counts not yet written
        added (reader thread; see the module docstring)."""
        cond = self.lock
        for _ in range(OPTIMISTIC_READS):
            with cond:
                cond.wait_for(lambda: self.epoch % 2 == 0)
                epoch = self.epoch
            rows = fetch(conn)
            with cond:
                if self.epoch == epoch:
                    extras = [self._unwritten(tenant, row[0]) for row in rows]
                    break
        else:  # commits keep overlapping: read holding the lock, which holds the next back
            with cond:
                cond.wait_for(lambda: self.epoch % 2 == 0)
                rows = fetch(conn)
                extras = [self._unwritten(tenant, row[0]) for row in rows]
        return [_added(row_to_record(row), extra) for row, extra in zip(rows, extras, strict=True)]

    def _unwritten(self, tenant: str, memory_id: str) -> tuple[int, float | None]:
        """Accesses of ``memory_id`` not yet written, and the latest (the lock is held)."""
        count, latest = 0, None
        for source in (self.inflight, self.pending):
            hit = source.get((tenant, memory_id))
            if hit is not None:
                count += hit[0]
                latest = hit[1] if latest is None else max(latest, hit[1])
        return count, latest


def _added(rec: MemoryRecord, extra: tuple[int, float | None]) -> MemoryRecord:
    count, latest = extra
    if count:
        rec.access_count += count
        if latest is not None and (rec.last_access is None or latest > rec.last_access):
            rec.last_access = latest
    return rec
