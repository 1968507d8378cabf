"""MemorySynchronization: the seed's three policies over versioned records."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_tree_echo.aar_core.memory import MemoryManager, SQLiteStore
from deep_tree_echo.integration.synchronization import MemorySynchronization


def managers(n: int) -> list[MemoryManager]:
    return [MemoryManager(node_id=f"n{i}") for i in range(n)]


async def snapshot(ms: list[MemoryManager]) -> list[dict[str, dict[str, object]]]:
    return [await m.get_all_memories() for m in ms]


async def test_latest_wins_and_deletes_propagate() -> None:
    a, b, c = managers(3)
    await a.store_memory("x", {"content": "old"})
    await b.store_memory("x", {"content": "new"})
    await c.store_memory("gone", {"content": "bye"})
    await a.store_memory("gone", {"content": "bye"})
    await c.delete_memory("gone")
    report = await MemorySynchronization([a, b, c]).synchronize_memories("latest")
    assert report.examined == 2
    states = await snapshot([a, b, c])
    assert all(s == {"x": {"content": "new"}} for s in states)


async def test_merge_takes_max_importance_and_merges_content() -> None:
    a, b = managers(2)
    await a.store_memory("m", {"content": {"k1": 1, "shared": "a"}, "importance": 0.9})
    await b.store_memory("m", {"content": {"k2": 2, "shared": "b"}, "importance": 0.2})
    sync = MemorySynchronization([a, b])
    await sync.synchronize_memories("merge")
    da, db = await a.retrieve_memory("m"), await b.retrieve_memory("m")
    assert da == db
    assert da is not None
    assert da["importance"] == 0.9
    assert da["content"] == {"k1": 1, "k2": 2, "shared": "b"}  # newer (b) wins a clash
    assert "last_sync" in da
    assert "merge" in sync.last_sync
    ra, rb = await a.get_record("m"), await b.get_record("m")
    assert ra is not None and rb is not None and ra.version == rb.version


async def test_second_sync_changes_nothing() -> None:
    a, b = managers(2)
    await a.store_memory("m", {"content": "one"})
    await b.store_memory("n", {"content": "two"})
    sync = MemorySynchronization([a, b])
    await sync.synchronize_memories("merge")
    before = [await m.get_record("m") for m in (a, b)]
    again = await sync.synchronize_memories("merge")
    assert again.updated == 0
    assert [await m.get_record("m") for m in (a, b)] == before


async def test_conflicts_are_logged_and_resolved_by_importance(tmp_path: Path) -> None:
    a = MemoryManager(SQLiteStore(tmp_path / "a.db"), node_id="a")
    b = MemoryManager(node_id="b")
    await a.store_memory("c", {"content": "important", "importance": 0.8})
    await b.store_memory("c", {"content": "trivial", "importance": 0.1})
    sync = MemorySynchronization([a, b])
    report = await sync.synchronize_memories("conflict_resolution")
    assert report.conflicts == ["c"]
    assert sync.conflict_log[-1]["chosen"]["content"] == "important"
    assert (await b.retrieve_memory("c")) == {"content": "important", "importance": 0.8}
    await a.close()
    reopened = MemoryManager(SQLiteStore(tmp_path / "a.db"), node_id="a")
    assert (await reopened.retrieve_memory("c")) == {"content": "important", "importance": 0.8}
    await reopened.close()


async def test_unknown_policy_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown sync policy"):
        await MemorySynchronization(managers(2)).synchronize_memories("random")


async def test_settled_write_beats_a_replica_whose_clock_runs_ahead() -> None:
    now = [1_000.0]
    a = MemoryManager(node_id="a", wall_clock=lambda: now[0])
    b = MemoryManager(node_id="b", wall_clock=lambda: now[0] + 3600)  # an hour ahead
    await a.store_memory("c", {"content": "important", "importance": 0.8})
    await b.store_memory("c", {"content": "trivial", "importance": 0.1})
    for policy in ("conflict_resolution", "merge"):
        await MemorySynchronization([a, b]).synchronize_memories(policy)
        ra, rb = await a.get_record("c"), await b.get_record("c")
        assert ra is not None and rb is not None
        assert ra.version == rb.version
        assert ra.data["importance"] == 0.8 and rb.data == ra.data
