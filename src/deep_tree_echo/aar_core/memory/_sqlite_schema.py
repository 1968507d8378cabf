"""Schema, versioned migrations and search SQL of :class:`SQLiteStore` (postings index).

Rows are keyed by ``(tenant, id)``. ``terms`` holds the output of ``_bm25.tokenize`` over the
memory's searchable text, each token hex-encoded and joined by spaces; tombstones have no
terms. Schema 2 indexed ``terms`` with FTS5; schema 3 replaces it: ``postings`` holds the
memory's ``[hex term, impact, tf]`` (JSON) and triggers copy them into ``memories_postings``
(ordered per ``(tenant, term)`` by impact, so a search reads each query term's best postings
first, see ``_sqlite_topk``) and keep ``memories_df`` and ``memories_stats`` (df, N, summed
length per tenant), i.e. inside the very transaction that writes the record. Schema 4 adds a
covering index of what ranking needs (``memories_live``), read instead of the wide rows; schema
5 the change stamps (``gen``, ``memories_clock``) that keep the search cache exact.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from deep_tree_echo._json import is_unicode_text
from deep_tree_echo.aar_core.memory._bm25 import document_text, tokenize
from deep_tree_echo.aar_core.memory._rows import row_to_record
from deep_tree_echo.aar_core.memory._topk import impact
from deep_tree_echo.aar_core.memory.ranking import normalise_importance
from deep_tree_echo.aar_core.memory.record import MemoryRecord

#: ``PRAGMA user_version`` of the current schema. 0: empty file or the v1 table (no tenants).
SCHEMA_VERSION: Final = 5

_SCHEMA_V2: Final = (
    """
    CREATE TABLE IF NOT EXISTS memories (
        rid          INTEGER PRIMARY KEY,
        tenant       TEXT NOT NULL,
        id           TEXT NOT NULL,
        version      TEXT NOT NULL,
        data         TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_at   REAL NOT NULL,
        access_count INTEGER NOT NULL DEFAULT 0,
        last_access  REAL,
        expires_at   REAL,
        deleted      INTEGER NOT NULL DEFAULT 0,
        extra        TEXT,
        importance   REAL NOT NULL DEFAULT 0.5,
        terms        TEXT NOT NULL DEFAULT '',
        dl           INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant, id)
    )
    """,
    # Per tenant: indexed (not deleted) memories and their summed length, for BM25's N, avgdl.
    "CREATE TABLE IF NOT EXISTS memories_stats ("
    "tenant TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL, total INTEGER NOT NULL)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_vocab USING fts5vocab(memories_fts, 'row')",
    "CREATE INDEX IF NOT EXISTS memories_tombstones ON memories (tenant, updated_at) "
    "WHERE deleted = 1",
    "CREATE INDEX IF NOT EXISTS memories_expiry ON memories (tenant, expires_at) "
    "WHERE expires_at IS NOT NULL",
    "CREATE VIRTUAL TABLE IF NOT EXISTS memories_fts USING fts5("
    "terms, content='memories', content_rowid='rid', tokenize='unicode61')",
    """
    CREATE TRIGGER IF NOT EXISTS memories_fts_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts (rowid, terms) SELECT new.rid, new.terms WHERE new.terms != '';
        INSERT INTO memories_stats (tenant, n, total) SELECT new.tenant, 1, new.dl
            WHERE new.deleted = 0
            ON CONFLICT (tenant) DO UPDATE SET n = n + 1, total = total + excluded.total;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_fts_delete AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, terms)
            SELECT 'delete', old.rid, old.terms WHERE old.terms != '';
        UPDATE memories_stats SET n = n - 1, total = total - old.dl
            WHERE tenant = old.tenant AND old.deleted = 0;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_fts_update AFTER UPDATE OF terms, dl, deleted
    ON memories BEGIN
        INSERT INTO memories_fts (memories_fts, rowid, terms)
            SELECT 'delete', old.rid, old.terms WHERE old.terms != '';
        INSERT INTO memories_fts (rowid, terms) SELECT new.rid, new.terms WHERE new.terms != '';
        UPDATE memories_stats SET n = n - 1, total = total - old.dl
            WHERE tenant = old.tenant AND old.deleted = 0;
        INSERT INTO memories_stats (tenant, n, total) SELECT new.tenant, 1, new.dl
            WHERE new.deleted = 0
            ON CONFLICT (tenant) DO UPDATE SET n = n + 1, total = total + excluded.total;
    END
    """,
)

#: Schema 3: impact-ordered postings, kept by triggers from the ``postings`` JSON column.
_SCHEMA_V3: Final = (
    "ALTER TABLE memories ADD COLUMN postings TEXT NOT NULL DEFAULT '[]'",
    # The postings replace FTS5; N and the summed length keep their own triggers.
    "DROP TRIGGER IF EXISTS memories_fts_insert",
    "DROP TRIGGER IF EXISTS memories_fts_delete",
    "DROP TRIGGER IF EXISTS memories_fts_update",
    "DROP TABLE IF EXISTS memories_vocab",
    "DROP TABLE IF EXISTS memories_fts",
    """
    CREATE TRIGGER IF NOT EXISTS memories_stats_insert AFTER INSERT ON memories
    WHEN new.deleted = 0 BEGIN
        INSERT INTO memories_stats (tenant, n, total) VALUES (new.tenant, 1, new.dl)
            ON CONFLICT (tenant) DO UPDATE SET n = n + 1, total = total + excluded.total;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_stats_delete AFTER DELETE ON memories
    WHEN old.deleted = 0 BEGIN
        UPDATE memories_stats SET n = n - 1, total = total - old.dl WHERE tenant = old.tenant;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_stats_update AFTER UPDATE OF dl, deleted ON memories
    BEGIN
        UPDATE memories_stats SET n = n - 1, total = total - old.dl
            WHERE tenant = old.tenant AND old.deleted = 0;
        INSERT INTO memories_stats (tenant, n, total) SELECT new.tenant, 1, new.dl
            WHERE new.deleted = 0
            ON CONFLICT (tenant) DO UPDATE SET n = n + 1, total = total + excluded.total;
    END
    """,
    "CREATE TABLE IF NOT EXISTS memories_postings ("
    "tenant TEXT NOT NULL, term TEXT NOT NULL, impact REAL NOT NULL, rid INTEGER NOT NULL, "
    "tf INTEGER NOT NULL, dl INTEGER NOT NULL, PRIMARY KEY (tenant, term, impact, rid)) "
    "WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS memories_postings_rid ON memories_postings (rid, term, tf)",
    # Per tenant and term: how many memories hold it (BM25's df, one tenant's own).
    "CREATE TABLE IF NOT EXISTS memories_df (tenant TEXT NOT NULL, term TEXT NOT NULL, "
    "n INTEGER NOT NULL, PRIMARY KEY (tenant, term)) WITHOUT ROWID",
    """
    CREATE TRIGGER IF NOT EXISTS memories_postings_insert AFTER INSERT ON memories BEGIN
        INSERT INTO memories_postings (tenant, term, impact, rid, tf, dl)
            SELECT new.tenant, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
                   new.rid, json_extract(j.value, '$[2]'), new.dl
            FROM json_each(new.postings) AS j;
        INSERT INTO memories_df (tenant, term, n)
            SELECT new.tenant, json_extract(j.value, '$[0]'), 1
            FROM json_each(new.postings) AS j WHERE true
            ON CONFLICT (tenant, term) DO UPDATE SET n = n + 1;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_postings_delete AFTER DELETE ON memories BEGIN
        DELETE FROM memories_postings WHERE rid = old.rid;
        UPDATE memories_df SET n = n - 1 WHERE tenant = old.tenant
            AND term IN (SELECT json_extract(j.value, '$[0]') FROM json_each(old.postings) AS j);
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_postings_update AFTER UPDATE OF postings
    ON memories BEGIN
        DELETE FROM memories_postings WHERE rid = old.rid;
        UPDATE memories_df SET n = n - 1 WHERE tenant = old.tenant
            AND term IN (SELECT json_extract(j.value, '$[0]') FROM json_each(old.postings) AS j);
        INSERT INTO memories_postings (tenant, term, impact, rid, tf, dl)
            SELECT new.tenant, json_extract(j.value, '$[0]'), json_extract(j.value, '$[1]'),
                   new.rid, json_extract(j.value, '$[2]'), new.dl
            FROM json_each(new.postings) AS j;
        INSERT INTO memories_df (tenant, term, n)
            SELECT new.tenant, json_extract(j.value, '$[0]'), 1
            FROM json_each(new.postings) AS j WHERE true
            ON CONFLICT (tenant, term) DO UPDATE SET n = n + 1;
    END
    """,
)

#: Schema 4: what ranking needs of a memory in a small covering index, so a search checks the
#: liveness of its candidates without reading their (wide) rows.
_SCHEMA_V4: Final = (
    "CREATE INDEX IF NOT EXISTS memories_live ON memories "
    "(rid, deleted, expires_at, last_access, updated_at, importance)",
)

#: Schema 5: change stamps. Every write of a memory's postings (insert, update, tombstone)
#: stamps the row with the next value of one file-wide clock, in the write's transaction, so a
#: reader that remembers the clock can ask which memories changed since (``_sqlite_postcache``).
_SCHEMA_V5: Final = (
    "ALTER TABLE memories ADD COLUMN gen INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE IF NOT EXISTS memories_clock ("
    "one INTEGER PRIMARY KEY CHECK (one = 1), gen INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO memories_clock (one, gen) VALUES (1, 0)",
    "CREATE INDEX IF NOT EXISTS memories_changes ON memories (tenant, gen)",
    """
    CREATE TRIGGER IF NOT EXISTS memories_stamp_insert AFTER INSERT ON memories BEGIN
        UPDATE memories_clock SET gen = gen + 1;
        UPDATE memories SET gen = (SELECT gen FROM memories_clock) WHERE rid = new.rid;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS memories_stamp_update AFTER UPDATE OF postings ON memories
    BEGIN
        UPDATE memories_clock SET gen = gen + 1;
        UPDATE memories SET gen = (SELECT gen FROM memories_clock) WHERE rid = new.rid;
    END
    """,
)

COLUMNS: Final = (
    "id, version, data, created_at, updated_at, access_count, last_access, expires_at, deleted, "
    "extra"
)
_WRITE_COLUMNS: Final = f"tenant, {COLUMNS}, importance, terms, dl, postings"

_WRITTEN: Final = [c.strip() for c in _WRITE_COLUMNS.split(",")]
#: Last-writer-wins: the row is replaced only when the incoming version is newer
#: (``Version.to_str`` sorts like the version tuple: fixed-width numbers, then the node id
#: compared bytewise, as Python compares str), so concurrent writers cannot lose it.
_IF_NEWER: Final = f"""
ON CONFLICT(tenant, id) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _WRITTEN if c not in ("tenant", "id"))}
WHERE excluded.version > memories.version
"""

#: Insert a memory, or replace it if newer, in one statement.
PUT_IF_NEWER: Final = f"""
INSERT INTO memories ({_WRITE_COLUMNS}) VALUES ({", ".join("?" * len(_WRITTEN))})
{_IF_NEWER}
"""

#: :data:`PUT_IF_NEWER` for a JSON array of rows of its parameters, in one statement.
PUT_MANY: Final = f"""
INSERT INTO memories ({_WRITE_COLUMNS})
SELECT {", ".join(f"value ->> {i}" for i in range(len(_WRITTEN)))}
FROM json_each(?) WHERE true ORDER BY key
{_IF_NEWER}
"""
#: ``[[index, won], ...]`` of the rows of :data:`PUT_MANY` (``?``: :data:`CLOCK` before it
#: ran, the same JSON): a row the statement stored carries a later stamp, one that lost its old.
PUT_MANY_WON: Final = """
SELECT json_group_array(json_array(j.key, COALESCE(m.gen > ?, 0)))
FROM json_each(?) AS j
LEFT JOIN memories AS m ON m.tenant = j.value ->> 0 AND m.id = j.value ->> 1
"""

PURGE: Final = "DELETE FROM memories WHERE tenant = ? AND id = ? AND version = ?"

RECORD_ACCESS: Final = """
UPDATE memories SET access_count = access_count + ?,
    last_access = MAX(COALESCE(last_access, 0.0), ?)
