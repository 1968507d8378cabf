"""The outbox in the SQLite store's file: table ``events`` next to ``memories``.

A ``memory_update`` event is written by the memory store itself, in the transaction of the
change it reports (:meth:`SQLiteOutbox.insert_on`, attached by the relay): a committed change
always has its event, and the request waits for one commit less. Other events are appended on
the outbox's own connection with ``synchronous=NORMAL`` (WAL): such an event survives a crash
of the process, not a power loss. SQLite serialises
writers, so ids (``AUTOINCREMENT``: never reused) become visible in increasing order. Other
processes notice new events through ``PRAGMA data_version``, checked every
``poll_interval`` seconds by one thread per process (a local append wakes its tailer at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from deep_tree_echo.aar_core.memory._sqlite_checkpoint import WRITER_AUTOCHECKPOINT, shared
from deep_tree_echo.aar_core.memory.sqlite import SQLiteStore
from deep_tree_echo.aar_core.memory.sqlite_writelock import WriteLock
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.server.errors import OutboxError
from deep_tree_echo.server.outbox._base import (
    READ_BATCH,
    EventOutbox,
    OutboxEvent,
    Row,
    decode_payload,
)

logger = logging.getLogger("deep_tree_echo.server.outbox")
_T = TypeVar("_T")

_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS events (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant     TEXT NOT NULL DEFAULT 'default',
        session_id TEXT,
        kind       TEXT NOT NULL,
        payload    TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_by_session ON events (tenant, session_id, id)",
    "CREATE TABLE IF NOT EXISTS events_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
#: A batch of events given as one JSON array of ``[kind, session_id, payload, created_at,
#: tenant]`` rows, inserted in array order by one statement.
_INSERT_MANY: Final = """
INSERT INTO events (kind, session_id, payload, created_at, tenant)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4
FROM json_each(?) ORDER BY key
"""
_INSERT_ONE: Final = (
    "INSERT INTO events (kind, session_id, payload, created_at, tenant) VALUES (?, ?, ?, ?, ?)"
)
_COLUMNS: Final = "id, kind, session_id, payload, created_at, tenant"


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _event(row: tuple[Any, ...]) -> OutboxEvent:
    return OutboxEvent(int(row[0]), str(row[1]), row[2], decode_payload(row[3]), float(row[4]),
                       str(row[5]))


class SQLiteOutbox(EventOutbox):
    """Outbox table in the SQLite file at ``path``; see the module docstring."""

    kind = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, poll_interval: float = 0.02) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.poll_interval = poll_interval
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        #: Shared with the memory store's writer of the same file (no sleeping busy waits).
        self._lock = WriteLock(self.path)
        self._checkpointer = shared(self.path)  # the WAL copied back outside the lock

    async def open(self) -> None:
        if self._writer is not None:
            return
        loop = asyncio.get_running_loop()
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="outbox-writer")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="outbox-reader")
        try:
            self._writer = await loop.run_in_executor(self._write_pool, self._open_writer)
            self._reader = await loop.run_in_executor(
                self._read_pool, _connect, self.path, "NORMAL"
            )
        except (sqlite3.Error, OSError) as exc:
            await self.close()
            raise OutboxError(f"cannot open the event outbox in {self.path}: {exc}") from exc
        # The watch's baseline is taken before open() returns: a change committed right
        # after it (by any process) must wake this outbox's tailer.
        try:
            watch = await loop.run_in_executor(self._read_pool, self._watch_connection)
        except sqlite3.Error as exc:
            await self.close()
            raise OutboxError(f"cannot open the event outbox in {self.path}: {exc}") from exc
        self._watcher = threading.Thread(
            target=self._watch, args=(loop, *watch), name="outbox-watch", daemon=True
        )
        self._watcher.start()
        self._checkpointer.start(self)

    def _open_writer(self) -> sqlite3.Connection:
        self._lock.open()
        with self._lock.held():  # switching a new file to WAL does not wait: take turns
            conn = _connect(self.path, "NORMAL")
            try:
                conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
                conn.execute("BEGIN IMMEDIATE")  # several workers may create the schema at once
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                conn.close()
                raise
        return conn

    def _watch_connection(self) -> tuple[sqlite3.Connection, int]:
        """The change watch's own connection and its first ``PRAGMA data_version``."""
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            return conn, int(conn.execute("PRAGMA data_version").fetchone()[0])
        except BaseException:
            conn.close()
            raise

    def _watch(
        self, loop: asyncio.AbstractEventLoop, conn: sqlite3.Connection | None, last: int
    ) -> None:
        """Wake the tailer when another connection committed (``PRAGMA data_version``).

        A failing check (a busy or briefly unreadable file) never ends the watch: the
        connection is opened again and the tailer woken once, in case a change was missed.
        """
        try:
            while not self._stop.is_set():
                try:
                    if conn is None:  # after a failed check (which woke the tailer once)
                        conn, version = self._watch_connection()
                    else:
                        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                except sqlite3.Error as exc:
                    logger.debug("event outbox change check on %s failed: %s", self.path, exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                    conn, version = None, -1
                if version != last:
                    with contextlib.suppress(RuntimeError):  # loop closed under us
                        loop.call_soon_threadsafe(self.changed.set)
                    last = version
                self._stop.wait(self.poll_interval)
        finally:
            if conn is not None:
                conn.close()

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(self._checkpointer.stop, self)
        self._stop.set()
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            await asyncio.to_thread(watcher.join)
        for pool, conn in ((self._write_pool, self._writer), (self._read_pool, self._reader)):
            if pool is None:
                continue
            if conn is not None:
                await asyncio.get_running_loop().run_in_executor(pool, conn.close)
            pool.shutdown(wait=True)
        self._writer = self._reader = None
        self._write_pool = self._read_pool = None
        self._lock.close()

    async def _run(self, pool: ThreadPoolExecutor | None, fn: Any, *args: Any) -> Any:
        if pool is None:
            raise OutboxError("the event outbox is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except sqlite3.Error as exc:
            raise OutboxError(f"event outbox in {self.path}: {exc}") from exc

    def _transaction(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``body`` in one write transaction, under the file's write lock (writer thread)."""
        conn = self._writer
        assert conn is not None
        with self._lock.held():
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = body(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        return out

    def shares_file_with(self, store: SQLiteStore) -> bool:
        """True when ``store`` keeps its memories in this outbox's file."""
        return os.path.realpath(store.path) == os.path.realpath(self.path)

    @staticmethod
    def insert_on(conn: sqlite3.Connection, row: Row) -> int:
        """Append one event on ``conn`` (the memory store's writer, this file), inside the
        transaction the caller has open; its id. The caller holds the file's write lock, so
        ids still become visible in increasing order."""
        return int(conn.execute(_INSERT_ONE, row).lastrowid or 0)

    async def _insert(self, rows: list[Row]) -> list[int]:
        text = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)

        def insert() -> list[int]:
            conn = self._writer
            assert conn is not None
            # One statement is its own transaction: the lock is held for one call into SQLite.
            with self._lock.held():
                last = int(conn.execute(_INSERT_MANY, (text,)).lastrowid or 0)
            # AUTOINCREMENT numbers the statement's rows one after the other, in order.
            return list(range(last - len(rows) + 1, last + 1))

        ids: list[int] = await self._run(self._write_pool, insert)
        return ids

    async def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def fetch() -> list[tuple[Any, ...]]:
            assert self._reader is not None
            return self._reader.execute(sql, params).fetchall()

        rows: list[tuple[Any, ...]] = await self._run(self._read_pool, fetch)
        return rows

    async def read(self, after: int, *, session_id: str | None = None,
                   tenant: str = DEFAULT_TENANT, upto: int | None = None,
                   limit: int = READ_BATCH) -> list[OutboxEvent]:
        where, params = ["id > ?"], [after]
        if session_id is not None:
            where.append("tenant = ? AND session_id = ?")
            params.extend((tenant, session_id))  # type: ignore[arg-type]
        if upto is not None:
            where.append("id <= ?")
            params.append(upto)
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_event(row) for row in rows]

    async def head(self) -> int:
        rows = await self._query(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)", ()
        )
        return int(rows[0][0])

    async def purged_through(self) -> int:
        rows = await self._query(
            "SELECT COALESCE((SELECT value FROM events_meta WHERE key = 'purged_through'), 0)", ()
        )
        return int(rows[0][0])

    async def purge(self, before: float) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            last = conn.execute(
                "SELECT MAX(id) FROM events WHERE created_at < ?", (before,)
            ).fetchone()[0]
            if last is None:
                return 0
            removed = int(conn.execute("DELETE FROM events WHERE id <= ?", (last,)).rowcount)
            conn.execute(
                "INSERT INTO events_meta (key, value) VALUES ('purged_through', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
                (last,),
            )
            return removed

        removed: int = await self._run(self._write_pool, self._transaction, delete)
        return removed
