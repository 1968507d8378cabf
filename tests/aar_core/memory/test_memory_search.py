"""Search: BM25 index correctness and Generative-Agents ranking (relevance/recency/importance)."""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest
from _memory_helpers import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st

from deep_tree_echo.aar_core.memory import MemoryManager, RankWeights, SearchResult
from deep_tree_echo.aar_core.memory._bm25 import BM25Index, document_text, tokenize
from deep_tree_echo.aar_core.memory.manager import parse_filter_value
from deep_tree_echo.aar_core.memory.ranking import normalise_importance

FILLER_WORDS = [
    *("meeting", "lunch", "garden", "code", "review", "budget", "travel", "music", "river"),
    *("coffee", "report", "design", "build", "team", "deploy", "weather", "family", "book"),
    *("train", "paint", "market", "server", "window"),
]


def naive_bm25(docs: dict[str, list[str]], query: list[str]) -> dict[str, float]:
    """Textbook BM25 by a linear scan (the reference the index must agree with)."""
    n = len(docs)
    avgdl = sum(len(t) for t in docs.values()) / n
    df = Counter(term for toks in docs.values() for term in set(toks))
    out: dict[str, float] = {}
    for doc_id, toks in docs.items():
        tf = Counter(toks)
        s = 0.0
        matched = False
        for term in query:
            if tf[term]:
                matched = True
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                s += idf * tf[term] * 2.2 / (tf[term] + 1.2 * (0.25 + 0.75 * len(toks) / avgdl))
        if matched:
            out[doc_id] = s
    return out


def test_tokenizer_lowercases_keeps_numbers_and_drops_stopwords() -> None:
    assert tokenize("What is the Vault code? It's 7741!") == ["vault", "code", "7741"]
    assert tokenize("Café CRÈME brûlée") == ["café", "crème", "brûlée"]
    assert tokenize("__ _ the a an") == []  # underscores split words and are not words
    assert tokenize("snake_case") == ["snake", "case"]


def test_tokenizer_stems_drops_possessives_and_maps_uk_spellings() -> None:
    assert tokenize("What's my cat's name?") == ["cat", "name"]
    assert tokenize("My favourite colour") == tokenize("my favorite color")
    assert tokenize("researching") == tokenize("research") == tokenize("researched")
    assert tokenize("I don't know, we're travelling") == ["know", "travel"]
    assert tokenize("the sister\u2019s code 1234") == ["sister", "code", "1234"]


def test_document_text_uses_string_leaves_title_and_tags() -> None:
    data = {
        "title": "Trip",
        "content": {"summary": "went north", "steps": ["pack", {"x": "drive"}], "n": 3},
        "tags": ["travel", "winter"],
        "other": "not indexed",
    }
    assert set(tokenize(document_text(data))) == {
        "trip",
        "went",
        "north",
        "pack",
        "drive",
        "travel",
        "winter",
    }


vocab = st.sampled_from([f"w{i}" for i in range(12)])
corpora = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=3), st.lists(vocab, max_size=8), min_size=1, max_size=25
)


@settings(max_examples=80, deadline=None)
@given(
    corpora,
    st.lists(vocab, min_size=1, max_size=4),
    st.integers(1, 6),
    st.sampled_from([1, 3, 1024]),
    st.data(),
)
def test_index_matches_linear_scan_after_adds_updates_removes(
    docs: dict[str, list[str]], query: list[str], k: int, long_postings: int, data: st.DataObject
) -> None:
    # long_postings=1 sends every term through the impact groups, 1024 none of them.
    index = BM25Index(long_postings=long_postings)
    # Insert stale versions first, then the real ones (updates), then remove some.
    for doc_id in docs:
        index.add(doc_id, ["stale", "w0"])
    for doc_id, toks in docs.items():
        index.add(doc_id, toks)
    removed = data.draw(st.sets(st.sampled_from(sorted(docs))))
    live = {d: t for d, t in docs.items() if d not in removed}
    for d in removed:
        assert index.remove(d)
        assert not index.remove(d)
    assert len(index) == len(live)
    if not live:
        assert index.scores(query) == {}
        assert index.top(query, k) == []
        return
    expected = naive_bm25(live, query)
    got = index.scores(query)
    assert got.keys() == expected.keys()
    for d, s in expected.items():
        assert got[d] == pytest.approx(s)
    assert_top_k(index, query, k, expected)
    # With a predicate, the top-k of the accepted documents only.
    keep = {d for d in live if hash(d) % 2 == 0}
    top = index.top(query, k, keep.__contains__)
    want = sorted((s for d, s in expected.items() if d in keep), reverse=True)[:k]
    assert [s for _, s in top] == pytest.approx(want)
    assert all(d in keep for d, _ in top)


