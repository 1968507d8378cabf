"""PostgreSQL bulk writes (``put_many``, ``purge``) queue on their tenant's write lock, and only
on their own tenant's: a second connection holds the lock and watches the store's statement
wait for it (``pg_stat_activity``), then lets go and sees the write land."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest
from _pg_locks import lock_waited

from deep_tree_echo.aar_core.memory import MemoryRecord, Version
from deep_tree_echo.aar_core.memory import _postgres_sql as sql
from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore, _deadlocked

#: The store's tenant lock in asyncpg's parameter style.
LOCK = sql.LOCK_TENANT.replace(":tenant", "$1")


def record(memory_id: str, version: int, text: str) -> MemoryRecord:
    return MemoryRecord(memory_id, {"content": text}, Version(version, 0, "n"), 1.0,
                        float(version))


@pytest.fixture
async def store(postgres_db: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_db, search_cache=0)
    await store.put_if_newer(record("old", 1, "stale note"), tenant="t")
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("bulk", ["put_many", "purge"])
async def test_a_bulk_write_waits_for_its_tenants_lock(
    store: PostgresStore, postgres_db: str, bulk: str
) -> None:
    def start() -> Awaitable[Any]:
        if bulk == "put_many":
            return store.put_many([record("a", 1, "green tea"), record("b", 1, "black tea")],
                                  tenant="t")
        return store.purge({"old": Version(1, 0, "n")}, tenant="t")

    other = await asyncpg.connect(postgres_db)
    try:
        async with other.transaction():
            await other.execute(LOCK, "t")
            task: asyncio.Task[Any] = asyncio.ensure_future(start())
            await lock_waited(other, task, "advisory")
            assert not task.done()
        await task  # the lock went with the other transaction's commit
    finally:
        await other.close()
    if bulk == "put_many":
        got = [await store.get(memory_id, tenant="t") for memory_id in ("a", "b")]
        assert [r.data["content"] for r in got if r is not None] == ["green tea", "black tea"]
    else:
        assert task.result() == ["old"]
        assert await store.get("old", tenant="t") is None


async def test_another_tenants_lock_does_not_hold_a_bulk_write(
    store: PostgresStore, postgres_db: str
) -> None:
    other = await asyncpg.connect(postgres_db)
    try:
        async with other.transaction():
            await other.execute(LOCK, "u")
            async with asyncio.timeout(30):  # hangs, were it waiting for "u"
                await store.put_many([record("a", 1, "green tea")], tenant="t")
                assert await store.purge({"old": Version(1, 0, "n")}, tenant="t") == ["old"]
    finally:
        await other.close()


class _NoState:
    """An error whose cause carries no SQLSTATE."""

    orig = object()


@pytest.mark.parametrize("exc", [ValueError("x"), _NoState()])
def test_errors_without_a_sqlstate_are_not_deadlocks(exc: Any) -> None:
    assert _deadlocked(exc) is False


def test_only_sqlstate_40p01_is_a_deadlock() -> None:
    def error(state: str | None) -> Any:
        cause = type("Cause", (), {"sqlstate": state})()
        return type("Wrapped", (), {"orig": cause})()

    assert _deadlocked(error("40P01")) is True
    assert _deadlocked(error("40001")) is False
    assert _deadlocked(error(None)) is False
