"""Purging old tombstones and expired memories: store contract, manager, gateway task."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from _memory_helpers import FakeClock

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.gateway import PURGE_INTERVAL, AARGateway
from deep_tree_echo.aar_core.memory import (
    InMemoryStore,
    MemoryManager,
    MemoryRecord,
    MemoryStore,
    PostgresStore,
    RedisStore,
    SQLiteStore,
    Version,
)
from deep_tree_echo.config import EchoSettings

DAY = 24 * 3600.0


def rec(memory_id: str, wall: int, *, deleted: bool = False) -> MemoryRecord:
    return MemoryRecord(
        id=memory_id,
        data={} if deleted else {"content": memory_id},
        version=Version(wall, 0, "n1"),
        created_at=1000.0,
        updated_at=1000.0 + wall,
        deleted=deleted,
    )


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> type[MemoryStore] | Path | str:
    """What ``_new_store`` builds a store from: a class, an SQLite path or a real Redis URL.

    Sync, so the async ``redis_url`` fixture (flushed per test) is requested only for Redis.
    """
    if request.param == "memory":
        return InMemoryStore
    if request.param == "sqlite":
        return tmp_path / "m.db"
    server = "postgres_db" if request.param == "postgres" else "redis_url"
    url: str = request.getfixturevalue(server)
    return url


def _new_store(kind: type[MemoryStore] | Path | str) -> MemoryStore:
    if isinstance(kind, Path):
        return SQLiteStore(kind)
    if isinstance(kind, str) and kind.startswith("postgresql"):
        return PostgresStore(kind)
    if isinstance(kind, str):
        return RedisStore(kind)
    return kind()


@pytest.fixture
async def store(make_store: type[MemoryStore] | Path | str) -> AsyncIterator[MemoryStore]:
    s = _new_store(make_store)
    await s.open()
    yield s
    await s.close()


# -- the store contract ----------------------------------------------------------------------


async def test_store_purge_removes_only_exact_versions(store: MemoryStore) -> None:
    for r in (rec("a", 1, deleted=True), rec("b", 2), rec("c", 3, deleted=True)):
        assert await store.put_if_newer(r)
    removed = await store.purge(
        {
            "a": Version(1, 0, "n1"),  # matches: removed
            "b": Version(1, 0, "n1"),  # stored version is newer: kept
            "missing": Version(1, 0, "n1"),
        }
    )
    assert removed == ["a"]
    assert await store.get("a") is None
    assert (b := await store.get("b")) is not None and b.version == Version(2, 0, "n1")
    assert await store.count() == 2
    assert sorted([r.id async for r in store.scan()]) == ["b", "c"]
    assert await store.purge({}) == []
    # a purged id can be written again, even with an older version than the purged one
    assert await store.put_if_newer(rec("a", 0))
    assert (a := await store.get("a")) is not None and not a.deleted


async def test_sqlite_purge_is_durable_and_all_or_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    s = SQLiteStore(path)
    for r in (rec("a", 1, deleted=True), rec("b", 2, deleted=True)):
        await s.put_if_newer(r)
    assert sorted(await s.purge({"a": Version(1, 0, "n1"), "b": Version(2, 0, "n1")})) == [
        "a",
        "b",
    ]
    await s.put_if_newer(rec("c", 3, deleted=True))
    await s.put_if_newer(rec("d", 4, deleted=True))
    await s.close()

    reopened = SQLiteStore(path)
    assert [r.id async for r in reopened.scan()] == ["c", "d"]

    # a trigger makes deleting "d" fail after "c" was deleted in the same purge
    await reopened._write(
        lambda conn: conn.execute(
            "CREATE TRIGGER no_d BEFORE DELETE ON memories WHEN old.id = 'd' "
            "BEGIN SELECT RAISE(ABORT, 'd is pinned'); END"
        )
    )
    with pytest.raises(StoreError, match="d is pinned"):
        await reopened.purge({"c": Version(3, 0, "n1"), "d": Version(4, 0, "n1")})
    assert [r.id async for r in reopened.scan()] == ["c", "d"]
    await reopened.close()


async def test_default_store_purge_removes_nothing() -> None:
    class Minimal(InMemoryStore):
        purge = MemoryStore.purge  # a third-party store that predates purge

    m = MemoryManager(Minimal(), wall_clock=FakeClock())
    await m.store_memory("x", {"content": "x"})
    await m.delete_memory("x")
    assert isinstance(m.wall_clock, FakeClock)
    m.wall_clock.advance(30 * DAY)
    assert await m.purge(DAY) == 0
    assert await m.store.count() == 1


# -- the manager -----------------------------------------------------------------------------


async def test_manager_purges_old_tombstones_and_expired_records_only(
    make_store: type[MemoryStore] | Path | str,
) -> None:
    clock = FakeClock()
    m = MemoryManager(_new_store(make_store), node_id="n", wall_clock=clock)
    await m.store_memory("live", {"content": "forever tea"})
    await m.store_memory("live-ttl", {"content": "long tea"}, ttl=365 * DAY)
    await m.store_memory("old-ttl", {"content": "short tea"}, ttl=60)
    await m.store_memory("old-del", {"content": "gone tea"})
    await m.delete_memory("old-del")
    clock.advance(2 * DAY)
    await m.store_memory("new-del", {"content": "recent tea"})
    await m.delete_memory("new-del")
    await m.store_memory("new-ttl", {"content": "brief tea"}, ttl=60)
    clock.advance(120)  # new-ttl has expired, but only just
    assert await m.store.count() == 6

    assert await m.purge(DAY) == 2
    assert await m.store.get("old-del") is None
    assert await m.store.get("old-ttl") is None
    assert {r.id async for r in m.store.scan()} == {"live", "live-ttl", "new-del", "new-ttl"}
    assert m.stats["purged"] == 2
    assert await m.purge(DAY) == 0  # idempotent

    # older_than=0 takes every tombstone and expired record, never a live one
    clock.advance(1)
    assert await m.purge(0) == 2
    assert {r.id async for r in m.store.scan()} == {"live", "live-ttl"}
    assert await m.get_all_memories() == {
        "live": {"content": "forever tea"},
        "live-ttl": {"content": "long tea"},
    }
    assert {hit.id for hit in await m.search("tea")} == {"live", "live-ttl"}
    assert await m.count() == 2

    # a purged id can be written again, is found by search, and survives a reload
    record, created = await m.upsert("old-del", {"content": "reborn tea"})
    assert created and not record.deleted
    assert await m.retrieve_memory("old-del") == {"content": "reborn tea"}
    assert "old-del" in {hit.id for hit in await m.search("reborn")}
    if not isinstance(make_store, type):  # SQLite and Redis keep the data: reload it
        await m.close()
        m = MemoryManager(_new_store(make_store), node_id="n", wall_clock=clock)
        assert set(await m.get_all_memories()) == {"live", "live-ttl", "old-del"}
        assert await m.store.count() == 3
    await m.close()


async def test_purge_rejects_bad_ages() -> None:
    m = MemoryManager()
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="older_than"):
            await m.purge(bad)


class RacingStore(InMemoryStore):
    """Lets the test write to the manager while a purge is inside the store."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = asyncio.Event()
        self.release = asyncio.Event()

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = "default"
    ) -> list[str]:
        removed = await super().purge(expected, tenant=tenant)
        self.inside.set()
        await self.release.wait()
        return removed