WHERE tenant = ? AND id = ?
"""

_LIVE: Final = "m.deleted = 0 AND (m.expires_at IS NULL OR m.expires_at > ?)"

#: Every live memory of a tenant (an empty query ranks them by recency and importance).
SEARCH_ALL: Final = f"""
SELECT m.id, m.data, COALESCE(m.last_access, m.updated_at), m.importance
FROM memories AS m WHERE m.tenant = ? AND {_LIVE}
"""

PURGE_CANDIDATES: Final = """
SELECT id, version FROM memories INDEXED BY memories_tombstones
WHERE tenant = ? AND deleted = 1 AND updated_at < ? LIMIT ?
"""
PURGE_EXPIRED: Final = """
SELECT id, version FROM memories INDEXED BY memories_expiry
WHERE tenant = ? AND expires_at < ? AND deleted = 0 LIMIT ?
"""


#: Bytes of the file a reader connection maps (SQLite maps up to the file's size).
READ_MMAP: Final = 1 << 30


def connect(path: str, reader: bool = False) -> sqlite3.Connection:
    """A connection to the store's file: WAL, ``synchronous=FULL``, 32 MiB of page cache
    (closed again if any of that fails). The store's writer turns to ``NORMAL`` once the file
    is migrated and syncs the WAL itself, outside the write lock (``_sqlite_sync``)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 10000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal" and path != ":memory:":
            raise sqlite3.OperationalError(f"could not enable WAL (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        # The postings index is written and read at random places: 32 MiB of page cache for
        # each connection (SQLite's default is 2 MiB).
        conn.execute("PRAGMA cache_size = -32768")
        if reader:
            # Searches read the postings index at random places: mapping the file saves
            # copying each page into the connection's cache (p50 -25%, p99 -30% at 100k
            # memories, A/B on one file). Only address space: the OS page cache's pages.
            conn.execute(f"PRAGMA mmap_size = {READ_MMAP}")
    except BaseException:
        conn.close()
        raise
    return conn


def batch_row(params: tuple[Any, ...]) -> str | None:
    """:func:`write_params` as one JSON array for :data:`PUT_MANY`; None when JSON would not
    carry them exactly: a non-finite or non-JSON value, or a text SQLite's ``->>`` would cut
    (NUL) or could not store as UTF-8 (a lone surrogate), which are then bound one by one."""
    for text in params[:3]:  # tenant, id, version: raw text (the rest is JSON or hex)
        if "\x00" in text or not (text.isascii() or is_unicode_text(text)):
            return None
    try:
        return json.dumps(params, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None


def encode_terms(tokens: Sequence[str]) -> list[str]:
    """Tokens as index words (hex of their UTF-8: any character, one plain key)."""
    return [t.encode("utf-8").hex() for t in tokens]


def write_params(tenant: str, record: MemoryRecord) -> tuple[Any, ...]:
    """Parameters of :data:`PUT_IF_NEWER` for ``record``."""
    if record.deleted:
        importance, terms, dl, postings = 0.5, "", 0, "[]"
    else:
        importance = normalise_importance(record.data.get("importance"))
        tokens = tokenize(document_text(record.data))
        hexed = encode_terms(tokens)
        terms, dl, postings = " ".join(hexed), len(tokens), postings_json(hexed)
    return (
        tenant,
        record.id,
        record.version.to_str(),
        json.dumps(record.data, separators=(",", ":"), allow_nan=False),
        record.created_at,
        record.updated_at,
        record.access_count,
        record.last_access,
        record.expires_at,
        int(record.deleted),
        json.dumps(record.extra, separators=(",", ":")) if record.extra else None,
        importance,
        terms,
        dl,
        postings,
    )


def postings_json(hexed: Sequence[str]) -> str:
    """The ``[term, impact, tf]`` triples of a document given its hex tokens (JSON text)."""
    dl = len(hexed)
    counts = Counter(hexed)
    return json.dumps([[t, impact(n, dl), n] for t, n in counts.items()], separators=(",", ":"))


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` in one write transaction (idempotent; safe
    when several processes open the same file at once: BEGIN IMMEDIATE serialises them)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version < SCHEMA_VERSION:
            old = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
            ).fetchone()
            v1 = old is not None and version == 0  # v1: id primary key, no tenant, no index
            if v1:
                conn.execute("ALTER TABLE memories RENAME TO memories_v1")
            if version < 2:
                for statement in _SCHEMA_V2:
                    conn.execute(statement)
            if version < 3:
                for statement in _SCHEMA_V3:
                    conn.execute(statement)
            if version < 4:
                for statement in _SCHEMA_V4:
                    conn.execute(statement)
            for statement in _SCHEMA_V5:
                conn.execute(statement)
            if version == 2:  # index the postings of every stored memory
                stored = conn.execute("SELECT rid, terms FROM memories WHERE deleted = 0")
                conn.executemany(
                    "UPDATE memories SET postings = ? WHERE rid = ?",
                    [(postings_json(terms.split()), rid) for rid, terms in stored.fetchall()],
                )
            if v1:
                rows = conn.execute(f"SELECT {COLUMNS} FROM memories_v1").fetchall()
                conn.executemany(
                    PUT_IF_NEWER, [write_params("default", row_to_record(r)) for r in rows]
                )
                conn.execute("DROP TABLE memories_v1")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


#: N (indexed memories) and summed length of a tenant, kept by the triggers.
STATS: Final = "SELECT n, total FROM memories_stats WHERE tenant = ?"
#: Memories of a tenant holding a (hex) term, kept by the postings triggers.
DOC_FREQ: Final = "SELECT n FROM memories_df WHERE tenant = ? AND term = ?"
#: The file's change clock (schema 5): the stamp of the latest postings write.
CLOCK: Final = "SELECT gen FROM memories_clock"
#: Memories of a tenant whose postings were written after a stamp, with their postings now.
CHANGES: Final = "SELECT rid, gen, dl, postings FROM memories WHERE tenant = ? AND gen > ?"
#: Every tenant's terms held by at least ``?`` memories, most frequent first.
FREQUENT_TERMS: Final = "SELECT tenant, term, n FROM memories_df WHERE n >= ? ORDER BY n DESC"
#: A term's postings in a tenant by ``(tf, dl)`` group, row ids comma-separated (what the
#: postings cache holds of a frequent term; a third faster to read than a row per posting).
TERM_GROUPS: Final = (
    "SELECT tf, dl, group_concat(rid) FROM memories_postings WHERE tenant = ? AND term = ? "
    "GROUP BY tf, dl"
)

