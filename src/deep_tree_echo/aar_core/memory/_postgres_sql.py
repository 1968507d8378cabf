"""Schema migrations and statements of :class:`PostgresStore`.

Migrations are a hand-rolled list of versioned steps recorded in ``dte_schema_migrations``,
applied in one transaction under ``pg_advisory_xact_lock``: N nodes starting at once queue on
the lock and the first one migrates; the others find the versions applied. Text columns that
are compared or sorted use ``COLLATE "C"`` (bytewise), so versions and ids order exactly as
Python's ``str`` does, like the SQLite and Redis stores.
"""

from __future__ import annotations

from typing import Final

#: Key of the advisory lock that serialises migrations (any constant shared by all nodes).
MIGRATION_LOCK: Final = 0x0D7E_3E30

MIGRATIONS: Final[list[tuple[int, list[str]]]] = [
    (
        1,
        [
            """
            CREATE TABLE dte_memories (
                tenant       text COLLATE "C" NOT NULL,
                id           text COLLATE "C" NOT NULL,
                version      text COLLATE "C" NOT NULL,
                data         text NOT NULL,
                created_at   double precision NOT NULL,
                updated_at   double precision NOT NULL,
                access_count bigint NOT NULL DEFAULT 0,
                last_access  double precision,
                expires_at   double precision,
                deleted      boolean NOT NULL DEFAULT false,
                extra        text,
                importance   double precision NOT NULL DEFAULT 0.5,
                terms        text[] NOT NULL DEFAULT '{}',
                tf           jsonb NOT NULL DEFAULT '{}',
                dl           integer NOT NULL DEFAULT 0,
                tsv          tsvector GENERATED ALWAYS AS (array_to_tsvector(terms)) STORED,
                PRIMARY KEY (tenant, id)
            )
            """,
            "CREATE INDEX dte_memories_tsv ON dte_memories USING gin (tsv)",
            "CREATE INDEX dte_memories_tombstones ON dte_memories (tenant, updated_at) "
            "WHERE deleted",
            "CREATE INDEX dte_memories_expiry ON dte_memories (tenant, expires_at) "
            "WHERE expires_at IS NOT NULL",
        ],
    ),
]

CREATE_MIGRATIONS: Final = """
CREATE TABLE IF NOT EXISTS dte_schema_migrations (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

COLUMNS: Final = (
    "id, version, data, created_at, updated_at, access_count, last_access, expires_at, deleted, "
    "extra"
)

# One atomic statement: insert, or replace only when the incoming version is newer.
PUT_IF_NEWER: Final = f"""
INSERT INTO dte_memories (tenant, {COLUMNS}, importance, terms, tf, dl)
VALUES (:tenant, :id, :version, :data, :created_at, :updated_at, :access_count, :last_access,
        :expires_at, :deleted, :extra, :importance, :terms, CAST(:tf AS jsonb), :dl)
ON CONFLICT (tenant, id) DO UPDATE SET
    version = excluded.version, data = excluded.data, created_at = excluded.created_at,
    updated_at = excluded.updated_at, access_count = excluded.access_count,
    last_access = excluded.last_access, expires_at = excluded.expires_at,
    deleted = excluded.deleted, extra = excluded.extra, importance = excluded.importance,
    terms = excluded.terms, tf = excluded.tf, dl = excluded.dl
WHERE excluded.version > dte_memories.version
RETURNING 1
"""

RECORD_ACCESS: Final = """
UPDATE dte_memories SET access_count = access_count + :n,
    last_access = GREATEST(COALESCE(last_access, 0.0), :at)
WHERE tenant = :tenant AND id = :id
"""

PURGE: Final = """
DELETE FROM dte_memories
WHERE tenant = :tenant
  AND (id, version) IN (SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:versions AS text[])))
RETURNING id
"""

PURGE_CANDIDATES: Final = """
(SELECT id, version FROM dte_memories
 WHERE tenant = :tenant AND deleted AND updated_at < :cutoff LIMIT :limit)
UNION ALL
(SELECT id, version FROM dte_memories
 WHERE tenant = :tenant AND NOT deleted AND expires_at < :cutoff LIMIT :limit)
"""

_LIVE: Final = "NOT deleted AND (expires_at IS NULL OR expires_at > :now)"

#: Exact Lucene BM25 (k1 = 1.2, b = 0.75: the in-memory index's formula) of every live match of
#: the query (GIN on ``tsv``), with df, N and avgdl over the tenant's live memories; best first.
SEARCH_TERMS: Final = f"""
WITH m AS MATERIALIZED (
    SELECT id, tf, dl FROM dte_memories
    WHERE tenant = :tenant AND {_LIVE} AND tsv @@ CAST(:query AS tsquery)
), s AS MATERIALIZED (
    SELECT count(*)::float8 AS n, COALESCE(avg(dl), 0)::float8 AS avgdl
    FROM dte_memories WHERE tenant = :tenant AND {_LIVE}
), q AS MATERIALIZED (
    SELECT t.term, t.qtf, (SELECT count(*) FROM m WHERE m.tf ? t.term)::float8 AS df
    FROM unnest(CAST(:terms AS text[]), CAST(:qtfs AS int[])) AS t(term, qtf)
), scored AS MATERIALIZED (
    SELECT m.id, sum(
        ln(1.0 + (s.n - q.df + 0.5) / (q.df + 0.5)) * q.qtf * 2.2 * (m.tf ->> q.term)::float8
        / ((m.tf ->> q.term)::float8 + 0.3
           + CASE WHEN s.avgdl > 0 THEN 0.9 * m.dl / s.avgdl ELSE 0 END)
    ) AS bm25
    FROM m JOIN q ON m.tf ? q.term CROSS JOIN s
    GROUP BY m.id
)
SELECT d.id, d.data, scored.bm25, COALESCE(d.last_access, d.updated_at), d.importance
FROM scored JOIN dte_memories AS d ON d.tenant = :tenant AND d.id = scored.id
ORDER BY scored.bm25 DESC, d.id DESC
"""

SEARCH_ALL: Final = f"""
SELECT id, data, 0.0::float8, COALESCE(last_access, updated_at), importance
FROM dte_memories WHERE tenant = :tenant AND {_LIVE}
"""


def tsquery(terms: list[str]) -> str:
    """``'a' | 'b'`` with each lexeme quoted (no parser, no normalisation: exact tokens)."""
    quoted = ("'" + t.replace("\\", "\\\\").replace("'", "''") + "'" for t in terms)
    return " | ".join(quoted)
