"""A :class:`MemoryStore` on PostgreSQL (SQLAlchemy async + asyncpg): the scale-out store.

Any number of workers and nodes share one database; each statement sees every committed
write. The only thing a process keeps is the search cache (``_postgres_cached``), brought up
to date at every search from the transaction ids writes are stamped with. Rows are keyed by
``(tenant, id)``.

- ``put_if_newer`` is one ``INSERT … ON CONFLICT … DO UPDATE … WHERE excluded.version >
  version`` (``COLLATE "C"``: versions compare bytewise like Python and the other stores).
- Search: ``terms`` holds the distinct ``_bm25.tokenize`` tokens of a memory, ``tf`` their
  counts (jsonb), ``dl`` its length; a trigger keeps impact-ordered postings, df and N of
  them in the writing transaction, and the exact BM25 top candidates come from the class
  walk over the search cache (``_postgres_cached``) or, with filters, from MaxScore pruning
  over the postings (``_postgres_topk``); both use the in-memory index's formula.
  A single write is one statement in autocommit (one round trip); the index triggers lock
  the shared ``dte_stats``/``dte_df`` rows after the statement's own rows, df in term order,
  so single writes queue but never deadlock one another. Bulk writes (``put_many``,
  ``purge``) take their tenant's advisory write lock first (``_postgres_sql.LOCK_TENANT``):
  their rows are locked in no fixed order. A batch that both inserts and updates takes the
  df locks in two passes and can deadlock with a single write; PostgreSQL aborts one of
  them, which changed nothing, and the store runs it again (:data:`DEADLOCK_ATTEMPTS`).
- The schema is created and migrated on ``open()`` (see ``_postgres_sql``). Extensions such as
  ``rum`` are detected at start (``extensions``) and only reported for now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import _postgres_sql as sql
from deep_tree_echo.aar_core.memory._bm25 import document_text, tokenize
from deep_tree_echo.aar_core.memory._postcache import DEFAULT_MIN_DF, PostingsCache
from deep_tree_echo.aar_core.memory._postgres_cached import top_candidates_cached, warm
from deep_tree_echo.aar_core.memory._postgres_topk import top_candidates
from deep_tree_echo.aar_core.memory._rows import row_to_record
from deep_tree_echo.aar_core.memory.ranking import (
    Candidate,
    RankWeights,
    SearchResult,
    candidate_pool,
    matches_filters,
    normalise_importance,
    rank,
)
from deep_tree_echo.aar_core.memory.record import MemoryRecord, Version
from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT, MemoryStore

_log = logging.getLogger(__name__)
#: Postings the search cache holds by default: about 100 bytes each (text ids). 1,000,000
#: holds the frequent words the queries of ``bench/memory.py`` meet at 100k memories (~730k).
DEFAULT_BUDGET_POSTGRES: Final = 1_000_000
#: Share of the budget read at open (the most frequent words); the rest fills with the words
#: searched. A tenth, not SQLite's quarter: warming words no one asks for would take a worker
#: over 2x its memory over an empty store at 200k memories (``test_memory_footprint``).
WARM_SHARE_POSTGRES: Final = 0.1

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

#: Longest token put in the tsvector (PostgreSQL refuses lexemes over 2 KiB).
MAX_LEXEME_BYTES = 1024


#: Runs of a write PostgreSQL aborts to break a deadlock (SQLSTATE 40P01) before its error is
#: raised. The aborted transaction changed nothing, so running it again is safe.
DEADLOCK_ATTEMPTS: Final = 5


def _deadlocked(exc: BaseException) -> bool:
    """Whether ``exc`` (a SQLAlchemy DBAPI error) is PostgreSQL's deadlock abort."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == "40P01"