@pytest.mark.parametrize("seed", range(4))
def test_top_k_of_three_or_more_frequent_terms_matches_linear_scan(seed: int) -> None:
    # Several frequent terms with varied tf and lengths (many empty tf combinations), some
    # documents lacking some of them: the lattice-and-split walk of ``top`` must stay exact.
    rng = random.Random(seed)
    common = ["alpha", "beta", "gamma", "delta"]
    docs: dict[str, list[str]] = {}
    for i in range(600):
        toks = rng.choices(FILLER_WORDS, k=rng.randint(2, 20))
        for word, share in zip(common, (0.9, 0.7, 0.5, 0.3), strict=True):
            if rng.random() < share:
                toks += [word] * rng.choice((1, 1, 1, 2, 3, 5))
        rng.shuffle(toks)
        docs[f"d{i}"] = toks
    index = BM25Index(long_postings=16)
    for doc_id, toks in docs.items():
        index.add(doc_id, toks)
    keep = {d for d in docs if rng.random() < 0.5}
    for query in (common[:3], common, [*common[1:], "river"], ["gamma", "alpha", "alpha", "beta"]):
        expected = naive_bm25(docs, query)
        for k in (1, 7, 50, 200, 700):
            assert_top_k(index, query, k, expected)
            top = index.top(query, k, keep.__contains__)
            want = sorted((s for d, s in expected.items() if d in keep), reverse=True)[:k]
            assert [s for _, s in top] == pytest.approx(want)
            assert all(d in keep for d, _ in top)


def assert_top_k(index: BM25Index, query: list[str], k: int, expected: dict[str, float]) -> None:
    """``index.top`` returns exactly the scores of the full ranking's top-k, best first."""
    top = index.top(query, k)
    want = sorted(expected.values(), reverse=True)[:k]
    assert [s for _, s in top] == pytest.approx(want)
    assert len({d for d, _ in top}) == len(top)
    for d, s in top:
        assert expected[d] == pytest.approx(s)


def test_importance_normalisation() -> None:
    assert normalise_importance(0.3) == 0.3
    assert normalise_importance(1) == 1.0
    assert normalise_importance(7) == 0.7
    assert normalise_importance(10) == 1.0
    assert normalise_importance(42) == 1.0
    assert normalise_importance(-3) == 0.0
    assert normalise_importance(None) == 0.5
    assert normalise_importance("high") == 0.5
    assert normalise_importance(True) == 0.5


async def vault_manager(clock: FakeClock) -> MemoryManager:
    m = MemoryManager(wall_clock=clock)
    rng = random.Random(1)
    for i in range(100):
        words = rng.sample(FILLER_WORDS, 6)
        await m.store_memory(
            f"f{i}", {"content": " ".join(words), "importance": rng.randint(1, 10)}
        )
    await m.store_memory("vault", {"content": "the vault code is 7741", "session_id": "s1"})
    for i in range(100, 200):
        words = rng.sample(FILLER_WORDS, 6)
        await m.store_memory(
            f"f{i}", {"content": " ".join(words), "importance": rng.randint(1, 10)}
        )
    clock.advance(60)
    return m


