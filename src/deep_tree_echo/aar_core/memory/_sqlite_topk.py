"""Exact BM25 top-k of :class:`SQLiteStore` from impact-ordered postings (MaxScore pruning).

``memories_postings`` keeps, per ``(tenant, term)``, each live memory's stored *impact* (its
BM25 saturation at a fixed average length, ``_sqlite_schema.impact``), so a term's best
postings are read first from the index. A search reads the top postings of every query term,
scores the memories found exactly (Lucene BM25 with the tenant's fresh N, df and avgdl,
as the in-memory index does) and takes ``theta``, the ``pool``-th best score, as a lower
bound of the final cut.
Then, as in MaxScore (Turtle & Flood 1995): terms whose summed upper bounds stay below
``theta`` cannot carry a memory into the pool alone, so only the other ("essential") terms are
read further, and each only down to the impact below which a memory could not reach ``theta``
even with every other term at its best. Memories are scored exactly when first seen, so the
pool holds the exact BM25 top ``pool`` (ties at the cut aside); filters and liveness apply
before the cut. Only the pool's JSON is loaded.
"""

from __future__ import annotations

import heapq
import json
import math
import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory.ranking import Candidate

_MISSING: Final = object()

#: Postings of one term, best stored impact first, resuming after ``(impact, rid)``, whose
#: exact BM25 saturation at the live avgdl reaches a cutoff (checked on the index entry), each
#: with its memory's exact BM25 ({score}: one term each, from the ``(rid, term, tf)`` index).
_POSTINGS: Final = """
SELECT p.impact, p.rid, {score}
FROM memories_postings AS p
WHERE p.tenant = ? AND p.term = ? AND (p.impact, p.rid) < (?, ?) AND p.impact >= ?
  AND p.tf * 2.2 / (p.tf + 0.3 + ? * p.dl) >= ?
ORDER BY p.impact DESC, p.rid DESC LIMIT ?
"""
_TERM_SCORE: Final = (
    "? * COALESCE((SELECT s.tf * 2.2 / (s.tf + 0.3 + ? * p.dl) FROM memories_postings AS s "
    "WHERE s.rid = p.rid AND s.term = ?), 0.0)"
)
#: What ranking needs of the live memories among ``?`` rids.
_LIVE_ROWS: Final = """
SELECT rid, id, COALESCE(last_access, updated_at), importance, {data} FROM memories
WHERE rid IN ({marks}) AND deleted = 0 AND (expires_at IS NULL OR expires_at > ?)
"""

#: Postings read per term in the first round (then doubled each round).
FIRST_BATCH: Final = 64


def _matches(raw: str, filters: Mapping[str, Any]) -> bool:
    data = json.loads(raw)
    return all(data.get(k, _MISSING) == v for k, v in filters.items())


def top_candidates(
    conn: sqlite3.Connection,
    hex_query: Sequence[str],
    *,
    tenant: str,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
) -> list[Candidate]:
    """The ``pool`` best live memories of ``tenant`` by exact BM25 (``hex_query`` holds hex
    words with repeats), best first, each with its parsed data."""
    stats = conn.execute(sql.STATS, (tenant,)).fetchone() or (0, 0)
    n, avgdl = stats[0], (stats[1] / stats[0] if stats[0] else 0.0)
    qtf = Counter(hex_query)
    df: dict[str, int] = {}
    for word in qtf:
        hit = conn.execute(sql.DOC_FREQ, (tenant, word)).fetchone()
        df[word] = hit[0] if hit else 0
    slack = sql.impact_slack(avgdl) * 2.2  # stored impact -> bound of the exact saturation
    per_dl = 0.9 / avgdl if avgdl else 0.0
    # A term's exact contribution is its weight times the saturation tf (k1 + 1) / (tf + norm).
    weight = {
        w: math.log(1.0 + (n - df[w] + 0.5) / (df[w] + 0.5)) * qtf[w] for w in qtf if df[w]
    }
    terms = list(weight)
    statement = _POSTINGS.format(score=" + ".join([_TERM_SCORE] * len(terms)) or "0.0")
    score_params: list[Any] = []
    for w in terms:
        score_params += (weight[w], per_dl, w)
    cursor = {w: (math.inf, 0) for w in weight}  # (impact, rid) of the last posting read
    # Highest saturation a memory not seen yet can have in each term (below k1 + 1).
    frontier = dict.fromkeys(weight, 2.2)
    done: set[str] = set()
    seen: set[int] = set()
    best: list[tuple[float, int, str]] = []  # min-heap of (score, rid, id), at most ``pool``
    extra: dict[int, tuple[float, float]] = {}  # rid -> (touched, importance)
    batch = FIRST_BATCH
    while True:
        theta = best[0][0] if len(best) >= pool else 0.0
        bound = {w: weight[w] * frontier[w] for w in weight}
        # MaxScore: the weakest terms together below theta are non-essential.
        essential = sorted(bound, key=bound.__getitem__)
        total = 0.0
        while essential and total + bound[essential[0]] < theta:
            total += bound[essential.pop(0)]
        essential = [w for w in essential if w not in done]
        if not essential:
            break
        everything = sum(bound.values())
        for w in essential:
            # Below this saturation a memory cannot reach theta, even with every other term.
            cutoff = max((theta - (everything - bound[w])) / weight[w], 0.0) * (1.0 - 1e-9)
            impact, rid = cursor[w]
            params = (*score_params, tenant, w, impact, rid, cutoff / slack, per_dl, cutoff)
            rows = conn.execute(statement, (*params, batch)).fetchall()
            if rows:
                cursor[w] = (rows[-1][0], rows[-1][1])
                frontier[w] = min(frontier[w], rows[-1][0] * slack)
            if len(rows) < batch:  # nothing left at or above the cutoff
                done.add(w)
                frontier[w] = min(frontier[w], cutoff)
            # Memories that would enter the pool now, if live (and kept by the filters).
            floor = best[0][0] if len(best) >= pool else -math.inf
            scores: dict[int, float] = {}
            for _impact, rid_, score in rows:
                if rid_ not in seen:
                    seen.add(rid_)
                    if score > floor:
                        scores[rid_] = score
            if scores:
                _admit(conn, scores, best, extra, pool=pool, now=now, filters=filters)
        batch *= 2
    ranked = sorted(best, reverse=True)
    if not ranked:
        return []
    marks = ",".join("?" * len(ranked))
    query = f"SELECT rid, data FROM memories WHERE rid IN ({marks})"
    data = dict(conn.execute(query, [rid for _, rid, _ in ranked]).fetchall())
    return [
        Candidate(mid, json.loads(data[rid]), score, *extra[rid]) for score, rid, mid in ranked
    ]


def _admit(
    conn: sqlite3.Connection,
    scores: dict[int, float],
    best: list[tuple[float, int, str]],
    extra: dict[int, tuple[float, float]],
    *,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
) -> None:
    """Push the live (and filtered) memories among ``scores`` into the ``best`` heap."""
    rids = list(scores)
    for start in range(0, len(rids), 500):  # below SQLite's bound-parameter limit
        part = rids[start : start + 500]
        marks = ",".join("?" * len(part))
        query = _LIVE_ROWS.format(data="data" if filters else "NULL", marks=marks)
        for rid, mid, touched, importance, raw in conn.execute(query, (*part, now)):
            if filters and not _matches(raw, filters):
                continue
            item = (scores[rid], rid, mid)
            if len(best) < pool:
                heapq.heappush(best, item)
            elif item > best[0]:
                extra.pop(heapq.heapreplace(best, item)[1], None)
            else:
                continue
            extra[rid] = (touched, importance)
