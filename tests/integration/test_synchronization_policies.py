"""MemorySynchronization policy by policy: what each report counts, what each policy keeps
when versions disagree, how content merges, and what the conflict log records. Several
memories per run, so one memory's branch never ends the run for the next."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from deep_tree_echo.aar_core.memory import MemoryManager, MemoryRecord
from deep_tree_echo.integration.synchronization import MemorySynchronization


def managers(n: int) -> list[MemoryManager]:
    """Managers whose clocks step one second per reading: later writes are newer."""
    now = [1_000.0]

    def clock() -> float:
        now[0] += 1.0
        return now[0]

    return [MemoryManager(node_id=f"n{i}", wall_clock=clock) for i in range(n)]


def _aware(stamp: str) -> bool:
    return datetime.fromisoformat(stamp).tzinfo is not None


async def _everywhere(ms: list[MemoryManager], memory_id: str) -> list[Any]:
    return [await m.retrieve_memory(memory_id) for m in ms]


# -- latest ------------------------------------------------------------------------------------


async def test_latest_keeps_the_newest_version_whatever_its_importance() -> None:
    a, b, c = managers(3)
    await a.store_memory("x", {"content": "old", "importance": 0.9})
    await b.store_memory("x", {"content": "new", "importance": 0.1})
    await a.store_memory("y", {"content": "only on a"})
    sync = MemorySynchronization([a, b, c])

    report = await sync.synchronize_memories("latest")

    assert (report.policy, report.examined, report.updated, report.conflicts) == (
        "latest", 2, 4, [])  # x reaches a and c, y reaches b and c
    assert await _everywhere([a, b, c], "x") == [{"content": "new", "importance": 0.1}] * 3
    assert await _everywhere([a, b, c], "y") == [{"content": "only on a"}] * 3
    assert not sync.conflict_log
    assert _aware(sync.last_sync["latest"])
    again = await sync.synchronize_memories("latest")
    assert (again.examined, again.updated) == (2, 0)


# -- merge -------------------------------------------------------------------------------------


async def test_merge_reports_each_memory_and_goes_on_after_settled_ones() -> None:
    a, b = managers(2)
    await a.store_memory("a-deleted", {"content": "bye"})
    await b.apply_remote(await _record(a, "a-deleted"))
    await a.delete_memory("a-deleted")
    await a.store_memory("b-same", {"content": "same"})
    await b.apply_remote(await _record(a, "b-same"))
    await a.store_memory("c-clash", {"content": "from a", "importance": 0.9})
    await b.store_memory("c-clash", {"content": "from b", "importance": 0.2})
    sync = MemorySynchronization([a, b])

    report = await sync.synchronize_memories()  # merge is the default

    # a-deleted: the tombstone reaches b (1); b-same: nothing to do; c-clash: written once on
    # the first manager and copied to the second (2)
    assert (report.policy, report.examined, report.updated) == ("merge", 3, 3)
    assert await _everywhere([a, b], "a-deleted") == [None, None]
    merged = await a.retrieve_memory("c-clash")
    assert merged is not None and merged == await b.retrieve_memory("c-clash")
    assert (merged["content"], merged["importance"]) == ("from b", 0.9)
    assert _aware(merged["last_sync"]) and _aware(sync.last_sync["merge"])
    settled = await _record(b, "c-clash")
    assert settled.version.node_id == "n0"  # the first manager writes the settled record


async def _record(manager: MemoryManager, memory_id: str) -> MemoryRecord:
    record = await manager.get_record(memory_id, include_deleted=True)
    assert record is not None
    return record


@pytest.mark.parametrize(
    ("older", "newer", "content", "importance"),
    [
        # lists: the newer's items first, then the older's it lacks
        ({"content": ["x", "y"]}, {"content": ["y", "z"]}, ["y", "z", "x"], 0),
        # dicts merge key by key, recursively; the newer's value wins a clash
        ({"content": {"d": {"b": 2}, "k": "old"}}, {"content": {"d": {"a": 1}, "k": "new"}},
         {"d": {"b": 2, "a": 1}, "k": "new"}, 0),
        # an empty newer value keeps the older one
        ({"content": "kept"}, {"content": ""}, "kept", 0),
        ({"content": {"k": "kept"}}, {"content": {"k": None}}, {"k": "kept"}, 0),
        # a dict or a list against something else: the newer wins
        ({"content": "text"}, {"content": {"k": 1}}, {"k": 1}, 0),
        ({"content": {"k": 1}}, {"content": "text"}, "text", 0),
        ({"content": "text"}, {"content": ["a"]}, ["a"], 0),
        ({"content": ["a"]}, {"content": "text"}, "text", 0),
        # importance: the highest, a missing one counting as 0
        ({"content": "c", "importance": 0.5}, {"content": "c"}, "c", 0.5),
        ({"content": "c"}, {"content": "c", "importance": 0.3}, "c", 0.3),
        # no content in the newer version: the older's is taken
        ({"content": "older's"}, {"note": "n"}, "older's", 0),
    ],
)
async def test_merge_of_two_versions(
    older: dict[str, Any], newer: dict[str, Any], content: Any, importance: float
) -> None:
    a, b = managers(2)
    await a.store_memory("m", older)
    await b.store_memory("m", newer)
    await MemorySynchronization([a, b]).synchronize_memories("merge")
    merged = await a.retrieve_memory("m")
    assert merged is not None and merged == await b.retrieve_memory("m")
    assert (merged.get("content"), merged["importance"]) == (content, importance)


async def test_merge_of_three_versions_takes_the_highest_importance_of_all() -> None:
    a, b, c = managers(3)
    await a.store_memory("m", {"content": ["a"], "importance": 0.7})
    await b.store_memory("m", {"content": ["b"], "importance": 0.1})
    await c.store_memory("m", {"content": ["c"]})
    await MemorySynchronization([a, b, c]).synchronize_memories("merge")
    merged = await _everywhere([a, b, c], "m")
    assert all(m == merged[0] for m in merged)
    assert (merged[0]["content"], merged[0]["importance"]) == (["c", "b", "a"], 0.7)


# -- conflict_resolution -----------------------------------------------------------------------


async def test_conflict_resolution_reports_logs_and_asks_the_resolver_by_id() -> None:
    a, b = managers(2)
    await a.store_memory("a-deleted", {"content": "bye"})
    await b.store_memory("a-deleted", {"content": "bye!"})
    await b.delete_memory("a-deleted")
    await a.store_memory("b-same", {"content": "same"})
    await b.store_memory("b-same", {"content": "same"})  # two versions, one value: no conflict
    await a.store_memory("c-clash", {"content": "from a"})
    await b.store_memory("c-clash", {"content": "from b"})
    asked: list[tuple[str, list[str]]] = []

    def resolver(memory_id: str, versions: list[MemoryRecord]) -> dict[str, Any]:
        asked.append((memory_id, sorted(r.data["content"] for r in versions)))
        return {"content": "settled"}

    sync = MemorySynchronization([a, b], resolver=resolver)
    assert sync.conflict_log.maxlen == 1000
    live = [(await _record(m, "c-clash")).version.to_str() for m in (a, b)]

    report = await sync.synchronize_memories("conflict_resolution")

    # a-deleted: the tombstone reaches a (1); b-same: b's newer version reaches a (1);
    # c-clash: written once and copied (2)
    assert (report.policy, report.examined, report.updated, report.conflicts) == (
        "conflict_resolution", 3, 4, ["c-clash"])
    assert asked == [("c-clash", ["from a", "from b"])]
    [entry] = sync.conflict_log
    assert set(entry) == {"memory_id", "versions", "chosen", "at"}
    assert (entry["memory_id"], entry["chosen"]) == ("c-clash", {"content": "settled"})
    assert sorted(entry["versions"]) == sorted(live)
    assert _aware(entry["at"])
    assert await _everywhere([a, b], "a-deleted") == [None, None]
    assert await _everywhere([a, b], "c-clash") == [{"content": "settled"}] * 2


@pytest.mark.parametrize(
    ("first", "second", "chosen"),
    [
        # a missing importance counts as 0, below any given one
        ({"content": "x"}, {"content": "y", "importance": 0.5}, "y"),
        ({"content": "y", "importance": 0.5}, {"content": "x"}, "y"),
        # an explicit 0 is 0, and the newer version breaks a tie
        ({"content": "y", "importance": 0.5}, {"content": "x", "importance": 0}, "y"),
        ({"content": "x", "importance": 0.2}, {"content": "y", "importance": 0.2}, "y"),
    ],
)
async def test_default_resolver_keeps_the_most_important_version(
    first: dict[str, Any], second: dict[str, Any], chosen: str
) -> None:
    a, b = managers(2)
    await a.store_memory("m", first)
    await b.store_memory("m", second)
    await MemorySynchronization([a, b]).synchronize_memories("conflict_resolution")
    results = await _everywhere([a, b], "m")
    assert [r["content"] for r in results] == [chosen, chosen]


async def test_unknown_policy_names_the_known_ones() -> None:
    with pytest.raises(ValueError) as refused:
        await MemorySynchronization(managers(1)).synchronize_memories("random")
    assert str(refused.value) == (
        "unknown sync policy 'random'; expected one of merge, latest, conflict_resolution")
