"""PostgreSQL's pruned top-k (impact-ordered postings, MaxScore) equals the exact BM25 top-k;
schema-1 databases migrate to the postings on open."""

from __future__ import annotations

import asyncio
import random

import pytest
from _topk_checks import LENGTHS, assert_exact_top, corpus

from deep_tree_echo.aar_core.memory import MemoryRecord, Version
from deep_tree_echo.aar_core.memory import _postgres_sql as sql
from deep_tree_echo.aar_core.memory._bm25 import BM25Index, tokenize
from deep_tree_echo.aar_core.memory.postgres_store import (
    MAX_LEXEME_BYTES,
    PostgresStore,
    write_params,
)
from deep_tree_echo.aar_core.memory.ranking import Candidate


async def pruned(
    store: PostgresStore,
    query: str,
    pool: int,
    filters: dict[str, int] | None = None,
    tenant: str = "t",
) -> list[Candidate]:
    return await store._top(tokenize(query), tenant=tenant, pool=pool, now=0.0, filters=filters)


@pytest.mark.parametrize("lengths", LENGTHS)
async def test_pruned_top_k_has_the_exact_bm25_scores(
    postgres_db: str, lengths: tuple[int, int]
) -> None:
    texts = corpus(800, 7, lengths)
    store = PostgresStore(postgres_db, search_cache=0)  # the index (MaxScore) path
    index = BM25Index()
    records = []
    for i, text in enumerate(texts):
        records.append(
            MemoryRecord(f"m{i}", {"content": text, "k": i % 4}, Version(1, 0, "n"), 1.0, 1.0)
        )
        index.add(f"m{i}", text)
    await store.put_many(records, tenant="t")
    # Another tenant's memories are never candidates.
    await store.put_if_newer(
        MemoryRecord("x", {"content": "w0 w0 w0"}, Version(1, 0, "n"), 1.0, 1.0), tenant="u"
    )
    rng = random.Random(11)
    queries = ["w0", "w0 w1", "w0 w1 w2 w3", "w299 w0", "w0 w0 w5"]
    queries += [" ".join(rng.sample(t.split(), min(3, len(t.split())))) for t in texts[:25]]
    try:
        for query in queries:
            for pool in (1, 10, 200):
                assert_exact_top(await pruned(store, query, pool), index.top(query, pool), query)
        # Filters apply before the cut.
        keep = {f"m{i}" for i in range(len(texts)) if i % 4 == 2}
        for query in ("w0 w1", "w3"):
            want = index.top(query, 20, keep.__contains__)
            got = await pruned(store, query, 20, {"k": 2})
            assert [c.bm25 for c in got] == pytest.approx([s for _, s in want])
            assert all(c.fields()["k"] == 2 for c in got)
        assert [c.id for c in await pruned(store, "w0", 5, tenant="u")] == ["x"]
    finally:
        await store.close()


async def test_postings_follow_updates_deletes_expiry_and_purges(postgres_db: str) -> None:
    store = PostgresStore(postgres_db)
    try:
        for rid, text, v in (("a", "red fox", 1), ("b", "red owl", 1), ("a", "blue fox", 2)):
            rec = MemoryRecord(rid, {"content": text}, Version(v, 0, "n"), 1, v)
            assert await store.put_if_newer(rec)
        await store.put_if_newer(MemoryRecord("b", {}, Version(2, 0, "n"), 1, 2, deleted=True))
        await store.put_if_newer(
            MemoryRecord("c", {"content": "red hat"}, Version(3, 0, "n"), 1, 3, expires_at=5.0)
        )

        async def postings() -> list[tuple[str, str]]:
            rows = await store._fetch(
                "t", "SELECT term, id FROM dte_postings WHERE tenant = 'default' ORDER BY 1, 2", {}
            )
            return [(t, i) for t, i in rows]

        async def stats() -> list[tuple[int, int]]:
            query = "SELECT sum(n), sum(total) FROM dte_stats GROUP BY tenant"  # over shards
            return [tuple(r) for r in await store._fetch("t", query, {})]

        assert await postings() == [("blue", "a"), ("fox", "a"), ("hat", "c"), ("red", "c")]
        assert await stats() == [(2, 4)]
        found = await store._top(["red"], tenant="default", pool=10, now=1.0, filters=None)
        assert [c.id for c in found] == ["c"]
        # Expired: still indexed until purged, never a candidate.
        assert await store._top(["red"], tenant="default", pool=10, now=9.0, filters=None) == []
        assert await store.purge({"b": Version(2, 0, "n"), "c": Version(3, 0, "n")}) == ["b", "c"]
        assert await postings() == [("blue", "a"), ("fox", "a")]
        assert await stats() == [(1, 2)]
        await store.purge({"a": Version(2, 0, "n")})
        assert await postings() == []
        assert await stats() == [(0, 0)]
    finally:
        await store.close()


