"""Shared by the search-cache tests of the SQL stores: random writes through one store, each
followed by a search through another, checked against a model index of what is live."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

from _topk_checks import WORDS, assert_exact_top

from deep_tree_echo.aar_core.memory import MemoryRecord, MemoryStore, Version
from deep_tree_echo.aar_core.memory._bm25 import BM25Index
from deep_tree_echo.aar_core.memory._postcache import PostingsCache
from deep_tree_echo.aar_core.memory.ranking import Candidate

Search = Callable[[str, int], Awaitable[list[Candidate] | None]]


def rec(
    mid: str, text: str, version: int, *, deleted: bool = False, expires: float | None = None
) -> MemoryRecord:
    """A memory of tenant-agnostic shape (``k`` lets filters pick a third of them)."""
    data = {} if deleted else {"content": text, "k": version % 3}
    return MemoryRecord(
        mid, data, Version(version, 0, "n"), 1.0, 1.0, expires_at=expires, deleted=deleted
    )


async def assert_warmed(cache: PostingsCache[Any] | None, loaded: int, search: Search) -> None:
    """A store opened on 600 memories with an 8,000-posting budget warmed at most a quarter of
    it (SQLite a quarter, PostgreSQL a tenth), and holds the most frequent term: searching it
    reads no postings."""
    assert cache is not None and loaded > 0 and cache.loads == loaded
    assert 0 < cache.size <= 2000  # at most a quarter of the budget
    got = await search("w0", 10)
    assert got is not None and len(got) == 10
    assert cache.loads == loaded and cache.hits == 1


def queries(texts: list[str], count: int) -> list[str]:
    """Fixed queries over the most frequent words, then ``count`` of 1-3 words of a random
    memory."""
    rng = random.Random(3)
    out = ["w0", "w0 w1", "w0 w1 w2 w3", "w299 w0", "w0 w0 w5", "w250 w280"]
    for _ in range(count):
        words = rng.choice(texts).split()
        out.append(" ".join(rng.sample(words, min(len(words), rng.randint(1, 3)))))
    return out


async def random_writes_then_searches(
    writer: MemoryStore, search: Search, *, steps: int, seed: int, expiry: bool = False
) -> None:
    """200 memories, then ``steps`` random puts, rewrites, tombstones, purges (and, with
    ``expiry``, rewrites that have expired by search time, ``now`` = 10) by ``writer``, each
    followed by ``search``; every answer has the model's exact BM25 top 15. Expired memories
    still count in BM25's N and df until purged, as in the stores."""
    rng = random.Random(seed)
    words = WORDS[:40]
    model = BM25Index()
    versions: dict[str, int] = {}
    tombstones: dict[str, int] = {}
    expired: set[str] = set()

    async def put(mid: str, version: int, expires: float | None = None) -> None:
        text = " ".join(rng.choices(words, k=rng.randint(1, 14)))
        assert await writer.put_if_newer(rec(mid, text, version, expires=expires), tenant="t")
        model.add(mid, text)
        versions[mid] = version
        tombstones.pop(mid, None)
        expired.discard(mid)
        if expires is not None:
            expired.add(mid)

    for i in range(200):
        await put(f"m{i}", 1)
    for step in range(steps):
        op = rng.random()
        mid = f"m{rng.randrange(260)}"
        version = versions.get(mid, 0) + 1
        if op < 0.5:  # put or rewrite
            await put(mid, version)
        elif op < 0.6 and expiry:
            await put(mid, version, expires=5.0)
        elif op < 0.8 and mid in model:  # tombstone
            assert await writer.put_if_newer(rec(mid, "", version, deleted=True), tenant="t")
            model.remove(mid)
            versions[mid] = version
            tombstones[mid] = version
            expired.discard(mid)
        elif tombstones:  # purge a tombstone (its row id may be reused by the next put)
            gone = rng.choice(sorted(tombstones))
            purged = await writer.purge({gone: Version(tombstones.pop(gone), 0, "n")}, tenant="t")
            assert purged == [gone]
            del versions[gone]
        query = " ".join(rng.sample(words[:12], rng.randint(1, 3)))
        got = await search(query, 15)
        assert got is not None
        want = model.top(query, 15, lambda d: d not in expired)
        if want:
            assert_exact_top(got, want, f"step {step}: {query}")
        else:
            assert got == []
