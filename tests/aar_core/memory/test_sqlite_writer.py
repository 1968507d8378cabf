"""The SQLite store's writer thread: access counts a queued write took are never dropped, and
a round that fails outside its transaction fails its own writes, not the thread (real file,
real writer and reader threads; the test holds the file's real write lock)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _flock import blocked_on
from _memory_helpers import opened_store

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._sqlite_access import Hold
from deep_tree_echo.aar_core.memory._sqlite_queue import WriteOp
from deep_tree_echo.aar_core.memory._sqlite_writer import Writer
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


@contextlib.asynccontextmanager
async def small_batches(path: Path, max_batch: int
                        ) -> AsyncIterator[tuple[SQLiteStore, WriteLock]]:
    """An open store whose rounds take at most ``max_batch`` items, and its file's write lock
    for the test to hold."""
    async with opened_store(path) as store:
        store._writing.max_batch = max_batch
        lock = WriteLock(store.path)
        lock.open()
        try:
            yield store, lock
        finally:
            lock.close()


def fail_writer_lock_once(
    monkeypatch: pytest.MonkeyPatch, when: Callable[[], bool] = lambda: True
) -> list[OSError]:
    """Make the writer thread's next ``flock`` taken while ``when()`` fail with ENOLCK (the
    real call otherwise); the returned list is empty once it has."""
    real_flock = fcntl.flock
    failures = [OSError(errno.ENOLCK, "No locks available")]

    def flock(fd: Any, operation: int) -> None:
        if (operation == fcntl.LOCK_EX and failures and when()
                and threading.current_thread().name == "sqlite-store-writer"):
            raise failures.pop()
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    return failures


async def counts(store: SQLiteStore, memory_id: str) -> tuple[int, float | None]:
    got = await store.get(memory_id)
    assert got is not None
    return got.access_count, got.last_access


def on_disk(store: SQLiteStore, memory_id: str = "x") -> tuple[int, float | None]:
    with sqlite3.connect(store.path) as raw:
        row: tuple[int, float | None] = raw.execute(
            "SELECT access_count, last_access FROM memories WHERE id = ?", (memory_id,)
        ).fetchone()
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
    with lock.held():  # the writer waits: the counts and the writes below queue up
        await store.record_access("x", at=20.0)
        await store.record_access("x", at=30.0)
        await blocked_on(store.path + SUFFIX)
        other = await queued(store.put_if_newer(rec("y", wall=1)))  # holds no count
        losing = await queued(store.put_if_newer(rec("x", wall=2, count=9)))
        assert store._accesses.pending == {}  # taken by the queued write ...
        assert await counts(store, "x") == (3, 30.0)  # ... and still added to reads
        assert on_disk(store) == (1, None)
    assert (await other, await losing) == (True, False)  # older: it loses, and its counts ...
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
    assert on_disk(store) == (6, 40.0)  # the record's 5, then (same transaction) the later one
    assert await counts(store, "x") == (6, 40.0)
    assert store._accesses.held == {} and store._accesses.pending == {}


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
    assert await store.put_if_newer(rec("y", wall=1)) is True
    wal = store._writing.wal
    with lock.held():
        await store.record_access("x", at=20.0)
        await store.record_access("y", at=25.0)  # not held by any write: taken, not written
        await blocked_on(store.path + SUFFIX)
        wal.failed = StoreError("disk gone", path=store.path)  # as after a failed sync
        refused = await queued(store.put_if_newer(rec("x", wall=9)))
    with pytest.raises(StoreError, match="disk gone"):
        await refused
    assert await counts(store, "x") == (1, 20.0)  # back among the counts waiting
    assert await counts(store, "y") == (1, 25.0)
    assert store._accesses.held == {}
    async with asyncio.timeout(30):  # each later round refuses too, and the writer goes on
        for wall in (10, 11):
            with pytest.raises(StoreError, match="disk gone"):
                await store.put_if_newer(rec("x", wall=wall))
    assert on_disk(store) == (0, None)


async def test_writes_queued_after_the_last_round_are_refused_and_their_counts_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    late: list[asyncio.Future[Any]] = []
    loop = asyncio.get_running_loop()
    real_round = Writer._round

    def round_then_queue(self: Writer, conn: Any, lock: Any, batch: list[object]) -> bool:
        stop = real_round(self, conn, lock, batch)
        if stop:  # an access and a write too late for the last round (racing close())
            store._accesses.add(("default", "x"), 1, 30.0)
            held = store._accesses.hold(("default", "x"))
            late.append(loop.create_future())
            self.queue.put(WriteOp(lambda c: None, late[0], loop, key=("default", "x"),
                                   held=held))
        return stop

    monkeypatch.setattr(Writer, "_round", round_then_queue)  # before the thread starts
    await store.open()
    assert store.commits == 0  # opening (and migrating) the file is no commit of writes
    assert await store.put_if_newer(rec("x", wall=1)) is True
    async with asyncio.timeout(30):
        await store.close()
        with pytest.raises(StoreError, match=r"^SQLiteStore is closed$") as refused:
            await late[0]
    assert refused.value.details == {"path": store.path}
    assert store._accesses.held == {} and store._accesses.pending == {}
    assert on_disk(store) == (1, 30.0)  # held, given back, then written as the writer stopped


class Boom(BaseException):
    """Not an ``Exception``: what a broken change log or op might still raise."""


def boom(conn: sqlite3.Connection) -> None:
    raise Boom("broken")


async def last_round_rolled_back(store: SQLiteStore, lock: WriteLock) -> None:
    """Close ``store`` with a last round (a write holding an access count of "x", a write that
    raises, the stop marker) whose transaction is rolled back: the count waits again."""
    assert await store.put_if_newer(rec("x", wall=1)) is True
    with lock.held():
        await store.record_access("x", at=20.0)
        await blocked_on(store.path + SUFFIX)
        writes = [await queued(store.put_if_newer(rec("x", wall=9, count=1))),
                  await queued(store._write(boom))]
        closing = await queued(store.close())  # queues the stop marker, then waits
    for write in writes:
        with pytest.raises(StoreError, match="commit failed"):
            await write
    await closing


async def test_counts_the_last_round_gives_back_are_written_as_the_writer_stops(
    store: SQLiteStore, lock: WriteLock, caplog: pytest.LogCaptureFixture
) -> None:
    await last_round_rolled_back(store, lock)
    assert on_disk(store) == (1, 20.0)  # no later round: written as the writer stopped
    assert store._accesses.pending == {}
    assert "not written" not in caplog.text


async def test_counts_left_unwritten_at_close_are_logged(
    store: SQLiteStore, lock: WriteLock, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the last counts' own transaction fails too (the last round fails before this statement)
    monkeypatch.setattr(sql, "RECORD_ACCESS", "INSERT INTO no_such_table VALUES (?, ?, ?, ?)")
    await last_round_rolled_back(store, lock)
    assert on_disk(store) == (0, None)
    assert errors(caplog) == [
        f"writing access counts to {store.path} failed: "
        "commit failed: no such table: no_such_table",
        f"{store.path} closed with access counts not written (memories: 1)",
    ]


async def test_a_lock_that_fails_for_the_last_counts_is_logged(
    store: SQLiteStore, lock: WriteLock, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = fail_writer_lock_once(monkeypatch, when=lambda: store._closed)  # the last flock
    await last_round_rolled_back(store, lock)
    assert failures == []
    assert on_disk(store) == (0, None)
    assert errors(caplog) == [
        f"writing the last access counts of {store.path} failed: "
        "OSError(37, 'No locks available')",
        f"{store.path} closed with access counts not written (memories: 1)",
    ]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


async def test_a_round_takes_at_most_max_batch_writes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db", max_batch=2)
    await store.open()
    lock = WriteLock(store.path)
    lock.open()
    try:
        with lock.held():
            writes = [await queued(store.put_if_newer(rec(f"m{i}", wall=1))) for i in range(6)]
            await blocked_on(store.path + SUFFIX)
        assert await asyncio.gather(*writes) == [True] * 6
        assert (store.commits, store.committed_writes) == (3, 6)
    finally:
        lock.close()
        await store.close()


async def test_a_failing_write_lock_fails_its_round_and_the_writer_goes_on(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True  # the writer is idle after it
    failures = fail_writer_lock_once(monkeypatch)
    with caplog.at_level(logging.ERROR, "deep_tree_echo.aar_core.memory.sqlite"):
        async with asyncio.timeout(30):  # a dead writer thread would leave these waiting
            with pytest.raises(StoreError, match=r"write lock failed: .*No locks available") as e:
                await store.put_if_newer(rec("x", wall=2))
            assert e.value.details == {"path": store.path}
            assert await store.put_if_newer(rec("y", wall=3)) is True  # the next round writes
    assert failures == []
    assert [r.getMessage() for r in caplog.records] == [
        f"writing to {store.path} failed outside its transaction: "
        "OSError(37, 'No locks available')"]
    got = await store.get("x")
    assert got is not None and got.version == Version(1, 0, "n")  # the failed write: not in
    assert await store.count() == 2


async def test_the_first_transaction_can_take_counts_with_a_write(
    store: SQLiteStore, lock: WriteLock
) -> None:
    with lock.held():  # the access and the write share the store's very first transaction
        await store.record_access("x", at=20.0)
        await blocked_on(store.path + SUFFIX)
        winning = await queued(store.put_if_newer(rec("x", wall=7, count=5)))
    assert await winning is True
    assert await counts(store, "x") == (5, None)  # the record's own: it included the access
    assert on_disk(store) == (5, None)
    assert store._accesses.held == {} and store._accesses.pending == {}


async def test_a_failed_commit_gives_back_the_counts_its_writes_took_exactly_once(
    store: SQLiteStore, lock: WriteLock
) -> None:
    conn = await store._write(lambda c: c)  # the writer's connection; the writer is idle now
    conn.execute("PRAGMA foreign_keys = ON")  # a deferred key is checked only at COMMIT

    def schema(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        c.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id) "
                  "DEFERRABLE INITIALLY DEFERRED)")

    await store._write(schema)
    assert await store.put_if_newer(rec("x", wall=5)) is True
    assert await store.put_if_newer(rec("y", wall=5)) is True
    with lock.held():
        await store.record_access("x", at=20.0)
        await store.record_access("y", at=30.0)
        await store.record_access("z", at=40.0)  # taken by the transaction itself
        await blocked_on(store.path + SUFFIX)
        winning = await queued(store.put_if_newer(rec("x", wall=9, count=7)))
        losing = await queued(store.put_if_newer(rec("y", wall=1, count=7)))
        orphan = await queued(store._write(
            lambda c: c.execute("INSERT INTO child VALUES (42)")))
    for write in (winning, losing, orphan):
        with pytest.raises(StoreError, match="commit failed"):
            await write
    assert store._accesses.pending == {("default", "x"): (1, 20.0),
                                       ("default", "y"): (1, 30.0),
                                       ("default", "z"): (1, 40.0)}
    assert store._accesses.held == {}
    assert await counts(store, "x") == (1, 20.0)
    conn.execute("PRAGMA foreign_keys = OFF")
    await store.flush()
    with sqlite3.connect(store.path) as raw:
        rows = raw.execute("SELECT id, access_count FROM memories ORDER BY id").fetchall()
    assert rows == [("x", 1), ("y", 1)]


async def test_a_read_that_overlaps_a_commit_taking_counts_with_a_write_reads_again(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True
    await store.record_access("y", at=1.0)
    await store.flush()  # one commit of counts before: the sequence counter is not at 0
    assert store._accesses.epoch == 2
    loop = asyncio.get_running_loop()
    read_once, committed = asyncio.Event(), threading.Event()
    seen: list[int] = []

    def fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
        rows = conn.execute(f"SELECT {sql.COLUMNS} FROM memories WHERE id = 'x'").fetchall()
        seen.append(rows[0][5])  # access_count as this snapshot has it
        if len(seen) == 1:  # the write commits between this read and its overlay
            loop.call_soon_threadsafe(read_once.set)
            assert committed.wait(10.0)
        return rows

    with lock.held():
        await store.record_access("x", at=20.0)
        await blocked_on(store.path + SUFFIX)
        winning = await queued(store.put_if_newer(rec("x", wall=7, count=5)))
        reading = asyncio.ensure_future(store._read_records(fetch, "default"))
        await read_once.wait()  # the old row read, its held count not yet added
    assert await winning is True  # committed: the count left the overlay with it
    committed.set()
    (got,) = await reading
    assert seen == [0, 5]  # the first snapshot predates the commit: read again
    assert (got.access_count, got.last_access) == (5, None)


@pytest.mark.parametrize("max_batch", [1024, 3])  # 3: the third write in a later round
async def test_a_lost_write_gives_its_counts_to_the_next_write_of_the_memory(
    tmp_path: Path, max_batch: int
) -> None:
    async with small_batches(tmp_path / "m.db", max_batch) as (store, lock):
        assert await store.put_if_newer(rec("x", wall=5)) is True
        with lock.held():
            await store.record_access("x", at=20.0)
            await blocked_on(store.path + SUFFIX)
            stale = await queued(store.put_if_newer(rec("x", wall=2)))  # holds the access
            seen = await counts(store, "x")
            assert seen == (1, 20.0)
            # callers fold what they read into their records, as the manager does
            newer = await queued(store.put_if_newer(rec("x", wall=9, count=seen[0])))
            staler = await queued(store.put_if_newer(rec("x", wall=3, count=seen[0])))
        assert (await stale, await newer) == (False, True)
        assert await counts(store, "x") == (1, None)  # between the rounds too
        assert await staler is False
        await store.flush()
        assert on_disk(store) == (1, None)  # the one access once, inside the newer record
        assert store._accesses.held == {} and store._accesses.pending == {}


async def test_an_access_after_a_write_was_queued_lands_on_top_of_it(tmp_path: Path) -> None:
    # a round of two: the flush and the filler; the write of x waits for the next
    async with small_batches(tmp_path / "m.db", 2) as (store, lock):
        assert await store.put_if_newer(rec("x", wall=5)) is True
        assert await store.put_if_newer(rec("y", wall=5)) is True
        with lock.held():
            await store.record_access("y", at=1.0)
            await blocked_on(store.path + SUFFIX)
            filler = await queued(store.put_if_newer(rec("z", wall=1)))
            write = await queued(store.put_if_newer(rec("x", wall=9)))
            await store.record_access("x", at=30.0)  # after the write was queued
        assert (await filler, await write) == (True, True)
        await store.flush()
        assert on_disk(store) == (1, 30.0)  # not written first and overwritten by the write
        assert await counts(store, "x") == (1, 30.0)
        assert on_disk(store, "y") == (1, 1.0)  # written by the flush's round all the same
        assert store._accesses.pending == {}


async def test_a_base_exception_fails_its_batch_and_the_writer_goes_on(
    store: SQLiteStore, lock: WriteLock
) -> None:
    assert await store.put_if_newer(rec("x", wall=1)) is True
    with lock.held():
        await store.record_access("x", at=20.0)
        await blocked_on(store.path + SUFFIX)
        winning = await queued(store.put_if_newer(rec("x", wall=9, count=1)))
        broken = await queued(store._write(boom))
    async with asyncio.timeout(30):  # reads and writes go on
        for write in (winning, broken):
            with pytest.raises(StoreError, match=r"commit failed: Boom\('broken'\)"):
                await write
        assert store._accesses.epoch % 2 == 0
        assert await counts(store, "x") == (1, 20.0)  # the count waits again
        assert await store.put_if_newer(rec("x", wall=10, count=1)) is True
    assert on_disk(store) == (1, None)


async def test_a_rolled_back_write_gives_its_counts_to_a_later_write_not_by_equal_value(
    tmp_path: Path,
) -> None:
    # a round of three: the flush, the winner and the orphan; the loser waits for the next
    async with small_batches(tmp_path / "m.db", 3) as (store, lock):
        conn = await store._write(lambda c: c)
        conn.execute("PRAGMA foreign_keys = ON")
        await store._write(lambda c: c.execute(
            "CREATE TABLE child (pid INTEGER REFERENCES memories(rid) "
            "DEFERRABLE INITIALLY DEFERRED)"))
        assert await store.put_if_newer(rec("x", wall=5)) is True
        with lock.held():
            await store.record_access("x", at=20.0)
            await blocked_on(store.path + SUFFIX)
            winner = await queued(store.put_if_newer(rec("x", wall=9, count=1)))
            orphan = await queued(store._write(
                lambda c: c.execute("INSERT INTO child VALUES (4242)")))
            await store.record_access("x", at=20.0)  # an equal (count, at) pair
            loser = await queued(store.put_if_newer(rec("x", wall=1)))
        for write in (winner, orphan):
            with pytest.raises(StoreError, match="commit failed"):
                await write
        assert await loser is False
        await store.flush()
        assert on_disk(store) == (2, 20.0)  # two accesses, each written once


async def test_a_lost_flush_is_asked_for_again_by_the_next_access(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    loop = asyncio.get_running_loop()
    rounds: asyncio.Queue[bool] = asyncio.Queue()
    real_round = Writer._round

    def round_and_tell(self: Writer, conn: Any, lock: Any, batch: list[object]) -> bool:
        stop = real_round(self, conn, lock, batch)
        if self is store._writing:  # not the rounds of the store that made the row
            loop.call_soon_threadsafe(rounds.put_nowait, stop)
        return stop

    monkeypatch.setattr(Writer, "_round", round_and_tell)  # before the thread starts
    failures = fail_writer_lock_once(monkeypatch, lambda: bool(store._accesses.pending))
    async with opened_store(tmp_path / "m.db") as other:
        assert await other.put_if_newer(rec("x", wall=1)) is True
    await store.open()
    try:
        async with asyncio.timeout(30):  # a flush never asked for again would wait for ever
            await store.record_access("x", at=20.0)  # its flush's round fails on the lock
            assert await rounds.get() is False
            assert failures == [] and store._accesses.flush_queued is False
            await store.record_access("x", at=30.0)  # so this one asks for a flush again
            assert await rounds.get() is False
        assert on_disk(store) == (2, 30.0)
    finally:
        await store.close()



def test_a_hold_adds_counts_and_keeps_the_latest_access() -> None:
    hold = Hold()
    hold.take(0, 99.0)  # no access: nothing held, no time kept
    assert (hold.count, hold.latest) == (0, 0.0)
    hold.take(1, 50.0)
    hold.take(2, 20.0)  # counts given on by a lost write may be older
    assert (hold.count, hold.latest) == (3, 50.0)
    hold.take(1, 70.0)
    assert (hold.count, hold.latest) == (4, 70.0)