async def test_a_schema_1_database_gets_its_postings_on_open(postgres_db: str) -> None:
    import asyncpg

    texts = ("green tea", "green green tea leaves", "black coffee")
    conn = await asyncpg.connect(postgres_db)  # a database as schema 1 left it
    try:
        await conn.execute(sql.CREATE_MIGRATIONS)
        for statement in sql.MIGRATIONS[0][1]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO dte_schema_migrations (version) VALUES (1)")
        for i, text in enumerate((*texts, "green ghost")):
            record = MemoryRecord(
                f"m{i}", {"content": text}, Version(1, 0, "n"), 1, 1, deleted=i == 3
            )
            p = write_params("default", record)
            await conn.execute(
                "INSERT INTO dte_memories (tenant, id, version, data, created_at, updated_at, "
                "deleted, terms, tf, dl) VALUES ($1, $2, $3, $4, 1, 1, $5, $6, $7::jsonb, $8)",
                "default", p["id"], p["version"], p["data"], p["deleted"], p["terms"], p["tf"],
                p["dl"],
            )
    finally:
        await conn.close()
    index = BM25Index()
    for i, text in enumerate(texts):
        index.add(f"m{i}", text)
    store = PostgresStore(postgres_db)
    try:
        found = await store._top(
            tokenize("green tea"), tenant="default", pool=10, now=2.0, filters=None
        )
        want = index.top("green tea", 10)
        assert [(c.id, c.fields()["content"]) for c in found] == [
            (d, texts[int(d[1:])]) for d, _ in want
        ]
        assert [c.bm25 for c in found] == pytest.approx([score for _, score in want])
        # The new schema keeps indexing writes.
        await store.put_if_newer(
            MemoryRecord("m9", {"content": "coffee"}, Version(2, 0, "n"), 1, 2)
        )
        coffee = await store._top(["coffe"], tenant="default", pool=10, now=2.0, filters=None)
        assert sorted(c.id for c in coffee) == ["m2", "m9"]
        rows = await store._fetch("t", "SELECT version FROM dte_schema_migrations", {})
        assert sorted(r[0] for r in rows) == [v for v, _ in sql.MIGRATIONS]
        ghosts = await store._fetch("t", "SELECT count(*) FROM dte_postings WHERE id = 'm3'", {})
        assert ghosts[0][0] == 0  # the tombstone got no postings
    finally:
        await store.close()


#: The index tables as a rebuild from ``dte_memories`` gives them, and as the triggers keep
#: them (counters summed over their shards).
_REBUILT: dict[str, str] = {
    "postings": "SELECT m.tenant, t.term, m.id, (m.tf ->> t.term)::integer, m.dl "
    "FROM dte_memories AS m, unnest(m.terms) AS t(term) WHERE NOT m.deleted",
    "df": "SELECT m.tenant, t.term, count(*) FROM dte_memories AS m, "
    "unnest(m.terms) AS t(term) WHERE NOT m.deleted GROUP BY 1, 2",
    "stats": "SELECT tenant, count(*), sum(dl) FROM dte_memories WHERE NOT deleted "
    "GROUP BY tenant",
}
_KEPT: dict[str, str] = {
    "postings": "SELECT tenant, term, id, tf, dl FROM dte_postings",
    "df": "SELECT tenant, term, sum(n) FROM dte_df GROUP BY 1, 2 HAVING sum(n) <> 0",
    "stats": "SELECT tenant, sum(n), sum(total) FROM dte_stats GROUP BY 1 HAVING sum(n) <> 0",
}


