"""Exact BM25 top-k over impact-ordered postings (MaxScore), without I/O: the SQL stores' plan.

A SQL store keeps, per ``(tenant, term)``, each live memory's stored *impact* (its BM25
saturation at the fixed length :data:`IMPACT_AVGDL`, see :func:`impact`) in an index ordered by
impact, so a term's best postings come first. :class:`MaxScore` plans the reads and the store
runs them (SQLite in-process, PostgreSQL one statement per round): each round reads the next
postings of every *essential* term, scores the memories found exactly (Lucene BM25 with the
tenant's N, df and avgdl, as the in-memory index does) and admits the live ones into a heap of
the ``pool`` best. ``theta``, the heap's cut, then bounds what is still worth reading, as in
MaxScore (Turtle & Flood 1995): terms whose summed upper bounds stay below ``theta`` cannot
carry a memory into the pool alone and are not read; each other term is read only down to the
saturation below which a memory could not beat ``theta`` even with every other term at its
best. Memories are scored exactly when first seen, so the heap ends as the exact BM25 top
``pool`` (ties at the cut aside, as in the in-memory index).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

K = TypeVar("K", int, str)

#: Average document length the stored impacts assume (a constant, so impacts never need
#: rewriting; searches correct for the live average, see :class:`ImpactBounds`).
IMPACT_AVGDL: Final = 16.0
#: Postings read per term in the first round (then doubled each round).
FIRST_BATCH: Final = 64
#: BM25's saturation of a term can never reach k1 + 1.
_MAX_SATURATION: Final = 2.2


def impact(tf: int, dl: int) -> float:
    """A term's BM25 saturation ``tf / (tf + k1 (1 - b + b dl / IMPACT_AVGDL))``."""
    return tf / (tf + 1.2 * (0.25 + 0.75 * dl / IMPACT_AVGDL))


class ImpactBounds:
    """Exact saturation ``2.2 tf / (tf + 0.3 + 0.9 dl / avgdl)`` vs stored impact (the same at
    ``IMPACT_AVGDL``): the highest saturation a posting of impact <= ``i`` can have at the live
    ``avgdl``, and its inverse. With ``r = IMPACT_AVGDL / avgdl`` and ``dl`` eliminated, the
    saturation over 2.2 is ``1 / (1 + r (1/i - 1) + 0.3 (1 - r) / tf)``: its supremum is at
    ``tf`` -> infinity when ``r <= 1`` and at ``tf = 1`` when ``r > 1``."""

    __slots__ = ("_extra", "_r")

    def __init__(self, avgdl: float) -> None:
        self._r = IMPACT_AVGDL / avgdl if avgdl > 0 else 1.0
        self._extra = 0.3 * (self._r - 1.0) if self._r > 1.0 else 0.0

    def saturation(self, i: float) -> float:
        """Upper bound of the exact saturation of a posting whose impact is <= ``i``."""
        if i <= 0.0:
            return 0.0
        den = 1.0 + self._r * (1.0 / i - 1.0) - self._extra
        return _MAX_SATURATION / max(den, 1.0) * (1.0 + 1e-9)

    def impact(self, s: float) -> float:
        """Lower bound of the impact of a posting whose exact saturation is >= ``s``."""
        if s <= 0.0:
            return 0.0
        return (1.0 - 1e-9) / (1.0 + (_MAX_SATURATION / s - 1.0 + self._extra) / self._r)


