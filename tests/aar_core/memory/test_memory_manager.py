"""MemoryManager: the public API, validation, TTL, versions, events and store failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _memory_helpers import FakeClock, RecordingBus

from deep_tree_echo.aar_core.errors import (
    InvalidMemoryError,
    NotInitializedError,
    StoreError,
)
from deep_tree_echo.aar_core.memory import (
    HybridLogicalClock,
    InMemoryStore,
    MemoryManager,
    MemoryRecord,
    SQLiteStore,
    Version,
)
from deep_tree_echo.errors import EchoError


class BrokenStore(InMemoryStore):
    """A real in-memory store whose writes can be switched to fail (a disk-full stand-in)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = "default") -> bool:
        if self.broken:
            raise OSError("disk full")
        return await super().put_if_newer(record, tenant=tenant)


async def test_works_without_initialize_and_round_trips_copies() -> None:
    m = MemoryManager()
    data = {"content": "hello", "tags": ["a"], "importance": 3}
    record = await m.store_memory("m1", data)
    assert record.id == "m1" and record.data == data and not record.deleted
    data["content"] = "changed by caller"  # the manager kept its own copy
    got = await m.retrieve_memory("m1")
    assert got == {"content": "hello", "tags": ["a"], "importance": 3}
    assert got is not None
    got["tags"].append("b")  # and hands out copies
    assert await m.retrieve_memory("m1") == {"content": "hello", "tags": ["a"], "importance": 3}
    assert await m.retrieve_memory("nope") is None
    await m.close()


async def test_upsert_reports_created_and_keeps_created_at_and_access_count() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    first, created = await m.upsert("u", {"content": "v1"})
    assert created
    await m.retrieve_memory("u")
    await m.retrieve_memory("u")
    clock.advance(60)
    second, created_again = await m.upsert("u", {"content": "v2"})
    assert not created_again
    assert second.created_at == first.created_at
    assert second.updated_at == first.updated_at + 60
    assert second.access_count == 2 and second.last_access == first.updated_at
    assert second.version > first.version
    rec = await m.get_record("u")
    assert rec is not None and rec.data == {"content": "v2"} and rec.access_count == 2
    updated = await m.update_memory("u", {"content": "v3"})
    assert updated.data == {"content": "v3"}
    assert m.stats["stores"] == 1 and m.stats["updates"] == 2


class CountingStore(SQLiteStore):
    """A real SQLite store that counts the reads of single memories it is asked for."""

    gets = 0

    async def get(self, memory_id: str, *, tenant: str = "default") -> MemoryRecord | None:
        self.gets += 1
        return await super().get(memory_id, tenant=tenant)


async def test_add_memory_stores_under_a_fresh_id_without_reading_first(tmp_path: Path) -> None:
    clock = FakeClock()
    bus = RecordingBus()
    store = CountingStore(tmp_path / "m.db")
    async with MemoryManager(store, event_bus=bus, wall_clock=clock) as m:
        data = {"content": "lab opens at nine", "session_id": "s1"}
        first = await m.add_memory(data, ttl=30)
        second = await m.for_tenant("t2").add_memory({"content": "lab opens at nine"})
        assert store.gets == 0  # one store call per new memory
        assert first.id != second.id and first.id.startswith("mem-")
        assert first.data == data and first.created_at == first.updated_at == clock()
        assert first.expires_at == clock() + 30 and first.access_count == 0
        data["content"] = "changed by caller"
        assert await m.retrieve_memory(first.id) == {"content": "lab opens at nine",
                                                      "session_id": "s1"}
        assert await m.retrieve_memory(second.id) is None  # it went to tenant t2
        assert await m.for_tenant("t2").get_record(second.id) == second
        assert [r.id for r in await m.search("lab opens")] == [first.id]
        assert [(p["memory_id"], p["action"], p["session_id"], p["tenant"])
                for _, p in bus.events] == [(first.id, "created", "s1", "default"),
                                            (second.id, "created", None, "t2")]
        assert m.stats["stores"] == 2 and m.stats["updates"] == 0
        with pytest.raises(InvalidMemoryError):
            await m.add_memory({"content": "x"}, ttl=-1)
        with pytest.raises(InvalidMemoryError):
            await m.add_memory({"bad": float("nan")})
        assert await m.count() == 1 and m.stats["errors"] == 2


class LosingStore(InMemoryStore):
    """A real in-memory store where another writer's newer version always got there first."""

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = "default") -> bool:
        return False


