"""Exact BM25 top-k of :class:`PostgresStore` from impact-ordered postings (``_topk.MaxScore``).

``dte_postings`` keeps, per ``(tenant, term)``, each non-deleted memory's impact in its primary
key, so a term's best postings come first; ``dte_df`` and ``dte_stats`` hold df, N and the
summed length (kept by triggers in the writing transaction; each counter is the sum of its
shards). A search runs in one ``REPEATABLE READ`` read-only transaction (one snapshot for
every statement): N and df, then per MaxScore round one statement that reads the next
postings of every essential term (``LATERAL`` index-only scans, returned as arrays: far
cheaper to decode than a row per posting) and one that scores the memories seen for the
first time (exact BM25 from the row's ``tf``, liveness, ranking inputs), then the pool's data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.memory._postgres_sql import clause
from deep_tree_echo.aar_core.memory._topk import MaxScore
from deep_tree_echo.aar_core.memory.ranking import Candidate, matches_filters

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

_STATS: Final = """
SELECT s.n, s.total, d.term, d.n
FROM (SELECT sum(n)::bigint AS n, sum(total)::bigint AS total
      FROM dte_stats WHERE tenant = :tenant) AS s
LEFT JOIN (SELECT term, sum(n)::bigint AS n FROM dte_df
           WHERE tenant = :tenant AND term = ANY (CAST(:terms AS text[]))
           GROUP BY term) AS d ON true
"""

#: One MaxScore round: per probe (term, resume point, impact floor, cutoff), the next postings
#: in (impact, id) descending order (an index-only scan of the primary key), as two arrays
#: (far cheaper to decode than one row per posting).
_ROUND: Final = """
SELECT e.ord, p.impacts, p.ids
FROM unnest(CAST(:terms AS text[]), CAST(:imps AS float8[]), CAST(:ids AS text[]),
            CAST(:mins AS float8[]), CAST(:cuts AS float8[]))
     WITH ORDINALITY AS e(term, imp, id, minimp, cut, ord)
CROSS JOIN LATERAL (
    SELECT array_agg(s.impact ORDER BY s.impact DESC, s.id DESC) AS impacts,
           array_agg(s.id ORDER BY s.impact DESC, s.id DESC) AS ids
    FROM (
        SELECT p.impact, p.id FROM dte_postings AS p
        WHERE p.tenant = :tenant AND p.term = e.term AND (p.impact, p.id) < (e.imp, e.id)
          AND p.impact >= e.minimp
          AND p.tf * 2.2::float8 / (p.tf + 0.3::float8 + CAST(:per_dl AS float8) * p.dl)
              >= e.cut
        ORDER BY p.impact DESC, p.id DESC LIMIT :batch
    ) AS s
) AS p
"""

#: The memories first seen in a round: exact BM25 over the query terms (weights :qw, from the
#: row's ``tf``), whether live, ranking inputs and (when filtering) data.
_SCORE: Final = """
WITH q AS (
    SELECT * FROM unnest(CAST(:qterms AS text[]), CAST(:qw AS float8[])) AS q(term, w)
)
SELECT d.id,
       (SELECT sum(q.w * (d.tf ->> q.term)::float8 * 2.2::float8
                   / ((d.tf ->> q.term)::float8 + 0.3::float8 + CAST(:per_dl AS float8) * d.dl))
        FROM q WHERE d.tf ? q.term),
       COALESCE(d.last_access, d.updated_at), d.importance,
       CASE WHEN :filtered THEN d.data END
FROM unnest(CAST(:ids AS text[])) AS k(id)
JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = k.id
WHERE NOT d.deleted AND (d.expires_at IS NULL OR d.expires_at > :now)
"""

_DATA: Final = """
SELECT d.id, d.data FROM unnest(CAST(:ids AS text[])) AS k(id)
JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = k.id
"""


async def top_candidates(
    conn: AsyncConnection,
    terms: Sequence[str],
    *,
    tenant: str,
    pool: int,
    now: float,
    filters: Mapping[str, Any] | None,
) -> list[Candidate]:
    """The ``pool`` best live memories of ``tenant`` by exact BM25 for the query ``terms``
    (tokens with repeats), best first; ``conn`` is in a repeatable-read transaction."""
    qtf = Counter(terms)
    n = total = 0
    df: dict[str, int] = {}
    for sn, stotal, term, dn in await conn.execute(
        clause(_STATS), {"tenant": tenant, "terms": list(qtf)}
    ):
        n, total = sn or 0, stotal or 0
        if term is not None:
            df[term] = dn
    plan: MaxScore[str] = MaxScore(n=n, total=total, df=df, qtf=qtf, pool=pool, start="")
    base: dict[str, Any] = {
        "tenant": tenant,
        "now": now,
        "per_dl": plan.per_dl,
        "filtered": bool(filters),
        "qterms": list(plan.weight),
        "qw": list(plan.weight.values()),
    }
    while probes := plan.probes():
        params = {
            "tenant": tenant,
            "per_dl": plan.per_dl,
            "terms": [p.term for p in probes],
            "imps": [p.after[0] for p in probes],
            "ids": [p.after[1] for p in probes],
            "mins": [p.min_impact for p in probes],
            "cuts": [p.cutoff for p in probes],
            "batch": probes[0].limit,
        }
        fresh: list[str] = []
        for ordinal, impacts, ids in await conn.execute(clause(_ROUND), params):
            rows = list(zip(impacts, ids, strict=True)) if impacts else []
            fresh += plan.read(probes[ordinal - 1], rows)
        if not fresh:
            continue
        scored = await conn.execute(clause(_SCORE), {**base, "ids": fresh})
        for key, score, touched, importance, raw in scored:
            if filters and not matches_filters(json.loads(raw), filters):
                continue
            plan.admit(key, float(score or 0.0), (touched, importance))
    ranked = plan.ranked()
    if not ranked:
        return []
    params = {"tenant": tenant, "ids": [k for _, k in ranked]}
    found: dict[str, str] = {key: raw for key, raw in await conn.execute(clause(_DATA), params)}
    return [
        Candidate(key, found[key], score, *plan.payload[key])
        for score, key in ranked
    ]
