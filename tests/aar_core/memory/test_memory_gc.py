"""The in-memory store and session histories keep what they hold out of the garbage collector's
reach (plain tuples, JSON text, dicts of atomic values), so full collections do not grow with
the number of memories or turns; and the untracked form changes nothing callers can see."""

from __future__ import annotations

import gc
from typing import Any

from deep_tree_echo.aar_core.memory import InMemoryStore, MemoryManager, MemoryRecord, Version
from deep_tree_echo.aar_core.memory.ranking import RankWeights
from deep_tree_echo.aar_core.sessions import SessionRegistry, Turn

N = 2000


def _tracked() -> int:
    gc.collect()
    return len(gc.get_objects())


def _data(i: int) -> dict[str, Any]:
    """Shaped like the echo agent's memories: nested relations and dates, a unique word."""
    return {
        "content": f"note{i} the lab opens at nine",
        "kind": "episodic",
        "importance": 0.6,
        "session_id": f"s{i % 8}",
        "relations": {"session": f"s{i % 8}", "agent": "echo", "used_memories": [f"m{i}"]},
        "dates": [{"day": "2024-05-01"}],
    }


async def test_stored_memories_add_no_tracked_objects() -> None:
    async with MemoryManager() as manager:
        for i in range(50):  # the tenant, the index and the caches exist from here on
            await manager.store_memory(f"warm{i}", _data(i))
        before = _tracked()
        for i in range(N):
            await manager.store_memory(f"m{i}", _data(i))
        await manager.update_memory("m7", {**_data(7), "content": "changed"})
        await manager.retrieve_memory("m8")  # access counts rewrite the row
        await manager.delete_memory("m9")
        grown = _tracked() - before
        # a record used to be 6 tracked objects (record, version, data, relations, 2 lists)
        assert grown < N // 20, grown
        assert len(await manager.search("lab opens", limit=5)) == 5


async def test_session_turns_add_no_tracked_objects() -> None:
    registry = SessionRegistry(history=50)
    for s in range(40):
        registry.get_or_create(f"s{s}")
    before = _tracked()
    for i in range(N):
        session = registry.get_or_create(f"s{i % 40}")
        session.add_turn(Turn("text", f"said {i}", f"answer {i}", "echo", f"m{i}", float(i)))
    assert _tracked() - before < N // 20


def test_history_reads_as_a_bounded_sequence_of_turns() -> None:
    session = SessionRegistry(history=3).get_or_create("s")
    assert not session.history and len(session.history) == 0 and session.history.maxlen == 3
    turns = [Turn("text", f"t{i}", f"r{i}", "echo", "m0" if i else None, i) for i in range(5)]
    for turn in turns:
        session.add_turn(turn)
    assert list(session.history) == turns[2:]  # the oldest dropped
    assert session.history[-1] == turns[4] and session.history[0].text == "t2"
    assert session.history[1:] == turns[3:]
    assert turns[3] in session.history and turns[0] not in session.history
    assert session.history.exchanges() == [("t2", "r2"), ("t3", "r3"), ("t4", "r4")]


async def test_records_round_trip_and_filter_on_any_top_level_field() -> None:
    store = InMemoryStore()
    long_text = "x" * 500  # longer strings are not kept as filter fields: read from the JSON
    data = {"z": 1, "a": [1, {"b": None}], "long": long_text, "flag": True, "content": "lab"}
    rec = MemoryRecord("m1", data, Version(5, 1, "n"), 1.0, 2.0, 3, 4.0, None, False, {"e": 1})
    assert await store.put_if_newer(rec)
    other = MemoryRecord("m2", {"content": "lab", "long": "y"}, Version(6, 0, "n"), 1.0, 2.0)
    assert await store.put_if_newer(other)
    got = await store.get("m1")
    assert got == rec and list(got.data) == ["z", "a", "long", "flag", "content"]
    got.data["z"] = 2  # the caller's copy: the store is not changed through it
    assert (await store.get("m1")) == rec
    assert not await store.put_if_newer(MemoryRecord("m1", {}, Version(5, 1, "n"), 1.0, 2.0))
    w = RankWeights()

    async def hits(filters: dict[str, Any]) -> list[str]:
        found = await store.search(["lab"], limit=5, weights=w, now=10.0, filters=filters)
        return sorted(r.id for r in found)

    assert await hits({"long": long_text}) == ["m1"]
    assert await hits({"a": [1, {"b": None}]}) == ["m1"]
    assert await hits({"flag": True}) == ["m1"]
    assert await hits({"long": "y"}) == ["m2"]
    assert await hits({"a": None}) == []  # absent matches nothing, not even None
    assert await hits({"z": 1, "long": long_text}) == ["m1"]
    assert await hits({"z": 1, "long": "y"}) == []
    await store.record_access("m1", 9.0, 2)
    after = await store.get("m1")
    assert after is not None and (after.access_count, after.last_access) == (5, 9.0)
    assert after.version == rec.version and after.data == data and after.extra == {"e": 1}
