"""Access counts of the SQLite store not yet written: merged in memory, written with the
writer's next transaction, and added to what reads return.

``pending`` waits for the next transaction and ``inflight`` is in the transaction being
committed. Each queued write of a memory *holds* (:class:`Hold`) the counts pending for it
when it was queued: its record carries the whole truth, those accesses included, so they go
with it if it wins. If it loses (an older record), fails or is refused, they are given to the
earliest write of that memory still queued (whose record was read with them), or else
written as counts; a rolled-back transaction gives its counts back the same way. Counts
recorded after a write was queued wait for that write's round, so they land on top of it.
Never dropped, never counted twice.

A read adds pending, inflight and held counts in the reader thread, against its own snapshot:
``epoch`` is odd while a transaction that changes them commits, and a read that overlapped
such a commit reads again (a sequence lock), so a count is never missed (read before its
commit, added after it left the overlay) nor added twice. After :data:`OPTIMISTIC_READS`
overlapping tries a read holds the lock, so the next such commit waits for it: a read always
ends.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from typing import Any

from deep_tree_echo.aar_core.memory._rows import row_to_record
from deep_tree_echo.aar_core.memory.record import MemoryRecord

#: ``(tenant, id)``
Key = tuple[str, str]
#: ``(tenant, id) -> (count, latest access)``.
Counts = dict[Key, tuple[int, float]]
#: Reads tried without holding the lock before one holds it (and so the next commit back).
OPTIMISTIC_READS = 3


class Hold:
    """The access counts one queued write of a memory holds (told apart by identity)."""

    __slots__ = ("count", "latest")

    def __init__(self) -> None:
        self.count = 0
        self.latest = 0.0

    def take(self, count: int, latest: float) -> None:
        """Hold ``count`` more accesses, the latest at ``latest``."""
        if count > 0:
            self.latest = latest if self.count == 0 else max(self.latest, latest)
            self.count += count

    def __repr__(self) -> str:
        return f"Hold({self.count}, {self.latest})"


class AccessCounts:
    """The access counts one store has not written yet; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.epoch = 0
        self.pending: Counts = {}
        self.inflight: Counts = {}
        #: The holds of the writes of each memory still queued, in queue order.
        self.held: dict[Key, list[Hold]] = {}
        #: Counts of the writes that won in the transaction being committed.
        self._absorbed: list[tuple[Key, int, float]] = []
        self.flush_queued = False

    def add(self, key: Key, count: int, at: float) -> bool:
        """Count ``count`` accesses of ``key``, the latest at ``at``; True when the writer
        must be woken to write them (no flush is queued yet)."""
        with self.lock:
            _merge(self.pending, key, count, at)
            wake = not self.flush_queued
            self.flush_queued = True
        return wake

    def hold(self, key: Key) -> Hold:
        """The hold of a write of ``key`` being queued: it takes the pending counts (reads
        still add them until :meth:`settle` says whether the write won)."""
        hold = Hold()
        with self.lock:
            counts = self.pending.pop(key, None)
            if counts is not None:
                hold.take(*counts)
            self.held.setdefault(key, []).append(hold)
        return hold

    def settle(self, writes: Iterable[tuple[Key, Hold, bool]]) -> None:
        """In the writer's open transaction, in queue order: each ``(key, hold, won)`` write's
        counts go with it if it won (reads wait for the commit), else to the earliest write
        of ``key`` still queued or into this transaction's counts (``inflight``)."""
        with self.lock:
            for key, hold, won in writes:
                self._unhold(key, hold)
                if not hold.count:
                    continue
                if won:
                    self._absorbed.append((key, hold.count, hold.latest))
                    if self.epoch % 2 == 0:  # the overlay shrinks with this commit
                        self.epoch += 1
                else:
                    self._give(key, hold.count, hold.latest, self.inflight)
                hold.count = 0  # settled: a rollback gives back what it gave, not this

    def forget(self, keys: Iterable[Key]) -> None:
        """Drop the pending counts of ``keys`` (their rows are gone)."""
        with self.lock:
            for key in keys:
                self.pending.pop(key, None)

    def release(self, writes: Iterable[tuple[Key, Hold]]) -> None:
        """Writes that were never run (refused): their counts wait again."""
        with self.lock:
            self._give_back(writes, ())

    def flush_lost(self) -> None:
        """A round that took the queued flush failed before it wrote anything: the next
        access queues another."""
        with self.lock:
            self.flush_queued = False

    def _unhold(self, key: Key, hold: Hold) -> None:
        holds = self.held.get(key, [])
        for i, held in enumerate(holds):
            if held is hold:
                del holds[i]
                if not holds:
                    del self.held[key]
                return

    def _give(self, key: Key, count: int, latest: float, otherwise: Counts) -> None:
        """Counts a write could not keep: to the earliest write of ``key`` still queued (read
        with them, like every later one: if it wins they are in the file, if it loses it
        passes them on), else into ``otherwise``."""
        holds = self.held.get(key)
        if holds:
            holds[0].take(count, latest)
        else:
            _merge(otherwise, key, count, latest)

    def _give_back(self, writes: Iterable[tuple[Key, Hold]],
                   more: Iterable[tuple[Key, int, float]]) -> None:
        """The counts of ``writes`` (all unheld first: none gets another's) and ``more``
        wait again (the lock is held)."""
        writes = list(writes)
        for key, hold in writes:
            self._unhold(key, hold)
        for key, hold in writes:
            if hold.count:
                self._give(key, hold.count, hold.latest, self.pending)
                hold.count = 0
        for key, count, latest in more:
            self._give(key, count, latest, self.pending)

    def take(self, batch: Iterable[Hold] = ()) -> Counts:
        """Move the pending counts into the transaction being built (writer thread), but
        those of a memory with a write queued behind this ``batch`` (of holds): recorded
        after that write was queued, they must land after it, in the round it makes."""
        in_batch = {id(hold) for hold in batch}
        with self.lock:
            held = self.held
            later = {key: counts for key, counts in self.pending.items()
                     if key in held and any(id(h) not in in_batch for h in held[key])}
            if later:
                self.inflight = {key: counts for key, counts in self.pending.items()
                                 if key not in later}
                self.pending = later
            else:
                self.inflight, self.pending = self.pending, {}
            self.flush_queued = False
            return self.inflight

    def committing(self) -> None:
        """The transaction holding ``inflight`` is about to commit: reads wait for it."""
        with self.lock:
            if self.epoch % 2 == 0:
                self.epoch += 1

    def done(self) -> None:
        """The transaction committed: its counts are in the file."""
        with self.lock:
            self._reset()

    def rolled_back(self, writes: Iterable[tuple[Key, Hold]]) -> None:
        """The transaction was rolled back: its counts, those its writes held or took with
        them, wait again."""
        with self.lock:
            more = [(key, n, at) for key, (n, at) in self.inflight.items()]
            more += self._absorbed
            self._give_back(writes, more)
            self._reset()

    def _reset(self) -> None:
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
        hits.extend((hold.count, hold.latest) for hold in self.held.get(key, ()) if hold.count)
        if not hits:
            return 0, None
        return sum(n for n, _ in hits), max(at for _, at in hits)


def _merge(counts: Counts, key: Key, count: int, latest: float) -> None:
    """Add ``count`` accesses, the latest at ``latest``, to ``key``'s entry of ``counts``."""
    n, last = counts.get(key, (0, latest))
    counts[key] = (n + count, max(last, latest))


def _added(rec: MemoryRecord, extra: tuple[int, float | None]) -> MemoryRecord:
    count, latest = extra
    if count:
        rec.access_count += count
        if latest is not None and (rec.last_access is None or latest > rec.last_access):
            rec.last_access = latest
    return rec
