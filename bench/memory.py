"""Memory subsystem benchmark: write throughput (group commit) and search latency vs a linear scan.

Run: ``.venv/bin/python bench/memory.py [--sizes 10000,100000] [--queries 300] [--stores …]``

* store rate: ``MemoryManager.store_memory`` on the in-memory store and on SQLite (WAL,
  synchronous=FULL), one writer vs many concurrent writers (group commit batches the latter);
* search: p50/p99 of ``MemoryManager.search(q, limit=10)`` over a synthetic Zipf-ish corpus on
  every store kind (memory, SQLite, Redis, PostgreSQL; servers started as the tests start them),
  twice over the same queries (the first pass meets each word for the first time, the second
  is a service that has run a while: SQLite's search cache holds the frequent words by then),
  beside a straightforward linear-scan BM25 over all documents in the same process (rank_bm25
  is not installed; this is what it does).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _stores import KINDS, StoreFactory, factory

from deep_tree_echo.aar_core.memory import (
    MemoryManager,
    MemoryRecord,
    MemoryStore,
    SQLiteStore,
    Version,
)
from deep_tree_echo.aar_core.memory._bm25 import tokenize

VOCAB_SIZE = 30_000
rng = random.Random(42)


def make_vocabulary() -> tuple[list[str], list[float]]:
    """Pronounceable pseudo-words with Zipf(1.07) frequencies."""
    consonants, vowels = "bcdfghjklmnprstvwz", "aeiou"
    words: set[str] = set()
    while len(words) < VOCAB_SIZE:
        n = rng.randint(2, 4)
        words.add("".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(n)))
    vocab = sorted(words)
    rng.shuffle(vocab)
    weights = [1.0 / (rank + 1) ** 1.07 for rank in range(VOCAB_SIZE)]
    return vocab, weights


def make_corpus(n: int, vocab: list[str], weights: list[float]) -> list[str]:
    cum = list(_accumulate(weights))
    return [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(8, 40))) for _ in range(n)]


def _accumulate(xs: list[float]) -> list[float]:
    out, total = [], 0.0
    for x in xs:
        total += x
        out.append(total)
    return out


def make_queries(corpus: list[str], count: int) -> list[str]:
    """Questions built from 2-3 words of a random memory plus stopwords (they must match).

    Words are drawn by their frequency in the memory, so the mix follows the corpus: with
    Zipf(1.07) words about a third of the queries hold only words found in >= 1% of memories
    (the slow case for an inverted index); ``bench_search`` prints the exact fractions.
    """
    queries = []
    for _ in range(count):
        words = rng.choice(corpus).split()
        picked = rng.sample(words, min(len(words), rng.randint(2, 3)))
        queries.append(f"what do we know about the {' '.join(picked)}?")
    return queries


class LinearBM25:
    """Baseline: score every document for every query (BM25, k1=1.2, b=0.75)."""

    def __init__(self, docs: list[str]) -> None:
        self.tfs = [Counter(tokenize(d)) for d in docs]
        self.lens = [sum(tf.values()) for tf in self.tfs]
        self.avgdl = sum(self.lens) / len(self.lens)
        self.df: Counter[str] = Counter()
        for tf in self.tfs:
            self.df.update(tf.keys())

    def top(self, query: str, k: int = 10) -> list[tuple[int, float]]:
        n = len(self.tfs)
        terms = tokenize(query)
        idf = {t: math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5)) for t in terms}
        scores = []
        for i, tf in enumerate(self.tfs):
            s = 0.0
            norm = 1.2 * (0.25 + 0.75 * self.lens[i] / self.avgdl)
            for t in terms:
                f = tf.get(t)
                if f:
                    s += idf[t] * f * 2.2 / (f + norm)
            if s > 0:
                scores.append((i, s))
        scores.sort(key=lambda item: item[1], reverse=True)
        return scores[:k]


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def store_rate(manager: MemoryManager, total: int, writers: int, prefix: str) -> float:
    counter = iter(range(total))

    async def writer() -> None:
        for i in counter:
            await manager.store_memory(f"{prefix}{i}", {"content": f"memory number {i}"})

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return total / (time.perf_counter() - start)


async def bench_writes(rows: list[tuple[str, str, str]]) -> None:
    mem = MemoryManager()
    rate = await store_rate(mem, 20_000, 1, "a")
    rows.append(("store, in-memory", "1 writer", f"{rate:,.0f} /s"))
    rate = await store_rate(mem, 20_000, 64, "b")
    rows.append(("store, in-memory", "64 writers", f"{rate:,.0f} /s"))
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        sql = MemoryManager(store)
        await sql.initialize()
        rate = await store_rate(sql, 300, 1, "c")
        rows.append(("store, SQLite FULL", "1 writer", f"{rate:,.0f} /s"))
        for writers in (16, 64):
            before_c, before_w = store.commits, store.committed_writes
            rate = await store_rate(sql, 8_000, writers, f"d{writers}-")
            per = (store.committed_writes - before_w) / max(1, store.commits - before_c)
            rows.append(
                ("store, SQLite FULL", f"{writers} writers", f"{rate:,.0f} /s ({per:.0f}/commit)")
            )
        await sql.close()


async def load_store(store: MemoryStore, corpus: list[str]) -> None:
    """Bulk load: batches for PostgreSQL, 100 concurrent writers elsewhere (group commit)."""
    records = [
        MemoryRecord(
            f"m{i}",
            {"content": text, "importance": rng.randint(1, 10)},
            Version(1_700_000_000_000 + i, 0, "bench"),
            1_700_000_000.0,
            1_700_000_000.0 + i,
        )
        for i, text in enumerate(corpus)
    ]
    put_many = getattr(store, "put_many", None)
    for start in range(0, len(records), 1000):
        batch = records[start : start + 1000]
        if put_many is not None:
            await put_many(batch)
        else:
            for part in range(0, len(batch), 100):  # 100 writers at a time
                await asyncio.gather(*(store.put_if_newer(r) for r in batch[part : part + 100]))


async def bench_search(
    size: int,
    queries: int,
    vocab: list[str],
    weights: list[float],
    rows: list[tuple[str, str, str]],
    stores: StoreFactory,
    kinds: tuple[str, ...],
) -> None:
    corpus = make_corpus(size, vocab, weights)
    qs = make_queries(corpus, queries)
    baseline = LinearBM25(corpus)
    for share, label in ((0.01, "1%"), (0.5, "50%")):
        common = sum(
            all(baseline.df[t] >= share * size for t in tokenize(q) if baseline.df[t]) for q in qs
        )
        share_text = f"{common / len(qs):.0%} of {len(qs)}"
        rows.append((f"queries {size:,}", f"all words in >= {label}", share_text))
    base = []
    for q in qs[: max(10, min(40, 2_000_000 // size))]:
        t0 = time.perf_counter()
        baseline.top(q, 10)
        base.append((time.perf_counter() - t0) * 1000)
    b50 = pct(base, 50)
    rows.append((f"search {size:,}", "linear-scan BM25 p50", f"{b50:.1f} ms"))
    reference: float | None = None
    for kind in kinds:
        manager = MemoryManager(await stores.new(kind), node_id="bench")
        await manager.initialize()
        start = time.perf_counter()
        await load_store(manager.store, corpus)
        build = time.perf_counter() - start
        rows.append((f"build {size:,} {kind}", "bulk load + index", f"{size / build:,.0f} /s"))
        for q in qs[:10]:  # warm-up
            await manager.search(q, limit=10)
        # Pass 1 meets each query's words for the first time (SQLite's search cache reads
        # them then); pass 2 asks the same queries again, as a service that has run a while.
        for label in ("p50 / p99", "p50 / p99 again"):
            lat = []
            for q in qs:
                t0 = time.perf_counter()
                await manager.search(q, limit=10)
                lat.append((time.perf_counter() - t0) * 1000)
            p50, p99 = pct(lat, 50), pct(lat, 99)
            reference = reference or p99
            rows.append(
                (f"search {size:,} {kind}", label, f"{p50:.2f} / {p99:.2f} ms "
                 f"(p99 {p99 / reference:.1f}x {kinds[0]})")
            )
        await manager.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma separated")
    parser.add_argument("--queries", type=int, default=300, help="timed queries per size")
    parser.add_argument("--no-writes", action="store_true", help="skip the store-rate part")
    parser.add_argument("--stores", default=",".join(KINDS), help="store kinds searched")
    parser.add_argument(
        "--search-cache", type=int, default=None,
        help="postings the SQL stores' search cache holds (default: each store's own)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    if not args.no_writes:
        await bench_writes(rows)
    vocab, weights = make_vocabulary()
    kinds = tuple(k for k in args.stores.split(",") if k)
    with factory(kinds, args.search_cache) as stores:
        for size in sizes:
            await bench_search(size, args.queries, vocab, weights, rows, stores, kinds)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    cache = "each store's default" if args.search_cache is None else f"{args.search_cache:,}"
    print(f"python {sys.version.split()[0]}; vocabulary {VOCAB_SIZE:,} Zipf(1.07) words; "
          f"search cache: {cache}")
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    asyncio.run(main())
