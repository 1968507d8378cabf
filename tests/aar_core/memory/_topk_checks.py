"""Shared by the SQL stores' top-k tests: the corpus they index and the one comparison of a
pruned top-k with the in-memory index's exact top-k."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from deep_tree_echo.aar_core.memory.ranking import Candidate

WORDS = [f"w{i}" for i in range(300)]
ZIPF = [1.0 / (r + 1) ** 1.07 for r in range(len(WORDS))]
#: Memory lengths (words) whose average is near, well below and well above the length the
#: stored impacts assume (16): the bounds between impact and exact BM25 differ in each case.
LENGTHS = [(3, 30), (1, 6), (40, 120)]


def corpus(n: int, seed: int, lengths: tuple[int, int] = (3, 30)) -> list[str]:
    """``n`` memories of Zipf-distributed words, lengths drawn from ``lengths``."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, weights=ZIPF, k=rng.randint(*lengths))) for _ in range(n)]


def assert_exact_top(
    got: Sequence[Candidate], want: Sequence[tuple[str, float]], query: str
) -> None:
    """``got`` has ``want``'s BM25 scores; ties at the cut may pick other memories, so ids are
    compared for every memory scored above the cut only."""
    assert [c.bm25 for c in got] == pytest.approx([s for _, s in want]), query
    cut = want[-1][1]
    assert {c.id for c in got if c.bm25 > cut * (1 + 1e-9)} == {
        d for d, s in want if s > cut * (1 + 1e-9)
    }, query
