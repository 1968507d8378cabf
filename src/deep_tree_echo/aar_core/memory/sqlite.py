"""A durable :class:`MemoryStore` on SQLite (stdlib ``sqlite3``, WAL, synced before each ack).

All writes go through one dedicated writer thread (``_sqlite_writer``) that does *group
commit*: writers that queue up while a transaction is being committed are written together in
the next transaction, and each awaits the commit of its own batch (a batch's consecutive
writes-if-newer are one statement, ``_sqlite_batch``). A write is acknowledged (its
``put_if_newer`` returns) only after ``COMMIT`` returned and the WAL was synced to disk, so
acknowledged writes survive ``kill -9`` and power loss; the sync runs after the file's write
lock is released (``_sqlite_sync``: commits use ``synchronous=NORMAL``), so other processes
write meanwhile.
Reads run on a second connection in their own thread and see every acknowledged write (WAL
readers never block the writer). The WAL is copied back into the file by a thread of its own
(``_sqlite_checkpoint``), not inside a writer's ``COMMIT``.

Search reads impact-ordered postings of the ``_bm25.tokenize`` output of each memory, kept in
step with the records by triggers in the same transaction (see ``_sqlite_schema``), and finds
the exact BM25 top candidates with MaxScore pruning (``_sqlite_topk``), or, for frequent words,
by a class walk over the process's search cache (``_sqlite_postcache``, made exact at each
search by the file's change stamps); they are then ranked by ``ranking.rank`` like every store.
Several processes may open one file: a kernel lock next to it (``sqlite_writelock``: no
sleeping busy handler), then ``BEGIN IMMEDIATE`` serialise their writers, and each process
sees every write another one committed.

With a change log attached (:attr:`SQLiteStore.change_log`: the server's event outbox in the
same file), :meth:`SQLiteStore.put_logged` writes a record and its ``memory.update`` event in
one transaction: a committed change is never without its event, and a failing log rolls the
whole batch back.

Access bookkeeping (``record_access``) is lazy: it is merged in memory and written with the next
transaction, so it costs no fsync of its own and is not durable by itself. Reads add the counts
not yet written, checked against their own snapshot; a queued write of the memory holds them
until it is known to win (``_sqlite_access``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._postcache import DEFAULT_BUDGET, DEFAULT_MIN_DF, PostingsCache
from deep_tree_echo.aar_core.memory._sqlite_access import AccessCounts
from deep_tree_echo.aar_core.memory._sqlite_checkpoint import shared
from deep_tree_echo.aar_core.memory._sqlite_postcache import warm
from deep_tree_echo.aar_core.memory._sqlite_queue import (
    FLUSH,
    STOP,
    ChangeLog,
    LogFailed,
    WriteOp,
)
from deep_tree_echo.aar_core.memory._sqlite_topk import top_candidates
from deep_tree_echo.aar_core.memory._sqlite_writer import Writer
from deep_tree_echo.aar_core.memory.ranking import (
    Candidate,
    RankWeights,
    SearchResult,
    candidate_pool,
    matches_filters,
    rank,
)
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


class SQLiteStore(MemoryStore):
    """SQLite-backed store with group commit; see the module docstring for the guarantees."""

    kind = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_batch: int = 1024,
        scan_chunk: int = 2000,
        search_cache: int = DEFAULT_BUDGET,
        cache_min_df: int = DEFAULT_MIN_DF,
    ) -> None:
        self.path = os.fspath(path)
        #: Frequent terms' postings held for search (``search_cache`` postings at most; 0: none).
        self.search_cache: PostingsCache[int] | None = (
            PostingsCache(budget=search_cache, min_df=cache_min_df) if search_cache > 0 else None
        )
        self.scan_chunk = scan_chunk
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._checkpointer = shared(self.path)  # the WAL copied back outside the lock
        self._reader_pool: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._warming: asyncio.Future[int] | None = None
        self._accesses = AccessCounts()  # lazy access bookkeeping (``_sqlite_access``)
        # the writer thread's state; a thread of its own per open()
        self._writing = Writer(self.path, self._queue, self._accesses, max_batch)
        #: Stores one change event (a ``memory.update`` payload) on the writer's connection,
        #: inside the write's transaction, and returns its id; set by the server when its
        #: event outbox lives in this file (see :meth:`put_logged`). None: changes not logged.
        self.change_log: ChangeLog | None = None
        #: Called (in the writing task) with the id the change log returned, once that
        #: write is acknowledged: what the log did in a transaction that rolled back is not.
        self.change_logged: Callable[[int], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        async with self._open_lock:
            if self._writer is not None:
                return
            if self._closed:
                raise StoreError("SQLiteStore is closed", path=self.path)
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[None] = loop.create_future()
            writer = threading.Thread(
                target=self._writing.run,
                args=(loop, ready),
                name="sqlite-store-writer",
                daemon=True,
            )
            writer.start()
            try:
                await ready
            except Exception as exc:  # whatever stopped the writer from starting
                await asyncio.to_thread(writer.join)
                raise StoreError(f"cannot open SQLite store: {exc}", path=self.path) from exc
            self._writer = writer
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store-reader")
            try:
                self._reader = await loop.run_in_executor(pool, sql.connect, self.path, True)
            except sqlite3.Error as exc:
                pool.shutdown(wait=False)
                raise StoreError(f"cannot open SQLite store: {exc}", path=self.path) from exc
            self._reader_pool = pool
            if self.path != ":memory:":
                self._checkpointer.start(self)
            if self.search_cache is not None:  # first job of the reader thread, not awaited
                self._warming = loop.run_in_executor(pool, self._warm, self._reader)

    def _warm(self, conn: sqlite3.Connection) -> int:
        """Fill the search cache with the most frequent terms (a failure only leaves it cold)."""
        cache = self.search_cache
        try:
            return warm(conn, cache) if cache is not None else 0
        except sqlite3.Error as exc:
            _log.warning("search cache not warmed: %s", exc)
            return 0

    async def close(self) -> None:
        async with self._open_lock:
            self._closed = True
            writer, self._writer = self._writer, None
            pool, self._reader_pool = self._reader_pool, None
            if writer is not None:
                self._queue.put(STOP)
                await asyncio.to_thread(writer.join)
            await asyncio.to_thread(self._checkpointer.stop, self)
            if pool is not None:
                reader, self._reader = self._reader, None
                if reader is not None:
                    await asyncio.get_running_loop().run_in_executor(pool, reader.close)
                pool.shutdown(wait=True)

    @property
    def commits(self) -> int:
        """Transactions committed so far (with :attr:`committed_writes`, the group commit)."""
        return self._writing.commits

    @property
    def committed_writes(self) -> int:
        """Writes in the transactions committed so far."""
        return self._writing.committed_writes

    async def _write(self, fn: Callable[[sqlite3.Connection], _T], **put: Any) -> _T:
        """Queue ``fn`` for the writer; ``put``: a write-if-newer's batching fields of
        :class:`WriteOp` (``row``, ``key``, ``then``)."""
        if self._writer is None:
            await self.open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        key = put.get("key")
        if key is not None:
            # The record carries the whole truth, access counts included: accesses not yet
            # written happened before this write and are folded into it by the caller. Its
            # hold keeps them until the writer knows whether it won (``_sqlite_access``).
            put["held"] = self._accesses.hold(key)
        self._queue.put(WriteOp(fn, future, loop, **put))
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

    async def _read_records(
        self, fetch: Callable[[sqlite3.Connection], list[tuple[Any, ...]]], tenant: str
    ) -> list[MemoryRecord]:
        """The rows ``fetch`` reads, as records with the access counts not yet written added
        (against the read's own snapshot: :meth:`AccessCounts.read`)."""
        return await self._read(lambda conn: self._accesses.read(conn, fetch, tenant))

    # -- MemoryStore API -------------------------------------------------------------------

    async def get(self, memory_id: str, *, tenant: str = DEFAULT_TENANT) -> MemoryRecord | None:
        def fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                f"SELECT {sql.COLUMNS} FROM memories WHERE tenant = ? AND id = ?",
                (tenant, memory_id),
            ).fetchall()

        found = await self._read_records(fetch, tenant)
        return found[0] if found else None

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        return await self._put(record, tenant, None) is not None

    @property
    def logs_changes(self) -> bool:
        return self.change_log is not None

    async def put_logged(
        self, record: MemoryRecord, change: Mapping[str, Any], *, tenant: str = DEFAULT_TENANT
    ) -> int | None:
        log = self.change_log
        if log is None:
            raise StoreError("this SQLite store has no change log attached", path=self.path)

        # the log runs in the writing task's context: it may store what that task declared
        # for the same transaction (the turn's reply, ``aar_core._reply``)
        context = contextvars.copy_context()

        def logged(conn: sqlite3.Connection) -> int:
            try:
                return context.run(log, conn, change)
            except Exception as exc:
                raise LogFailed(f"logging the change of {record.id!r} failed: {exc}") from exc

        event_id = await self._put(record, tenant, logged)
        confirm = self.change_logged
        if event_id is not None and confirm is not None:
            confirm(event_id)
        return event_id

    async def _put(self, record: MemoryRecord, tenant: str,
                   then: Callable[[sqlite3.Connection], int] | None) -> int | None:
        """Write ``record`` if newer, then ``then`` in its transaction: None if it lost."""
        params = sql.write_params(tenant, record)

        def put(conn: sqlite3.Connection) -> int | None:
            if conn.execute(sql.PUT_IF_NEWER, params).rowcount != 1:
                return None
            return 0 if then is None else then(conn)

        row = sql.batch_row(params)  # for a batch's one statement (_sqlite_batch)
        return await self._write(put, row=row, key=(tenant, record.id), then=then)

    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        if self._writer is None:
            await self.open()
        if self._accesses.add((tenant, memory_id), count, at):
            self._queue.put(FLUSH)

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = DEFAULT_TENANT
    ) -> list[str]:
        params = [(tenant, rid, version.to_str()) for rid, version in expected.items()]
        if not params:
            return []

        def delete(conn: sqlite3.Connection) -> list[str]:
            # A savepoint keeps this purge all-or-nothing inside the shared batch transaction.
            conn.execute("SAVEPOINT purge")
            try:
                removed = [p[1] for p in params if conn.execute(sql.PURGE, p).rowcount]
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO purge")
                    conn.execute("RELEASE purge")
                raise
            conn.execute("RELEASE purge")
            return removed

        removed = await self._write(delete)
        # access counts for a removed row have nowhere to go
        self._accesses.forget([(tenant, rid) for rid in removed])
        return removed

    async def purge_candidates(
        self, cutoff: float, *, tenant: str = DEFAULT_TENANT, limit: int = 1000
    ) -> dict[str, Version]:
        def fetch(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(sql.PURGE_CANDIDATES, (tenant, cutoff, limit)).fetchall()
            if len(rows) < limit:
                more = (tenant, cutoff, limit - len(rows))
                rows += conn.execute(sql.PURGE_EXPIRED, more).fetchall()
            return rows

        return {rid: Version.parse(v) for rid, v in await self._read(fetch)}

    async def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        after: str | None = None  # keyset pagination: each chunk is one short read
        while True:

            def chunk(conn: sqlite3.Connection, after: str | None = after) -> list[tuple[Any, ...]]:
                where, params = ("", ()) if after is None else ("AND id > ?", (after,))
                cur = conn.execute(
                    f"SELECT {sql.COLUMNS} FROM memories WHERE tenant = ? {where} "
                    "ORDER BY id LIMIT ?",
                    (tenant, *params, self.scan_chunk),
                )
                return cur.fetchall()

            records = await self._read_records(chunk, tenant)
            for record in records:
                yield record
            if len(records) < self.scan_chunk:
                return
            after = records[-1].id

    async def count(self, *, tenant: str = DEFAULT_TENANT, live_at: float | None = None) -> int:
        def fetch(conn: sqlite3.Connection) -> int:
            if live_at is None:
                query, params = "SELECT COUNT(*) FROM memories WHERE tenant = ?", (tenant,)
            else:
                query = (
                    "SELECT COUNT(*) FROM memories WHERE tenant = ? AND deleted = 0 "
                    "AND (expires_at IS NULL OR expires_at > ?)"
                )
                params = (tenant, live_at)  # type: ignore[assignment]
            return int(conn.execute(query, params).fetchone()[0])

        return await self._read(fetch)

    async def tenants(self) -> list[str]:
        def fetch(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT DISTINCT tenant FROM memories ORDER BY tenant")
            return [row[0] for row in rows]

        return await self._read(fetch)

    async def search(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        weights: RankWeights,
        now: float,
        filters: Mapping[str, Any] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[SearchResult]:
        if limit <= 0:
            return []
        pool = candidate_pool(limit)
        hex_query = sql.encode_terms(terms)

        def fetch(conn: sqlite3.Connection) -> list[Candidate]:
            if hex_query:
                return top_candidates(
                    conn, hex_query, tenant=tenant, pool=pool, now=now, filters=filters,
                    cache=self.search_cache,
                )
            candidates = []
            for rid, raw, touched, importance in conn.execute(sql.SEARCH_ALL, (tenant, now)):
                data = json.loads(raw) if isinstance(raw, str) else raw
                if not filters or matches_filters(data, filters):
                    candidates.append(Candidate(rid, data, 0.0, touched, importance))
            return candidates

        candidates = await self._read(fetch)
        return rank(candidates, weights=weights, now=now, limit=limit)

    async def flush(self) -> None:
        """Wait until every write queued so far (and pending access counts) is committed."""

        def noop(conn: sqlite3.Connection) -> None:
            return None

        await self._write(noop)

    def __repr__(self) -> str:
        return f"SQLiteStore(path={self.path!r})"
