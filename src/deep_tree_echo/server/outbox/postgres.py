"""The outbox in PostgreSQL: table ``dte_events``, woken by ``LISTEN/NOTIFY``.

Appends take a transaction-level advisory lock, so ids (a ``BIGSERIAL``) commit in increasing
order and a tailer reading ``id > cursor`` can never skip a late-committing event; the same
transaction sends ``NOTIFY dte_events``, delivered to every listening worker and node on commit.
Written right after the memory change it reports (the memory store owns its own transaction).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from deep_tree_echo.aar_core.memory.store import DEFAULT_TENANT
from deep_tree_echo.server.errors import OutboxError
from deep_tree_echo.server.outbox._base import (
    READ_BATCH,
    EventOutbox,
    OutboxEvent,
    Row,
    decode_payload,
)

if TYPE_CHECKING:
    import asyncpg

logger = logging.getLogger("deep_tree_echo.server.outbox")

CHANNEL: Final = "dte_events"
_LOCK_KEY: Final = 0x6474655F65767473  # "dte_evts": serialises appends (commit order = id order)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS dte_events (
    id         BIGSERIAL PRIMARY KEY,
    tenant     TEXT NOT NULL DEFAULT 'default',
    session_id TEXT,
    kind       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS dte_events_by_session ON dte_events (tenant, session_id, id);
CREATE INDEX IF NOT EXISTS dte_events_by_time ON dte_events (created_at);
CREATE TABLE IF NOT EXISTS dte_events_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
"""
_COLUMNS: Final = "id, kind, session_id, payload, created_at, tenant"
# One statement, one round trip, its own transaction: every row joins the advisory lock, so
# the lock is held before any id is drawn from the sequence (commit order = id order), and
# the NOTIFY (one per transaction: PostgreSQL folds duplicates) is delivered on commit.
_APPEND: Final = f"""
WITH ins AS (
    INSERT INTO dte_events (kind, session_id, payload, created_at, tenant)
    SELECT t.k, t.s, t.p, t.c, t.o
    FROM (SELECT pg_advisory_xact_lock($5::bigint)) AS lock,
         unnest($1::text[], $2::text[], $3::text[], $4::double precision[], $6::text[])
             WITH ORDINALITY AS t(k, s, p, c, o, n)
    ORDER BY t.n
    RETURNING id
)
SELECT id, pg_notify('{CHANNEL}', '') FROM ins
"""

_PURGED: Final = (
    "SELECT COALESCE((SELECT value FROM dte_events_meta WHERE key = 'purged_through'), 0)"
)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool ``reset``: nothing to undo on a released connection (see ``open``)."""


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://`` (SQLAlchemy style) and ``postgres://`` URLs as asyncpg takes."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"postgresql://{rest}" if scheme.split("+")[0] in ("postgresql", "postgres") else url


def _event(row: Any) -> OutboxEvent:
    return OutboxEvent(int(row["id"]), str(row["kind"]), row["session_id"],
                       decode_payload(row["payload"]), float(row["created_at"]),
                       str(row["tenant"]))


class PostgresOutbox(EventOutbox):
    """Outbox shared by every worker and node on one PostgreSQL database."""

    kind = "postgres"
    shared_between_nodes = True

    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        super().__init__()
        self.url = url
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        import asyncpg

        dsn = asyncpg_dsn(self.url)
        try:
            # reset=: a released connection holds no session state (no SET, LISTEN or
            # session lock: the listener has its own connection), so skip asyncpg's
            # RESET ALL/UNLISTEN round trip at every release
            self._pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=self.pool_size, reset=_keep_session
            )
            async with self._pool.acquire() as conn, conn.transaction():
                # several workers and nodes start at once: one creates the schema
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                await conn.execute(_SCHEMA)
            self._listener = await asyncpg.connect(dsn)
            await self._listener.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as exc:
            await self.close()
            raise OutboxError(f"cannot open the PostgreSQL event outbox: {exc}") from exc

    def _notified(self, *_: Any) -> None:
        self.changed.set()

    async def close(self) -> None:
        await super().close()
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                await listener.close(timeout=5)
            except Exception:  # already broken: nothing left to release
                listener.terminate()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.wait_for(pool.close(), 10)

    def _need_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise OutboxError("the event outbox is not open")
        return self._pool

    async def _insert(self, rows: list[Row]) -> list[int]:
        import asyncpg

        try:
            async with self._need_pool().acquire() as conn:
                records = await conn.fetch(
                    _APPEND,
                    [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                    [r[3] for r in rows], _LOCK_KEY, [r[4] for r in rows],
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise OutboxError(f"appending to the PostgreSQL event outbox failed: {exc}") from exc
        return sorted(int(r["id"]) for r in records)

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        try:
            async with self._need_pool().acquire() as conn:
                return list(await conn.fetch(sql, *args))
        except (OSError, asyncpg.PostgresError) as exc:
            raise OutboxError(f"reading the PostgreSQL event outbox failed: {exc}") from exc

    async def read(self, after: int, *, session_id: str | None = None,
                   tenant: str = DEFAULT_TENANT, upto: int | None = None,
                   limit: int = READ_BATCH) -> list[OutboxEvent]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM dte_events WHERE id > $1 "
            "AND ($2::text IS NULL OR (tenant = $5 AND session_id = $2)) "
            "AND ($3::bigint IS NULL OR id <= $3) ORDER BY id LIMIT $4",
            after, session_id, upto, limit, tenant,
        )
        return [_event(row) for row in rows]

    async def head(self) -> int:
        rows = await self._fetch(
            "SELECT GREATEST((SELECT COALESCE(MAX(id), 0) FROM dte_events), "
            f"({_PURGED})) AS head"
        )
        return int(rows[0]["head"])

    async def purged_through(self) -> int:
        rows = await self._fetch(f"SELECT ({_PURGED}) AS v")
        return int(rows[0]["v"])

    async def purge(self, before: float) -> int:
        import asyncpg

        try:
            async with self._need_pool().acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
                last = await conn.fetchval(
                    "SELECT MAX(id) FROM dte_events WHERE created_at < $1", before
                )
                if last is None:
                    return 0
                status = await conn.execute("DELETE FROM dte_events WHERE id <= $1", last)
                await conn.execute(
                    "INSERT INTO dte_events_meta (key, value) VALUES ('purged_through', $1) "
                    "ON CONFLICT (key) DO UPDATE SET value = GREATEST(dte_events_meta.value, "
                    "excluded.value)",
                    last,
                )
        except (OSError, asyncpg.PostgresError) as exc:
            raise OutboxError(f"purging the PostgreSQL event outbox failed: {exc}") from exc
        return int(str(status).rsplit(" ", 1)[-1])
