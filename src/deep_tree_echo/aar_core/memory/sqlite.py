"""A durable :class:`MemoryStore` on SQLite (stdlib ``sqlite3``, WAL, ``synchronous=FULL``).

All writes go through one dedicated writer thread that does *group commit*: writers that queue
up while a transaction is being committed are written together in the next transaction, and
each awaits the commit of its own batch. A write is acknowledged (its ``put_if_newer``
returns) only after ``COMMIT`` returned, so acknowledged writes survive ``kill -9`` and, with
``synchronous=FULL``, power loss. Reads run on a second connection in their own thread and see
every acknowledged write (WAL readers never block the writer).

Access bookkeeping (``record_access``) is lazy: it is merged in memory and written with the next
transaction, so it costs no fsync of its own and is not durable by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import MemoryStore

_T = TypeVar("_T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS memories (
    id           TEXT PRIMARY KEY NOT NULL,
    version      TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    last_access  REAL,
    expires_at   REAL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    extra        TEXT
) WITHOUT ROWID
"""

_COLUMNS: Final = (
    "id, version, data, created_at, updated_at, access_count, last_access, expires_at, deleted, "
    "extra"
)

# Last-writer-wins in one statement: the row is replaced only when the incoming version is
# newer (``Version.to_str`` sorts like the version tuple), so concurrent writers cannot lose it.
_PUT_IF_NEWER: Final = f"""
INSERT INTO memories ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(id) DO UPDATE SET
    version = excluded.version, data = excluded.data, created_at = excluded.created_at,
    updated_at = excluded.updated_at, access_count = excluded.access_count,
    last_access = excluded.last_access, expires_at = excluded.expires_at,
    deleted = excluded.deleted, extra = excluded.extra
WHERE excluded.version > memories.version
"""

_PURGE: Final = "DELETE FROM memories WHERE id = ? AND version = ?"

_RECORD_ACCESS: Final = """
UPDATE memories SET access_count = access_count + ?,
    last_access = MAX(COALESCE(last_access, 0.0), ?)
WHERE id = ?
"""


