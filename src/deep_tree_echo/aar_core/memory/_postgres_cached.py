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
import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.memory._postcache import PostingsCache, TermView, class_walk
from deep_tree_echo.aar_core.memory._postgres_sql import clause
from deep_tree_echo.aar_core.memory._topk import idf
from deep_tree_echo.aar_core.memory.ranking import Candidate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

#: The snapshot's xmin (the first statement of the transaction: it takes the snapshot), the
#: tenant's N and total length, df of each query term, and (``:since`` >= 0) the memories
#: stamped after ``:since`` with their postings now, as arrays.
_START: Final = """
SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, s.n, s.total, f.terms, f.ns,
       c.ids, c.gens, c.dls, c.tfs
FROM (SELECT sum(n)::bigint AS n, sum(total)::bigint AS total
      FROM dte_stats WHERE tenant = :tenant) AS s
CROSS JOIN LATERAL (
    SELECT array_agg(d.term) AS terms, array_agg(d.n) AS ns
    FROM (SELECT term, sum(n)::bigint AS n FROM dte_df
          WHERE tenant = :tenant AND term = ANY (CAST(:terms AS text[])) GROUP BY term) AS d
) AS f
CROSS JOIN LATERAL (
    SELECT array_agg(m.id) AS ids, array_agg(m.gen) AS gens, array_agg(m.dl) AS dls,
           array_agg(m.tf::text) AS tfs
    FROM dte_memories AS m WHERE :since >= 0 AND m.tenant = :tenant AND m.gen > :since
) AS c
"""
_GROUPS: Final = """
SELECT tf, dl, array_agg(id) FROM dte_postings
WHERE tenant = :tenant AND term = :term GROUP BY tf, dl
"""
#: The postings of the rare query terms (an index-only range scan per term): their memories
#: are scored exactly in Python, the frequent terms' tf coming from the cache's views.
_RARE: Final = """
SELECT term, array_agg(id), array_agg(tf), array_agg(dl) FROM dte_postings
WHERE tenant = :tenant AND term = ANY (CAST(:rare AS text[])) GROUP BY term
"""
#: Ranking inputs and data of the live memories among ``:ids``.
_LIVE: Final = """
SELECT d.id, COALESCE(d.last_access, d.updated_at), d.importance, d.data
FROM unnest(CAST(:ids AS text[])) AS k(id)
JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = k.id
WHERE NOT d.deleted AND (d.expires_at IS NULL OR d.expires_at > :now)
"""
#: Every tenant's terms held by at least ``:min`` memories, most frequent first.
_FREQUENT: Final = """
SELECT tenant, term, sum(n)::bigint FROM dte_df GROUP BY tenant, term HAVING sum(n) >= :min
ORDER BY 3 DESC
"""
_CHANGES: Final = """
SELECT id, gen, dl, tf::text FROM dte_memories WHERE tenant = :tenant AND gen > :since
"""
_XMIN: Final = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
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
    repeatable-read transaction and run nothing yet); None when the walk kept finding dead
    (expired) memories at the top: the caller reads the index."""
    qtf = Counter(terms)
    async with lock:  # the snapshot is taken in here: the cache only moves forward
        since = cache.since(tenant)
        params = {"tenant": tenant, "terms": list(qtf), "since": -1 if since is None else since}
        row = (await conn.execute(clause(_START), params)).one()
        xmin, sn, stotal, words, ns, ids, gens, dls, tfs = row
        n, total = sn or 0, stotal or 0
        df = {w: dn for w, dn in zip(words or (), ns or (), strict=True) if dn > 0}
        # Always caught up, even at an unchanged xmin: transactions above it may have ended.
        changes = zip(ids or (), gens or (), dls or (), map(json.loads, tfs or ()), strict=True)
        cache.caught_up(tenant, int(xmin) - 1, changes)
        if not df or not n:
            return []
        weight = {w: idf(n, df[w]) * qtf[w] for w in df}
        frequent = [w for w in weight if df[w] >= cache.min_df]
        views = await _views(conn, cache, tenant, frequent)
    if views is None:
        return None
    per_dl = 0.9 / (total / n) if total else 0.0
    acc = await _rare_scores(conn, tenant, weight, views, per_dl)
    # Best first; liveness is checked on the ranked pool only (dead ones leave and it re-ranks).
    seed = sorted(((s, k) for k, s in acc.items()), reverse=True)
    walk = class_walk(views, weight, per_dl) if views else None
    scored: set[str] = set(acc)  # exactly scored already (rare terms)
    gone: set[str] = set()  # found dead
    payload: dict[str, tuple[float, float]] = {}
    for _ in range(_ATTEMPTS):
        best = [(s, k) for s, k in seed if k not in gone][:pool] if gone else seed[:pool]
        if walk is None:
            ranked = [(k, s) for s, k in best]
        else:
            ranked = walk.top(pool, seed=best, scored=scored | gone if gone else scored)
        data = await _live(conn, tenant, now, [k for k, _ in ranked], payload)
        if len(data) == len(ranked):
            return [Candidate(k, data[k], s, *payload[k]) for k, s in ranked]
        gone |= {k for k, _ in ranked} - data.keys()
    return None


async def _rare_scores(
    conn: AsyncConnection,
    tenant: str,
    weight: dict[str, float],
    views: dict[str, TermView[str]],
    per_dl: float,
) -> dict[str, float]:
    """The exact BM25 of every memory holding a rare query term (one not in ``views``), summed
    term by term in ``weight``'s order as the in-memory index sums it."""
    rare = [w for w in weight if w not in views]
    if not rare:
        return {}
    rows: dict[str, tuple[list[str], list[int], list[int]]] = {}
    for word, keys, tfs, dls in await conn.execute(clause(_RARE), {"tenant": tenant, "rare": rare}):
        rows[word] = (keys, tfs, dls)
    acc: dict[str, float] = {}
    get = acc.get
    by_len: dict[int, set[str]] = {}  # the scored memories by length
    for w in rare:
        if w not in rows:
            continue
        wk = weight[w] * 2.2
        for key, tf, dl in zip(*rows[w], strict=True):
            acc[key] = get(key, 0.0) + wk * tf / (tf + 0.3 + per_dl * dl)
            by_len.setdefault(dl, set()).add(key)
    for w in weight:  # the frequent terms, a group at a time
        view = views.get(w)
        if view is None:
            continue
        wk = weight[w] * 2.2
        for dl, keys in by_len.items():
            for tf in view.by_dl.get(dl, ()):
                part = wk * tf / (tf + 0.3 + per_dl * dl)
                for key in keys.intersection(view.members(tf, dl)):
                    acc[key] += part
    return acc


