"""The SQLite store's writer thread: group commit under the file's write lock, then the sync.

Each round takes the first queued op, waits for the file's other writers (``sqlite_writelock``),
takes everything queued by then (the longer the wait, the bigger the batch) and writes it with
the access counts not yet written in one transaction (``_sqlite_batch``). The lock is released
before the WAL is synced (``_sqlite_sync``) and the batch's writers hear back. A round that
fails outside its transaction (the kernel lock) fails its own writes and the thread goes on:
a writer thread that died would leave every later write waiting for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._sqlite_access import AccessCounts, Counts, Hold, Key
from deep_tree_echo.aar_core.memory._sqlite_batch import Outcome, run_ops
from deep_tree_echo.aar_core.memory._sqlite_checkpoint import WRITER_AUTOCHECKPOINT
from deep_tree_echo.aar_core.memory._sqlite_queue import STOP, WriteOp, resolve, settle
from deep_tree_echo.aar_core.memory._sqlite_sync import WalSync
from deep_tree_echo.aar_core.memory.sqlite_writelock import WriteLock

_log = logging.getLogger("deep_tree_echo.aar_core.memory.sqlite")


class Writer:
    """What the writer thread of one store owns: its queue's consumer, connection and lock."""

    def __init__(self, path: str, ops: queue.SimpleQueue[object], accesses: AccessCounts,
                 max_batch: int) -> None:
        self.path = path
        self.queue = ops
        self.accesses = accesses
        self.max_batch = max_batch
        self.wal = WalSync(path)  # synced outside the lock (this thread only)
        #: Number of transactions committed and writes in them (exposes the group commit).
        self.commits = 0
        self.committed_writes = 0

    def run(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        """The thread's body: open the file, report to ``ready``, then write until ``STOP``."""
        lock = WriteLock(self.path)
        wal = self.wal
        conn: sqlite3.Connection | None = None
        try:
            lock.open()
            # SQLite does not wait when it cannot switch a new file to WAL: "database is
            # locked" when processes open it at once. Under the lock they take turns.
            with lock.held():
                conn = sql.connect(self.path)
                conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
                sql.migrate(conn)
            # Commits write the WAL; the writer syncs it after letting go of the lock.
            conn.execute("PRAGMA synchronous = NORMAL")
            wal.open()
        except Exception as exc:  # reported to open(), never a writer that silently died
            if conn is not None:
                conn.close()
            wal.close()
            lock.close()
            loop.call_soon_threadsafe(resolve, ready, None, exc)
            return
        loop.call_soon_threadsafe(resolve, ready, None, None)
        try:
            stop = False
            while not stop:
                stop = self._round(conn, lock, [self.queue.get()])
            # Anything queued after the stop marker is refused, never left hanging.
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, WriteOp):
                    self._refuse([item], StoreError("SQLiteStore is closed", path=self.path))
            self._last_counts(conn, lock)
        finally:
            conn.close()
            wal.close()
            lock.close()

    def _round(self, conn: sqlite3.Connection, lock: WriteLock, batch: list[object]) -> bool:
        """Write ``batch`` and what queued up behind it; True when ``STOP`` was among them."""
        ops: list[WriteOp] = []
        outcomes: list[Outcome] | None = None
        try:
            with lock.held():
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
                ops = [item for item in batch if isinstance(item, WriteOp)]
                holds = _holds(ops)
                accesses = self.accesses.take(hold for _, hold in holds)
                if self.wal.failed is not None:  # nothing more is written (WalSync.synced)
                    self.accesses.rolled_back(holds)
                    settle(ops, [(None, self.wal.failed)] * len(ops))
                    ops = []
                    outcomes = []
                elif ops or accesses:
                    outcomes = self._commit(conn, ops, accesses)
                else:
                    outcomes = []
        except Exception as exc:  # the kernel lock failed: this round's writes fail alone
            _log.error("writing to %s failed outside its transaction: %r", self.path, exc)
            if outcomes is None:  # the lock was never taken (so nor were the access counts)
                ops = [item for item in batch if isinstance(item, WriteOp)]
                self.accesses.flush_lost()  # a flush this round took: the next access asks again
                self._refuse(ops, StoreError(f"write lock failed: {exc}", path=self.path))
                return any(item is STOP for item in batch)
        # Writers hear back after the lock is free and their batch is on disk: another
        # process's writer need wait neither for this one's sync nor for its hand-overs to
        # its event loop.
        settle(ops, self.wal.synced(outcomes))
        return any(item is STOP for item in batch)

    def _last_counts(self, conn: sqlite3.Connection, lock: WriteLock) -> None:
        """Write the access counts still waiting as the writer stops: those a write of the
        last round (lost, failed or refused) gave back, which no later round would write."""
        if self.wal.failed is None:  # else nothing more is written (WalSync.synced)
            try:
                with lock.held():
                    accesses = self.accesses.take()
                    if not accesses:  # nothing waits: no transaction, no sync
                        return
                    self._commit(conn, [], accesses)  # rolled back: they wait again
                self.wal.sync()
            except Exception as exc:  # the store is closing: say so, and go on closing
                _log.error("writing the last access counts of %s failed: %r", self.path, exc)
        with self.accesses.lock:  # a rolled-back transaction gave its counts back here
            left = len(self.accesses.pending)
        if left:
            _log.error("%s closed with access counts not written (memories: %d)",
                       self.path, left)

    def _refuse(self, ops: list[WriteOp], error: StoreError) -> None:
        """Fail ``ops`` unrun: the access counts they held wait again."""
        self.accesses.release(_holds(ops))
        settle(ops, [(None, error)] * len(ops))

    def _commit(self, conn: sqlite3.Connection, ops: list[WriteOp], accesses: Counts
                ) -> list[Outcome]:
        """Write ``ops`` and ``accesses`` in one transaction; each op's outcome (all failed
        alike when the transaction was rolled back)."""
        committed = False
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = run_ops(conn, ops, self._failed)
            # a won write's counts go with it, a lost one's to a later write or ``accesses``
            self.accesses.settle((op.key, op.held, error is None and result is not None)
                                 for op, (result, error) in zip(ops, outcomes, strict=True)
                                 if op.key is not None and op.held is not None)
            if accesses:
                conn.executemany(
                    sql.RECORD_ACCESS,
                    [(n, at, tenant, rid) for (tenant, rid), (n, at) in accesses.items()],
                )
                self.accesses.committing()  # reads wait for this commit
            conn.execute("COMMIT")
            committed = True
        except BaseException as exc:  # anything: the batch fails, the writer goes on
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            err = StoreError(f"commit failed: {exc!r}"
                             if not isinstance(exc, Exception) else f"commit failed: {exc}",
                             path=self.path)
            if not ops:  # only access counts: no caller hears of it, so say it here
                _log.error("writing access counts to %s failed: %s", self.path, err)
            return [(None, err)] * len(ops)
        finally:  # reads never wait for ever
            if committed:
                self.accesses.done()
            else:  # nothing of it is in the file: its counts wait again
                self.accesses.rolled_back(_holds(ops))
        self.commits += 1
        self.committed_writes += len(ops)
        return outcomes

    def _failed(self, exc: sqlite3.Error) -> StoreError:
        return StoreError(f"write failed: {exc}", path=self.path)


def _holds(ops: list[WriteOp]) -> list[tuple[Key, Hold]]:
    """The access counts ``ops`` hold, by memory."""
    return [(op.key, op.held) for op in ops if op.key is not None and op.held is not None]