async def test_writes_that_keep_losing_raise_store_error_and_count_errors() -> None:
    store = LosingStore()
    await InMemoryStore.put_if_newer(store, MemoryRecord("old", {"content": "x"},
                                                         Version(1, 0, "n"), 1.0, 1.0))
    bus = RecordingBus()
    m = MemoryManager(store, event_bus=bus)
    with pytest.raises(InvalidMemoryError):  # an error counted before: each adds one more
        await m.add_memory({"content": "x"}, ttl=0)
    with pytest.raises(StoreError, match=r"new memory id 'mem-[0-9a-f]{32}' is already taken"):
        await m.add_memory({"content": "b"})
    with pytest.raises(StoreError, match="write of 'x' kept losing"):
        await m.store_memory("x", {"content": "a"})
    with pytest.raises(StoreError, match="delete of 'old' kept losing"):
        await m.delete_memory("old")
    assert m.stats["errors"] == 4
    assert m.stats["stores"] == m.stats["updates"] == m.stats["deletes"] == 0
    assert bus.events == []


async def test_records_are_sorted_copies_live_unless_include_deleted() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("c", {"content": "c"})
    await m.store_memory("a", {"content": "a", "tags": ["x"]})
    await m.store_memory("b", {"content": "b"}, ttl=10)
    await m.store_memory("d", {"content": "d"})
    await m.delete_memory("d")
    clock.advance(11)  # "b" has expired
    live = [r async for r in m.records()]
    assert [r.id for r in live] == ["a", "c"]
    assert live[0].data == {"content": "a", "tags": ["x"]}
    live[0].data["tags"].append("mutated")
    assert (await m.get_record("a")) is not None
    assert (await m.retrieve_memory("a")) == {"content": "a", "tags": ["x"]}
    everything = {r.id: r async for r in m.records(include_deleted=True)}
    assert list(everything) == ["a", "b", "c", "d"]
    assert everything["d"].deleted and everything["b"].expires_at is not None
    await m.close()


async def test_retrieve_bumps_access_but_get_record_does_not() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("a", {"content": "x"})
    clock.advance(5)
    await m.retrieve_memory("a")
    rec = await m.get_record("a")
    assert rec is not None and rec.access_count == 1 and rec.last_access == clock.t
    await m.get_record("a")
    rec = await m.get_record("a")
    assert rec is not None and rec.access_count == 1
    stored = await m.store.get("a")
    assert stored is not None and stored.access_count == 1


async def test_delete_writes_a_tombstone_and_reports_liveness() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    v1 = await m.store_memory("d", {"content": "bye"})
    await m.retrieve_memory("d")
    read_at = clock()
    clock.advance(5)
    assert await m.delete_memory("d")
    assert not await m.delete_memory("d")
    assert not await m.delete_memory("never-existed")
    assert await m.retrieve_memory("d") is None
    assert await m.get_record("d") is None
    assert await m.get_all_memories() == {}
    assert await m.count() == 0
    tomb = await m.store.get("d")
    assert tomb is not None and tomb.deleted and tomb.version > v1.version
    # the tombstone keeps the memory's history; only include_deleted shows it
    assert (tomb.access_count, tomb.last_access, tomb.created_at) == (1, read_at, v1.created_at)
    assert tomb.updated_at == clock() and tomb.data == {}
    assert await m.get_record("d", include_deleted=True) == tomb
    await m.store_memory("d2", {"content": "also bye"})
    assert await m.delete_memory("d2")
    assert m.stats["deletes"] == 2
    _, created = await m.upsert("d", {"content": "again"})
    assert created
    assert await m.retrieve_memory("d") == {"content": "again"}


async def test_get_all_memories_and_count_list_live_only() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("keep", {"content": "k"})
    await m.store_memory("gone", {"content": "g"})
    await m.store_memory("short", {"content": "s"}, ttl=10)
    await m.delete_memory("gone")
    assert await m.get_all_memories() == {"keep": {"content": "k"}, "short": {"content": "s"}}
    assert await m.count() == 2
    clock.advance(10)
    assert await m.get_all_memories() == {"keep": {"content": "k"}}
    assert await m.count() == 1


async def test_ttl_expiry_with_injected_clock() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    rec = await m.store_memory("t", {"content": "ephemeral secret"}, ttl=30)
    assert rec.expires_at == clock.t + 30
    clock.advance(29.9)
    assert await m.retrieve_memory("t") == {"content": "ephemeral secret"}
    assert [r.id for r in await m.search("ephemeral")] == ["t"]
    clock.advance(0.1)
    assert await m.retrieve_memory("t") is None
    assert await m.get_record("t") is None
    assert await m.search("ephemeral") == []
    assert await m.search("") == []
    assert not await m.delete_memory("t")  # nothing live to delete
    _, created = await m.upsert("t", {"content": "fresh"})
    assert created


