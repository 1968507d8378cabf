"""Ranking of retrieved memories as in Generative Agents (Park et al. 2023).

``score = w_rel * relevance + w_rec * recency + w_imp * importance`` where relevance is BM25
normalised by the best candidate (so in [0, 1]), recency decays exponentially with the hours
since the memory was last accessed (or written), and importance is the caller's
``data["importance"]`` mapped to [0, 1].
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Importance used when a memory does not say (the middle of the scale).
DEFAULT_IMPORTANCE = 0.5


@dataclass(frozen=True, slots=True)
class RankWeights:
    """Weights of the three ranking signals and the hourly recency decay factor."""

    relevance: float = 1.0
    recency: float = 1.0
    importance: float = 1.0
    decay: float = 0.995

    def __post_init__(self) -> None:
        for name in ("relevance", "recency", "importance"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weight {name} must be a finite number >= 0, got {value!r}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {self.decay!r}")


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One ranked memory: its data, total score and the three signals behind it."""

    id: str
    data: dict[str, Any]
    score: float
    relevance: float
    recency: float
    importance: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form used by the HTTP API."""
        return {
            "id": self.id,
            "data": self.data,
            "score": self.score,
            "breakdown": {
                "relevance": self.relevance,
                "recency": self.recency,
                "importance": self.importance,
            },
        }


def normalise_importance(value: Any) -> float:
    """Map ``data["importance"]`` to [0, 1]: 0..1 floats as is, a 1..10 scale divided by 10.

    Missing or non-numeric values give :data:`DEFAULT_IMPORTANCE`.
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return DEFAULT_IMPORTANCE
    v = float(value)
    if v <= 1.0:
        return max(v, 0.0)
    return min(v / 10.0, 1.0)


def recency(decay: float, now: float, last_touched: float) -> float:
    """``decay ** hours`` since ``last_touched`` (1.0 for touches in the future)."""
    hours = (now - last_touched) / 3600.0
    return 1.0 if hours <= 0 else decay**hours


@dataclass(slots=True)
class Candidate:
    """A live memory chosen by a store's text match: its BM25 score and ranking inputs.

    ``touched`` is ``last_access or updated_at``; ``importance`` is already normalised.
    ``data`` may be its JSON text: :func:`rank` decodes the ``limit`` it returns, not the pool.
    """

    id: str
    data: dict[str, Any] | str
    bm25: float
    touched: float
    importance: float

    def fields(self) -> dict[str, Any]:
        """The memory's data, decoded from its JSON text when the store handed that."""
        if isinstance(self.data, str):
            decoded: dict[str, Any] = json.loads(self.data)
            return decoded
        return self.data


#: Candidates taken by BM25 before the final ranking (as the manager always did).
_ABSENT = object()


def matches_filters(data: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    """Whether every ``key: value`` of ``filters`` equals the memory's top-level field (an
    absent field matches nothing, not even ``None``): the search filter of every store."""
    return all(data.get(k, _ABSENT) == v for k, v in filters.items())


def candidate_pool(limit: int) -> int:
    """How many BM25-best candidates a search ranks for ``limit`` results."""
    return max(limit * 20, 200)


def rank(
    candidates: Iterable[Candidate], *, weights: RankWeights, now: float, limit: int
) -> list[SearchResult]:
    """The ``limit`` best candidates by ``w_rel * bm25/best + w_rec * recency + w_imp *
    importance``; ties go to the larger id. Every store ranks through this one function."""
    pool = list(candidates)
    if not pool or limit <= 0:
        return []
    best = max(c.bm25 for c in pool)
    w = weights
    scored: list[tuple[float, float, float, float, str, int]] = []
    for i, c in enumerate(pool):
        rel = c.bm25 / best if best > 0 else 0.0
        rec = recency(w.decay, now, c.touched)
        score = w.relevance * rel + w.recency * rec + w.importance * c.importance
        scored.append((score, rel, rec, c.importance, c.id, i))
    top = heapq.nlargest(limit, scored)
    return [
        SearchResult(
            id=memory_id, data=pool[i].fields(), score=score, relevance=rel,
            recency=rec, importance=imp,
        )
        for score, rel, rec, imp, memory_id, i in top
    ]
