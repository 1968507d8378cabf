"""Several managers on one shared store (SQLite file, real Redis, real PostgreSQL): no mirrors.

Each manager has its own store object, as a separate worker process would: a write
acknowledged by one is seen by every other's next get, list, count and search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _memory_helpers import FakeClock
from _store_kinds import SHARED_KINDS, new_store, store_target

from deep_tree_echo.aar_core.memory import MemoryManager


@pytest.fixture(params=SHARED_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return store_target(request, tmp_path)


@pytest.fixture
async def pair(target: tuple[str, str]) -> AsyncIterator[tuple[MemoryManager, MemoryManager]]:
    clock_a, clock_b = FakeClock(), FakeClock()
    clock_b.advance(-3600)  # b's wall clock runs an hour behind a's
    a = MemoryManager(new_store(target), node_id="node-1", wall_clock=clock_a)
    b = MemoryManager(new_store(target), node_id="node-10", wall_clock=clock_b)
    await a.initialize()
    await b.initialize()
    yield a, b
    await a.close()
    await b.close()


async def test_writes_of_one_manager_are_seen_by_the_others_next_reads(
    pair: tuple[MemoryManager, MemoryManager],
) -> None:
    a, b = pair
    await a.store_memory("x1", {"content": "the lab opens at nine", "importance": 0.9})
    assert await b.retrieve_memory("x1") == {"content": "the lab opens at nine", "importance": 0.9}
    assert [hit.id for hit in await b.search("lab opens")] == ["x1"]
    everything = await b.get_all_memories()
    assert everything == {"x1": {"content": "the lab opens at nine", "importance": 0.9}}
    assert await b.count() == 1

    # b's clock is behind, yet its update must win: it stamps past the version it read
    updated = await b.update_memory("x1", {"content": "the lab opens at ten"})
    assert await a.retrieve_memory("x1") == {"content": "the lab opens at ten"}
    assert [hit.id for hit in await a.search("ten")] == ["x1"]
    assert await a.search("nine") == []
    for manager in (a, b):  # access counts are group-committed: settle both writers first
        flush = getattr(manager.store, "flush", None)
        if flush is not None:
            await flush()
    record = await a.get_record("x1")
    assert record is not None and record.version == updated.version
    assert record.access_count == 2  # one access by each manager, counted in the shared row

    assert await a.delete_memory("x1")
    assert await b.retrieve_memory("x1") is None
    assert await b.search("lab") == []
    assert await b.count() == 0
    assert not await b.delete_memory("x1")


async def test_interleaved_writes_converge_and_every_search_sees_the_latest(
    pair: tuple[MemoryManager, MemoryManager],
) -> None:
    a, b = pair
    for step in range(12):
        writer, reader = (a, b) if step % 2 else (b, a)
        await writer.store_memory(f"m{step % 4}", {"content": f"topic{step} shared note"})
        hits = await reader.search(f"topic{step}")
        assert [hit.id for hit in hits] == [f"m{step % 4}"]
        assert await reader.retrieve_memory(f"m{step % 4}") == {
            "content": f"topic{step} shared note"
        }
    ids = sorted(hit.id for hit in await a.search("shared note"))
    assert ids == ["m0", "m1", "m2", "m3"]
    assert [r.id async for r in b.records()] == ["m0", "m1", "m2", "m3"]


async def test_tenants_are_isolated_in_the_shared_store(
    pair: tuple[MemoryManager, MemoryManager],
) -> None:
    a, b = pair
    await a.for_tenant("acme").store_memory("k", {"content": "acme secret plan"})
    await b.for_tenant("globex").store_memory("k", {"content": "globex secret plan"})
    assert await b.for_tenant("acme").retrieve_memory("k") == {"content": "acme secret plan"}
    assert [h.data["content"] for h in await b.for_tenant("acme").search("secret")] == [
        "acme secret plan"
    ]
    assert await a.retrieve_memory("k") is None  # tenant "default" holds nothing
    assert await a.search("secret") == []
    assert await a.for_tenant("globex").count() == 1
    assert await a.store.tenants() == ["acme", "globex"]
