"""Exact BM25 top-k of :class:`SQLiteStore` from impact-ordered postings (``_topk.MaxScore``).

``memories_postings`` keeps, per ``(tenant, term)``, each live memory's stored impact, so a
term's best postings are read first from the index; ``_topk.MaxScore`` decides what to read
and this module reads it: each probe is one statement that returns the next postings of a term
with their memories' exact BM25 (one correlated lookup per query term in the ``(rid, term,
tf)`` index). Liveness (tombstones have no postings; expiry) and filters apply before the cut;
only the pool's JSON is loaded.

:func:`top_candidates_cached` finds the same top-k through the search cache
(``_sqlite_postcache``): rare words through their postings, frequent ones by a class walk.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from deep_tree_echo.aar_core.memory import _sqlite_schema as sql
from deep_tree_echo.aar_core.memory._postcache import PostingsCache, class_walk
from deep_tree_echo.aar_core.memory._sqlite_postcache import views as cached_views
from deep_tree_echo.aar_core.memory._topk import MaxScore, idf
from deep_tree_echo.aar_core.memory.ranking import Candidate, matches_filters

#: Postings of one term, best stored impact first, resuming after ``(impact, rid)``, whose
#: exact BM25 saturation at the live avgdl reaches a cutoff (checked on the index entry), each
#: with its memory's exact BM25 ({score}: one part per query term, the term read from the
#: posting itself, the others from the ``(rid, term, tf)`` index).
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
_OWN_SCORE: Final = "? * (p.tf * 2.2 / (p.tf + 0.3 + ? * p.dl))"
#: What ranking needs of the live memories among ``?`` rids.
_LIVE_ROWS: Final = """
SELECT rid, COALESCE(last_access, updated_at), importance, {data} FROM memories {index}
WHERE rid IN ({marks}) AND deleted = 0 AND (expires_at IS NULL OR expires_at > ?)
"""


def top_candidates(
    conn: sqlite3.Connection,
    hex_query: Sequence[str],
    *,
    tenant: str,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
    cache: PostingsCache[int] | None = None,
) -> list[Candidate]:
    """The ``pool`` best live memories of ``tenant`` by exact BM25 (``hex_query`` holds hex
    words with repeats), best first, each with its parsed data; through ``cache`` when given
    (in one read transaction: one snapshot for the cache's catch-up and every read)."""
    if cache is not None:
        conn.execute("BEGIN")
        try:
            got = top_candidates_cached(
                conn, cache, hex_query, tenant=tenant, pool=pool, now=now, filters=filters
            )
            if got is not None:
                return got
            return _maxscore(conn, hex_query, tenant, pool, now, filters)
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")
    return _maxscore(conn, hex_query, tenant, pool, now, filters)


def _maxscore(
    conn: sqlite3.Connection,
    hex_query: Sequence[str],
    tenant: str,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
) -> list[Candidate]:
    """:func:`top_candidates` from the impact-ordered index (MaxScore)."""
    qtf = Counter(hex_query)
    n, total, df = _stats(conn, tenant, qtf)
    plan: MaxScore[int] = MaxScore(n=n, total=total, df=df, qtf=qtf, pool=pool, start=1 << 62)
    # Per term read: its statement and score parameters (its own tf is on the posting).
    statements = {read: _scoring(read, plan.weight, plan.per_dl) for read in plan.weight}
    while probes := plan.probes():
        for probe in probes:
            impact, rid = probe.after
            statement, score_params = statements[probe.term]
            params = (*score_params, tenant, probe.term, impact, rid, probe.min_impact)
            rows = conn.execute(
                statement, (*params, plan.per_dl, probe.cutoff, probe.limit)
            ).fetchall()
            new = set(plan.read(probe, [(i, k) for i, k, _ in rows]))
            floor = plan.floor
            fresh = {k: score for _, k, score in rows if k in new and score > floor}
            if fresh:
                _admit(conn, fresh, plan, now=now, filters=filters)
    return _with_data(conn, [(rid, score) for score, rid in plan.ranked()], plan.payload)


def _admit(
    conn: sqlite3.Connection,
    scores: dict[int, float],
    plan: MaxScore[int],
    *,
    now: float,
    filters: Mapping[str, Any] | None,
) -> None:
    """Offer the live (and filtered) memories among ``scores`` to the pool."""
    payload: dict[int, tuple[float, float]] = {}
    for rid in _keeper(conn, now, filters, payload)(scores, len(scores)):
        plan.admit(rid, scores[rid], payload[rid])


def _stats(
    conn: sqlite3.Connection, tenant: str, words: Iterable[str]
) -> tuple[int, int, dict[str, int]]:
    """The tenant's N and summed length, and the df of each of ``words`` it holds."""
    n, total = conn.execute(sql.STATS, (tenant,)).fetchone() or (0, 0)
    df: dict[str, int] = {}
    for word in words:
        hit = conn.execute(sql.DOC_FREQ, (tenant, word)).fetchone()
        if hit and hit[0] > 0:
            df[word] = hit[0]
    return n, total, df


def _scoring(
    read: str, weight: Mapping[str, float], per_dl: float
) -> tuple[str, list[Any]]:
    """The postings statement of term ``read`` scoring each memory over every query term,
    and its score parameters."""
    parts: list[str] = []
    params: list[Any] = []
    for w, wt in weight.items():
        parts.append(_OWN_SCORE if w == read else _TERM_SCORE)
        params += (wt, per_dl) if w == read else (wt, per_dl, w)
    return _POSTINGS.format(score=" + ".join(parts)), params


def _with_data(
    conn: sqlite3.Connection,
    ranked: Sequence[tuple[int, float]],
    payload: Mapping[int, tuple[float, float]],
) -> list[Candidate]:
    """The ranked ``(rid, score)`` as candidates, with their data and ranking inputs."""
    if not ranked:
        return []
    marks = ",".join("?" * len(ranked))
    query = f"SELECT rid, id, data FROM memories WHERE rid IN ({marks})"
    found = {rid: (mid, raw) for rid, mid, raw in conn.execute(query, [k for k, _ in ranked])}
    return [
        Candidate(found[rid][0], found[rid][1], score, *payload[rid])
        for rid, score in ranked
    ]


def top_candidates_cached(
    conn: sqlite3.Connection,
    cache: PostingsCache[int],
    hex_query: Sequence[str],
    *,
    tenant: str,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
) -> list[Candidate] | None:
    """:func:`top_candidates` through the postings cache (``conn`` in a read transaction):
    the postings of rare terms are read with their memories' exact BM25, the memories holding
    only frequent terms are found by walking classes of equal score over the cached groups
    (``_classwalk``), as the in-memory index does (frequent terms the cache does not hold are
    read for this search). None if it has no view of them (the caller reads the index)."""
    qtf = Counter(hex_query)
    n, total, df = _stats(conn, tenant, qtf)
    if not df or not n:
        return []
    weight = {w: idf(n, df[w]) * qtf[w] for w in df}
    per_dl = 0.9 / (total / n) if total else 0.0
    views = cached_views(conn, cache, tenant, [w for w in weight if df[w] >= cache.min_df])
    if views is None:
        return None
    payload: dict[int, tuple[float, float]] = {}
    keep = _keeper(conn, now, filters, payload)
    # Rare terms: every posting, with its memory's exact BM25 over all the query terms.
    acc: dict[int, float] = {}
    for read in weight:
        if read in views:
            continue
        statement, params = _scoring(read, weight, per_dl)
        params += (tenant, read, float("inf"), 1 << 62, 0.0, per_dl, 0.0, -1)
        for _impact, rid, score in conn.execute(statement, params):
            acc[rid] = score
    by_score = sorted(acc, key=acc.__getitem__, reverse=True)
    live = keep(by_score, pool)
    seed = [(acc[rid], rid) for rid in by_score if rid in live][:pool]
    if views:
        ranked = class_walk(views, weight, per_dl).top(pool, seed=seed, scored=acc, keep=keep)
    else:
        ranked = [(rid, score) for score, rid in seed]
    return _with_data(conn, ranked, payload)


def _keeper(
    conn: sqlite3.Connection,
    now: float,
    filters: Mapping[str, Any] | None,
    payload: dict[int, tuple[float, float]],
) -> Callable[[Iterable[int], int], set[int]]:
    """``keep(rids, enough)``: the live (and filtered) memories among ``rids``, checked in
    their order until ``enough`` are found; their ranking inputs go into ``payload``."""
    query_parts = {
        "data": "data" if filters else "NULL",
        "index": "" if filters else "INDEXED BY memories_live",
    }

    def keep(rids: Iterable[int], enough: int) -> set[int]:
        out: set[int] = set()
        ids = list(rids)
        for start in range(0, len(ids), 500):  # below SQLite's bound-parameter limit
            if len(out) >= enough:
                break
            part = ids[start : start + 500]
            query = _LIVE_ROWS.format(marks=",".join("?" * len(part)), **query_parts)
            for rid, touched, importance, raw in conn.execute(query, (*part, now)):
                if filters and not matches_filters(json.loads(raw), filters):
                    continue
                payload[rid] = (touched, importance)
                out.add(rid)
        return out

    return keep
