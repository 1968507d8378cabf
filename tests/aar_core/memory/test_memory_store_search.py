"""Search in every store: same candidates and ranking inputs, filters before the cut, versions."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _store_kinds import ALL_KINDS, new_store, store_target

from deep_tree_echo.aar_core.memory import (
    InMemoryStore,
    MemoryRecord,
    MemoryStore,
    RankWeights,
    Version,
)
from deep_tree_echo.aar_core.memory._bm25 import tokenize

WORDS = [
    "lab",
    "opens",
    "nine",
    "river",
    "coffee",
    "report",
    "garden",
    "train",
    "music",
    "budget",
    "window",
    "vault",
]
W = RankWeights()


@pytest.fixture(params=ALL_KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return store_target(request, tmp_path)


@pytest.fixture
async def store(target: tuple[str, str]) -> AsyncIterator[MemoryStore]:
    s = new_store(target)
    await s.open()
    yield s
    await s.close()


def corpus() -> list[MemoryRecord]:
    rng = random.Random(3)
    out = []
    for i in range(60):
        words = rng.choices(WORDS, k=rng.randint(2, 9))
        data = {"content": " ".join(words), "importance": rng.randint(1, 10), "kind": i % 3}
        out.append(MemoryRecord(f"m{i:02d}", data, Version(i + 1, 0, "n"), 100.0, 100.0 + i))
    return out


async def test_every_store_finds_the_same_matches_as_the_in_memory_index(
    store: MemoryStore,
) -> None:
    reference = InMemoryStore()
    for r in corpus():
        assert await store.put_if_newer(r)
        await reference.put_if_newer(r)
    for query in ("vault", "river coffee", "lab opens nine", "nothing here", ""):
        terms = tokenize(query)
        want = await reference.search(terms, limit=100, weights=W, now=1000.0)
        got = await store.search(terms, limit=100, weights=W, now=1000.0)
        assert {h.id for h in got} == {h.id for h in want}, query
        by_id = {h.id: h for h in want}
        for hit in got:  # recency and importance are the same inputs in every store
            assert hit.recency == pytest.approx(by_id[hit.id].recency)
            assert hit.importance == pytest.approx(by_id[hit.id].importance)
    # filters apply before the candidate cut, and to every kind of query
    hits = await store.search(
        tokenize("vault"), limit=100, weights=W, now=1000.0, filters={"kind": 2}
    )
    want = await reference.search(
        tokenize("vault"), limit=100, weights=W, now=1000.0, filters={"kind": 2}
    )
    assert hits and {h.id for h in hits} == {h.id for h in want}
    assert all(h.data["kind"] == 2 for h in hits)


async def test_deleted_and_expired_memories_are_not_found(store: MemoryStore) -> None:
    live = MemoryRecord("a", {"content": "harbour lights"}, Version(1, 0, "n"), 1.0, 1.0)
    gone = MemoryRecord("b", {"content": "harbour fog"}, Version(1, 0, "n"), 1.0, 1.0)
    old = MemoryRecord(
        "c", {"content": "harbour storm"}, Version(1, 0, "n"), 1.0, 1.0, expires_at=50.0
    )
    for r in (live, gone, old):
        await store.put_if_newer(r)
    await store.put_if_newer(MemoryRecord("b", {}, Version(2, 0, "n"), 1.0, 2.0, deleted=True))
    hits = await store.search(tokenize("harbour"), limit=10, weights=W, now=100.0)
    assert [h.id for h in hits] == ["a"]
    assert await store.count(live_at=100.0) == 1 and await store.count() == 3


async def test_node_ids_break_version_ties_like_python_in_every_store(store: MemoryStore) -> None:
    assert "node-1" < "node-10" < "node-2" < "node-a"
    rec = lambda node: MemoryRecord("v", {"content": node}, Version(7, 3, node), 1.0, 1.0)  # noqa: E731
    assert await store.put_if_newer(rec("node-1"))
    assert await store.put_if_newer(rec("node-10"))
    assert not await store.put_if_newer(rec("node-1"))
    assert await store.put_if_newer(rec("node-2"))
    assert not await store.put_if_newer(rec("node-10"))
    got = await store.get("v")
    assert got is not None and got.version.node_id == "node-2"
    # a larger logical counter or wall time wins whatever the node id
    newer = MemoryRecord("v", {"content": "x"}, Version(7, 10, "a"), 1.0, 1.0)
    assert await store.put_if_newer(newer)
    assert not await store.put_if_newer(MemoryRecord("v", {}, Version(7, 9, "zz"), 1.0, 1.0))