async def test_a_write_racing_a_purge_is_kept() -> None:
    clock = FakeClock()
    store = RacingStore()
    m = MemoryManager(store, wall_clock=clock)
    await m.store_memory("x", {"content": "first"})
    await m.delete_memory("x")
    clock.advance(2 * DAY)
    purge = asyncio.create_task(m.purge(DAY))
    await store.inside.wait()  # the tombstone is gone, the purge call not yet returned
    await m.store_memory("x", {"content": "second"})
    store.release.set()
    assert await purge == 1
    assert await m.retrieve_memory("x") == {"content": "second"}
    assert "x" in {hit.id for hit in await m.search("second")}


# -- the gateway's periodic task -------------------------------------------------------------


class FakeSleep:
    """An ``asyncio.sleep`` stand-in: each call waits until the test ticks it."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[float] = asyncio.Queue()
        self.ticks: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, seconds: float) -> None:
        await self.calls.put(seconds)
        await self.ticks.get()


async def test_gateway_purges_every_interval_and_stops_on_cleanup() -> None:
    clock = FakeClock()
    sleep = FakeSleep()
    settings = EchoSettings(test_mode=True, tombstone_ttl=DAY)
    memory = MemoryManager(wall_clock=clock)
    gw = AARGateway(settings, memory=memory, sleep=sleep)
    await gw.initialize()
    assert await sleep.calls.get() == PURGE_INTERVAL
    await memory.store_memory("old", {"content": "old"})
    await memory.delete_memory("old")
    await memory.store_memory("keep", {"content": "keep"})
    clock.advance(DAY + 1)
    await memory.store_memory("recent", {"content": "recent"})
    await memory.delete_memory("recent")

    await sleep.ticks.put(None)
    assert await sleep.calls.get() == PURGE_INTERVAL  # asleep again: the purge is done
    assert {r.id async for r in memory.store.scan()} == {"keep", "recent"}
    assert memory.stats["purged"] == 1

    task = gw._purge_task
    assert task is not None and not task.done()
    await gw.cleanup()
    assert task.cancelled()
    assert gw._purge_task is None


class FailingPurgeStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.attempts = 0

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = "default"
    ) -> list[str]:
        self.attempts += 1
        raise OSError("disk on fire")


async def test_gateway_purge_task_survives_store_errors(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    sleep = FakeSleep()
    store = FailingPurgeStore()
    memory = MemoryManager(store, wall_clock=clock)
    async with AARGateway(EchoSettings(test_mode=True), memory=memory, sleep=sleep) as gw:
        await sleep.calls.get()
        await memory.store_memory("old", {"content": "old"})
        await memory.delete_memory("old")
        clock.advance(30 * DAY)
        for attempt in (1, 2):
            await sleep.ticks.put(None)
            await sleep.calls.get()
            assert store.attempts == attempt
        assert gw._purge_task is not None and not gw._purge_task.done()
    assert "purging old memories failed" in caplog.text
    assert await store.count() == 1


def test_tombstone_ttl_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EchoSettings().tombstone_ttl == 7 * DAY
    monkeypatch.setenv("DTE_TOMBSTONE_TTL", "3600")
    assert EchoSettings().tombstone_ttl == 3600.0
