"""Reads of a SQLite store add the access counts not yet written, consistently with their own
snapshot: a read that overlaps the commit of those counts reads again, so a count is neither
missed nor added twice (real file, real writer and reader threads)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from _flock import blocked_on
from _memory_helpers import opened_store

from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version, _sqlite_access
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock


def rec(memory_id: str) -> MemoryRecord:
    return MemoryRecord(memory_id, {"content": memory_id}, Version(1, 0, "n"), 1.0, 1.0)


@pytest.mark.parametrize("optimistic", [3, 1])
async def test_a_read_that_overlaps_the_commit_of_access_counts_reads_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, optimistic: int
) -> None:
    # with one optimistic try, the second read is the one that holds the lock
    monkeypatch.setattr(_sqlite_access, "OPTIMISTIC_READS", optimistic)
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    lock = WriteLock(store.path)
    lock.open()
    try:
        assert await store.put_if_newer(rec("x")) is True
        await store.record_access("x", at=10.0)
        await store.flush()  # one commit of access counts before: each one must be told apart
        held = lock.held()
        held.__enter__()  # the writer cannot commit the count below until we let go
        await store.record_access("x", at=50.0)  # pending: counted only by the overlay
        loop = asyncio.get_running_loop()
        read_once = threading.Event()
        committed = threading.Event()
        calls: list[int] = []

        def fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            rows = conn.execute(f"SELECT {sql.COLUMNS} FROM memories WHERE id = 'x'").fetchall()
            calls.append(rows[0][5])  # access_count as this snapshot has it
            if len(calls) == 1:  # let the counts commit between this read and its overlay
                loop.call_soon_threadsafe(read_once.set)
                assert committed.wait(10.0)
            return rows

        reading = asyncio.ensure_future(store._read_records(fetch, "default"))
        await asyncio.to_thread(read_once.wait, 10.0)
        held.__exit__(None, None, None)
        await store.flush()  # commits the pending count and clears it from the overlay
        held = lock.held()
        held.__enter__()  # and one more access waits, unwritten, for the read to add it
        await store.record_access("x", at=70.0)
        committed.set()
        (got,) = await reading
        assert calls == [1, 2]  # the first snapshot predates the commit: read again
        assert (got.access_count, got.last_access) == (3, 70.0)
        held.__exit__(None, None, None)
    finally:
        lock.close()
        await store.close()


async def test_reads_add_counts_waiting_or_being_written_exactly_once(tmp_path: Path) -> None:
    async with opened_store(tmp_path / "m.db") as store:
        assert await store.put_if_newer(rec("x")) is True
        total = 0
        for at in range(1, 40):
            await store.record_access("x", at=float(at))
            total += 1
            got = await store.get("x")
            assert got is not None and (got.access_count, got.last_access) == (total, at)
            assert [r.access_count for r in [r async for r in store.scan()]] == [total]
        await store.flush()
        got = await store.get("x")
        assert got is not None and (got.access_count, got.last_access) == (total, 39.0)
        lock = WriteLock(store.path)
        lock.open()
        try:
            with lock.held():  # the writer cannot commit: these counts are read from memory
                await store.record_access("x", at=5.0)  # older than the last access
                got = await store.get("x")
                assert got is not None and (got.access_count, got.last_access) == (40, 39.0)
                await store.record_access("x", at=60.0)
                got = await store.get("x")
                assert got is not None and (got.access_count, got.last_access) == (41, 60.0)
        finally:
            lock.close()


async def test_recording_an_access_opens_the_store(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    await store.record_access("x", at=1.0)
    try:
        assert (tmp_path / "m.db").exists()
        got = await store.get("x")
        assert got is None  # counts of a memory never stored go nowhere
    finally:
        await store.close()


async def test_access_counts_alone_wake_the_writer_once_per_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    lock = WriteLock(store.path)
    lock.open()
    try:
        with lock.held():  # the very first thing the store is asked to write
            await store.record_access("x", at=1.0)
            await blocked_on(store.path + SUFFIX)
        await store.flush()
        assert await store.put_if_newer(rec("x")) is True  # carries its own counts: none
        for at in (2.0, 3.0):
            with lock.held():
                await store.record_access("x", at=at)  # nothing else queued: it wakes the writer
                await blocked_on(store.path + SUFFIX)  # ... which now waits for our lock
                await store.record_access("x", at=at)  # a flush is queued already: no second
                assert store._queue.qsize() == 0
            await store.flush()
            with sqlite3.connect(store.path) as raw:
                row = raw.execute("SELECT access_count, last_access FROM memories").fetchone()
            assert row == (2 if at == 2.0 else 4, at)
    finally:
        lock.close()
        await store.close()


async def test_a_read_adds_counts_being_written_and_waiting_alike(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    try:
        assert await store.put_if_newer(rec("x")) is True
        inside, go_on = threading.Event(), threading.Event()

        def hold(conn: sqlite3.Connection) -> None:  # runs in the transaction of the counts
            inside.set()
            assert go_on.wait(10.0)

        lock = WriteLock(store.path)
        lock.open()
        try:
            with lock.held():  # the counts and the op below go in one batch
                await store.record_access("x", at=30.0)
                await store.record_access("x", at=20.0, count=2)
                holding = asyncio.ensure_future(store._write(hold))
                await asyncio.sleep(0)  # a yield, not a wait: the op is queued
        finally:
            lock.close()
        await asyncio.to_thread(inside.wait, 10.0)  # 3 accesses are being written now ...
        await store.record_access("x", at=10.0)  # ... and 2 more wait for the next time
        await store.record_access("x", at=25.0)
        got = await store.get("x")
        assert got is not None and (got.access_count, got.last_access) == (5, 30.0)
        go_on.set()
        await holding
        await store.flush()
        got = await store.get("x")
        assert got is not None and (got.access_count, got.last_access) == (5, 30.0)
    finally:
        go_on.set()
        await store.close()
