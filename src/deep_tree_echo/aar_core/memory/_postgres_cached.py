"""PostgreSQL's side of the search cache (``_postcache``): exact top-k by the class walk.

Migration 3 stamps every write of a memory's postings with its transaction id (``gen``). A
search's ``REPEATABLE READ`` snapshot has an ``xmin``: every transaction below it had ended
when the snapshot was taken, so whatever this snapshot sees that an earlier one did not was
written by a transaction at or above the earlier snapshot's xmin. The cache thus asks for the
memories with ``gen >= `` the xmin it last saw (re-reading some twice is harmless: a change is
applied as "this memory's postings are now ...") and holds each term as of ``xmin - 1``. The
catch-up and term loads run under one lock per store, with the snapshot taken inside it, so
the cache only ever moves forward; the walk and the liveness reads run outside it.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.memory._postcache import PostingsCache, TermView, class_walk
from deep_tree_echo.aar_core.memory._topk import idf
from deep_tree_echo.aar_core.memory.ranking import Candidate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

#: The snapshot's xmin (the first statement of the transaction: it takes the snapshot), the
#: tenant's N and total length, and df of each query term.
_START: Final = """
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, s.n, s.total, d.term, d.n
FROM (SELECT 1) AS one
LEFT JOIN dte_stats AS s ON s.tenant = :tenant
LEFT JOIN (unnest(CAST(:terms AS text[])) AS t(term)
           JOIN dte_df AS d ON d.tenant = :tenant AND d.term = t.term) ON true
"""
_CHANGES: Final = """
SELECT id, gen, dl, tf::text FROM dte_memories WHERE tenant = :tenant AND gen > :since
"""
_GROUPS: Final = """
SELECT term, tf, dl, array_agg(id) FROM dte_postings
WHERE tenant = :tenant AND term = ANY (CAST(:terms AS text[])) GROUP BY term, tf, dl
"""
#: Every memory holding a rare query term: exact BM25 over all the query terms, liveness and
#: ranking inputs.
_RARE: Final = """
WITH q AS (
    SELECT * FROM unnest(CAST(:qterms AS text[]), CAST(:qw AS float8[])) AS q(term, w)
), k AS (
    SELECT DISTINCT p.id FROM dte_postings AS p
    WHERE p.tenant = :tenant AND p.term = ANY (CAST(:rare AS text[]))
)
SELECT d.id,
       (SELECT sum(q.w * (d.tf ->> q.term)::float8 * 2.2::float8
                   / ((d.tf ->> q.term)::float8 + 0.3::float8 + CAST(:per_dl AS float8) * d.dl))
        FROM q WHERE d.tf ? q.term),
       COALESCE(d.last_access, d.updated_at), d.importance,
       NOT d.deleted AND (d.expires_at IS NULL OR d.expires_at > :now)