@dataclass(slots=True)
class _WriteOp:
    """One queued write: run ``fn`` inside the batch transaction, then resolve ``future``."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP: Final = object()
_FLUSH: Final = object()


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _row_to_record(row: tuple[Any, ...]) -> MemoryRecord:
    (rid, version, data, created, updated, count, last, expires, deleted, extra) = row
    return MemoryRecord(
        id=rid,
        data=json.loads(data),
        version=Version.parse(version),
        created_at=created,
        updated_at=updated,
        access_count=count,
        last_access=last,
        expires_at=expires,
        deleted=bool(deleted),
        extra=json.loads(extra) if extra else {},
    )


class SQLiteStore(MemoryStore):
    """SQLite-backed store with group commit; see the module docstring for the guarantees."""

    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_batch: int = 1024,
        scan_chunk: int = 2000,
    ) -> None:
        self.path = os.fspath(path)
        self.max_batch = max_batch
        self.scan_chunk = scan_chunk
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        # Lazy access bookkeeping: id -> (count, latest access). ``_pending`` is waiting for
        # the next transaction, ``_inflight`` is in the transaction being committed.
        self._access_lock = threading.Lock()
        self._pending: dict[str, tuple[int, float]] = {}
        self._inflight: dict[str, tuple[int, float]] = {}
        self._flush_queued = False
        #: Number of transactions committed and writes in them (exposes the group commit).
        self.commits = 0
        self.committed_writes = 0

    # -- lifecycle -----------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and self.path != ":memory:":
            raise sqlite3.OperationalError(f"could not enable WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    async def open(self) -> None:
        async with self._open_lock:
            if self._writer is not None:
                return
            if self._closed:
                raise StoreError("SQLiteStore is closed", path=self.path)
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            writer = threading.Thread(
                target=self._writer_main,
                args=(loop, ready),
                name="sqlite-store-writer",
                daemon=True,
            )
            writer.start()
            try:
                await ready
            except sqlite3.Error as exc:
                await asyncio.to_thread(writer.join)
                raise StoreError(f"cannot open SQLite store: {exc}", path=self.path) from exc
            self._writer = writer
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store-reader")
            try:
                self._reader = await loop.run_in_executor(pool, self._connect)
            except sqlite3.Error as exc:
                pool.shutdown(wait=False)
                raise StoreError(f"cannot open SQLite store: {exc}", path=self.path) from exc
            self._reader_pool = pool

    async def close(self) -> None:
        async with self._open_lock:
            self._closed = True
            writer, self._writer = self._writer, None
            pool, self._reader_pool = self._reader_pool, None
            if writer is not None:
                self._queue.put(_STOP)
                await asyncio.to_thread(writer.join)
            if pool is not None:
                reader, self._reader = self._reader, None
                if reader is not None:
                    await asyncio.get_running_loop().run_in_executor(pool, reader.close)
                pool.shutdown(wait=True)

    # -- writer thread ---------------------------------------------------------------------

    def _writer_main(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            loop.call_soon_threadsafe(_resolve, ready, None, exc)
            return
        loop.call_soon_threadsafe(_resolve, ready, None, None)
        try:
            stop = False
            while not stop:
                batch = [self._queue.get()]
                while len(batch) < self.max_batch:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                ops = [item for item in batch if isinstance(item, _WriteOp)]
                stop = any(item is _STOP for item in batch)
                accesses = self._take_accesses()
                if ops or accesses:
                    self._commit(conn, ops, accesses)
            # Anything queued after the stop marker is refused, never left hanging.
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _WriteOp):
                    self._settle(item, None, StoreError("SQLiteStore is closed", path=self.path))
        finally:
            conn.close()

    def _take_accesses(self) -> dict[str, tuple[int, float]]:
        with self._access_lock:
            self._inflight, self._pending = self._pending, {}
            self._flush_queued = False
            return self._inflight

    @staticmethod
    def _settle(op: _WriteOp, result: Any, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop was closed under us
            op.loop.call_soon_threadsafe(_resolve, op.future, result, error)

    def _commit(
        self,
        conn: sqlite3.Connection,
        ops: list[_WriteOp],
        accesses: dict[str, tuple[int, float]],
    ) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                try:
                    outcomes.append((op.fn(conn), None))
                except sqlite3.Error as exc:
                    if not conn.in_transaction:  # SQLite rolled the whole batch back
                        raise
                    outcomes.append((None, StoreError(f"write failed: {exc}", path=self.path)))
            if accesses:
                conn.executemany(
                    _RECORD_ACCESS, [(n, at, rid) for rid, (n, at) in accesses.items()]
                )
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            err = StoreError(f"commit failed: {exc}", path=self.path)
            for op in ops:
                self._settle(op, None, err)
            return
        finally:
            with self._access_lock:
                self._inflight = {}
        self.commits += 1
        self.committed_writes += len(ops)
        for op, (result, error) in zip(ops, outcomes, strict=True):
            self._settle(op, result, error)

    async def _write(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._writer is None:
            await self.open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._queue.put(_WriteOp(fn, future, loop))
        return await future

    # -- reader ----------------------------------------------------------------------------

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._reader_pool is None:
            await self.open()
        pool, reader = self._reader_pool, self._reader
        if pool is None or reader is None:
            raise StoreError("SQLiteStore is closed", path=self.path)
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, reader)
        except sqlite3.Error as exc:
            raise StoreError(f"read failed: {exc}", path=self.path) from exc

    def _overlay(self, rec: MemoryRecord) -> MemoryRecord:
        with self._access_lock:
            for source in (self._inflight, self._pending):
                hit = source.get(rec.id)
                if hit is not None:
                    rec.access_count += hit[0]
                    if rec.last_access is None or hit[1] > rec.last_access:
                        rec.last_access = hit[1]
        return rec

    # -- MemoryStore API -------------------------------------------------------------------

    async def get(self, memory_id: str) -> MemoryRecord | None:
        def fetch(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            cur = conn.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (memory_id,))
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        row = await self._read(fetch)
        return None if row is None else self._overlay(_row_to_record(row))

    async def put_if_newer(self, record: MemoryRecord) -> bool:
        params = (
            record.id,
            record.version.to_str(),
            json.dumps(record.data, separators=(",", ":"), allow_nan=False),
            record.created_at,
            record.updated_at,
            record.access_count,
            record.last_access,
            record.expires_at,
            int(record.deleted),
            json.dumps(record.extra, separators=(",", ":")) if record.extra else None,
        )
        # The record carries the whole truth, access counts included: accesses not yet
        # written happened before this write and are folded into it by the caller.
        with self._access_lock:
            self._pending.pop(record.id, None)

        def put(conn: sqlite3.Connection) -> bool:
            return conn.execute(_PUT_IF_NEWER, params).rowcount == 1

        return await self._write(put)

    async def record_access(self, memory_id: str, at: float, count: int = 1) -> None:
        if self._writer is None:
            await self.open()
        with self._access_lock:
            n, last = self._pending.get(memory_id, (0, at))
            self._pending[memory_id] = (n + count, max(last, at))
            wake = not self._flush_queued
            self._flush_queued = True
        if wake:
            self._queue.put(_FLUSH)

    async def purge(self, expected: Mapping[str, Version]) -> list[str]:
        params = [(rid, version.to_str()) for rid, version in expected.items()]
        if not params:
            return []

        def delete(conn: sqlite3.Connection) -> list[str]:
            # A savepoint keeps this purge all-or-nothing inside the shared batch transaction.
            conn.execute("SAVEPOINT purge")
            try:
                removed = [rid for rid, v in params if conn.execute(_PURGE, (rid, v)).rowcount]
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO purge")
                    conn.execute("RELEASE purge")
                raise
            conn.execute("RELEASE purge")
            return removed

        removed = await self._write(delete)
        with self._access_lock:  # access counts for a removed row have nowhere to go
            for rid in removed:
                self._pending.pop(rid, None)
        return removed

    async def scan(self) -> AsyncIterator[MemoryRecord]:
        after: str | None = None  # keyset pagination: each chunk is one short read
        while True:

            def chunk(conn: sqlite3.Connection, after: str | None = after) -> list[tuple[Any, ...]]:
                where, params = ("", ()) if after is None else ("WHERE id > ?", (after,))
                cur = conn.execute(
                    f"SELECT {_COLUMNS} FROM memories {where} ORDER BY id LIMIT ?",
                    (*params, self.scan_chunk),
                )
                return cur.fetchall()

            rows = await self._read(chunk)
            for row in rows:
                yield self._overlay(_row_to_record(row))
            if len(rows) < self.scan_chunk:
                return
            after = rows[-1][0]

    async def count(self) -> int:
        def fetch(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0])

        return await self._read(fetch)

    async def flush(self) -> None:
        """Wait until every write queued so far (and pending access counts) is committed."""

        def noop(conn: sqlite3.Connection) -> None:
            return None

        await self._write(noop)

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self.path!r})"
