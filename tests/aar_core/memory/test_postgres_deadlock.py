"""A write PostgreSQL aborts to break a deadlock is run again: it lands, once, and the index
stays a rebuild's; a write that keeps losing raises ``StoreError`` naming the deadlock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import asyncpg
import pytest
from _pg_locks import lock_waited
from test_memory_postgres_topk import assert_index_equals_a_rebuild

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, Version, postgres_store
from deep_tree_echo.aar_core.memory import _postgres_sql as sql
from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore

T = TypeVar("T")


def record(version: int, text: str) -> MemoryRecord:
    """``m1`` at ``version``; writes here change its length, so they add to a stats row."""
    return MemoryRecord("m1", {"content": text}, Version(version, 0, "n"), 1.0, float(version))


@pytest.fixture
async def store(postgres_db: str) -> AsyncIterator[PostgresStore]:
    """A store holding ``m1`` and a stats row in every shard (n = 0: sums unchanged), so a
    second connection can hold every row a write of ``m1`` needs after ``m1`` itself."""
    store = PostgresStore(postgres_db, search_cache=0)
    await store.put_if_newer(record(1, "green tea"), tenant="t")
    await store._fetch(
        "seed",
        "INSERT INTO dte_stats (tenant, shard, n, total) "
        f"SELECT 't', s, 0, 0 FROM generate_series(0, {sql.SHARDS - 1}) AS s "
        "ON CONFLICT DO NOTHING",
        {},
    )
    try:
        yield store
    finally:
        await store.close()


async def deadlock_once(postgres_db: str, write: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Close a cycle with ``write``: hold every stats row, start ``write`` and let it take
    ``m1`` and wait for one, then wait for ``m1``. The write's backend checks first (it waited
    first) and is aborted; this connection's update of ``m1`` then goes through and commits."""
    other = await asyncpg.connect(postgres_db)
    try:
        await other.execute("SET deadlock_timeout = '60s'")  # the write's backend detects it
        async with other.transaction():
            await other.execute("SELECT 1 FROM dte_stats WHERE tenant = 't' FOR UPDATE")
            task = asyncio.create_task(write)
            await lock_waited(other, task)  # the write holds m1, waits for a stats row
            await other.execute(
                "UPDATE dte_memories SET access_count = access_count + 1 "
                "WHERE tenant = 't' AND id = 'm1'"
            )
    finally:
        await other.close()
    return task


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the store logged (its retries), nothing else's."""
    return [r.getMessage() for r in caplog.records if r.name == postgres_store.__name__]


async def test_a_write_aborted_by_a_deadlock_runs_again_and_lands(
    store: PostgresStore, postgres_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=postgres_store.__name__)
    write = await deadlock_once(
        postgres_db, store.put_if_newer(record(2, "black coffee beans"), tenant="t")
    )
    assert await write is True
    got = await store.get("m1", tenant="t")
    assert got is not None and got.data == {"content": "black coffee beans"}
    assert got.version == Version(2, 0, "n")
    await assert_index_equals_a_rebuild(store, "after the retry")
    # The second run may win m1 back before the other connection's update and deadlock again.
    logged = retries(caplog)
    assert logged[:1] == ["postgres write: aborted to break a deadlock, run again (2 of 5)"]
    assert logged == [
        f"postgres write: aborted to break a deadlock, run again ({k} of 5)"
        for k in range(2, 2 + len(logged))
    ]


async def test_a_batch_aborted_by_a_deadlock_runs_again_and_lands(
    store: PostgresStore, postgres_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=postgres_store.__name__)
    m2 = MemoryRecord("m2", {"content": "tea"}, Version(2, 0, "n"), 1.0, 2.0)
    batch = [record(2, "black coffee beans"), m2]  # an update and an insert: two index passes
    write = await deadlock_once(postgres_db, store.put_many(batch, tenant="t"))
    await write
    got = await store.get("m1", tenant="t")
    assert got is not None and got.data == {"content": "black coffee beans"}
    assert await store.count(tenant="t") == 2
    await assert_index_equals_a_rebuild(store, "after the batch's retry")
    assert retries(caplog)[:1] == [
        "postgres batch write: aborted to break a deadlock, run again (2 of 5)"]


async def test_a_write_that_keeps_deadlocking_raises_store_error(
    store: PostgresStore, postgres_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_store, "DEADLOCK_ATTEMPTS", 1)  # no second run
    write = await deadlock_once(
        postgres_db, store.put_if_newer(record(2, "black coffee beans"), tenant="t")
    )
    with pytest.raises(StoreError, match=r"postgres write failed: .*deadlock detected"):
        await write
    got = await store.get("m1", tenant="t")
    assert got is not None and got.data == {"content": "green tea"}  # nothing half-written
    assert got.access_count == 1  # the other connection's update
    await assert_index_equals_a_rebuild(store, "after the failed write")