async def test_vault_code_is_ranked_first_among_200_memories() -> None:
    m = await vault_manager(FakeClock())
    results = await m.search("what is the vault code?", limit=5)
    assert results[0].id == "vault"
    assert "7741" in results[0].data["content"]
    assert results[0].relevance == 1.0
    assert len(results) == 5
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)
    for r in results:
        assert isinstance(r, SearchResult)
        assert 0.0 <= r.relevance <= 1.0 and 0.0 < r.recency <= 1.0 and 0.0 <= r.importance <= 1.0
        assert r.score == pytest.approx(r.relevance + r.recency + r.importance)
        assert "code" in r.data["content"]  # only docs matching a query term are candidates
    assert results[0].to_dict() == {
        "id": "vault",
        "data": {"content": "the vault code is 7741", "session_id": "s1"},
        "score": results[0].score,
        "breakdown": {
            "relevance": 1.0,
            "recency": results[0].recency,
            "importance": 0.5,
        },
    }
    assert (await m.search("7741"))[0].id == "vault"
    assert await m.search("zeppelin") == []
    assert m.stats["searches"] == 3


async def test_filters_are_equality_on_top_level_keys() -> None:
    m = MemoryManager()
    await m.store_memory("a", {"content": "blue sky", "session_id": "s1", "kind": "note"})
    await m.store_memory("b", {"content": "blue sea", "session_id": "s2", "kind": "note"})
    await m.store_memory("c", {"content": "blue car", "session_id": "s1", "kind": "todo"})
    assert {r.id for r in await m.search("blue", session_id="s1")} == {"a", "c"}
    assert [r.id for r in await m.search("blue", limit=5, session_id="s1", kind="todo")] == ["c"]
    assert await m.search("blue", session_id="s9") == []
    assert {r.id for r in await m.search("", session_id="s2")} == {"b"}


async def test_recency_decays_per_hour_since_last_access() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("old", {"content": "apple pie"})
    await m.store_memory("new", {"content": "apple pie"})
    clock.advance(10 * 3600)
    await m.retrieve_memory("new")  # accessed now; "old" untouched for 10 hours
    results = await m.search("apple pie")
    assert [r.id for r in results] == ["new", "old"]
    assert results[0].recency == pytest.approx(1.0)
    assert results[1].recency == pytest.approx(0.995**10)
    assert results[0].relevance == results[1].relevance == 1.0


async def test_importance_breaks_ties_and_weights_are_configurable() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock, weights=RankWeights(relevance=0, recency=0, importance=2))
    await m.store_memory("lo", {"content": "quarterly report", "importance": 2})
    await m.store_memory("hi", {"content": "report", "importance": 0.9})
    results = await m.search("quarterly report")
    assert [r.id for r in results] == ["hi", "lo"]
    assert results[0].score == pytest.approx(1.8)
    with pytest.raises(ValueError):
        RankWeights(relevance=-1)
    with pytest.raises(ValueError):
        RankWeights(decay=1.5)


async def test_relevance_dominates_when_it_is_the_only_weight() -> None:
    m = MemoryManager(weights=RankWeights(relevance=1, recency=0, importance=0))
    await m.store_memory("both", {"content": "red fox jumps"})
    await m.store_memory("one", {"content": "red balloon floats away", "importance": 10})
    results = await m.search("red fox")
    assert [r.id for r in results] == ["both", "one"]
    assert results[0].score == 1.0 and 0 < results[1].score < 1


async def test_empty_query_returns_recent_and_important_memories() -> None:
    clock = FakeClock()
    m = MemoryManager(wall_clock=clock)
    await m.store_memory("ancient", {"content": "x", "importance": 5})
    clock.advance(500 * 3600)
    await m.store_memory("fresh", {"content": "y", "importance": 5})
    await m.store_memory("vital", {"content": "z", "importance": 10})
    results = await m.search("", limit=2)
    assert [r.id for r in results] == ["vital", "fresh"]
    assert all(r.relevance == 0.0 for r in results)
    assert [r.id for r in await m.search("the of what", limit=1)] == ["vital"]  # stopwords only
    assert await m.search("x", limit=0) == []


