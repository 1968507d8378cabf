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

#: A posting's tf and impact, read from a ``dte_memories`` row (``{row}``) and a term ``t.term``.
_TF: Final = "({row}.tf ->> t.term)::integer"
_IMPACT: Final = "dte_impact(({row}.tf ->> t.term)::integer, {row}.dl)"
#: Key class of the per-tenant write locks (``pg_advisory_xact_lock(WRITE_LOCK, hashtext(t))``).
WRITE_LOCK: Final = 0x0D7E

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
    (
        2,
        [
            # Impact-ordered postings replace the tsvector + GIN match (see _postgres_topk).
            # The impact formula is _topk.impact's, in float8 (the same IEEE operations).
            """
            CREATE FUNCTION dte_impact(tf integer, dl integer) RETURNS float8
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT tf::float8 / (tf::float8 + 1.2::float8
                       * (0.25::float8 + 0.75::float8 * dl::float8 / 16.0::float8))
            $$
            """,
            """
            CREATE TABLE dte_postings (
                tenant text COLLATE "C" NOT NULL,
                term   text COLLATE "C" NOT NULL,
                impact float8 NOT NULL,
                id     text COLLATE "C" NOT NULL,
                tf     integer NOT NULL,
                dl     integer NOT NULL,
                PRIMARY KEY (tenant, term, impact, id) INCLUDE (tf, dl)
            )
            """,
            'CREATE TABLE dte_df (tenant text COLLATE "C" NOT NULL, term text COLLATE "C" '
            "NOT NULL, n bigint NOT NULL, PRIMARY KEY (tenant, term))",
            'CREATE TABLE dte_stats (tenant text COLLATE "C" PRIMARY KEY, n bigint NOT NULL, '
            "total bigint NOT NULL)",
            f"INSERT INTO dte_postings (tenant, term, impact, id, tf, dl) "
            f"SELECT m.tenant, t.term, {_IMPACT.format(row='m')}, m.id, "
            f"{_TF.format(row='m')}, m.dl "
            "FROM dte_memories AS m, unnest(m.terms) AS t(term) WHERE NOT m.deleted",
            "INSERT INTO dte_df (tenant, term, n) SELECT m.tenant, t.term, count(*) "
            "FROM dte_memories AS m, unnest(m.terms) AS t(term) WHERE NOT m.deleted "
            "GROUP BY m.tenant, t.term",
            "INSERT INTO dte_stats (tenant, n, total) SELECT tenant, count(*), sum(dl) "
            "FROM dte_memories WHERE NOT deleted GROUP BY tenant",
            f"""
            CREATE FUNCTION dte_index_memory() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP <> 'INSERT' AND NOT OLD.deleted THEN
                    UPDATE dte_stats SET n = n - 1, total = total - OLD.dl
                        WHERE tenant = OLD.tenant;
                    DELETE FROM dte_postings AS p USING unnest(OLD.terms) AS t(term)
                        WHERE p.tenant = OLD.tenant AND p.term = t.term
                          AND p.impact = {_IMPACT.format(row='OLD')} AND p.id = OLD.id;
                    UPDATE dte_df SET n = n - 1
                        WHERE tenant = OLD.tenant AND term = ANY (OLD.terms);
                END IF;
                IF TG_OP <> 'DELETE' AND NOT NEW.deleted THEN
                    INSERT INTO dte_stats AS s (tenant, n, total) VALUES (NEW.tenant, 1, NEW.dl)
                        ON CONFLICT (tenant)
                        DO UPDATE SET n = s.n + 1, total = s.total + excluded.total;
                    INSERT INTO dte_postings (tenant, term, impact, id, tf, dl)
                        SELECT NEW.tenant, t.term, {_IMPACT.format(row='NEW')}, NEW.id,
                               {_TF.format(row='NEW')}, NEW.dl
                        FROM unnest(NEW.terms) AS t(term);
                    INSERT INTO dte_df AS d (tenant, term, n)
                        SELECT NEW.tenant, t.term, 1 FROM unnest(NEW.terms) AS t(term)
                        ON CONFLICT (tenant, term) DO UPDATE SET n = d.n + 1;
                END IF;
                RETURN NULL;
            END
            $$
            """,
            "CREATE TRIGGER dte_memories_index "
            "AFTER INSERT OR DELETE OR UPDATE OF terms, tf, dl, deleted ON dte_memories "
            "FOR EACH ROW EXECUTE FUNCTION dte_index_memory()",
            "DROP INDEX dte_memories_tsv",
            "ALTER TABLE dte_memories DROP COLUMN tsv",
        ],
    ),
    (
        3,
        [
            # Change stamps for the search cache (_postgres_cached): every write of a memory's
            # postings records its transaction id; a reader's snapshot xmin bounds what it saw.
            "ALTER TABLE dte_memories ADD COLUMN gen bigint NOT NULL DEFAULT 0",
            "CREATE INDEX dte_memories_changes ON dte_memories (tenant, gen)",
            """
            CREATE FUNCTION dte_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                NEW.gen := pg_current_xact_id()::text::bigint;
                RETURN NEW;
            END
            $$
            """,
            "CREATE TRIGGER dte_memories_stamp "
            "BEFORE INSERT OR UPDATE OF terms, tf, dl, deleted ON dte_memories "
            "FOR EACH ROW EXECUTE FUNCTION dte_stamp()",
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

SEARCH_ALL: Final = f"""
SELECT id, data, 0.0::float8, COALESCE(last_access, updated_at), importance
FROM dte_memories WHERE tenant = :tenant AND {_LIVE}
"""


#: Taken first by every write transaction: one tenant's index writers queue here, so their
#: updates of the shared ``dte_stats``/``dte_df`` rows can never deadlock.
LOCK_TENANT: Final = f"SELECT pg_advisory_xact_lock({WRITE_LOCK}, hashtext(:tenant))"
