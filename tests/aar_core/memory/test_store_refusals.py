"""What stores refuse, and how a failed statement is reported (real SQLite, Redis, PostgreSQL).

Found by mutation testing: no test wrote a value JSON cannot carry (``NaN``), and no test made
a PostgreSQL statement fail, so the operation its error names was never checked.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from _store_kinds import SHARED_KINDS, new_store, store_target

from deep_tree_echo.aar_core.errors import StoreError
from deep_tree_echo.aar_core.memory import MemoryRecord, MemoryStore, Version
from deep_tree_echo.aar_core.memory.postgres_store import PostgresStore


@pytest.fixture(params=SHARED_KINDS)  # they serialise; the manager refuses NaN before any store
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return store_target(request, tmp_path)


@pytest.fixture
async def store(target: tuple[str, str]) -> AsyncIterator[MemoryStore]:
    s = new_store(target)
    await s.open()
    yield s
    await s.close()


def rec(value: object, wall: int = 1) -> MemoryRecord:
    return MemoryRecord("m", {"content": "x", "v": value}, Version(wall, 0, "n"), 1.0, 1.0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
async def test_a_value_json_cannot_carry_is_refused_and_nothing_changes(
    store: MemoryStore, value: float
) -> None:
    assert await store.put_if_newer(rec(1)) is True
    with pytest.raises(ValueError, match="JSON"):
        await store.put_if_newer(rec(value, wall=2))
    got = await store.get("m")
    assert got is not None and got.data == {"content": "x", "v": 1}
    assert got.version == Version(1, 0, "n")


async def test_a_failed_postgres_statement_names_the_operation(postgres_db: str) -> None:
    store = PostgresStore(postgres_db)
    await store.open()
    assert await store.put_if_newer(rec(1)) is True
    admin = await asyncpg.connect(postgres_db)
    try:
        await admin.execute("DROP TABLE dte_memories")
    finally:
        await admin.close()
    with pytest.raises(StoreError) as write:
        await store.put_if_newer(rec(2, wall=2))
    assert str(write.value).startswith("postgres write failed: ")
    with pytest.raises(StoreError) as purge:
        await store.purge({"m": Version(1, 0, "n")})
    assert str(purge.value).startswith("postgres purge failed: ")
    assert await store.purge({}) == []  # nothing to purge: no statement at all
    await store.close()