async def assert_index_equals_a_rebuild(store: PostgresStore, when: object) -> None:
    for name, query in _REBUILT.items():
        want = sorted(tuple(r) for r in await store._fetch("t", query, {}))
        got = sorted(tuple(r) for r in await store._fetch("t", _KEPT[name], {}))
        assert got == want, (when, name)


async def test_index_tables_equal_a_rebuild_after_mixed_single_and_batch_writes(
    postgres_db: str,
) -> None:
    """The statement-level index triggers keep postings, df and stats exactly what a rebuild
    from the rows gives, through batches that insert, update, re-send, tombstone and repeat
    ids, single puts, access counts and purges, in two tenants."""
    rng = random.Random(5)
    words = [f"w{i}" for i in range(12)]
    store = PostgresStore(postgres_db, search_cache=0)
    newest: dict[tuple[str, str], int] = {}
    clock = 0

    def record(tenant: str, rid: str) -> MemoryRecord:
        nonlocal clock
        clock += 1
        old = rng.random() < 0.15 and (tenant, rid) in newest  # a stale re-send: ignored
        v = newest[(tenant, rid)] - 1 if old else clock
        if not old:
            newest[(tenant, rid)] = v
        text = " ".join(rng.choices(words, k=rng.randint(0, 6)))  # some empty
        return MemoryRecord(
            rid, {"content": text}, Version(v, 0, "n"), 1.0, float(v), deleted=rng.random() < 0.2
        )

    try:
        for step in range(40):
            tenant = rng.choice(["t", "u"])
            ids = [f"m{rng.randrange(30)}" for _ in range(rng.randint(1, 25))]
            if step % 4 == 3:
                for rid in ids[:3]:
                    await store.put_if_newer(record(tenant, rid), tenant=tenant)
                await store.record_access(ids[0], 99.0, tenant=tenant)
            else:  # ids repeat within a batch: the newest of them is kept
                await store.put_many([record(tenant, rid) for rid in ids], tenant=tenant)
            if step % 10 == 9:
                found = await store.purge_candidates(1e9, tenant=tenant)
                assert sorted(await store.purge(found, tenant=tenant)) == sorted(found)
                for rid in found:
                    newest.pop((tenant, rid), None)
            await assert_index_equals_a_rebuild(store, step)
        versions = await store._fetch("t", "SELECT tenant, id, version FROM dte_memories", {})
        assert {(t, i): Version.parse(v).wall_ms for t, i, v in versions} == newest
    finally:
        await store.close()


async def test_concurrent_writers_on_two_engines_neither_fail_nor_drift(
    postgres_db: str,
) -> None:
    """Two stores (as two nodes) write one tenant at once: single puts of shared ids from many
    connections, batches, access counts and purges. None fails (the rare deadlock of a batch
    with a single write is run again: ``test_postgres_deadlock``), and the index stays a
    rebuild's."""
    stores = [PostgresStore(postgres_db, search_cache=0, pool_size=6) for _ in range(2)]
    rng = random.Random(8)
    words = [f"w{i}" for i in range(8)]
    versions = iter(range(1, 1_000_000))

    def record(rid: str) -> MemoryRecord:
        v = next(versions)
        text = " ".join(rng.choices(words, k=rng.randint(1, 5)))
        return MemoryRecord(rid, {"content": text}, Version(v, 0, "n"), 1.0, float(v),
                            deleted=rng.random() < 0.1)

    async def singles(store: PostgresStore) -> None:
        for _ in range(30):
            await store.put_if_newer(record(f"m{rng.randrange(20)}"), tenant="t")
            await store.record_access(f"m{rng.randrange(20)}", 5.0, tenant="t")

    async def batches(store: PostgresStore) -> None:
        for _ in range(10):
            await store.put_many([record(f"m{rng.randrange(20)}") for _ in range(30)], tenant="t")
            await store.purge(await store.purge_candidates(1e9, tenant="t"), tenant="t")

    try:
        jobs = [singles(s) for s in stores for _ in range(4)]
        jobs += [batches(s) for s in stores for _ in range(2)]
        await asyncio.gather(*jobs)
        await assert_index_equals_a_rebuild(stores[0], "end")
        assert await stores[1].count(tenant="t") > 0
    finally:
        for store in stores:
            await store.close()


