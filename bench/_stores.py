"""Every memory store kind for the benchmarks: real SQLite files and throwaway Redis/PostgreSQL
servers started as the tests start them (``tests/_services.py``)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from deep_tree_echo.aar_core.memory import InMemoryStore, MemoryStore, SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

KINDS = ("memory", "sqlite", "redis", "postgres")


class StoreFactory:
    """Makes fresh, empty stores of each kind (a new file, prefix or database every time)."""

    def __init__(
        self, stack: contextlib.ExitStack, kinds: tuple[str, ...], search_cache: int | None
    ) -> None:
        from _services import postgres_server, redis_server

        #: The SQL stores' search cache budget (None: each store's default).
        self.cache: dict[str, int] = {} if search_cache is None else {"search_cache": search_cache}
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        self.redis_url = stack.enter_context(redis_server()) if "redis" in kinds else ""
        self.pg_url = stack.enter_context(postgres_server()) if "postgres" in kinds else ""

    async def new(self, kind: str) -> MemoryStore:
        name = uuid.uuid4().hex[:10]
        if kind == "memory":
            return InMemoryStore()
        if kind == "sqlite":
            return SQLiteStore(self.tmp / f"{name}.db", **self.cache)
        if kind == "redis":
            from deep_tree_echo.aar_core.memory import RedisStore

            return RedisStore(self.redis_url, prefix=f"b{name}:")
        import asyncpg

        from deep_tree_echo.aar_core.memory import PostgresStore

        admin = await asyncpg.connect(self.pg_url)
        await admin.execute(f'CREATE DATABASE "b{name}"')
        await admin.close()
        return PostgresStore(self.pg_url.rsplit("/", 1)[0] + f"/b{name}", **self.cache)


@contextlib.contextmanager
def factory(kinds: tuple[str, ...], search_cache: int | None = None) -> Iterator[StoreFactory]:
    with contextlib.ExitStack() as stack:
        yield StoreFactory(stack, kinds, search_cache)