FROM k JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = k.id
"""
#: Ranking inputs and data of the live memories among ``:ids``.
_LIVE: Final = """
SELECT d.id, COALESCE(d.last_access, d.updated_at), d.importance, d.data
FROM unnest(CAST(:ids AS text[])) AS k(id)
JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = k.id
WHERE NOT d.deleted AND (d.expires_at IS NULL OR d.expires_at > :now)
"""
#: Walks tried before the index answers instead (each drops the dead memories it found).
_ATTEMPTS: Final = 4


async def top_candidates_cached(
    conn: AsyncConnection,
    cache: PostingsCache[str],
    lock: asyncio.Lock,
    terms: Sequence[str],
    *,
    tenant: str,
    pool: int,
    now: float,
) -> list[Candidate] | None:
    """The ``pool`` best live memories by exact BM25 through the cache (``conn`` has begun a
    repeatable-read transaction and run nothing yet); None when the cache cannot answer (the
    frequent terms do not fit, or too many cached candidates were dead): read the index."""
    from sqlalchemy import text

    qtf = Counter(terms)
    df: dict[str, int] = {}
    n = total = 0
    async with lock:  # the snapshot is taken in here: the cache only moves forward
        rows = list(await conn.execute(text(_START), {"tenant": tenant, "terms": list(qtf)}))
        xmin = int(rows[0][0])
        for _xmin, sn, stotal, term, dn in rows:
            n, total = sn or 0, stotal or 0
            if term is not None and dn > 0:
                df[term] = dn
        if not df or not n:
            return []
        weight = {w: idf(n, df[w]) * qtf[w] for w in df}
        frequent = [w for w in weight if df[w] >= cache.min_df]
        views = await _views(conn, cache, tenant, frequent, xmin - 1)
    if views is None:
        return None
    per_dl = 0.9 / (total / n) if total else 0.0
    payload: dict[str, tuple[float, float]] = {}
    acc: dict[str, float] = {}
    rare = [w for w in weight if w not in views]
    if rare:
        params = {"tenant": tenant, "now": now, "per_dl": per_dl, "rare": rare,
                  "qterms": list(weight), "qw": list(weight.values())}
        for key, score, touched, importance, live in await conn.execute(text(_RARE), params):
            acc[key] = float(score or 0.0)
            if live:
                payload[key] = (touched, importance)
    seed = heapq.nlargest(pool, ((s, k) for k, s in acc.items() if k in payload))
    if not views:
        ranked = [(k, s) for s, k in seed]
        return await _candidates(conn, tenant, now, ranked, payload)
    walk = class_walk(views, weight, per_dl)
    dead: set[str] = {k for k in acc if k not in payload}
    scored: set[str] = set(acc)
    for _ in range(_ATTEMPTS):
        ranked = walk.top(pool, seed=seed, scored=scored)
        unknown = [k for k, _ in ranked if k not in payload]
        if not unknown:
            return await _candidates(conn, tenant, now, ranked, payload)
        found = await _live(conn, tenant, now, unknown, payload)
        gone = set(unknown) - found
        if not gone:
            return await _candidates(conn, tenant, now, ranked, payload)
        dead |= gone
        scored |= gone
    return None


async def _views(
    conn: AsyncConnection,
    cache: PostingsCache[str],
    tenant: str,
    words: list[str],
    clock: int,
) -> dict[str, TermView[str]] | None:
    """Catch the cache up to ``clock`` (xmin - 1 of the snapshot), read the terms it lacks."""
    from sqlalchemy import text

    since = cache.since(tenant)
    changes: list[tuple[str, int, int, dict[str, int]]] = []
    if since is not None:  # always: transactions above an unchanged xmin may have committed
        rows = await conn.execute(text(_CHANGES), {"tenant": tenant, "since": since})
        changes = [(key, gen, dl, json.loads(tf)) for key, gen, dl, tf in rows]
    cache.caught_up(tenant, clock, changes)
    lacking = cache.lacking(tenant, words)
    if lacking:
        groups: dict[str, list[tuple[int, int, list[str]]]] = {w: [] for w in lacking}
        for word, tf, dl, ids in await conn.execute(
            text(_GROUPS), {"tenant": tenant, "terms": lacking}
        ):
            groups[word].append((tf, dl, ids))
        for word in lacking:
            if not cache.add(tenant, word, groups[word], keep=words):
                return None
    return cache.views(tenant, words)


async def _live(
    conn: AsyncConnection,
    tenant: str,
    now: float,
    keys: list[str],
    payload: dict[str, tuple[float, float]],
) -> set[str]:
    """The live memories among ``keys`` (their ranking inputs go into ``payload``)."""
    from sqlalchemy import text

    found: set[str] = set()
    params: dict[str, Any] = {"tenant": tenant, "now": now, "ids": keys}
    for key, touched, importance, _data in await conn.execute(text(_LIVE), params):
        payload[key] = (touched, importance)
        found.add(key)
    return found


async def _candidates(
    conn: AsyncConnection,
    tenant: str,
    now: float,
    ranked: list[tuple[str, float]],
    payload: dict[str, tuple[float, float]],
) -> list[Candidate]:
    """The ranked memories with their data (all known live)."""
    from sqlalchemy import text

    if not ranked:
        return []
    params: dict[str, Any] = {"tenant": tenant, "now": now, "ids": [k for k, _ in ranked]}
    data = {key: raw for key, _t, _i, raw in await conn.execute(text(_LIVE), params)}
    return [
        Candidate(key, json.loads(data[key]), score, *payload[key])
        for key, score in ranked
        if key in data
    ]
