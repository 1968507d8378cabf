"""Schema migrations and statements of :class:`PostgresStore`.

Migrations are a hand-rolled list of versioned steps recorded in ``dte_schema_migrations``,
applied in one transaction under ``pg_advisory_xact_lock``: N nodes starting at once queue on
the lock and the first one migrates; the others find the versions applied. Text columns that
are compared or sorted use ``COLLATE "C"`` (bytewise), so versions and ids order exactly as
Python's ``str`` does, like the SQLite and Redis stores.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from sqlalchemy import TextClause


@functools.lru_cache(maxsize=256)
def clause(statement: str) -> TextClause:
    """``sqlalchemy.text(statement)``, built once per statement: ``text()`` parses the SQL
    for bind parameters at every call (measured 6% of a restore's client CPU)."""
    from sqlalchemy import text  # imported on first use: only the PostgreSQL store needs it

    return text(statement)

#: Key of the advisory lock that serialises migrations (any constant shared by all nodes).
MIGRATION_LOCK: Final = 0x0D7E_3E30

#: A posting's tf and impact, read from a ``dte_memories`` row (``{row}``) and a term ``t.term``.
_TF: Final = "({row}.tf ->> t.term)::integer"
_IMPACT: Final = "dte_impact(({row}.tf ->> t.term)::integer, {row}.dl)"
#: Key class of the per-tenant write locks (``pg_advisory_xact_lock(WRITE_LOCK, hashtext(t))``).
WRITE_LOCK: Final = 0x0D7E


#: Rows each tenant's N and each (tenant, term)'s df are split in (migration 4).
SHARDS: Final = 16
_SHARD: Final = f"floor(random() * {SHARDS})::smallint"


def _index_rows(gone: str, came: str, *, unless: str | None = None) -> str:
    """Body of a statement-level index trigger: ``gone`` and ``came`` are queries of the rows
    (``tenant, id, terms, tf, dl``) whose postings leave and enter the index.

    Set-based, so a batch of N rows updates each shared counter once, not N times (N updates
    of one row in one transaction walk an N-long version chain each). The counters are split
    in :data:`SHARDS` rows each (a statement adds to a random one; readers sum them): a
    tenant's concurrent writes would otherwise queue on its one ``dte_stats`` row until each
    commit is flushed. One trigger takes its locks in one order (the statement's memories,
    its stats row, its df rows by term), so single writes never deadlock one another. A batch
    that both inserts and updates runs two of these triggers (the INSERT's, then the
    UPDATE's), and the second starts again at the lowest term: a single write can deadlock
    with it, and the store runs the aborted one again (``postgres_store.DEADLOCK_ATTEMPTS``).
    ``unless``: a condition on which the trigger returns at once (nothing indexed changed)."""
    both = (
        f"SELECT tenant, terms, 1 AS k, dl FROM ({came}) AS c "
        f"UNION ALL SELECT tenant, terms, -1, -dl FROM ({gone}) AS g"
    )
    guard = f"IF {unless} THEN RETURN NULL; END IF;" if unless else ""
    return f"""
            BEGIN
                {guard}
                -- materialized: the whole key (impact too) is then the index condition
                WITH x AS MATERIALIZED (
                    SELECT g.tenant, t.term, {_IMPACT.format(row='g')} AS impact, g.id
                    FROM ({gone}) AS g, unnest(g.terms) AS t(term)
                )
                DELETE FROM dte_postings AS p USING x
                    WHERE (p.tenant, p.term, p.impact, p.id) = (x.tenant, x.term, x.impact, x.id);
                INSERT INTO dte_postings (tenant, term, impact, id, tf, dl)
                    SELECT c.tenant, t.term, {_IMPACT.format(row='c')}, c.id,
                           {_TF.format(row='c')}, c.dl
                    FROM ({came}) AS c, unnest(c.terms) AS t(term);
                INSERT INTO dte_stats AS s (tenant, shard, n, total)
                    SELECT tenant, {_SHARD}, sum(k), sum(dl) FROM ({both}) AS b GROUP BY tenant
                    HAVING sum(k) <> 0 OR sum(dl) <> 0
                    ORDER BY tenant
                    ON CONFLICT (tenant, shard)
                    DO UPDATE SET n = s.n + excluded.n, total = s.total + excluded.total;
                INSERT INTO dte_df AS d (tenant, term, shard, n)
                    SELECT b.tenant, t.term, {_SHARD}, sum(b.k)
                    FROM ({both}) AS b, unnest(b.terms) AS t(term)
                    GROUP BY b.tenant, t.term HAVING sum(b.k) <> 0
                    ORDER BY b.tenant, t.term
                    ON CONFLICT (tenant, term, shard) DO UPDATE SET n = d.n + excluded.n;
                RETURN NULL;
            END
            """


_ROW: Final = "tenant, id, terms, tf, dl"
#: Rows of an UPDATE whose postings change (transition tables ``o`` before, ``n`` after).
_CHANGED: Final = (
    "FROM o JOIN n USING (tenant, id) "
    "WHERE (o.terms, o.tf, o.dl, o.deleted) IS DISTINCT FROM (n.terms, n.tf, n.dl, n.deleted)"
)
_NONE: Final = f"SELECT {_ROW} FROM dte_memories WHERE false"


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
    (
        4,
        [
            # Statement-level index triggers over transition tables replace the row trigger
            # (bulk writes, one statement, update the shared counters once per batch), and
            # the counters are sharded (see _index_rows).
            "DROP TRIGGER dte_memories_index ON dte_memories",
            "ALTER TABLE dte_stats ADD COLUMN shard smallint NOT NULL DEFAULT 0",
            "ALTER TABLE dte_stats DROP CONSTRAINT dte_stats_pkey",
            "ALTER TABLE dte_stats ADD PRIMARY KEY (tenant, shard)",
            "ALTER TABLE dte_df ADD COLUMN shard smallint NOT NULL DEFAULT 0",
            "ALTER TABLE dte_df DROP CONSTRAINT dte_df_pkey",
            "ALTER TABLE dte_df ADD PRIMARY KEY (tenant, term, shard)",
            "DROP FUNCTION dte_index_memory()",
            f"""
            CREATE FUNCTION dte_index_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
            {_index_rows(_NONE, f"SELECT {_ROW} FROM n WHERE NOT deleted")}
            $$
            """,
            f"""
            CREATE FUNCTION dte_index_updated() RETURNS trigger LANGUAGE plpgsql AS $$
            {_index_rows(
                "SELECT o.tenant, o.id, o.terms, o.tf, o.dl " + _CHANGED + " AND NOT o.deleted",
                "SELECT n.tenant, n.id, n.terms, n.tf, n.dl " + _CHANGED + " AND NOT n.deleted",
                unless=f"NOT EXISTS (SELECT {_CHANGED})",
            )}
            $$
            """,
            f"""
            CREATE FUNCTION dte_index_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
            {_index_rows(f"SELECT {_ROW} FROM o WHERE NOT deleted", _NONE)}
            $$
            """,
            "CREATE TRIGGER dte_memories_inserted AFTER INSERT ON dte_memories "
            "REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION dte_index_inserted()",
            "CREATE TRIGGER dte_memories_updated AFTER UPDATE ON dte_memories "
            "REFERENCING OLD TABLE AS o NEW TABLE AS n "
            "FOR EACH STATEMENT EXECUTE FUNCTION dte_index_updated()",
            "CREATE TRIGGER dte_memories_deleted AFTER DELETE ON dte_memories "
            "REFERENCING OLD TABLE AS o FOR EACH STATEMENT EXECUTE FUNCTION dte_index_deleted()",
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

#: Replace an existing row only when the incoming version is newer.
_IF_NEWER: Final = """
ON CONFLICT (tenant, id) DO UPDATE SET
    version = excluded.version, data = excluded.data, created_at = excluded.created_at,
    updated_at = excluded.updated_at, access_count = excluded.access_count,
    last_access = excluded.last_access, expires_at = excluded.expires_at,
    deleted = excluded.deleted, extra = excluded.extra, importance = excluded.importance,
    terms = excluded.terms, tf = excluded.tf, dl = excluded.dl
WHERE excluded.version > dte_memories.version
"""

# One atomic statement: insert, or replace only when the incoming version is newer.
PUT_IF_NEWER: Final = f"""
INSERT INTO dte_memories (tenant, {COLUMNS}, importance, terms, tf, dl)
VALUES (:tenant, :id, :version, :data, :created_at, :updated_at, :access_count, :last_access,
        :expires_at, :deleted, :extra, :importance, :terms, CAST(:tf AS jsonb), :dl)
{_IF_NEWER}
RETURNING 1
"""

# The batch form: one statement over arrays (one element per id, no id twice), so the
# statement-level index triggers see the whole batch at once. ``terms`` come as JSON texts
# (one array per row, and arrays of arrays must be rectangular).
PUT_MANY_IF_NEWER: Final = f"""
INSERT INTO dte_memories (tenant, {COLUMNS}, importance, terms, tf, dl)
SELECT :tenant, r.id, r.version, r.data, r.created_at, r.updated_at, r.access_count,
       r.last_access, r.expires_at, r.deleted, r.extra, r.importance,
       ARRAY(SELECT jsonb_array_elements_text(CAST(r.terms AS jsonb))), CAST(r.tf AS jsonb), r.dl
FROM unnest(CAST(:id AS text[]), CAST(:version AS text[]), CAST(:data AS text[]),
            CAST(:created_at AS float8[]), CAST(:updated_at AS float8[]),
            CAST(:access_count AS bigint[]), CAST(:last_access AS float8[]),
            CAST(:expires_at AS float8[]), CAST(:deleted AS boolean[]), CAST(:extra AS text[]),
            CAST(:importance AS float8[]), CAST(:terms AS text[]), CAST(:tf AS text[]),
            CAST(:dl AS integer[]))
    AS r(id, version, data, created_at, updated_at, access_count, last_access, expires_at,
         deleted, extra, importance, terms, tf, dl)
{_IF_NEWER}"""

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


#: Taken first by a bulk write's transaction (``put_many``, ``purge``): their memory rows are
#: locked in no fixed order, so two of them could deadlock; they queue here instead.
LOCK_TENANT: Final = f"SELECT pg_advisory_xact_lock({WRITE_LOCK}, hashtext(:tenant))"