def idf(n: int, df: int) -> float:
    """Lucene's non-negative idf, as the in-memory index computes it."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


@dataclass(frozen=True, slots=True)
class Probe(Generic[K]):
    """Read the next postings of ``term``: strictly after ``after`` = (impact, key) in
    (impact desc, key desc) order, stored impact >= ``min_impact`` and exact saturation
    (``tf (k1+1) / (tf + k1 (1-b) + per_dl dl)``) >= ``cutoff``, at most ``limit`` of them."""

    term: str
    after: tuple[float, K]
    min_impact: float
    cutoff: float
    limit: int


class MaxScore(Generic[K]):
    """The read plan and the best-``pool`` heap of one search (see the module docstring).

    ``qtf`` maps each distinct query term to its repeat count, ``df`` to its document
    frequency in the tenant; ``n`` and ``total`` are the tenant's indexed memories and their
    summed length. ``start`` is a key above every real key (``after`` of the first probe).
    """

    def __init__(
        self,
        *,
        n: int,
        total: int,
        df: Mapping[str, int],
        qtf: Mapping[str, int],
        pool: int,
        start: K,
    ) -> None:
        self.pool = pool
        avgdl = total / n if n else 0.0
        #: ``per_dl`` of the exact saturation: k1 * b / avgdl.
        self.per_dl = 0.9 / avgdl if avgdl else 0.0
        self._bounds = ImpactBounds(avgdl)
        #: Query term -> idf times its repeat count (terms the tenant does not hold dropped).
        self.weight = {w: idf(n, df[w]) * qtf[w] for w in qtf if df.get(w)}
        self._cursor: dict[str, tuple[float, K]] = {w: (math.inf, start) for w in self.weight}
        # Highest saturation a memory not seen yet can have in each term.
        self._frontier = dict.fromkeys(self.weight, _MAX_SATURATION)
        self._done: set[str] = set()
        self._seen: set[K] = set()
        self._best: list[tuple[float, K]] = []  # min-heap of (score, key), at most ``pool``
        #: What the store attached to each admitted key (ranking inputs, data).
        self.payload: dict[K, Any] = {}
        self._batch = FIRST_BATCH

    @property
    def floor(self) -> float:
        """The score a memory must beat to enter the pool now (-inf while it is not full)."""
        return self._best[0][0] if len(self._best) >= self.pool else -math.inf

    def probes(self) -> list[Probe[K]]:
        """The reads of the next round; empty when the pool is final."""
        weight = self.weight
        theta = max(self.floor, 0.0)
        bound = {w: weight[w] * self._frontier[w] for w in weight}
        # MaxScore: the weakest terms together below theta are non-essential.
        ordered = sorted(bound, key=bound.__getitem__)
        total = 0.0
        while ordered and total + bound[ordered[0]] < theta:
            total += bound[ordered.pop(0)]
        everything = sum(bound.values())
        out = []
        for w in ordered:
            if w in self._done:
                continue
            # Below this saturation a memory cannot reach theta, even with every other term.
            cutoff = max((theta - (everything - bound[w])) / weight[w], 0.0) * (1.0 - 1e-9)
            out.append(
                Probe(w, self._cursor[w], self._bounds.impact(cutoff), cutoff, self._batch)
            )
        self._batch *= 2
        return out

    def read(self, probe: Probe[K], rows: Sequence[tuple[float, K]]) -> list[K]:
        """Take the ``(impact, key)`` postings ``probe`` returned, in order; the keys not seen
        before (the store scores them and offers the live ones to :meth:`admit`)."""
        w = probe.term
        if rows:
            self._cursor[w] = (rows[-1][0], rows[-1][1])
            self._frontier[w] = min(self._frontier[w], self._bounds.saturation(rows[-1][0]))
        if len(rows) < probe.limit:  # nothing left at or above the cutoff
            self._done.add(w)
            self._frontier[w] = min(self._frontier[w], probe.cutoff)
        fresh = []
        for _impact, key in rows:
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(key)
        return fresh

    def admit(self, key: K, score: float, payload: Any) -> None:
        """Offer a live memory (that passed the filters) with its exact BM25 to the pool."""
        item = (score, key)
        best = self._best
        if len(best) < self.pool:
            heapq.heappush(best, item)
        elif item > best[0]:
            self.payload.pop(heapq.heapreplace(best, item)[1], None)
        else:
            return
        self.payload[key] = payload

    def ranked(self) -> list[tuple[float, K]]:
        """The pool, best first: ``(score, key)``."""
        return sorted(self._best, reverse=True)
