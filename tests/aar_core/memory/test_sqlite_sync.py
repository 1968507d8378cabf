"""The SQLite store syncs its WAL after releasing the file's write lock and before it
acknowledges a batch (``_sqlite_sync``): real files, the real writer thread; the sync is
wrapped to observe the order, never replaced by a fake disk."""

from __future__ import annotations

import asyncio
import errno
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _memory_helpers import opened_store
from test_sqlite_writelock import free

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory._sqlite_sync import WalSync
from deep_tree_echo.aar_core.memory.sqlite_writelock import SUFFIX, WriteLock


def rec(memory_id: str, counter: int = 1) -> MemoryRecord:
    return MemoryRecord(memory_id, {"content": f"note {memory_id}"},
                        Version(counter, 0, "n"), 1.0, 1.0)


def stored_ids(db: str) -> set[str]:
    """The ids committed to the file, as another connection (another process) reads them."""
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM memories")}


def no_such_table(conn: sqlite3.Connection) -> None:
    """A write that fails on its own statement."""
    conn.execute("SELECT * FROM no_such_table")


class SyncSpy:
    """Wraps ``WalSync.sync``: counts calls and, when ``hold`` is set, blocks each one in the
    writer thread until the test lets it go (then the real sync runs)."""

    def __init__(self, hold: bool = False, error: Exception | None = None) -> None:
        self.calls = 0
        self.hold = hold
        self.error = error
        self.entered = threading.Event()
        self.go_on = threading.Event()

    def wrap(self, real: object) -> object:
        def sync(wal: WalSync) -> None:
            self.calls += 1
            if self.hold:
                self.entered.set()
                assert self.go_on.wait(10.0)
            if self.error is not None:
                raise self.error
            real(wal)  # type: ignore[operator]

        return sync


@pytest.fixture
def wal_file(tmp_path: Path) -> Iterator[str]:
    """A database file in WAL mode, held open by a connection (so its ``-wal`` file stays)."""
    db = str(tmp_path / "m.db")
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        yield db
    finally:
        conn.close()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[SyncSpy]:
    found = SyncSpy()
    monkeypatch.setattr(WalSync, "sync", found.wrap(WalSync.sync))
    yield found
    found.go_on.set()


async def test_a_write_is_acknowledged_after_the_sync_which_runs_outside_the_lock(
    tmp_path: Path, spy: SyncSpy
) -> None:
    db = str(tmp_path / "m.db")
    store = SQLiteStore(db)
    await store.open()
    try:
        spy.hold = True
        put = asyncio.ensure_future(store.put_if_newer(rec("a")))
        await asyncio.to_thread(spy.entered.wait, 10.0)
        # an acknowledgement sent before the sync would have been queued on this loop before
        # the wake-up of to_thread above, and so would have run by now
        assert not put.done()
        assert free(db + SUFFIX)  # the writer let go of the lock before syncing
        assert stored_ids(db) == {"a"}  # committed: other processes can write and read on
        spy.go_on.set()
        assert await put is True
        assert spy.calls == 1
    finally:
        spy.go_on.set()
        await store.close()


