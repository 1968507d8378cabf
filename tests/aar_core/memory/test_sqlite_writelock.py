"""The SQLite write lock: a kernel lock that every writer of one file takes around a write
transaction, instead of SQLite's sleeping busy handler (real files, real threads)."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

import pytest
from _flock import blocked_on

from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock


def free(path: str) -> bool:
    """Whether nobody holds the lock file at ``path`` (a non-blocking probe of our own)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_two_write_locks_of_one_file_exclude_each_other(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    a, b = WriteLock(db), WriteLock(db)
    a.open()
    b.open()
    try:
        assert a.path == db + SUFFIX and os.path.exists(a.path)
        with a.held():
            assert not free(db + SUFFIX)
        assert free(db + SUFFIX)
        with b.held():
            assert not free(db + SUFFIX)
    finally:
        a.close()
        b.close()


def test_an_in_memory_database_has_no_lock_file() -> None:
    lock = WriteLock(":memory:")
    lock.open()
    with lock.held():
        assert lock.path is None
    lock.close()


async def test_the_store_writes_only_under_the_files_write_lock(tmp_path: Path) -> None:
    db = str(tmp_path / "m.db")
    store = SQLiteStore(db)
    await store.open()
    lock = WriteLock(db)
    lock.open()
    try:
        rec = MemoryRecord("a", {"content": "x"}, Version(1, 0, "n"), 1.0, 1.0)
        with lock.held():
            put = asyncio.ensure_future(store.put_if_newer(rec))
            await blocked_on(db + SUFFIX)  # the store's writer waits for our lock
            assert not put.done()
            assert await store.get("a") is None
        assert await put is True
        assert (await store.get("a")) is not None
    finally:
        lock.close()
        await store.close()


async def test_a_lock_file_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    from deep_tree_echo.aar_core.errors import StoreError

    db = tmp_path / "m.db"
    os.mkdir(str(db) + SUFFIX)  # a directory where the lock file should be
    store = SQLiteStore(db)
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        await store.open()
    await store.close()


async def test_a_new_file_is_switched_to_wal_only_under_the_lock(tmp_path: Path) -> None:
    """SQLite refuses at once ("database is locked") to switch a file to WAL while another
    process does: processes opening one new file must take turns, under the write lock."""
    from deep_tree_echo.server.outbox.sqlite import SQLiteOutbox

    for name, make in (("s.db", SQLiteStore), ("o.db", SQLiteOutbox)):
        db = str(tmp_path / name)
        lock = WriteLock(db)
        lock.open()
        opened = make(db)
        try:
            with lock.held():
                opening = asyncio.ensure_future(opened.open())
                await blocked_on(db + SUFFIX)  # its writer waits for our lock ...
                assert not opening.done()
                assert not (tmp_path / name).exists()  # ... before it touched the file
            await opening
            header = (tmp_path / name).read_bytes()[:20]
            assert header[18:20] == b"\x02\x02"  # WAL: file format read/write versions 2
        finally:
            lock.close()
            await opened.close()