async def test_ttl_is_cleared_by_a_write_without_ttl() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("t", {"content": "a"}, ttl=5)
    await m.store_memory("t", {"content": "b"})
    clock.advance(3600)
    assert await m.retrieve_memory("t") == {"content": "b"}


async def test_last_write_wins_even_when_the_wall_clock_steps_back() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    first = await m.store_memory("k", {"content": "first"})
    clock.advance(-7200)
    second = await m.store_memory("k", {"content": "second"})
    assert second.version > first.version
    assert await m.retrieve_memory("k") == {"content": "second"}
    stored = await m.store.get("k")
    assert stored is not None and stored.data == {"content": "second"}


BAD_IDS: list[Any] = ["", "a/b", "tab\there", "nl\n", "del\x7f", "x" * 257, 42, None, "\ud800"]
BAD_DATA: list[Any] = [
    ["not", "a", "dict"],
    "string",
    {"x": float("nan")},
    {"x": float("inf")},
    {"x": object()},
    {"x": b"bytes"},
    {"big": "x" * 300},
]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_invalid_ids_are_rejected_before_anything_is_written(bad_id: Any) -> None:
    bus = RecordingBus()
    m = MemoryManager(event_bus=bus, max_data_bytes=200)
    await m.store_memory("ok", {"content": "original"})
    events_before = len(bus.events)
    with pytest.raises(InvalidMemoryError) as info:
        await m.store_memory(bad_id, {"content": "x"})
    assert isinstance(info.value, EchoError) and isinstance(info.value, ValueError)
    assert info.value.code == "invalid_memory"
    with pytest.raises(InvalidMemoryError):
        await m.delete_memory(bad_id)
    assert await m.store.count() == 1
    assert len(bus.events) == events_before


@pytest.mark.parametrize("bad_data", BAD_DATA)
async def test_invalid_data_leaves_existing_memory_untouched(bad_data: Any) -> None:
    bus = RecordingBus()
    m = MemoryManager(event_bus=bus, max_data_bytes=200)
    before = await m.store_memory("ok", {"content": "original"})
    with pytest.raises(InvalidMemoryError):
        await m.store_memory("ok", bad_data)
    with pytest.raises(InvalidMemoryError):
        await m.upsert("new", bad_data)
    assert await m.retrieve_memory("ok") == {"content": "original"}
    stored = await m.store.get("ok")
    assert stored is not None and stored.version == before.version
    assert await m.store.get("new") is None
    assert [e[1]["action"] for e in bus.events] == ["created"]
    assert m.stats["errors"] == 2


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), "10", True])
async def test_invalid_ttl_is_rejected(ttl: Any) -> None:
    m = MemoryManager()
    with pytest.raises(InvalidMemoryError):
        await m.store_memory("t", {"content": "x"}, ttl=ttl)
    assert await m.count() == 0


async def test_data_size_limit_counts_utf8_bytes() -> None:
    m = MemoryManager(max_data_bytes=40)
    await m.store_memory("fits", {"c": "é" * 10})  # 20 bytes of text + 8 of JSON
    with pytest.raises(InvalidMemoryError) as info:
        await m.store_memory("too-big", {"c": "é" * 20})
    assert info.value.details["limit"] == 40


async def test_events_are_emitted_after_each_acknowledged_change() -> None:
    bus = RecordingBus()
    m = MemoryManager(event_bus=bus)
    r1 = await m.store_memory("e", {"content": "a", "session_id": "s1"})
    r2 = await m.update_memory("e", {"content": "b", "context": {"session_id": "s2"}})
    await m.store_memory("f", {"content": "no session"})
    await m.delete_memory("e")
    await m.delete_memory("e")  # nothing live: no event
    assert [t for t, _ in bus.events] == ["memory.update"] * 4
    payloads = [p for _, p in bus.events]
    assert payloads[0] == {
        "memory_id": "e",
        "action": "created",
        "session_id": "s1",
        "version": r1.version.to_str(),
        "tenant": "default",
    }
    assert payloads[1] == {
        "memory_id": "e",
        "action": "updated",
        "session_id": "s2",
        "version": r2.version.to_str(),
        "tenant": "default",
    }
    assert payloads[2]["session_id"] is None and payloads[2]["action"] == "created"
    assert payloads[3]["action"] == "deleted" and payloads[3]["session_id"] == "s2"
    assert payloads[3]["memory_id"] == "e"
    tomb = await m.store.get("e")
    assert tomb is not None and payloads[3]["version"] == tomb.version.to_str()


