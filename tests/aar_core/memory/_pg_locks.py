"""Waiting, in a test, until another PostgreSQL backend waits for a lock (polled:
PostgreSQL tells no one when a statement starts waiting)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg


async def lock_waited(other: asyncpg.Connection, task: asyncio.Task[Any],
                      event: str | None = None) -> None:
    """Return once a backend other than ``other`` waits for a lock (of kind ``event``, e.g.
    ``advisory``, when given), checking that ``task`` has not finished meanwhile."""
    query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
             "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'")
    args: tuple[str, ...] = ()
    if event is not None:
        query += " AND wait_event = $1"
        args = (event,)
    async with asyncio.timeout(30):
        while not await other.fetchval(query, *args):
            assert not task.done(), task
            await asyncio.sleep(0.01)