def async_url(url: str) -> str:
    """``postgresql://…`` (or ``postgres://``) as SQLAlchemy's asyncpg URL; asyncpg URLs pass."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise StoreError("database URL must start with postgresql:// or postgresql+asyncpg://")



def write_params(tenant: str, record: MemoryRecord) -> dict[str, Any]:
    """Bind parameters of the put statement (also used for batch inserts)."""
    if record.deleted:
        tokens: list[str] = []
        importance = 0.5
    else:
        tokens = tokenize(document_text(record.data))
        importance = normalise_importance(record.data.get("importance"))
    tf = Counter(tokens)
    return {
        "tenant": tenant,
        "id": record.id,
        "version": record.version.to_str(),
        "data": json.dumps(record.data, separators=(",", ":"), allow_nan=False),
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "access_count": record.access_count,
        "last_access": record.last_access,
        "expires_at": record.expires_at,
        "deleted": record.deleted,
        "extra": json.dumps(record.extra, separators=(",", ":")) if record.extra else None,
        "importance": importance,
        "terms": [t for t in tf if len(t.encode("utf-8")) <= MAX_LEXEME_BYTES],
        "tf": json.dumps(tf, ensure_ascii=False, separators=(",", ":")),
        "dl": len(tokens),
    }


@asynccontextmanager
async def _snapshot(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a repeatable-read, read-only transaction: one snapshot for a search."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with conn.begin():
            yield conn


async def _run_once(
    engine: AsyncEngine, statement: str, params: Mapping[str, Any], lock: str | None
) -> list[Any]:
    """One run of :meth:`PostgresStore._fetch`'s statement (autocommit, or a transaction that
    takes ``lock``'s tenant write lock first)."""
    async with engine.begin() if lock is not None else engine.connect() as conn:
        if lock is not None:
            await conn.execute(sql.clause(sql.LOCK_TENANT), {"tenant": lock})
        else:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        result = await conn.execute(sql.clause(statement), dict(params))
        return list(result) if result.returns_rows else []