async def test_a_failing_event_bus_never_fails_the_write() -> None:
    bus = RecordingBus(fail=True)
    m = MemoryManager(event_bus=bus)
    await m.store_memory("x", {"content": "still stored"})
    assert await m.retrieve_memory("x") == {"content": "still stored"}
    assert await m.delete_memory("x")
    assert len(bus.events) == 2


async def test_store_failure_raises_store_error_and_leaves_index_consistent() -> None:
    store = BrokenStore()
    bus = RecordingBus()
    m = MemoryManager(store, event_bus=bus)
    await m.store_memory("s", {"content": "old apples"})
    store.broken = True
    with pytest.raises(StoreError) as info:
        await m.store_memory("s", {"content": "new bananas"})
    assert info.value.code == "store_error"
    with pytest.raises(StoreError):
        await m.store_memory("other", {"content": "bananas too"})
    with pytest.raises(StoreError):
        await m.delete_memory("s")
    assert await m.retrieve_memory("s") == {"content": "old apples"}
    assert await m.search("bananas") == []
    assert [r.id for r in await m.search("apples")] == ["s"]
    assert await m.count() == 1
    assert [p["action"] for _, p in bus.events] == ["created"]
    assert m.stats["errors"] == 3
    store.broken = False
    await m.store_memory("s", {"content": "new bananas"})
    assert [r.id for r in await m.search("bananas")] == ["s"]


async def test_apply_remote_is_last_writer_wins_and_advances_the_clock() -> None:
    clock = FakeClock()
    bus = RecordingBus()
    a = MemoryManager(node_id="a", wall_clock=clock)
    b = MemoryManager(node_id="b", wall_clock=clock, event_bus=bus)
    rec_a = await a.store_memory("r", {"content": "from a", "session_id": "s"})
    assert await b.apply_remote(rec_a)
    assert not await b.apply_remote(rec_a)  # duplicate delivery is a no-op
    assert await b.retrieve_memory("r") == {"content": "from a", "session_id": "s"}
    assert [r.id for r in await b.search("from")] == ["r"]
    # A stamp from a node whose clock runs an hour ahead: b's next local write must beat it.
    future = MemoryRecord(
        id="r",
        data={"content": "future"},
        version=Version(rec_a.version.wall_ms + 3_600_000, 0, "c"),
        created_at=clock.t,
        updated_at=clock.t,
    )
    assert await b.apply_remote(future)
    assert not await b.apply_remote(rec_a)  # older replica arriving late
    local = await b.store_memory("r", {"content": "local after"})
    assert local.version > future.version
    assert await b.retrieve_memory("r") == {"content": "local after"}
    tomb = MemoryRecord(
        id="r",
        data={},
        version=Version(local.version.wall_ms + 1, 0, "a"),
        created_at=clock.t,
        updated_at=clock.t,
        deleted=True,
    )
    assert await b.apply_remote(tomb)
    assert await b.retrieve_memory("r") is None
    assert [p["action"] for _, p in bus.events] == ["created", "updated", "updated", "deleted"]
    assert b.stats["remote_applied"] == 3


async def test_sqlite_backed_manager_reloads_index_and_clock_on_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "mem.db"
    m = MemoryManager(SQLiteStore(path), node_id="n", wall_clock=clock)
    await m.initialize()
    await m.store_memory("a", {"content": "persistent walrus", "importance": 9})
    last = await m.store_memory("b", {"content": "persistent otter"}, ttl=100)
    await m.store_memory("c", {"content": "deleted heron"})
    await m.delete_memory("c")
    await m.retrieve_memory("a")
    await m.close()
    await m.close()  # idempotent
    with pytest.raises(NotInitializedError):
        await m.retrieve_memory("a")

    clock.advance(-600)  # the machine restarts with its clock behind
    m2 = MemoryManager(SQLiteStore(path), node_id="n", wall_clock=clock)
    await m2.initialize()
    assert await m2.count() == 2
    assert await m2.retrieve_memory("c") is None
    rec = await m2.get_record("a")
    assert rec is not None and rec.access_count == 1
    assert {r.id for r in await m2.search("persistent")} == {"a", "b"}
    assert await m2.search("heron") == []
    newer = await m2.store_memory("b", {"content": "after restart"})
    assert newer.version > last.version
    await m2.close()


async def test_explicit_clock_and_node_id_must_agree() -> None:
    clock = HybridLogicalClock("x")
    assert MemoryManager(clock=clock).node_id == "x"
    with pytest.raises(ValueError):
        MemoryManager(clock=clock, node_id="y")


async def test_manager_is_an_async_context_manager(tmp_path: Path) -> None:
    async with MemoryManager(SQLiteStore(tmp_path / "ctx.db")) as m:
        await m.store_memory("k", {"content": "v"})
        assert await m.count() == 1
