"""SQLite's pruned top-k (impact-ordered postings, MaxScore) equals the exact BM25 top-k."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest
from _topk_checks import LENGTHS, assert_exact_top, corpus

from deep_tree_echo.aar_core.memory import MemoryRecord, SQLiteStore, Version
from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._bm25 import BM25Index, tokenize
from deep_tree_echo.aar_core.memory._sqlite_topk import top_candidates
from deep_tree_echo.aar_core.memory.ranking import Candidate


async def pruned(
    store: SQLiteStore, query: str, pool: int, filters: dict[str, int] | None = None
) -> list[Candidate]:
    hexed = sql.encode_terms(tokenize(query))

    def run(conn: sqlite3.Connection) -> list[Candidate]:
        return top_candidates(conn, hexed, tenant="t", pool=pool, now=0.0, filters=filters)

    return await store._read(run)


def queries(texts: list[str], seed: int) -> list[str]:
    rng = random.Random(seed)
    out = ["w0", "w0 w1", "w0 w1 w2 w3", "w299 w0", "w0 w0 w5"]
    for _ in range(40):
        words = rng.choice(texts).split()
        out.append(" ".join(rng.sample(words, min(len(words), rng.randint(1, 4)))))
    return out


@pytest.mark.parametrize("lengths", LENGTHS)
async def test_pruned_top_k_has_the_exact_bm25_scores(
    tmp_path: Path, lengths: tuple[int, int]
) -> None:
    texts = corpus(1500, 7, lengths)
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    index = BM25Index()
    for i, text in enumerate(texts):
        rec = MemoryRecord(f"m{i}", {"content": text, "k": i % 4}, Version(1, 0, "n"), 1.0, 1.0)
        await store.put_if_newer(rec, tenant="t")
        index.add(f"m{i}", text)
    # Another tenant's memories are never candidates.
    await store.put_if_newer(
        MemoryRecord("x", {"content": "w0 w0 w0"}, Version(1, 0, "n"), 1.0, 1.0), tenant="u"
    )
    try:
        for query in queries(texts, 11):
            for pool in (1, 10, 200):
                assert_exact_top(await pruned(store, query, pool), index.top(query, pool), query)
        # Filters apply before the cut.
        keep = {f"m{i}" for i in range(len(texts)) if i % 4 == 2}
        for query in ("w0 w1", "w3"):
            want = index.top(query, 20, keep.__contains__)
            got = await pruned(store, query, 20, {"k": 2})
            assert [c.bm25 for c in got] == pytest.approx([s for _, s in want])
            assert all(c.fields()["k"] == 2 for c in got)
    finally:
        await store.close()


async def test_postings_follow_updates_deletes_and_purges(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    try:
        for rid, text, v in (("a", "red fox", 1), ("b", "red owl", 1), ("a", "blue fox", 2)):
            rec = MemoryRecord(rid, {"content": text}, Version(v, 0, "n"), 1, v)
            assert await store.put_if_newer(rec)
        await store.put_if_newer(MemoryRecord("b", {}, Version(2, 0, "n"), 1, 2, deleted=True))

        def postings(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                "SELECT p.term, m.id FROM memories_postings AS p JOIN memories AS m "
                "ON m.rid = p.rid ORDER BY 1, 2"
            ).fetchall()
            return [(bytes.fromhex(t).decode(), i) for t, i in rows]

        assert await store._read(postings) == [("blue", "a"), ("fox", "a")]
        assert [c.id for c in await pruned_default(store, "red fox blue")] == ["a"]
        assert await store.purge({"b": Version(2, 0, "n")}) == ["b"]
        await store.purge({"a": Version(2, 0, "n")})
        assert await store._read(postings) == []
    finally:
        await store.close()


async def pruned_default(store: SQLiteStore, query: str) -> list[Candidate]:
    hexed = sql.encode_terms(tokenize(query))

    def run(conn: sqlite3.Connection) -> list[Candidate]:
        return top_candidates(conn, hexed, tenant="default", pool=10, now=0.0, filters=None)

    return await store._read(run)


async def test_a_schema_2_file_gets_its_postings_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)  # a file as schema 2 wrote it
    for statement in sql._SCHEMA_V2:
        conn.execute(statement)
    texts = ("green tea", "green green tea leaves", "black coffee")
    index = BM25Index()
    for i, text in enumerate(texts):
        index.add(f"m{i}", text)
        terms = " ".join(sql.encode_terms(tokenize(text)))
        conn.execute(
            "INSERT INTO memories (tenant, id, version, data, created_at, updated_at, terms, dl) "
            "VALUES ('default', ?, ?, ?, 1, 1, ?, ?)",
            (f"m{i}", Version(1, 0, "n").to_str(), json.dumps({"content": text}), terms,
             len(terms.split())),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        found = await pruned_default(store, "green tea")
        want = index.top("green tea", 10)
        expected = [(d, texts[int(d[1:])]) for d, _ in want]
        assert [(c.id, c.fields()["content"]) for c in found] == expected
        assert [c.bm25 for c in found] == pytest.approx([score for _, score in want])
        assert [c.id for c in await pruned_default(store, "coffee")] == ["m2"]
    finally:
        await store.close()


async def test_a_schema_3_file_gets_the_covering_live_index_on_open(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    conn = sqlite3.connect(path, isolation_level=None)  # a file as schema 3 wrote it
    for statement in (*sql._SCHEMA_V2, *sql._SCHEMA_V3):
        conn.execute(statement)
    texts = ("green tea", "green green tea leaves", "black coffee")
    index = BM25Index()
    for i, text in enumerate(texts):
        index.add(f"m{i}", text)
        rec = MemoryRecord(f"m{i}", {"content": text}, Version(1, 0, "n"), 1.0, 1.0)
        conn.execute(sql.PUT_IF_NEWER, sql.write_params("default", rec))
    conn.execute("PRAGMA user_version = 3")
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        found = await pruned_default(store, "green tea")
        want = index.top("green tea", 10)
        assert [c.id for c in found] == [d for d, _ in want]
        assert [c.bm25 for c in found] == pytest.approx([score for _, score in want])

        def schema(conn: sqlite3.Connection) -> tuple[int, int]:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            live = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'memories_live'"
            ).fetchone()[0]
            return version, live

        assert await store._read(schema) == (sql.SCHEMA_VERSION, 1)
    finally:
        await store.close()