class PostgresStore(MemoryStore):
    """PostgreSQL-backed store; see the module docstring for the schema and the guarantees."""

    kind = "postgres"

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        scan_chunk: int = 1000,
        search_cache: int = DEFAULT_BUDGET_POSTGRES,
        cache_min_df: int = DEFAULT_MIN_DF,
    ) -> None:
        if pool_size <= 0 or scan_chunk <= 0:
            raise ValueError("pool_size and scan_chunk must be positive")
        #: Frequent terms' postings held for search (``search_cache`` postings at most; 0: none).
        self.search_cache: PostingsCache[str] | None = (
            PostingsCache(budget=search_cache, min_df=cache_min_df) if search_cache > 0 else None
        )
        self._cache_lock = asyncio.Lock()
        self._warming: asyncio.Task[int] | None = None
        self.url = async_url(url)
        self.pool_size = pool_size
        self.scan_chunk = scan_chunk
        #: Extensions of interest found at start (e.g. ``{"rum"}``).
        self.extensions: set[str] = set()
        self._engine: AsyncEngine | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            yield
        except StoreError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"postgres {what} failed: {exc}") from exc

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the engine (pool), then create or migrate the schema under an advisory lock."""
        async with self._open_lock:
            if self._closed:
                raise StoreError("PostgresStore is closed")
            if self._engine is not None:
                return
            from sqlalchemy import text
            from sqlalchemy.ext.asyncio import create_async_engine

            engine = create_async_engine(
                self.url, pool_size=self.pool_size, max_overflow=0, pool_pre_ping=False
            )
            try:
                with self._errors("open"):
                    async with engine.begin() as conn:
                        await conn.execute(
                            text("SELECT pg_advisory_xact_lock(:k)"), {"k": sql.MIGRATION_LOCK}
                        )
                        await conn.execute(text(sql.CREATE_MIGRATIONS))
                        done = {
                            row[0]
                            for row in await conn.execute(
                                text("SELECT version FROM dte_schema_migrations")
                            )
                        }
                        for version, statements in sql.MIGRATIONS:
                            if version in done:
                                continue
                            for statement in statements:
                                await conn.execute(text(statement))
                            await conn.execute(
                                text("INSERT INTO dte_schema_migrations (version) VALUES (:v)"),
                                {"v": version},
                            )
                        found = await conn.execute(
                            text("SELECT name FROM pg_available_extensions WHERE name = 'rum'")
                        )
                        self.extensions = {row[0] for row in found}
            except BaseException:
                await engine.dispose()
                raise
            self._engine = engine
            if self.search_cache is not None:  # not awaited: searches queue behind its lock
                self._warming = asyncio.create_task(self._warm(engine, self.search_cache))

    async def close(self) -> None:
        async with self._open_lock:
            self._closed = True
            engine, self._engine = self._engine, None
            if self._warming is not None and not self._warming.done():
                self._warming.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._warming
            if engine is not None:
                await engine.dispose()

    async def _warm(self, engine: AsyncEngine, cache: PostingsCache[str]) -> int:
        """Fill the search cache with the most frequent terms (a failure leaves it cold)."""
        try:
            with self._errors("warm"):
                async with _snapshot(engine) as conn:
                    return await warm(conn, cache, self._cache_lock, share=WARM_SHARE_POSTGRES)
        except StoreError as exc:
            _log.warning("search cache not warmed: %s", exc)
            return 0

    async def _ready(self) -> AsyncEngine:
        if self._engine is None:
            await self.open()
        if self._engine is None or self._closed:
            raise StoreError("PostgresStore is closed")
        return self._engine

    async def _fetch(
        self, what: str, statement: str, params: Mapping[str, Any], *, lock: str | None = None
    ) -> list[Any]:
        """Run one statement as its own transaction, in one round trip (autocommit: row locks
        are never held across the event loop's turns). A bulk write passes ``lock=tenant``:
        it then runs in a transaction that takes the tenant's write lock first
        (``_postgres_sql.LOCK_TENANT``)."""
        from sqlalchemy.exc import DBAPIError

        engine = await self._ready()
        attempt = 1
        with self._errors(what):
            while True:
                try:
                    return await _run_once(engine, statement, params, lock)
                except DBAPIError as exc:
                    if not _deadlocked(exc) or attempt == DEADLOCK_ATTEMPTS:
                        raise
                attempt += 1
                _log.info("postgres %s: aborted to break a deadlock, run again (%d of %d)",
                          what, attempt, DEADLOCK_ATTEMPTS)

    # -- MemoryStore API -------------------------------------------------------------------

    async def get(self, memory_id: str, *, tenant: str = DEFAULT_TENANT) -> MemoryRecord | None:
        rows = await self._fetch(
            "read",
            f"SELECT {sql.COLUMNS} FROM dte_memories WHERE tenant = :tenant AND id = :id",
            {"tenant": tenant, "id": memory_id},
        )
        return row_to_record(rows[0]) if rows else None

    async def put_if_newer(self, record: MemoryRecord, *, tenant: str = DEFAULT_TENANT) -> bool:
        rows = await self._fetch("write", sql.PUT_IF_NEWER, write_params(tenant, record))
        return bool(rows)

    async def put_many(
        self, records: Sequence[MemoryRecord], *, tenant: str = DEFAULT_TENANT
    ) -> None:
        """Batch ``put_if_newer`` (one transaction, one statement per batch): bulk loads.

        An id given more than once keeps its newest version, as the same puts one by one
        would; the statement sees the batch as a whole, so the index triggers update each
        shared counter once per batch."""
        newest: dict[str, tuple[str, MemoryRecord]] = {}
        for record in records:
            version = record.version.to_str()
            held = newest.get(record.id)
            if held is None or version > held[0]:
                newest[record.id] = (version, record)
        if not newest:
            return
        rows = [write_params(tenant, record) for _, record in newest.values()]
        params: dict[str, Any] = {name: [row[name] for row in rows] for name in rows[0]}
        params["tenant"] = tenant
        params["terms"] = [json.dumps(row["terms"], ensure_ascii=False) for row in rows]
        await self._fetch("batch write", sql.PUT_MANY_IF_NEWER, params, lock=tenant)

    async def record_access(
        self, memory_id: str, at: float, count: int = 1, *, tenant: str = DEFAULT_TENANT
    ) -> None:
        await self._fetch(
            "access", sql.RECORD_ACCESS, {"n": count, "at": at, "tenant": tenant, "id": memory_id}
        )

    async def purge(
        self, expected: Mapping[str, Version], *, tenant: str = DEFAULT_TENANT
    ) -> list[str]:
        if not expected:
            return []
        params = {
            "tenant": tenant,
            "ids": list(expected),
            "versions": [v.to_str() for v in expected.values()],
        }
        return [row[0] for row in await self._fetch("purge", sql.PURGE, params, lock=tenant)]

    async def purge_candidates(
        self, cutoff: float, *, tenant: str = DEFAULT_TENANT, limit: int = 1000
    ) -> dict[str, Version]:
        params = {"tenant": tenant, "cutoff": cutoff, "limit": limit}
        rows = await self._fetch("purge scan", sql.PURGE_CANDIDATES, params)
        return {rid: Version.parse(v) for rid, v in rows[:limit]}

    async def scan(self, *, tenant: str = DEFAULT_TENANT) -> AsyncIterator[MemoryRecord]:
        after: str | None = None  # keyset pagination: each page is one short statement
        while True:
            where = "" if after is None else "AND id > :after"
            rows = await self._fetch(
                "scan",
                f"SELECT {sql.COLUMNS} FROM dte_memories WHERE tenant = :tenant {where} "
                "ORDER BY id LIMIT :n",
                {"tenant": tenant, "after": after, "n": self.scan_chunk}
                if after is not None
                else {"tenant": tenant, "n": self.scan_chunk},
            )
            for row in rows:
                yield row_to_record(row)
            if len(rows) < self.scan_chunk:
                return
            after = rows[-1][0]

    async def count(self, *, tenant: str = DEFAULT_TENANT, live_at: float | None = None) -> int:
        if live_at is None:
            query = "SELECT count(*) FROM dte_memories WHERE tenant = :tenant"
            params: dict[str, Any] = {"tenant": tenant}
        else:
            query = (
                "SELECT count(*) FROM dte_memories WHERE tenant = :tenant AND NOT deleted "
                "AND (expires_at IS NULL OR expires_at > :now)"
            )
            params = {"tenant": tenant, "now": live_at}
        rows = await self._fetch("count", query, params)
        return int(rows[0][0])

    async def tenants(self) -> list[str]:
        rows = await self._fetch(
            "tenants", "SELECT DISTINCT tenant FROM dte_memories ORDER BY tenant", {}
        )
        return [row[0] for row in rows]

    async def search(
        self,
        terms: Sequence[str],
        *,
        limit: int,
        weights: RankWeights,
        now: float,
        filters: Mapping[str, Any] | None = None,
        tenant: str = DEFAULT_TENANT,
    ) -> list[SearchResult]:
        if limit <= 0:
            return []
        if terms:
            found = await self._top(terms, tenant=tenant, pool=candidate_pool(limit), now=now,
                                    filters=filters)
            return rank(found, weights=weights, now=now, limit=limit)
        found = []
        params = {"tenant": tenant, "now": now}
        for rid, data, bm25, touched, importance in await self._fetch(
            "search", sql.SEARCH_ALL, params
        ):
            if not filters or matches_filters(json.loads(data), filters):
                found.append(Candidate(rid, data, float(bm25), touched, importance))
        return rank(found, weights=weights, now=now, limit=limit)

    async def _top(
        self,
        terms: Sequence[str],
        *,
        tenant: str,
        pool: int,
        now: float,
        filters: Mapping[str, Any] | None,
    ) -> list[Candidate]:
        """BM25 top ``pool`` in one repeatable-read, read-only transaction (one snapshot)."""
        engine = await self._ready()
        with self._errors("search"):
            async with _snapshot(engine) as conn:
                if self.search_cache is not None and not filters:
                    got = await top_candidates_cached(
                        conn, self.search_cache, self._cache_lock, terms,
                        tenant=tenant, pool=pool, now=now,
                    )
                    if got is not None:
                        return got
                return await top_candidates(
                    conn, terms, tenant=tenant, pool=pool, now=now, filters=filters
                )

    def __repr__(self) -> str:
        return f"PostgresStore(url={self.url.split('@')[-1]!r})"