async def test_a_schema_3_database_keeps_its_counters_through_migration_4(
    postgres_db: str,
) -> None:
    """Counters the row trigger of schemas 2-3 kept become shard 0 of the sharded ones, and
    writes after the migration keep the index a rebuild's."""
    import asyncpg

    conn = await asyncpg.connect(postgres_db)  # a database as schema 3 left it
    try:
        await conn.execute(sql.CREATE_MIGRATIONS)
        for version, statements in sql.MIGRATIONS[:3]:
            for statement in statements:
                await conn.execute(statement)
            await conn.execute("INSERT INTO dte_schema_migrations (version) VALUES ($1)", version)
        for i, text in enumerate(("green tea", "green green tea leaves", "black coffee")):
            p = write_params("default", MemoryRecord(f"m{i}", {"content": text},
                                                     Version(1, 0, "n"), 1, 1))
            await conn.execute(
                "INSERT INTO dte_memories (tenant, id, version, data, created_at, updated_at, "
                "terms, tf, dl) VALUES ($1, $2, $3, $4, 1, 1, $5, $6::jsonb, $7)",
                "default", p["id"], p["version"], p["data"], p["terms"], p["tf"], p["dl"],
            )
    finally:
        await conn.close()
    store = PostgresStore(postgres_db, search_cache=0)
    try:
        await assert_index_equals_a_rebuild(store, "migrated")
        await store.put_if_newer(MemoryRecord("m0", {"content": "green"}, Version(2, 0, "n"), 1, 2))
        await store.put_many([
            MemoryRecord("m1", {}, Version(2, 0, "n"), 1, 2, deleted=True),
            MemoryRecord("m3", {"content": "tea tea"}, Version(2, 0, "n"), 1, 2),
        ])
        await assert_index_equals_a_rebuild(store, "written")
        green = await store._top(["green"], tenant="default", pool=10, now=3.0, filters=None)
        assert [c.id for c in green] == ["m0"]
    finally:
        await store.close()


def test_index_terms_keep_words_up_to_the_lexeme_limit() -> None:
    """Words up to ``MAX_LEXEME_BYTES`` UTF-8 bytes are indexed; longer ones (which a btree
    key could not hold) only count in the memory's length."""
    at_limit, over = "q" * MAX_LEXEME_BYTES, "é" * (MAX_LEXEME_BYTES // 2 + 1)
    assert tokenize(f"{at_limit} {over} owl") == [at_limit, over, "owl"]
    params = write_params("t", MemoryRecord("m", {"content": f"{at_limit} {over} owl"},
                                            Version(1, 0, "n"), 1.0, 1.0))
    assert sorted(params["terms"]) == sorted([at_limit, "owl"]) and params["dl"] == 3


async def test_a_batch_of_one_record_is_written_and_indexed(postgres_db: str) -> None:
    store = PostgresStore(postgres_db, search_cache=0)
    try:
        await store.put_many([MemoryRecord("solo", {"content": "lone owl"}, Version(5, 0, "n"),
                                           1.0, 2.0)], tenant="one")
        got = await store.get("solo", tenant="one")
        assert got is not None and got.data == {"content": "lone owl"} and got.version.wall_ms == 5
        assert [c.id for c in await pruned(store, "owl", 10, tenant="one")] == ["solo"]
        await assert_index_equals_a_rebuild(store, 0)
    finally:
        await store.close()
