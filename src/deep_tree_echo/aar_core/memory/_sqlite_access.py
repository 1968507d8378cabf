"""Access counts of the SQLite store not yet written: merged in memory, written with the
writer's next transaction, and added to what reads return.

``pending`` waits for the next transaction, ``inflight`` is in the transaction being
committed, and ``held`` was taken by a queued write of the memory (its record carries the
whole truth, those accesses included): if the write wins they go with it, if it loses (an
older record) or fails they are written as counts after all, never dropped. A read adds all
three in the reader thread, against its own snapshot: ``epoch`` is odd while a transaction
that changes them commits, and a read that overlapped such a commit reads again (a sequence
lock), so a count is never missed (read before its commit, added after it left the overlay)
nor added twice. After :data:`OPTIMISTIC_READS` overlapping tries a read holds the lock, so
the next commit of counts waits for it: a read always ends.
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
#: The counts one queued write took (``(count, latest access)``), or None.
Held = tuple[int, float] | None
#: Reads tried without holding the lock before one holds it (and so the next commit back).
OPTIMISTIC_READS = 3


class AccessCounts:
    """The access counts one store has not written yet; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.epoch = 0
        self.pending: Counts = {}
        self.inflight: Counts = {}
        self.held: dict[tuple[str, str], list[tuple[int, float]]] = {}
        self._absorbed: list[tuple[tuple[str, str], tuple[int, float]]] = []
        self.flush_queued = False

    def add(self, key: tuple[str, str], count: int, at: float) -> bool:
        """Count ``count`` accesses of ``key``, the latest at ``at``; True when the writer
        must be woken to write them (no flush is queued yet)."""
        with self.lock:
            _merge(self.pending, key, (count, at))
            wake = not self.flush_queued
            self.flush_queued = True
        return wake

    def hold(self, key: tuple[str, str]) -> Held:
        """Take ``key``'s pending counts for a write of it being queued (its record includes
        them): reads still add them until :meth:`settle` says whether the write won."""
        with self.lock:
            counts = self.pending.pop(key, None)
            if counts is not None:
                self.held.setdefault(key, []).append(counts)
            return counts

    def settle(self, writes: list[tuple[tuple[str, str], tuple[int, float], bool]]) -> None:
        """In the writer's open transaction: each ``(key, held, won)`` write's held counts go
        with it if it won (reads wait for the commit) or join the counts this transaction
        writes (``inflight``) if it lost."""
        with self.lock:
            for key, counts, won in writes:
                self._unhold(key, counts)
                if won:
                    self._absorbed.append((key, counts))
                    if self.epoch % 2 == 0:  # the overlay shrinks with this commit
                        self.epoch += 1
                else:
                    _merge(self.inflight, key, counts)

    def release(self, writes: list[tuple[tuple[str, str], tuple[int, float]]]) -> None:
        """Writes that were never run (refused): their held counts wait again."""
        with self.lock:
            for key, counts in writes:
                if self._unhold(key, counts):
                    _merge(self.pending, key, counts)

    def _unhold(self, key: tuple[str, str], counts: tuple[int, float]) -> bool:
        held = self.held.get(key)
        if held is None or counts not in held:
            return False
        held.remove(counts)
        if not held:
            del self.held[key]
        return True

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
            if self.epoch % 2 == 0:
                self.epoch += 1

    def done(self, failed: list[tuple[tuple[str, str], tuple[int, float]]] | None = None
             ) -> None:
        """The transaction committed (``failed`` None): its counts are in the file. Else it
        was rolled back: its counts, and those held by its ``failed`` writes, wait again."""
        with self.lock:
            if failed is not None:
                for key, counts in self.inflight.items():
                    _merge(self.pending, key, counts)
                for key, counts in self._absorbed:
                    _merge(self.pending, key, counts)
                for key, counts in failed:
                    if self._unhold(key, counts):
                        _merge(self.pending, key, counts)
            self.inflight = {}
            self._absorbed = []
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
        key = (tenant, memory_id)
        hits = [source[key] for source in (self.inflight, self.pending) if key in source]
        hits.extend(self.held.get(key, ()))
        if not hits:
            return 0, None
        return sum(n for n, _ in hits), max(at for _, at in hits)


def _merge(counts: Counts, key: tuple[str, str], more: tuple[int, float]) -> None:
    """Add ``more`` (a count and its latest access) to ``key``'s entry of ``counts``."""
    n, last = counts.get(key, (0, more[1]))
    counts[key] = (n + more[0], max(last, more[1]))


def _added(rec: MemoryRecord, extra: tuple[int, float | None]) -> MemoryRecord:
    count, latest = extra
    if count:
        rec.access_count += count
        if latest is not None and (rec.last_access is None or latest > rec.last_access):
            rec.last_access = latest
    return rec
