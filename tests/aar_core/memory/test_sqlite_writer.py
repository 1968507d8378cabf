"""The SQLite store's writer thread: access counts a queued write took are never dropped, and
a round that fails outside its transaction fails its own writes, not the thread (real file,
real writer and reader threads; the test holds the file's real write lock)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _flock import blocked_on
from _memory_helpers import opened_store

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock


def rec(memory_id: str, wall: int, count: int = 0) -> MemoryRecord:
    return MemoryRecord(memory_id, {"content": memory_id}, Version(wall, 0, "n"), 1.0, 1.0,
                        access_count=count)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    async with opened_store(tmp_path / "m.db") as opened:
        yield opened


@pytest.fixture
def lock(store: SQLiteStore) -> Iterator[WriteLock]:
    held = WriteLock(store.path)
    held.open()
    yield held
    held.close()


async def counts(store: SQLiteStore, memory_id: str) -> tuple[int, float | None]:
    got = await store.get(memory_id)
    assert got is not None
    return got.access_count, got.last_access


def on_disk(store: SQLiteStore) -> tuple[int, float | None]:
    with sqlite3.connect(store.path) as raw:
        row: tuple[int, float | None] = raw.execute(
            "SELECT access_count, last_access FROM memories").fetchone()
    return row


async def queued(write: Any) -> asyncio.Future[Any]:
    """``write`` started, so that its op is queued (it takes the counts as it queues)."""
    future = asyncio.ensure_future(write)
    await asyncio.sleep(0)  # one step of the task: _put runs up to the queue (nothing to await)
    return future


async def test_a_write_that_loses_leaves_the_counts_it_took_to_be_written(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=5, count=1)) is True
    with lock.held():  # the writer waits: the counts and the write below queue up
        await store.record_access("x", at=20.0)
        await store.record_access("x", at=30.0)
        await blocked_on(store.path + SUFFIX)
        losing = await queued(store.put_if_newer(rec("x", wall=2, count=9)))
        assert store._accesses.pending == {}  # taken by the queued write ...
        assert await counts(store, "x") == (3, 30.0)  # ... and still added to reads
        assert on_disk(store) == (1, None)
    assert await losing is False  # an older record: it loses, and the counts it took ...
    await store.flush()
    assert on_disk(store) == (3, 30.0)  # ... were written as counts, not dropped
    assert await counts(store, "x") == (3, 30.0)
    assert store._accesses.held == {}


async def test_a_write_that_wins_takes_the_counts_with_it_and_leaves_later_ones(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True
    with lock.held():
        await store.record_access("x", at=20.0)  # before the write: its record includes it
        await blocked_on(store.path + SUFFIX)
        winning = await queued(store.put_if_newer(rec("x", wall=7, count=5)))
        await store.record_access("x", at=40.0)  # after it was queued: counted on top
        assert await counts(store, "x") == (2, 40.0)  # the old row, plus both in memory
    assert await winning is True
    await store.flush()
    assert on_disk(store) == (6, 40.0)  # the record's 5, then the later access
    assert await counts(store, "x") == (6, 40.0)
    assert store._accesses.held == {}


async def test_a_rolled_back_batch_leaves_its_counts_to_be_written(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True

    def log(conn: sqlite3.Connection, change: Any) -> int:
        raise RuntimeError("outbox is gone")

    store.change_log = log
    with lock.held():
        await store.record_access("x", at=20.0)  # taken by the logged write below
        await store.record_access("y", at=25.0)  # another memory's: written with the batch
        await blocked_on(store.path + SUFFIX)
        failing = await queued(store.put_logged(rec("x", wall=9, count=4), {"action": "x"}))
    with pytest.raises(StoreError, match="outbox is gone"):
        await failing  # the whole batch was rolled back: nothing of it is in the file
    assert on_disk(store) == (0, None)
    assert await counts(store, "x") == (1, 20.0)  # the count waits again ...
    store.change_log = None
    await store.flush()
    assert on_disk(store) == (1, 20.0)  # ... and the next transaction writes it


async def test_refused_writes_leave_the_counts_they_took(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True
    wal = store._writing.wal
    with lock.held():
        await store.record_access("x", at=20.0)
        await blocked_on(store.path + SUFFIX)
        wal.failed = StoreError("disk gone", path=store.path)  # as after a failed sync
        refused = await queued(store.put_if_newer(rec("x", wall=9)))
    with pytest.raises(StoreError, match="disk gone"):
        await refused
    assert await counts(store, "x") == (1, 20.0)  # back among the counts waiting
    assert store._accesses.held == {}


async def test_a_failing_write_lock_fails_its_round_and_the_writer_goes_on(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True  # the writer is idle after it
    real_flock = fcntl.flock
    failures = [OSError(errno.ENOLCK, "No locks available")]

    def flock(fd: Any, operation: int) -> None:
        if (operation == fcntl.LOCK_EX and failures
                and threading.current_thread().name == "sqlite-store-writer"):
            raise failures.pop()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with caplog.at_level(logging.ERROR, "deep_tree_echo.aar_core.memory.sqlite"):
        async with asyncio.timeout(30):  # a dead writer thread would leave these waiting
            with pytest.raises(StoreError, match=r"write lock failed: .*No locks available"):
                await store.put_if_newer(rec("x", wall=2))
            assert await store.put_if_newer(rec("y", wall=3)) is True  # the next round writes
    assert failures == []
    assert [r.getMessage() for r in caplog.records] == [
        f"writing to {store.path} failed outside its transaction: "
        "OSError(37, 'No locks available')"]
    got = await store.get("x")
    assert got is not None and got.version == Version(1, 0, "n")  # the failed write: not in
    assert await store.count() == 2