async def test_updates_and_deletes_reach_the_index() -> None:
    m = MemoryManager()
    await m.store_memory("m", {"content": "penguin colony", "title": "Antarctica", "tags": ["ice"]})
    assert [r.id for r in await m.search("antarctica")] == ["m"]
    assert [r.id for r in await m.search("ice")] == ["m"]
    await m.update_memory("m", {"content": "desert camel"})
    assert await m.search("penguin") == []
    assert [r.id for r in await m.search("camel")] == ["m"]
    await m.delete_memory("m")
    assert await m.search("camel") == []
    assert await m.search("") == []


async def test_search_over_many_candidates_keeps_the_best_match() -> None:
    m = MemoryManager()
    for i in range(1500):
        await m.store_memory(f"n{i}", {"content": f"status update number {i} for the project"})
    await m.store_memory("target", {"content": "project status: launch approved"})
    results = await m.search("project launch status", limit=3)
    assert results[0].id == "target"
    assert len(results) == 3


@pytest.mark.parametrize("long_postings", [50, 1024])
def test_top_k_matches_linear_scan_on_a_zipf_corpus(long_postings: int) -> None:
    rng = random.Random(3)
    words = [f"t{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    docs = {f"d{i}": rng.choices(words, weights, k=rng.randint(3, 30)) for i in range(2000)}
    index = BM25Index(long_postings=long_postings)
    for d, toks in docs.items():
        index.add(d, toks)
    for d in list(docs)[:300]:  # churn: the impact groups must follow removals and updates
        index.remove(d)
        docs[d] = rng.choices(words, weights, k=rng.randint(3, 30))
        index.add(d, docs[d])
    for _ in range(40):
        query = rng.choices(words, weights, k=rng.randint(1, 4))
        assert_top_k(index, query, 20, naive_bm25(docs, query))


async def test_any_data_field_but_limit_can_be_a_filter() -> None:
    m = MemoryManager()
    await m.store_memory("a", {"content": "blue sky", "self": 1, "query": "q1"})
    await m.store_memory("b", {"content": "blue sea", "self": 2, "query": "q2"})
    filters: dict[str, Any] = {"self": 1}
    assert [r.id for r in await m.search("blue", **filters)] == ["a"]
    filters = {"query": "q2"}
    assert [r.id for r in await m.search("blue", 5, **filters)] == ["b"]
    assert len(await m.search("blue", limit=1)) == 1


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0.7", 0.7),
        ("3", 3),
        ("true", True),
        ("null", None),
        ('"0.7"', "0.7"),
        ("note", "note"),
        ("[1]", "[1]"),
        ("NaN", "NaN"),
        ("[" * 100_000, "[" * 100_000),
    ],
)
def test_parse_filter_value(raw: str, value: Any) -> None:
    assert parse_filter_value(raw) == value
    assert type(parse_filter_value(raw)) is type(value)


def test_top_k_of_only_very_common_terms_is_exact_with_and_without_a_filter() -> None:
    # Every query term is in more than half of the documents (idf near 0, many near-ties):
    # the class enumeration over (doc length, tf per term) must still give the exact top-k,
    # including documents lacking some query terms and documents the filter rejects.
    rng = random.Random(7)
    common = ["c0", "c1", "c2"]
    docs: dict[str, list[str]] = {}
    for i in range(3000):
        toks = [w for w in common for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
        toks += rng.choices([f"r{j}" for j in range(400)], k=rng.randint(0, 25))
        docs[f"d{i}"] = toks or ["c0"]
    index = BM25Index(long_postings=64)
    for d, toks in docs.items():
        index.add(d, toks)
    assert all(index.df(t) > len(docs) // 2 for t in common)
    keep = {d for d in docs if int(d[1:]) % 3 != 0}
    for query in (common, common[:2], ["c2", "c0", "c2"], ["c1", "r5"]):
        expected = naive_bm25(docs, query)
        for k in (1, 10, 200):
            assert_top_k(index, query, k, expected)
            top = index.top(query, k, keep.__contains__)
            want = sorted((s for d, s in expected.items() if d in keep), reverse=True)[:k]
            assert [s for _, s in top] == pytest.approx(want)
            assert all(d in keep and expected[d] == pytest.approx(s) for d, s in top)
