"""Schema, versioned migrations and search SQL of :class:`SQLiteStore` (FTS5 full-text index).

Rows are keyed by ``(tenant, id)``. ``terms`` holds the output of ``_bm25.tokenize`` over the
memory's searchable text, each token hex-encoded (so FTS5's ``unicode61`` tokenizer keeps every
token exactly as ``tokenize`` made it, whatever characters it holds) and joined by spaces;
tombstones have no terms. An external-content FTS5 table over ``terms`` is kept in step by
triggers, i.e. inside the very transaction that writes the record.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from deep_tree_echo.aar_core.memory._bm25 import document_text, tokenize
from deep_tree_echo.aar_core.memory.ranking import normalise_importance
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version

#: ``PRAGMA user_version`` of the current schema. 0: empty file or the v1 table (no tenants).
SCHEMA_VERSION: Final = 2

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

COLUMNS: Final = (
    "id, version, data, created_at, updated_at, access_count, last_access, expires_at, deleted, "
    "extra"
)
_WRITE_COLUMNS: Final = f"tenant, {COLUMNS}, importance, terms, dl"

# Last-writer-wins in one statement: the row is replaced only when the incoming version is
# newer (``Version.to_str`` sorts like the version tuple: fixed-width numbers, then the node id
# compared bytewise, as Python compares str), so concurrent writers cannot lose it.
PUT_IF_NEWER: Final = f"""
INSERT INTO memories ({_WRITE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(tenant, id) DO UPDATE SET
    version = excluded.version, data = excluded.data, created_at = excluded.created_at,
    updated_at = excluded.updated_at, access_count = excluded.access_count,
    last_access = excluded.last_access, expires_at = excluded.expires_at,
    deleted = excluded.deleted, extra = excluded.extra, importance = excluded.importance,
    terms = excluded.terms, dl = excluded.dl
WHERE excluded.version > memories.version
"""

PURGE: Final = "DELETE FROM memories WHERE tenant = ? AND id = ? AND version = ?"

RECORD_ACCESS: Final = """
UPDATE memories SET access_count = access_count + ?,
    last_access = MAX(COALESCE(last_access, 0.0), ?)
WHERE tenant = ? AND id = ?
"""

_LIVE: Final = "m.deleted = 0 AND (m.expires_at IS NULL OR m.expires_at > ?)"

#: Candidates of a text query, best FTS5 ``bm25()`` first (it returns lower = better); they are
#: re-scored with the exact Lucene BM25 of the in-memory index (see ``lucene_bm25``).
SEARCH_TERMS: Final = f"""
SELECT m.id, m.data, m.terms, m.dl, COALESCE(m.last_access, m.updated_at), m.importance
FROM memories_fts JOIN memories AS m ON m.rid = memories_fts.rowid
WHERE memories_fts MATCH ? AND m.tenant = ? AND {_LIVE}
ORDER BY bm25(memories_fts)
"""

#: Every live memory of a tenant (an empty query ranks them by recency and importance).
SEARCH_ALL: Final = f"""
SELECT m.id, m.data, '', 0, COALESCE(m.last_access, m.updated_at), m.importance
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


def encode_terms(tokens: Sequence[str]) -> list[str]:
    """Tokens as FTS5-safe words (hex of their UTF-8)."""
    return [t.encode("utf-8").hex() for t in tokens]


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of ``terms`` (each a quoted hex word)."""
    return " OR ".join(f'"{word}"' for word in dict.fromkeys(encode_terms(terms)))


def write_params(tenant: str, record: MemoryRecord) -> tuple[Any, ...]:
    """Parameters of :data:`PUT_IF_NEWER` for ``record``."""
    if record.deleted:
        importance, terms, dl = 0.5, "", 0
    else:
        importance = normalise_importance(record.data.get("importance"))
        tokens = tokenize(document_text(record.data))
        terms, dl = " ".join(encode_terms(tokens)), len(tokens)
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
    )


def row_to_record(row: tuple[Any, ...]) -> MemoryRecord:
    (rid, version, data, created, updated, count, last, expires, deleted, extra) = row
    return MemoryRecord(
        id=rid,
        data=json.loads(data),
        version=Version.parse(version),
        created_at=created,
        updated_at=updated,
        access_count=count,
        last_access=last,
        expires_at=expires,
        deleted=bool(deleted),
        extra=json.loads(extra) if extra else {},
    )


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
            if old is not None and version == 0:  # v1: id primary key, no tenant, no index
                conn.execute("ALTER TABLE memories RENAME TO memories_v1")
            for statement in _SCHEMA_V2:
                conn.execute(statement)
            if old is not None and version == 0:
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
#: Documents holding each (hex) term, from FTS5's own vocabulary (all tenants of the file).
DOC_FREQ: Final = "SELECT term, doc FROM memories_vocab WHERE term = ?"


def lucene_bm25(
    query: Sequence[str], terms: str, dl: int, df: dict[str, int], n: int, avgdl: float
) -> float:
    """The in-memory index's BM25 (k1 1.2, b 0.75, idf ``log(1 + (N - df + .5)/(df + .5))``)
    of one document given its hex ``terms`` text; ``query`` holds hex words with repeats."""
    words = terms.split()
    norm = 1.2 * (0.25 + (0.75 * dl / avgdl if avgdl else 0.0))
    score = 0.0
    for word in set(query):
        tf = words.count(word)
        if tf:
            d = df.get(word, 1)
            idf = math.log(1.0 + (n - d + 0.5) / (d + 0.5)) * query.count(word)
            score += idf * tf * 2.2 / (tf + norm)
    return score