async def _views(
    conn: AsyncConnection, cache: PostingsCache[str], tenant: str, words: list[str]
) -> dict[str, TermView[str]] | None:
    """Read the terms the cache lacks, then the views of ``words``."""
    await _load(conn, cache, tenant, words)
    return cache.views(tenant, words)


async def _load(
    conn: AsyncConnection, cache: PostingsCache[str], tenant: str, words: list[str]
) -> None:
    """Read the ``words`` the cache lacks and hand them to it, a word at a time (the ids of
    one word are in the process at once, not those of all)."""
    for word in cache.lacking(tenant, words):
        rows = await conn.execute(clause(_GROUPS), {"tenant": tenant, "term": word})
        cache.add(tenant, word, rows, keep=words)


async def _live(
    conn: AsyncConnection,
    tenant: str,
    now: float,
    keys: list[str],
    payload: dict[str, tuple[float, float]],
) -> dict[str, str]:
    """The live memories among ``keys`` with their data (JSON text); their ranking inputs go
    into ``payload``."""
    if not keys:
        return {}
    data: dict[str, str] = {}
    params: dict[str, Any] = {"tenant": tenant, "now": now, "ids": keys}
    for key, touched, importance, raw in await conn.execute(clause(_LIVE), params):
        payload[key] = (touched, importance)
        data[key] = raw
    return data


async def warm(
    conn: AsyncConnection, cache: PostingsCache[str], lock: asyncio.Lock, *, share: float
) -> int:
    """Read the most frequent terms of every tenant, up to ``share`` of the budget (the store's
    ``WARM_SHARE_POSTGRES``; ``conn`` has begun a repeatable-read transaction and run nothing
    yet). Returns the terms read."""
    async with lock:
        clock = int((await conn.execute(clause(_XMIN))).scalar_one()) - 1
        picked: dict[str, list[str]] = {}
        planned = 0
        for tenant, word, n in await conn.execute(clause(_FREQUENT), {"min": cache.min_df}):
            if cache.fits(planned + n, share) and cache.lacking(tenant, [word]):
                picked.setdefault(tenant, []).append(word)
                planned += n
        loaded = 0
        for tenant, words in picked.items():
            since = cache.since(tenant)
            changes: list[tuple[str, int, int, dict[str, int]]] = []
            if since is not None:
                rows = await conn.execute(clause(_CHANGES), {"tenant": tenant, "since": since})
                changes = [(key, gen, dl, json.loads(tf)) for key, gen, dl, tf in rows]
            cache.caught_up(tenant, clock, changes)
            before = cache.loads
            await _load(conn, cache, tenant, words)
            loaded += cache.loads - before
        return loaded
