"""The PostgreSQL store's search cache: exact BM25 top-k through the class walk, never stale
whatever another engine (connection pool, as another node would be) writes, dead memories
skipped, and concurrent searches of one store keep it moving forward only."""

from __future__ import annotations

import asyncio

import pytest
from _cache_model import assert_warmed, queries, random_writes_then_searches, rec
from _topk_checks import LENGTHS, assert_exact_top, corpus

from deep_tree_echo.aar_core.memory._bm25 import BM25Index, tokenize
from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore
from deep_tree_echo.aar_core.memory.ranking import Candidate


async def top(store: PostgresStore, query: str, pool: int, now: float = 0.0) -> list[Candidate]:
    return await store._top(tokenize(query), tenant="t", pool=pool, now=now, filters=None)


@pytest.mark.parametrize("lengths", LENGTHS)
async def test_cached_top_k_has_the_exact_bm25_scores(
    postgres_db: str, lengths: tuple[int, int]
) -> None:
    texts = corpus(800, 5, lengths)
    store = PostgresStore(postgres_db, cache_min_df=8)
    index = BM25Index()
    await store.put_many([rec(f"m{i}", t, 1) for i, t in enumerate(texts)], tenant="t")
    for i, text in enumerate(texts):
        index.add(f"m{i}", text)
    await store.put_if_newer(rec("x", "w0 w0 w0", 1), tenant="u")  # never a candidate
    try:
        for query in queries(texts, 20):
            for pool in (1, 10, 200):
                assert_exact_top(await top(store, query, pool), index.top(query, pool), query)
        cache = store.search_cache
        assert cache is not None and cache.loads > 0 and cache.hits > cache.loads
    finally:
        await store.close()


async def test_writes_of_another_node_are_seen_at_once(postgres_db: str) -> None:
    """A searcher caches terms; a second store on the same database (its own pool, as a second
    node) puts, rewrites, tombstones, purges and expires; every search after an acknowledged
    write matches a model index of what is live, exactly."""
    searcher = PostgresStore(postgres_db, cache_min_df=4)
    writer = PostgresStore(postgres_db, search_cache=0)
    cache = searcher.search_cache
    assert cache is not None
    cache.fold = 7
    try:
        await random_writes_then_searches(
            writer, lambda q, k: top(searcher, q, k, now=10.0), steps=250, seed=21, expiry=True
        )
        assert cache.hits > 0 and cache.loads > 0
    finally:
        await writer.close()
        await searcher.close()


async def test_dead_memories_at_the_top_are_skipped(postgres_db: str) -> None:
    store = PostgresStore(postgres_db, cache_min_df=2)
    try:
        records = [rec(f"old{i}", "fox fox fox fox", 1, expires=5.0) for i in range(30)]
        records += [rec(f"m{i}", f"fox owl{i}", 1) for i in range(30)]
        await store.put_many(records, tenant="t")
        got = await top(store, "fox", 10, now=10.0)
        assert len(got) == 10 and all(c.id.startswith("m") for c in got)
        before = await top(store, "fox", 10, now=1.0)  # not expired yet: they rank first
        assert all(c.id.startswith("old") for c in before)
    finally:
        await store.close()


@pytest.mark.parametrize("query", ["lynx fox", "lynx", "lynx owl0 fox"])
async def test_dead_memories_holding_a_rare_term_are_skipped(postgres_db: str, query: str) -> None:
    """Memories of a rare query term are scored from its postings and checked for liveness only
    when they rank: expired ones at the top give way to the next live ones, exactly."""
    store = PostgresStore(postgres_db, cache_min_df=10)
    texts = {f"m{i}": f"fox owl{i}" for i in range(30)}
    texts |= {f"dead{i}": "lynx lynx lynx fox" for i in range(8)}
    texts |= {f"live{i}": "lynx fox fox" + " owl0" * i for i in range(3)}
    index = BM25Index()
    for mid, text in texts.items():
        index.add(mid, text)
    records = [rec(mid, t, 1, expires=5.0 if mid.startswith("dead") else None)
               for mid, t in texts.items()]
    await store.put_many(records, tenant="t")
    try:
        for pool in (2, 5, 40):
            got = await top(store, query, pool, now=10.0)
            want = index.top(query, pool, keep=lambda d: not d.startswith("dead"))
            assert_exact_top(got, want, query)
            assert not [c.id for c in got if c.id.startswith("dead")]
        before = await top(store, query, 8, now=1.0)  # not expired yet
        assert_exact_top(before, index.top(query, 8), query)
        assert any(c.id.startswith("dead") for c in before)
    finally:
        await store.close()


async def test_concurrent_searches_and_writes_stay_exact(postgres_db: str) -> None:
    store = PostgresStore(postgres_db, cache_min_df=2)
    writer = PostgresStore(postgres_db, search_cache=0)
    try:
        await writer.put_many([rec(f"m{i}", "fox owl", 1) for i in range(50)], tenant="t")
        for round_ in range(10):
            # Each round rewrites memories to hold "bee", then searches concurrently.
            ids = [f"m{i}" for i in range(round_ * 5, round_ * 5 + 5)]
            for mid in ids:
                assert await writer.put_if_newer(rec(mid, "fox bee bee", 2), tenant="t")
            found = await asyncio.gather(*(top(store, "bee", 100) for _ in range(6)))
            want = {f"m{i}" for i in range(round_ * 5 + 5)}
            for got in found:
                assert {c.id for c in got} == want, round_
    finally:
        await writer.close()
        await store.close()


async def test_an_opened_store_warms_its_cache_with_the_most_frequent_terms(
    postgres_db: str,
) -> None:
    loader = PostgresStore(postgres_db, search_cache=0)
    await loader.put_many([rec(f"m{i}", t, 1) for i, t in enumerate(corpus(600, 4))], tenant="t")
    assert loader._warming is None
    await loader.close()
    store = PostgresStore(postgres_db, search_cache=8000, cache_min_df=20)
    await store.open()
    try:
        assert store._warming is not None
        loaded = await store._warming
        await assert_warmed(store.search_cache, loaded, lambda q, k: top(store, q, k))
    finally:
        await store.close()
