"""The SQLite store's postings cache: exact BM25 top-k through the class walk, and never stale,
whatever another connection to the file writes (puts, updates, tombstones, purges, reused ids)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _cache_model import assert_warmed, queries, random_writes_then_searches, rec
from _topk_checks import LENGTHS, assert_exact_top, corpus

from deep_tree_echo.aar_core.memory import SQLiteStore, Version
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._bm25 import BM25Index, tokenize
from deep_tree_echo.aar_core.memory._sqlite_topk import top_candidates_cached
from deep_tree_echo.aar_core.memory.ranking import Candidate, RankWeights

_BM25_ONLY = RankWeights(relevance=1.0, recency=0.0, importance=0.0)


def cached_store(path: Path, *, budget: int = 1_000_000, min_df: int = 8) -> SQLiteStore:
    return SQLiteStore(path, search_cache=budget, cache_min_df=min_df)


async def cached(
    store: SQLiteStore, query: str, pool: int, filters: dict[str, int] | None = None
) -> list[Candidate] | None:
    cache = store.search_cache
    assert cache is not None
    hexed = sql.encode_terms(tokenize(query))

    def run(conn: sqlite3.Connection) -> list[Candidate] | None:
        conn.execute("BEGIN")
        try:
            return top_candidates_cached(
                conn, cache, hexed, tenant="t", pool=pool, now=0.0, filters=filters
            )
        finally:
            conn.execute("COMMIT")

    return await store._read(run)


@pytest.mark.parametrize("lengths", LENGTHS)
async def test_cached_top_k_has_the_exact_bm25_scores(
    tmp_path: Path, lengths: tuple[int, int]
) -> None:
    texts = corpus(1500, 5, lengths)
    store = cached_store(tmp_path / "m.db")
    await store.open()
    index = BM25Index()
    for i, text in enumerate(texts):
        await store.put_if_newer(rec(f"m{i}", text, 3 + i % 3), tenant="t")
        index.add(f"m{i}", text)
    await store.put_if_newer(rec("x", "w0 w0 w0", 1), tenant="u")  # never a candidate
    try:
        for query in queries(texts, 30):
            for pool in (1, 10, 200):
                got = await cached(store, query, pool)
                assert got is not None
                assert_exact_top(got, index.top(query, pool), query)
        cache = store.search_cache
        assert cache is not None and cache.loads > 0 and cache.hits > cache.loads
        # Filters apply before the cut.
        keep = {f"m{i}" for i in range(len(texts)) if (3 + i % 3) % 3 == 2}
        for query in ("w0 w1", "w3", "w0 w299"):
            want = index.top(query, 20, keep.__contains__)
            got = await cached(store, query, 20, {"k": 2})
            assert got is not None
            assert [c.bm25 for c in got] == pytest.approx([s for _, s in want]), query
            assert all(c.fields()["k"] == 2 for c in got)
    finally:
        await store.close()


async def test_the_largest_words_stay_and_the_others_are_read_per_search(
    tmp_path: Path,
) -> None:
    texts = corpus(600, 9)
    store = cached_store(tmp_path / "m.db", budget=500)
    await store.open()
    index = BM25Index()
    for i, text in enumerate(texts):
        await store.put_if_newer(rec(f"m{i}", text, 1), tenant="t")
        index.add(f"m{i}", text)
    words = ("w0", "w1", "w2", "w3", "w5", "w6", "w9")
    df = {w: index.df(w) for w in words}
    assert [df[w] for w in words] == [544, 444, 342, 290, 202, 189, 121]  # the corpus's
    cache = store.search_cache
    assert cache is not None
    hexed = dict(zip(words, sql.encode_terms(list(words)), strict=True))
    steps = [
        ("w0", set()),  # larger than the whole budget: read for its search only
        ("w3", {"w3"}),
        ("w5", {"w3", "w5"}),
        ("w2", {"w2"}),  # needs room: drops smaller terms, least recently used first
        ("w6", {"w2"}),  # no room, and nothing smaller to drop: read for its search only
        ("w9", {"w2", "w9"}),
        ("w1", {"w1"}),
        ("w2", {"w1"}),  # a smaller term never drops a larger one
    ]
    try:
        for query, holds in steps:
            got = await cached(store, query, 10)
            assert got is not None
            assert_exact_top(got, index.top(query, 10), query)
            held = {w for w in words if not cache.lacking("t", [hexed[w]])}
            assert held == holds, query
            assert cache.size == sum(df[w] for w in holds) <= 500
    finally:
        await store.close()


async def test_writes_of_another_connection_are_seen_at_once(tmp_path: Path) -> None:
    """A searcher caches terms; a second store on the same file (another connection, as a
    second worker process would be) puts, rewrites, tombstones and purges; every search after
    an acknowledged write matches a model index of what is live, exactly."""
    path = tmp_path / "m.db"
    searcher, writer = cached_store(path, budget=20_000, min_df=4), SQLiteStore(path)
    await searcher.open()
    await writer.open()
    cache = searcher.search_cache
    assert cache is not None
    cache.fold = 7  # fold changes into the cached groups often
    try:
        await random_writes_then_searches(
            writer, lambda q, k: cached(searcher, q, k), steps=400, seed=21
        )
        assert cache.hits > 0 and cache.loads > 0
    finally:
        await writer.close()
        await searcher.close()


async def test_a_purged_row_id_reused_by_a_new_memory_is_not_stale(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    searcher, writer = cached_store(path, min_df=1), SQLiteStore(path)
    await searcher.open()
    await writer.open()
    try:
        await writer.put_if_newer(rec("a", "fox fox fox", 1), tenant="t")
        await writer.put_if_newer(rec("b", "fox owl", 1), tenant="t")
        first = await cached(searcher, "fox", 5)
        assert first is not None and [c.id for c in first] == ["a", "b"]
        await writer.put_if_newer(rec("b", "", 2, deleted=True), tenant="t")
        assert await writer.purge({"b": Version(2, 0, "n")}, tenant="t") == ["b"]
        # "c" takes the largest row id again (b's): it holds "owl", not "fox".
        await writer.put_if_newer(rec("c", "owl owl", 1), tenant="t")

        def rid_of(conn: sqlite3.Connection, mid: str) -> int:
            return int(conn.execute("SELECT rid FROM memories WHERE id = ?", (mid,)).fetchone()[0])

        assert await writer._read(lambda c: rid_of(c, "c")) == 2  # b's old row id
        again = await cached(searcher, "fox", 5)
        assert again is not None and [c.id for c in again] == ["a"]
        owl = await cached(searcher, "owl", 5)
        assert owl is not None and [c.id for c in owl] == ["c"]
    finally:
        await writer.close()
        await searcher.close()


async def test_stamps_follow_writes_in_order(tmp_path: Path) -> None:
    """Schema 5: every postings write takes the next clock value; access counts do not."""
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    try:
        await store.put_if_newer(rec("a", "fox", 1), tenant="t")
        await store.put_if_newer(rec("b", "owl", 1), tenant="t")
        await store.put_if_newer(rec("a", "fox owl", 2), tenant="t")
        await store.record_access("b", 5.0, tenant="t")
        await store.flush()

        def stamps(conn: sqlite3.Connection) -> tuple[int, dict[str, int]]:
            clock = int(conn.execute(sql.CLOCK).fetchone()[0])
            rows = conn.execute("SELECT id, gen FROM memories ORDER BY id").fetchall()
            return clock, dict(rows)

        clock, gens = await store._read(stamps)
        assert gens == {"a": 3, "b": 2} and clock == 3
    finally:
        await store.close()


async def test_a_reopened_store_warms_its_cache_with_the_most_frequent_terms(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    texts = corpus(600, 4)
    loader = SQLiteStore(path, search_cache=0)
    await loader.open()
    assert loader.search_cache is None and loader._warming is None
    for i, text in enumerate(texts):
        await loader.put_if_newer(rec(f"m{i}", text, 1), tenant="t")
    await loader.close()
    store = cached_store(path, budget=8000, min_df=20)
    await store.open()
    try:
        assert store._warming is not None
        loaded = await store._warming
        await assert_warmed(store.search_cache, loaded, lambda q, k: cached(store, q, k))
    finally:
        await store.close()