@pytest.mark.parametrize("error", [OSError(errno.EIO, "I/O error"), RuntimeError("odd")])
async def test_a_failed_sync_fails_the_batchs_writes_and_every_later_one(
    tmp_path: Path, spy: SyncSpy, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened_store(tmp_path / "m.db") as store:
        spy.error = error
        with pytest.raises(StoreError, match="committed but not synced to disk") as info:
            await store.put_if_newer(rec("a"))
        assert info.value.details["path"] == store.path
        logged = [r for r in caplog.records if r.levelname == "ERROR"]
        assert [r.getMessage() for r in logged] == [
            f"syncing the WAL of {store.path} failed; no more writes: {error!r}"
        ]
        spy.error = None  # the next sync would pass: the kernel may have dropped the failure
        with pytest.raises(StoreError, match="no further writes are accepted"):
            await store.put_if_newer(rec("b"))
        await store.record_access("a", at=9.0)
        with pytest.raises(StoreError, match="no further writes"):
            await store.flush()
        assert spy.calls == 1  # nothing more was written, so nothing more synced
        got = await store.get("a")  # reads go on: "a" was committed
        assert got is not None and await store.get("b") is None
    assert spy.calls == 1  # closing wrote and synced nothing either, and said what it left
    assert f"{store.path} closed with access counts not written (memories: 1)" in caplog.text
    again = SQLiteStore(tmp_path / "m.db")  # opened again, the file takes writes
    await again.open()
    try:
        assert await again.put_if_newer(rec("b")) is True
        assert {r.id async for r in again.scan()} == {"a", "b"}
    finally:
        await again.close()


async def test_a_batch_with_no_successful_write_is_not_synced(
    tmp_path: Path, spy: SyncSpy
) -> None:
    async with opened_store(tmp_path / "m.db") as store:
        assert await store.put_if_newer(rec("a")) is True
        assert spy.calls == 1

        with pytest.raises(StoreError, match="no such table"):
            await store._write(no_such_table)
        assert spy.calls == 1


def test_wal_sync_opens_the_wal_of_a_file_in_wal_mode(wal_file: str) -> None:
    db = wal_file
    wal = WalSync(db)
    assert wal.path == db + "-wal"
    wal.open()
    wal.open()  # idempotent
    wal.sync()
    wal.close()
    wal.close()
    wal.sync()  # closed: nothing to sync


def test_wal_sync_of_a_missing_wal_fails_to_open(tmp_path: Path) -> None:
    wal = WalSync(str(tmp_path / "none.db"))
    with pytest.raises(FileNotFoundError):
        wal.open()
    wal.sync()  # never opened: a no-op
    wal.close()


def test_an_in_memory_database_has_no_wal_to_sync() -> None:
    wal = WalSync(":memory:")
    wal.open()
    assert wal.path is None
    wal.sync()
    wal.close()


def test_the_wal_descriptor_is_not_inherited(wal_file: str) -> None:
    db = wal_file
    wal = WalSync(db)
    wal.open()
    fd = wal._fd
    assert fd is not None and not os.get_inheritable(fd)
    wal.close()


def test_open_syncs_the_wal_and_its_directory_and_sync_the_wal(
    tmp_path: Path, wal_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = wal_file
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:  # observe which files are synced; the real sync still runs
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    wal = WalSync(db)
    wal.open()
    assert synced == [db + "-wal", str(tmp_path)]
    wal.sync()
    assert synced[2:] == [db + "-wal"]
    wal.close()


async def test_a_wal_that_cannot_be_opened_fails_the_stores_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(wal: WalSync) -> None:
        raise RuntimeError("no WAL for you")

    monkeypatch.setattr(WalSync, "open", broken)
    store = SQLiteStore(tmp_path / "m.db")
    with pytest.raises(StoreError, match="cannot open SQLite store: no WAL for you"):
        await store.open()
    monkeypatch.undo()
    await store.close()
    again = SQLiteStore(tmp_path / "m.db")  # nothing was left locked or half-open
    await again.open()
    try:
        assert await again.put_if_newer(rec("a")) is True
    finally:
        await again.close()


async def test_a_failed_sync_leaves_a_failed_writes_own_error(
    tmp_path: Path, spy: SyncSpy
) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    lock = WriteLock(store.path)
    lock.open()
    try:
        commits = store.commits
        with lock.held():  # both writes wait for the lock, then go in one batch
            put = asyncio.ensure_future(store.put_if_newer(rec("a")))
            bad = asyncio.ensure_future(store._write(no_such_table))
            await asyncio.sleep(0)  # a yield, not a wait: each task runs up to its queueing
            spy.error = OSError(errno.EIO, "I/O error")
        with pytest.raises(StoreError, match="not synced"):
            await put
        with pytest.raises(StoreError, match="no such table"):
            await bad
        assert (spy.calls, store.commits) == (1, commits + 1)
    finally:
        lock.close()
        await store.close()


def test_open_closes_the_wal_when_syncing_its_directory_fails(
    wal_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = wal_file
    opened: list[int] = []
    real_open, real_fsync = os.open, os.fsync

    def track(path: str, flags: int, *args: int) -> int:
        fd = real_open(path, flags, *args)
        opened.append(fd)
        return fd

    def fsync(fd: int) -> None:
        if os.path.isdir(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.EIO, "I/O error")
        real_fsync(fd)

    monkeypatch.setattr(os, "open", track)
    monkeypatch.setattr(os, "fsync", fsync)
    wal = WalSync(db)
    with pytest.raises(OSError, match="I/O error"):
        wal.open()
    monkeypatch.undo()
    assert len(opened) == 2  # the WAL and its directory, both closed again
    for fd in opened:
        with pytest.raises(OSError):
            os.fstat(fd)
    wal.sync()  # not open: a no-op


async def test_a_symlinked_database_syncs_the_wal_next_to_the_real_file(
    tmp_path: Path, spy: SyncSpy
) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").mkdir()
    real, link = tmp_path / "real" / "m.db", tmp_path / "link" / "m.db"
    sqlite3.connect(real).close()
    link.symlink_to(real)
    assert WalSync(str(link)).path == str(real) + "-wal"
    async with opened_store(link) as store:
        assert await store.put_if_newer(rec("a")) is True
        assert spy.calls == 1
        assert (tmp_path / "real" / "m.db-wal").exists()
        assert not (tmp_path / "link" / "m.db-wal").exists()
