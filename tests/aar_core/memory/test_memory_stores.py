"""The MemoryStore contract against every store: in-memory, real SQLite, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import (
    InMemoryStore,
    MemoryRecord,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    Version,
)


def rec(
    memory_id: str,
    wall: int,
    logical: int = 0,
    node: str = "n1",
    *,
    data: dict[str, Any] | None = None,
    deleted: bool = False,
) -> MemoryRecord:
    return MemoryRecord(
        id=memory_id,
        data=data if data is not None else {"content": f"{memory_id}@{wall}.{logical}"},
        version=Version(wall, logical, node),
        created_at=1000.0,
        updated_at=1000.0 + wall,
        deleted=deleted,
    )


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The store kind, with the flushed real redis-server's URL for ``redis``.

    A sync fixture, so the async ``redis_url`` fixture is requested only for Redis (an async
    fixture cannot request it through ``getfixturevalue`` while its own loop runs).
    """
    kind: str = request.param
    if kind == "postgres":
        return kind, request.getfixturevalue("postgres_db")
    return kind, request.getfixturevalue("redis_url") if kind == "redis" else None


@pytest.fixture
async def store(backend: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[MemoryStore]:
    kind, url = backend
    s: MemoryStore
    if kind == "memory":
        s = InMemoryStore()
    elif kind == "sqlite":
        s = SQLiteStore(tmp_path / "m.db", scan_chunk=7)
    elif kind == "postgres":
        assert url is not None
        s = PostgresStore(url, scan_chunk=7)
    else:  # small chunks make scan page through the index
        assert url is not None
        s = RedisStore(url, scan_chunk=7)
    await s.open()
    yield s
    await s.close()


async def test_put_get_round_trip_keeps_every_field(store: MemoryStore) -> None:
    r = MemoryRecord(
        id="m-1",
        data={"content": "café ☕ 7741", "nested": {"a": [1, 2.5, None, True]}, "importance": 7},
        version=Version(5, 2, "node-x"),
        created_at=1.5,
        updated_at=2.5,
        access_count=3,
        last_access=2.0,
        expires_at=99.0,
        extra={"origin": "test"},
    )
    assert await store.put_if_newer(r)
    got = await store.get("m-1")
    assert got == r
    assert await store.get("absent") is None


async def test_put_if_newer_applies_only_newer_versions(store: MemoryStore) -> None:
    assert await store.put_if_newer(rec("a", 10))
    assert not await store.put_if_newer(rec("a", 9, 99))  # older wall
    assert not await store.put_if_newer(rec("a", 10))  # equal version
    assert not await store.put_if_newer(rec("a", 10, 0, "n0"))  # node id breaks the tie
    got = await store.get("a")
    assert got is not None and got.data == {"content": "a@10.0"}
    assert await store.put_if_newer(rec("a", 10, 1))
    assert await store.put_if_newer(rec("a", 10, 1, "n2"))
    got = await store.get("a")
    assert got is not None and got.version == Version(10, 1, "n2")


async def test_concurrent_writers_converge_on_the_newest_version(store: MemoryStore) -> None:
    versions = [(w, lg) for w in range(1, 11) for lg in range(5)]
    random.Random(7).shuffle(versions)
    results = await asyncio.gather(*(store.put_if_newer(rec("hot", w, lg)) for w, lg in versions))
    assert any(results)
    got = await store.get("hot")
    assert got is not None and got.version == Version(10, 4, "n1")


async def test_tombstone_wins_over_older_writes_and_loses_to_newer(store: MemoryStore) -> None:
    assert await store.put_if_newer(rec("t", 5))
    assert await store.put_if_newer(rec("t", 6, data={}, deleted=True))
    tomb = await store.get("t")
    assert tomb is not None and tomb.deleted
    assert not await store.put_if_newer(rec("t", 5, 9))  # a late replica of the old write
    still = await store.get("t")
    assert still is not None and still.deleted
    assert await store.put_if_newer(rec("t", 7))  # a genuinely newer write resurrects
    back = await store.get("t")
    assert back is not None and not back.deleted


async def test_scan_streams_every_record_including_tombstones(store: MemoryStore) -> None:
    for i in range(50):
        await store.put_if_newer(rec(f"id-{i:03d}", 1, deleted=i % 10 == 0))
    seen = [r async for r in store.scan()]
    assert sorted(r.id for r in seen) == [f"id-{i:03d}" for i in range(50)]
    assert sum(r.deleted for r in seen) == 5
    assert await store.count() == 50


async def test_record_access_bumps_count_without_changing_version(store: MemoryStore) -> None:
    await store.put_if_newer(rec("x", 1))
    await store.record_access("x", at=2000.0)
    await store.record_access("x", at=1500.0, count=2)
    await store.record_access("nobody", at=2000.0)
    got = await store.get("x")
    assert got is not None
    assert (got.access_count, got.last_access, got.version) == (3, 2000.0, Version(1, 0, "n1"))
    assert await store.get("nobody") is None


async def test_returned_records_are_copies(store: MemoryStore) -> None:
    await store.put_if_newer(rec("c", 1))
    got = await store.get("c")
    assert got is not None
    got.access_count = 99
    got.deleted = True
    again = await store.get("c")
    assert again is not None and again.access_count == 0 and not again.deleted


# -- SQLite specifics ----------------------------------------------------------------------


async def test_sqlite_uses_wal_and_syncs_after_the_lock_and_survives_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    s = SQLiteStore(path)
    await s.open()
    await s.put_if_newer(rec("p", 1))
    await s.record_access("p", at=1234.0)

    def pragmas(conn: sqlite3.Connection) -> tuple[str, int]:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return mode, conn.execute("PRAGMA synchronous").fetchone()[0]

    # synchronous is per connection (not stored in the file): ask the store's own
    # connections. The writer's is NORMAL (1): its commits write the WAL and the writer syncs
    # it itself after releasing the lock (test_sqlite_sync.py); the reader's is FULL (2).
    assert await s._write(pragmas) == ("wal", 1)
    assert await s._read(pragmas) == ("wal", 2)

    def mmap(conn: sqlite3.Connection) -> int:
        return int(conn.execute("PRAGMA mmap_size").fetchone()[0])

    # searches read through a memory map (the writer keeps the page cache)
    assert await s._read(mmap) == 1 << 30
    assert await s._write(mmap) == 0
    await s.close()
    await s.close()  # idempotent
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        cols = {row[1] for row in raw.execute("PRAGMA table_info(memories)")}
    assert {"id", "version", "data", "access_count", "last_access", "expires_at"} <= cols
    s2 = SQLiteStore(path)
    got = await s2.get("p")  # opens lazily
    assert got is not None and got.data == {"content": "p@1.0"}
    assert (got.access_count, got.last_access) == (1, 1234.0)  # flushed by close()
    await s2.close()


async def test_sqlite_group_commit_batches_writers_queued_during_a_commit(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "g.db")
    await s.open()
    entered, release = threading.Event(), threading.Event()

    def hold_transaction(conn: sqlite3.Connection) -> None:
        entered.set()
        release.wait()

    holder = asyncio.ensure_future(s._write(hold_transaction))
    await asyncio.to_thread(entered.wait)  # the writer thread is now inside a transaction
    commits_before = s.commits
    writers = [asyncio.ensure_future(s.put_if_newer(rec(f"w{i}", 1))) for i in range(50)]
    # Tasks start in creation order, so every writer has queued its put before this runs.
    releaser = asyncio.ensure_future(asyncio.to_thread(release.set))
    assert all(await asyncio.gather(*writers))
    await holder
    await releaser
    assert s.commits - commits_before == 2  # the held transaction, then all 50 together
    assert await s.count() == 50
    await s.close()


async def test_sqlite_operations_after_close_fail_with_store_error(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "c.db")
    await s.open()
    await s.close()
    with pytest.raises(StoreError):
        await s.put_if_newer(rec("late", 1))


async def test_sqlite_unopenable_path_raises_store_error(tmp_path: Path) -> None:
    s = SQLiteStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(StoreError):
        await s.open()
