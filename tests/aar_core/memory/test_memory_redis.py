"""RedisStore specifics on a real redis-server: layout, sharing between managers, failures.

The MemoryStore contract itself runs over Redis in ``test_memory_stores.py`` and
``test_memory_purge.py``.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import redis.asyncio as aioredis
from _memory_helpers import FakeClock

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryManager, MemoryRecord, RedisStore, Version


def rec(memory_id: str, version: Version, content: str = "x") -> MemoryRecord:
    return MemoryRecord(memory_id, {"content": content}, version, 1.0, 2.0)


async def test_two_managers_share_one_redis(redis_url: str) -> None:
    clock = FakeClock()
    a = MemoryManager(RedisStore(redis_url), node_id="node-a", wall_clock=clock)
    await a.store_memory("fact", {"content": "the vault code is 7741", "importance": 0.9})
    await a.store_memory("gone", {"content": "a deleted vault note"})
    await a.delete_memory("gone")

    b = MemoryManager(RedisStore(redis_url), node_id="node-b", wall_clock=clock)
    await b.initialize()
    assert await b.retrieve_memory("fact") == {
        "content": "the vault code is 7741",
        "importance": 0.9,
    }
    assert await b.retrieve_memory("gone") is None  # the tombstone came along
    assert [hit.id for hit in await b.search("vault code")] == ["fact"]
    # b's access is recorded in the shared row, without a new version
    shared = await a.store.get("fact")
    assert shared is not None and shared.access_count == 1
    assert shared.version.node_id == "node-a"
    # b's clock was moved past everything it loaded, so b's next write wins over a's
    record = await b.update_memory("fact", {"content": "the vault code is 9000"})
    assert record.version > shared.version
    newest = await a.store.get("fact")
    assert newest is not None and newest.data == {"content": "the vault code is 9000"}
    await a.close()
    await b.close()


async def test_concurrent_writes_from_two_managers_keep_the_newest(redis_url: str) -> None:
    clock_a, clock_b = FakeClock(), FakeClock()
    a = MemoryManager(RedisStore(redis_url), node_id="node-a", wall_clock=clock_a)
    b = MemoryManager(RedisStore(redis_url), node_id="node-b", wall_clock=clock_b)
    await asyncio.gather(a.initialize(), b.initialize())
    stamped: list[MemoryRecord] = []
    for step in range(20):
        # the two wall clocks leapfrog, so either node may hold the newest stamp of a round
        clock_a.advance(1.0 if step % 3 else 2.5)
        clock_b.advance(2.0 if step % 2 else 0.5)
        results = await asyncio.gather(
            *(a.upsert("hot", {"content": f"a{step}.{i}"}) for i in range(5)),
            *(b.upsert("hot", {"content": f"b{step}.{i}"}) for i in range(5)),
        )
        stamped += [record for record, _ in results]
    newest = max(stamped, key=lambda r: r.version)
    stored = await a.store.get("hot")
    assert stored is not None
    assert (stored.version, stored.data) == (newest.version, newest.data)
    assert await b.store.count() == 1

    reader = MemoryManager(RedisStore(redis_url), node_id="node-c")
    await reader.initialize()
    assert await reader.retrieve_memory("hot") == newest.data
    for m in (a, b, reader):
        await m.close()


async def test_node_ids_order_bytewise_like_python(redis_url: str) -> None:
    store = RedisStore(redis_url)
    assert "B" < "a" < "b" < "é"  # code point order, not a locale's collation
    assert await store.put_if_newer(rec("n", Version(5, 1, "B")))
    assert await store.put_if_newer(rec("n", Version(5, 1, "a")))
    assert not await store.put_if_newer(rec("n", Version(5, 1, "B")))
    assert await store.put_if_newer(rec("n", Version(5, 1, "é")))
    assert not await store.put_if_newer(rec("n", Version(5, 1, "b")))
    got = await store.get("n")
    assert got is not None and got.version == Version(5, 1, "é")
    await store.close()


async def test_key_layout_prefix_isolation_and_borrowed_client(redis_url: str) -> None:
    client = aioredis.from_url(redis_url, decode_responses=True)
    one = RedisStore(client, prefix="t1:")
    two = RedisStore(client, prefix="t2:")
    await one.put_if_newer(rec("k", Version(1, 0, "n"), "one"))
    assert await two.get("k") is None and await two.count() == 0
    assert [r.id async for r in two.scan()] == []
    assert await client.hget("t1:r:k", "v") == Version(1, 0, "n").to_str()
    assert await client.zrange("t1:ids", 0, -1) == ["k"]
    await one.record_access("k", at=5.0)
    assert await client.hget("t1:r:k", "access_count") == "1"
    assert await one.purge({"k": Version(1, 0, "n")}) == ["k"]
    assert await client.exists("t1:r:k", "t1:ids") == 0
    await one.close()
    await two.close()
    assert await client.ping()  # a client the caller passed in stays open
    await client.aclose()


async def test_unreachable_server_is_a_store_error() -> None:
    with socket.socket() as holder:  # bound, never listening: connections are refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        store = RedisStore(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(StoreError, match="redis connect failed"):
            await store.open()
        with pytest.raises(StoreError):
            await MemoryManager(store).initialize()
        await store.close()


async def test_operations_after_close_fail_with_store_error(redis_url: str) -> None:
    store = RedisStore(redis_url)
    await store.put_if_newer(rec("c", Version(1, 0, "n")))  # opens lazily
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        await store.put_if_newer(rec("c", Version(2, 0, "n")))
    with pytest.raises(StoreError, match="closed"):
        await store.get("c")
