"""Builds every real store kind for the shared-store and tenant tests (one place to add a kind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deep_tree_echo.aar_core.memory import InMemoryStore, MemoryStore, RedisStore, SQLiteStore

#: Store kinds several processes (here: several managers) can share.
SHARED_KINDS = ["sqlite", "redis", "postgres"]
ALL_KINDS = ["memory", *SHARED_KINDS]


def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """``(kind, where)``: a file path for SQLite, a real server URL for Redis and PostgreSQL.

    Call from a sync fixture: the async server fixtures are requested only for their kind.
    """
    kind: str = request.param
    if kind == "redis":
        return kind, request.getfixturevalue("redis_url")
    if kind == "postgres":
        return kind, request.getfixturevalue("postgres_db")
    return kind, str(tmp_path / "m.db")


def new_store(target: tuple[str, str]) -> MemoryStore:
    """A fresh store object on the target (each call is another "process" on the same data)."""
    kind, where = target
    if kind == "memory":
        return InMemoryStore()
    if kind == "sqlite":
        return SQLiteStore(where)
    if kind == "redis":
        return RedisStore(where)
    from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore

    return PostgresStore(where)
